"""Preflight refusals, on a CIB captured from the lab and read by Pacemaker's own tools (CIB_file)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from upgrader.config import Config
from upgrader.history import History
from upgrader.orchestrator.preflight import order
from upgrader.orchestrator.procedure import Refused, Rollout
from upgrader.orchestrator.remote import NodePlan
from upgrader.packages.plan import Change
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"


class Plans:
    """Node plans as `rolling-upgrade plan --local` would give them (no node is asked)."""

    local = "node1"

    def __init__(self, plans: dict[str, tuple[Change, ...]]) -> None:
        self.plans = plans

    def plan(self, node: str) -> NodePlan:
        return NodePlan(node, self.plans.get(node, ()))


class GoodProbes:
    def preflight(self) -> None:
        return None


class Quiet:
    def step(self, *args: Any) -> None:
        pass

    def progress(self, *args: Any) -> None:
        pass


def rollout(tmp_path: Path, plans: dict[str, tuple[Change, ...]]) -> tuple[Rollout, Path]:
    cib = tmp_path / "cib.xml"
    shutil.copy(CAPTURED, cib)
    cluster = Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))
    r = Rollout(cluster, Plans(plans), GoodProbes(), Config(), History(tmp_path / "h.jsonl"), Quiet(), "r1")  # type: ignore[arg-type]
    return r, cib


LIB = Change("demo-libfoo", "1", "2")
STACK = Change("pacemaker", "2.1.5-1", "2.1.5-2", security=True, ha_stack=True)


def test_an_upgrade_of_the_cluster_stack_is_planned_not_refused_and_preflight_changes_nothing(tmp_path: Path) -> None:
    r, cib = rollout(tmp_path, {"node1": (LIB,), "node2": (LIB, STACK), "node3": (LIB,)})
    before = cib.read_text()
    plans = r.preflight(None)
    assert [n for n, p in plans.items() if p.ha_stack] == ["node2"]  # its stack is stopped around it (restarts)
    assert list(plans) == ["node2", "node3", "node1"]
    assert cib.read_text() == before
    assert not (tmp_path / "h.jsonl").exists()


def test_unknown_node_names_are_refused_naming_the_cluster_nodes(tmp_path: Path) -> None:
    r, _ = rollout(tmp_path, {"node1": (LIB,)})
    with pytest.raises(Refused, match=r"unknown node\(s\) nodeX: the cluster has node1, node2, node3"):
        r.run(["nodeX"])


def test_order_is_standby_first_and_the_local_node_last(tmp_path: Path) -> None:
    r, _ = rollout(tmp_path, {})
    assert order(r.cluster.state(), r.nodes.local) == ["node2", "node3", "node1"]


def test_the_local_node_stays_last_in_standby_too_and_a_standby_peer_goes_first(tmp_path: Path) -> None:
    r, _ = rollout(tmp_path, {})
    r.cluster.set_standby("node1", True)  # the local node (it may reboot itself: that ends the run)
    r.cluster.set_standby("node3", True)
    assert order(r.cluster.state(), r.nodes.local) == ["node3", "node2", "node1"]


def test_a_node_a_stopped_run_left_drained_is_the_next_runs_to_bring_back_an_operators_is_kept(tmp_path: Path) -> None:
    """Every drain of ours marks the node (rolling-upgrade-waiting): a run that stopped before bringing it
    back leaves it to the next run, which tells it from a standby an operator chose."""
    from upgrader.runs import WAITING

    r, _ = rollout(tmp_path, {"node2": (LIB,), "node3": (LIB,)})
    r.cluster.set_standby("node2", True)
    r.cluster.set_attribute("node2", WAITING, "20261201T000000-node1-abcdef")  # as a drain of ours leaves it
    r.cluster.set_standby("node3", True)  # an operator's
    r.preflight(None)
    assert r.kept_in_standby == {"node3"}
