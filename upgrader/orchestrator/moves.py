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
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from upgrader.orchestrator import steering
from upgrader.orchestrator.context import RunContext
from upgrader.pacemaker.live import Check, drained
from upgrader.pacemaker.state import ClusterState

if TYPE_CHECKING:
    from upgrader.orchestrator.gate import Baseline


@dataclass
class Move:
    """Where the resources of a move run now (id -> node), and what their check needs."""

    before: Baseline  # the state and the reading before the move
    moved: dict[str, str]
    suspects: set[str]  # patched nodes a bad check blames: failed back from, quarantined
    untouched: str | None = None  # the drained node, not upgraded yet: back online if the move is undone


@contextmanager
def preferring(run: RunContext, rids: Iterable[str], *, patched: bool,
               targets: Mapping[str, str] | None = None) -> Iterator[None]:
    """``rids`` prefer patched nodes (``targets`` among them) or, not ``patched``, old packages, for the block.

    Dropped when the block ends, not when it raises (see the module's docstring).
    """
    rids = list(rids)
    for rid in rids:
        steering.prefer(run.cluster, rid, run.run_id, patched=patched, target=(targets or {}).get(rid))
    yield
    for rid in rids:
        steering.drop_preference(run.cluster, rid)


@contextmanager
def draining(run: RunContext, node: str) -> Iterator[Move]:
    """Standby: the node's resources move, onto patched nodes once there are any."""
    before = run.checks.baseline()
    resources = tuple(r for r in before[0].top_level_ids() if node in before[0].running_on(r))
    onto_patched = bool(run.patched - {node})
    targets = steering.spread(resources, steering.load(before[0], run.patched - {node})) if onto_patched else {}
    with preferring(run, resources if onto_patched else (), patched=True, targets=targets):
        run.cluster.set_standby(node, True)
        after = run.cluster.wait_settled(drained(node, resources), deadline=run.config.settle_timeout)
        moved = {rid: sorted(after.running_on(rid))[0] for rid in resources}
        run.note_moves(node, node, moved)
        yield Move(before, moved, suspects={where for where in moved.values() if where in run.patched},
                   untouched=node)


@contextmanager
def failing_over(run: RunContext, node: str, back: list[str]) -> Iterator[Move]:
    """Back online; ``back``, still on old packages, comes onto the patched node."""
    before = run.checks.baseline()
    with preferring(run, back, patched=True):
        run.back_online(node)
        after = run.cluster.wait_settled(on_patched(run, back), deadline=run.config.settle_timeout)
        moved = {rid: sorted(after.running_on(rid))[0] for rid in back}
        run.note_moves(node, None, moved)
        yield Move(before, moved, suspects={node})


def on_patched(run: RunContext, rids: list[str]) -> Check:
    def check(state: ClusterState) -> list[str]:
        return [f"{rid} not yet on a patched node" for rid in rids if not state.running_on(rid) & run.patched]
    return check
