"""What standby does to each kind of resource, on crm_mon XML and crm_simulate output captured from the lab
(a promotable clone, a plain clone, groups, a primitive colocated with the Promoted role)."""

from __future__ import annotations

from pathlib import Path

from upgrader.orchestrator.moves import came_back
from upgrader.pacemaker import shapes
from upgrader.pacemaker.simulate import parse_transition_summary
from upgrader.pacemaker.state import parse_crm_mon

DATA = Path(__file__).parent / "data"
BEFORE = parse_crm_mon((DATA / "crm_mon-promotable.xml").read_text())
AFTER = parse_crm_mon((DATA / "crm_mon-promotable-standby.xml").read_text())  # node1 in standby, settled
STANDBY = parse_transition_summary((DATA / "crm_simulate-promotable-standby.txt").read_text())


def test_a_standby_moves_groups_and_primitives_and_stops_clone_instances() -> None:
    assert [(c.id, c.kind, c.promotable) for c in BEFORE.collections] == [
        ("probe-clone", "clone", False), ("db-clone", "clone", True)]
    assert shapes.movable_on(BEFORE, "node1") == ("app1", "db-front")
    assert shapes.instances_on(BEFORE, "node1") == ("probe-clone", "db-clone")
    assert shapes.unmanaged_on(BEFORE, "node1") == () and shapes.bundles(BEFORE) == ()


def test_the_promoted_role_moves_with_the_drain() -> None:
    assert shapes.promoted(BEFORE, "db-clone") == {"node1"}
    assert shapes.promoted(AFTER, "db-clone") == {"node2"}
    assert shapes.taken_down(BEFORE, AFTER, "node1", ("app1", "db-front"), ("probe-clone", "db-clone")) == []


def test_a_clone_instance_stopping_on_the_drained_node_is_no_stop_instead_of_a_move() -> None:
    stops = [m.resource for m in STANDBY if m.action == "Stop"]
    assert stops == ["probe:1", "db:1"]  # the captured prediction does stop both instances on node1
    assert shapes.stops_instead_of_moving(BEFORE, "node1", STANDBY) == []


def test_a_drain_that_lost_a_resource_or_the_promoted_role_says_what_it_took_down() -> None:
    # What the same drain would have left had app1 and the Promoted role found no other node: the "before"
    # reading standing in for the "after" of the drained node, with node1's entries gone.
    lost_state = parse_crm_mon((DATA / "crm_mon-promotable.xml").read_text().replace(
        '<node name="node1" id="1" cached="true"/>', ""))
    assert shapes.taken_down(BEFORE, lost_state, "node1", ("app1",), ("db-clone",)) == [
        "app1 runs nowhere (it ran on node1)", "db-clone has 0 Promoted instance(s), it had 1"]


def test_a_drain_that_took_down_what_ran_on_another_node_says_so() -> None:
    # The drain of node1 as above, but node2's entries gone too: app2 and node2's clone instances stopped there.
    lost_state = parse_crm_mon((DATA / "crm_mon-promotable-standby.xml").read_text().replace(
        '<node name="node2" id="2" cached="true"/>', ""))
    assert shapes.taken_down(BEFORE, lost_state, "node1", ("app1", "db-front"), ("probe-clone", "db-clone")) == [
        "app1 runs nowhere (it ran on node1)", "db-front runs nowhere (it ran on node1)",
        "app2 runs nowhere (it ran on node2; the drain of node1 took it down)",
        "probe-clone stopped on node2 too", "db-clone stopped on node2 too",
        "db-clone has 0 Promoted instance(s), it had 1"]


def test_a_stop_of_something_that_is_not_a_clone_instance_is_named_with_the_clusters_reason() -> None:
    moves = tuple(m for m in STANDBY if m.resource != "app1-ip")  # a group member's stop folds into the group
    pinned = parse_transition_summary((DATA / "crm_simulate-promotable-standby.txt").read_text().replace(
        "* Move       app1-ct     (               node1 -> node2 )",
        "* Stop       app1-ct     (                        node1 )  due to node availability"))
    assert [m.action for m in pinned if m.resource == "app1-ct"] == ["Stop"]
    assert shapes.stops_instead_of_moving(BEFORE, "node1", pinned) == [
        "app1 would be stopped, not moved (node availability)"]
    assert shapes.stops_instead_of_moving(BEFORE, "node1", moves) == []


def test_fail_over_waits_only_for_what_pacemaker_moves_back() -> None:
    # Coming out of standby, per the prediction (captured the other way round: what standby moves away
    # is what the node's return would bring back when nothing keeps it elsewhere).
    back = parse_transition_summary((DATA / "crm_simulate-promotable-standby.txt").read_text())
    assert came_back(BEFORE, ["app1", "db-front", "app3"], back, {"node2"}) == ["app1", "db-front"]
    assert came_back(BEFORE, ["app1", "db-front", "app3"], back, {"node3"}) == []  # not onto these nodes


def test_check_reports_where_a_clone_runs_and_where_a_promotable_one_is_promoted() -> None:
    from upgrader.health.live import _collection_row

    plain, promotable = _collection_row(BEFORE, "probe-clone"), _collection_row(BEFORE, "db-clone")
    assert plain.ok and plain.note == "Started on node1, node2, node3"
    assert promotable.ok and promotable.note == "Started on node1, node2, node3; Promoted on node1"
    after = _collection_row(AFTER, "db-clone")
    assert after.ok and after.note == "Started on node2, node3; Promoted on node2"


def test_plan_names_what_a_run_leaves_alone() -> None:
    # The captured promotable situation has none: nothing unmanaged, stopped on purpose, or a bundle
    # (the mixed lab profile has each: tests/lab/test_real_clusters.py checks plan's notes there).
    assert shapes.left_alone(BEFORE) == []
