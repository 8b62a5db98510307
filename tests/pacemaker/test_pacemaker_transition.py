"""crm_simulate's moves (captured from the lab by capture.py) in an operator's words, one line per resource."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from upgrader.pacemaker.simulate import Move, parse_transition_summary
from upgrader.pacemaker.state import ClusterState
from upgrader.pacemaker.transition import Action, actions, top_level

DATA = Path(__file__).parent / "data"


def predicted(name: str, state: ClusterState) -> tuple[Action, ...]:
    return actions(parse_transition_summary((DATA / f"crm_simulate-{name}.txt").read_text()), state)


def test_standby_of_the_promoted_node(situations: dict[str, Any], mon: Callable[[str], ClusterState]) -> None:
    node = situations["promotable"]["node"]
    assert node == "node1" and situations["promotable"]["after"]["promoted"] == ["node2"]
    lines = predicted("promotable-standby", mon("promotable"))
    assert [a.text() for a in lines] == [
        "app1 node1 -> node2",
        "probe-clone stopped on node1 due to node availability",
        "db-clone promoted on node2",
        "db-clone stopped on node1 (was Promoted) due to node availability",
        "db-front node1 -> node2",
    ]
    assert [a.document() for a in lines][:4] == [
        {"resource": "app1", "action": "move", "from": "node1", "to": "node2", "members": ["app1-ip", "app1-ct"],
         "role": None, "reason": None, "blocked": False, "text": "app1 node1 -> node2"},
        {"resource": "probe-clone", "action": "stop", "from": "node1", "to": None, "members": ["probe:1"],
         "role": None, "reason": "node availability", "blocked": False,
         "text": "probe-clone stopped on node1 due to node availability"},
        {"resource": "db-clone", "action": "promote", "from": "node2", "to": "node2", "members": ["db:0"],
         "role": None, "reason": None, "blocked": False, "text": "db-clone promoted on node2"},
        {"resource": "db-clone", "action": "stop", "from": "node1", "to": None, "members": ["db:1"],
         "role": "Promoted", "reason": "node availability", "blocked": False,
         "text": "db-clone stopped on node1 (was Promoted) due to node availability"},
    ]


def test_the_prediction_is_what_the_cluster_then_did(situations: dict[str, Any],
                                                      mon: Callable[[str], ClusterState]) -> None:
    before, after = mon("promotable"), mon("promotable-standby")
    for a in predicted("promotable-standby", before):
        if a.action == "move":
            assert after.running_on(a.resource) == {a.dest} and a.source in before.running_on(a.resource)
        elif a.action == "stop":
            assert a.source not in after.running_on(a.resource)
    promoted = {n for r in after.members("db-clone") if r.role == "Promoted" for n in r.nodes}
    assert promoted == {"node2"} == set(situations["promotable"]["after"]["promoted"])


def test_a_demote_and_a_promote_in_place(situations: dict[str, Any], mon: Callable[[str], ClusterState]) -> None:
    assert situations["promotable"]["demote"] == {"preferred": "node2"}
    lines = predicted("promotable-demote", mon("promotable"))
    assert [a.text() for a in lines] == ["db-clone promoted on node2", "db-clone demoted on node1",
                                         "db-front node1 -> node2"]
    assert [(a.source, a.dest, a.members) for a in lines[:2]] == [("node2", "node2", ("db:0",)),
                                                                  ("node1", "node1", ("db:1",))]


def test_earlier_captures_read_the_same_way(mon: Callable[[str], ClusterState]) -> None:
    assert [a.text() for a in predicted("standby-node1", mon("all-online"))] == [
        "app1 node1 -> node2", "probe-clone stopped on node1 due to node availability"]
    assert [a.text() for a in predicted("recover", mon("all-online"))] == ["app1 recovered on node1"]


def test_ids_fold_to_their_group_or_clone(mon: Callable[[str], ClusterState]) -> None:
    state = mon("promotable")
    assert [top_level(state, rid) for rid in ("app1-ct", "db:1", "db", "probe:0", "db-front", "gone:2")] == [
        "app1", "db-clone", "db-clone", "probe-clone", "db-front", "gone"]


def test_blocked_and_unknown_actions_are_said_plainly(mon: Callable[[str], ClusterState]) -> None:
    moves = [Move("Start", "app2-ip", None, "node3", "no quorum", True),
             Move("Start", "app2-ct", None, "node3", None, True),
             Move("Migrate", "db-front", "node1", "node2", None, False),
             Move("Frobnicate", "app3-ct", "node3", "node3", None, False)]
    assert [a.text() for a in actions(moves, mon("promotable"))] == [
        "app2 started on node3 due to no quorum (blocked)", "db-front node1 -> node2 (live migration)",
        "app3 frobnicate on node3"]
