"""The finishing step after an apt run the hooks allowed: started once, after the whole run has ended.

Post-Invoke fires after every dpkg batch (several times under
unattended-upgrades), while the apt run still holds the frontend lock; the
finishing step (fail over, health-check, fail back: ``rolling-upgrade node
--finish``) must run once, after it. So the first Post-Invoke of a run
spawns a detached waiter (double fork, own session, no inherited pipes) that
waits, bounded by ``Rolling-Upgrade::Hooks::Finish-Wait``, for the run's
process to exit, then records the run in the History-File and either starts
the finishing step or, after a failed dpkg, keeps the node in standby and
marks the lock ``dpkg-failed``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from upgrader import runkey
from upgrader.guard import record, store
from upgrader.runs import DPKG_FAILED
from upgrader.syslog import loud, syslog

FAILED_PHASE = DPKG_FAILED
LOG = "/var/log/upgrader/finisher.log"
POLL = 0.2


PACKAGED_COMMAND = "/usr/sbin/rolling-upgrade"  # the Debian package's command (debian/rules)


def finish_command(python: str = sys.executable, packaged: str = PACKAGED_COMMAND) -> list[str]:
    """The one place that says how the finishing step is run (the orchestrator owns the command).

    The command beside the hook's python (a virtualenv's, 'make install'), else the package's
    /usr/sbin/rolling-upgrade (the package's hook runs /usr/bin/python3, which has none beside it).
    """
    beside = Path(python).with_name("rolling-upgrade")
    return [str(beside if beside.exists() else Path(packaged)), "node", "--finish"]


def post_invoke(stage: str, key: str) -> int:
    """Record what changed and dpkg's result; start the finishing step once per run when it is ours to start."""
    from upgrader.runs import GUARD_ENV

    result = record.record_result(key)
    store.event(key, stage, "recorded", result["result"])
    if os.environ.get(GUARD_ENV, "").lower() == "off":
        loud(f"WARNING: {GUARD_ENV}=off: run {key} ended ({result['result']}); no finishing step is started",
             kind="apt", run_id=f"apt-{key}", phase=stage)
        return 0
    verdict = store.read_verdict(key)
    if verdict is None or verdict[0] != store.ALLOWED:
        store.event(key, stage, "no-verdict")
        return 0
    if store.claim(key, record.FINISHER):
        spawn(key)
        store.event(key, stage, "finish-spawned")
    else:
        store.event(key, stage, "finish-already-spawned")
    return 0


def spawn(key: str) -> None:
    """Start the waiter for run ``key`` fully detached; return at once."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    try:
        os.setsid()
        waiter = os.fork()
        if waiter:
            # Recorded before Post-Invoke returns (apt may end right after it): from then on the apt run's
            # lock is never an ended run's while the waiter lives.
            try:
                store.record_step(key, runkey.FINISHER_KEY, pid=waiter)
            except OSError:
                pass  # the waiter records itself too
            os._exit(0)
        _detach()
        code = wait_and_finish(key)
    except BaseException as exc:  # the waiter must report, never vanish
        syslog(f"run {key}: the finishing-step waiter failed: {type(exc).__name__}: {exc}", "user.err",
               kind="failure", run_id=_run_id(key), phase="finisher")
        code = 1
    os._exit(code)


def _detach() -> None:
    """No terminal, no apt pipes: stdin /dev/null, stdout and stderr to the finisher log."""
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))


def wait_and_finish(key: str) -> int:
    """Wait for run ``key`` to end, record it, then finish (or say why not)."""
    from upgrader import config

    record_finishing(key, runkey.FINISHER_KEY)  # first: spawn() recorded it already, unless that write failed
    conf = config.load()
    deadline = time.monotonic() + conf.hooks_finish_wait
    while runkey.alive(key):
        if time.monotonic() > deadline:
            _history(conf.history_file, key, "unknown", f"not started: apt run {key} still running after "
                     f"{conf.hooks_finish_wait}s (Rolling-Upgrade::Hooks::Finish-Wait); run rolling-upgrade node --finish")
            return 1
        time.sleep(POLL)
    result = record.record_result(key)
    info = record.read_json(key, record.RUN_INFO) or {}
    store.event(key, "finisher", "run-ended", result["result"])
    if result["result"] != "ok":
        _mark_failed(info, conf)
        _history(conf.history_file, key, result["result"], "not started: dpkg failed; the node stays in standby "
                 "and keeps the upgrade lock (phase dpkg-failed) until a person repairs it")
        return 1
    from upgrader.runs import RUN_ID_ENV
    from upgrader.runner import Runner

    if info.get("via"):  # upgraded with the stack stopped: the finishing step needs it back
        waited = wait_for_stack(conf, info, deadline)
        if waited:
            _history(conf.history_file, key, "ok", waited)
            return 1
    store.event(key, "finisher", "finish-started", " ".join(finish_command()))
    done = Runner(env={RUN_ID_ENV: info.get("run_id", f"apt-{key}")}, timeout=conf.hooks_finish_wait).call(finish_command())
    _history(conf.history_file, key, "ok", f"ran {' '.join(finish_command())}: exit {done.returncode}")
    return 0 if done.returncode == 0 else 1


def _run_id(key: str) -> str:
    """The run id apt run ``key`` has (rolling-upgrade's when it started apt), as its verdict recorded it."""
    try:
        return (record.read_json(key, record.RUN_INFO) or {}).get("run_id") or f"apt-{key}"
    except OSError:
        return f"apt-{key}"


def record_finishing(key: str, name: str) -> None:
    """Say in the run's directory that this process finishes run ``key``: while it lives, the run's lock is
    not an ended run's (best-effort: without the record, only the apt run's own process is asked)."""
    try:
        store.record_step(key, name)
    except OSError as exc:
        syslog(f"run {key}: could not record the finishing step's pid ({exc}); once apt has ended, its lock "
               "looks like an ended run's to the next rolling-upgrade run", "user.warning", run_id=_run_id(key))


STACK_POLL = 2.0  # seconds between looks at whether this node's cluster stack answers again
HEARTBEAT_EVERY = 60.0


def wait_for_stack(conf, info: dict, deadline: float) -> str | None:
    """Until this node's cluster stack answers again (someone started it), the lock kept fresh through the
    peer; None then, else why the finishing step is not started (the lock released through the peer)."""
    from upgrader.guard.peer import ask_a_peer
    from upgrader.pacemaker.live import Cluster, NotSettled
    from upgrader.pacemaker.lock import LockError, UpgradeLock
    from upgrader.runner import CommandError, Runner

    node, run_id = info["node"], info["run_id"]
    syslog(f"run {run_id}: {node} was upgraded with its cluster stack stopped; start the stack "
           "(Stack::Start, e.g. systemctl start corosync pacemaker): the finishing step then brings it back online",
           kind="apt", run_id=run_id, node=node, phase="finisher")
    local = Cluster(Runner(timeout=conf.hooks_query_timeout))
    beat = 0.0
    while time.monotonic() < deadline:
        try:
            local.local_node()
            local.wait_settled(lambda s: [] if getattr(s.node(node), "online", False) else [f"{node} not online yet"],
                               deadline=max(1.0, min(float(conf.rejoin_timeout), deadline - time.monotonic())))
            return None
        except (CommandError, NotSettled):
            pass
        if time.monotonic() - beat > HEARTBEAT_EVERY:
            peer = ask_a_peer(conf, conf.hooks_query_timeout)
            if not isinstance(peer, str):
                try:
                    UpgradeLock(peer.cluster, run_id, node, ttl=conf.lock_expiry).heartbeat("apt-stack-stopped")
                except (LockError, CommandError):
                    pass
            beat = time.monotonic()
        time.sleep(STACK_POLL)
    peer = ask_a_peer(conf, conf.hooks_query_timeout)
    if not isinstance(peer, str):
        try:
            UpgradeLock(peer.cluster, run_id, node, ttl=conf.lock_expiry).release()
        except (LockError, CommandError):
            pass
    return (f"not started: the cluster stack of {node} was still stopped after Hooks::Finish-Wait; the upgrade "
            f"lock is released; start the stack, then bring {node} online (rolling-upgrade node --finish with "
            f"UPGRADER_RUN_ID={run_id}, or crm_attribute --node {node} --name standby --update off)")


def _mark_failed(info: dict, conf: Any) -> None:
    """Keep the lock with phase dpkg-failed, so status and the next run see why this node stays in standby.

    Asked here; when the apt run had this node's cluster stack stopped (``via``: the guard asked a peer),
    the cluster answers on a peer, so it is marked there."""
    from upgrader.guard.peer import ask_a_peer
    from upgrader.pacemaker.live import Cluster
    from upgrader.pacemaker.lock import LockError, UpgradeLock
    from upgrader.runner import LOCK_MARK_TIMEOUT, CommandError, Runner

    if not info.get("run_id") or not info.get("node"):
        return
    try:
        UpgradeLock(Cluster(Runner(timeout=LOCK_MARK_TIMEOUT)), info["run_id"], info["node"]).heartbeat(FAILED_PHASE)
        return
    except (LockError, CommandError) as exc:
        why = str(exc)
    if info.get("via"):
        peer = ask_a_peer(conf, LOCK_MARK_TIMEOUT)
        if isinstance(peer, str):
            why += f"; and through a peer: {peer}"
        else:
            try:
                UpgradeLock(peer.cluster, info["run_id"], info["node"]).heartbeat(FAILED_PHASE)
                return
            except (LockError, CommandError) as exc:
                why += f"; and through {peer.name}: {exc}"
    syslog(f"run {info['run_id']}: could not mark the upgrade lock {FAILED_PHASE}: {why}", "user.err",
           kind="failure", run_id=info["run_id"], node=info["node"], phase="finisher")


def _history(path: Path, key: str, result: str, finish: str) -> None:
    """One record in the History-File (the orchestrator's format), and the same news in the system log."""
    from upgrader.history import History

    info = record.read_json(key, record.RUN_INFO) or {}
    outcome = record.read_json(key, record.RESULT) or {}
    run_id = info.get("run_id", f"apt-{key}")
    History(path).record(run_id, info.get("node"), "apt", "end", source="apt-hooks", started=info.get("decided"),
                         ended=outcome.get("at"), result=result, changes=outcome.get("changes", []), finish=finish)
    store.event(key, "finisher", "recorded", finish)
    syslog(f"run {run_id} on {info.get('node')}: apt {result}; finishing step {finish}",
           "user.warning" if result != "ok" or finish.startswith("pending") else "user.notice",
           kind="apt" if result == "ok" else "failure", run_id=run_id, node=info.get("node"), phase="apt")
