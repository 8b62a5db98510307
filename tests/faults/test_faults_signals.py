"""Signals at the phases tests/lab/test_interrupted.py does not cover.

There: SIGKILL during drain, upgrade and fail-over, SIGTERM during drain.
Here: SIGKILL during verification (the next run rolls back and resumes),
SIGTERM during the upgrade and SIGINT during the fail-over (the run ends the
node it is on, then stops at the next safe point: before the next node's
drain, or right after it when the phase ended before the signal landed).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lab.helpers import fresh_version, history, rolling, signal_run, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fs"


def test_sigkill_during_verification_then_the_next_run_resumes(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)
    dead = wait_for_phase(healthy, run, seen, "verify")["run"]
    signal_run(healthy, run, "KILL")
    code, doc = rolling(healthy, "run", "--yes")
    assert code == 0, doc
    assert doc["recovered"][0].startswith(f"found run {dead} interrupted in phase verify")
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    nothing_lost(healthy, run=dead, told=[("verify", "start"), ("recovered", "note")])


@pytest.mark.parametrize("phase, signame", [("upgrade", "TERM"), ("fail-over", "INT")])
def test_signal_mid_node_finishes_that_node_and_stops_at_the_next_safe_point(healthy: Lab, nothing_lost, phase: str,
                                                                             signame: str) -> None:
    version = fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)
    entry = wait_for_phase(healthy, run, seen, phase)
    signal_run(healthy, run, signame)
    doc = json.loads(run.communicate()[0])
    assert doc["exit"] == 4, doc
    stops = [e["reason"] for e in history(healthy, entry["run"]) if e["phase"] == "run" and e.get("result") == "stopped"]
    assert len(stops) == 1 and stops[0].startswith(f"interrupted by SIG{signame}: stopped at a safe point"), stops
    # The node in mid-phase was finished; at most one more was drained (a phase can end before the signal
    # lands) and then put back untouched; nothing else was touched.
    results = {n["node"]: n["result"] for n in doc["nodes"]}
    assert results[entry["node"]] == "ok" and ops.installed_version(healthy, entry["node"]) == version, doc
    drained = {e["node"] for e in history(healthy, entry["run"]) if e["phase"] == "drain"}
    put_back = drained - {n for n, r in results.items() if r == "ok"}
    assert len(put_back) <= 1 and all(f"after draining {n} (put back online, not upgraded)" in stops[0]
                                      and ops.installed_version(healthy, n) != version for n in put_back), stops
    nothing_lost(healthy, run=entry["run"], told=[("upgrade", "end"), ("run", "note"), ("run", "end")])


def test_the_operators_session_dropping_mid_run_stops_it_at_the_next_safe_point(healthy: Lab, nothing_lost) -> None:
    """The run prints its progress to a terminal (a pty here); the terminal goes away during the upgrade: the
    kernel sends SIGHUP and every later write fails. The node in mid-phase is finished, the run stops at the
    next safe point, and its lock and constraints are gone."""
    import fcntl
    import os
    import pty
    import subprocess
    import termios

    from tests.lab.helpers import TOOL
    from upgrader_lab import node
    from upgrader.pacemaker import lock
    from upgrader.pacemaker.live import Cluster

    version = fresh_version(healthy)
    seen = len(history(healthy))
    master, slave = pty.openpty()

    def own_terminal() -> None:  # a session of its own whose controlling terminal is the pty, as ssh gives one
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    run = subprocess.Popen(node.exec_argv(healthy, "node1", [TOOL, "run", "--yes"]), stdin=slave, stdout=slave,
                           stderr=slave, preexec_fn=own_terminal, env=dict(node.NODE_ENV, TERM="xterm"))
    os.close(slave)
    try:
        entry = wait_for_phase(healthy, run, seen, "upgrade")
    finally:
        os.close(master)  # the session drops: SIGHUP, and the terminal is gone for every write after it
    run.wait(timeout=600)
    cluster = Cluster(node.runner(healthy, "node1"))
    deadline = time.monotonic() + 300
    while lock.read(cluster) is not None and time.monotonic() < deadline:
        time.sleep(0.5)  # nsenter may end with the session; the run inside goes on to its stop
    assert lock.read(cluster) is None
    stops = [e["reason"] for e in history(healthy, entry["run"]) if e["phase"] == "run" and e.get("result") == "stopped"]
    assert len(stops) == 1 and stops[0].startswith("interrupted by SIGHUP: stopped at a safe point"), stops
    assert ops.installed_version(healthy, entry["node"]) == version
    nothing_lost(healthy, run=entry["run"], told=[("upgrade", "end"), ("run", "note"), ("run", "end")])
