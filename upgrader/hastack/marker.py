"""``/run/upgrader/stack-stopped``: which run stopped this node's cluster stack, and from where.

In /run, so a reboot forgets it together with the stopped stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = Path("/run/upgrader/stack-stopped")
# Written just before a reboot asked by a run; its absence afterwards tells the run the node did reboot.
REBOOT_PENDING = Path("/run/upgrader/reboot-pending")


@dataclass(frozen=True)
class Stopped:
    run_id: str
    by: str  # the node the run drives this one from
    pid: int  # the run's process on that node


def write(stopped: Stopped, path: Path = MARKER) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(stopped)) + "\n")
    os.replace(tmp, path)


def read(path: Path = MARKER) -> Stopped | None:
    """The marker, or None when there is none (or it is unreadable: then nothing is trusted)."""
    try:
        doc = json.loads(path.read_text())
        return Stopped(str(doc["run_id"]), str(doc["by"]), int(doc["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear(path: Path = MARKER) -> None:
    path.unlink(missing_ok=True)
