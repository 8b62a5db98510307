"""The nightly window and unattended-upgrades on a real cluster (a lab of its own: versions change).

Windows are configured in each node's apt.conf.d; ``--at`` fixes the clock so
the tests do not depend on when they run. Monday 2026-03-02, window 02:00-04:00 UTC.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import lab_name
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Result

pytestmark = pytest.mark.lab
TOOL = str(Path(sys.executable).parent / "rolling-upgrade")
CONF = "/etc/apt/apt.conf.d/60upgrader-test-window"
UU_CONF = "/etc/apt/apt.conf.d/51upgrader-test-uu"
SETTINGS = ('Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
            'Rolling-Upgrade::Mail "root";\nRolling-Upgrade::MailReport "on-change";\n')
MAILBOX = "/var/tmp/test-mailbox"
INSIDE, LATE, OUTSIDE = "2026-03-02T02:05+00:00", "2026-03-02T03:55+00:00", "2026-03-02T05:00+00:00"


@pytest.fixture(scope="module")
def wlab() -> Iterator[Lab]:
    name = lab_name("w")
    try:
        the_lab, _ = ops.up(name, nodes=3, apps=3)
        for n in the_lab.node_names:
            write(the_lab, n, CONF, SETTINGS)
            write(the_lab, n, UU_CONF, 'Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n')
            # A stand-in for the MTA: sendmail -t with the message on stdin.
            write(the_lab, n, "/usr/sbin/sendmail", f"#!/bin/sh\ncat >> {MAILBOX}\n")
            node.runner(the_lab, n).run(["chmod", "755", "/usr/sbin/sendmail"])
        yield the_lab
    finally:
        ops.down(name)


def write(lab: Lab, n: str, path: str, text: str) -> None:
    node.runner(lab, n).run(["tee", path], input=text)


def window(lab: Lab, n: str, *argv: str) -> tuple[int, dict]:
    result = node.runner(lab, n, timeout=900).call([TOOL, "window", "--json", *argv])
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"no JSON (exit {result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}") from None


def versions(lab: Lab) -> dict[str, str | None]:
    return {n: ops.installed_version(lab, n) for n in lab.node_names}


def history(lab: Lab, n: str) -> list[dict]:
    text = node.runner(lab, n).call(["cat", "/var/lib/upgrader/history.jsonl"]).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def cluster(lab: Lab) -> Cluster:
    return Cluster(node.runner(lab, "node1", timeout=30))


def finished(lab: Lab, n: str, timeout: float = 120) -> list[dict]:
    """The APT hooks' record of the finishing step on ``n`` (written once it has run), waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in history(lab, n) if e["phase"] == "apt" and e.get("source") == "apt-hooks"]
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no finishing step recorded on {n} within {timeout}s")


def uu(lab: Lab, n: str) -> Result:
    return node.runner(lab, n, timeout=300).call(["unattended-upgrade", "-v"])


def test_right_after_cluster_join_the_window_refuses(wlab: Lab) -> None:
    code, doc = window(wlab, "node1", "--at", INSIDE)
    assert code == 3 and "Rolling-Upgrade::Boot-Grace (900s)" in doc["refused"], doc
    assert "cluster join (corosync start)" in doc["refused"]
    for n in wlab.node_names:
        write(wlab, n, CONF, SETTINGS + 'Rolling-Upgrade::Boot-Grace "0";\n')


def test_outside_the_window_nothing_changes(wlab: Lab) -> None:
    repo.publish(wlab.repo_dir, "2")
    ops.refresh_indexes(wlab)
    code, doc = window(wlab, "node1", "--at", OUTSIDE)
    assert code == 0 and doc["summary"].startswith("patch window closed at 2026-03-02 05:00"), doc
    assert set(versions(wlab).values()) == {"1"} and lock.read(cluster(wlab)) is None
    assert history(wlab, "node1")[-1]["summary"] == doc["summary"]
    got = node.runner(wlab, "node1").run([TOOL, "window", "--check", "--at", INSIDE]).stdout
    assert "patch window open at 2026-03-02" in got and "1h55m left" in got
    assert "would upgrade" in got and "demo-libfoo 1 -> 2" in got


def test_too_little_time_left_starts_no_node_and_says_why(wlab: Lab) -> None:
    code, doc = window(wlab, "node1", "--at", LATE)
    assert code == 0, doc
    assert {n["result"] for n in doc["nodes"]} == {"deferred"}
    assert "expected to take 30m (Rolling-Upgrade::Default-Node-Duration, no history yet)" in doc["nodes"][0]["error"]
    assert "the patch window has 4m5" in doc["nodes"][0]["error"]  # 5m at --at, less the seconds the run took
    assert set(versions(wlab).values()) == {"1"} and lock.read(cluster(wlab)) is None
    records = history(wlab, "node1")
    assert sorted(e["node"] for e in records if e["event"] == "deferred") == wlab.node_names
    assert "deferred node" in records[-1]["summary"]
    mail = node.runner(wlab, "node1").run(["cat", MAILBOX]).stdout
    assert "Subject: [deferred] rolling-upgrade window result for node1: SUCCESS" in mail
    assert "Nodes deferred to the next patch window:" in mail


def test_two_nodes_windows_at_once_one_upgrades_the_cluster_the_other_names_it(wlab: Lab) -> None:
    results: dict[str, tuple[int, dict]] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, window(wlab, n, "--at", INSIDE)))
               for n in ("node1", "node2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    winners = [n for n, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    winner, loser = winners[0], ({"node1", "node2"} - set(winners)).pop()
    code, doc = results[loser]
    assert code == 3 and f"the upgrade lock is held by {winner}" in doc["refused"], doc
    assert {n["node"]: n["result"] for n in results[winner][1]["nodes"]} == {n: "ok" for n in wlab.node_names}
    assert set(versions(wlab).values()) == {"2"} and lock.read(cluster(wlab)) is None
    assert "demo-libfoo 1 -> 2" in node.runner(wlab, winner).run(["cat", MAILBOX]).stdout


def test_unattended_upgrades_on_an_active_node_is_refused_without_auto_standby(wlab: Lab) -> None:
    repo.publish(wlab.repo_dir, "3")
    ops.refresh_indexes(wlab)
    got = uu(wlab, "node3")
    assert got.returncode != 0
    assert "refused: node3 is active" in node.runner(wlab, "node3").run(["cat", "/run/upgrader/refusal"]).stdout
    assert ops.installed_version(wlab, "node3") == "2" and lock.read(cluster(wlab)) is None
    assert not cluster(wlab).state().node("node3").standby


def test_unattended_upgrades_with_auto_standby_drains_upgrades_and_finishes(wlab: Lab) -> None:
    write(wlab, "node3", CONF, SETTINGS + 'Rolling-Upgrade::Boot-Grace "0";\nRolling-Upgrade::Auto-Standby "true";\n')
    got = uu(wlab, "node3")
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    assert ops.installed_version(wlab, "node3") == "3"
    records = finished(wlab, "node3")
    assert records[-1]["result"] == "ok" and records[-1]["finish"].endswith("exit 0"), records
    assert "Auto-Standby: node3 put in standby for unattended-upgrades" in \
        node.runner(wlab, "node3").run(["cat", "/var/log/upgrader/hooks.log"]).stdout
    assert not cluster(wlab).state().node("node3").standby and lock.read(cluster(wlab)) is None
    ops.wait_serving(wlab, 60)
