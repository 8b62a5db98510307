"""unattended-upgrades on a cluster node: telling it apart, Boot-Grace, and Auto-Standby's drain.

u-u holds dpkg's frontend lock itself (it commits through python-apt), so
the run's process is u-u's when its command line names
``unattended-upgrade`` or it is the PID in ``/run/unattended-upgrades.pid``.
"""

from __future__ import annotations

from pathlib import Path

from upgrader.guard.decision import LOCK_PHASE, Decision
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, drained
from upgrader.pacemaker.state import ClusterState, resources_on

UU_PIDFILE = Path("/run/unattended-upgrades.pid")
DRAIN_PHASE = "auto-standby"


def is_unattended(pid: int) -> bool:
    """Whether process ``pid`` (the apt run's) is unattended-upgrades."""
    try:
        if UU_PIDFILE.read_text().strip() == str(pid):
            return True
    except OSError:
        pass
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(Path(arg.decode(errors="replace")).name == "unattended-upgrade" for arg in argv[:3])


def drain_for_apt(cluster: Cluster, state: ClusterState, node: str, run_id: str, ttl: float,
                  settle_timeout: float) -> Decision:
    """Auto-Standby: take the lock, put the active ``node`` in standby and wait (bounded) until it runs nothing.

    Only when the lock is free and the peers are healthy; on any trouble the
    node is put back online, the lock released, and the run refused.
    """
    held = lock.read(cluster)
    if held is not None:
        return Decision(False, f"refused: Auto-Standby does not drain {node}: the upgrade lock is held by "
                               f"{held.holder or '?'} (run {held.run_id}); wait until that run ends", node)
    problems = cluster.preflight().problems()
    if not [n for n in state.nodes if n.name != node and n.online and not n.standby]:
        problems.append(f"no other online node can take {node}'s resources")
    if problems:
        return Decision(False, f"refused: Auto-Standby does not drain {node}: {'; '.join(problems)}", node)
    upgrade_lock = lock.UpgradeLock(cluster, run_id, node, ttl=ttl)
    try:
        upgrade_lock.acquire(DRAIN_PHASE)
    except lock.LockHeld as exc:
        return Decision(False, f"refused: Auto-Standby does not drain {node}: {exc}", node)
    resources = tuple(resources_on(state, node))
    try:
        cluster.set_standby(node, True)
        cluster.wait_settled(drained(node, resources), deadline=settle_timeout)
        upgrade_lock.heartbeat(LOCK_PHASE)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the node comes back and the lock is freed
        undo = _undo_drain(cluster, node, upgrade_lock)
        return Decision(False, f"refused: Auto-Standby could not drain {node} ({type(exc).__name__}: {exc}); "
                               f"{undo}", node)
    moved = ", ".join(resources) or "nothing"
    return Decision(True, f"Auto-Standby: {node} put in standby for unattended-upgrades ({moved} moved away); "
                          f"upgrade lock held by run {run_id}", node)


def _undo_drain(cluster: Cluster, node: str, upgrade_lock: lock.UpgradeLock) -> str:
    """Back online and the lock released, each tried whatever the other did; what was done, in words."""
    said = []
    try:
        cluster.set_standby(node, False)
        said.append("it was put back online")
    except Exception as exc:  # noqa: BLE001
        said.append(f"putting it back online failed too ({exc}): crm_attribute --node {node} --name standby "
                    "--update off")
    try:
        upgrade_lock.release()
    except Exception as exc:  # noqa: BLE001
        said.append(f"releasing the upgrade lock failed ({exc}): rolling-upgrade unlock")
    return "; ".join(said)
