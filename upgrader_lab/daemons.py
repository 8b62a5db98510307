"""The lab's own background processes (the power controller, the slow repository): found by PID, never by name.

Each is ``python -m MODULE ... --lab NAME`` and writes its PID to a file in the lab's state. A PID is
trusted only while /proc still shows that command line for that lab (not a zombie), so a stale file
never ends a stranger's process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from upgrader_lab.layout import Lab, LabError

STOP_TIMEOUT = 10.0  # seconds for a background process to end after SIGTERM, then again after SIGKILL


def recorded(pid_file: Path, module: str, lab: Lab) -> int | None:
    """The PID ``pid_file`` names, if that process is alive and really ``module`` of ``lab``."""
    try:
        found = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return found if is_ours(found, module, lab) else None


def is_ours(candidate: int, module: str, lab: Lab) -> bool:
    """Whether process ``candidate`` is ``python -m module ... --lab lab.name``, alive."""
    try:
        cmdline = Path(f"/proc/{candidate}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state in ("Z", "X") or module.encode() not in cmdline:
        return False
    return any(cmdline[i] == b"--lab" and cmdline[i + 1] == lab.name.encode() for i in range(len(cmdline) - 1))


def strays(module: str, lab: Lab) -> list[int]:
    """Processes of ``module`` for ``lab`` whose PID file was lost (an interrupted start)."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and is_ours(int(p.name), module, lab)]


def end(found: int, what: str, timeout: float = STOP_TIMEOUT) -> None:
    """End process ``found`` (``what`` names it in a wait's error): SIGTERM, then SIGKILL if it is still
    there after ``timeout``; a process already gone is fine."""
    from upgrader_lab import node  # node imports the lab's parts; this module stays below them

    try:
        os.kill(found, signal.SIGTERM)
        node.wait_gone(found, timeout, f"{what} to end")
    except ProcessLookupError:
        return
    except LabError:
        try:
            os.kill(found, signal.SIGKILL)
        except ProcessLookupError:
            return
        node.wait_gone(found, timeout, f"{what} to die after SIGKILL")
