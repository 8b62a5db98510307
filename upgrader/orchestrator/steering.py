"""What a run adds to the CIB to steer resources, and how it is all taken away.

Everything carries the ``rolling-upgrade-`` prefix so that one query finds it:

- node attribute ``rolling-upgrade-patched`` = run id on nodes whose packages
  are current in this run (a node with nothing to upgrade counts as patched);
- location constraints ``rolling-upgrade-prefer-<rid>``: a preference for
  patched nodes (a failover onto the patched root: score 100000, above any
  sane stickiness, finite so that the next one can add to it) or, when
  failing back, an INFINITY one for nodes without the mark (the old
  packages); and ``rolling-upgrade-prefer-<rid>-target`` (score 1000): the
  patched node that runs least, so that resources spread over the patched
  nodes instead of piling onto the first (Pacemaker breaks ties by order).
  A positive preference is never a ban: where no such node can host a
  resource, it runs elsewhere rather than stop.
- node attribute ``rolling-upgrade-quarantine`` on a node that failed its
  checks: it outlives the run on purpose, until ``rolling-upgrade unquarantine``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Iterable, Mapping, Sequence

from upgrader.pacemaker import cibcopy, names
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import NO_SUCH_OBJECT
from upgrader.runs import PATCHED, QUARANTINE, WAITING

CONSTRAINT_PREFIX = "rolling-upgrade-prefer-"
_RESOURCE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


def resource_id(value: str) -> str:
    if not _RESOURCE_ID.fullmatch(value):
        raise names.BadValue(f"invalid resource id {value!r}: letters, digits, '_', '.', '-' only")
    return value


PATCHED_SCORE = "100000"
TARGET_SCORE = "1000"
TARGET_SUFFIX = "-target"
PER_WRITE = 200  # constraint ids in one removal's XPath (an argument of a few kilobytes)


def prefer(cluster: Cluster, rid: str, run_id: str, *, patched: bool, target: str | None = None) -> None:
    """Prefer patched nodes (fail over; ``target`` among them) or unpatched ones (fail back) for ``rid``."""
    prefer_all(cluster, [rid], run_id, patched=patched, targets={rid: target} if target else None)


def prefer_all(cluster: Cluster, rids: Iterable[str], run_id: str, *, patched: bool,
               targets: Mapping[str, str] | None = None) -> None:
    """:func:`prefer` for every one of ``rids`` in two CIB writes, whatever their number: their old preferences
    removed, then the new ones added in one update (each CIB write makes Pacemaker compute a transition:
    three writes a resource made a drain of 40 resources wait for 120 of them)."""
    rids = [resource_id(rid) for rid in rids]
    if not rids:
        return
    constraints = preferences(rids, run_id, patched=patched, targets=targets)
    drop_all(cluster, rids)
    cluster.runner.run(["cibadmin", "--modify", "--scope", "constraints",
                        f"--xml-text={ET.tostring(constraints, encoding='unicode')}"],
                       what=f"adding {len(constraints)} constraint(s) {constraints[0].get('id')}"
                            f"{' ...' if len(constraints) > 1 else ''}")


def prefer_in_copy(cib: ET.Element, rids: Iterable[str], run_id: str, *, patched: bool,
                   targets: Mapping[str, str] | None = None) -> None:
    """:func:`prefer_all` on a copy of the CIB in memory (a prediction's: :mod:`~upgrader.pacemaker.cibcopy`)."""
    rids = [resource_id(rid) for rid in rids]
    cibcopy.replace_constraints(cib, preference_ids(rids), preferences(rids, run_id, patched=patched, targets=targets))


def preferences(rids: Sequence[str], run_id: str, *, patched: bool,
                targets: Mapping[str, str] | None = None) -> ET.Element:
    """The ``<constraints>`` of :func:`prefer_all` for ``rids`` (validated ids)."""
    constraints = ET.Element("constraints")
    for rid in rids:
        cid = CONSTRAINT_PREFIX + rid
        expr = {"id": f"{cid}-expr", "attribute": PATCHED}
        expr.update({"operation": "eq", "value": names.run_id(run_id)} if patched else {"operation": "not_defined"})
        root = ET.SubElement(constraints, "rsc_location", id=cid, rsc=rid)
        rule = ET.SubElement(root, "rule", id=f"{cid}-rule", score=PATCHED_SCORE if patched else "INFINITY")
        ET.SubElement(rule, "expression", expr)
        target = (targets or {}).get(rid)
        if target is not None and patched:
            ET.SubElement(constraints, "rsc_location", id=cid + TARGET_SUFFIX, rsc=rid, node=names.node_name(target),
                          score=TARGET_SCORE)
    return constraints


def preference_ids(rids: Iterable[str]) -> list[str]:
    """The ids of every preference :func:`prefer_all` may have made for ``rids`` (targets included)."""
    return [f"{CONSTRAINT_PREFIX}{resource_id(rid)}{suffix}" for rid in rids for suffix in ("", TARGET_SUFFIX)]


def drop_all(cluster: Cluster, rids: Iterable[str]) -> None:
    """The preferences of ``rids`` (and their targets) removed, in one CIB write per :data:`PER_WRITE`."""
    _delete_all(cluster, preference_ids(rids))


def _delete_all(cluster: Cluster, ids: Sequence[str]) -> None:
    """Every ``rsc_location`` of ``ids`` (validated ids of ours: nothing else matches) removed."""
    for i in range(0, len(ids), PER_WRITE):
        chunk = ids[i:i + PER_WRITE]
        match = " or ".join(f"@id='{cid}'" for cid in chunk)
        cluster.runner.run(["cibadmin", "--delete-all", "--force", f"--xpath=//rsc_location[{match}]"],
                           ok=(0, NO_SUCH_OBJECT), what=f"removing constraint {chunk[0]}"
                                                        f"{f' and {len(chunk) - 1} more' if len(chunk) > 1 else ''}")


def load(state: ClusterState, nodes: set[str]) -> dict[str, int]:
    """How many top-level resources each of ``nodes`` that is online and not in standby runs."""
    fit = {n.name for n in state.nodes if n.name in nodes and n.online and not n.standby}
    load = dict.fromkeys(sorted(fit), 0)
    for rid in state.top_level_ids():
        for where in state.running_on(rid) & fit:
            load[where] += 1
    return load


def spread(resources: tuple[str, ...], load: dict[str, int]) -> dict[str, str]:
    """A target per resource: each to the candidate node running least so far (ties by name)."""
    load = dict(load)
    targets = {}
    for rid in resources:
        if not load:
            break
        node = min(load, key=lambda n: (load[n], n))
        targets[rid] = node
        load[node] += 1
    return targets


def our_constraints(cluster: Cluster) -> list[str]:
    out = cluster.runner.run(["cibadmin", "--query", "--scope", "constraints"], what="reading constraints").stdout
    return [el.get("id", "") for el in ET.fromstring(out).iter("rsc_location")
            if el.get("id", "").startswith(CONSTRAINT_PREFIX)]


def mark_patched(cluster: Cluster, node: str, run_id: str) -> None:
    cluster.set_attribute(node, PATCHED, run_id)


def quarantine(cluster: Cluster, node: str, run_id: str, when: str) -> None:
    cluster.set_attribute(node, QUARANTINE, f"run {run_id} at {when}")


def quarantined(cluster: Cluster, nodes: list[str]) -> dict[str, str]:
    """The quarantine mark of each of ``nodes`` that has one: one node asked alone (an unknown name is an
    error), several in one reading of the CIB's nodes."""
    if len(nodes) == 1:
        value = cluster.get_attribute(nodes[0], QUARANTINE)
        return {} if value is None else {nodes[0]: value}
    marks = node_attributes(cluster) if nodes else {}
    return {n: marks[n][QUARANTINE] for n in nodes if QUARANTINE in marks.get(n, {})}


def clear_quarantine(cluster: Cluster, node: str) -> bool:
    had = cluster.get_attribute(node, QUARANTINE) is not None
    cluster.delete_attribute(node, QUARANTINE)
    return had


def node_attributes(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Every node's permanent attributes (name -> value) by node name, in one reading of the CIB's nodes."""
    root = ET.fromstring(cluster.runner.run(["cibadmin", "--query", "--scope", "nodes"],
                                            what="reading the nodes' attributes").stdout)
    return {n.get("uname", ""): {nv.get("name", ""): nv.get("value", "") for nv in n.iterfind("instance_attributes/nvpair")}
            for n in root.iter("node")}


def clean_up(cluster: Cluster, nodes: list[str]) -> list[str]:
    """Remove every constraint and patched mark a run added, and the waiting mark of a node that is online
    again (brought back by hand: it waits for nothing); return what was removed."""
    removed = []
    found = our_constraints(cluster)
    for cid in found:
        try:
            resource_id(cid)  # an id read from the CIB never becomes XPath syntax
        except names.BadValue:
            raise RuntimeError(f"a constraint with our prefix has an id upgrader will not put into an XPath: "
                               f"{cid!r}; remove it by hand") from None
    _delete_all(cluster, found)
    removed += [f"constraint {cid}" for cid in found]
    marks = node_attributes(cluster)
    patched = [n for n in nodes if PATCHED in marks.get(n, {})]
    waiting = [n for n in nodes if WAITING in marks.get(n, {})
               and marks[n].get("standby", "off").lower() not in ("on", "true", "yes", "1")]
    cluster.delete_node_attributes(patched, PATCHED)  # one write for every node (none when empty)
    cluster.delete_node_attributes(waiting, WAITING)
    removed += [f"{PATCHED} on {n}" for n in patched] + [f"{WAITING} on {n} (online again)" for n in waiting]
    left = our_constraints(cluster)
    if left:
        raise RuntimeError(f"constraints still in the CIB after removing them: {', '.join(left)}")
    return removed
