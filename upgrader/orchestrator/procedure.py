"""The rolling upgrade, as an operator would write it on a whiteboard.

    preflight (one package set) -> lock -> stage the set on every node
              -> for each node: drain -> upgrade -> fail over
                                (after each move: verify; on a bad check: fail back, quarantine, stop)
                 (Concurrency N: up to N nodes at a time, when it is safe: drain together ->
                  upgrade in parallel -> fail over together, each node verified on its own)
              -> clean up -> unlock

Preflight refuses before anything changes (:mod:`preflight`) and freezes the
run's package set; every node downloads it before the first drain and installs
exactly it (:mod:`staging`). A node is drained
by standby; once a patched node exists, resources are steered straight onto
patched nodes, so each moves once (:mod:`moves`, :mod:`steering`). A node's
upgrade runs with its cluster stack stopped when the stack is upgraded, and is
followed by its reboot when it asks for one and Reboot is on (:mod:`restarts`).
Every move is checked (:mod:`verification`). With Rolling-Upgrade::Concurrency above 1 the next
nodes go together when crm_simulate says the others hold everything (:mod:`batches`). What the run adds to the CIB is
removed at the end; a quarantine mark stays until an operator clears it.
Ctrl-C / SIGTERM stop at the next safe point (:mod:`stops`). The APT hooks'
finishing step is :mod:`finishing`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Callable, Mapping

from upgrader.config import Config
from upgrader.history import History
from upgrader.orchestrator import batches, finishing, holding, preflight, staging, verification
from upgrader.orchestrator.context import (
    Checks,
    NodeResult,
    Reporter,
    Result,
    RunContext,
)
from upgrader.orchestrator.moves import (
    Move,
    draining,
    failing_over,
    moved_since,
    placement,
    refuse_stops,
)
from upgrader.orchestrator.outcome import Deferred, Outcome, Refused, Stop
from upgrader.orchestrator.recovery import Recovered
from upgrader.orchestrator.remote import ApplyResult, NodePlan, Nodes
from upgrader.orchestrator.restarts import Restarts
from upgrader.orchestrator.stops import (
    STOPS,
    deferred,
    recorded,
    safe_point,
    signals_deferred,
    soak,
    still_whole,
    stopped,
)
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.pacemaker.lock import LockHeld
from upgrader.pacemaker.state import ParseError
from upgrader.packages.pkgset import SetError
from upgrader.packages.summary import summary
from upgrader.runner import CommandError

if TYPE_CHECKING:
    from upgrader.orchestrator.gate import Baseline
    from upgrader.pacemaker.state import ClusterState

__all__ = ["Checks", "Confirm", "NodeResult", "Outcome", "Refused", "Reporter", "Result", "Rollout", "Stop"]

Confirm = Callable[[dict[str, NodePlan], list[str]], bool]  # the plans and the upgrade order: go ahead?


class Rollout(RunContext):
    """One run: the rolling upgrade of the cluster (:meth:`run`), or the APT hooks' finishing step (:meth:`finish`)."""

    def __init__(self, cluster: Cluster, nodes: Nodes, checks: Checks, config: Config, history: History,
                 report: Reporter, run_id: str, before_node: Callable[[str], str | None] | None = None) -> None:
        super().__init__(cluster, nodes, checks, config, history, report, run_id)
        self.before_node = before_node  # a reason not to start this node now (the patch window), or None
        self.restarts = Restarts(cluster, nodes, config, run_id, self.phase,
                                 lambda node, phase, text: self.report.step(node, phase, text))
        self.recovered = Recovered()  # what rolling back an interrupted run did before this one, and its set

    def run(self, only: list[str] | None = None, confirm: Confirm | None = None) -> Outcome:
        """Preflight, lock, stage, then node by node (``only`` these); the exit code (:class:`Refused`:
        nothing changed)."""
        try:
            plans = self.preflight(only)
            # One set for the cluster (an interrupted run's, when this one goes on after it); a lagging node waits.
            lagging = staging.freeze(self, plans, resumed=self.recovered.package_set)
        except (CommandError, ParseError, NotSettled) as exc:
            raise Refused(f"refused: the cluster cannot be read safely: {exc}") from None
        except SetError as exc:
            raise Refused(f"refused: {exc}; nothing was changed") from None
        order = [n for n in plans if plans[n].changes and n not in lagging]
        for n, plan in plans.items():
            self.results[n] = NodeResult(n, result=Result.UP_TO_DATE if not plan.changes else Result.PENDING,
                                         changes=[asdict(c) for c in plan.changes])
        if not order and not lagging:
            self.report.step(None, "plan", "nothing to upgrade on any node")
            return Outcome.DONE
        if confirm is not None and not confirm(plans, order):
            raise Refused("not confirmed; nothing was changed")
        try:
            self.lock.acquire("preflight", package_set=self.package_set.digest if self.package_set else "")
        except LockHeld as exc:
            raise Refused(f"refused: {exc}; wait for it to finish, or see 'rolling-upgrade status'") from None
        with self.locked(), signals_deferred(self):
            try:
                order = self.stage(plans, order, lagging)
                self.refuse_all_deferred(order)
                safe_point(self, None)  # a signal while staging: stop before the first drain
                for n, plan in plans.items():
                    if not plan.changes:  # up to date, or the set has nothing for it
                        self.mark_patched(n)
                rest = order
                while rest:
                    if rest is not order:
                        soak(self)
                        safe_point(self, None)  # a signal during the last node: stop before this one is drained
                    if deferred(self, rest, self.before_node):
                        break
                    rest = rest[self.upgrade_next(rest, plans):]
                if order:
                    self.catch_up(order[-1])  # the last node's fail over may move more once it settled
                return Outcome.DONE
            except Refused:  # staging refused: nothing is drained
                raise
            except STOPS as exc:
                return stopped(self, None, exc)
            except Exception as exc:  # between nodes: nothing is drained; said in one line, the lock released
                return stopped(self, None, Stop(Outcome.NEEDS_PERSON, f"stopped on an unexpected error between "
                                                f"nodes ({type(exc).__name__}: {exc}); no node is drained"))

    def stage(self, plans: dict[str, NodePlan], order: list[str], lagging: Mapping[str, str]) -> list[str]:
        """Before the first drain: holds a newer build ends are released, lagging nodes deferred, and every
        node stages the set (:mod:`staging`); the nodes to upgrade, ``plans`` set to what each one stages."""
        for line in holding.release_expired(self.cluster, self.nodes, self.all_nodes, preflight.newest(plans),
                                            {n: p.pins for n, p in plans.items()}):
            self.report.step(None, "hold", line)
        for n, why in lagging.items():
            staging.defer(self, n, why)
        staged = staging.stage(self, order)
        for n, changes in staged.items():
            plans[n] = replace(plans[n], changes=changes)
        return [n for n in order if staged.get(n)]

    def refuse_all_deferred(self, order: list[str]) -> None:
        """:class:`Refused` when staging left nothing to upgrade because every node with changes was deferred:
        nothing is patched, and a run that exits 0 every night doing nothing would hide it."""
        waiting = {n: r.error for n, r in self.results.items() if r.result == Result.DEFERRED}
        if waiting and not order:
            raise Refused("refused: no node can take the run's package set, nothing was drained: "
                          + "; ".join(f"{n}: {why}" for n, why in waiting.items()))

    def finish(self) -> Outcome:
        """The APT hooks' finishing step on this node (:mod:`finishing`): this procedure from "fail over" on."""
        return finishing.finish(self, self.fail_over, self.catch_up)

    def preflight(self, only: list[str] | None) -> dict[str, NodePlan]:
        """Every reason not to start, before anything changes; the plans, in upgrade order (:mod:`preflight`)."""
        return preflight.check(self, only)

    def upgrade_next(self, rest: list[str], plans: Mapping[str, NodePlan]) -> int:
        """The next node (:meth:`upgrade_one`), or with Concurrency above 1 the next nodes that are safe
        together (:mod:`batches`); how many of ``rest`` were taken."""
        if self.config.concurrency == 1:
            batch = rest[:1]
        else:
            try:
                batch = batches.choose(self, self, rest, plans, self.before_node)
            except Exception:  # its catch up (a fail back), or the cluster asked: the first node's, as in its drain
                with recorded(self, rest[0], [asdict(c) for c in plans[rest[0]].changes]):
                    raise
                return 1
        if len(batch) == 1:
            self.upgrade_one(batch[0], plans[batch[0]])
        else:
            batches.together(self, self, batch, plans)
        return len(batch)

    def upgrade_one(self, node: str, plan: NodePlan) -> None:
        """Drain, upgrade, fail over; its result recorded whatever happens, a stop raised on (:func:`recorded`)."""
        with recorded(self, node, [asdict(c) for c in plan.changes]) as work, self.applying_soon(node, plan):
            whole = still_whole(self, node)
            drained = self.drain(node, whole)
            safe_point(self, node, drained_untouched=True)
            still_whole(self, node, drained_untouched=True)
            work.touched = True  # from here its packages may change
            applied = self.upgrade(node, stack=plan.ha_stack, packages=len(plan.changes))
            work.upgraded(applied.changes)
            self.fail_over(node, drained.moved, drained.instances)

    def drain(self, node: str, now: ClusterState | None = None) -> Move:
        """Standby; the node's resources move (onto patched nodes once there are any) and are checked.

        Refused first, nothing changed, when Pacemaker would stop something instead of moving it. ``now``:
        a state just read, where the wait for a settled cluster starts.
        """
        self.phase(node, "drain")
        before = self.catch_up(node, now) or self.checks.baseline()
        if node not in self.kept_in_standby:  # asked again: the cluster may have changed since the preflight
            down = refuse_stops(self, before[0], node)
            if down:
                raise Stop(Outcome.NEEDS_PERSON, f"stopped before draining {node}: its standby would take down "
                           f"what it should move: {'; '.join(down)}")
        with draining(self, node, before) as move:
            if move.moved:
                self.verify(node, move)
        self.placed = placement(move.after) if move.after else self.placed
        self.report.step(node, "drain", f"standby; {len(move.moved)} resource(s) moved and healthy" if move.moved
                         else "standby; it ran nothing")
        return move

    def upgrade(self, node: str, stack: bool = False, packages: int = 0) -> ApplyResult:
        """The dist-upgrade on the drained node (its cluster stack stopped around it when ``stack``), then
        its reboot if it asks for one and Reboot is on; a failure of dpkg leaves it in standby, quarantined."""
        self.phase(node, "upgrade")
        if stack:
            with self.restarts.stack_stopped(node):
                applied = self.apply(node, packages)
        else:
            applied = self.apply(node, packages)
        if not applied.ok and not applied.touched:
            self.back_online(node, settle=True)
            if applied.unavailable:  # a version of the set gone since staging (its indexes refreshed)
                raise Deferred(f"{applied.error}; {node} is back online, not upgraded: a later run takes it")
            raise Stop(Outcome.NEEDS_PERSON, f"the upgrade of {node} failed before dpkg ran: {applied.error}; "
                       f"nothing was changed there, {node} is back online")
        if not applied.ok:
            self.quarantine(node)
            raise Stop(Outcome.NEEDS_PERSON, f"the upgrade of {node} failed: {applied.error}; {node} stays in "
                       f"standby and quarantined, its peers run its resources untouched")
        done = summary(applied.changes) if applied.changes else "packages upgraded"
        self.report.step(node, "upgrade", f"{done} in {applied.seconds:.1f}s")
        self.results[node].old_code, self.results[node].reboot = list(applied.services), list(applied.reboot)
        if applied.services:
            self.report.step(node, "upgrade", f"left on old code (restart them): {', '.join(applied.services)}")
        if applied.reboot_required and self.config.reboot:
            self.restarts.reboot(node)
        elif applied.reboot_required:
            self.report.step(node, "upgrade", "a reboot is required; Rolling-Upgrade::Reboot is off: not "
                             "rebooting (reported)")
        return applied

    def apply(self, node: str, packages: int = 0) -> ApplyResult:
        with self.heartbeats("upgrade"):
            applied = self.nodes.apply(node, self.run_id, lambda e: self.report.progress(node, e),
                                       timeout=self.config.apply_limit(packages),
                                       set_digest=self.package_set.digest if self.package_set else None)
        self.history.record(self.run_id, node, "upgrade", "end", ok=applied.ok, error=applied.error,
                            changes=[asdict(c) for c in applied.changes], reboot_required=applied.reboot_required,
                            stale_processes=list(applied.stale_processes), old_code=list(applied.services),
                            reboot=list(applied.reboot), seconds=round(applied.seconds, 1))
        return applied

    def fail_over(self, node: str, moved_away: Mapping[str, str], instances: tuple[str, ...] = ()) -> None:
        """Back online; resources that still run on old packages come onto the patched node and are checked.

        A node an operator had put in standby before the run stays there: upgraded, not brought back.
        """
        self.phase(node, "fail-over")
        if node in self.kept_in_standby:
            self.report.step(node, "fail-over", "left in standby, as it was before the run (an operator's standby)")
            return
        back = [rid for rid, where in moved_away.items() if where not in self.patched | {node}]
        if not back and not instances:  # its resources already run on patched nodes: nothing to wait for
            self.back_online(node, patched=True)
            self.report.step(node, "fail-over", "online")
            return
        with failing_over(self, node, back, instances) as move:
            if move.moved:
                self.phase(node, "verify")
                self.verify(node, move)
        self.placed = placement(move.after) if move.after else self.placed
        self.report.step(node, "fail-over", f"online; {len(move.moved)} resource(s) restarted on the patched root "
                         "and healthy" if move.moved else "online")

    def catch_up(self, node: str, now: ClusterState | None = None) -> Baseline | None:
        """What moved since it was last checked (a later transition of Pacemaker's: a promotion once a score
        is set, a move after a fail over had settled) is checked where it runs now, before anything else
        is touched; a bad check fails back like any move's. The settled reading when nothing had moved
        (what a drain that follows at once starts from: a crm_mon or two less), else None. ``now``: a state
        just read, the settle's first reading; the settled state is the baseline (read after the DC
        answered idle: a crm_mon less)."""
        settled = self.cluster.wait_settled(None, deadline=self.config.settle_timeout, first=now)  # late moves first
        before = self.checks.baseline(settled)
        late = moved_since(before[0], self.placed)
        if not late:
            self.placed = placement(before[0])
            return before
        self.report.step(node, "verify", f"{', '.join(late)} moved since last checked: checking where it runs")
        self.note_moves(node, "(later)", late)
        self.verify(node, Move(before, late, suspects={n for n in late.values() if n in self.patched},
                               after=before[0], first_reading=before[0]))
        self.placed = placement(before[0])
        return None

    def verify(self, node: str, move: Move) -> None:
        """The moved resources checked where they run now; on a bad check: fail back, and stop."""
        problems = verification.problems(self, node, move)
        if problems is None:
            return
        if not move.suspects:  # moved onto old packages and unhealthy there: not the upgrade's doing
            raise verification.not_upgraded(self, node, move, problems)
        raise self.fail_back(node, move, problems)

    def fail_back(self, node: str, move: Move, problems: str) -> Stop:
        """Resources back onto old packages, checked there; the suspect node(s) standby and quarantined: the stop."""
        return verification.fail_back(self, node, move, problems)
