"""What an upgrade leaves behind: a reboot to do, processes still running old libraries; the files processes map.

For files older than the installed packages' (by content, inside containers too), see :mod:`upgrader.packages.patched`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

REBOOT_REQUIRED = Path("/var/run/reboot-required")
MAX_PROCESSES = 4096  # processes whose maps are read, at most (a node runs a few hundred)
MAX_MAPS_BYTES = 4 << 20  # of one process's maps, read at most (a large JVM's is ~1 MiB)


@dataclass(frozen=True)
class StaleProcess:
    """A process mapping a library that was replaced or removed on disk."""

    pid: int
    command: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.command} (pid {self.pid}): {', '.join(self.files)}"


def reboot_reasons(root: Path = Path("/")) -> list[str]:
    """Why the node needs a reboot (empty: it does not): reboot-required, or a newer kernel than the running one."""
    reasons = []
    flag = root / REBOOT_REQUIRED.relative_to("/")
    if flag.exists():
        pkgs = flag.with_name(flag.name + ".pkgs")
        listed = " ".join(pkgs.read_text().split()) if pkgs.exists() else ""
        reasons.append(f"{REBOOT_REQUIRED} exists" + (f" (packages: {listed})" if listed else ""))
    newest = newest_kernel(root / "boot")
    running = os.uname().release
    if newest and newest != running:
        reasons.append(f"kernel {newest} is installed, {running} is running")
    return reasons


def newest_kernel(boot: Path) -> str | None:
    """The newest kernel release with an image in ``boot`` (vmlinuz-RELEASE), numbers compared as numbers."""
    releases = [p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*")]
    return max(releases, key=_release_key) if releases else None


def _release_key(release: str) -> list[tuple[int, str]]:
    """6.1.0-27-amd64 sorts after 6.1.0-9-amd64."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", release) if part]


@dataclass(frozen=True)
class Mapping:
    """One file-backed mapping of a process, as a line of ``/proc/PID/maps`` gives it.

    ``range`` names its ``/proc/PID/map_files`` entry (``400000-41f000``, unpadded); ``device``/``inode`` are the
    mapped object's (as ``os.makedev`` and ``st_ino`` give them); ``deleted``: the
    kernel marked the path `` (deleted)`` (which ``path`` does not carry).
    """

    range: str
    device: int
    inode: int
    path: str
    deleted: bool


def file_mappings(maps: str) -> list[Mapping]:
    """The file-backed mappings of a ``maps`` text, one per mapped object (path, device, inode), first range kept.

    Anonymous memory, ``[heap]``, ``[vdso]`` and the like have no path starting with "/" or inode 0: left out.
    """
    found: dict[tuple[str, int, int], Mapping] = {}
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) != 6 or not fields[5].startswith("/") or fields[4] == "0":
            continue
        major, _, minor = fields[3].partition(":")
        start, _, end = fields[0].partition("-")
        try:
            device, inode = os.makedev(int(major, 16), int(minor, 16)), int(fields[4])
            span = f"{int(start, 16):x}-{int(end, 16):x}"  # maps pads "00400000", map_files names it "400000"
        except ValueError:
            continue
        deleted = fields[5].endswith(" (deleted)")
        path = fields[5].removesuffix(" (deleted)")
        found.setdefault((path, device, inode), Mapping(span, device, inode, path, deleted))
    return list(found.values())


def read_maps(entry: Path, limit: int = MAX_MAPS_BYTES) -> str:
    """``entry/maps`` (``entry`` is ``/proc/PID``), its first ``limit`` bytes; raises OSError as reading does."""
    with (entry / "maps").open("rb") as f:
        data = f.read(limit)
    if len(data) >= limit:
        data = data[:data.rfind(b"\n") + 1]  # no half line at the cut
    return data.decode(errors="replace")


def stale_processes(proc: Path = Path("/proc")) -> list[StaleProcess]:
    """Processes whose memory maps show a deleted shared library (``... .so... (deleted)``)."""
    found = []
    for entry, maps in process_maps(proc):
        files = sorted({line.split(None, 5)[5].removesuffix(" (deleted)") for line in maps.splitlines()
                        if line.endswith(" (deleted)") and ".so" in line and len(line.split(None, 5)) == 6})
        if not files:
            continue
        try:
            command = (entry / "comm").read_text().strip()
        except (OSError, ProcessLookupError):
            continue
        found.append(StaleProcess(int(entry.name), command, tuple(files)))
    return sorted(found, key=lambda p: p.pid)


STACK_COMMANDS = ("corosync", "pacemaker", "sbd", "dlm_controld")  # comm prefixes of the cluster stack's daemons


def is_stack_process(entry: Path) -> bool:
    """Whether ``/proc/PID`` is a cluster-stack daemon (corosync, pacemakerd and pacemaker-*, sbd, dlm_controld)."""
    try:
        return (entry / "comm").read_text().strip().startswith(STACK_COMMANDS)
    except (OSError, ProcessLookupError):
        return False


def mapped_files(proc: Path = Path("/proc"), only: Callable[[Path], bool] | None = None) -> frozenset[str]:
    """Every file a running process maps (its program, its libraries), as the kernel names it (no " (deleted)");
    with ``only``, of the processes it accepts (``/proc/PID`` given)."""
    found: set[str] = set()
    for entry, maps in process_maps(proc, only=only):
        for line in maps.splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                found.add(fields[5].removesuffix(" (deleted)"))
    return frozenset(found)


def process_maps(proc: Path = Path("/proc"), limit: int = MAX_PROCESSES,
                 only: Callable[[Path], bool] | None = None) -> Iterator[tuple[Path, str]]:
    """(``/proc/PID``, its ``maps``) of the first ``limit`` other processes whose maps can be read (that ``only``
    accepts, when given)."""
    read = 0
    for entry in proc.iterdir():
        if read >= limit:
            return
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or (only is not None and not only(entry)):
            continue
        try:
            maps = read_maps(entry)
        except (OSError, ProcessLookupError):
            continue
        read += 1
        yield entry, maps


NEEDRESTART = Path("/usr/sbin/needrestart")


@dataclass(frozen=True)
class OldCode:
    """What a node still runs on replaced code after its upgrade, outside Pacemaker's resources."""

    services: tuple[str, ...] = ()  # systemd units (a process's name where it has none) to restart
    reboot: tuple[str, ...] = ()  # why the node needs a reboot (empty: it does not)


def old_code(root: Path = Path("/"), proc: Path = Path("/proc"), needrestart: Path = NEEDRESTART,
             timeout: float = 60) -> OldCode:
    """needrestart's batch mode (``-b -r l``: lists, restarts nothing) where it is installed, else the
    processes mapping a deleted library, by their systemd unit. A reboot is due when ``/run/reboot-required``
    exists, a newer kernel is installed (or needrestart says the kernel is outdated), or process 1 maps a
    replaced library."""
    reasons = reboot_reasons(root)
    stale = stale_processes(proc)
    if any(p.pid == 1 for p in stale):
        init = next(p for p in stale if p.pid == 1)
        reasons.append(f"process 1 ({init.command}) maps a replaced library: {', '.join(init.files)}")
    if needrestart.exists():
        from upgrader.runner import Runner

        result = Runner(timeout=timeout).call([str(needrestart), "-b", "-r", "l"])
        if result.returncode == 0:
            services, kernel = parse_needrestart(result.stdout)
            return OldCode(services, tuple(dict.fromkeys(reasons + kernel)))
    units = [_unit(proc / str(p.pid)) or f"{p.command} (pid {p.pid})" for p in stale if p.pid != 1]
    return OldCode(tuple(dict.fromkeys(units)), tuple(reasons))


def parse_needrestart(text: str) -> tuple[tuple[str, ...], list[str]]:
    """(services to restart, kernel reboot reasons) from ``needrestart -b`` output."""
    services, fields = [], {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "NEEDRESTART-SVC":
            services.append(value.strip())
        elif key.startswith("NEEDRESTART-"):
            fields[key.removeprefix("NEEDRESTART-")] = value.strip()
    kernel = []
    if fields.get("KSTA") in ("2", "3"):
        kernel.append(f"needrestart: kernel {fields.get('KEXP', '?')} is expected, {fields.get('KCUR', '?')} runs")
    return tuple(services), kernel


def _unit(entry: Path) -> str | None:
    """The systemd service a process runs in (from ``/proc/PID/cgroup``), None outside one."""
    try:
        text = (entry / "cgroup").read_text()
    except (OSError, ProcessLookupError):
        return None
    for line in text.splitlines():  # ID:CONTROLLERS:PATH; systemd's own hierarchy (v2 "0::", or name=systemd)
        fields = line.split(":", 2)
        if len(fields) == 3 and fields[1] in ("", "name=systemd"):
            unit = next((part for part in reversed(fields[2].split("/")) if part.endswith(".service")), None)
            if unit:
                return unit
    return None
