"""Which scheduler runs the nightly window and the boot-time resume: systemd's units or cron, never both.

The package ships both: the systemd units (``rolling-upgrade-window.timer``, ``rolling-upgrade-resume.service``)
and ``/etc/cron.d/rolling-upgrade``, whose entries pass ``--from-cron``. Where systemd is process 1
(``/run/systemd/system`` exists) and the unit is enabled, the cron entry stands down at once, as Debian's own
cron files do under systemd; everywhere else (no systemd, the unit disabled or not installed, ``make
install``) cron runs it.
"""

from __future__ import annotations

from pathlib import Path

from upgrader.runner import Runner

SYSTEMD_RUNNING = Path("/run/systemd/system")
SYSTEMCTL_TIMEOUT = 10  # systemctl is-enabled: one question to systemd
UNITS = {"window": "rolling-upgrade-window.timer", "resume": "rolling-upgrade-resume.service"}


def systemd_runs(command: str, runtime: Path = SYSTEMD_RUNNING, runner: Runner | None = None) -> str | None:
    """The unit that runs ``command`` (window, resume) on this machine instead of cron, or None: cron runs it."""
    unit = UNITS[command]
    if not runtime.is_dir():
        return None
    result = (runner or Runner(timeout=SYSTEMCTL_TIMEOUT)).call(["systemctl", "is-enabled", "--quiet", unit])
    return unit if result.returncode == 0 else None
