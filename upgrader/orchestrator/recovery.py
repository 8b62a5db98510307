"""An interrupted run (killed, or its node rebooted): roll back to a healthy state, say what was done.

The next ``rolling-upgrade run`` or ``node`` on the node that held the lock
finds the lock of a run whose process is gone. It reads that run's last
phase from the history and undoes what is half done:

- drain: the node was not touched; it comes back online;
- upgrade: dpkg's state decides: clean (``dpkg --audit`` empty) -> online,
  the new run upgrades what is left; not clean -> standby and quarantined;
- fail-over / verify / fail-back: a node quarantined by the fail-back stays
  in standby; otherwise it comes back online (its resources are checked by
  the moves of the new run).

Then every constraint and mark of the dead run goes, the cluster settles,
the dead lock is removed, and the new run goes on: the rollout resumes with
what is still to upgrade.
"""

from __future__ import annotations

from upgrader.config import Config
from upgrader.guard.hook import RUN_ID_ENV
from upgrader.orchestrator import steering
from upgrader.orchestrator.history import History
from upgrader.orchestrator.remote import Nodes
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

NODE_PHASES = ("drain", "upgrade", "fail-over", "verify", "fail-back")
DPKG_WAIT = 600.0  # seconds an interrupted upgrade may still take to end on its node


def recover(cluster: Cluster, nodes: Nodes, history: History, config: Config) -> list[str]:
    """Roll back a dead run of this node, if there is one; return what was done (empty: nothing)."""
    info = lock.read(cluster)
    if info is None or info.holder != nodes.local or lock.run_alive(info):
        return []
    entries = history.entries(info.run_id)
    last = next((e for e in reversed(entries) if e.get("phase") in NODE_PHASES and e.get("node")), None)
    done = [f"found run {info.run_id} interrupted in phase {info.phase} (pid {info.pid} is gone)"]
    all_nodes = [n.name for n in cluster.state().nodes]
    done += [f"removed {item}" for item in steering.clean_up(cluster, all_nodes)]
    if last is not None:
        done += _undo(cluster, nodes, info.run_id, last["node"], last["phase"])
    cluster.wait_settled(None, deadline=config.settle_timeout)
    lock.remove(cluster, info)
    done.append(f"released the lock of run {info.run_id}")
    history.record(info.run_id, None, "recovered", "note", actions=done)
    return done


def _undo(cluster: Cluster, nodes: Nodes, run_id: str, node: str, phase: str) -> list[str]:
    if phase == "upgrade":
        # The killed run's upgrade may still be running there: wait for it, then judge dpkg.
        state = nodes.runner(node, timeout=DPKG_WAIT + 60).call([nodes.tool, "dpkg-state", "--wait", str(DPKG_WAIT)])
        if state.returncode == 1:  # interrupted half-way: what an operator does first, once
            nodes.runner(node, timeout=DPKG_WAIT).call(["env", f"{RUN_ID_ENV}={run_id}", "dpkg", "--configure", "-a"])
            state = nodes.runner(node, timeout=120).call([nodes.tool, "dpkg-state", "--wait", "60"])
        if state.returncode != 0:
            steering.quarantine(cluster, node, run_id, "interrupted-upgrade")
            return [f"{node}: dpkg was interrupted and is not clean (dpkg --audit); it stays in standby, "
                    "quarantined: repair it (dpkg --configure -a), then rolling-upgrade unquarantine"]
    if phase == "fail-back" or cluster.get_attribute(node, steering.QUARANTINE) is not None:
        return [f"{node}: quarantined by the interrupted run; it stays in standby"]
    cluster.set_standby(node, False)
    return [f"{node}: back online (it was in phase {phase})"]
