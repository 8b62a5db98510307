"""An interrupted run (killed, or its node rebooted): roll back to a healthy state, say what was done.

The next ``rolling-upgrade run`` or ``node`` on the node that held the lock
finds the lock of a run whose process is gone. It reads that run's last
phase from the history and undoes what is half done:

- drain: the node was not touched; it comes back online;
- upgrade (stack-stop, stack-start): dpkg's state decides: clean (``dpkg
  --audit`` empty) -> online, the new run upgrades what is left; not clean
  -> standby and quarantined. A cluster stack the run stopped there is
  started again first, and the node must rejoin;
- reboot: the node must rejoin (up to Rejoin-Timeout), then comes online;
- fail-over / verify / fail-back: a node quarantined by the fail-back stays
  in standby; otherwise it comes back online (its resources are checked by
  the moves of the new run).

With Concurrency above 1, every node of the batch whose work had not ended is
undone so, each by its own last phase.

A run that stopped the cluster stack of the node it ran on and died there
leaves that node unable to ask the cluster: :func:`restart_own_stack`
starts it again first (``rolling-upgrade run``, ``node``, ``resume``).

Then every constraint and mark of the dead run goes, the cluster settles,
the dead lock is removed, and the new run goes on: the rollout resumes with
what is still to upgrade.

An apt run's lock (``apt-KEY``) whose apt process, finisher and finishing
step are all gone (asked on the node it ran on, from any node: ``rolling-upgrade
run-state``) is an ended apt run that never finished: its node is undone as
from an interrupted upgrade, then the lock goes. One kept on purpose (phase
``dpkg-failed``) or whose node cannot be asked is left as it is.
"""

from __future__ import annotations

from pathlib import Path

from upgrader.config import Config
from upgrader.runkey import ENDED
from upgrader.runs import APT_RUN_PREFIX, DPKG_FAILED, RUN_ID_ENV, WAITING
from upgrader.hastack.control import NOTHING_TO_START
from upgrader.orchestrator import steering
from upgrader.history import History
from upgrader.orchestrator.remote import Nodes
from upgrader.orchestrator.restarts import online
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.runner import DPKG_RECHECK_WAIT, DPKG_WAIT, REPORT_MARGIN

NODE_PHASES = ("drain", "upgrade", "stack-stop", "stack-start", "reboot", "fail-over", "verify", "fail-back")
UPGRADE_PHASES = ("upgrade", "stack-stop", "stack-start")


class Recovered(list):
    """What rolling back an interrupted run did, one line each (empty: nothing), and the digest of that
    run's package set (the new run goes on with the same set)."""

    package_set: str = ""


def recover(cluster: Cluster, nodes: Nodes, history: History, config: Config) -> Recovered:
    """Roll back a dead run of this node, if there is one; return what was done (empty: nothing)."""
    info = lock.read(cluster)
    if info is not None and info.run_id.startswith(APT_RUN_PREFIX):
        return Recovered(_ended_apt_run(cluster, nodes, history, config, info))
    if info is None or info.holder != nodes.local or lock.run_alive(info):
        return Recovered()
    entries = history.entries(info.run_id)
    last = last_node_record(entries)
    done = Recovered([f"found run {info.run_id} interrupted in phase {interrupted_in(entries, last, info)} "
                      f"(pid {info.pid} is gone)"])
    done.package_set = info.package_set
    all_nodes = [n.name for n in cluster.state().nodes]
    done += [f"removed {item}" for item in steering.clean_up(cluster, all_nodes)]
    if last is not None:
        done += _undo(cluster, nodes, config, info.run_id, last["node"], last["phase"])
        for other, phase in open_nodes(entries).items():  # a batch's others (Rolling-Upgrade::Concurrency)
            if other != last["node"]:
                done += _undo(cluster, nodes, config, info.run_id, other, phase)
    cluster.wait_settled(None, deadline=config.settle_timeout)
    lock.remove(cluster, info)
    done.append(f"released the lock of run {info.run_id}")
    history.record(info.run_id, None, "recovered", "note", actions=done, package_set=info.package_set or None)
    return done


def last_node_record(entries: list[dict]) -> dict | None:
    """The run's last history record of a node phase: where it was when it died."""
    return next((e for e in reversed(entries) if e.get("phase") in NODE_PHASES and e.get("node")), None)


def interrupted_in(entries: list[dict], last: dict | None, info: lock.LockInfo) -> str:
    """The phase a dead run was in: ``last`` (:func:`last_node_record`), else its last phase started;
    the lock's phase only without either (the lock is not rewritten at every phase: it may be a step behind)."""
    if last is not None:
        return last["phase"]
    started = next((e["phase"] for e in reversed(entries) if e.get("event") == "start" and e.get("phase") != "run"),
                   None)
    return started or info.phase


def open_nodes(entries: list[dict]) -> dict[str, str]:
    """Nodes whose work the run started and never ended (a ``node`` start, no end), each with its last phase."""
    found: dict[str, str] = {}
    for e in entries:
        n, phase = e.get("node"), e.get("phase")
        if not n:
            continue
        if phase == "node":
            if e.get("event") == "start":
                found[n] = "drain"  # nothing done yet is undone as an untouched drain: back online
            else:
                found.pop(n, None)
        elif phase in NODE_PHASES and n in found:
            found[n] = phase
    return found


def _ended_apt_run(cluster: Cluster, nodes: Nodes, history: History, config: Config, info: lock.LockInfo) -> list[str]:
    """Finish what an ended apt run left (its node drained, dpkg maybe half done), then free its lock."""
    if info.phase == DPKG_FAILED:
        return []
    holder = cluster.state().node(info.holder)
    if holder is None or not holder.online or nodes.run_state(info.holder, info.run_id) != ENDED:
        return []
    done = [f"found apt run {info.run_id} on {info.holder} ended without its finishing step (its apt process, "
            "finisher and finishing step are gone)"]
    done += [f"removed {item}" for item in steering.clean_up(cluster, [n.name for n in cluster.state().nodes])]
    done += _undo(cluster, nodes, config, info.run_id, info.holder, "upgrade")
    cluster.wait_settled(None, deadline=config.settle_timeout)
    lock.remove(cluster, info)
    done.append(f"released the lock of apt run {info.run_id}")
    history.record(info.run_id, info.holder, "recovered", "note", actions=done)
    return done


def _undo(cluster: Cluster, nodes: Nodes, config: Config, run_id: str, node: str, phase: str) -> list[str]:
    done: list[str] = []
    clean, repair = True, ""
    if phase in UPGRADE_PHASES:
        # The killed run's upgrade may still be running there: wait for it, then judge dpkg.
        state = nodes.runner(node, timeout=DPKG_WAIT + REPORT_MARGIN).call(
            [nodes.tool, "dpkg-state", "--wait", str(DPKG_WAIT)])
        if state.returncode == 1:  # interrupted half-way: what an operator does first, once
            configured = nodes.runner(node, timeout=DPKG_WAIT).call(
                ["env", f"{RUN_ID_ENV}={run_id}", "dpkg", "--configure", "-a"])
            repair = "" if configured.returncode == 0 else f" (dpkg --configure -a: {configured.last_words})"
            state = nodes.runner(node, timeout=DPKG_RECHECK_WAIT + REPORT_MARGIN).call(
                [nodes.tool, "dpkg-state", "--wait", str(DPKG_RECHECK_WAIT)])
        clean = state.returncode == 0
        started = nodes.runner(node, timeout=config.settle_timeout + REPORT_MARGIN).call(
            [nodes.tool, "stack", "start", "--run-id", run_id])
        if started.returncode != 0:
            steering.quarantine(cluster, node, run_id, "interrupted-upgrade")
            why = started.last_words
            return [f"{node}: its cluster stack, stopped by the interrupted run, did not start ({why}); it stays "
                    "in standby, quarantined: start it there (rolling-upgrade stack start), then "
                    "rolling-upgrade unquarantine"]
        if NOTHING_TO_START not in started.stdout:
            done.append(f"{node}: started its cluster stack again (stopped by the interrupted run)")
    if phase in (*UPGRADE_PHASES, "reboot"):
        try:
            cluster.wait_settled(online(node), deadline=config.rejoin_timeout)
        except NotSettled as exc:
            return done + [f"{node}: did not rejoin the cluster ({exc}); it stays in standby"]
    if not clean:
        steering.quarantine(cluster, node, run_id, "interrupted-upgrade")
        return done + [f"{node}: dpkg was interrupted and is not clean (dpkg --audit){repair}; it stays in "
                       "standby, quarantined: repair it (dpkg --configure -a), then rolling-upgrade unquarantine"]
    if phase == "fail-back" or cluster.get_attribute(node, steering.QUARANTINE) is not None:
        return done + [f"{node}: quarantined by the interrupted run; it stays in standby"]
    cluster.set_standby(node, False)
    if cluster.get_attribute(node, WAITING) is not None:  # the drain's mark: it waits for nothing now
        cluster.delete_attribute(node, WAITING)
    return done + [f"{node}: back online (it was in phase {phase})"]


def restart_own_stack(config: Config, local: set[str]) -> str | None:
    """Start this node's cluster stack if a run of this node stopped it and is gone; what was done, or None.

    Raises :class:`StackError` when it is stopped by a run driven from another node (that run, or a person,
    starts it) or cannot be started.
    """
    from upgrader.hastack import control, marker

    held = marker.read()
    if held is None or control.running_daemons():
        return None
    if held.by not in local:
        raise control.StackError(f"this node's cluster stack is stopped by run {held.run_id}, driven from "
                                 f"{held.by}; that run starts it again, or start it yourself: rolling-upgrade "
                                 "stack start")
    if _alive(held.pid):
        raise control.StackError(f"this node's cluster stack is stopped by run {held.run_id} (pid {held.pid}), "
                                 "which still runs; wait for it")
    text = control.start(config, held.run_id, timeout=config.settle_timeout)
    return f"{text} (stopped by run {held.run_id}, which is gone)"


def _alive(pid: int) -> bool:
    try:
        return b"rolling-upgrade" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
