"""The pending dist-upgrade of this node: each package, its versions, security or not, HA stack or not."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import apt

# Packages of the cluster stack: upgrading one needs Pacemaker's rolling-upgrade rule (stop the stack around it).
# Programs: the name itself or NAME-something (pcs, not pcscd); libraries: any name starting so (libqb100).
HA_STACK_PROGRAMS = ("pacemaker", "corosync", "resource-agents", "crmsh", "pcs", "fence-agents", "sbd", "booth",
                     "dlm", "python3-corosync")
HA_STACK_LIBRARIES = ("libqb", "libknet", "libnozzle", "libcrmcommon", "libcrmcluster", "libcrmservice", "libcib",
                      "liblrmd", "libpe-", "libpacemaker", "libstonithd", "libcorosync", "libcfg", "libcmap",
                      "libcpg", "libquorum", "libsam", "libvotequorum")


@dataclass(frozen=True)
class Change:
    """One package the dist-upgrade changes (``installed`` None: new; ``candidate`` None: removed)."""

    package: str
    installed: str | None
    candidate: str | None
    security: bool
    ha_stack: bool

    @property
    def action(self) -> str:
        return "install" if self.installed is None else "remove" if self.candidate is None else "upgrade"


@dataclass(frozen=True)
class Plan:
    node: str
    changes: tuple[Change, ...]

    @property
    def security(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.security)

    @property
    def ha_stack(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.ha_stack)

    def document(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"node": self.node, "changes": [dict(asdict(c), action=c.action) for c in self.changes],
                "security": len(self.security), "ha_stack": [c.package for c in self.ha_stack]}


def is_ha_stack(package: str) -> bool:
    name = package.split(":", 1)[0]
    return name.startswith(HA_STACK_LIBRARIES) or any(name == p or name.startswith(p + "-") for p in HA_STACK_PROGRAMS)


def is_security(archives: Iterable[str]) -> bool:
    """A candidate from an archive (suite) ending in ``-security`` (Debian's bookworm-security, the lab's lab-security)."""
    return any(a.endswith("-security") for a in archives)


def plan_node(cache: apt.Cache | None = None) -> tuple[Change, ...]:
    """The changes ``apt-get dist-upgrade`` would make now (the cache is marked for it; nothing is run)."""
    import apt

    cache = cache if cache is not None else apt.Cache()
    cache.upgrade(dist_upgrade=True)
    changes = []
    for pkg in sorted(cache.get_changes(), key=lambda p: p.name):
        removed = pkg.marked_delete
        candidate = None if removed or pkg.candidate is None else pkg.candidate
        changes.append(Change(
            package=pkg.name,
            installed=pkg.installed.version if pkg.installed else None,
            candidate=candidate.version if candidate else None,
            security=candidate is not None and is_security(o.archive for o in candidate.origins),
            ha_stack=is_ha_stack(pkg.name),
        ))
    return tuple(changes)


def local_plan() -> Plan:
    """This node's plan (the node named by its hostname, as Pacemaker names it by default)."""
    return Plan(socket.gethostname(), plan_node())
