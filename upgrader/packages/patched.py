"""Which processes still run code older than what the host has installed (level 4, "patched").

A file dpkg replaced on the host need not show as "(deleted)" in a container's
``/proc/PID/maps``: the container's overlay still serves the old lower file
until it is remounted. So "old" is decided by content, against dpkg's md5sums.

The rule, for each file-backed mapping of a process (one per mapped object):

1. Only files some package lists in ``/var/lib/dpkg/info/*.md5sums`` count
   (with ``packages``, only those packages' files); both sides' paths are
   compared through the host's merged-/usr aliases (``/lib/...`` is ``/usr/lib/...``).
   Anything else (a container's own files, generated files) is left out.
2. Current, fast: not marked "(deleted)" and the mapped object's device and
   inode (as ``/proc/PID/maps`` gives them, the same as a stat of
   ``/proc/PID/map_files/RANGE``) are those of the host's file at that path
   (the path as the process sees it, under ``host_root``): it runs what is on
   disk now, even where that differs from dpkg's md5sum (a local edit). Sameness
   only: a difference proves nothing (an overlay or a copy may hold equal bytes).
3. Otherwise the content decides: the md5 of the mapped object, read through
   ``/proc/PID/map_files/RANGE``, must equal dpkg's md5sum for the path (every
   one, where several packages list it). Equal: current, even when marked
   "(deleted)" (dpkg replaces every file of an upgraded package, and a
   reproducible build leaves many byte-identical). Different: stale, reason
   :data:`DELETED` when the kernel marked it so, else :data:`REPLACED`.
4. The content cannot be read (no CAP_SYS_ADMIN / CAP_CHECKPOINT_RESTORE, the
   process is gone, larger than :data:`MAX_HASH_BYTES`): stale as
   :data:`DELETED` if so marked, else not reported (unproven).

No command is run: everything is read from ``/proc`` and dpkg's database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from upgrader.packages.after import MAX_PROCESSES, Mapping, file_mappings, read_maps
from upgrader.packages.plan import MAX_LIST_BYTES, canonical_path, merged_aliases
from upgrader.packages.sumcache import cached_index

DELETED = "deleted"  # marked "(deleted)" by the kernel, and its content is not the installed one
REPLACED = "replaced"  # the host's file at its path is another one, and the mapped content is not the installed one
MAX_HASH_BYTES = 512 << 20  # of one mapped file, hashed at most (libLLVM, the largest common one, is ~100 MiB)
CHUNK = 1 << 20


@dataclass(frozen=True)
class StaleMapping:
    """A process that maps a package's file whose content is not the installed version's (see the module's rule)."""

    pid: int
    command: str  # /proc/PID/comm
    path: str  # as the process sees it
    reason: str  # DELETED or REPLACED
    package: str  # the package that lists the path (architecture qualifier dropped)

    def __str__(self) -> str:
        return f"{self.command} (pid {self.pid}) maps old {self.path}"


def stale_mappings(pids: Iterable[int], host_root: Path = Path("/"), packages: Iterable[str] | None = None,
                   proc: Path = Path("/proc"), dpkg_info: Path | None = None) -> list[StaleMapping]:
    """The stale mappings of the processes ``pids``, sorted by pid then path (the module's rule).

    ``host_root``: where the host's tree is, as the processes' paths are resolved
    (a container on an overlay of the host root: "/"). ``dpkg_info``: the host's
    ``var/lib/dpkg/info`` under ``host_root`` unless given. ``packages``: consider
    only these packages' files (this run's changed packages); None: every package.
    Bounded: at most :data:`MAX_PROCESSES` processes, each one's maps up to
    ``MAX_MAPS_BYTES``, each md5sums file up to ``MAX_LIST_BYTES``, each mapped
    object hashed once per scan. A process that vanished or whose maps cannot be
    read is skipped, as is a mapping whose content cannot be read (unless marked
    "(deleted)"): never an error.
    """
    return stale_mappings_of({"": pids}, host_root, packages, proc, dpkg_info)[""]


def stale_mappings_of(groups: dict[str, Iterable[int]], host_root: Path = Path("/"),
                      packages: Iterable[str] | None = None, proc: Path = Path("/proc"),
                      dpkg_info: Path | None = None, cache: Path | None = None) -> dict[str, list[StaleMapping]]:
    """:func:`stale_mappings` of each group of processes (a container's), in one scan: dpkg's md5sums are
    read once for every group's mapped paths, and each mapped object is hashed once whichever group maps
    it, so a node's scan grows with its processes, not with its containers times its packages.
    At most :data:`MAX_PROCESSES` processes per group. ``cache``: every package's md5sums of the mapped
    paths kept there between scans while dpkg's database is unchanged (:mod:`.sumcache`; not with
    ``packages``)."""
    aliases = merged_aliases(host_root)
    info = dpkg_info if dpkg_info is not None else host_root / "var/lib/dpkg/info"
    scanned: dict[str, list[tuple[int, list[Mapping]]]] = {}
    for key, pids in groups.items():
        maps_of = scanned[key] = []
        for pid in list(dict.fromkeys(pids))[:MAX_PROCESSES]:
            try:
                maps_of.append((pid, file_mappings(read_maps(proc / str(pid)))))
            except (OSError, ProcessLookupError):
                continue
    wanted = {canonical_path(m.path, aliases) for group in scanned.values() for _, maps in group for m in maps}
    if cache is not None and packages is None:
        index = cached_index(info, aliases, wanted, lambda paths: md5sums_index(info, None, aliases, paths), cache)
    else:
        index = md5sums_index(info, packages, aliases, wanted)
    checker = _Checker(proc, host_root)
    return {key: _stale(group, index, aliases, checker, proc) for key, group in scanned.items()}


def _stale(scanned: list[tuple[int, list[Mapping]]], index: dict[str, list[tuple[str, str]]],
           aliases: dict[str, str], checker: "_Checker", proc: Path) -> list[StaleMapping]:
    found: set[StaleMapping] = set()
    for pid, maps in scanned:
        stale = []
        for m in maps:
            sums = index.get(canonical_path(m.path, aliases))
            if sums and (reason := checker.reason(pid, m, sums)) is not None:
                stale.append((m.path, reason, sums[0][1]))
        if not stale:
            continue
        try:
            command = (proc / str(pid) / "comm").read_text().strip()
        except (OSError, ProcessLookupError):
            continue  # gone: it runs nothing old any more
        found.update(StaleMapping(pid, command, path, reason, package) for path, reason, package in stale)
    return sorted(found, key=lambda s: (s.pid, s.path, s.reason))


def md5sums_index(dpkg_info: Path, packages: Iterable[str] | None = None, aliases: dict[str, str] | None = None,
                  wanted: set[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """``{"/usr/lib/.../libz.so.1.2.13": [(md5, package), ...]}`` from dpkg's ``*.md5sums`` files.

    Paths are made absolute and canonical through ``aliases``; ``wanted``: keep
    only these paths (memory stays small). ``packages``: read only their files
    (``NAME.md5sums`` or ``NAME:ARCH.md5sums``); None: every package's. Each
    file is read up to ``MAX_LIST_BYTES``; one that cannot be read is skipped.
    """
    aliases = {} if aliases is None else aliases
    if packages is None:
        files = sorted(dpkg_info.glob("*.md5sums"))
    else:
        files = []
        for name in dict.fromkeys(packages):
            files += [dpkg_info / f"{name}.md5sums"] if ":" in name else [dpkg_info / f"{name}.md5sums",
                                                                           *sorted(dpkg_info.glob(f"{name}:*.md5sums"))]
    spelled = None if wanted is None else spellings(wanted, aliases)
    index: dict[str, list[tuple[str, str]]] = {}
    for path in files:
        package = path.name.removesuffix(".md5sums").partition(":")[0]
        try:
            with path.open("rb") as f:
                text = f.read(MAX_LIST_BYTES).decode(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            md5, sep, name = line.partition("  ")  # "<32 hex>  <path without the leading slash>"
            if not sep or len(md5) != 32 or not name:
                continue
            if spelled is None:
                key = canonical_path("/" + name.lstrip("/"), aliases)
            elif (found := spelled.get(name.lstrip("/"))) is not None:
                key = found
            else:
                continue
            index.setdefault(key, []).append((md5.lower(), package))
    return index


def spellings(wanted: Iterable[str], aliases: dict[str, str]) -> dict[str, str]:
    """Every way an md5sums line may spell a path of ``wanted`` (no leading slash), and that path: the
    paths whose :func:`canonical_path` is in ``wanted``, so that a scan of every package's lines (100,000
    on a small host) looks each up as it is, canonicalising none of them."""
    found: dict[str, str] = {}
    for w in wanted:
        if canonical_path(w, aliases) == w:
            found[w.lstrip("/")] = w
        for alias, target in aliases.items():
            if w.startswith(target + "/") and canonical_path(spelt := alias + w[len(target):], aliases) == w:
                found[spelt.lstrip("/")] = w
    return found


def container_pids(init_pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every process in the pid namespace of ``init_pid`` (a container's init), sorted, as ``proc`` numbers them.

    Compared by ``/proc/PID/ns/pid``; processes that vanish or whose namespace
    cannot be read are skipped, at most ``MAX_PROCESSES``. Raises OSError when
    ``init_pid``'s own namespace cannot be read (it is gone: no container).
    A pid of the caller's own namespace gives every process of it.
    """
    found = namespace_members([init_pid], proc)
    if init_pid not in found:
        namespace_of(init_pid, proc)  # raises the OSError that says why
        raise FileNotFoundError(f"process {init_pid} is gone")
    return found[init_pid]


def namespace_members(init_pids: Iterable[int], proc: Path = Path("/proc")) -> dict[int, list[int]]:
    """:func:`container_pids` of several inits in one pass over ``proc``: ``{init: its processes}``.
    An init whose own namespace cannot be read (it is gone) is left out."""
    wanted: dict[str, list[int]] = {}
    for pid in dict.fromkeys(init_pids):
        try:
            wanted.setdefault(namespace_of(pid, proc), []).append(pid)
        except (OSError, ProcessLookupError):
            continue
    found: dict[int, list[int]] = {pid: [] for inits in wanted.values() for pid in inits}
    if not found:
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            sharing = wanted.get(os.readlink(entry / "ns" / "pid"), ())
        except (OSError, ProcessLookupError):
            continue
        for init in sharing:
            if len(found[init]) < MAX_PROCESSES:
                found[init].append(int(entry.name))
    return {pid: sorted(members) for pid, members in found.items()}


def namespace_of(pid: int, proc: Path = Path("/proc")) -> str:
    """The pid namespace of ``pid`` (``/proc/PID/ns/pid``'s link); OSError when it is gone."""
    return os.readlink(proc / str(pid) / "ns" / "pid")


def report_lines(found: Iterable[StaleMapping]) -> list[str]:
    """One line per process: ``COMMAND (pid N) maps old FILE[, FILE...]``, by pid."""
    by_pid: dict[tuple[int, str], list[str]] = {}
    for stale in found:
        files = by_pid.setdefault((stale.pid, stale.command), [])
        if stale.path not in files:
            files.append(stale.path)
    return [f"{command} (pid {pid}) maps old {', '.join(sorted(files))}"
            for (pid, command), files in sorted(by_pid.items())]


class _Checker:
    """The rule's steps 2-4 for one scan: host stats and mapped objects' md5s cached."""

    def __init__(self, proc: Path, host_root: Path) -> None:
        self.proc = proc
        self.host_root = host_root
        self.host: dict[str, tuple[int, int] | None] = {}
        self.digests: dict[tuple[int, int], str | None] = {}

    def reason(self, pid: int, mapping: Mapping, sums: list[tuple[str, str]]) -> str | None:
        """DELETED or REPLACED when ``mapping`` is stale, None when current or unproven."""
        if not mapping.deleted and self._host_identity(mapping.path) == (mapping.device, mapping.inode):
            return None
        digest = self._digest(pid, mapping)
        if digest is None:
            return DELETED if mapping.deleted else None
        if all(digest == md5 for md5, _ in sums):
            return None
        return DELETED if mapping.deleted else REPLACED

    def _host_identity(self, path: str) -> tuple[int, int] | None:
        if path not in self.host:
            try:
                st = os.stat(self.host_root / path.lstrip("/"))
                self.host[path] = (st.st_dev, st.st_ino)
            except OSError:
                self.host[path] = None
        return self.host[path]

    def _digest(self, pid: int, mapping: Mapping) -> str | None:
        """The md5 of the mapped object (read through map_files), once per object; None: unreadable or too large."""
        identity = (mapping.device, mapping.inode)
        if self.digests.get(identity) is None:
            self.digests[identity] = _md5(self.proc / str(pid) / "map_files" / mapping.range)
        return self.digests[identity]


def _md5(path: Path) -> str | None:
    digest = hashlib.md5(usedforsecurity=False)
    read = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                read += len(chunk)
                if read > MAX_HASH_BYTES:
                    return None
                digest.update(chunk)
    except (OSError, ProcessLookupError):
        return None
    return digest.hexdigest()
