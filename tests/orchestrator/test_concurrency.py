"""Rolling-Upgrade::Concurrency: the next nodes drained and upgraded together when crm_simulate says the
others hold everything; each node verified on its own; a fail back on one stops the run once the others
finished. The cluster is scripted: resources move off a node in standby onto the online node running
least, and come home when their node is back online (as the run's preference for patched nodes makes them).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping

import pytest

from tests.helpers import AheadNoted, drained_together, write_node_attributes
from upgrader.config import Config, ConfigError, load
from upgrader.health.outage import Address
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.history import History
from upgrader.orchestrator import batches, holding, staging
from upgrader.orchestrator.context import NodeResult
from upgrader.orchestrator.outcome import Outcome
from upgrader.orchestrator.procedure import Rollout
from upgrader.orchestrator.remote import ApplyResult, NodePlan
from upgrader.packages.plan import Change
from upgrader.pacemaker.quorum import Votes, parse_quorumtool
from upgrader.pacemaker.simulate import Move as Predicted
from upgrader.pacemaker.state import ClusterState, Node, Resource, Summary
from upgrader.pacemaker.utilization import Utilization, parse as parse_utilization, shortfall
from upgrader.runner import Result
from upgrader.runs import PATCHED, WAITING

RUN = "20261201T020000-node1-abcdef"
LIB = Change("demo-libfoo", "1", "2")
STACK = Change("pacemaker", "2.1.5-1", "2.1.5-2", security=True, ha_stack=True)


class Recorder:
    """The cluster's runner: cibadmin calls (our preferences) recorded, every one succeeds; a reading of the
    nodes' section (the clean-up's) shows ``cluster``'s standbys and marks."""

    def __init__(self, cluster: Scripted) -> None:
        self.calls: list[list[str]] = []
        self.cluster = cluster

    def run(self, argv, **_: Any) -> Result:
        self.calls.append(list(argv))
        if argv[:4] == ["cibadmin", "--query", "--scope", "nodes"]:
            return Result(tuple(argv), 0, self.nodes_section(), "", 0.0)
        return Result(tuple(argv), 0, "<constraints/>", "", 0.0)

    def nodes_section(self) -> str:
        nodes = ET.Element("nodes")
        for i, n in enumerate(self.cluster.names, 1):
            attrs = {name: v for (node, name), v in self.cluster.marks.items() if node == n}
            attrs |= {"standby": "on"} if n in self.cluster.standby else {}
            entry = ET.SubElement(ET.SubElement(nodes, "node", id=str(i), uname=n), "instance_attributes",
                                  id=f"nodes-{i}")
            for name, value in sorted(attrs.items()):
                ET.SubElement(entry, "nvpair", id=f"nodes-{i}-{name}", name=name, value=value)
        return ET.tostring(nodes, encoding="unicode")


class Scripted:
    """A cluster of ``nodes`` with one application each (``app1`` on node1, ...)."""

    def __init__(self, nodes: int = 5, stops: Mapping[frozenset[str], list[str]] | None = None,
                 votes: Votes | Exception | None = None, util: Utilization = Utilization()) -> None:
        self.names = [f"node{i}" for i in range(1, nodes + 1)]
        self.home = {f"app{i}": f"node{i}" for i in range(1, nodes + 1)}
        self.where = dict(self.home)
        self.standby: set[str] = set()
        self.marks: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.firsts: list[ClusterState | None] = []
        self.stops = dict(stops or {})
        self._votes = votes
        self.util = util
        self.runner = Recorder(self)
        self.lock = threading.Lock()

    def state(self, timeout: float | None = None) -> ClusterState:
        summary = Summary("corosync", "node1", "2.1.5", True, False, len(self.names), len(self.where), True, False,
                          "stop")
        nodes = tuple(Node(n, str(i), True, n in self.standby, False, False, False, False, False, n == "node1",
                           sum(w == n for w in self.where.values()), "member") for i, n in enumerate(self.names, 1))
        resources = tuple(Resource(rid, "ocf:heartbeat:Dummy", "Started", None, True, False, True, False, False, "",
                                   (where,)) for rid, where in self.where.items())
        return ClusterState(summary, nodes, resources, (), ())

    def set_standby(self, node: str, on: bool) -> None:
        with self.lock:
            self.calls.append(("standby", node, on))
            if on:
                self.standby.add(node)
                for rid, where in sorted(self.where.items()):
                    if where == node:
                        fit = [n for n in self.names if n not in self.standby]
                        self.where[rid] = min(fit, key=lambda n: (sum(w == n for w in self.where.values()), n))
            else:
                self.standby.discard(node)
                for rid, home in self.home.items():
                    if home == node:
                        self.where[rid] = node

    def set_attribute(self, node: str, name: str, value: str, lifetime: str = "forever") -> None:
        self.marks[(node, name)] = value

    def set_node_attributes(self, values: Mapping[str, Mapping[str, str]]) -> None:
        """One CIB write (recorded as one call), then each standby as Pacemaker's one transition applies it."""
        with self.lock:
            self.calls.append(("write", {n: dict(a) for n, a in values.items()}))
        write_node_attributes(self, values)

    def delete_node_attributes(self, nodes: Any, name: str) -> None:
        nodes = list(nodes)
        with self.lock:
            self.calls.append(("delete", tuple(nodes), name))
        for node in nodes:
            self.marks.pop((node, name), None)

    def get_attribute(self, node: str, name: str, lifetime: str = "forever") -> str | None:
        return self.marks.get((node, name))

    def delete_attribute(self, node: str, name: str, lifetime: str = "forever") -> None:
        self.marks.pop((node, name), None)

    def wait_settled(self, expect: object = None, *, deadline: float, interval: float | None = None,
                     first: ClusterState | None = None) -> ClusterState:
        self.calls.append(("settled",))
        self.firsts.append(first)  # a state the caller had just read (its first poll's), or None
        return self.state()

    def predict_standbys(self, standby: Mapping[str, bool], prepare: Any = None) -> tuple[Predicted, ...]:
        self.calls.append(("predict", tuple(sorted(standby)), all(standby.values())))
        if prepare is not None:  # what the prediction's CIB copy is given: the nodes it marks patched
            cib = ET.fromstring(f"<cib><configuration>{self.runner.nodes_section()}</configuration></cib>")
            prepare(cib)
            self.calls.append(("prepared", tuple(sorted(n.get("uname", "") for n in cib.iter("node")
                                                        if n.find(f"*/nvpair[@name='{PATCHED}']") is not None))))
        if not all(standby.values()):  # coming back: their own come home
            return tuple(Predicted("Move", rid, self.where[rid], home, None, False)
                         for rid, home in self.home.items() if home in standby and self.where[rid] != home)
        down = next((rids for nodes, rids in self.stops.items() if nodes <= set(standby)), [])
        return tuple(Predicted("Stop", rid, self.where.get(rid), None, "node availability", False) for rid in down)

    def predict_standby(self, node: str, standby: bool = True) -> tuple[Predicted, ...]:
        return self.predict_standbys({node: standby})

    def votes(self) -> Votes:
        if isinstance(self._votes, Exception):
            raise self._votes
        return self._votes or Votes(len(self.names) // 2 + 1, dict.fromkeys(self.names, 1), ("Quorate",))

    def utilization(self) -> Utilization:
        return self.util


class Checks:
    """Healthy everywhere but on ``bad`` nodes (their packages broke what runs there)."""

    def __init__(self, cluster: Scripted, bad: set[str] | None = None) -> None:
        self.cluster, self.bad = cluster, bad or set()

    def preflight(self) -> None: ...

    def baseline(self, state: ClusterState | None = None) -> Any:
        return state if state is not None else self.cluster.state(), None

    def verify(self, moved: Mapping[str, str], baseline: Any, first: Any = None) -> HealthReport:
        return HealthReport(tuple(CheckResult(rid, where, Level.APPLICATION, "probe", ok=where not in self.bad,
                                              error=None if where not in self.bad else "HTTP 500")
                                  for rid, where in moved.items()), 0.1)

    def addresses(self, rids: Iterable[str]) -> dict[str, list[Address]]:
        return {}  # no probe on an address: no outage watch (a test that watches sets its own)


class Nodes(AheadNoted):
    """Each node's upgrade takes ``seconds``; the times each ran are kept (they overlap in a batch)."""

    local, tool = "node1", "/usr/sbin/rolling-upgrade"

    def __init__(self, seconds: float = 0.2, fail: set[str] | None = None) -> None:
        self.seconds, self.fail = seconds, fail or set()
        self.spans: dict[str, tuple[float, float]] = {}

    def apply(self, node: str, run_id: str, on_event: Any, timeout: float = 3600,
              set_digest: str | None = None) -> ApplyResult:
        start = time.monotonic()
        on_event({"stage": "install", "percent": 50.0, "text": f"installing on {node}"})
        time.sleep(self.seconds)
        self.spans[node] = (start, time.monotonic())
        if node in self.fail:
            return ApplyResult(False, error="dpkg: error processing package demo-libfoo (--configure)")
        return ApplyResult(True, changes=(LIB,), seconds=self.seconds)


class Said:
    def __init__(self) -> None:
        self.lines: list[tuple[str | None, str, str]] = []

    def step(self, node, phase, text) -> None:
        self.lines.append((node, phase, text))

    def progress(self, node, event) -> None:
        self.lines.append((node, "apt", event["text"]))


class FreshLock:
    def acquire(self, phase: str, **_: Any) -> None: ...

    def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> None: ...

    def release(self) -> bool:
        return True


def rollout(tmp_path: Path, cluster: Scripted, concurrency: int = 2, bad: set[str] | None = None,
            nodes: Nodes | None = None, **config: Any) -> tuple[Rollout, Said, Nodes]:
    said, nodes = Said(), nodes or Nodes()
    r = Rollout(cluster, nodes, Checks(cluster, bad), Config(settle_timeout=5, concurrency=concurrency, **config),  # type: ignore[arg-type]
                History(tmp_path / "history.jsonl"), said, RUN)
    r.lock = FreshLock()  # type: ignore[assignment]
    r.all_nodes = list(cluster.names)
    r.results = {n: NodeResult(n) for n in cluster.names}
    r.placed = {rid: frozenset({w}) for rid, w in cluster.where.items()}
    return r, said, nodes


def plans(cluster: Scripted, *changes: Change) -> dict[str, NodePlan]:
    order = [n for n in cluster.names if n != "node1"] + ["node1"]
    return {n: NodePlan(n, changes or (LIB,)) for n in order}


@pytest.fixture(autouse=True)
def no_holds(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """A fail back's holds (written into the CIB and synced onto the nodes) are test_holding's business."""
    held: list[set[str]] = []
    monkeypatch.setattr(holding, "hold_back", lambda run, node, suspects: held.append(set(suspects)))
    return held


def full_run(r: Rollout, monkeypatch: pytest.MonkeyPatch, the_plans: dict[str, NodePlan]) -> Outcome:
    r.preflight = lambda only: dict(the_plans)  # type: ignore[method-assign]
    monkeypatch.setattr(staging, "freeze", lambda run, p, resumed="": {})
    monkeypatch.setattr(staging, "stage", lambda run, order: {n: the_plans[n].changes for n in order})
    monkeypatch.setattr("upgrader.orchestrator.procedure.holding.release_expired", lambda *a: [])
    return r.run()


def drains(tmp_path: Path) -> list[list[str]]:
    """The nodes of each drain of the run recorded in ``tmp_path``: :func:`tests.helpers.drained_together`."""
    return drained_together(History(tmp_path / "history.jsonl").entries(RUN))


def test_a_batch_of_two_is_drained_and_upgraded_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Scripted(5)
    r, said, nodes = rollout(tmp_path, cluster, nodes=Nodes(seconds=0.3))
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path) == [["node2", "node3"], ["node4", "node5"], ["node1"]]  # the runner alone and last
    assert {n: r.results[n].result for n in cluster.names} == dict.fromkeys(cluster.names, "ok")
    (a0, a1), (b0, b1) = nodes.spans["node2"], nodes.spans["node3"]
    assert a0 < b1 and b0 < a1  # their upgrades overlapped
    assert nodes.prepared == ["node2", "node3", "node4", "node5", "node1"]  # type: ignore[attr-defined]
    assert sorted(nodes.dropped) == sorted(nodes.prepared)  # type: ignore[attr-defined]
    assert cluster.standby == set() and cluster.where == cluster.home
    # both standbys and their drain's marks in one CIB write (one transition), then one settle; asked with
    # both in standby at once first; back online together in one write too
    assert ("predict", ("node2", "node3"), True) in cluster.calls
    i = cluster.calls.index(("standby", "node2", True))
    mark = {"standby": "on", "rolling-upgrade-waiting": RUN}
    assert cluster.calls[i - 1:i + 3] == [("write", {"node2": mark, "node3": mark}), ("standby", "node2", True),
                                          ("standby", "node3", True), ("settled",)]
    back = {"standby": "off", "rolling-upgrade-patched": RUN}  # marked patched in the same write
    assert ("write", {"node2": back, "node3": back}) in cluster.calls
    assert not [k for k in cluster.marks if k[1] == "rolling-upgrade-waiting"]
    assert ("node2", "plan", "draining node2 and node3 together (Concurrency 2)") in said.lines
    # each node its own record: one start and one end, ok, with its moves
    entries = History(tmp_path / "history.jsonl").entries(RUN)
    ends = [e for e in entries if (e["phase"], e["event"]) == ("node", "end")]
    assert sorted(e["node"] for e in ends) == sorted(cluster.names) and all(e["result"] == "ok" for e in ends)
    assert any("app3 node3 -> " in m for m in r.results["node3"].moves)
    assert ("node3", "apt", "installing on node3") in said.lines  # progress lines name their node


def test_a_node_comes_back_marked_patched_in_the_same_write_and_the_drain_marks_go_at_the_clean_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One CIB write (one transition) ends a node's standby and marks it patched; its drain's mark is not
    removed right after (that write stopped the transition), but with every node's at the clean-up."""
    cluster = Scripted(3)
    r, said, nodes = rollout(tmp_path, cluster, concurrency=1)
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    back = {"standby": "off", PATCHED: RUN}
    for n in cluster.names:
        assert ("write", {n: back}) in cluster.calls
    assert not [c for c in cluster.calls if c[0] == "standby" and c[2] is False and ("write", {c[1]: back})
                not in cluster.calls[cluster.calls.index(c) - 1:cluster.calls.index(c)]]  # each from that write
    # a fail over that predicts what comes back asks with the node already marked in the CIB copy
    asked = [cluster.calls[i + 1] for i, c in enumerate(cluster.calls) if c[0] == "predict" and c[2] is False]
    assert asked and all(p[0] == "prepared" for p in asked)
    assert all(set(p[1]) >= {cluster.calls[cluster.calls.index(p) - 1][1][0]} for p in asked)
    assert [c for c in cluster.calls if c[0] == "delete" and c[2] == WAITING] == [("delete", tuple(cluster.names),
                                                                                 WAITING)]
    assert not [k for k in cluster.marks if k[1] in (WAITING, PATCHED)]
    # each node's apply started ahead of its drain, and let go of once its block ended (a no-op once used)
    assert nodes.prepared == nodes.dropped == ["node2", "node3", "node1"]  # type: ignore[attr-defined]


def test_a_batch_shrinks_when_crm_simulate_predicts_a_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Scripted(5, stops={frozenset({"node2", "node3"}): ["app7"]})
    r, said, _ = rollout(tmp_path, cluster)
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path) == [["node2"], ["node3", "node4"], ["node5"], ["node1"]]
    assert ("node2", "plan", "draining node2 alone: node2 and node3 together would stop app7 would be stopped, "
            "not moved (node availability)") in said.lines
    assert all(r.results[n].result == "ok" for n in cluster.names)


def test_a_batch_of_three_shrinks_to_two_and_says_which_node_stays_out(tmp_path: Path) -> None:
    cluster = Scripted(6, stops={frozenset({"node2", "node3", "node4"}): ["app9"]})
    r, said, _ = rollout(tmp_path, cluster, concurrency=3)
    rest = ["node2", "node3", "node4", "node5", "node6", "node1"]
    assert batches.choose(r, r, rest, plans(cluster)) == ["node2", "node3"]
    assert said.lines[-1][2].startswith("draining node2 and node3 together (Concurrency 3) (not node4 as well: "
                                        "node2, node3 and node4 together would stop app9")


def test_a_fail_back_on_one_node_of_a_batch_quarantines_it_alone_and_stops_the_run_after_the_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_holds: list[set[str]]) -> None:
    cluster = Scripted(5)
    r, said, nodes = rollout(tmp_path, cluster, bad={"node3"})
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.FAILED_BACK
    assert drains(tmp_path) == [["node2", "node3"]]  # stopped before the next batch
    assert r.results["node3"].result == "quarantined" and r.results["node2"].result == "ok"
    assert cluster.standby == {"node3"} and ("node3", "rolling-upgrade-quarantine") in cluster.marks
    assert ("node3", WAITING) not in cluster.marks  # its standby is the fail back's, not a drain's to end
    assert no_holds == [{"node3"}]  # blamed alone
    assert cluster.where["app2"] == "node2"  # the other node failed over, verified, and runs its own again
    assert set(nodes.spans) == {"node2", "node3"}
    assert r.stop_reason and "health check failed after the move" in r.stop_reason
    assert "node3 in standby and quarantined" in r.stop_reason and "node2" not in r.stop_reason.split(";")[-1]
    ends = {e["node"]: e for e in History(tmp_path / "history.jsonl").entries(RUN)
            if (e["phase"], e["event"]) == ("node", "end")}
    assert ends["node2"]["result"] == "ok" and ends["node3"]["result"] == "quarantined"


def test_a_failed_upgrade_on_one_node_lets_the_other_finish_then_stops(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster, nodes=Nodes(fail={"node2"}))
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.NEEDS_PERSON
    assert r.results["node2"].result == "failed" and r.results["node3"].result == "ok"  # as with one node
    assert cluster.standby == {"node2"} and cluster.where["app3"] == "node3"
    assert r.stop_reason and r.stop_reason.startswith("the upgrade of node2 failed: dpkg: error processing")
    assert "node4" not in {e["node"] for e in History(tmp_path / "history.jsonl").entries(RUN)}


def test_a_two_node_cluster_never_drains_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Scripted(2)
    r, said, _ = rollout(tmp_path, cluster, concurrency=5)
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path) == [["node2"], ["node1"]]
    assert not any(c[0] == "predict" and len(c[1]) > 1 for c in cluster.calls)


def test_three_nodes_with_the_runner_last_never_batch_two_of_two(tmp_path: Path) -> None:
    cluster = Scripted(3)
    r, said, _ = rollout(tmp_path, cluster, concurrency=2)
    assert batches.choose(r, r, ["node2", "node3", "node1"], plans(cluster)) == ["node2", "node3"]
    assert batches.choose(r, r, ["node1"], plans(cluster)) == ["node1"]
    assert batches.choose(r, r, ["node3", "node1"], plans(cluster)) == ["node3"]  # the runner goes alone


def test_a_stack_upgrade_never_batches_when_quorum_would_be_lost(tmp_path: Path) -> None:
    cluster = Scripted(4)  # 4 votes, quorum 3: two nodes out leave 2
    r, said, _ = rollout(tmp_path, cluster)
    stack = plans(cluster, LIB, STACK)
    assert batches.choose(r, r, ["node2", "node3", "node4", "node1"], stack) == ["node2"]
    assert said.lines[-1] == ("node2", "plan", "draining node2 alone: a cluster-stack upgrade of node2 and node3 "
                              "together would leave 2 vote(s), quorum needs 3")
    # the same drain without the stack keeps quorum (the stacks stay up): together
    assert batches.choose(r, r, ["node2", "node3", "node4", "node1"], plans(cluster)) == ["node2", "node3"]
    # five nodes: two out leave 3 of 5, quorum 3
    five = Scripted(5)
    r5, _, _ = rollout(tmp_path, five)
    assert batches.choose(r5, r5, ["node2", "node3", "node4", "node5", "node1"],
                          plans(five, LIB, STACK)) == ["node2", "node3"]


def test_reboots_never_batch_when_the_votes_cannot_be_read(tmp_path: Path) -> None:
    from upgrader.runner import CommandMissing

    missing = CommandMissing(Result(("corosync-quorumtool", "-s"), 127, "", "not found", 0.0, missing=True))
    cluster = Scripted(5, votes=missing)
    r, said, _ = rollout(tmp_path, cluster, reboot=True)
    assert batches.choose(r, r, ["node2", "node3", "node4", "node5", "node1"], plans(cluster)) == ["node2"]
    assert said.lines[-1][2].startswith("draining node2 alone: a reboot (Reboot is on) takes nodes out of the "
                                        "cluster and corosync's votes cannot be read (corosync-quorumtool is not "
                                        "installed")


def test_declared_utilization_that_the_nodes_left_cannot_hold_shrinks_the_batch(tmp_path: Path) -> None:
    util = Utilization(nodes={f"node{i}": {"cpu": 2} for i in range(1, 6)},
                       resources={f"app{i}": {"cpu": 2} for i in range(1, 6)}, strategy="utilization")
    cluster = Scripted(5, util=util)  # 10 cpu, 10 asked: no node can go at all (crm_simulate would say so too)
    r, said, _ = rollout(tmp_path, cluster)
    assert batches.choose(r, r, ["node2", "node3", "node4", "node5", "node1"], plans(cluster)) == ["node2"]
    assert said.lines[-1][2] == ("draining node2 alone: node2 and node3 together would leave too little capacity "
                                 "(utilization): cpu: 10 asked, 6 left on node1, node4, node5")


def test_concurrency_one_asks_nothing_new_of_the_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Scripted(5)
    r, said, _ = rollout(tmp_path, cluster, concurrency=1)
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path) == [["node2"], ["node3"], ["node4"], ["node5"], ["node1"]]
    assert not any(c[0] == "predict" and len(c[1]) > 1 for c in cluster.calls)
    assert not any(phase == "plan" and "draining" in text for _, phase, text in said.lines)


@pytest.mark.parametrize("raw, said", [
    ("0", "Rolling-Upgrade::Concurrency: '0' is too small (at least 1: one node at a time)"),
    ("abc", "Rolling-Upgrade::Concurrency: 'abc' is not a whole number of nodes (use e.g. 2; 1 drains one node "
            "at a time)"),
    ("-2", "Rolling-Upgrade::Concurrency: '-2' is not a whole number of nodes (use e.g. 2; 1 drains one node "
           "at a time)"),
    ("\u00b2", "Rolling-Upgrade::Concurrency: '\u00b2' is not a whole number of nodes (use e.g. 2; 1 drains one "
                "node at a time)"),
])
def test_bad_concurrency_values_are_refused_in_one_line_naming_the_key(tmp_path: Path, raw: str, said: str) -> None:
    (tmp_path / "50x.conf").write_text(f'Rolling-Upgrade::Concurrency "{raw}";\n')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, main_file=None)
    assert str(caught.value) == said


def test_concurrency_defaults_to_one_and_more_than_the_nodes_is_fine(tmp_path: Path) -> None:
    assert Config().concurrency == 1
    (tmp_path / "50x.conf").write_text('Rolling-Upgrade::Concurrency "64";\n')
    config = load(tmp_path, main_file=None)
    assert config.concurrency == 64
    cluster = Scripted(4)
    r, _, _ = rollout(tmp_path, cluster, concurrency=64)
    assert batches.choose(r, r, ["node2", "node3", "node4", "node1"], plans(cluster)) == ["node2", "node3", "node4"]


QUORUMTOOL = """Quorum information
------------------
Date:             Tue Dec  1 02:00:00 2026
Quorum provider:  corosync_votequorum
Nodes:            5
Node ID:          1
Ring ID:          1.2c
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   6
Highest expected: 6
Total votes:      6
Quorum:           4
Flags:            Quorate Qdevice

Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         1          1    A,V,NMW node1 (local)
         2          1    A,V,NMW node2
         3          1    A,V,NMW node3
         4          1    A,V,NMW node4
         5          1    A,V,NMW node5
         0          1            Qdevice
"""


def test_corosync_votes_leave_the_quorum_device_out() -> None:
    votes = parse_quorumtool(QUORUMTOOL)
    assert votes.quorum == 4 and votes.members == {f"node{i}": 1 for i in range(1, 6)}
    assert votes.flags == ("Quorate", "Qdevice")
    assert votes.left_without(["node2"]) == 4 and votes.left_without(["node2", "node3"]) == 3


def test_utilization_is_read_from_the_cib_and_summed() -> None:
    cib = """<configuration><crm_config><cluster_property_set id="o">
      <nvpair id="o-ps" name="placement-strategy" value="balanced"/></cluster_property_set></crm_config>
      <nodes><node id="1" uname="node1"><utilization id="u1"><nvpair id="u1c" name="cpu" value="4"/></utilization></node>
             <node id="2" uname="node2"><utilization id="u2"><nvpair id="u2c" name="cpu" value="4"/></utilization></node>
      </nodes><resources><primitive id="app1" class="ocf" provider="heartbeat" type="Dummy">
        <utilization id="a1"><nvpair id="a1c" name="cpu" value="3"/></utilization></primitive></resources>
      </configuration>"""
    util = parse_utilization(cib)
    assert util.strategy == "balanced" and util.nodes == {"node1": {"cpu": 4}, "node2": {"cpu": 4}}
    assert util.resources == {"app1": {"cpu": 3}} and util.declared
    state = Scripted(2).state()
    assert shortfall(util, state, ["node2"]) == []
    assert shortfall(util, state, ["node1", "node2"]) == ["cpu: 3 asked, 0 left on no node"]


def test_nodes_upgraded_in_a_batch_count_as_upgraded_in_what_is_left_pending(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """rolling_upgrade_pending_upgrades: a node upgraded together with another has nothing pending, as one
    upgraded alone (NodeResult.upgraded set on both paths)."""
    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster)
    r.planned = {n: (LIB,) for n in cluster.names}
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path)[0] == ["node2", "node3"]
    assert all(r.results[n].upgraded for n in cluster.names)
    assert r.pending_after() == {n: (0, 0) for n in cluster.names}


def test_a_batchs_moves_are_watched_and_each_outage_noted_for_its_own_node(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The outage watch wraps a batch's drain and its fail over as it wraps one node's: one watch for the
    batch, each resource's longest outage in the result of the node it ran on."""
    from upgrader.orchestrator import watching

    watched: list[set[str]] = []

    class FakeWatch:
        def __init__(self, targets: Mapping[str, Any]) -> None:
            self.targets, self.error = dict(targets), None
            watched.append(set(targets))

        def start(self) -> "FakeWatch":
            return self

        def stop(self) -> None: ...

        def longest(self) -> dict[str, float]:
            return {rid: 0.25 for rid in self.targets}

    monkeypatch.setattr(watching, "Watch", FakeWatch)
    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster)
    r.checks.addresses = lambda rids: {rid: [("198.51.100.1", 80)] for rid in rids}  # type: ignore[method-assign]
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    assert drains(tmp_path)[0] == ["node2", "node3"]
    assert {"app2", "app3"} in watched  # the batch's drain (and its fail over), one watch
    assert r.results["node2"].outages == {"app2": 0.25} and r.results["node3"].outages == {"app3": 0.25}
    assert r.longest_outages() == {f"app{i}": 0.25 for i in range(1, 6)}


def test_a_watch_that_cannot_start_never_breaks_the_move(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from upgrader.orchestrator import watching

    class NoThread:
        def __init__(self, targets: Any) -> None: ...

        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(watching, "Watch", NoThread)
    said = Said()
    run = SimpleNamespace(checks=SimpleNamespace(addresses=lambda rids: {"app1": [("198.51.100.1", 80)]}),
                          config=Config(), report=said, results={"node2": NodeResult("node2")})
    with watching.watching(run, "node2", ["app1"]):  # type: ignore[arg-type]
        pass
    assert said.lines == [("node2", "watch", "no outage watch for this move: RuntimeError: can't start new thread")]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_stop_while_choosing_the_batch_is_the_first_nodes_as_in_its_drain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int) -> None:
    """What moved late fails its check before the next drain (catch up): with Concurrency as with one node at a
    time, the node about to be drained ends failed, its record ended, nothing drained."""
    from upgrader.orchestrator.outcome import Stop

    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster, concurrency=concurrency)

    def late_move_unhealthy(node: str, now: Any = None) -> None:
        raise Stop(Outcome.FAILED_BACK, f"health check failed after the move (caught up before {node})")

    r.catch_up = late_move_unhealthy  # type: ignore[method-assign]
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.FAILED_BACK
    assert r.results["node2"].result == "failed" and "caught up before node2" in (r.results["node2"].error or "")
    ends = [e for e in History(tmp_path / "history.jsonl").entries(RUN) if (e["phase"], e["event"]) == ("node", "end")]
    assert [(e["node"], e["result"]) for e in ends] == [("node2", "failed")]
    assert cluster.standby == set()


def test_a_signal_during_a_batchs_drain_puts_every_node_back_online_untouched(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The safe point after the drain is the batch's: all of its nodes back online, none upgraded, one stop
    naming them (the same safe point as one node's: stops.safe_point)."""
    cluster = Scripted(5)
    r, _, nodes = rollout(tmp_path, cluster)
    standby = cluster.set_standby

    def signalled(node: str, on: bool) -> None:
        standby(node, on)
        if on and node == "node3":
            r.interrupted = "SIGTERM"

    cluster.set_standby = signalled  # type: ignore[method-assign]
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.NEEDS_PERSON
    assert cluster.standby == set() and cluster.where == cluster.home and nodes.spans == {}
    assert not any(name == "rolling-upgrade-waiting" for _, name in cluster.marks)
    assert r.stop_reason == ("interrupted by SIGTERM: stopped at a safe point after draining node2 and node3 (put "
                             "back online, not upgraded)")
    assert r.results["node2"].result == r.results["node3"].result == "failed"


def test_a_batchs_checks_run_with_its_preferences_in_place_as_one_nodes_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's fail-over check (its nodes' shares at once) comes after the preferences that brought its share onto it were
    written, before they are removed: the last cibadmin write before it is that --modify, not a removal."""
    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster)

    class Noting(Checks):
        def verify(self, moved: Mapping[str, str], baseline: Any, first: Any = None) -> HealthReport:
            cluster.runner.calls.append(["verify", *sorted(moved)])
            return super().verify(moved, baseline, first)

    r.checks = Noting(cluster)  # type: ignore[assignment]
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    calls = cluster.runner.calls
    writes = [i for i, c in enumerate(calls) if c[0] == "cibadmin" and ("--modify" in c or "--delete-all" in c)]
    # the batches (node2+node3, node4+node5): what their drain moved checked at once, then each node's own
    # application back on it, both shares checked in one check too (each judged on its own rows)
    checks = [i for i, c in enumerate(calls) if c[0] == "verify" and c[1:] in (["app2", "app3"], ["app4", "app5"])]
    assert [calls[i][1:] for i in checks] == [["app2", "app3"]] * 2 + [["app4", "app5"]] * 2
    shares = checks[1::2]
    last_write = [calls[max(w for w in writes if w < i)] for i in shares]
    assert all("--modify" in c for c in last_write), [c[:2] for c in last_write]


def test_a_batchs_shares_are_checked_at_once_and_one_that_cannot_be_checked_is_its_node_s_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The joint check raising (a declaration it cannot read, here app3's) leaves each share to its own
    check, as before: node2's share passes, node3's raises for node3 alone."""
    cluster = Scripted(5)
    r, _, _ = rollout(tmp_path, cluster)
    asked: list[list[str]] = []

    class Unreadable(Checks):
        def verify(self, moved: Mapping[str, str], baseline: Any, first: Any = None) -> HealthReport:
            asked.append(sorted(moved))
            if "app3" in moved and len(asked) > 1:  # after the drain's joint check (app2, app3 onto old nodes)
                raise KeyError("no group or ungrouped primitive called 'app3' in the CIB")
            return super().verify(moved, baseline, first)

    r.checks = Unreadable(cluster)  # type: ignore[assignment]
    assert full_run(r, monkeypatch, plans(cluster)) != Outcome.DONE
    assert asked[:4] == [["app2", "app3"], ["app2", "app3"], ["app2"], ["app3"]], asked
    assert r.results["node2"].result == "ok" and r.results["node3"].result != "ok"
    assert "app3" in (r.results["node3"].error or ""), r.results["node3"]


def test_one_nodes_drain_starts_from_the_settled_reading_and_its_checks_from_the_moves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 120 applications a crm_mon takes 0.25 s: a drain reads the cluster once after it is settled (that
    reading serves the late moves' check, the refusal of stops and the move's baseline), and each move's
    check takes the settled state the move was seen in as its first level-1 reading."""

    class Counting(Scripted):
        def state(self, timeout: float | None = None) -> ClusterState:
            self.calls.append(("state",))
            return super().state(timeout)

    class Noting(Checks):
        firsts: list[bool] = []

        def verify(self, moved: Mapping[str, str], baseline: Any, first: Any = None) -> HealthReport:
            self.firsts.append(first is not None)
            return super().verify(moved, baseline, first)

    cluster = Counting(3)
    r, _, _ = rollout(tmp_path, cluster, concurrency=1)
    r.checks = Noting(cluster)  # type: ignore[assignment]
    assert full_run(r, monkeypatch, plans(cluster)) == Outcome.DONE
    calls = cluster.calls
    drains = [i for i, c in enumerate(calls) if c[:1] == ("standby",) and c[2]]
    assert len(drains) == 3
    for i in drains:
        settled = max(j for j in range(i) if calls[j] == ("settled",))
        # the settle's own reading, which is the baseline too (a baseline's own crm_mon came after it before)
        assert [c for c in calls[settled:i] if c == ("state",)] == [("state",)], calls[settled:i]
        # and the settle started from the state the check that the cluster is whole had just read
        index = sum(1 for c in calls[:settled + 1] if c == ("settled",)) - 1
        assert cluster.firsts[index] is not None and calls[settled - 1] == ("state",), calls[settled - 3:settled + 1]
    assert Noting.firsts and all(Noting.firsts)
