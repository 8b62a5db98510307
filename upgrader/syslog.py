"""One line to where a person looks later: the journal (or the system log) and a log file of upgrader's.

The APT hooks write to /var/log/upgrader/hooks.log under the tag
``rolling-upgrade``; the nightly window to its own file and tag. The line
goes to the journal with its run, node, phase and kind of event where
journald runs, else to the system log through ``logger``
(:func:`upgrader.journal.event`). A log that cannot be written never stops
what is being logged (a full /var/log must not block apt, nor the emergency
override).
"""

from __future__ import annotations

import os
import sys
import time

HOOKS_LOG = "/var/log/upgrader/hooks.log"
TAG = "rolling-upgrade"


def loud(message: str, priority: str = "user.warning", root: str = "", **about: str | None) -> None:
    """Say ``message`` everywhere a person might look: stderr too (``about``: as :func:`syslog`'s)."""
    try:
        print(f"{TAG}: {message}", file=sys.stderr)
    except (OSError, ValueError):  # no stderr left (a closed terminal): the log still has it
        pass
    syslog(message, priority, root, **about)


def syslog(message: str, priority: str = "user.notice", root: str = "", *, tag: str = TAG,
           log_file: str = HOOKS_LOG, kind: str = "note", run_id: str | None = None, node: str | None = None,
           phase: str | None = None) -> None:
    """The journal (``kind`` of event, its run, node and phase), else the system log (``logger``; a missing
    log daemon is ignored), and ``log_file``."""
    from upgrader import journal

    journal.event(kind, message, run_id=run_id, node=node, phase=phase, priority=priority, identifier=tag)
    note(message, root, log_file)


def note(message: str, root: str = "", log_file: str = HOOKS_LOG) -> None:
    """One timestamped line in ``log_file`` only (under ``root``); a file that cannot be written is skipped."""
    path = root + log_file
    try:
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640)
        try:
            os.fchmod(fd, 0o640)  # it names hosts, packages and reasons: not for every local user
            os.write(fd, f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} [{os.getpid()}] {message}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass
