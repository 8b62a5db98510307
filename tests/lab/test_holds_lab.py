"""A bad build remembered for the whole cluster, on a real cluster: after its fail back every node pins it
off, unattended-upgrades on another node skips it and takes an unrelated fix, and ``release-hold`` or a
newer good version (at the next run, :func:`upgrader.orchestrator.holding.release_expired`) ends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import TOOL, fresh_version, held, history, pins, rolling, standby_nodes
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab
from upgrader.pacemaker.live import Cluster, drained

pytestmark = pytest.mark.lab
UU_CONF = "/etc/apt/apt.conf.d/51upgrader-lab-uu"  # as test_upgrade_guard.py runs unattended-upgrades


@pytest.fixture(scope="module")
def hlab() -> Iterator[Lab]:
    """A lab of its own: these tests break, quarantine and hold back builds."""
    with private_lab("h") as the_lab:
        yield the_lab


def cluster(lab: Lab) -> Cluster:
    return Cluster(node.runner(lab, "node1", timeout=30))


def candidate(lab: Lab, n: str) -> str:
    """apt's candidate for the lab's package on ``n`` ('(none)' when its only version is pinned off)."""
    out = node.runner(lab, n).run(["apt-cache", "policy", repo.PACKAGE], what=f"apt-cache policy on {n}").stdout
    found = re.search(r"^\s*Candidate: (\S+)", out, re.M)
    assert found, out
    return found[1]


def pinned(lab: Lab, n: str, version: str) -> bool:
    return f"Package: {repo.PACKAGE}\nPin: version {version}\nPin-Priority: -1\n" in pins(lab, n)


def bring_back(lab: Lab) -> None:
    """The operator's part after a fail back: the quarantined node cleared and online, the apps serving."""
    for n in lab.node_names:
        node.runner(lab, "node1").run([TOOL, "unquarantine", n])
        cluster(lab).set_standby(n, False)
    ops.wait_serving(lab, 120)


def fail_back(lab: Lab) -> tuple[str, str, dict]:
    """A bad build published and rolled out: the run fails back (exit 1). Its version, the failed node, the report."""
    bad = fresh_version(lab, bad=True)
    code, doc = rolling(lab, "run", "--yes")
    assert code == 1, doc  # as test_rollout's bad build: failed back, the cluster healthy
    failed = [n["node"] for n in doc["nodes"] if n["result"] == "quarantined"]
    assert len(failed) == 1, doc
    return bad, failed[0], doc


def test_a_bad_build_is_held_back_on_every_node_and_unattended_upgrades_skips_it(hlab: Lab) -> None:
    before = {n: ops.installed_version(hlab, n) for n in hlab.node_names}
    bad, failed, doc = fail_back(hlab)
    assert held(hlab) == [(repo.PACKAGE, bad)]
    assert all(pinned(hlab, n, bad) for n in hlab.node_names), {n: pins(hlab, n) for n in hlab.node_names}
    records = [e for e in history(hlab, doc["run"]) if e["phase"] == "hold"]
    assert [(e["node"], [h["version"] for h in e["holds"]]) for e in records] == [(failed, [bad])]
    code, status = rolling(hlab, "status")
    assert code == 0 and [(h["package"], h["version"], h["node"], h["run"]) for h in status["holds"]] == [
        (repo.PACKAGE, bad, failed, doc["run"])]
    # The failed node keeps its build (no candidate: nothing to upgrade, downgrade or remove).
    assert ops.installed_version(hlab, failed) == bad and candidate(hlab, failed) == "(none)"
    # Another node, drained, runs unattended-upgrades: the bad build is not even a candidate, and an
    # unrelated fix published since is taken.
    other = next(n for n in hlab.node_names if n != failed)
    assert candidate(hlab, other) == before[other]
    tools = repo.publish_tools(hlab.repo_dir, "1")
    node.runner(hlab, other, timeout=120).run(["env", "UPGRADER_GUARD=off", "dpkg", "-i",
                                               f"{node.REPO_MOUNT}/{tools.relative_to(hlab.repo_dir)}"])
    repo.publish_tools(hlab.repo_dir, "2")
    ops.refresh_indexes(hlab)
    node.runner(hlab, other).run(["tee", UU_CONF], input='Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n'
                                                         'Unattended-Upgrade::MinimalSteps "true";\n'
                                                         'Rolling-Upgrade::Boot-Grace "0";\n')
    try:
        cluster(hlab).set_standby(other, True)
        cluster(hlab).wait_settled(drained(other, tuple(hlab.app_names)), deadline=60)
        got = node.runner(hlab, other, timeout=300).call(["unattended-upgrade", "-v"])
        assert got.returncode == 0, got.stdout + got.stderr
        assert ops.installed_version(hlab, other) == before[other]
        assert ops.installed_version(hlab, other, repo.TOOLS_PACKAGE) == "2", got.stdout
    finally:
        node.runner(hlab, other).run(["rm", "-f", UU_CONF])
        cluster(hlab).set_standby(other, False)
    assert sorted(standby_nodes(hlab)) == [failed]


def test_release_hold_ends_it_on_every_node(hlab: Lab) -> None:
    (package, bad), = held(hlab)
    other = next(n for n in hlab.node_names if n not in standby_nodes(hlab))
    got = node.runner(hlab, "node1").call([TOOL, "release-hold", "no-such-package"])
    assert got.returncode == 2 and "no-such-package is not held back" in got.stderr
    got = node.runner(hlab, "node1").call([TOOL, "release-hold", package])
    assert got.returncode == 0 and f"released {package} {bad}" in got.stdout, got.stdout + got.stderr
    assert held(hlab) == []
    assert all(pins(hlab, n) == "" for n in hlab.node_names), {n: pins(hlab, n) for n in hlab.node_names}
    assert candidate(hlab, other) == bad  # the pin was what kept it off
    bring_back(hlab)


def test_a_newer_good_version_ends_the_hold(hlab: Lab) -> None:
    fresh_version(hlab)  # a good one, newer than the bad build the last test released
    code, doc = rolling(hlab, "run", "--yes")
    assert code == 0, doc
    bad, failed, _ = fail_back(hlab)
    bring_back(hlab)
    assert held(hlab) == [(repo.PACKAGE, bad)]
    good = fresh_version(hlab)  # newer than the held build: its hold ends at the preflight
    code, doc = rolling(hlab, "run", "--yes")
    assert code == 0, doc
    assert held(hlab) == []
    assert all(pins(hlab, n) == "" for n in hlab.node_names), {n: pins(hlab, n) for n in hlab.node_names}
    assert all(ops.installed_version(hlab, n) == good for n in hlab.node_names)
    assert failed in {n["node"] for n in doc["nodes"] if n["result"] == "ok"}, json.dumps(doc)
