""""Nothing lost": the one assertion every fault scenario ends with.

At the end of a scenario, once the cluster has settled (bounded wait):
every application answers on its floating IP; no resource stopped or
failed and no failed action; every node online and none in standby but the
quarantined ones the scenario expects (reported); no constraint or
attribute of ours left (but the holds of a fail back that quarantined, reported); the lock released, or held with the phase the
scenario expects (reported); and the history tells what happened.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.lab.helpers import CONFIGURATION, HOLDS_ID, cib, history
from upgrader_lab import node
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import CommandError

QUARANTINE = "rolling-upgrade-quarantine"
WAITING = "rolling-upgrade-waiting"
SETTLE = 90.0  # seconds the cluster may still take to settle once a scenario is over


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def inspect(lab: Lab, *, via: str = "node1", quarantined: Sequence[str] = (), lock_phase: str | None = None,
            run: str | None = None, told: Sequence[tuple[str, str]] = (), history_on: str | None = None) -> Verdict:
    """What the scenario lost (empty: nothing) and what it left on purpose (notes)."""
    verdict = Verdict()
    cluster = Cluster(node.runner(lab, via, timeout=15))
    with LabClient(lab.client_netns) as client:
        def serving(_state: ClusterState) -> list[str]:
            answers = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names], timeout=1.0)
            return [f"{a} does not answer on {lab.app_ip(a)} ({g.error or g.status})"
                    for a, g in zip(lab.app_names, answers) if not g.ok]

        try:
            state = cluster.wait_settled(serving, deadline=SETTLE)
        except NotSettled as exc:
            verdict.lost.append(str(exc))
            state = cluster.state()
        verdict.lost += serving(state)
    _resources(state, verdict)
    _nodes(cluster, state, quarantined, verdict)
    _leftovers(lab, via, quarantined, lock_phase, verdict)
    _lock(cluster, lock_phase, verdict)
    if run is not None:
        _history(lab, run, told, history_on or via, verdict)
    return verdict


def _resources(state: ClusterState, verdict: Verdict) -> None:
    for rid in state.top_level_ids():
        for r in state.members(rid):
            if r.failed or not r.running:
                verdict.lost.append(f"{r.id} is {r.role}{' (failed)' if r.failed else ''} on {','.join(r.nodes) or 'no node'}")
    verdict.lost += [f"failed action {f.op_key} on {f.node} ({f.exitstatus})" for f in state.failures]


def _nodes(cluster: Cluster, state: ClusterState, quarantined: Sequence[str], verdict: Verdict) -> None:
    for n in state.nodes:
        if not n.online:
            verdict.lost.append(f"{n.name} is offline")
        if n.name in quarantined:
            mark = cluster.get_attribute(n.name, QUARANTINE)
            if not n.standby or mark is None:
                verdict.lost.append(f"{n.name} should be quarantined in standby (standby {n.standby}, mark {mark!r})")
            else:
                verdict.notes.append(f"{n.name} quarantined as expected ({mark})")
        elif n.standby:
            verdict.lost.append(f"{n.name} is unexpectedly in standby")


def _leftovers(lab: Lab, via: str, quarantined: Sequence[str], lock_phase: str | None, verdict: Verdict) -> None:
    """Everything of ours in the CIB but the expected quarantine marks and the lock (checked on its own)."""
    root = ET.fromstring(cib(lab, via))
    # A quarantined node keeps its quarantine mark and the waiting mark of the drain that took it out.
    expected = {id(nv) for n in root.iterfind("configuration/nodes/node") if n.get("uname") in quarantined
                for nv in n.iter("nvpair") if nv.get("name") in (QUARANTINE, WAITING)}
    # A fail back (a quarantine) holds back what the quarantined node installed, on purpose.
    holds = [el for s in root.iterfind(f"configuration/crm_config/cluster_property_set[@id='{HOLDS_ID}']")
             for el in s.iter()]
    if holds and quarantined:
        expected |= {id(el) for el in holds}
        verdict.notes.append(f"held back as expected: {', '.join(el.get('id', '') for el in holds[1:])}")
    for el in root.iter():
        ident, name = el.get("id", ""), el.get("name", "")
        if ident.startswith(lock.LOCK_ID) or id(el) in expected:
            continue
        if ident.startswith("rolling-upgrade-") or (el.tag == "nvpair" and name.startswith("rolling-upgrade-")
                                                     and name not in CONFIGURATION):
            verdict.lost.append(f"left in the CIB: {el.tag} {ident} {name}".rstrip())


def _lock(cluster: Cluster, lock_phase: str | None, verdict: Verdict) -> None:
    info = lock.read(cluster)
    if lock_phase is None:
        if info is not None:
            verdict.lost.append(f"the lock is still held: holder {info.holder}, run {info.run_id}, phase {info.phase}")
    elif info is None or info.phase != lock_phase:
        verdict.lost.append(f"the lock should be reported in phase {lock_phase}, found {info}")
    else:
        verdict.notes.append(f"lock kept and reported: holder {info.holder}, phase {info.phase}")


def _history(lab: Lab, run: str, told: Sequence[tuple[str, str]], on: str, verdict: Verdict) -> None:
    try:
        entries = history(lab, run, via=on)
    except (CommandError, ValueError) as exc:
        verdict.lost.append(f"the history of {on} cannot be read: {exc}")
        return
    seen = {(e.get("phase"), e.get("event")) for e in entries}
    verdict.lost += [f"the history of run {run} on {on} does not tell {phase} {event}"
                     for phase, event in told if (phase, event) not in seen]
