"""The fault suite's kill and network-cut scenarios on the seed's two hosts, with fencing on.

A run killed mid-upgrade is rolled back and finished by the next one. A host cut off the network
while it is drained is fenced by the other (fence_lab powers it off), the run ends in bounded time,
and nothing is lost: the applications, their DRBD stand-ins' Promoted role with them, run on the
survivor.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lab.helpers import fresh_version, history, rolling, signal_run, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import node, profiles
from upgrader_lab.layout import Lab
from upgrader.pacemaker import shapes
from upgrader.pacemaker.live import Cluster

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fe"
LAB_PROFILE = "seed"


def test_seed_a_run_killed_mid_upgrade_is_finished_by_the_next(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)
    dead = wait_for_phase(healthy, run, seen, "upgrade")["run"]
    signal_run(healthy, run, "KILL")
    code, doc = rolling(healthy, "run", "--yes")
    assert code == 0, doc
    assert doc["recovered"][0].startswith(f"found run {dead} interrupted in phase upgrade"), doc
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    nothing_lost(healthy, run=dead, told=[("upgrade", "start"), ("recovered", "note")])


def test_seed_a_host_cut_off_during_its_drain_is_fenced_and_the_run_ends_in_bounded_time(healthy: Lab,
                                                                                          nothing_lost) -> None:
    fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)  # from node1: node2 goes first
    entry = wait_for_phase(healthy, run, seen, "drain")
    assert entry["node"] == "node2"
    started = time.monotonic()
    ops.cut(healthy, "node2")
    out, err = run.communicate(timeout=300)
    took = time.monotonic() - started
    doc = json.loads(out)
    assert doc["exit"] == 4, doc
    assert took < 180, took
    # node1 fenced node2 (the lab's fence agent cut its power): its process 1 is gone.
    deadline = time.monotonic() + 60
    while node.running(healthy, "node2") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not node.running(healthy, "node2"), "node2 was not fenced"
    state = Cluster(node.runner(healthy, "node1")).state()
    for app in healthy.app_names:
        assert state.running_on(app) == {"node1"}
        assert shapes.promoted(state, profiles.drbd_clone(app)) == {"node1"}
    ops.boot(healthy, "node2")  # powered off by the fence: a boot brings it back with a fresh link
    nothing_lost(healthy, run=entry["run"], told=[("drain", "start"), ("run", "note"), ("run", "end")])
