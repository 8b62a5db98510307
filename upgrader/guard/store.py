"""Where the guard keeps what it knows about one apt run, and its event log.

Per run (``/run/upgrader/runs/KEY/``): ``verdict`` (``allowed`` or
``refused<TAB>reason``), ``packages.tsv`` (the Pre-Install-Pkgs capture),
``result.json`` (what Post-Invoke saw) and ``finisher`` (made once, by the
first Post-Invoke that spawns the finishing step). The latest refusal is also
in ``/run/upgrader/refusal`` (python-apt callers only see
``installArchives() failed``). Every hook firing is one JSON line in
``/var/log/upgrader/hooks.jsonl``.

Standard library only: this runs in every hook call.
"""

from __future__ import annotations

import os
import time

RUN_DIR = "/run/upgrader"
RUNS = RUN_DIR + "/runs"
REFUSAL = RUN_DIR + "/refusal"
EVENTS = "/var/log/upgrader/hooks.jsonl"
ALLOWED = "allowed"
REFUSED = "refused"


def run_dir(key: str, root: str = "") -> str:
    return f"{root}{RUNS}/{key}"


def read_verdict(key: str, root: str = "") -> tuple[str, str] | None:
    """(``allowed`` or ``refused``, reason) cached for run ``key``, None when not decided yet."""
    try:
        with open(f"{run_dir(key, root)}/verdict") as f:
            text = f.read()
    except OSError:
        return None
    verdict, _, reason = text.rstrip("\n").partition("\t")
    return (verdict, reason) if verdict in (ALLOWED, REFUSED) else None


def write_verdict(key: str, verdict: str, reason: str, root: str = "") -> None:
    """Cache the verdict for the run (atomically); a refusal also goes to /run/upgrader/refusal."""
    directory = run_dir(key, root)
    os.makedirs(directory, exist_ok=True)
    line = f"{verdict}\t{reason}\n"
    _atomic(f"{directory}/verdict", line)
    if verdict == REFUSED:
        _atomic(root + REFUSAL, f"{key}\t{reason}\n")


def refusal_for(key: str, root: str = "") -> str | None:
    """The reason the guard refused run ``key``, None when it did not."""
    got = read_verdict(key, root)
    return got[1] if got and got[0] == REFUSED else None


def claim(key: str, name: str, root: str = "") -> bool:
    """Create the marker ``name`` for the run; True only for the first caller."""
    directory = run_dir(key, root)
    os.makedirs(directory, exist_ok=True)
    try:
        os.close(os.open(f"{directory}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def event(key: str, stage: str, what: str, detail: str = "", root: str = "") -> None:
    """Append one event line (values are plain words from this package; detail is JSON-escaped)."""
    line = f'{{"t": {time.time():.3f}, "pid": {os.getpid()}, "run": "{key}", "stage": "{stage}", "event": "{what}"'
    if detail:
        line += f', "detail": {_quote(detail)}'
    path = root + EVENTS
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "}\n").encode())
    finally:
        os.close(fd)


def _quote(text: str) -> str:
    import json

    return json.dumps(text)


def _atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
