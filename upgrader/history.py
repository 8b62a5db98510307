"""The history file: one JSON object per line, appended as a run moves on.

Each record has the run id, the node, the phase, ``event`` (start, end or
note), the time, and what the phase has to say (result, package changes,
moves, errors). Written 0600 in a 0700 directory: it names hosts and
packages. A file found with looser modes is re-tightened to 0600 at the
next write. A corrupt line is reported with its line number, never guessed at.
Each record is also said in the journal (:func:`upgrader.journal.record`),
first: a history that cannot be written still leaves its news there.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from upgrader import journal


class HistoryError(Exception):
    """The history file cannot be read or written."""


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, run_id: str, node: str | None, phase: str, event: str, **data: Any) -> None:
        journal.record(run_id, node, phase, event, data)
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": run_id,
                 "node": node, "phase": phase, "event": event, **data}
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
                    os.fchmod(fd, 0o600)  # open's mode only applies to a new file: re-tighten an existing one
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise HistoryError(f"cannot write the history file {self.path}: {exc.strerror}") from None

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HistoryError(f"cannot read the history file {self.path}: {exc.strerror}") from None
        found = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                raise HistoryError(f"{self.path} line {number} is corrupt ({exc}); move the file aside "
                                   "to start a new history") from None
            if run_id is None or entry.get("run") == run_id:
                found.append(entry)
        return found

    def node_durations(self, limit: int = 20) -> list[float]:
        """Seconds of recent successful node upgrades (for the patch window's estimate)."""
        return [float(e["seconds"]) for e in self.entries()
                if e.get("phase") == "node" and e.get("event") == "end" and e.get("result") == "ok"
                and isinstance(e.get("seconds"), (int, float))][-limit:]
