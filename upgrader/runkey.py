"""Which apt (or dpkg) run a hook belongs to: the holder of dpkg's frontend lock, and its start time.

Standard library only (fcntl, struct, os): this runs in every hook call.
"""

from __future__ import annotations

import fcntl
import os
import struct

FRONTEND_LOCK = "/var/lib/dpkg/lock-frontend"
DPKG_LOCK = "/var/lib/dpkg/lock"  # dpkg's own: a dpkg whose frontend (apt) is gone may still hold it
PACKAGE_LOCKS = (FRONTEND_LOCK, DPKG_LOCK)
RUNS = "/run/upgrader/runs"  # the guard's state per apt run (upgrader.guard.store)
# Files in a run's directory naming the processes that finish it after apt ends: the finisher (the
# waiter Post-Invoke spawns) and the finishing step it starts (rolling-upgrade node --finish).
FINISHER_KEY = "finisher-key"
FINISHING_KEY = "finishing-key"
RUNNING, FINISHING, ENDED = "running", "finishing", "ended"
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "hhqqi"


def lock_holder(path: str = FRONTEND_LOCK) -> int | None:
    """The PID holding an fcntl lock on ``path`` (F_GETLK: nothing is taken), None when free or missing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    return pid if l_type != fcntl.F_UNLCK and pid > 0 else None


def package_lock_holder(paths: tuple[str, ...] = PACKAGE_LOCKS) -> int | None:
    """The PID holding any of dpkg's locks (its frontend's, then its own), None when no package manager runs."""
    return next((pid for pid in map(lock_holder, paths) if pid), None)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields from field 3 (state) on; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot); None when gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def run_pid() -> int:
    """The process that stands for this run.

    The holder of lock-frontend (apt-get, unattended-upgrades, python-apt, or
    a dpkg run directly); without one, the nearest ``dpkg`` ancestor; else the
    hook's parent.
    """
    holder = lock_holder()
    if holder:
        return holder
    pid: int | None = os.getppid()
    while pid and pid > 1:
        if _comm(pid) == "dpkg":
            return pid
        pid = parent(pid)
    return os.getppid()


def key_of(pid: int) -> str | None:
    """``PID-STARTTIME``, or None when the process is gone."""
    started = start_time(pid)
    return None if started is None else f"{pid}-{started}"


def run_key() -> str:
    """The key of the current run, the same in every hook call of one apt run."""
    pid = run_pid()
    return key_of(pid) or f"{pid}-0"


def alive(key: str) -> bool:
    """Whether the process a key names still runs (same PID and the same start time; a zombie has ended)."""
    pid, _, started = key.partition("-")
    if not pid.isdigit():
        return False
    fields = _stat(int(pid))
    return bool(fields) and fields[0] not in ("Z", "X") and f"{pid}-{fields[19]}" == key


def apt_run_state(key: str, root: str = "") -> str:
    """Whether the apt run ``key`` is :data:`RUNNING`, :data:`FINISHING` (its finisher or finishing step
    runs) or :data:`ENDED` (neither: its lock, if it still holds one, is no longer anyone's).

    Only meaningful on the node the run ran on. A recorded key that is a symlink, not root's, or
    writable by others counts as no record.
    """
    if alive(key):
        return RUNNING
    for name in (FINISHER_KEY, FINISHING_KEY):
        recorded = _read_private(f"{root}{RUNS}/{key}/{name}")
        if recorded and alive(recorded):
            return FINISHING
    return ENDED


def _read_private(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return ""
        return os.read(fd, 64).decode(errors="replace").strip()
    finally:
        os.close(fd)
