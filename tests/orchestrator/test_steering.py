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


def created_constraint(rec: Recorder) -> ET.Element:
    create = next(c for c in rec.calls if "--create" in c)
    return ET.fromstring(next(a for a in create if a.startswith("--xml-text="))[len("--xml-text="):])


def test_fail_over_prefers_nodes_patched_in_this_run() -> None:
    rec = Recorder()
    steering.prefer(Cluster(rec), "app1", "20261122T0100-node1-abc", patched=True)
    el = created_constraint(rec)
    assert el.get("id") == "rolling-upgrade-prefer-app1" and el.get("rsc") == "app1"
    rule = el.find("rule")
    assert rule is not None and rule.get("score") == "INFINITY"  # a preference, never a -INFINITY ban
    expr = rule.find("expression")
    assert expr is not None
    assert (expr.get("attribute"), expr.get("operation"), expr.get("value")) == (
        "rolling-upgrade-patched", "eq", "20261122T0100-node1-abc")
    # the old constraint is removed first, so a retry never trips over "already exists"
    assert any("--delete" in c for c in rec.calls[: rec.calls.index(next(c for c in rec.calls if "--create" in c))])


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
