"""A copy of the CIB edited in memory for a prediction: what ``crm_attribute`` and ``cibadmin`` would write
into a copy, without running them (each one parses, validates and rewrites the whole copy: 15-50 ms in
the 3-node lab, 0.4 s at 120 applications; a prediction made four such writes).

The edited copy goes to ``crm_simulate --xml-pipe``; the live CIB is never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable

from upgrader.pacemaker.state import ParseError


class CibCopyError(ParseError):
    """The copy cannot be edited as the tool would edit the live CIB (says what, and on which node)."""


def parse(text: str) -> ET.Element:
    """The CIB of ``cibadmin --query``."""
    try:
        cib = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CibCopyError(f"cibadmin --query gave no readable CIB ({exc})") from None
    if cib.tag != "cib" or cib.find("configuration") is None:
        raise CibCopyError("cibadmin --query gave no <cib> with a <configuration>")
    return cib


def text(cib: ET.Element) -> str:
    return ET.tostring(cib, encoding="unicode")


def set_standby(cib: ET.Element, node: str, on: bool) -> None:
    """As ``crm_attribute --node NODE --name standby --update on|off --lifetime forever``: the node's one
    ``standby`` nvpair among its instance attributes gets the value; without one, it is added in the set
    ``nodes-ID`` (crm_attribute's names). Two such nvpairs: refused, as crm_attribute refuses them."""
    nodes = cib.find("configuration/nodes")
    entries = [] if nodes is None else [n for n in nodes.findall("node") if n.get("uname") == node]
    if len(entries) != 1:
        raise CibCopyError(f"the CIB has {'no' if not entries else len(entries)} <node> entries named {node!r} "
                           "(is it a cluster node?)")
    entry = entries[0]
    pairs = [p for s in entry.iter("instance_attributes") for p in s.iter("nvpair") if p.get("name") == "standby"]
    if len(pairs) > 1:
        raise CibCopyError(f"node {node} has {len(pairs)} 'standby' attributes in the CIB "
                           f"({', '.join(p.get('id', '?') for p in pairs)}); crm_attribute would refuse them too")
    value = "on" if on else "off"
    if pairs:
        pairs[0].set("value", value)
        return
    node_id = entry.get("id") or node
    taken = {e.get("id") for e in cib.iter() if e.get("id")}
    set_id = f"nodes-{node_id}"
    attrs = next((s for s in entry.findall("instance_attributes") if s.get("id") == set_id), None)
    if attrs is None:
        attrs = ET.SubElement(entry, "instance_attributes", id=_free(set_id, taken))
        taken.add(attrs.get("id"))
    ET.SubElement(attrs, "nvpair", id=_free(f"{set_id}-standby", taken), name="standby", value=value)


def replace_constraints(cib: ET.Element, remove: Iterable[str], add: Iterable[ET.Element]) -> None:
    """The ``rsc_location`` constraints of ids ``remove`` taken out, then ``add`` put in (as a
    ``cibadmin --delete-all`` then a ``cibadmin --modify --scope constraints`` would)."""
    configuration = cib.find("configuration")
    assert configuration is not None  # parse() checked it
    constraints = configuration.find("constraints")
    if constraints is None:
        constraints = ET.SubElement(configuration, "constraints")
    gone = set(remove)
    for element in [c for c in constraints if c.tag == "rsc_location" and c.get("id") in gone]:
        constraints.remove(element)
    constraints.extend(add)


def _free(wanted: str, taken: set[str | None]) -> str:
    """``wanted``, or ``wanted-N`` with the first N no element of the CIB has."""
    if wanted not in taken:
        return wanted
    return next(f"{wanted}-{i}" for i in range(1, len(taken) + 2) if f"{wanted}-{i}" not in taken)
