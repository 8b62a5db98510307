"""``rolling-upgrade-hook STAGE``: what APT and dpkg run (see apt.conf.d/20rolling-upgrade-hooks).

Stages: ``pre-invoke``, ``pre-install-pkgs``, ``post-invoke`` (APT's
DPkg::...), ``dpkg-pre-invoke`` and ``dpkg-post-invoke`` (dpkg's own, from
dpkg.cfg.d, for ``dpkg -i`` and ``dpkg --configure -a`` run directly).

Environment:

- ``UPGRADER_GUARD=off``: emergency override; the guard lets dpkg run and
  says so loudly (stderr, syslog, /var/log/upgrader/hooks.log).
- ``UPGRADER_RUN_ID=ID``: set by rolling-upgrade before it commits; the lock
  is (re-)entered with run id ID and the hooks leave the finishing step to it.

The repeated call of a run (unattended-upgrades fires every hook many times)
only reads the verdict cached for the run: no cluster query, standard
library only; so do Pre-Install-Pkgs, dpkg's post-invoke under APT and
the post stages under rolling-upgrade. Any error in a pre-invoke stage refuses (fails closed).
"""

from __future__ import annotations

import os
import sys

from upgrader import runkey
from upgrader.guard import store
from upgrader.runs import GUARD_ENV, RUN_ID_ENV
PRE_STAGES = ("pre-invoke", "dpkg-pre-invoke")
POST_STAGES = ("post-invoke", "dpkg-post-invoke")
STAGES = (*PRE_STAGES, "pre-install-pkgs", *POST_STAGES)
EXIT_REFUSED, EXIT_USAGE = 1, 2


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in STAGES:
        print(f"usage: rolling-upgrade-hook {{{'|'.join(STAGES)}}} (it is run by APT and dpkg)", file=sys.stderr)
        return EXIT_USAGE
    stage = argv[0]
    key = "unknown"
    try:
        key = runkey.run_key()
        if stage in PRE_STAGES:
            return pre_invoke(stage, key)
        if stage == "pre-install-pkgs":  # standard library only: no site-packages needed
            from upgrader.guard.record import capture

            return capture(key, sys.stdin.read())
        if stage == "dpkg-post-invoke" and os.environ.get("DPKG_FRONTEND_LOCKED"):
            store.event(key, stage, "left-to-apt")  # dpkg under apt: APT's own Post-Invoke follows
            return 0
        if os.environ.get(RUN_ID_ENV) and os.environ.get(GUARD_ENV, "").lower() != "off":
            # rolling-upgrade's own dpkg run: it reports what dpkg did and drives the finishing step itself
            store.event(key, stage, "left-to-rolling-upgrade")
            return 0
        _enable_site()  # the finishing step it may start reads the settings (apt_pkg)
        from upgrader.guard.finish import post_invoke

        return post_invoke(stage, key)
    except Exception as exc:  # a crashing guard refuses: fail closed, in one line
        reason = (f"refused: upgrader's guard failed in {stage} ({type(exc).__name__}: {exc}); "
                  f"fix it, or set {GUARD_ENV}=off to run apt anyway")
        print(reason, file=sys.stderr)
        if stage in PRE_STAGES:
            try:
                store.write_verdict(key, store.REFUSED, reason)
            except OSError:
                pass  # refused all the same: the reason is on stderr
        return EXIT_REFUSED


def pre_invoke(stage: str, key: str) -> int:
    """Allow (0) or refuse (1, one line on stderr); the verdict is decided once per run."""
    switch = os.environ.get(GUARD_ENV, "")
    if switch.lower() == "off":
        return _override(stage, key)
    if switch.lower() not in ("", "on"):
        print(f"refused: {GUARD_ENV}={switch!r} is neither on nor off; unset it, "
              f"or set {GUARD_ENV}=off to run apt without the guard", file=sys.stderr)
        return EXIT_REFUSED
    cached = store.read_verdict(key)
    if cached is None:
        _enable_site()
        from upgrader.guard.record import decide_run

        cached = decide_run(key, os.environ.get(RUN_ID_ENV, ""))
        store.event(key, stage, cached[0], cached[1])
    else:
        store.event(key, stage, "cached-" + cached[0])
    if cached[0] == store.REFUSED:
        print(cached[1], file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _override(stage: str, key: str) -> int:
    _enable_site()
    from upgrader.syslog import loud

    loud(f"WARNING: {GUARD_ENV}=off: the upgrade guard is bypassed for this {stage} (run {key}, "
         f"pid {os.getppid()}): dpkg runs whatever the cluster's state", priority="auth.warning")
    store.event(key, stage, "override")
    return 0


def _enable_site() -> None:
    """The hook starts without site-packages (-S) for speed; the slow path needs them."""
    if sys.flags.no_site:
        import site

        site.main()
