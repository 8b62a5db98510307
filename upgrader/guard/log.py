"""Loud messages: stderr, the system log (``logger``) and /var/log/upgrader/hooks.log."""

from __future__ import annotations

import os
import sys
import time

LOG_FILE = "/var/log/upgrader/hooks.log"
TAG = "rolling-upgrade"


def loud(message: str, priority: str = "user.warning", root: str = "") -> None:
    """Say ``message`` everywhere a person might look: stderr too."""
    print(f"{TAG}: {message}", file=sys.stderr)
    syslog(message, priority, root)


def syslog(message: str, priority: str = "user.notice", root: str = "") -> None:
    """The system log (``logger``; a missing log daemon is ignored) and the hooks' log file."""
    from upgrader.runner import Runner

    Runner(timeout=5).call(["logger", "-t", TAG, "-p", priority, "--", message])
    note(message, root)


def note(message: str, root: str = "") -> None:
    """One timestamped line in the hooks' log file only."""
    path = root + LOG_FILE
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} [{os.getpid()}] {message}\n")
