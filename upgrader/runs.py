"""Names every entry point shares about a run: its id, how the APT hooks recognise it, the override.

A rolling upgrade's run id is ``TIME-NODE-RANDOM``; an apt run's lock has
``apt-PID-STARTTIME`` (the frontend's pid and start time, see
:mod:`upgrader.runkey`). rolling-upgrade sets ``UPGRADER_RUN_ID`` before it
commits, so the hooks know the run that holds the lock; ``UPGRADER_GUARD=off``
is the emergency override of the APT guard.
"""

from __future__ import annotations

import time

GUARD_ENV = "UPGRADER_GUARD"
RUN_ID_ENV = "UPGRADER_RUN_ID"
APT_RUN_PREFIX = "apt-"  # run ids the hooks give apt runs: apt-PID-STARTTIME
DPKG_FAILED = "dpkg-failed"  # an apt run's lock phase: dpkg failed; kept (node in standby) until a person repairs it
# Node attributes a run writes: this run patched the node; a run found it unhealthy after its upgrade.
PATCHED = "rolling-upgrade-patched"
QUARANTINE = "rolling-upgrade-quarantine"
WAITING = "rolling-upgrade-waiting"  # put in standby by us to wait for its own upgrade (not an operator's standby)


def new_run_id(node: str) -> str:
    """A fresh rolling upgrade's id: UTC time, the node it runs on, six random hex digits."""
    import uuid  # not at the top: the APT hooks' hot path imports this module

    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{node}-{uuid.uuid4().hex[:6]}"
