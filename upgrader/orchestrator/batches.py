"""Rolling-Upgrade::Concurrency: the next nodes drained, upgraded and failed over together.

The order stays as with one node at a time; :func:`choose` takes the next
up-to-Concurrency nodes and keeps as many as are safe together:

- never the node running the run (it may reboot itself: alone and last), a
  node already in standby, or one the patch window defers; never two nodes of
  a two-node cluster;
- a cluster-stack upgrade (or Reboot on) only while the nodes left keep
  quorum, by corosync's votes (``corosync-quorumtool -s``; unreadable: one at a time);
- when the CIB declares utilization, the nodes left offer what runs now (a sum);
- crm_simulate, asked with all of them in standby at once and the run's
  preferences in place, stops nothing but clone instances on them (the rule
  of a single drain; it applies utilization and placement-strategy).

Otherwise the batch shrinks, down to one node, and the progress says why. A
batch (:func:`together`) is drained with one standby each and one settle, its
drain checked once; its nodes upgrade in parallel; it fails over at once, and
each node's moved resources are checked on their own: a bad check fails back
and quarantines that node only. Each node keeps its own record
(:func:`~upgrader.orchestrator.stops.recorded`). A node that stops (a failed
upgrade, a fail back) lets the others of its batch finish (upgrade, fail
over, verify: their next safe point); then the run stops, before the next batch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Protocol

from upgrader.orchestrator import steering
from upgrader.orchestrator.context import RunContext
from upgrader.orchestrator.moves import (Move, all_of, came_back, cleared, instances_back, marked_patched,
                                         moved_since, on_patched, placement, preferring, undo_drain)
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.remote import ApplyResult, NodePlan
from upgrader.orchestrator.stops import STOPS, NodeWork, named, recorded, safe_point, still_whole
from upgrader.orchestrator.watching import watching_each
from upgrader.pacemaker import shapes
from upgrader.pacemaker.state import ClusterState, ParseError
from upgrader.pacemaker.utilization import shortfall
from upgrader.runner import CommandError

if TYPE_CHECKING:
    from upgrader.orchestrator.gate import Baseline


class Steps(Protocol):
    """What a batch asks of the rollout: its steps for one node (:class:`~upgrader.orchestrator.procedure.Rollout`)."""

    def catch_up(self, node: str, now: ClusterState | None = None) -> Baseline | None: ...

    def upgrade(self, node: str, stack: bool = False, packages: int = 0) -> ApplyResult: ...

    def verify(self, node: str, move: Move) -> None: ...


def candidates(run: RunContext, rest: list[str], before_node: Callable[[str], str | None] | None) -> list[str]:
    """The next up-to-Concurrency nodes of ``rest`` from its first, before the node running the run and
    before one the patch window defers (nothing asked of the cluster)."""
    found = rest[:1]
    for n in rest[1:run.config.concurrency]:
        if n == run.nodes.local or (before_node is not None and before_node(n)):
            break
        found.append(n)
    return found if rest[0] != run.nodes.local else rest[:1]


def choose(run: RunContext, steps: Steps, rest: list[str], plans: Mapping[str, NodePlan],
           before_node: Callable[[str], str | None] | None = None) -> list[str]:
    """The nodes to drain together now: the first of ``rest`` and as many after it as is safe (see the
    module's docstring); why fewer than Concurrency, said in the progress."""
    wanted = candidates(run, rest, before_node)
    if len(wanted) == 1:
        return wanted
    steps.catch_up(wanted[0])  # settled, and what moved late checked, before predicting
    state = run.cluster.state()
    standby = [n for n in wanted if n in run.kept_in_standby or (state.node(n) is not None and state.node(n).standby)]
    if standby:
        wanted = wanted[:1] if wanted[0] in standby else wanted[:wanted.index(standby[0])]
        if len(wanted) == 1:
            return wanted
    if len(state.nodes) <= 2:
        return alone(run, wanted, "a two-node cluster drains one node at a time")
    why: str | None = None
    size = len(wanted)
    if run.config.reboot or any(plans[n].ha_stack for n in wanted):
        size, why = keeping_quorum(run, wanted, plans)
    util = run.cluster.utilization()
    while size > 1:
        group = wanted[:size]
        lacking = shortfall(util, state, group) if util.declared else []
        problem = (f"{named(group)} together would leave too little capacity (utilization): {'; '.join(lacking)}"
                   if lacking else None)
        if problem is None:
            down = predicted_stops(run, state, group)
            problem = f"{named(group)} together would stop {'; '.join(down)}" if down else None
        if problem is None:
            break
        why, size = problem, size - 1
    batch = wanted[:size]
    if len(batch) == 1:
        return alone(run, batch, why or "")
    more = f" (not {named(wanted[size:])} as well: {why})" if why else ""
    run.report.step(batch[0], "plan", f"draining {named(batch)} together (Concurrency {run.config.concurrency}){more}")
    return batch


def alone(run: RunContext, wanted: list[str], why: str) -> list[str]:
    run.report.step(wanted[0], "plan", f"draining {wanted[0]} alone: {why}")
    return wanted[:1]


def keeping_quorum(run: RunContext, wanted: list[str], plans: Mapping[str, NodePlan]) -> tuple[int, str | None]:
    """How many of ``wanted`` may be out of the cluster at once (their stacks stopped, or rebooting), by
    corosync's votes; one when the votes cannot be read, and why fewer than all."""
    what = "a cluster-stack upgrade" if any(plans[n].ha_stack for n in wanted) else "a reboot (Reboot is on)"
    try:
        votes = run.cluster.votes()
    except (CommandError, ParseError) as exc:
        return 1, f"{what} takes nodes out of the cluster and corosync's votes cannot be read ({exc})"
    unknown = [n for n in wanted if n not in votes.members]
    if unknown or "2Node" in votes.flags:
        return 1, (f"{what} takes nodes out of the cluster and corosync-quorumtool does not list "
                   f"{named(unknown)} by name" if unknown else f"{what} in a two_node corosync cluster")
    size = len(wanted)
    while size > 1 and votes.left_without(wanted[:size]) < votes.quorum:
        size -= 1
    if size == len(wanted):
        return size, None
    over = wanted[:size + 1]
    return size, (f"{what} of {named(over)} together would leave {votes.left_without(over)} vote(s), quorum "
                  f"needs {votes.quorum}")


def steer(run: RunContext, state: ClusterState, nodes: list[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The resources a drain of ``nodes`` moves, and each one's target among the patched nodes (none yet: {})."""
    resources = tuple(rid for n in nodes for rid in shapes.movable_on(state, n))
    onto = run.patched - set(nodes)
    return resources, (steering.spread(resources, steering.load(state, onto)) if onto else {})


def predicted_stops(run: RunContext, state: ClusterState, nodes: list[str]) -> list[str]:
    """What a standby of all ``nodes`` at once would take down, as crm_simulate predicts it with the drain's
    preferences in place (one line each; empty: nothing)."""
    resources, targets = steer(run, state, nodes)
    onto = bool(run.patched - set(nodes))

    def prefer(copy: ET.Element) -> None:
        steering.prefer_in_copy(copy, resources, run.run_id, patched=True, targets=targets)

    predicted = run.cluster.predict_standbys(dict.fromkeys(nodes, True), prefer if onto else None)
    return shapes.stops_instead_of_moving_any(state, nodes, predicted)


# ---------------------------------------------------------------------- a batch


class Block:
    """One node's record in a batch (:func:`~upgrader.orchestrator.stops.recorded`), ended on its own."""

    def __init__(self, run: RunContext, node: str, plan: NodePlan) -> None:
        self.node = node
        self.cm: AbstractContextManager[NodeWork] = recorded(run, node, [asdict(c) for c in plan.changes])
        self.work = self.cm.__enter__()
        self.ended = False

    def end(self, exc: BaseException | None = None) -> BaseException | None:
        """The node's result and history written for what happened to it; the stop it raises on (None: it
        went on, or was deferred)."""
        self.ended = True
        try:
            if exc is None:
                self.cm.__exit__(None, None, None)
                return None
            return None if self.cm.__exit__(type(exc), exc, exc.__traceback__) else exc
        except BaseException as raised:  # noqa: BLE001 - an unexpected error, ended like a failed check
            return raised


def together(run: RunContext, steps: Steps, batch: list[str], plans: Mapping[str, NodePlan]) -> None:
    """Drain ``batch`` at once, upgrade its nodes in parallel, fail them over at once, each verified on its
    own; every node's record ends whatever happens, and the first stop is raised once all have. Each
    node's apply starts ahead of the drain (:meth:`RunContext.applying_soon`)."""
    with ExitStack() as soon:
        for n in batch:
            soon.enter_context(run.applying_soon(n, plans[n]))
        _together(run, steps, batch, plans)


def _together(run: RunContext, steps: Steps, batch: list[str], plans: Mapping[str, NodePlan]) -> None:
    blocks = {n: Block(run, n, plans[n]) for n in batch}
    stops: dict[str, BaseException] = {}
    try:
        drained = drain(run, steps, batch)
    except BaseException as exc:  # nothing upgraded: each node ended as one node's drain would be
        for n, block in blocks.items():
            raised = block.end(exc)
            if raised is not None:
                stops[n] = raised
        raise combined(stops) from None
    for block in blocks.values():
        block.work.touched = True
    upgraded = upgrade(run, steps, batch, plans, blocks, stops)
    if upgraded:
        try:
            fail_over(run, steps, upgraded, drained, blocks, stops)
        except BaseException as exc:  # the fail over itself (its settle): every node not yet ended
            for n in upgraded:
                if not blocks[n].ended:
                    raised = blocks[n].end(exc)
                    if raised is not None:
                        stops[n] = raised
    for n in upgraded:
        if not blocks[n].ended:
            blocks[n].end()
    if stops:
        raise combined(stops)


def combined(stops: Mapping[str, BaseException]) -> BaseException:
    """One stop for the batch: the one raised, or their reasons in one line (each said once)."""
    distinct = list({id(s): s for s in stops.values()}.values())
    if len(distinct) == 1:
        return distinct[0]
    codes = {s.code for s in distinct if isinstance(s, Stop)}
    code = Outcome.FAILED_BACK if codes == {Outcome.FAILED_BACK} and all(isinstance(s, Stop) for s in distinct) \
        else Outcome.NEEDS_PERSON
    return Stop(code, "; ".join(dict.fromkeys(str(s) for s in distinct)))


def drain(run: RunContext, steps: Steps, batch: list[str]) -> dict[str, Move]:
    """Standby for every node of the batch, one settle; what moved checked once. Each node's move."""
    for n in batch:
        run.phase(n, "drain")
    still_whole(run, batch)
    with draining(run, batch) as (joint, moves):
        if joint.moved:
            steps.verify(batch[0], joint)
            for n in batch[1:]:
                run.results[n].checks += [f"{len(moves[n].moved)} resource(s) healthy (checked with {batch[0]}'s)"]
    run.placed = placement(joint.after) if joint.after else run.placed
    for n in batch:
        run.report.step(n, "drain", f"standby with {named([m for m in batch if m != n])}; {len(moves[n].moved)} "
                        "resource(s) moved and healthy" if moves[n].moved else
                        f"standby with {named([m for m in batch if m != n])}; it ran nothing")
    safe_point(run, batch, drained_untouched=True)  # every node back online, not upgraded
    still_whole(run, batch, drained_untouched=True)
    return moves


@contextmanager
def draining(run: RunContext, batch: list[str]) -> Iterator[tuple[Move, dict[str, Move]]]:
    """Standby for every node of ``batch`` at once (:func:`~upgrader.orchestrator.moves.draining` for several):
    the move of them all (what a check blames: patched nodes it landed on) and each node's own.

    A drain that took something down is undone at once: every node back online, until all of it runs again.
    """
    before = run.checks.baseline()
    state = before[0]
    resources = {n: shapes.movable_on(state, n) for n in batch}
    clones = {n: shapes.instances_on(state, n) for n in batch}
    moving, targets = steer(run, state, batch)
    onto_patched = bool(run.patched - set(batch))
    with preferring(run, moving if onto_patched else (), patched=True, targets=targets), \
            watching_each(run, resources):
        run.put_in_standby(batch, state)  # one write: one transition moves them all
        after = run.cluster.wait_settled(all_of(*(cleared(n, resources[n] + clones[n]) for n in batch)),
                                         deadline=run.config.settle_timeout)
        lost = shapes.taken_down_together(state, after, resources, clones)
        if lost:
            raise undo_drain(run, batch, state, lost)
        own = {n: {rid: sorted(after.running_on(rid))[0] for rid in resources[n]} for n in batch}
        also = {rid: where for rid, where in moved_since(after, placement(state)).items()
                if not any(rid in o for o in own.values())}  # taken along (a colocation): the first node's
        own[batch[0]] |= also
        moves = {}
        for n in batch:
            run.note_moves(n, n, own[n])
            moves[n] = Move(before, own[n], suspects={w for w in own[n].values() if w in run.patched},
                            untouched=n, instances=clones[n], after=after)
        joint = {rid: where for o in own.values() for rid, where in o.items()}
        yield (Move(before, joint, suspects={w for w in joint.values() if w in run.patched}, untouched=batch[0],
                    untouched_too=tuple(batch[1:]), after=after), moves)


def upgrade(run: RunContext, steps: Steps, batch: list[str], plans: Mapping[str, NodePlan],
            blocks: Mapping[str, Block], stops: dict[str, BaseException]) -> list[str]:
    """Every node's upgrade at once (one thread each: a remote call); those upgraded, in the batch's order.

    A node whose upgrade stops or is deferred is ended there (as one node's would be: quarantined in
    standby, or back online); the others finish theirs.
    """
    def one(n: str) -> None:
        applied = steps.upgrade(n, stack=plans[n].ha_stack, packages=len(plans[n].changes))
        blocks[n].work.upgraded(applied.changes)

    with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="upgrade") as pool:
        futures = {n: pool.submit(one, n) for n in batch}
    upgraded = []
    for n, future in futures.items():
        exc = future.exception()
        if exc is None:
            upgraded.append(n)
            continue
        raised = blocks[n].end(exc)
        if raised is not None:
            stops[n] = raised
    return upgraded


def fail_over(run: RunContext, steps: Steps, nodes: list[str], drained: Mapping[str, Move],
              blocks: Mapping[str, Block], stops: dict[str, BaseException]) -> None:
    """Every upgraded node back online at once; what still runs on old packages comes onto patched nodes; each
    node's share of what moved (what runs on it now) checked on its own, a bad check failing back that node."""
    for n in nodes:
        run.phase(n, "fail-over")
    back = [rid for n in nodes for rid, where in drained[n].moved.items() if where not in run.patched | set(nodes)]
    instances = {n: drained[n].instances for n in nodes}
    before = run.checks.baseline()
    with ExitStack() as watched:  # the outage watch: from the first node back online until every check ended
        with preferring(run, back, patched=True):
            coming = came_back(before[0], back, run.cluster.predict_standbys(dict.fromkeys(nodes, False),
                                                                              marked_patched(run, nodes)),
                               run.patched | set(nodes)) if back else []
            stays = [rid for rid in back if rid not in coming]
            if stays:
                run.report.step(nodes[0], "fail-over", f"{', '.join(stays)} stay(s) where Pacemaker keeps them; "
                                "they move onto a patched node when their node is drained")
            watched.enter_context(watching_each(run, {n: [rid for rid in coming if rid in drained[n].moved]
                                                      for n in nodes}))
            run.back_online(*nodes, patched=True)  # one write: one transition brings them all back, marked
            after = run.cluster.wait_settled(all_of(on_patched(run, coming),
                                                    *(instances_back(n, instances[n]) for n in nodes)),
                                             deadline=run.config.settle_timeout)
            moved = {rid: sorted(after.running_on(rid))[0] for rid in coming} | moved_since(after,
                                                                                          placement(before[0]))
            share = {n: {rid: w for rid, w in moved.items() if w == n} for n in nodes}
            share[nodes[0]] |= {rid: w for rid, w in moved.items() if w not in nodes}  # elsewhere: as one node's
            for n in nodes:
                run.note_moves(n, None, share[n])
            moves = {n: Move(before, share[n], suspects={n}, after=after) for n in nodes}
            for n in nodes:
                if moves[n].moved:
                    run.phase(n, "verify")
            check_together([m for m in moves.values() if m.moved], run, after)
            for n in nodes:  # checked with the preferences still in place, as one node's fail over is
                move = moves[n]
                try:
                    if move.moved:
                        steps.verify(n, move)
                except BaseException as exc:  # a fail back of this node: the others are still checked
                    raised = blocks[n].end(exc)
                    if raised is not None:
                        stops[n] = raised
                    continue
                run.report.step(n, "fail-over", f"online; {len(move.moved)} resource(s) restarted on the "
                                "patched root and healthy" if move.moved else "online")
    run.placed = placement(after)


def check_together(moves: list[Move], run: RunContext, first: ClusterState) -> None:
    """The shares of several nodes checked in one health check (each share then judged on its own rows,
    :attr:`Move.checked`): one check's time for the batch, not one a node after the other. A check that
    cannot be made at all leaves each share to be checked on its own, as before (its error, its node's)."""
    if len(moves) < 2:
        return
    joint = {rid: where for m in moves for rid, where in m.moved.items()}
    try:
        report = run.checks.verify(joint, moves[0].before, first)
    except Exception:  # noqa: BLE001 - each share's own check raises it again, for its own node alone
        return
    for m in moves:
        m.checked = report.of(m.moved)


__all__ = ["STOPS", "choose", "together"]
