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

One exception to the rule (:mod:`upgrader.guard.selfremove`): a run whose only
change is the removal of upgrader itself passes without asking the cluster,
so the package can be removed or purged on an active node. An apt run that
names the package is decided in Pre-Install-Pkgs, which lists its changes.
"""

from __future__ import annotations

import os
import sys

from upgrader import runkey
from upgrader.guard import store
from upgrader.runs import APT_RUN_PREFIX, GUARD_ENV, RUN_ID_ENV
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

            text = sys.stdin.read()
            cached = store.read_verdict(key)
            if cached is not None and cached[0] in (store.DEFERRED, store.SELF_REMOVAL):
                code = decide_step(key, text)
                if code:
                    return code
            return capture(key, text)
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
        from upgrader import journal

        journal.event("refusal" if stage in PRE_STAGES else "failure", reason, priority="user.err", phase=stage,
                      run_id=os.environ.get(RUN_ID_ENV) or f"{APT_RUN_PREFIX}{key}")
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
    if cached is None and _removes_only_us(stage, key):
        return 0
    if cached is not None and cached[0] in (store.DEFERRED, store.SELF_REMOVAL) and stage == "pre-invoke":
        store.event(key, stage, "deferred")  # a later dpkg step of the run: Pre-Install-Pkgs decides it again
        return 0
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
    if cached[0] == store.DEFERRED:  # dpkg under apt, yet no Pre-Install-Pkgs of ours decided this run
        print("refused: this apt run names upgrader, and upgrader's Pre-Install-Pkgs hook did not decide it "
              "(is apt.conf.d/20rolling-upgrade-hooks complete?); set UPGRADER_GUARD=off to run it anyway",
              file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _removes_only_us(stage: str, key: str) -> bool:
    """The first call of a run that may only remove upgrader itself (:mod:`upgrader.guard.selfremove`):
    recorded, and True when dpkg may go on without the cluster's verdict (for now)."""
    from upgrader.guard import selfremove

    pid = int(key.split("-")[0])
    if stage == "pre-invoke" and selfremove.names_us(selfremove.command_line(pid)):
        store.write_verdict(key, store.DEFERRED, "Pre-Install-Pkgs decides: the run names upgrader")
        store.event(key, stage, "deferred")
        return True
    if (stage == "dpkg-pre-invoke" and not os.environ.get("DPKG_FRONTEND_LOCKED")
            and selfremove.dpkg_removes_only_us(selfremove.command_line(pid), os.environ.get("DPKG_HOOK_ACTION", ""))):
        store.write_verdict(key, store.SELF_REMOVAL, selfremove.REASON)
        store.event(key, stage, store.SELF_REMOVAL)
        return True
    return False


def decide_step(key: str, text: str) -> int:
    """Pre-Install-Pkgs of a deferred run: only upgrader's removal passes as it is; any other step is
    judged by the guard's rule now, before dpkg runs (0 allowed, 1 refused with one line)."""
    from upgrader.guard import pkgs, selfremove

    if selfremove.only_removes_us(pkgs.parse(text)):
        store.write_verdict(key, store.SELF_REMOVAL, selfremove.REASON)
        store.event(key, "pre-install-pkgs", store.SELF_REMOVAL)
        return 0
    _enable_site()
    from upgrader.guard.record import decide_run

    verdict, reason = decide_run(key, os.environ.get(RUN_ID_ENV, ""))
    store.event(key, "pre-install-pkgs", verdict, reason)
    if verdict == store.REFUSED:
        print(reason, file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _override(stage: str, key: str) -> int:
    _enable_site()
    from upgrader.syslog import loud

    loud(f"WARNING: {GUARD_ENV}=off: the upgrade guard is bypassed for this {stage} (run {key}, "
         f"pid {os.getppid()}): dpkg runs whatever the cluster's state", priority="auth.warning", kind="apt",
         run_id=os.environ.get(RUN_ID_ENV) or f"{APT_RUN_PREFIX}{key}", phase=stage)
    store.event(key, stage, "override")
    return 0


def _enable_site() -> None:
    """The hook starts without site-packages (-S) for speed; the slow path needs them."""
    if sys.flags.no_site:
        import site

        site.main()
