"""A copy of the CIB edited in memory for a prediction: what ``crm_attribute`` and ``cibadmin`` would write
into a copy, without running them (each one parses, validates and rewrites the whole copy: 15-50 ms in
the 3-node lab, 0.4 s at 120 applications; a prediction made four such writes).

The edited copy goes to ``crm_simulate --xml-pipe``; the live CIB is never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable, Mapping

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


def parse_configuration(text: str) -> ET.Element:
    """The ``<configuration>`` of ``cibadmin --query --scope configuration``, under a ``<cib>`` of its own
    (what :func:`set_node_attribute` edits; the status is not needed to write node attributes)."""
    try:
        configuration = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CibCopyError(f"cibadmin --query --scope configuration gave no readable XML ({exc})") from None
    if configuration.tag != "configuration":
        raise CibCopyError("cibadmin --query --scope configuration gave no <configuration>")
    cib = ET.Element("cib")
    cib.append(configuration)
    return cib


def text(cib: ET.Element) -> str:
    return ET.tostring(cib, encoding="unicode")


def set_standby(cib: ET.Element, node: str, on: bool) -> None:
    """As ``crm_attribute --node NODE --name standby --update on|off --lifetime forever``: the node's one
    ``standby`` nvpair among its instance attributes gets the value; without one, it is added in the set
    ``nodes-ID`` (crm_attribute's names). Two such nvpairs: refused, as crm_attribute refuses them."""
    set_node_attribute(cib, node, "standby", "on" if on else "off")


def set_node_attribute(cib: ET.Element, node: str, name: str, value: str) -> tuple[ET.Element, ET.Element, ET.Element]:
    """As ``crm_attribute --node NODE --name NAME --update VALUE --lifetime forever`` (see
    :func:`set_standby`); the node's entry, the set and the nvpair written."""
    nodes = cib.find("configuration/nodes")
    entries = [] if nodes is None else [n for n in nodes.findall("node") if n.get("uname") == node]
    if len(entries) != 1:
        raise CibCopyError(f"the CIB has {'no' if not entries else len(entries)} <node> entries named {node!r} "
                           "(is it a cluster node?)")
    entry = entries[0]
    pairs = [(s, p) for s in entry.iter("instance_attributes") for p in s.iter("nvpair") if p.get("name") == name]
    if len(pairs) > 1:
        raise CibCopyError(f"node {node} has {len(pairs)} {name!r} attributes in the CIB "
                           f"({', '.join(p.get('id', '?') for _, p in pairs)}); crm_attribute would refuse them too")
    if pairs:
        pairs[0][1].set("value", value)
        return entry, pairs[0][0], pairs[0][1]
    node_id = entry.get("id") or node
    taken = {e.get("id") for e in cib.iter() if e.get("id")}
    set_id = f"nodes-{node_id}"
    attrs = next((s for s in entry.findall("instance_attributes") if s.get("id") == set_id), None)
    if attrs is None:
        attrs = ET.SubElement(entry, "instance_attributes", id=_free(set_id, taken))
        taken.add(attrs.get("id"))
    pair = ET.SubElement(attrs, "nvpair", id=_free(f"{set_id}-{name}", taken), name=name, value=value)
    return entry, attrs, pair


def nodes_update(cib: ET.Element, values: Mapping[str, Mapping[str, str]]) -> ET.Element:
    """``values`` ({node: {name: value}}) written into ``cib`` as crm_attribute would write each, and the
    ``<nodes>`` fragment of just those nvpairs (with their sets' and nodes' ids) for one
    ``cibadmin --modify --scope nodes``, which merges it by ids: nothing else of the section is rewritten."""
    fragment = ET.Element("nodes")
    for node, attrs in values.items():
        entry_out: ET.Element | None = None
        sets_out: dict[str, ET.Element] = {}
        for name, value in attrs.items():
            entry, attr_set, pair = set_node_attribute(cib, node, name, value)
            if entry_out is None:
                entry_out = ET.SubElement(fragment, "node", {k: v for k, v in entry.attrib.items()
                                                             if k in ("id", "uname")})
            set_id = attr_set.get("id", "")
            if set_id not in sets_out:
                sets_out[set_id] = ET.SubElement(entry_out, "instance_attributes", id=set_id)
            ET.SubElement(sets_out[set_id], "nvpair", id=pair.get("id", ""), name=name, value=value)
    return fragment


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
