"""crm_mon's XML as the level-1 snapshot: the adapter between the Pacemaker parser and the engine.

Pure: one crm_mon document in, one :class:`~upgrader.health.cluster.Snapshot`
(with the parsed :class:`~upgrader.pacemaker.state.ClusterState` beside it)
out. Fail-counts come parsed with the state (``node_history`` of the same
document), so a poll round stays one crm_mon call. A failure's identity includes its call id and
time, so the same operation failing again after the baseline counts as new.
"""

from __future__ import annotations

from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.pacemaker.state import Failure as PacemakerFailure
from upgrader.health.cluster import Failure, Resource, Snapshot


def read_crm_mon(text: str) -> tuple[ClusterState, Snapshot]:
    """Parse crm_mon's XML into the cluster state and the engine's snapshot."""
    state = parse_crm_mon(text)
    return state, to_snapshot(state, state.fail_count_map())


def to_snapshot(state: ClusterState, counts: dict[tuple[str, str], int] | None = None) -> Snapshot:
    """The engine's view of ``state``: primitives outside clones, failures, fail-counts."""
    resources = {
        r.id: Resource(r.id, r.role, r.nodes, r.failed, r.pending or "")
        for r in state.resources if r.clone is None
    }
    failures = tuple(Failure(f.resource, f.node, _op(f)) for f in state.failures)
    return Snapshot(resources, failures, dict(counts or {}))


def _op(f: PacemakerFailure) -> str:
    reason = f"{f.exitstatus}: {f.exitreason}" if f.exitreason else f.exitstatus
    when = f", at {f.last_rc_change}" if f.last_rc_change else ""
    return f"{f.op_key} ({reason}, call {f.call}{when})"
