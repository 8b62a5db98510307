"""The health gate the rollout stands behind: :mod:`upgrader.health` on the live cluster."""

from __future__ import annotations

from typing import Mapping

from upgrader.config import Config
from upgrader.health import live
from upgrader.health.cluster import Snapshot
from upgrader.health.report import HealthReport
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState

Baseline = tuple[ClusterState, Snapshot]


class HealthGate:
    def __init__(self, cluster: Cluster, config: Config) -> None:
        self.cluster = cluster
        self.config = config
        self.defaults = live.defaults_from(config)

    def preflight(self) -> None:
        problems = live.validate_probes(self.cluster)
        if problems:
            raise ValueError("; ".join(problems))

    def baseline(self) -> Baseline:
        """One crm_mon call: the state to plan the move on and the reading to compare after it."""
        return live.read_state(self.cluster)

    def verify(self, moved: Mapping[str, str], baseline: Baseline) -> HealthReport:
        return live.verify_moved(self.cluster, moved, baseline[1], self.defaults, self.config)
