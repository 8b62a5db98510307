"""Preflight refusals, on a CIB captured from the lab and read by Pacemaker's own tools (CIB_file)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AheadNoted
from upgrader.config import Config
from upgrader.history import History
from upgrader.orchestrator.preflight import order
from upgrader.orchestrator.procedure import Refused, Rollout
from upgrader.orchestrator.remote import NodePlan
from upgrader.packages.plan import Change
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"


class Plans(AheadNoted):
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


def test_the_preflight_reads_the_cluster_status_once(tmp_path: Path) -> None:
    """One crm_mon for the facts, the nodes and the order (0.43 s a crm_mon at 120 applications)."""
    r, _ = rollout(tmp_path, {"node1": (LIB,), "node2": (LIB,), "node3": (LIB,)})
    asked: list[list[str]] = []
    call = r.cluster.runner.call

    def noting(argv: list[str], *args: Any, **kw: Any) -> Any:
        asked.append(list(argv))
        return call(argv, *args, **kw)

    r.cluster.runner.call = noting  # type: ignore[method-assign]
    assert list(r.preflight(None)) == ["node2", "node3", "node1"]
    assert [a for a in asked if a[0] == "crm_mon"] == [["crm_mon", "--one-shot", "--inactive", "--output-as=xml"]]


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


class Steps(Quiet):
    def __init__(self) -> None:
        self.lines: list[tuple[Any, ...]] = []

    def step(self, *args: Any) -> None:
        self.lines.append(args)


def test_the_selection_keeps_what_it_takes_and_says_what_it_left_out(tmp_path: Path) -> None:
    from upgrader.packages.choose import Selection

    security = Change("libssl3", "3.0.11-1", "3.0.15-1", security=True)
    r, _ = rollout(tmp_path, {"node2": (LIB, security), "node3": (LIB,)})
    r.selection = Selection(security_only=True)
    r.report = said = Steps()
    plans = r.preflight(None)
    assert plans["node2"].changes == (security,) and plans["node3"].changes == ()
    assert ("node2", "plan", "left out by the selection: 1 package(s): demo-libfoo (not a security update)") \
        in said.lines
    assert [c.package for c, _ in plans["node3"].skipped] == ["demo-libfoo"]


def test_crm_verify_errors_refuse_a_cluster_stack_upgrade_naming_them(tmp_path: Path) -> None:
    r, cib = rollout(tmp_path, {"node2": (LIB, STACK)})
    # The captured CIB, changed by Pacemaker's own tool: fencing on, and no fencing device defined.
    r.cluster.runner.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "true"])
    before = cib.read_text()
    with pytest.raises(Refused) as caught:
        r.preflight(None)
    said = str(caught.value)
    assert "crm_verify finds errors in the live CIB: " in said and "STONITH" in said, said
    assert said.endswith("nothing was changed")
    assert cib.read_text() == before
    (tmp_path / "plain").mkdir()
    r2, _ = rollout(tmp_path / "plain", {"node2": (LIB,)})
    r2.cluster.runner.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "true"])
    assert "node2" in r2.preflight(None)  # without the stack in the set, crm_verify is not asked


def test_update_refreshes_every_nodes_indexes_first_and_a_failure_refuses(tmp_path: Path) -> None:
    from dataclasses import replace

    from upgrader.runner import Result

    asked: list[tuple[str, tuple[str, ...]]] = []

    class Updating(Plans):
        def runner(self, node: str, timeout: float = 60) -> Any:
            class One:
                def call(self, argv: list[str]) -> Result:
                    asked.append((node, tuple(argv)))
                    code = 100 if node == "node3" else 0
                    return Result(tuple(argv), code, "", "E: Failed to fetch copy:/repo/Release" if code else "", 0.1)
            return One()

    r, _ = rollout(tmp_path, {"node2": (LIB,)})
    r.nodes = Updating({"node2": (LIB,)})  # type: ignore[assignment]
    r.config = replace(r.config, update=True)
    with pytest.raises(Refused, match=r"apt-get update failed on node3 \(E: Failed to fetch copy:/repo/Release\); "
                                      "nothing was changed"):
        r.preflight(None)
    assert sorted(asked) == [(n, ("apt-get", "update", "-q")) for n in ("node1", "node2", "node3")]


def test_a_run_after_an_interrupted_one_goes_on_with_its_package_set(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.orchestrator import staging
    from upgrader.packages import pkgset
    from upgrader.packages.pkgset import PackageSet, Pinned

    monkeypatch.setattr(pkgset, "SETS_DIR", tmp_path / "sets")
    interrupted = PackageSet((Pinned("demo-libfoo", "2"),))
    pkgset.save(interrupted)
    r, _ = rollout(tmp_path, {})
    r.report = said = Steps()
    plans = {"node2": NodePlan("node2", (Change("demo-libfoo", "1", "3"),)),  # published since: waits
             "node3": NodePlan("node3", (Change("demo-libfoo", "1", "1.5"),))}  # older than the set: lags
    lagging = staging.freeze(r, plans, resumed=interrupted.digest)
    assert r.package_set == interrupted and list(lagging) == ["node3"]
    assert (None, "plan", f"going on with the interrupted run's package set: {interrupted.summary()}") in said.lines
    gone = staging.freeze(r, plans, resumed="0123456789abcdef")  # not kept here: a new set
    assert r.package_set.versions == {"demo-libfoo": "3"} and list(gone) == ["node3"]
    assert any("the interrupted run's package set is not used: package set 0123456789abcdef is not on this node"
               in line[2] for line in said.lines)
