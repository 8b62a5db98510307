"""The health gate the rollout stands behind: :mod:`upgrader.health` on the live cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from upgrader.config import Config
from upgrader.health import live
from upgrader.health.cluster import Snapshot
from upgrader.health.outage import Address, address
from upgrader.health.report import HealthReport
from upgrader.health.snapshot import snapshot_of
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState

Baseline = tuple[ClusterState, Snapshot]


@dataclass
class _LocalKnown(Cluster):
    """The cluster from a node whose name is already known: ``crm_node -n`` is not asked again.

    crm_node asks the controller, which answers late (up to a second in the
    lab) while it finishes a transition: exactly when a move is verified.
    """

    local: str = ""

    def local_node(self) -> str:
        return self.local


class HealthGate:
    def __init__(self, cluster: Cluster, config: Config) -> None:
        self.cluster = cluster
        self.config = config
        self.defaults = live.defaults_from(config)
        self._local: str | None = None
        self._watched: Mapping[str, live.HealthSpec] | None = None  # the declarations read at the preflight

    def preflight(self) -> None:
        self._known()  # this node's name, asked once while the cluster is quiet
        found = live.read_declarations(self.cluster)
        if found.problems:
            raise ValueError("; ".join(found.problems.values()))
        self._watched = found.specs

    def baseline(self, state: ClusterState | None = None) -> Baseline:
        """One crm_mon call: the state to plan the move on and the reading to compare after it; ``state``,
        one just read (a settled one), instead of the call."""
        return live.read_state(self.cluster) if state is None else (state, snapshot_of(state))

    def verify(self, moved: Mapping[str, str], baseline: Baseline, first: ClusterState | None = None) -> HealthReport:
        """``first``: the settled state the move was just seen in, the level-1 checks' first reading."""
        return live.verify_moved(self._known(), moved, baseline[1], self.defaults, self.config,
                                 first=snapshot_of(first) if first is not None else None)

    def addresses(self, rids: Iterable[str]) -> dict[str, list[Address]]:
        """The level-3 probe addresses (IP literals, host:port) of each of ``rids`` that declares one: what
        the outage watch of a move connects to. The declarations the preflight read (a watch is news, never
        a verdict: one cibadmin call less before each move's standby), else one cibadmin call."""
        specs = self._watched if self._watched is not None else live.read_declarations(self.cluster).specs
        found = {rid: [a for p in specs[rid].probes if (a := address(p.host, p.port))] for rid in rids if rid in specs}
        return {rid: addrs for rid, addrs in found.items() if addrs}

    def _known(self) -> Cluster:
        if self._local is None:
            self._local = self.cluster.local_node()
        return _LocalKnown(self.cluster.runner, self._local)
