"""The moves of a rollout: a node drained (standby) and failed over (back online).

Each move is a block: the resources move, steered by preferences in the CIB
(:mod:`steering`), and the block checks them where they landed. Once a patched
node exists, a drain steers the node's resources straight onto patched nodes
(each onto the one running least); a fail over brings the resources that still
run on old packages onto the patched node. The preferences are dropped when
the block ends; a block that raises leaves them to the fail back, which
replaces them, and to the run's clean-up.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

from upgrader.orchestrator import steering
from upgrader.orchestrator.context import RunContext
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.stops import named
from upgrader.orchestrator.watching import watching
from upgrader.pacemaker import cibcopy, shapes
from upgrader.pacemaker.live import Check, NotSettled
from upgrader.pacemaker.simulate import Move as PredictedMove
from upgrader.pacemaker.state import ClusterState
from upgrader.runs import PATCHED

if TYPE_CHECKING:
    from upgrader.orchestrator.gate import Baseline
    from upgrader.health.report import HealthReport


@dataclass
class Move:
    """Where the resources of a move run now (id -> node), and what their check needs."""

    before: Baseline  # the state and the reading before the move
    moved: dict[str, str]
    suspects: set[str]  # patched nodes a bad check blames: failed back from, quarantined
    untouched: str | None = None  # the drained node, not upgraded yet: back online if the move is undone
    untouched_too: tuple[str, ...] = ()  # the other nodes drained with it (Concurrency): back online with it
    instances: tuple[str, ...] = ()  # clones whose instance on the drained node stopped (it comes back with it)
    after: ClusterState | None = None  # the settled state the move ended in
    first_reading: ClusterState | None = None  # read just before its check: that check's first level-1 reading
    checked: HealthReport | None = None  # its check, already made with others' (a batch's shares at once)


@contextmanager
def preferring(run: RunContext, rids: Iterable[str], *, patched: bool,
               targets: Mapping[str, str] | None = None) -> Iterator[None]:
    """``rids`` prefer patched nodes (``targets`` among them) or, not ``patched``, old packages, for the block.

    Dropped when the block ends, not when it raises (see the module's docstring).
    """
    rids = list(rids)
    steering.prefer_all(run.cluster, rids, run.run_id, patched=patched, targets=targets)
    yield
    steering.drop_all(run.cluster, rids)


def refuse_stops(run: RunContext, state: ClusterState, node: str) -> list[str]:
    """What a standby of ``node`` would take down instead of moving, as crm_simulate predicts it now."""
    return shapes.stops_instead_of_moving(state, node, run.cluster.predict_standby(node))


@contextmanager
def draining(run: RunContext, node: str, before: Baseline | None = None) -> Iterator[Move]:
    """Standby: the node's resources move, onto patched nodes once there are any; its clone instances stop.

    ``before``: the state read just now, settled (else one crm_mon). A drain that took something down (a
    resource stopped instead of moved, a clone's other instances or its Promoted role lost) is undone at
    once: :func:`undo_drain`.
    """
    before = before or run.checks.baseline()
    state = before[0]
    resources, clones = shapes.movable_on(state, node), shapes.instances_on(state, node)
    onto_patched = bool(run.patched - {node})
    targets = steering.spread(resources, steering.load(state, run.patched - {node})) if onto_patched else {}
    with preferring(run, resources if onto_patched else (), patched=True, targets=targets), \
            watching(run, node, resources):
        run.put_in_standby([node], state)  # with the drain's mark, in one write
        after = run.cluster.wait_settled(cleared(node, resources + clones), deadline=run.config.settle_timeout)
        lost = shapes.taken_down(state, after, node, resources, clones)
        if lost:
            raise undo_drain(run, node, state, lost)
        # What moved, not only what was asked to: a colocation can take others along.
        moved = {rid: sorted(after.running_on(rid))[0] for rid in resources} | moved_since(after, placement(state))
        run.note_moves(node, node, moved)
        yield Move(before, moved, suspects={where for where in moved.values() if where in run.patched},
                   untouched=node, instances=clones, after=after, first_reading=after)


def cleared(node: str, rids: tuple[str, ...]) -> Check:
    """No member of ``rids`` runs on ``node`` any more (moved, or stopped: the caller tells which)."""
    def check(state: ClusterState) -> list[str]:
        return [f"{rid} still on {node}" for rid in rids if node in state.running_on(rid)
                or any(node in r.nodes and (r.active or r.busy) for r in state.members(rid))]
    return check


def undo_drain(run: RunContext, node: str | Sequence[str], before: ClusterState, lost: list[str]) -> Stop:
    """The drain took something down: ``node`` (a batch's nodes: all of them) back online at once, until all
    of it runs again; the stop."""
    nodes = [node] if isinstance(node, str) else list(node)
    said, who, are = "; ".join(lost), named(nodes), "is" if len(nodes) == 1 else "are"
    for n in nodes:
        run.history.record(run.run_id, n, "drain", "end", ok=False, problems=said)
    run.back_online(*nodes)
    try:
        run.cluster.wait_settled(restored(before), deadline=run.config.settle_timeout)
    except NotSettled as exc:
        return Stop(Outcome.NEEDS_PERSON, f"the drain of {who} took down what it should have moved ({said}); "
                    f"{who} {are} back online but not all of it runs again: {exc}")
    return Stop(Outcome.FAILED_BACK, f"the drain of {who} took down what it should have moved ({said}); {who} "
                f"{are} back online and all of it runs again; nothing was upgraded")


def restored(before: ClusterState) -> Check:
    """Everything that ran in ``before`` runs again (somewhere), with as many Promoted instances."""
    def check(state: ClusterState) -> list[str]:
        problems = []
        for rid in before.top_level_ids():
            if before.running_on(rid) and not state.running_on(rid):
                problems.append(f"{rid} runs nowhere")
            elif len(shapes.promoted(state, rid)) < len(shapes.promoted(before, rid)):
                problems.append(f"{rid} lacks a Promoted instance")
        return problems
    return check


@contextmanager
def failing_over(run: RunContext, node: str, back: list[str], instances: tuple[str, ...] = ()) -> Iterator[Move]:
    """Back online; ``back``, still on old packages, comes onto the patched node, as far as Pacemaker moves it.

    What Pacemaker keeps where it is (stickiness, constraints: crm_simulate's prediction with our
    preferences in place) is not waited for; it moves onto patched nodes at its own node's drain.
    ``instances``, clones whose instance stopped with the drain, start there again.
    """
    before = run.checks.baseline()
    with preferring(run, back, patched=True):
        coming = came_back(before[0], back, run.cluster.predict_standbys({node: False}, marked_patched(run, [node])),
                           run.patched | {node})
        stays = [rid for rid in back if rid not in coming]
        if stays:
            run.report.step(node, "fail-over", f"{', '.join(stays)} stay(s) where Pacemaker keeps them; they move "
                            "onto a patched node when their node is drained")
        with watching(run, node, coming):
            run.back_online(node, patched=True)
            after = run.cluster.wait_settled(all_of(on_patched(run, coming), instances_back(node, instances)),
                                             deadline=run.config.settle_timeout)
            # What moved, not only what was predicted: a later transition (a promotion once its score is set)
            # may have moved more before the cluster was seen idle.
            moved = {rid: sorted(after.running_on(rid))[0] for rid in coming} | moved_since(after, placement(before[0]))
            run.note_moves(node, None, moved)
            yield Move(before, moved, suspects={node}, after=after, first_reading=after)


def marked_patched(run: RunContext, nodes: list[str]) -> Callable[[ET.Element], None]:
    """A prediction's CIB copy given the patched marks that :meth:`RunContext.back_online` writes with the
    standby's end, in one write (the preferences for patched nodes read them)."""
    def prepare(cib: ET.Element) -> None:
        for n in nodes:
            cibcopy.set_node_attribute(cib, n, PATCHED, run.run_id)
    return prepare


def came_back(state: ClusterState, back: list[str], predicted: tuple[PredictedMove, ...],
              onto: set[str]) -> list[str]:
    """Those of ``back`` whose members the prediction moves (or starts) onto ``onto``, in ``back``'s order."""
    moving = {shapes.top_level(r) for m in predicted if m.relocates and m.dest in onto
              for r in state.resources if r.id == m.resource.split(":", 1)[0]}
    return [rid for rid in back if rid in moving]


def instances_back(node: str, clones: tuple[str, ...]) -> Check:
    def check(state: ClusterState) -> list[str]:
        return [f"{rid} not yet running on {node} again" for rid in clones if node not in state.running_on(rid)]
    return check


def all_of(*checks: Check) -> Check:
    def check(state: ClusterState) -> list[str]:
        return [p for c in checks for p in c(state)]
    return check


def on_patched(run: RunContext, rids: list[str]) -> Check:
    def check(state: ClusterState) -> list[str]:
        return [f"{rid} not yet on a patched node" for rid in rids if not state.running_on(rid) & run.patched]
    return check


def placement(state: ClusterState) -> dict[str, frozenset[str]]:
    """Where each group and primitive (not the clones) runs."""
    return {rid: state.running_on(rid) for rid in state.top_level_ids() if state.collection(rid) is None}


def moved_since(state: ClusterState, placed: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """What runs elsewhere now than where it was checked last (id -> a node it runs on now)."""
    return {rid: sorted(now)[0] for rid, now in placement(state).items()
            if now and rid in placed and now != placed[rid]}
