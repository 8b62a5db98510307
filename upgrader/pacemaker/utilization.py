"""Pacemaker's utilization attributes: what nodes offer and resources ask, read from the CIB's configuration.

A drain of several nodes at once is also checked against them (:func:`shortfall`):
the nodes left must offer, per attribute, at least what everything still running
asks. A sum, not a packing: crm_simulate's prediction, which applies the
placement-strategy, says whether each resource finds a node.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Iterable

from upgrader.pacemaker.state import ClusterState, ParseError


@dataclass(frozen=True)
class Utilization:
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)  # node name -> capacity per attribute
    resources: dict[str, dict[str, int]] = field(default_factory=dict)  # primitive id -> what it asks
    strategy: str = "default"  # placement-strategy

    @property
    def declared(self) -> bool:
        return bool(self.resources)


def parse(configuration: str) -> Utilization:
    """The utilization of ``cibadmin --query --scope configuration`` (or the whole CIB)."""
    try:
        root = ET.fromstring(configuration)
    except ET.ParseError as exc:
        raise ParseError(f"the CIB's configuration is not XML: {exc}") from None
    nodes = {n.get("uname", ""): _values(n) for n in root.iter("node") if n.find("utilization") is not None}
    resources = {p.get("id", ""): _values(p) for p in root.iter("primitive") if p.find("utilization") is not None}
    strategy = next((nv.get("value", "default") for nv in root.iter("nvpair")
                     if nv.get("name") == "placement-strategy"), "default")
    return Utilization({n: v for n, v in nodes.items() if v}, {r: v for r, v in resources.items() if v}, strategy)


def _values(element: ET.Element) -> dict[str, int]:
    found = {}
    for u in element.iterfind("utilization"):
        for nv in u.iterfind("nvpair"):
            try:
                found[nv.get("name", "")] = int(nv.get("value", "0"))
            except ValueError:
                continue  # Pacemaker takes only whole numbers; another value asks nothing
    return found


def shortfall(util: Utilization, state: ClusterState, drained: Iterable[str]) -> list[str]:
    """Per attribute the nodes left lack, one line each: ``cpu: 8 asked, 6 left on node1, node2, node5``.

    Asked: every running primitive but clone instances on the drained nodes (those stop there).
    Left: the capacity of the online nodes not in standby and not drained (an attribute a node does
    not declare is none of it there, as Pacemaker counts it).
    """
    gone = set(drained)
    left = sorted(n.name for n in state.nodes if n.online and not n.standby and n.name not in gone)
    asked: dict[str, int] = {}
    for r in state.resources:
        if not r.active or not r.nodes:
            continue
        if r.clone and set(r.nodes) <= gone:
            continue
        for name, value in util.resources.get(r.id.split(":", 1)[0], {}).items():
            asked[name] = asked.get(name, 0) + value
    lines = []
    for name, want in sorted(asked.items()):
        have = sum(util.nodes.get(n, {}).get(name, 0) for n in left)
        if want > have:
            lines.append(f"{name}: {want} asked, {have} left on {', '.join(left) or 'no node'}")
    return lines
