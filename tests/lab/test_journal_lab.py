"""The journal on a real cluster: ``journalctl RUN_ID=...`` on node1 shows one rolling upgrade, start to end.

The lab's nodes do not run systemd (their process 1 is the lab's own), so this test starts
systemd-journald by hand inside node1: volatile storage (a drop-in in node1's /run), its own log
on stderr, found and stopped by its PID. Afterwards node1's /run has no journald socket again, so
every later test sees the fallback to the system log, as before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import TOOL, fresh_version, history, rolling
from upgrader import journal
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab

JOURNALD = "/lib/systemd/systemd-journald"
NODE = "node1"
RUNTIME = ("/run/systemd/journal", "/run/systemd/journald.conf.d", "/run/log/journal")  # all node1's own /run
DROP_IN = "/run/systemd/journald.conf.d/upgrader-lab.conf"
SETTINGS = "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToWall=no\nForwardToKMsg=no\n"
NODE_PHASES = ("node", "drain", "upgrade", "fail-over")  # every upgraded node has these; verify when a move needs it


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (host PIDs, read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def is_journald(pid: int) -> bool:
    """Whether ``pid`` (a child of the nsenter we started) is systemd-journald, alive."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return Path(argv0.decode(errors="replace")).name == Path(JOURNALD).name and state not in ("Z", "X")


def stop(pid: int | None, launcher: subprocess.Popen) -> None:
    """journald by its PID (TERM, then KILL), then the nsenter that started it."""
    if pid is not None and is_journald(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while is_journald(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_journald(pid):
            os.kill(pid, signal.SIGKILL)
    try:
        launcher.wait(timeout=10)
    except subprocess.TimeoutExpired:
        launcher.kill()  # the nsenter we started, by its Popen
        launcher.wait(timeout=10)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A lab of this module's own: its run upgrades every node (the session's lab stays at version 1), and
    journald never runs in a lab another module uses."""
    with private_lab("j") as the_lab:
        yield the_lab


@pytest.fixture()
def journald(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    """systemd-journald running inside node1 (the path of its own log on the host); stopped, its sockets and
    volatile journal removed, whatever the test did."""
    inside = node.runner(lab, NODE, timeout=30)
    inside.run(["mkdir", "-p", "/run/systemd/journal", "/run/systemd/journald.conf.d"])
    inside.run(["tee", DROP_IN], input=SETTINGS)
    log = tmp_path / "journald.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen(node.exec_argv(lab, NODE, [JOURNALD]), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out, start_new_session=True,
                                    env={**node.NODE_ENV, "SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "info"})
    pid = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pid is None:  # nsenter forks into node1's PID namespace: journald is its child
                pid = next((c for c in children(launcher.pid) if is_journald(c)), None)
            if pid is not None and inside.call(["test", "-S", journal.SOCKET]).returncode == 0:
                break
            if launcher.poll() is not None:
                raise AssertionError(f"systemd-journald ended at once (exit {launcher.returncode}): "
                                     f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        else:
            raise AssertionError(f"no journald socket in {NODE} after 30s (journald pid {pid}): "
                                 f"{log.read_text(errors='replace')[-3000:]}")
        yield log
    finally:
        stop(pid, launcher)
        inside.call(["rm", "-rf", *RUNTIME])
        assert inside.call(["test", "-e", journal.SOCKET]).returncode != 0, "journald's socket is still in node1"


@pytest.fixture()
def cluster_restored(lab: Lab) -> Iterator[None]:
    """Every node online, not quarantined, no upgrade lock, the apps serving: after the test, whatever it did."""
    yield
    inside = node.runner(lab, NODE, timeout=120)
    for n in lab.node_names:
        inside.call([TOOL, "unquarantine", n])
    c = Cluster(node.runner(lab, NODE))
    for n in lab.node_names:
        c.set_standby(n, False)
    lock.force_unlock(c)
    ops.wait_serving(lab, 120)


def entries(lab: Lab, run_id: str) -> list[dict]:
    """The run's journal entries in node1, in the journal's order (node1's journal files: /run/log/journal)."""
    got = node.runner(lab, NODE, timeout=30).run(["journalctl", "--no-pager", "-o", "json", f"RUN_ID={run_id}"])
    return [json.loads(line) for line in got.stdout.splitlines() if line.strip()]


def of_kind(found: list[dict], kind: str) -> list[dict]:
    return [e for e in found if e.get("MESSAGE_ID") == journal.KINDS[kind][0]]


def test_journalctl_run_id_shows_the_runs_start_each_nodes_phases_and_its_end(
        lab: Lab, cluster_restored: None, journald: Path) -> None:
    fresh_version(lab)
    code, doc = rolling(lab, "run", "--yes", via=NODE)
    assert code == 0, doc
    run_id = doc["run"]
    deadline = time.monotonic() + 20  # journald takes a datagram asynchronously: the end may lag the exit
    found = entries(lab, run_id)
    while not of_kind(found, "run-end") and time.monotonic() < deadline:
        time.sleep(0.5)
        found = entries(lab, run_id)
    said = "\n".join(f"{e.get('MESSAGE_ID', '')[:8]} {e.get('NODE', '-')} {e.get('PHASE', '-')}: {e.get('MESSAGE')}"
                     for e in found) or journald.read_text(errors="replace")[-3000:]
    assert found, said
    assert {e.get("RUN_ID") for e in found} == {run_id}
    assert {e.get("MESSAGE_ID") for e in found} <= {i for i, _ in journal.KINDS.values()}, said
    assert of_kind(found, "failure") == [], said

    starts = of_kind(found, "run-start")
    assert len(starts) == 1 and starts[0]["PHASE"] == "run" and found[0] is starts[0], said
    assert starts[0]["SYSLOG_IDENTIFIER"] == "rolling-upgrade" and starts[0]["PRIORITY"] == "5"
    ends = of_kind(found, "run-end")
    assert len(ends) == 1 and found[-1] is ends[0], said
    assert (ends[0]["EXIT_CODE"], ends[0]["OUTCOME"], ends[0]["SOURCE"], ends[0]["NODE"]) == ("0", "done", "run", NODE)

    phases = {(e.get("NODE"), e["PHASE"]) for e in of_kind(found, "phase-start")}
    for n in lab.node_names:
        assert {(n, p) for p in NODE_PHASES} <= phases, said
    # The journal says every phase the history records, no more, no less.
    recorded = {(e["node"], e["phase"]) for e in history(lab, run_id, via=NODE)
                if e["event"] == "start" and e["phase"] != "run"}
    assert phases == recorded, said
    assert any(p == "verify" for _, p in phases), said  # a fail over that moved resources back was checked
    node_ends = {e["NODE"]: e["RESULT"] for e in of_kind(found, "phase-end") if e["PHASE"] == "node"}
    assert node_ends == {n: "ok" for n in lab.node_names}, said
    # Each node's phases come in the procedure's order.
    for n in lab.node_names:
        order = [e["PHASE"] for e in of_kind(found, "phase-start") if e.get("NODE") == n and e["PHASE"] in NODE_PHASES]
        assert order == list(NODE_PHASES), (n, said)
    for e in found:  # CODE_* name the tool's code that said it, never the journal's own plumbing
        assert not e.get("CODE_FILE", "").endswith(("upgrader/journal.py", "upgrader/history.py")), e
