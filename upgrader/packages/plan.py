"""The pending dist-upgrade of this node: each package, its versions, security or not, HA stack or not, in use or not."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from upgrader.origins import Origin
from upgrader.packages.after import is_stack_process, mapped_files

if TYPE_CHECKING:
    import apt

# Packages of the cluster stack: upgrading one needs Pacemaker's rolling-upgrade rule (stop the stack around it).
# Programs: the name itself or NAME-something (pcs, not pcscd); libraries: any name starting so (libqb100).
HA_STACK_PROGRAMS = ("pacemaker", "corosync", "resource-agents", "crmsh", "pcs", "fence-agents", "sbd", "booth",
                     "dlm", "python3-corosync")
HA_STACK_LIBRARIES = ("libqb", "libknet", "libnozzle", "libcrmcommon", "libcrmcluster", "libcrmservice", "libcib",
                      "liblrmd", "libpe-", "libpacemaker", "libstonithd", "libcorosync", "libcfg", "libcmap",
                      "libcpg", "libquorum", "libsam", "libvotequorum")
DPKG_INFO = Path("/var/lib/dpkg/info")
MAX_LIST_BYTES = 8 << 20  # a package's file list read, at most (the largest, kernel headers, are ~2 MiB)
MERGED = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # merged-/usr aliases of /usr/bin, ...


@dataclass(frozen=True)
class Change:
    """One package the dist-upgrade changes (``installed`` None: new; ``candidate`` None: removed).

    ``in_use``: a running process maps one of the installed version's files (a program or library it runs).
    ``origins``: where the candidate comes from (python-apt's ``candidate.origins``); none for a removal.
    """

    package: str
    installed: str | None
    candidate: str | None
    security: bool = False
    ha_stack: bool = False
    in_use: bool = False
    origins: tuple[Origin, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Change":
        """From ``plan --local --json``'s or ``apply``'s change (one of an older version may lack ``in_use``
        and ``origins``)."""
        return cls(d["package"], d.get("installed"), d.get("candidate"), bool(d.get("security")),
                   bool(d.get("ha_stack")), bool(d.get("in_use")),
                   tuple(Origin.from_json(o) for o in d.get("origins") or ()))

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
    return marked_changes(cache)


def marked_changes(cache: apt.Cache) -> tuple[Change, ...]:
    """The changes the cache is marked for now, described (nothing is marked or run)."""
    pending = sorted(cache.get_changes(), key=lambda p: p.name)
    installed = [p.name for p in pending if p.installed]
    used = in_use(installed)
    # A library the running stack maps (libgnutls, libgcrypt, libnss3, libc...) needs the stack restarted
    # around dpkg as much as pacemaker itself: else the node rejoins on old code.
    stack = in_use(installed, mapped_files(only=is_stack_process))
    changes = []
    for pkg in pending:
        removed = pkg.marked_delete
        candidate = None if removed or pkg.candidate is None else pkg.candidate
        changes.append(Change(
            package=pkg.name,
            installed=pkg.installed.version if pkg.installed else None,
            candidate=candidate.version if candidate else None,
            security=candidate is not None and is_security(o.archive for o in candidate.origins),
            ha_stack=is_ha_stack(pkg.name) or pkg.name in stack,
            in_use=pkg.name in used,
            origins=tuple(Origin.from_apt(o) for o in candidate.origins) if candidate is not None else (),
        ))
    return tuple(changes)


def in_use(packages: Iterable[str], mapped: frozenset[str] | None = None, info: Path = DPKG_INFO,
           aliases: dict[str, str] | None = None) -> frozenset[str]:
    """Which of the installed ``packages`` own a file that a running process maps (``/proc/*/maps``).

    Bounded: only these packages' dpkg file lists are read, each up to :data:`MAX_LIST_BYTES`;
    their paths are compared after the merged-/usr aliases (``/lib/...`` is ``/usr/lib/...``).
    """
    mapped = mapped_files() if mapped is None else mapped
    aliases = merged_aliases() if aliases is None else aliases
    return frozenset(p for p in packages if any(canonical_path(f, aliases) in mapped for f in package_files(p, info)))


def package_files(package: str, info: Path = DPKG_INFO) -> list[str]:
    """The paths dpkg lists for an installed package (``NAME.list``, or ``NAME:ARCH.list`` for a multi-arch one)."""
    candidates = [info / f"{package}.list"] if ":" in package else [info / f"{package}.list",
                                                                    *sorted(info.glob(f"{package}:*.list"))]
    for path in candidates:
        try:
            with path.open("rb") as f:
                return f.read(MAX_LIST_BYTES).decode(errors="replace").splitlines()
        except OSError:
            continue
    return []


def merged_aliases(root: Path = Path("/")) -> dict[str, str]:
    """``{"/lib": "/usr/lib", ...}`` for each top directory that is a symlink into /usr (merged /usr)."""
    found = {}
    for top in MERGED:
        path = root / top.lstrip("/")
        if path.is_symlink() and os.path.realpath(path) == os.path.realpath(root / "usr" / top.lstrip("/")):
            found[top] = "/usr" + top
    return found


def canonical_path(path: str, aliases: dict[str, str]) -> str:
    """``path`` through the merged-/usr ``aliases`` (``/lib/x/libc.so.6`` is ``/usr/lib/x/libc.so.6``)."""
    top, sep, rest = path[1:].partition("/")
    alias = aliases.get("/" + top)
    return f"{alias}/{rest}" if alias and sep else path


def local_plan() -> Plan:
    """This node's plan (the node named by its hostname, as Pacemaker names it by default)."""
    return Plan(socket.gethostname(), plan_node())
