"""crm_mon XML captured from the lab, read as the engine's level-1 snapshot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from upgrader.health.cluster import cluster_problem
from upgrader.health.snapshot import read_crm_mon, to_snapshot

DATA = Path(__file__).parents[1] / "pacemaker" / "data"


def read(name: str):
    return read_crm_mon((DATA / name).read_text())


def test_all_online_gives_started_primitives_without_clone_instances() -> None:
    _, snap = read("crm_mon-all-online.xml")
    assert sorted(snap.resources) == ["app1-ct", "app1-ip", "app2-ct", "app2-ip", "app3-ct", "app3-ip"]
    ct = snap.resources["app1-ct"]
    assert ct.role == "Started" and len(ct.nodes) == 1 and not ct.failed and ct.pending == ""
    assert snap.failures == () and snap.fail_counts == {}


def test_a_failed_monitor_is_a_new_failure_and_a_fail_count_rise() -> None:
    _, before = read("crm_mon-all-online.xml")
    state, after = read("crm_mon-failed-action.xml")
    assert after.fail_counts == {("app3-ct", "node3"): 1}
    problem = cluster_problem(("app3-ip", "app3-ct"), "node3", after, before)
    assert problem is not None and problem.final
    failure = state.failures[0]  # as captured: its call number and time come from the lab
    assert problem.message == (
        f"new failure of app3-ct on node3: app3-ct_monitor_5000 (error, call {failure.call}, "
        f"at {failure.last_rc_change}); fail-count of app3-ct on node3 rose from 0 to 1")
    assert cluster_problem(("app3-ip", "app3-ct"), "node3", after, after) is None
    again = replace(state, failures=(replace(state.failures[0], call=41),))
    assert "call 41" in cluster_problem(("app3-ct",), "node3", to_snapshot(again), after).message
