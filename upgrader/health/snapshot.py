"""crm_mon's XML as the level-1 snapshot: the adapter between the Pacemaker parser and the engine.

Pure: one crm_mon document in, one :class:`~upgrader.health.cluster.Snapshot`
(with the parsed :class:`~upgrader.pacemaker.state.ClusterState` beside it)
out. The snapshot holds the parser's own ``Resource`` and ``Failure`` values.
Fail-counts come parsed with the state (``node_history`` of the same
document), so a poll round stays one crm_mon call. A failure's identity
(:attr:`~upgrader.pacemaker.state.Failure.occurrence`) includes its call id and
time, so the same operation failing again after the baseline counts as new.
"""

from __future__ import annotations

from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.health.cluster import Snapshot


def read_crm_mon(text: str) -> tuple[ClusterState, Snapshot]:
    """Parse crm_mon's XML into the cluster state and the engine's snapshot."""
    state = parse_crm_mon(text)
    return state, snapshot_of(state)


def snapshot_of(state: ClusterState) -> Snapshot:
    """The snapshot of a whole crm_mon reading: its fail-counts with it."""
    return to_snapshot(state, state.fail_count_map())


def to_snapshot(state: ClusterState, counts: dict[tuple[str, str], int] | None = None) -> Snapshot:
    """The engine's view of ``state``: primitives outside clones, failures, fail-counts."""
    resources = {r.id: r for r in state.resources if r.clone is None}
    return Snapshot(resources, state.failures, dict(counts or {}))
