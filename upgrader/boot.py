"""How long ago this node booted or joined the cluster (for Rolling-Upgrade::Boot-Grace).

Boot: ``/proc/uptime``. Cluster join: the start of this node's ``corosync``
process (``/proc/PID/stat`` field 22, clock ticks since boot), so a restart of
the cluster stack counts as a join. Chosen over Pacemaker's own history
because it is a local file read (no cluster query, works in the APT hook
before anything else) and corosync's start is when the node enters the
membership. No corosync running: the boot time alone counts.
"""

from __future__ import annotations

import os
from pathlib import Path

from upgrader import runkey

PROC = Path("/proc")


def uptime(proc: Path = PROC) -> float:
    """Seconds since boot."""
    return float((proc / "uptime").read_text().split()[0])


def corosync_pid(proc: Path = PROC) -> int | None:
    """The oldest process named ``corosync``, None when none runs."""
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "corosync":
                    found.append(int(entry.name))
            except OSError:
                continue
    return min(found) if found else None


def settled_for(proc: Path = PROC) -> tuple[float, str]:
    """Seconds since the later of boot and cluster join, and which of them it was."""
    up = uptime(proc)
    pid = corosync_pid(proc)
    started = runkey.start_time(pid) if pid else None
    if started is None:
        return up, "boot"
    joined = up - started / os.sysconf("SC_CLK_TCK")
    return (joined, "cluster join (corosync start)") if joined < up else (up, "boot")


def grace_refusal(grace: int, what: str, proc: Path = PROC) -> str | None:
    """One line refusing ``what`` within ``grace`` seconds of boot or join; None when past it."""
    if grace <= 0:
        return None
    since, event = settled_for(proc)
    if since >= grace:
        return None
    return (f"refused: {what} within Rolling-Upgrade::Boot-Grace ({grace}s) of this node's {event} "
            f"{int(since)}s ago; it runs again later (or lower Boot-Grace)")
