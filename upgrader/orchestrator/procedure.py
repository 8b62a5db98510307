"""The rolling upgrade, as an operator would write it on a whiteboard.

    preflight -> lock -> for each node: drain -> upgrade -> fail over -> verify
                                        (on a bad check: fail back, quarantine, stop)
              -> clean up -> unlock

The upgrade of a node whose changes include the cluster stack runs with its
stack stopped; a node that asks for a reboot is rebooted when Reboot is on
(:mod:`restarts`), both before it takes resources again.

A node is drained by standby. Once a patched node exists, the drained
resources are steered straight onto patched nodes, so each of them moves once
and restarts on the patched root at that move; the first node's resources
move away and come back. Every move is followed by the health checks. What
the run adds to the CIB is removed at the end, whatever happened
(:mod:`steering`); a quarantine mark stays until an operator clears it.
Ctrl-C / SIGTERM stop at the next safe point: before a node is drained, or
after its drain and before its packages are touched (it is then put back).
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Protocol

from upgrader.config import Config
from upgrader.orchestrator import steering
from upgrader.orchestrator.history import History
from upgrader.orchestrator.outcome import Outcome, Refused, Stop
from upgrader.orchestrator.remote import ApplyResult, NodePlan, Nodes
from upgrader.orchestrator.restarts import Restarts
from upgrader.pacemaker.live import Cluster, NotSettled, drained
from upgrader.pacemaker.lock import LockError, LockHeld, UpgradeLock, utcnow
from upgrader.pacemaker.lock import inspect as lock_status
from upgrader.pacemaker.state import ClusterState, ParseError
from upgrader.runner import CommandError


MOVE_PHASES = ("drain", "fail-over", "fail-back")  # a move follows at once: the lock is not rewritten if fresh


class HealthReportLike(Protocol):
    ok: bool

    def problems(self) -> list[Any]: ...


class Checks(Protocol):
    """The health gate (see :mod:`upgrader.orchestrator.gate`)."""

    def preflight(self) -> None:
        """Raise with a one-line reason when a probe declaration is malformed."""

    def baseline(self) -> tuple[ClusterState, Any]:
        """The state now, and the reading a later :meth:`verify` compares with (one crm_mon)."""

    def verify(self, moved: Mapping[str, str], baseline: tuple[ClusterState, Any]) -> HealthReportLike:
        """All three levels for each resource on the node it moved to."""


class Reporter(Protocol):
    def step(self, node: str | None, phase: str, text: str) -> None: ...

    def progress(self, node: str, event: dict[str, Any]) -> None: ...


@dataclass
class NodeResult:
    node: str
    result: str = "pending"
    changes: list[dict[str, Any]] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


class Rollout:
    def __init__(self, cluster: Cluster, nodes: Nodes, checks: Checks, config: Config, history: History,
                 report: Reporter, run_id: str, before_node: Callable[[str], str | None] | None = None) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.checks = checks
        self.config = config
        self.history = history
        self.report = report
        self.run_id = run_id
        self.before_node = before_node  # a reason not to start this node now (the patch window), or None
        self.lock = UpgradeLock(cluster, run_id, nodes.local, ttl=config.lock_expiry)
        self.restarts = Restarts(cluster, nodes, config, run_id, self.phase,
                                 lambda node, phase, text: self.report.step(node, phase, text))
        self.patched: set[str] = set()
        self.results: dict[str, NodeResult] = {}
        self.all_nodes: list[str] = []
        self.recovered: list[str] = []  # what rolling back an interrupted run did before this one
        self._interrupted: str | None = None
        self.stop_reason: str | None = None  # why the run stopped early, in one line

    # ------------------------------------------------------------------ the procedure

    def run(self, only: list[str] | None = None, confirm: Any = None) -> Outcome:
        try:
            plans = self.preflight(only)
        except (CommandError, ParseError, NotSettled) as exc:
            raise Refused(f"refused: the cluster cannot be read safely: {exc}") from None
        order = [n for n in plans if plans[n].changes]
        for n, plan in plans.items():
            self.results[n] = NodeResult(n, result="up to date" if not plan.changes else "pending",
                                         changes=[c.__dict__ for c in plan.changes])
        if not order:
            self.report.step(None, "plan", "nothing to upgrade on any node")
            return Outcome.DONE
        if confirm is not None and not confirm(plans, order):
            raise Refused("not confirmed; nothing was changed")
        try:
            self.lock.acquire("preflight")
        except LockHeld as exc:
            raise Refused(f"refused: {exc}; wait for it to finish, or see 'rolling-upgrade status'") from None
        with self.locked(), self.signals_deferred():
            try:
                for n, plan in plans.items():
                    if not plan.changes:
                        self.mark_patched(n)
                for i, node in enumerate(order):
                    if i:
                        self.soak()
                        self.safe_point(None)  # a signal during the last node: stop before this one is drained
                    if self.deferred(order[i:]):
                        break
                    self.upgrade_one(node, plans[node])
                return Outcome.DONE
            except (Stop, CommandError, ParseError, NotSettled, LockError) as exc:
                return self.stopped(None, exc)

    def finish(self) -> Outcome:
        """The APT hooks' finishing step on this node, upgraded by an apt run it was drained for.

        The same procedure from "fail over" on: this node comes online and
        resources still on old packages come onto it, checked, failed back
        on a bad check. In a two-node cluster the old peer then goes to
        standby, ready for its own apt run (the seed idea); with more nodes
        this node takes its fair share, from the nodes with most resources.
        """
        node = self.nodes.local
        state = self.cluster.state()
        self.all_nodes = [n.name for n in state.nodes]
        self.results[node] = NodeResult(node, result="pending")
        try:
            self.lock.acquire("fail-over")
        except LockHeld as exc:
            raise Refused(f"refused: {exc}; the finishing step of {node} waits for that run") from None
        with self.locked(), self.signals_deferred():
            try:
                plans = self.plan_all([n for n in self.all_nodes if n != node])
                for n, plan in plans.items():
                    if not plan.changes and not plan.error:
                        self.mark_patched(n)
                self.mark_patched(node)
                take = self.fair_share(state, node)
                self.fail_over(node, take)
                old_peers = [n for n in self.all_nodes if n not in self.patched]
                if len(self.all_nodes) == 2 and old_peers:
                    self.cluster.set_standby(old_peers[0], True)
                    self.cluster.wait_settled(drained(old_peers[0], ()), deadline=self.config.settle_timeout)
                    self.report.step(old_peers[0], "standby", "the old peer waits in standby for its own upgrade")
                    self.history.record(self.run_id, old_peers[0], "standby", "note",
                                        reason="two-node cluster: the old peer waits in standby for its upgrade")
                self.results[node].result = "ok"
                return Outcome.DONE
            except (Stop, CommandError, ParseError, NotSettled, LockError) as exc:
                self.results[node].result, self.results[node].error = "failed", str(exc)
                return self.stopped(node, exc)

    def stopped(self, node: str | None, exc: Exception) -> Outcome:
        """Report and record why the run stops here; its exit code (an error mid-run needs a person)."""
        stop = exc if isinstance(exc, Stop) else Stop(Outcome.NEEDS_PERSON, f"stopped on an error: {exc}")
        self.report.step(node, "stop", str(stop))
        self.history.record(self.run_id, node, "run", "note", result="stopped", reason=str(stop))
        self.stop_reason = str(stop)
        return stop.code

    def fair_share(self, state: ClusterState, node: str) -> dict[str, str]:
        """Resources on old packages that ``node`` should take: all of them with one peer, else its share."""
        on_old = {rid: sorted(state.running_on(rid))[0] for rid in state.top_level_ids()
                  if state.running_on(rid) and not state.running_on(rid) & self.patched}
        if len(self.all_nodes) == 2:
            return on_old
        share = -(-len(state.top_level_ids()) // len(self.all_nodes))
        load: dict[str, int] = {}
        for where in on_old.values():
            load[where] = load.get(where, 0) + 1
        ranked = sorted(on_old.items(), key=lambda item: (-load[item[1]], item[0]))
        return dict(ranked[:share])

    def preflight(self, only: list[str] | None) -> dict[str, NodePlan]:
        """Every reason not to start, before anything changes; the plans, in upgrade order."""
        facts = self.cluster.preflight()
        problems = facts.problems()
        held = lock_status(self.cluster)
        if held is not None and not held.breakable:  # said first: an offline holder is also an offline node
            problems.insert(0, f"the upgrade lock is held: {held.describe(utcnow())}")
        state = self.cluster.state()
        self.all_nodes = [n.name for n in state.nodes]
        unknown = [n for n in only or [] if n not in self.all_nodes]
        if unknown:
            raise Refused(f"refused: unknown node(s) {', '.join(unknown)}: the cluster has {', '.join(self.all_nodes)}")
        quarantined = steering.quarantined(self.cluster, self.all_nodes)
        wanted = [n for n in self.order(state) if (not only or n in only)]
        for n in wanted:
            if n in quarantined:
                problems.append(f"{n} is quarantined ({quarantined[n]}); after fixing it, clear it with "
                                f"'rolling-upgrade unquarantine {n}'")
        try:
            self.checks.preflight()
        except Exception as exc:  # a malformed probe: one line naming resource and attribute
            problems.append(str(exc))
        if problems:
            raise Refused("refused: " + "; ".join(problems))
        plans = self.plan_all(wanted)
        errors = [p.error for p in plans.values() if p.error]
        if errors:
            raise Refused("refused: " + "; ".join(e for e in errors if e))
        online = [n for n in self.all_nodes if n not in quarantined]
        if len(online) < 2:
            raise Refused("refused: a rolling upgrade needs at least two nodes that can run resources")
        return plans

    def plan_all(self, nodes: list[str]) -> dict[str, NodePlan]:
        """Each node's pending changes, asked in parallel (each node opens its own apt cache)."""
        with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
            return dict(zip(nodes, pool.map(self.nodes.plan, nodes)))

    def order(self, state: ClusterState) -> list[str]:
        """The node we run on last (even in standby), standby nodes first, the rest by name; with no standby node, one
        other node that runs nothing goes first (its peers' resources then move once, onto it).

        Only one: a node that runs nothing is not verified until resources move onto it, and the next
        drain does that, before a second node is touched. The node we run on is never moved up: it
        may reboot itself (Reboot), which ends this run.
        """
        ranked = sorted(state.nodes, key=lambda n: (1 if n.name == self.nodes.local else 0, 0 if n.standby else 1,
                                                    n.name))
        if ranked and not ranked[0].standby:
            empty = next((n for n in ranked if not n.resources_running and n.name != self.nodes.local), None)
            if empty is not None:
                ranked.remove(empty)
                ranked.insert(0, empty)
        return [n.name for n in ranked]

    def upgrade_one(self, node: str, plan: NodePlan) -> None:
        started = time.monotonic()
        result = self.results[node]
        self.history.record(self.run_id, node, "node", "start", changes=[c.__dict__ for c in plan.changes])
        try:
            self.still_whole(node)
            moved_away = self.drain(node)
            self.safe_point(node, drained_untouched=True)
            self.still_whole(node, drained_untouched=True)
            applied = self.upgrade(node, stack=plan.ha_stack)
            result.changes = [c.__dict__ for c in applied.changes] or result.changes
            self.fail_over(node, moved_away)
            result.result = "ok"
        except (Stop, CommandError, ParseError, NotSettled, LockError) as stop:
            result.result = "quarantined" if result.result == "quarantined" else "failed"
            result.error = str(stop)
            raise
        finally:
            result.seconds = round(time.monotonic() - started, 1)
            self.history.record(self.run_id, node, "node", "end", result=result.result, seconds=result.seconds,
                                moves=result.moves, error=result.error)

    def deferred(self, rest: list[str]) -> bool:
        """Whether ``before_node`` defers the next node; if so, ``rest`` is recorded as deferred, untouched."""
        reason = self.before_node(rest[0]) if self.before_node else None
        if not reason:
            return False
        for n in rest:
            self.results[n].result, self.results[n].error = "deferred", reason
            self.history.record(self.run_id, n, "node", "deferred", reason=reason)
        self.report.step(rest[0], "defer", f"{', '.join(rest)} deferred: {reason}")
        return True

    def drain(self, node: str) -> dict[str, str]:
        """Standby; the node's resources move (onto patched nodes once there are any) and are checked."""
        self.phase(node, "drain")
        before = self.checks.baseline()
        resources = tuple(r for r in before[0].top_level_ids() if node in before[0].running_on(r))
        onto_patched = bool(self.patched - {node})
        targets = steering.spread(resources, self.load(before[0], self.patched - {node})) if onto_patched else {}
        for rid in resources if onto_patched else ():
            steering.prefer(self.cluster, rid, self.run_id, patched=True, target=targets.get(rid))
        self.cluster.set_standby(node, True)
        after = self.cluster.wait_settled(drained(node, resources), deadline=self.config.settle_timeout)
        moved = {rid: sorted(after.running_on(rid))[0] for rid in resources}
        self.note_moves(node, node, moved)
        if moved:
            suspects = {where for where in moved.values() if where in self.patched}
            self.verify(node, moved, before, suspects=suspects, untouched=node)
        for rid in resources if onto_patched else ():
            steering.drop_preference(self.cluster, rid)
        self.report.step(node, "drain", f"standby; {len(moved)} resource(s) moved and healthy" if moved
                         else "standby; it ran nothing")
        return moved

    def upgrade(self, node: str, stack: bool = False) -> ApplyResult:
        """The dist-upgrade on the drained node (its cluster stack stopped around it when ``stack``), then
        its reboot if it asks for one and Reboot is on; a failure of dpkg leaves it in standby, quarantined."""
        self.phase(node, "upgrade")
        if stack:
            with self.restarts.stack_stopped(node):
                applied = self.apply(node)
        else:
            applied = self.apply(node)
        if not applied.ok and not applied.touched:
            self.cluster.set_standby(node, False)
            self.cluster.wait_settled(None, deadline=self.config.settle_timeout)
            raise Stop(Outcome.NEEDS_PERSON, f"the upgrade of {node} failed before dpkg ran: {applied.error}; "
                       f"nothing was changed there, {node} is back online")
        if not applied.ok:
            self.quarantine(node)
            raise Stop(Outcome.NEEDS_PERSON, f"the upgrade of {node} failed: {applied.error}; {node} stays in "
                       f"standby and quarantined, its peers run its resources untouched")
        done = ", ".join(f"{c.package} {c.installed or '-'} -> {c.candidate}" for c in applied.changes)
        self.report.step(node, "upgrade", f"{done or 'packages upgraded'} in {applied.seconds:.1f}s")
        if applied.reboot_required and self.config.reboot:
            self.restarts.reboot(node)
        elif applied.reboot_required:
            self.report.step(node, "upgrade", "a reboot is required; Rolling-Upgrade::Reboot is off: not "
                             "rebooting (reported)")
        return applied

    def apply(self, node: str) -> ApplyResult:
        applied = self.nodes.apply(node, self.run_id, lambda e: self.report.progress(node, e))
        self.history.record(self.run_id, node, "upgrade", "end", ok=applied.ok, error=applied.error,
                            changes=[c.__dict__ for c in applied.changes], reboot_required=applied.reboot_required,
                            stale_processes=list(applied.stale_processes), seconds=round(applied.seconds, 1))
        return applied

    def fail_over(self, node: str, moved_away: Mapping[str, str]) -> None:
        """Back online; resources that still run on old packages come onto the patched node."""
        self.phase(node, "fail-over")
        self.mark_patched(node)
        back = [rid for rid, where in moved_away.items() if where not in self.patched]
        if not back:  # its resources already run on patched nodes: nothing to move, nothing to wait for
            self.cluster.set_standby(node, False)
            self.report.step(node, "fail-over", "online")
            return
        before = self.checks.baseline()
        for rid in back:
            steering.prefer(self.cluster, rid, self.run_id, patched=True)
        self.cluster.set_standby(node, False)
        after = self.cluster.wait_settled(self.on_patched(back), deadline=self.config.settle_timeout)
        moved = {rid: sorted(after.running_on(rid))[0] for rid in back}
        self.note_moves(node, None, moved)
        if moved:
            self.phase(node, "verify")
            self.verify(node, moved, before, suspects={node})
        for rid in back:
            steering.drop_preference(self.cluster, rid)
        self.report.step(node, "fail-over", f"online; {len(moved)} resource(s) restarted on the patched root "
                         "and healthy" if moved else "online")

    def verify(self, node: str, moved: Mapping[str, str], baseline: tuple[ClusterState, Any], *, suspects: set[str],
               untouched: str | None = None) -> None:
        report = self.checks.verify(moved, baseline)
        self.results[node].checks += [str(p) for p in report.problems()] or [f"{len(moved)} resource(s) healthy"]
        if report.ok:
            return
        problems = "; ".join(str(p) for p in report.problems())
        self.history.record(self.run_id, node, "verify", "end", ok=False, problems=problems)
        if not suspects:
            # Moved onto old packages and unhealthy there: not the upgrade's doing.
            if untouched:
                self.cluster.set_standby(untouched, False)
            raise Stop(Outcome.NEEDS_PERSON, f"resources moved off {node} are unhealthy on nodes that were not "
                       f"upgraded: {problems}; {node} was put back online, nothing was upgraded")
        self.fail_back(node, moved, suspects, untouched, problems)

    def fail_back(self, node: str, moved: Mapping[str, str], suspects: set[str], untouched: str | None,
                  problems: str) -> None:
        """Resources back onto old packages, checked there; the suspect node(s) standby and quarantined."""
        self.phase(node, "fail-back")
        before = self.checks.baseline()
        for rid in moved:
            steering.prefer(self.cluster, rid, self.run_id, patched=False)
        if untouched:
            self.cluster.set_standby(untouched, False)
        for suspect in suspects:
            self.cluster.set_standby(suspect, True)
            self.quarantine(suspect)
            self.results[suspect].result = "quarantined"
            self.results[suspect].error = f"quarantined: {problems}"
        after = self.cluster.wait_settled(self.off_nodes(list(moved), suspects), deadline=self.config.settle_timeout)
        back = {rid: sorted(after.running_on(rid))[0] for rid in moved}
        self.note_moves(node, None, back)
        report = self.checks.verify(back, before)
        for rid in moved:
            steering.drop_preference(self.cluster, rid)
        who = ", ".join(sorted(suspects))
        if report.ok:
            raise Stop(Outcome.FAILED_BACK, f"health check failed after the move: {problems}; failed back onto "
                       f"old packages (healthy again), {who} in standby and quarantined")
        raise Stop(Outcome.NEEDS_PERSON, f"health check failed after the move: {problems}; and still unhealthy "
                   f"after failing back: {'; '.join(str(p) for p in report.problems())}")

    # ------------------------------------------------------------------ helpers

    def on_patched(self, rids: list[str]) -> Any:
        def check(state: ClusterState) -> list[str]:
            return [f"{rid} not yet on a patched node" for rid in rids if not state.running_on(rid) & self.patched]
        return check

    def off_nodes(self, rids: list[str], nodes: set[str]) -> Any:
        def check(state: ClusterState) -> list[str]:
            return [f"{rid} still on {','.join(sorted(state.running_on(rid)))}" for rid in rids
                    if not state.running_on(rid) or state.running_on(rid) & nodes]
        return check

    def load(self, state: ClusterState, nodes: set[str]) -> dict[str, int]:
        """How many top-level resources each of ``nodes`` that is online and not in standby runs."""
        fit = {n.name for n in state.nodes if n.name in nodes and n.online and not n.standby}
        load = dict.fromkeys(sorted(fit), 0)
        for rid in state.top_level_ids():
            for where in state.running_on(rid) & fit:
                load[where] += 1
        return load

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

    def phase(self, node: str | None, phase: str) -> None:
        self.lock.heartbeat(phase, before_move=phase in MOVE_PHASES)
        self.history.record(self.run_id, node, phase, "start")

    def soak(self) -> None:
        if self.config.soak_time:
            self.report.step(None, "soak", f"waiting {self.config.soak_time}s before the next node")
            end = time.monotonic() + self.config.soak_time
            while time.monotonic() < end:
                self.safe_point(None)
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
                self.lock.heartbeat("soak")

    def safe_point(self, node: str | None, drained_untouched: bool = False) -> None:
        if not self._interrupted:
            return
        if node and drained_untouched:
            self.cluster.set_standby(node, False)
            self.cluster.wait_settled(None, deadline=self.config.settle_timeout)
        where = f"after draining {node} (put back online, not upgraded)" if node else "between nodes"
        raise Stop(Outcome.NEEDS_PERSON, f"interrupted by {self._interrupted}: stopped at a safe point {where}")

    def still_whole(self, node: str, drained_untouched: bool = False) -> None:
        """Stop before touching ``node`` if a node left the cluster or quorum was lost since the preflight."""
        state = self.cluster.state()
        gone = [n.name for n in state.nodes if not n.online]
        if state.summary.quorum and not gone:
            return
        why = f"nodes offline: {', '.join(gone)}" if gone else "the cluster lost quorum"
        if drained_untouched:
            self.cluster.set_standby(node, False)
            raise Stop(Outcome.NEEDS_PERSON, f"{why}; stopped after draining {node} (put back online, not upgraded)")
        raise Stop(Outcome.NEEDS_PERSON, f"{why}; stopped before draining {node}")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held from here (acquired by the caller); cleaned up and released whatever happens."""
        self.history.record(self.run_id, None, "run", "start", holder=self.nodes.local)
        try:
            yield
        finally:
            try:
                removed = steering.clean_up(self.cluster, self.all_nodes)
            except (CommandError, RuntimeError) as exc:
                removed = [f"clean-up failed: {exc}"]
                self.report.step(None, "clean-up", f"[red]{removed[0]}[/]: remove rolling-upgrade-* constraints by hand")
            self.history.record(self.run_id, None, "run", "end", cleaned=removed,
                                nodes={n: r.result for n, r in self.results.items()})
            self.lock.release()

    @contextmanager
    def signals_deferred(self) -> Iterator[None]:
        def note(signo: int, _frame: Any) -> None:
            self._interrupted = signal.Signals(signo).name
            self.report.step(None, "signal", f"{self._interrupted}: stopping at the next safe point")

        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
