"""The cluster as ``crm_mon --one-shot --inactive --output-as=xml`` shows it.

Pure parsing into frozen dataclasses; no command is run here. The schema is
``/usr/share/pacemaker/api/crm_mon-*.rng`` (Pacemaker 2.1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

from upgrader.pacemaker import names

# Roles of a resource that is up and not in the middle of an operation.
RUNNING_ROLES = frozenset({"Started", "Promoted", "Unpromoted", "Master", "Slave"})
# Roles crm_mon shows while an operation is in flight.
TRANSITIONAL_ROLES = frozenset({"Starting", "Stopping", "Migrating", "Promoting", "Demoting"})
# Pacemaker's INFINITY: a fail-count (or score) shown as "INFINITY" is this many.
INFINITY = 1_000_000


class ParseError(ValueError):
    """crm_mon's output is not what its schema promises."""


@dataclass(frozen=True)
class Node:
    name: str
    id: str
    online: bool
    standby: bool
    standby_onfail: bool
    maintenance: bool
    pending: bool
    unclean: bool
    shutdown: bool
    is_dc: bool
    resources_running: int
    type: str
    feature_set: str | None = None  # its CRM feature set (crm_mon of Pacemaker 2.1 and later; None when not shown)


@dataclass(frozen=True)
class Resource:
    """A primitive, or one instance of it in a clone."""

    id: str
    agent: str
    role: str
    target_role: str | None
    active: bool
    failed: bool
    managed: bool
    orphaned: bool
    blocked: bool
    pending: str  # the operation in flight ("Starting"), "" when none
    nodes: tuple[str, ...]
    group: str | None = None
    clone: str | None = None

    @property
    def busy(self) -> bool:
        """An operation is in flight (Starting/Stopping/... or a pending op)."""
        return bool(self.pending) or self.role in TRANSITIONAL_ROLES

    @property
    def running(self) -> bool:
        """Up on its node(s) with nothing in flight: 'Starting' does not count."""
        return self.active and self.role in RUNNING_ROLES and not self.busy and bool(self.nodes)


@dataclass(frozen=True)
class Collection:
    """A clone (``promotable`` for a promoted/unpromoted one, as DRBD's) or a bundle, as crm_mon lists it."""

    id: str
    kind: str  # "clone" or "bundle"
    promotable: bool
    managed: bool


@dataclass(frozen=True)
class Failure:
    """A failed action (``<failures>``)."""

    op_key: str
    node: str
    exitstatus: str
    exitreason: str
    exitcode: int
    call: int
    status: str
    last_rc_change: str | None
    task: str | None
    interval_ms: int | None

    @property
    def resource(self) -> str:
        """The resource the op_key names (``app1-ct_monitor_10000`` -> ``app1-ct``)."""
        parts = self.op_key.rsplit("_", 2)
        return parts[0] if len(parts) == 3 else self.op_key

    @property
    def occurrence(self) -> str:
        """This failure in one line, call id and time included: the same operation failing again is another one."""
        reason = f"{self.exitstatus}: {self.exitreason}" if self.exitreason else self.exitstatus
        when = f", at {self.last_rc_change}" if self.last_rc_change else ""
        return f"{self.op_key} ({reason}, call {self.call}{when})"


@dataclass(frozen=True)
class FailCount:
    """A resource's non-zero fail-count on one node (``<node_history>``'s ``resource_history``).

    Pacemaker caps fail-counts at INFINITY (a failed start, by default): then
    ``count`` is :data:`INFINITY` and ``infinite`` is true.
    """

    resource: str
    node: str
    count: int
    last_failure: str | None = None
    migration_threshold: int | None = None

    @property
    def infinite(self) -> bool:
        return self.count >= INFINITY


@dataclass(frozen=True)
class Ban:
    """A negative location constraint (``<bans>``)."""

    id: str
    resource: str
    node: str
    weight: int
    promoted_only: bool

    @property
    def from_cli(self) -> bool:
        """Left by ``crm_resource --ban/--move`` (``cli-ban-*``/``cli-prefer-*``)."""
        return self.id.startswith(("cli-ban-", "cli-prefer-"))


@dataclass(frozen=True)
class Summary:
    stack: str | None
    dc: str | None
    dc_version: str | None
    quorum: bool
    mixed_version: bool
    nodes_configured: int | None
    resources_configured: int | None
    stonith_enabled: bool | None
    maintenance_mode: bool | None
    no_quorum_policy: str | None


@dataclass(frozen=True)
class ClusterState:
    summary: Summary
    nodes: tuple[Node, ...]
    resources: tuple[Resource, ...]
    failures: tuple[Failure, ...]
    bans: tuple[Ban, ...]
    fail_counts: tuple[FailCount, ...] = ()  # non-zero only
    collections: tuple[Collection, ...] = ()  # clones and bundles

    def collection(self, rid: str) -> Collection | None:
        """The clone or bundle called ``rid``; None for a group or a primitive."""
        return next((c for c in self.collections if c.id == rid), None)

    def fail_count(self, resource: str, node: str) -> int:
        """The fail-count of primitive ``resource`` on ``node`` (0 when none is recorded)."""
        return next((f.count for f in self.fail_counts if (f.resource, f.node) == (resource, node)), 0)

    def fail_count_map(self) -> dict[tuple[str, str], int]:
        """Non-zero fail-counts by (resource, node)."""
        return {(f.resource, f.node): f.count for f in self.fail_counts}

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def dc_feature_set(self) -> str | None:
        """The DC's CRM feature set, as crm_mon shows it on the DC's node entry (None: no DC, or not shown)."""
        dc = self.node(self.summary.dc) if self.summary.dc else None
        return dc.feature_set if dc is not None else None

    def members(self, rid: str) -> tuple[Resource, ...]:
        """The primitives a resource, group (``app1``) or clone id stands for."""
        return self._members_by_id.get(rid, ())

    @cached_property
    def _members_by_id(self) -> dict[str, tuple[Resource, ...]]:
        """Every id a primitive answers to (its own, its group's, its clone's, a cloned group's) -> the
        primitives, in crm_mon's order: one pass, not one a lookup (a check of 120 groups asks 360 times)."""
        found: dict[str, list[Resource]] = {}
        for r in self.resources:
            for key in dict.fromkeys((r.id, r.group, r.clone, _base(r.group))):
                if key is not None:
                    found.setdefault(key, []).append(r)
        return {key: tuple(rs) for key, rs in found.items()}

    def running_on(self, rid: str) -> frozenset[str]:
        """Nodes where ``rid`` runs with nothing in flight.

        A group runs on a node only when every member runs there; a clone (or
        a primitive's clone instances) wherever one instance does.
        """
        members = self.members(rid)
        if not members:
            raise KeyError(f"no resource, group or clone called {rid!r} in the cluster")
        by_group: dict[str | None, list[Resource]] = {}
        for r in members:
            by_group.setdefault(None if r.id == rid else r.group, []).append(r)
        nodes: set[str] = set()
        for group, rs in by_group.items():
            placed = [frozenset(r.nodes) if r.running else frozenset() for r in rs]
            nodes |= frozenset.intersection(*placed) if group else frozenset.union(*placed)
        return frozenset(nodes)

    def busy(self) -> tuple[Resource, ...]:
        """Resources with an operation in flight."""
        return tuple(r for r in self.resources if r.busy)

    def top_level_ids(self) -> tuple[str, ...]:
        """Groups, clones and ungrouped primitives, in crm_mon's order."""
        seen: dict[str, None] = {}
        for r in self.resources:
            seen.setdefault(r.clone or _base(r.group) or r.id, None)
        return tuple(seen)


def parse_crm_mon(text: str) -> ClusterState:
    """Parse crm_mon's XML (``--output-as=xml``, with or without ``--inactive``)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"crm_mon output is not XML: {exc}") from None
    summary = root.find("summary")
    nodes = root.find("nodes")
    if summary is None or nodes is None:
        raise ParseError("crm_mon output has no <summary> or <nodes>: was it run with --output-as=xml?")
    resources = root.find("resources")
    return ClusterState(
        summary=_summary(summary),
        nodes=tuple(_node(n) for n in nodes.findall("node")),
        resources=tuple(_resources(resources)) if resources is not None else (),
        failures=tuple(_failure(f) for f in root.iterfind("failures/failure")),
        bans=tuple(_ban(b) for b in root.iterfind("bans/ban")),
        fail_counts=tuple(_fail_counts(root)),
        collections=tuple(_collections(resources)) if resources is not None else (),
    )


def _collections(resources: ET.Element) -> Iterator[Collection]:
    for el in resources.iter():
        if el.tag in ("clone", "bundle"):
            yield Collection(id=el.get("id", ""), kind=el.tag, promotable=_bool(el, "multi_state", False),
                             managed=_bool(el, "managed", True))


def _bool(el: ET.Element, name: str, default: bool | None = None) -> bool:
    value = el.get(name)
    if value is None:
        if default is None:
            raise ParseError(f"<{el.tag} {el.get('id') or el.get('name')!r}> lacks attribute {name!r}")
        return default
    return value == "true"


def _int(value: str | None, what: str = "a number") -> int | None:
    """An integer attribute of crm_mon's XML (None when absent); anything else is a one-line ParseError."""
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ParseError(f"crm_mon shows {what} as {value!r}: not an integer") from None


def _node_name(el: ET.Element) -> str:
    """A node's name as the cluster lists it; one that could become an option or syntax is refused."""
    name = el.get("name", "")
    try:
        return names.node_name(name)
    except names.BadValue as exc:
        raise ParseError(f"the cluster lists a node upgrader refuses to act on: {exc}; rename or remove that "
                         "node (crm_node --remove) before upgrading") from None


def _attr(el: ET.Element, child: str, name: str) -> str | None:
    found = el.find(child)
    return found.get(name) if found is not None else None


def _summary(el: ET.Element) -> Summary:
    dc = el.find("current_dc")
    opts = el.find("cluster_options")
    present = dc is not None and _bool(dc, "present", False)
    return Summary(
        stack=_attr(el, "stack", "type"),
        dc=dc.get("name") if present else None,
        dc_version=dc.get("version") if present else None,
        quorum=present and _bool(dc, "with_quorum", False),
        mixed_version=dc is not None and _bool(dc, "mixed_version", False),
        nodes_configured=_int(_attr(el, "nodes_configured", "number"), "nodes_configured"),
        resources_configured=_int(_attr(el, "resources_configured", "number"), "resources_configured"),
        stonith_enabled=_bool(opts, "stonith-enabled") if opts is not None else None,
        maintenance_mode=_bool(opts, "maintenance-mode") if opts is not None else None,
        no_quorum_policy=opts.get("no-quorum-policy") if opts is not None else None,
    )


def _node(el: ET.Element) -> Node:
    return Node(
        name=_node_name(el),
        id=el.get("id", ""),
        online=_bool(el, "online"),
        standby=_bool(el, "standby"),
        standby_onfail=_bool(el, "standby_onfail", False),
        maintenance=_bool(el, "maintenance", False),
        pending=_bool(el, "pending", False),
        unclean=_bool(el, "unclean", False),
        shutdown=_bool(el, "shutdown", False),
        is_dc=_bool(el, "is_dc", False),
        resources_running=_int(el.get("resources_running", "0"), "a node's resources_running") or 0,
        type=el.get("type", "member"),
        feature_set=el.get("feature_set") or None,
    )


def _resources(el: ET.Element, group: str | None = None, clone: str | None = None) -> Iterator[Resource]:
    for child in el:
        if child.tag == "resource":
            yield _resource(child, group, clone)
        elif child.tag == "group":
            yield from _resources(child, child.get("id"), clone)
        elif child.tag == "clone":
            yield from _resources(child, group, child.get("id"))
        elif child.tag == "bundle":
            for replica in child.iterfind("replica"):
                yield from _resources(replica, group, child.get("id"))


def _resource(el: ET.Element, group: str | None, clone: str | None) -> Resource:
    return Resource(
        id=el.get("id", ""),
        agent=el.get("resource_agent", ""),
        role=el.get("role", "Unknown"),
        target_role=el.get("target_role"),
        active=_bool(el, "active"),
        failed=_bool(el, "failed", False),
        managed=_bool(el, "managed", True),
        orphaned=_bool(el, "orphaned", False),
        blocked=_bool(el, "blocked", False),
        pending=el.get("pending", ""),
        nodes=tuple(n.get("name", "") for n in el.findall("node")),
        group=group,
        clone=clone,
    )


def _failure(el: ET.Element) -> Failure:
    return Failure(
        op_key=el.get("op_key") or el.get("id", ""),
        node=el.get("node", ""),
        exitstatus=el.get("exitstatus", ""),
        exitreason=el.get("exitreason", ""),
        exitcode=_int(el.get("exitcode", "1"), "a failure's exitcode") or 0,
        call=_int(el.get("call", "0"), "a failure's call") or 0,
        status=el.get("status", ""),
        last_rc_change=el.get("last-rc-change"),
        task=el.get("task"),
        interval_ms=_int(el.get("interval"), "a failure's interval"),
    )


def _fail_counts(root: ET.Element) -> Iterator[FailCount]:
    """Non-zero fail-counts from ``<node_history>`` (crm_mon shows it by default, and with --inactive)."""
    for node in root.iterfind("node_history/node"):
        for history in node.iterfind("resource_history"):
            raw = history.get("fail-count")
            if raw is None:
                continue
            count = _score(raw, f"fail-count of {history.get('id')!r} on {node.get('name')!r}")
            if count > 0:
                yield FailCount(
                    resource=history.get("id", ""),
                    node=node.get("name", ""),
                    count=count,
                    last_failure=history.get("last-failure"),
                    migration_threshold=_score(history.get("migration-threshold"), "migration-threshold")
                    if history.get("migration-threshold") else None,
                )


def _score(value: str | None, what: str) -> int:
    """A Pacemaker score: an integer, or [+-]INFINITY (capped at +-1000000 like Pacemaker does)."""
    text = (value or "").strip()
    if text.lstrip("+").upper() == "INFINITY":
        return INFINITY
    if text.upper() == "-INFINITY":
        return -INFINITY
    try:
        return max(-INFINITY, min(INFINITY, int(text)))
    except ValueError:
        raise ParseError(f"crm_mon shows {what} as {value!r}: not a Pacemaker score") from None


def _ban(el: ET.Element) -> Ban:
    return Ban(
        id=el.get("id", ""),
        resource=el.get("resource", ""),
        node=el.get("node", ""),
        weight=_score(el.get("weight", "0"), f"ban {el.get('id', '')!r}'s weight"),
        promoted_only=_bool(el, "promoted-only", False),
    )


def _base(group: str | None) -> str | None:
    """A cloned group's instance id (``g:0``) without the instance number."""
    return group.split(":", 1)[0] if group else None


def resources_on(state: ClusterState, node: str) -> list[str]:
    """Top-level ids (group, clone or primitive) with a managed member active or busy on ``node``."""
    found: dict[str, None] = {}
    for r in state.resources:
        if node in r.nodes and (r.active or r.busy) and r.managed:  # unmanaged: left where it is, by design
            top = r.clone or (r.group.split(":", 1)[0] if r.group else None) or r.id
            found.setdefault(top, None)
    return list(found)
