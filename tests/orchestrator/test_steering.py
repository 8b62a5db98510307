"""What a run writes into the CIB: validated ids, a preference never a ban."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from upgrader.orchestrator import steering
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.names import BadValue
from upgrader.runner import Result, Runner


class Recorder(Runner):
    """Records argv instead of running it: these tests check what would be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
        self.calls.append(list(argv))
        return Result(tuple(argv), 0, "", "", 0.0)


def created_constraints(rec: Recorder) -> list[ET.Element]:
    """The constraints the one ``cibadmin --modify --scope constraints`` adds."""
    update = next(c for c in rec.calls if "--modify" in c)
    assert update[update.index("--scope") + 1] == "constraints"
    return list(ET.fromstring(next(a for a in update if a.startswith("--xml-text="))[len("--xml-text="):]))


def created_constraint(rec: Recorder) -> ET.Element:
    return created_constraints(rec)[0]


def test_fail_over_prefers_nodes_patched_in_this_run() -> None:
    rec = Recorder()
    steering.prefer(Cluster(rec), "app1", "20261122T0100-node1-abc", patched=True)
    el = created_constraint(rec)
    assert el.get("id") == "rolling-upgrade-prefer-app1" and el.get("rsc") == "app1"
    rule = el.find("rule")
    assert rule is not None and rule.get("score") == "100000"  # a preference, never a -INFINITY ban
    expr = rule.find("expression")
    assert expr is not None
    assert (expr.get("attribute"), expr.get("operation"), expr.get("value")) == (
        "rolling-upgrade-patched", "eq", "20261122T0100-node1-abc")
    # the old constraint is removed first, so a retry never trips over "already exists"
    assert any("--delete-all" in c for c in rec.calls[: rec.calls.index(next(c for c in rec.calls if "--modify" in c))])


def test_fail_back_prefers_nodes_without_the_mark() -> None:
    rec = Recorder()
    steering.prefer(Cluster(rec), "app1", "r1", patched=False)
    expr = created_constraint(rec).find("rule/expression")
    assert expr is not None and expr.get("operation") == "not_defined" and expr.get("value") is None


@pytest.mark.parametrize("rid", ["app1']", "a b", "", "x\"y", "../z"])
def test_resource_ids_that_could_break_xpath_or_xml_are_refused(rid: str) -> None:
    rec = Recorder()
    with pytest.raises(BadValue, match="invalid resource id"):
        steering.prefer(Cluster(rec), rid, "r1", patched=True)
    assert rec.calls == []


def test_a_target_among_the_patched_nodes_adds_to_the_finite_patched_preference() -> None:
    rec = Recorder()
    steering.prefer(Cluster(rec), "app1", "r1", patched=True, target="node3")
    main, target = created_constraints(rec)
    assert int(main.find("rule").get("score")) > int(target.get("score")) > 0  # type: ignore[union-attr]
    assert main.find("rule").get("score") != "INFINITY"  # INFINITY + 1000 would still be INFINITY: no tie-break
    assert (target.get("id"), target.get("rsc"), target.get("node")) == ("rolling-upgrade-prefer-app1-target", "app1", "node3")
    # both go with the resource's preference (and clean_up finds both by the prefix)
    delete = next(c for c in rec.calls if "--delete-all" in c)
    assert "rolling-upgrade-prefer-app1-target" in delete[-1] and "'rolling-upgrade-prefer-app1'" in delete[-1]


def test_fail_back_takes_no_target() -> None:
    rec = Recorder()
    steering.prefer(Cluster(rec), "app1", "r1", patched=False, target="node3")
    assert [c.get("id") for c in created_constraints(rec)] == ["rolling-upgrade-prefer-app1"]


def test_spread_sends_each_resource_to_the_node_running_least_so_far() -> None:
    assert steering.spread(("app1",), {"node2": 2, "node3": 0}) == {"app1": "node3"}
    assert steering.spread(("a", "b", "c"), {"node2": 1, "node3": 0}) == {"a": "node3", "b": "node2", "c": "node3"}
    assert steering.spread(("a",), {}) == {}


def test_clean_up_never_puts_a_hostile_constraint_id_into_an_xpath() -> None:
    hostile = "rolling-upgrade-prefer-x' or @id!='"

    class Answers(Recorder):
        def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
            self.calls.append(list(argv))
            out = (f'<constraints><rsc_location id="{hostile.replace(chr(39), "&apos;")}" rsc="app2" node="node2" '
                   'score="100"/><rsc_location id="cli-ban-app2-on-node2" rsc="app2" node="node2" score="-INFINITY"/>'
                   '</constraints>') if "--query" in argv else ""
            return Result(tuple(argv), 0, out, "", 0.0)

    rec = Answers()
    with pytest.raises(RuntimeError, match="will not put into an XPath"):
        steering.clean_up(Cluster(rec), ["node1"])
    assert not [c for c in rec.calls if "--delete" in c or "--delete-all" in c]  # the operator's cli-ban-app2-on-node2 is untouched


def test_clean_up_drops_the_waiting_mark_of_a_node_back_online_and_keeps_a_drained_ones(tmp_path) -> None:
    """On a CIB captured from the lab, through Pacemaker's own tools (CIB_file)."""
    import shutil
    from pathlib import Path

    from upgrader.runs import PATCHED, WAITING

    cib = tmp_path / "cib.xml"
    shutil.copy(Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml", cib)
    cluster = Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))
    cluster.set_attribute("node2", WAITING, "run-1")  # brought online by hand since
    cluster.set_standby("node3", True)
    cluster.set_attribute("node3", WAITING, "run-1")  # still drained: the next run brings it back
    cluster.set_attribute("node1", PATCHED, "run-1")
    removed = steering.clean_up(cluster, ["node1", "node2", "node3"])
    assert removed == [f"{PATCHED} on node1", f"{WAITING} on node2 (online again)"]
    assert cluster.get_attribute("node2", WAITING) is None and cluster.get_attribute("node3", WAITING) == "run-1"


def test_a_drain_of_many_resources_is_two_cib_writes_and_its_end_one(tmp_path) -> None:
    """Each CIB write makes Pacemaker compute a transition: 40 resources steered cost 2 writes, not 120; on a
    CIB captured from the lab, through Pacemaker's own tools (CIB_file)."""
    import shutil
    from pathlib import Path

    cib = tmp_path / "cib.xml"
    shutil.copy(Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml", cib)
    real = Runner(env={"CIB_file": str(cib)}, timeout=30)

    class Counting(Runner):
        def __init__(self) -> None:
            super().__init__(env={"CIB_file": str(cib)}, timeout=30)
            self.writes: list[str] = []

        def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
            if argv[0] == "cibadmin" and "--query" not in argv:
                self.writes.append(argv[1])
            return real.call(argv, timeout=timeout, input=input, cwd=cwd)

    runner = Counting()
    cluster = Cluster(runner)
    resources = ET.parse(cib).getroot().find("configuration/resources")
    rids = [el.get("id", "") for el in resources.iter() if el.tag in ("primitive", "group", "clone")]  # type: ignore[union-attr]
    assert len(rids) >= 6
    half = len(rids) // 2
    steering.prefer_all(cluster, rids, "r1", patched=True, targets={rid: "node2" for rid in rids[:half]})
    assert runner.writes == ["--delete-all", "--modify"]  # however many: two writes
    assert len(steering.our_constraints(cluster)) == len(rids) + half  # a preference each, and the targets
    steering.prefer_all(cluster, rids[:2], "r1", patched=False)  # again: replaced, never "already exists"
    assert len(steering.our_constraints(cluster)) == len(rids) + half - 2  # a fail back takes no target
    runner.writes.clear()
    steering.drop_all(cluster, rids)
    assert runner.writes == ["--delete-all"] and steering.our_constraints(cluster) == []


def test_clean_up_and_quarantine_readings_take_one_command_whatever_the_nodes(tmp_path) -> None:
    """Every node's patched mark removed in one CIB write and every node's quarantine read in one query; on
    a CIB captured from the lab, through Pacemaker's own tools (CIB_file)."""
    import shutil
    from pathlib import Path

    from upgrader.runs import PATCHED, QUARANTINE

    cib = tmp_path / "cib.xml"
    shutil.copy(Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml", cib)
    real = Runner(env={"CIB_file": str(cib)}, timeout=30)
    cluster = Cluster(real)
    for node in ("node1", "node2", "node3"):
        cluster.set_attribute(node, PATCHED, "run-1")
    cluster.set_attribute("node2", QUARANTINE, "run run-1 at 2026-12-03T09:00:00Z")

    class Counting(Runner):
        def __init__(self) -> None:
            super().__init__(env={"CIB_file": str(cib)}, timeout=30)
            self.calls: list[list[str]] = []

        def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
            self.calls.append(list(argv))
            return real.call(argv, timeout=timeout, input=input, cwd=cwd)

    counted = Counting()
    assert steering.quarantined(Cluster(counted), ["node1", "node2", "node3"]) == {
        "node2": "run run-1 at 2026-12-03T09:00:00Z"}
    assert len(counted.calls) == 1
    assert steering.quarantined(Cluster(counted), ["node2"]) == {"node2": "run run-1 at 2026-12-03T09:00:00Z"}
    counted.calls.clear()
    assert steering.clean_up(Cluster(counted), ["node1", "node2", "node3"]) == [
        f"{PATCHED} on node1", f"{PATCHED} on node2", f"{PATCHED} on node3"]
    writes = [c for c in counted.calls if "--query" not in c]
    assert len(writes) == 1 and writes[0][:3] == ["cibadmin", "--delete-all", "--force"]
    assert [cluster.get_attribute(n, PATCHED) for n in ("node1", "node2", "node3")] == [None, None, None]
    assert cluster.get_attribute("node2", QUARANTINE) is not None  # a quarantine outlives the run
