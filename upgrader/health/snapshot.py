"""crm_mon's XML as the level-1 snapshot: the adapter between the Pacemaker parser and the engine.

Pure: one crm_mon document in, one :class:`~upgrader.health.cluster.Snapshot`
(with the parsed :class:`~upgrader.pacemaker.state.ClusterState` beside it)
out. Fail-counts come from ``node_history`` of the same document, so a poll
round stays one crm_mon call. A failure's identity includes its call id and
time, so the same operation failing again after the baseline counts as new.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..pacemaker.state import ClusterState, parse_crm_mon
from ..pacemaker.state import Failure as PacemakerFailure
from .cluster import Failure, Resource, Snapshot


def read_crm_mon(text: str) -> tuple[ClusterState, Snapshot]:
    """Parse crm_mon's XML into the cluster state and the engine's snapshot."""
    state = parse_crm_mon(text)
    return state, to_snapshot(state, fail_counts(text))


def to_snapshot(state: ClusterState, counts: dict[tuple[str, str], int] | None = None) -> Snapshot:
    """The engine's view of ``state``: primitives outside clones, failures, fail-counts."""
    resources = {
        r.id: Resource(r.id, r.role, r.nodes, r.failed, r.pending or "")
        for r in state.resources if r.clone is None
    }
    failures = tuple(Failure(f.resource, f.node, _op(f)) for f in state.failures)
    return Snapshot(resources, failures, dict(counts or {}))


def fail_counts(text: str) -> dict[tuple[str, str], int]:
    """Non-zero fail-counts by (resource, node) from crm_mon's ``node_history``."""
    counts: dict[tuple[str, str], int] = {}
    for node in ET.fromstring(text).iterfind("node_history/node"):
        for history in node.iterfind("resource_history"):
            value = history.get("fail-count", "0")
            if value.isdigit() and int(value):
                counts[(history.get("id", ""), node.get("name", ""))] = int(value)
            elif value == "INFINITY":
                counts[(history.get("id", ""), node.get("name", ""))] = 1_000_000
    return counts


def _op(f: PacemakerFailure) -> str:
    reason = f"{f.exitstatus}: {f.exitreason}" if f.exitreason else f.exitstatus
    when = f", at {f.last_rc_change}" if f.last_rc_change else ""
    return f"{f.op_key} ({reason}, call {f.call}{when})"
