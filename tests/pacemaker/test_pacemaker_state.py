"""crm_mon XML captured from the lab (capture.py), parsed into typed values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pytest

from upgrader.pacemaker.live import Preflight, in_flight, placement
from upgrader.pacemaker.state import INFINITY, ClusterState, ParseError, parse_crm_mon

Mon = Callable[[str], ClusterState]
APPS = ("app1", "app2", "app3")


def placed(state: ClusterState) -> dict[str, list[str]]:
    return {rid: sorted(state.running_on(rid)) for rid in state.top_level_ids()}


def test_all_online(mon: Mon, situations: dict[str, Any]) -> None:
    state = mon("all-online")
    assert [n.name for n in state.nodes] == ["node1", "node2", "node3"]
    assert all(n.online and not (n.standby or n.maintenance or n.pending or n.unclean or n.shutdown) for n in state.nodes)
    assert [n.name for n in state.nodes if n.is_dc] == [state.summary.dc] == [situations["all-online"]["dc"]]
    assert state.summary.quorum and state.summary.stack == "corosync"
    assert state.summary.stonith_enabled is False and state.summary.maintenance_mode is False
    assert state.top_level_ids() == (*APPS, "probe-clone")
    assert placed(state) == situations["all-online"]["placement"]
    assert sorted(state.running_on("probe-clone")) == ["node1", "node2", "node3"]
    assert state.failures == () and state.bans == () and in_flight(state) == []
    assert sum(n.resources_running for n in state.nodes) == sum(len(r.nodes) for r in state.resources if r.running)


def test_groups_keep_their_members_in_order(mon: Mon) -> None:
    members = mon("all-online").members("app1")
    assert [(r.id, r.agent, r.group) for r in members] == [
        ("app1-ip", "ocf:heartbeat:IPaddr2", "app1"),
        ("app1-ct", "ocf:heartbeat:lxc", "app1"),
    ]
    assert all(r.running and r.managed and not r.failed for r in members)


def test_clone_instances_share_the_primitive_id(mon: Mon) -> None:
    instances = mon("all-online").members("probe-clone")
    assert {r.id for r in instances} == {"probe"} and {r.clone for r in instances} == {"probe-clone"}
    assert sorted(n for r in instances for n in r.nodes) == ["node1", "node2", "node3"]


def test_standby_node_is_drained(mon: Mon, situations: dict[str, Any]) -> None:
    node = situations["standby"]["node"]
    state = mon(f"standby-{node}")
    standby = state.node(node)
    assert standby is not None and standby.standby and standby.online and standby.resources_running == 0
    assert placed(state) == situations["standby"]["placement"]
    assert all(node not in state.running_on(app) for app in (*APPS, "probe-clone"))
    assert Preflight.from_state(state, ()).standby == (node,)


def test_group_moving_counts_nothing_in_flight_as_running(mon: Mon) -> None:
    state = mon("group-moving")
    busy = state.busy()
    assert busy, "the capture shows a resource in flight"
    assert not any(r.running for r in busy)
    assert in_flight(state)
    for r in busy:
        group = r.group or r.id
        assert all(n not in state.running_on(group) for n in r.nodes)


def test_failed_action(mon: Mon, situations: dict[str, Any]) -> None:
    facts = situations["failed-action"]
    state = mon("failed-action")
    failure = next(f for f in state.failures if f.resource == facts["resource"])
    assert failure.node == facts["node"] and failure.task == "monitor" and failure.exitcode != 0
    assert failure.op_key.startswith(f"{facts['resource']}_monitor_")
    assert placed(state) == facts["placement"]
    problems = Preflight.from_state(state, ()).problems()
    assert any(failure.op_key in p and "crm_resource --cleanup" in p for p in problems)


def test_ban(mon: Mon, situations: dict[str, Any]) -> None:
    facts = situations["ban"]
    state = mon("ban")
    assert [(b.id, b.resource, b.node, b.from_cli) for b in state.bans] == [
        (f"cli-ban-{facts['resource']}-on-{facts['node']}", facts["resource"], facts["node"], True)
    ]
    assert state.bans[0].weight < 0
    assert facts["node"] not in state.running_on(facts["resource"])


def test_node_offline(mon: Mon, situations: dict[str, Any]) -> None:
    facts = situations["node3-offline"]
    state = mon("node3-offline")
    node3 = state.node("node3")
    assert node3 is not None and not node3.online and node3.resources_running == 0
    assert state.summary.quorum, "two of three nodes keep quorum"
    assert placed(state) == facts["placement"]
    assert Preflight.from_state(state, ()).offline == ("node3",)
    assert "nodes offline: node3" in Preflight.from_state(state, ()).problems()


def test_placement_check_names_what_is_wrong(mon: Mon, situations: dict[str, Any]) -> None:
    state = mon("all-online")
    where = situations["all-online"]["placement"]["app1"][0]
    other = next(n for n in ("node1", "node2", "node3") if n != where)
    assert placement({"app1": where})(state) == []
    assert placement({"app1": other, "nope": where})(state) == [
        f"app1 runs on {where}, expected {other}",
        "no resource, group or clone called 'nope' in the cluster",
    ]


def test_unknown_resource_is_a_key_error(mon: Mon) -> None:
    with pytest.raises(KeyError, match="no resource, group or clone called 'app9'"):
        mon("all-online").running_on("app9")


def test_not_crm_mon_output_is_a_clear_error() -> None:
    cib = (Path(__file__).parent / "data" / "cib-all-online.xml").read_text()
    with pytest.raises(ParseError, match="no <summary> or <nodes>"):
        parse_crm_mon(cib)
    with pytest.raises(ParseError, match="not XML"):
        parse_crm_mon("crm_mon: Connection to cluster failed: Connection refused")


def test_no_fail_count_when_nothing_failed(mon: Mon) -> None:
    for situation in ("all-online", "standby-node1", "group-moving", "ban", "node3-offline"):
        state = mon(situation)
        assert state.fail_counts == () and state.fail_count_map() == {}, situation
        assert state.fail_count("app1-ct", "node1") == 0


def test_a_failed_monitor_leaves_a_fail_count_of_one(mon: Mon, situations: dict[str, Any]) -> None:
    facts = situations["failed-action"]
    state = mon("failed-action")
    assert [(f.resource, f.node, f.count, f.infinite) for f in state.fail_counts] == [
        (facts["resource"], facts["node"], 1, False)]
    count = state.fail_counts[0]
    assert count.migration_threshold == INFINITY  # Pacemaker's default
    assert count.last_failure and count.last_failure.endswith("2026")  # as crm_mon prints it, e.g. "Sun Nov 22 ..."
    assert state.fail_count(facts["resource"], facts["node"]) == 1
    assert state.fail_count(facts["resource"], "node1" if facts["node"] != "node1" else "node2") == 0
    assert state.fail_count_map() == {(facts["resource"], facts["node"]): 1}


def test_a_failed_start_leaves_an_infinite_fail_count_and_the_resource_recovered_elsewhere(
        mon: Mon, situations: dict[str, Any]) -> None:
    facts = situations["start-failed"]
    state = mon("start-failed")
    assert [(f.resource, f.node, f.count, f.infinite) for f in state.fail_counts] == [
        (facts["resource"], facts["node"], INFINITY, True)]
    failure = next(f for f in state.failures if f.resource == facts["resource"])
    assert (failure.node, failure.task, failure.op_key) == (facts["node"], "start", f"{facts['resource']}_start_0")
    assert placed(state) == facts["placement"]
    assert facts["node"] not in state.running_on(facts["resource"]) and state.running_on(facts["resource"])


def test_infinity_spelled_out_is_the_same_fail_count() -> None:
    # Pacemaker 2.1.5 prints the capped number; other versions print the word. Same capture, both spellings.
    text = (Path(__file__).parent / "data" / "crm_mon-start-failed.xml").read_text()
    assert 'fail-count="1000000"' in text
    for spelled in ("INFINITY", "+INFINITY", "2000000"):
        state = parse_crm_mon(text.replace('fail-count="1000000"', f'fail-count="{spelled}"'))
        assert [(f.count, f.infinite) for f in state.fail_counts] == [(INFINITY, True)], spelled


def test_a_fail_count_that_is_not_a_score_is_a_clear_error() -> None:
    text = (Path(__file__).parent / "data" / "crm_mon-failed-action.xml").read_text()
    with pytest.raises(ParseError, match=r"fail-count of 'app3-ct' on 'node3' as 'lots': not a Pacemaker score"):
        parse_crm_mon(text.replace('fail-count="1"', 'fail-count="lots"'))


DATA = Path(__file__).parent / "data"


def captured_with(situation: str, old: str, new: str) -> str:
    """A captured crm_mon XML with one attribute value changed (as a hostile or broken cluster would show it)."""
    text = (DATA / f"crm_mon-{situation}.xml").read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("name", ["-oProxyCommand=touch /tmp/PWNED", "node9' or @id!='", "a;b"])
def test_a_node_name_that_could_become_an_option_or_syntax_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_crm_mon(captured_with("all-online", 'name="node3"', f'name="{name}"'))
    assert str(caught.value).startswith(f"the cluster lists a node upgrader refuses to act on: invalid node name {name!r}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("old, new, says", [
    ('resources_running="', 'resources_running="x', "a node's resources_running as 'x"),
    ('nodes_configured number="3"', 'nodes_configured number="three"', "nodes_configured as 'three'"),
])
def test_non_integers_where_crm_mon_has_integers_are_one_line_parse_errors(old: str, new: str, says: str) -> None:
    with pytest.raises(ParseError, match=re.escape(says)):
        parse_crm_mon(captured_with("all-online", old, new))


def test_a_non_integer_failure_exit_code_or_ban_weight_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="a failure's exitcode as 'one1'"):
        parse_crm_mon(captured_with("failed-action", 'exitcode="', 'exitcode="one'))
    with pytest.raises(ParseError, match="weight as 'heavy"):
        parse_crm_mon(captured_with("ban", 'weight="', 'weight="heavy'))


@pytest.mark.parametrize("situation", sorted(p.name[len("crm_mon-"):-len(".xml")]
                                             for p in (Path(__file__).parent / "data").glob("crm_mon-*.xml")))
def test_members_by_id_are_those_every_primitive_answers_to(mon: Mon, situation: str) -> None:
    """The one-pass index gives, for every id crm_mon shows (a primitive's, its group's, its clone's, a cloned
    group's without its instance number), exactly the primitives naming it, in crm_mon's order."""
    state = mon(situation)
    ids = {i for r in state.resources for i in (r.id, r.group, r.clone, r.group and r.group.split(":")[0]) if i}
    assert ids, situation
    for rid in ids:
        expected = tuple(r for r in state.resources
                         if rid in (r.id, r.group, r.clone, r.group and r.group.split(":")[0]))
        assert state.members(rid) == expected, (situation, rid)
    assert state.members("no-such-resource") == ()
