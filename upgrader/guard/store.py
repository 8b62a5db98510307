"""Where the guard keeps what it knows about one apt run, and its event log.

Per run (``/run/upgrader/runs/KEY/``): ``verdict`` (``allowed``,
``refused``, ``deferred`` or ``self-removal``, a TAB, the reason), ``packages.tsv`` (the Pre-Install-Pkgs capture),
``result.json`` (what Post-Invoke saw) and ``finisher`` (made once, by the
first Post-Invoke that spawns the finishing step). The latest refusal is also
in ``/run/upgrader/refusal`` (python-apt callers only see
``installArchives() failed``). Every hook firing is one JSON line in
``/var/log/upgrader/hooks.jsonl``.

Standard library only: this runs in every hook call.
"""

from __future__ import annotations

import os
import stat
import time

RUN_DIR = "/run/upgrader"
RUNS = RUN_DIR + "/runs"
REFUSAL = RUN_DIR + "/refusal"
EVENTS = "/var/log/upgrader/hooks.jsonl"
ALLOWED = "allowed"
REFUSED = "refused"
# An apt run naming upgrader: Pre-Install-Pkgs decides (upgrader.guard.selfremove); dpkg may not run before.
DEFERRED = "deferred"
# The run's only change is upgrader's own removal: dpkg may run, no lock, no finishing step.
SELF_REMOVAL = "self-removal"
VERDICTS = (ALLOWED, REFUSED, DEFERRED, SELF_REMOVAL)


def run_dir(key: str, root: str = "") -> str:
    return f"{root}{RUNS}/{key}"


def private_dir(path: str, root: str = "") -> str:
    """``path`` (under /run/upgrader) made 0700 whatever the umask, and checked to be ours at every level.

    A directory of another owner, one others may write, or a symlink is refused (OSError): a local user
    must not be able to plant an ``allowed`` verdict.
    """
    old = os.umask(0o077)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    finally:
        os.umask(old)
    top = root + RUN_DIR
    at = path
    while True:
        st = os.lstat(at)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise PermissionError(f"{at} is not upgrader's own directory (a symlink, another owner, or writable by "
                                  "others): remove it")
        if at == top or len(at) <= len(top):
            return path
        at = os.path.dirname(at)


def _ours(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read_verdict(key: str, root: str = "") -> tuple[str, str] | None:
    """(one of :data:`VERDICTS`, reason) cached for run ``key``, None when not decided yet.

    A verdict file that is a symlink, not ours, or writable by others is no verdict (it is decided again).
    """
    try:
        fd = os.open(f"{run_dir(key, root)}/verdict", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not _ours(fd):
            return None
        text = os.read(fd, 65536).decode(errors="replace")
    finally:
        os.close(fd)
    verdict, _, reason = text.rstrip("\n").partition("\t")
    return (verdict, reason) if verdict in VERDICTS else None


def write_verdict(key: str, verdict: str, reason: str, root: str = "") -> None:
    """Cache the verdict for the run (atomically); a refusal also goes to /run/upgrader/refusal."""
    directory = private_dir(run_dir(key, root), root)
    line = f"{verdict}\t{reason}\n"
    atomic(f"{directory}/verdict", line)
    if verdict == REFUSED:
        private_dir(root + RUN_DIR, root)
        atomic(root + REFUSAL, f"{key}\t{reason}\n")


def refusal_for(key: str, root: str = "") -> str | None:
    """The reason the guard refused run ``key``, None when it did not."""
    got = read_verdict(key, root)
    return got[1] if got and got[0] == REFUSED else None


def claim(key: str, name: str, root: str = "") -> bool:
    """Create the marker ``name`` for the run; True only for the first caller."""
    directory = private_dir(run_dir(key, root), root)
    try:
        os.close(os.open(f"{directory}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        return False
    return True


def record_step(key: str, name: str, root: str = "", pid: int | None = None) -> None:
    """Write the key (``PID-STARTTIME``) of process ``pid`` (this one by default) as ``name`` in run ``key``'s
    directory: that the run is still being finished while it lives (:func:`upgrader.runkey.apt_run_state`)."""
    from upgrader.runkey import key_of

    directory = private_dir(run_dir(key, root), root)
    atomic(f"{directory}/{name}", f"{key_of(os.getpid() if pid is None else pid)}\n")


def event(key: str, stage: str, what: str, detail: str = "", root: str = "") -> None:
    """Append one event line (values are plain words from this package; detail is JSON-escaped)."""
    line = f'{{"t": {time.time():.3f}, "pid": {os.getpid()}, "run": "{key}", "stage": "{stage}", "event": "{what}"'
    if detail:
        line += f', "detail": {_quote(detail)}'
    path = root + EVENTS
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    try:  # the event log never stops a hook: a full or broken /var/log loses the line, nothing else
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            fd = os.open(path, flags, 0o640)
        try:
            os.write(fd, (line + "}\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def _quote(text: str) -> str:
    import json

    return json.dumps(text)


def atomic(path: str, text: str) -> None:
    """``path`` replaced by ``text`` at once, the file 0600, never through a symlink."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
