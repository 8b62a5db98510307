"""What every step of a rollout shares: the cluster, the run's lock and history, each node's result.

:class:`RunContext` is one run's state (a :class:`~upgrader.orchestrator.procedure.Rollout`
is one); the step modules (:mod:`moves`, :mod:`verification`, :mod:`stops`,
:mod:`finishing`) take it. Both entry points run their steps with the lock
held, and cleaned up and released after (:meth:`RunContext.locked`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Protocol, Sequence

from upgrader.config import Config
from upgrader.orchestrator import steering
from upgrader.history import History, HistoryError
from upgrader.orchestrator.remote import NodePlan, Nodes
from upgrader.packages.pkgset import PackageSet
from upgrader.packages.plan import Change
from upgrader.packages.choose import Selection
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.lock import LockLost, UpgradeLock
from upgrader.runs import PATCHED, WAITING

if TYPE_CHECKING:
    from upgrader.health.outage import Address
    from upgrader.health.report import HealthReport
    from upgrader.orchestrator.gate import Baseline
    from upgrader.pacemaker.state import ClusterState

HEARTBEAT_EVERY = 60.0  # seconds between the lock's heartbeats during a node's upgrade (at most a third of its ttl)
# Phases a move, a wait for the DC to be idle or a question to the DC's controller follows within a second:
# the lock is only checked to be ours, not rewritten, while it is fresh (lock.FRESH_ENOUGH); its phase is then
# the one of its last write, at most a heartbeat (HEARTBEAT_EVERY) behind in a long step; the history has every
# phase. A write into crm_config keeps the DC's controller asleep for a second (make bench's trace): a "stage"
# or "verify" write made the next drain's first settle wait 0.3-0.5 s for it, and an "upgrade" write made the
# guard's first Pre-Invoke on the DC's own node (crm_node asks the local controller) wait 0.6 s before dpkg.
MOVE_PHASES = ("drain", "fail-over", "fail-back", "stage", "verify", "upgrade")


class Result(StrEnum):
    """A node's result in a run; a string, so ``== "ok"`` and its JSON are the plain word."""

    PENDING = "pending"
    UP_TO_DATE = "up to date"
    OK = "ok"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    DEFERRED = "deferred"


@dataclass
class NodeResult:
    node: str
    result: Result = Result.PENDING
    changes: list[dict[str, Any]] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    old_code: list[str] = field(default_factory=list)  # host services left on replaced code (to restart)
    reboot: list[str] = field(default_factory=list)  # why the node needs a reboot, when it does
    seconds: float = 0.0
    error: str | None = None
    outages: dict[str, float] = field(default_factory=dict)  # resource -> its longest outage in this node's moves
    upgraded: bool = False  # its dist-upgrade ran to the end in this run


class Checks(Protocol):
    """The health gate (see :mod:`upgrader.orchestrator.gate`)."""

    def preflight(self) -> None:
        """Raise with a one-line reason when a probe declaration is malformed."""

    def baseline(self, state: ClusterState | None = None) -> Baseline:
        """The state now, and the reading a later :meth:`verify` compares with (one crm_mon; none when
        ``state``, one just read, is given)."""

    def verify(self, moved: Mapping[str, str], baseline: Baseline, first: ClusterState | None = None) -> HealthReport:
        """All three levels for each resource on the node it moved to; ``first``, a state read just before,
        is the level-1 checks' first reading (one crm_mon less)."""

    def addresses(self, rids: Iterable[str]) -> dict[str, list[Address]]:
        """The level-3 probe addresses of each of ``rids`` that declares one: what a move's outage watch probes."""


class Reporter(Protocol):
    def step(self, node: str | None, phase: str, text: str) -> None: ...

    def progress(self, node: str, event: dict[str, Any]) -> None: ...


class RunContext:
    """One run's cluster, lock, history and results, and the small steps every move takes."""

    def __init__(self, cluster: Cluster, nodes: Nodes, checks: Checks, config: Config, history: History,
                 report: Reporter, run_id: str) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.checks = checks
        self.config = config
        self.history = history
        self.report = report
        self.run_id = run_id
        self.lock = UpgradeLock(cluster, run_id, nodes.local, ttl=config.lock_expiry)
        self.patched: set[str] = set()
        self.results: dict[str, NodeResult] = {}
        self.all_nodes: list[str] = []
        self.interrupted: str | None = None  # the signal that asked to stop at the next safe point
        self.stop_reason: str | None = None  # why the run stopped early, in one line
        self.placed: dict[str, frozenset[str]] = {}  # where each resource ran when it was last checked
        self.started = datetime.now(timezone.utc)  # when this run began (its metrics)
        self.kept_in_standby: set[str] = set()  # nodes an operator put in standby: upgraded, left there
        self.package_set = PackageSet()  # the run's versions, frozen at the preflight (orchestrator.staging)
        self.selection = Selection()  # what to take of each node's plan (start.rollout sets the settings')
        self.planned: dict[str, tuple[Change, ...]] = {}  # per node, what the preflight found pending (all of it)

    def pending_after(self) -> dict[str, tuple[int, int]]:
        """Per node the preflight planned, what is still pending after the run: (all, security). Its plan's
        changes and those the selection left out, less what its upgrade installed (none when it did not
        end: deferred, failed, not reached)."""
        found = {}
        for n, planned in self.planned.items():
            result = self.results.get(n)
            done = {(c.get("package"), c.get("candidate")) for c in result.changes} if result and result.upgraded else set()
            left = [c for c in planned if (c.package, c.candidate) not in done]
            found[n] = (len(left), sum(1 for c in left if c.security))
        return found

    def longest_outages(self) -> dict[str, float]:
        """Per resource the outage watch saw, its longest outage over the run's moves."""
        found: dict[str, float] = {}
        for result in self.results.values():
            for rid, seconds in result.outages.items():
                found[rid] = max(seconds, found.get(rid, 0.0))
        return found

    def phase(self, node: str | None, phase: str) -> None:
        self.lock.heartbeat(phase, before_move=phase in MOVE_PHASES)
        self.history.record(self.run_id, node, phase, "start")

    def plan_all(self, nodes: list[str]) -> dict[str, NodePlan]:
        """Each node's pending changes, asked in parallel (each node opens its own apt cache)."""
        with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
            return dict(zip(nodes, pool.map(self.nodes.plan, nodes)))

    @contextmanager
    def heartbeats(self, phase: str, every: float | None = None) -> Iterator[None]:
        """The lock kept fresh while the block runs (a long dpkg run sends nothing for minutes): it never
        expires under a live run. A lost lock is raised once the block ended; other errors wait for the next beat."""
        every = every if every is not None else min(HEARTBEAT_EVERY, self.config.lock_expiry / 3)
        stop = threading.Event()
        lost: list[LockLost] = []

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.lock.heartbeat(phase)
                except LockLost as exc:
                    lost.append(exc)
                    return
                except Exception:  # noqa: BLE001 - a busy DC now: the next beat tries again
                    pass

        thread = threading.Thread(target=beat, name="lock-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=every + 60)
        if lost:
            raise lost[0]

    @contextmanager
    def applying_soon(self, node: str, plan: NodePlan) -> Iterator[None]:
        """The node's ``apply`` started now, ahead of its drain, waiting for its go (:meth:`Nodes.prepare_apply`):
        its interpreter and python-apt load while the node drains. Not around an upgrade of the cluster
        stack (its stack is stopped first). Told no if the block ends without using it."""
        if not plan.ha_stack:
            self.nodes.prepare_apply(node, self.run_id, timeout=self.config.apply_limit(len(plan.changes)),
                                     set_digest=self.package_set.digest if self.package_set else None)
        try:
            yield
        finally:
            self.nodes.drop_prepared(node)

    def back_online(self, *nodes: str, settle: bool = False, patched: bool = False) -> None:
        """Out of standby, every one of ``nodes`` in one CIB write (one transition); with ``patched``, marked
        patched in that same write, so that the transition it starts already prefers them. Their drain's
        mark stays until the clean-up removes every online node's in one write (a removal right after this
        write stopped the transition it had started: 40 ms later, a write and a transition more a node);
        a node put in standby again within the run loses it then (:meth:`standby_again`).
        With ``settle``, until the cluster settled (Settle-Timeout)."""
        mark = {PATCHED: self.run_id} if patched else {}
        self.cluster.set_node_attributes({n: {"standby": "off"} | mark for n in nodes})
        if patched:
            self.patched.update(nodes)
        if settle:
            self.cluster.wait_settled(None, deadline=self.config.settle_timeout)

    def put_in_standby(self, nodes: Sequence[str], state: ClusterState) -> None:
        """Standby for every one of ``nodes`` in one CIB write (one transition), each marked as this run's
        drain in the same write unless ``state`` shows it in standby already (an operator's: a run that
        stops before bringing it back leaves it to the next run)."""
        self.cluster.set_node_attributes({n: {"standby": "on"} | ({} if state.node(n).standby else
                                                                   {WAITING: self.run_id}) for n in nodes})

    def standby_again(self, nodes: Iterable[str]) -> None:
        """Back in standby after their fail over (a fail back): each of ``nodes`` without the drain's mark it
        kept online, so that, as before, its standby is no run's to end (it is quarantined, and stays in
        standby until a person brings it back)."""
        nodes = list(nodes)
        self.cluster.delete_node_attributes(nodes, WAITING)  # first: stopped in between, it is simply online
        for node in nodes:
            self.cluster.set_standby(node, True)

    def mark_patched(self, node: str) -> None:
        steering.mark_patched(self.cluster, node, self.run_id)
        self.patched.add(node)

    def quarantine(self, node: str) -> None:
        steering.quarantine(self.cluster, node, self.run_id, _now())
        self.history.record(self.run_id, node, "quarantine", "note")

    def note_moves(self, node: str, origin: str | None, moved: Mapping[str, str]) -> None:
        text = [f"{rid} {origin + ' ' if origin else ''}-> {where}" for rid, where in moved.items()]
        self.results[node].moves += text
        if text:
            self.history.record(self.run_id, node, "move", "note", moves=text)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held from here (acquired by the caller); cleaned up and released whatever happens."""
        try:
            self.history.record(self.run_id, None, "run", "start", holder=self.nodes.local)
            yield
        finally:
            try:
                try:
                    removed = steering.clean_up(self.cluster, self.all_nodes)
                except Exception as exc:  # noqa: BLE001 - the lock is released whatever the clean-up did
                    removed = [f"clean-up failed: {exc}"]
                    self.report.step(None, "clean-up", f"{removed[0]}: remove rolling-upgrade-* constraints by hand")
                try:  # a full /var: the run's end is still said, and the lock still released
                    self.history.record(self.run_id, None, "run", "end", cleaned=removed,
                                        nodes={n: r.result for n, r in self.results.items()})
                except HistoryError as exc:
                    self.report.step(None, "history", f"the run's end is not recorded: {exc}")
            finally:
                self.lock.release()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
