"""crm_simulate's transition summary, captured from the lab, parsed into moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from upgrader.pacemaker.simulate import Move, SimulateParseError, parse_transition_summary
from upgrader.pacemaker.state import ClusterState

DATA = Path(__file__).parent / "data"


def test_standby_prediction_is_what_the_cluster_then_did(situations: dict[str, Any], mon: Callable[[str], ClusterState]) -> None:
    node = situations["standby"]["node"]
    moves = parse_transition_summary((DATA / f"crm_simulate-standby-{node}.txt").read_text())
    before, after = mon("all-online"), mon(f"standby-{node}")
    expected = {
        (r.id, node, sorted(after.running_on(app))[0])
        for app in ("app1", "app2", "app3")
        if node in before.running_on(app)
        for r in before.members(app)
    }
    assert {(m.resource, m.source, m.dest) for m in moves if m.action == "Move"} == expected
    stops = [m for m in moves if m.action == "Stop"]
    assert [(m.resource.split(":")[0], m.source, m.dest, m.reason) for m in stops] == [("probe", node, None, "node availability")]
    assert all(m.relocates and not m.blocked for m in moves)


def test_recovery_in_place(situations: dict[str, Any]) -> None:
    node = situations["standby"]["node"]  # the node app1 ran on when the CIB was saved
    moves = parse_transition_summary((DATA / "crm_simulate-recover.txt").read_text())
    recover = next(m for m in moves if m.resource == "app1-ct")
    assert recover == Move(action="Recover", resource="app1-ct", source=node, dest=node, reason=None, blocked=False)
    assert not recover.relocates


def test_output_without_a_summary_is_refused() -> None:
    with pytest.raises(SimulateParseError, match="no 'Transition Summary:'"):
        parse_transition_summary((DATA / "crm_mon-all-online.xml").read_text())
