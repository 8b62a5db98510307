"""``rolling-upgrade apply``: this node's dist-upgrade, reported as JSON lines to the orchestrator.

The orchestrator runs it on the drained node (locally or through the remote
shell) with UPGRADER_RUN_ID set, so the APT guard recognises the run that
holds the lock. Progress lines while it works, one result line at the end.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from upgrader.guard.hook import RUN_ID_ENV
from upgrader.packages.run import upgrade_node


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


class JsonProgress:
    """:class:`upgrader.packages.run.Progress` as JSON lines."""

    def download(self, done_bytes: int, total_bytes: int, done_items: int, total_items: int) -> None:
        percent = 100.0 * done_bytes / total_bytes if total_bytes else 0.0
        _emit(event="progress", stage="download", percent=round(percent, 1),
              text=f"downloading {done_items}/{total_items} files")

    def install(self, package: str, percent: float, status: str) -> None:
        _emit(event="progress", stage="install", percent=round(percent, 1), text=status or package)

    def error(self, package: str, message: str) -> None:
        _emit(event="progress", stage="error", text=f"{package}: {message.strip()}")


def apply() -> int:
    report = upgrade_node(JsonProgress(), run_id=os.environ.get(RUN_ID_ENV) or None)
    _emit(event="result", ok=report.ok, result=report.result, error=None if report.ok else report.message,
          changes=[c.__dict__ for c in report.changes], reboot_required=bool(report.reboot),
          reboot=report.reboot, stale_processes=report.stale, seconds=round(report.seconds, 1))
    return 0 if report.ok else 1
