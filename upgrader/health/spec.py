"""Health-check declarations read from CIB meta attributes, validated at preflight.

See the package docstring for the attribute names and the probe URL format.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from upgrader.health.errors import ProbeSpecError

PROBE_ATTR = "rolling-upgrade-probe"
CHECK_CMD_ATTR = "rolling-upgrade-check-cmd"
LXC_AGENT = "ocf:heartbeat:lxc"
# Container agents whose containers this package cannot inspect (levels 1 and 3 only).
OTHER_CONTAINER_AGENTS = frozenset(
    f"ocf:heartbeat:{t}" for t in ("docker", "docker-compose", "podman", "rkt", "VirtualDomain")
)
DEFAULT_PORTS = {"tcp": 0, "http": 80, "https": 443}  # tcp:// must name its port
OPTIONS = ("body", "status", "verify")


@dataclass(frozen=True)
class ResourceConfig:
    """What the CIB says about one resource; the caller fills it from the configuration.

    ``agent`` is ``class:provider:type`` (``ocf:heartbeat:lxc``); a group has
    ``members`` (its primitives, in order) and no agent.
    """

    id: str
    agent: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    members: tuple["ResourceConfig", ...] = ()


@dataclass(frozen=True)
class ProbeSpec:
    """One application probe: a TCP connect, or an HTTP(S) GET with expectations."""

    text: str
    scheme: str
    host: str
    port: int
    path: str = "/"
    status: int = 200
    body: re.Pattern[str] | None = None
    verify: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """An lxc container to find RUNNING, and the command that must succeed inside it."""

    primitive: str
    name: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class HealthSpec:
    """Everything to check for one movable resource (a primitive or a group)."""

    resource: str
    primitives: tuple[str, ...]
    containers: tuple[ContainerSpec, ...] = ()
    probes: tuple[ProbeSpec, ...] = ()
    container_note: str | None = None  # why (part of) level 2 is not checked


def parse_probe(text: str) -> ProbeSpec:
    """Parse one probe URL; raise ValueError saying what is wrong with it."""
    url = urlsplit(text)
    if url.scheme not in DEFAULT_PORTS or "://" not in text:
        raise ValueError(f"{text!r} is not tcp://, http:// or https://")
    try:
        port = url.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    if not url.hostname:
        raise ValueError(f"{text!r} has no host")
    _host(text, url.hostname)
    if url.username is not None:
        raise ValueError(f"{text!r}: credentials in the URL are not supported")
    if port == 0:
        raise ValueError(f"{text!r} has an invalid port")
    if url.scheme == "tcp":
        if port is None:
            raise ValueError(f"{text!r} needs a port (tcp://host:port)")
        if url.path or url.query or url.fragment:
            raise ValueError(f"{text!r}: tcp:// takes only host:port")
        return ProbeSpec(text, "tcp", url.hostname, port)
    opts = _options(text, url.fragment)
    if "verify" in opts and url.scheme != "https":
        raise ValueError(f"{text!r}: verify= applies to https:// only")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return ProbeSpec(
        text, url.scheme, url.hostname, port or DEFAULT_PORTS[url.scheme], path,
        status=_status(text, opts.get("status", "200")),
        body=_pattern(text, opts["body"]) if "body" in opts else None,
        verify=_verify(text, opts.get("verify", "yes")),
    )


def health_spec(resource: ResourceConfig) -> HealthSpec:
    """Read and validate the declarations of ``resource``; raise ProbeSpecError.

    In a group, probes on the group and on its members all count; a member's
    check command wins over the group's.
    """
    members = resource.members or (resource,)
    where = {m.id: f"{resource.id}/{m.id}" if resource.members else m.id for m in members}
    probes: dict[str, ProbeSpec] = {}
    for owner in (resource,) + resource.members:
        for probe in _probes(owner, where.get(owner.id, resource.id)):
            probes.setdefault(probe.text, probe)
    group_cmd = _command(resource, resource.id) if resource.members else None
    cmds = {m.id: _command(m, where[m.id]) for m in members}
    lxc = [m for m in members if _agent(m.agent) == LXC_AGENT]
    containers = tuple(
        ContainerSpec(m.id, _container(m, where[m.id]), cmds[m.id] or group_cmd or ()) for m in lxc
    )
    unchecked = [m for m in members if m not in lxc and (not lxc or _agent(m.agent) in OTHER_CONTAINER_AGENTS)]
    note = None
    if unchecked:
        agents = list(dict.fromkeys(_agent(m.agent) for m in unchecked))
        note = f"container level not checked: agent{'s' if len(agents) > 1 else ''} {', '.join(agents)}"
        if any(cmds[m.id] for m in unchecked) or (group_cmd and not lxc):
            note += f"; {CHECK_CMD_ATTR} not run"
    return HealthSpec(resource.id, tuple(m.id for m in members), containers, tuple(probes.values()), note)


def validate(resources: Iterable[ResourceConfig]) -> dict[str, HealthSpec]:
    """Preflight: the health specs of all ``resources`` by id; raise on the first bad one."""
    return {r.id: health_spec(r) for r in resources}


def _agent(agent: str) -> str:
    return agent.replace("::", ":")  # crm_mon of older releases writes ocf::heartbeat:lxc


def _container(member: ResourceConfig, where: str) -> str:
    name = member.params.get("container", "").strip()
    if not name:
        raise ProbeSpecError(f"{where}: parameter container is missing ({LXC_AGENT} needs it)")
    return name


def _probes(owner: ResourceConfig, where: str) -> list[ProbeSpec]:
    value = owner.meta.get(PROBE_ATTR)
    if value is None:
        return []
    prefix = f"{where}: meta attribute {PROBE_ATTR}"
    if not value.split():
        raise ProbeSpecError(f"{prefix}: empty value")
    try:
        return [parse_probe(text) for text in value.split()]
    except ValueError as exc:
        raise ProbeSpecError(f"{prefix}: {exc}") from None


def _command(owner: ResourceConfig, where: str) -> tuple[str, ...] | None:
    value = owner.meta.get(CHECK_CMD_ATTR)
    if value is None:
        return None
    prefix = f"{where}: meta attribute {CHECK_CMD_ATTR}"
    try:
        argv = tuple(shlex.split(value))
    except ValueError as exc:
        raise ProbeSpecError(f"{prefix}: {value!r}: {str(exc).lower()}") from None
    if not argv:
        raise ProbeSpecError(f"{prefix}: empty command")
    return argv


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def _host(text: str, host: str) -> None:
    """An IP address, or a DNS name whose last label is not all digits (198.51.100.300 is neither)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if len(host) > 253 or not _HOST_NAME.fullmatch(host) or host.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"{text!r}: {host!r} is neither an IP address nor a host name")


def _options(text: str, fragment: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for item in fragment.split("&") if fragment else ():
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            raise ValueError(f"{text!r}: unknown option {item!r} after '#' (known: {', '.join(OPTIONS)})")
        if key in opts:
            raise ValueError(f"{text!r}: option {key} given twice")
        opts[key] = unquote(value)
    return opts


def _status(text: str, value: str) -> int:
    if not value.isdigit() or not 100 <= int(value) <= 599:
        raise ValueError(f"{text!r}: status={value!r} is not an HTTP status (100-599)")
    return int(value)


def _pattern(text: str, value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{text!r}: body={value!r} is not a valid regular expression ({exc})") from None


def _verify(text: str, value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(f"{text!r}: verify={value!r} must be yes or no")
    return value == "yes"
