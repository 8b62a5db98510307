"""A policy-rc.d that forbids starting the cluster stack while rolling-upgrade has it stopped.

Maintainer scripts start and restart services through ``invoke-rc.d`` and
``deb-systemd-invoke``; both ask ``/usr/sbin/policy-rc.d`` first and skip
the action on exit 101. Ours says 101 for the cluster stack's services and
hands every other question to the policy-rc.d the machine had before (moved
aside while ours is in place), or allows it (0) when there was none.
"""

from __future__ import annotations

import os
from pathlib import Path

POLICY = Path("/usr/sbin/policy-rc.d")
MARK = "# rolling-upgrade: cluster stack stopped for an upgrade"
STACK_SERVICES = ("pacemaker", "pacemaker_remote", "corosync", "corosync-qdevice", "sbd", "dlm", "booth",
                  "crm_mon")


def saved_path(policy: Path = POLICY) -> Path:
    return policy.with_name(policy.name + ".rolling-upgrade-saved")


def script(run_id: str, policy: Path = POLICY) -> str:
    names = "|".join(f"{s}|{s}.service" for s in STACK_SERVICES)
    saved = saved_path(policy)
    return f"""#!/bin/sh
{MARK} (run {run_id}).
# Put in place by 'rolling-upgrade stack stop', removed by 'rolling-upgrade stack start'.
[ "$1" = "--quiet" ] && shift
case "$1" in
  {names}) exit 101 ;;
esac
if [ -x {saved} ]; then
  exec {saved} "$@"
fi
exit 0
"""


def ours(policy: Path = POLICY) -> bool:
    try:
        return MARK in policy.read_text(errors="replace")
    except OSError:
        return False


def install(run_id: str, policy: Path = POLICY) -> None:
    """Put ours in place; a policy of the machine's own is kept aside (once) and consulted."""
    saved = saved_path(policy)
    if policy.exists() and not ours(policy):
        os.replace(policy, saved)
    tmp = policy.with_name(policy.name + ".rolling-upgrade-new")
    tmp.write_text(script(run_id, policy))
    tmp.chmod(0o755)
    os.replace(tmp, policy)


def remove(policy: Path = POLICY) -> None:
    """Take ours away and put the machine's own back; anything else there is left alone."""
    saved = saved_path(policy)
    if ours(policy):
        policy.unlink()
    if saved.exists() and not policy.exists():
        os.replace(saved, policy)
