"""The guard's rule: may dpkg touch this node now?

Allowed only when the cluster is quorate, this node is in standby with no
resource on it, and the upgrade lock is free (then taken for this run) or
already held by this run. Every refusal is one line that says why and what
to do; a refusal changes nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from upgrader.guard.decision import LOCK_PHASE, Decision
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState, resources_on
from upgrader.runner import NOT_CONNECTED, CommandError
from upgrader.runs import APT_RUN_PREFIX, QUARANTINE

if TYPE_CHECKING:
    from upgrader.guard.peer import Peer



def judge(state: ClusterState, node: str) -> str | None:
    """Why ``node`` may not be patched in ``state`` (one line), None when it may."""
    if not state.summary.quorum:
        return f"refused: the cluster has no quorum as {node} sees it; wait until it is quorate again"
    me = state.node(node)
    if me is None:
        return f"refused: {node} is not a node of this cluster (crm_mon does not list it); check the cluster configuration"
    here = resources_on(state, node)
    if not me.standby:
        runs = ", ".join(here) if here else "nothing right now"
        return f"refused: {node} is active (runs {runs}); put it in standby or run rolling-upgrade"
    unmanaged = sum(1 for r in state.resources if node in r.nodes and r.active and not r.managed)
    if here or me.resources_running > unmanaged:
        still = ", ".join(here) if here else f"{me.resources_running - unmanaged} resources"
        return f"refused: {node} is in standby but still runs {still}; wait until the cluster has moved them away"
    return None


T = TypeVar("T")


class Asked(Generic[T]):
    """A read-only question to the cluster asked now, in a thread of its own (each answer is a process:
    crm_mon beside crm_node, the lock beside the quarantine mark); its answer, or its error, when wanted.
    One never wanted (the decision was made without it) changes nothing."""

    def __init__(self, ask: Callable[[], T]) -> None:
        self._answer: list[T] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._ask, args=(ask,), name="guard-ask", daemon=True)
        self._thread.start()

    def _ask(self, ask: Callable[[], T]) -> None:
        try:
            self._answer.append(ask())
        except BaseException as exc:  # noqa: BLE001 - raised where it is wanted
            self._error.append(exc)

    def result(self) -> T:
        self._thread.join()  # the runner bounds every command it runs
        if self._error:
            raise self._error[0]
        return self._answer[0]


def decide(cluster: Cluster, run_id: str, lock_ttl: float, from_orchestrator: bool,
           auto_standby_within: float | None = None,
           ask_a_peer: Callable[[], Peer | str] | None = None) -> Decision:
    """Judge the live cluster, then take (or re-enter) the upgrade lock for ``run_id``.

    ``auto_standby_within``: seconds an active node may take to drain first
    (unattended-upgrades with Auto-Standby); None: an active node is refused.
    ``ask_a_peer``: how to reach the cluster when this node's stack is stopped (the documented
    manual procedure): None refuses then.
    """
    try:
        asked = Asked(cluster.state)
        node = cluster.local_node()
        state = asked.result()
    except CommandError as exc:
        if exc.returncode == NOT_CONNECTED:
            from upgrader.hastack import marker
            from upgrader.hastack.control import stopped_by

            # rolling-upgrade stopped the stack here around an HA-stack upgrade, holding the lock: the
            # marker it wrote before stopping names the run; any other run is refused.
            if from_orchestrator and stopped_by(run_id):
                return Decision(True, f"the cluster stack is stopped on this node by rolling-upgrade run {run_id}")
            held = marker.read()
            if held is not None:
                return Decision(False, f"refused: the cluster stack here is stopped by rolling-upgrade run "
                                       f"{held.run_id} (driven from {held.by}) for its own upgrade; wait until it "
                                       "started it again")
            if ask_a_peer is not None and not from_orchestrator:
                return decide_via_peer(ask_a_peer(), run_id, lock_ttl, exc)
        return Decision(False, f"refused: cannot ask the cluster ({exc}); start the cluster stack, "
                               "or set UPGRADER_GUARD=off to run apt anyway")
    why = judge(state, node)
    me = state.node(node)
    if why and auto_standby_within is not None and state.summary.quorum and me is not None and not me.standby:
        from upgrader.guard.auto import drain_for_apt

        return drain_for_apt(cluster, state, node, run_id, lock_ttl, auto_standby_within)
    if why:
        return Decision(False, why, node)
    lock_asked = Asked(lambda: lock.read(cluster))
    mark = cluster.get_attribute(node, QUARANTINE)
    if mark is not None:
        return Decision(False, f"refused: {node} is quarantined ({mark}): a run found it unhealthy after its "
                               f"upgrade; fix it, then clear it with 'rolling-upgrade unquarantine {node}'", node)
    held = lock_asked.result()
    if held is not None and held.run_id == run_id and (held.holder == node or from_orchestrator):
        # An earlier call of this apt run, or the rolling-upgrade run that drives this node (it holds
        # the lock from the node it runs on): leave the lock and its phase as they are.
        return Decision(True, f"{node} is in standby and drained; the upgrade lock is already run {run_id}'s "
                              f"(held on {held.holder})", node)
    took_over = _take_over_ended_apt_run(cluster, node, run_id, held)
    try:
        lock.UpgradeLock(cluster, run_id, node, ttl=lock_ttl).acquire(LOCK_PHASE)
    except lock.LockHeld as exc:
        i = exc.status.info
        return Decision(False, f"refused: the upgrade lock is held by {i.holder or '?'} "
                               f"({exc.status.describe(lock.utcnow())}); wait until that run ends "
                               "(rolling-upgrade status shows it)", node)
    taken = f" (taken over from the ended apt run {took_over} on this node)" if took_over else ""
    return Decision(True, f"{node} is in standby and drained; upgrade lock held by run {run_id}{taken}", node)


def decide_via_peer(peer: Peer | str, run_id: str, lock_ttl: float, exc: CommandError) -> Decision:
    """This node's stack is stopped: a peer says whether it is drained (standby, offline, running nothing)."""
    if isinstance(peer, str):
        return Decision(False, f"refused: the cluster stack here is stopped ({exc}) and {peer}; start the "
                               "cluster stack, or set UPGRADER_GUARD=off to run apt anyway")
    me = peer.state.node(peer.me)
    why = judge(peer.state, peer.me)
    if me is not None and me.online:
        why = f"refused: {peer.name} sees {peer.me} online, yet its cluster stack does not answer here ({exc})"
    if why:
        return Decision(False, f"{why} (asked {peer.name}: the cluster stack here is stopped)", peer.me)
    mark = peer.cluster.get_attribute(peer.me, QUARANTINE)
    if mark is not None:
        return Decision(False, f"refused: {peer.me} is quarantined ({mark}): a run found it unhealthy after its "
                               f"upgrade; fix it, then clear it with 'rolling-upgrade unquarantine {peer.me}'", peer.me)
    try:
        lock.UpgradeLock(peer.cluster, run_id, peer.me, ttl=lock_ttl).acquire(LOCK_PHASE)
    except lock.LockHeld as held:
        i = held.status.info
        return Decision(False, f"refused: the upgrade lock is held by {i.holder or '?'} "
                               f"({held.status.describe(lock.utcnow())}); wait until that run ends", peer.me)
    return Decision(True, f"the cluster stack on {peer.me} is stopped; {peer.name} says {peer.me} is in standby "
                          f"and runs nothing; upgrade lock held by run {run_id} (Pacemaker's documented procedure)",
                    peer.me, via=peer.name)


def _take_over_ended_apt_run(cluster: Cluster, node: str, run_id: str, held: lock.LockInfo | None) -> str | None:
    """Free the lock when an earlier apt run on this same node holds it and has ended; return its run id.

    Its finishing step is still to come and the node is still drained, so a
    second apt run there (``apt-get -f install`` after a failed dpkg, another
    dist-upgrade) may go on; the lock then belongs to the new run.
    """
    from upgrader.runkey import ENDED, apt_run_state

    if held is None or held.holder != node or held.run_id == run_id or not held.run_id.startswith(APT_RUN_PREFIX):
        return None
    if apt_run_state(held.run_id.removeprefix(APT_RUN_PREFIX)) != ENDED:  # running, or being finished
        return None
    lock.remove(cluster, held)
    return held.run_id
