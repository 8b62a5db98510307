"""Resource definitions from the CIB (``cibadmin --query --scope resources``) as ResourceConfig.

Pure parsing; no command is run here. Groups and ungrouped primitives become
:class:`~upgrader.health.spec.ResourceConfig` (a primitive built from a
``template`` takes the template's agent and attributes, its own winning).
Attribute sets given by ``id-ref`` are resolved within the same document.
Clones, promotable clones and bundles run on many nodes at once and are not
moved one at a time: they are listed in :attr:`CibResources.skipped`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from upgrader.pacemaker.state import ParseError
from upgrader.health.spec import ResourceConfig

SKIPPED_KINDS = ("clone", "master", "bundle")
Elements = dict[str | None, ET.Element]  # by id


class CibError(ParseError):
    """The CIB text is not the resources section it should be."""


@dataclass(frozen=True)
class CibResources:
    resources: tuple[ResourceConfig, ...]  # groups and ungrouped primitives, in CIB order
    skipped: tuple[str, ...] = ()  # clone/bundle ids, not health-checked


def parse_resources(text: str) -> CibResources:
    """Parse the output of ``cibadmin --query --scope resources`` (or a whole CIB)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CibError(f"the CIB is not XML: {exc}") from None
    section = root if root.tag == "resources" else root.find("configuration/resources")
    if section is None:
        raise CibError(f"no <resources> section in the CIB text (root element <{root.tag}>)")
    ids: Elements = {el.get("id"): el for el in root.iter() if el.get("id")}
    templates: Elements = {t.get("id"): t for t in section.iter("template")}
    found: list[ResourceConfig] = []
    skipped: list[str] = []
    for child in section:
        if child.tag == "primitive":
            found.append(_primitive(child, templates, ids))
        elif child.tag == "group":
            members = tuple(_primitive(p, templates, ids) for p in child.findall("primitive"))
            found.append(ResourceConfig(child.get("id", ""), meta=_nvpairs(child, "meta_attributes", ids),
                                        members=members))
        elif child.tag in SKIPPED_KINDS:
            skipped.append(child.get("id", ""))
    return CibResources(tuple(found), tuple(skipped))


def _primitive(el: ET.Element, templates: Elements, ids: Elements) -> ResourceConfig:
    template = templates.get(el.get("template")) if el.get("template") else None
    base = template if template is not None else el
    cls, provider, kind = (el.get(k) or base.get(k) or "" for k in ("class", "provider", "type"))
    params = _nvpairs(template, "instance_attributes", ids) if template is not None else {}
    meta = _nvpairs(template, "meta_attributes", ids) if template is not None else {}
    return ResourceConfig(
        el.get("id", ""),
        ":".join(part for part in (cls, provider, kind) if part),
        {**params, **_nvpairs(el, "instance_attributes", ids)},
        {**meta, **_nvpairs(el, "meta_attributes", ids)},
    )


def _nvpairs(el: ET.Element, kind: str, ids: Elements) -> dict[str, str]:
    """The name/value pairs of ``el``'s attribute sets of ``kind`` (later sets win)."""
    values: dict[str, str] = {}
    for attr_set in el.findall(kind):
        ref = attr_set.get("id-ref")
        source = ids.get(ref, attr_set) if ref else attr_set
        for pair in source.findall("nvpair"):
            target = ids.get(pair.get("id-ref"), pair) if pair.get("id-ref") else pair
            if target.get("name") is not None:
                values[target.get("name", "")] = target.get("value", "")
    return values
