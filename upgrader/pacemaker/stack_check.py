"""Before a run that upgrades the cluster stack: crm_verify on the live CIB, and Pacemaker's rolling-upgrade
rules (:mod:`upgrader.pacemaker.compat`) for the candidate Pacemaker against the running DC."""

from __future__ import annotations

from upgrader.pacemaker import compat
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import CommandError


def stack_upgrade_problems(cluster: Cluster, state: ClusterState, candidate_pacemaker: str | None) -> list[str]:
    """Every reason not to upgrade the cluster stack node by node, one sentence each (empty: none).

    ``candidate_pacemaker`` is the Debian version the run would install (of ``pacemaker``, or of
    pacemaker-cli-utils / libpacemaker1 when pacemaker itself is not upgraded); None checks the CIB only.
    """
    problems = []
    try:
        errors = cluster.verify()
    except CommandError as exc:
        problems.append(f"crm_verify could not check the live CIB: {exc}; run crm_verify -L -V by hand")
    else:
        if errors:
            problems.append(f"crm_verify finds errors in the live CIB: {'; '.join(errors)}; fix them first "
                            "(crm_verify -L -V)")
    if candidate_pacemaker is not None:
        problems += version_problems(state, candidate_pacemaker)
    return problems


def version_problems(state: ClusterState, candidate_pacemaker: str) -> list[str]:
    """The candidate Pacemaker (a Debian version) against the running DC: version, feature set, remote protocol."""
    if state.summary.dc_version is None:
        return [f"no DC is elected, so the candidate Pacemaker {candidate_pacemaker} cannot be compared with the "
                "running one; wait for the cluster to elect a DC"]
    running = compat.dc_release(state.summary.dc_version)
    candidate = compat.upstream_version(candidate_pacemaker)
    try:
        running_set = state.dc_feature_set or compat.feature_set_of(running)
        remote = tuple(n.name for n in state.nodes if n.type == "remote")
        found = [
            compat.rolling_upgrade_problem(running, candidate),
            compat.feature_set_problem(running_set, compat.feature_set_of(candidate)) if running_set else None,
            compat.remote_protocol_problem(running, candidate, remote),
        ]
    except ValueError as exc:  # a version or feature set that is not x.y.z
        return [f"cannot compare the candidate Pacemaker {candidate_pacemaker} with the running DC's "
                f"{state.summary.dc_version}: {exc}"]
    return [p for p in found if p]
