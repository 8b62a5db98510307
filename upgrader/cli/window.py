"""``rolling-upgrade window [--check] [--at TIME] [--json]``: the cron entry point of the nightly patch window.

Outside every patch window, or with nothing to upgrade, it exits 0 with one
log line. Inside, it runs the rolling upgrade of the whole cluster
(unconfirmed), but never starts a node whose expected duration does not fit
into the time left (:mod:`upgrader.nightly.window` has the rules). Exit codes
are ``rolling-upgrade run``'s; 3 (refused, nothing changed) also when another
rolling upgrade holds the lock (its holder named: on a cluster every node's
cron entry fires, one of them does the work), when an apt run holds it past
the window's room, and within Rolling-Upgrade::Boot-Grace of boot or cluster
join.

Output: one summary line on stdout (or ``--json``); the cron entry discards
it, since syslog, the history and the mail report carry it. Only a bad
configuration or a crash reaches stderr, and so cron's own mail.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console

from upgrader import boot, journal
from upgrader import config as configuration
from upgrader.nightly import fit
from upgrader.nightly.window import Collect, Estimate, local_time, run_window
from upgrader.packages.summary import summary
from upgrader.orchestrator import preflight, start
from upgrader.orchestrator.procedure import Outcome, Rollout
from upgrader.pacemaker.live import Cluster
from upgrader.timewindow import is_open, local_zone, next_opening


def parse_at(text: str) -> datetime:
    """``--at``: an ISO 8601 time; without an offset, in the system's time zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at {text!r} is not a time (use ISO 8601, e.g. 2026-03-02T02:30 "
                                         "or 2026-03-02T02:30+01:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=local_zone())


def window(cluster: Cluster, out: Console, *, check: bool, at: datetime | None, as_json: bool) -> int:
    started = at or datetime.now(local_zone())
    try:
        cfg = configuration.load()
    except configuration.ConfigError as exc:
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return Outcome.USAGE
    if check:
        return _check(start.rollout(cluster, Collect()), cfg, Estimate(cfg), started, out, as_json)
    code, doc, line = run_window(cluster, cfg, started, at is not None)
    journal.run_end(doc.get("run") or "", code, Outcome(code).name.lower(), source="window")
    _print(out, as_json, doc, line)
    return code


def _check(r: Rollout, cfg: configuration.Config, estimate: Estimate, now: datetime, out: Console,
           as_json: bool) -> int:
    """Whether the window is open at ``now`` and what would run (nothing is changed)."""
    opening = is_open(cfg.windows, cfg.blackout, now)
    upcoming = None if opening else next_opening(cfg.windows, cfg.blackout, now)
    state = r.cluster.state()
    order = preflight.order(state, r.nodes.local)
    plans = {n: r.nodes.plan(n) for n in order}
    pending = [n for n in order if plans[n].changes]
    runs, deferred = fit.schedule(pending, estimate.span, opening.left if opening else timedelta(0),
                                  timedelta(seconds=cfg.soak_time))
    doc = {"at": now.isoformat(), "open": opening is not None,
           "closes": opening.end.isoformat() if opening else None,
           "left_seconds": int(opening.left.total_seconds()) if opening else 0,
           "next_opening": upcoming.start.isoformat() if upcoming else None,
           "expected_node_seconds": int(estimate.span.total_seconds()), "expected_basis": estimate.basis,
           "boot_grace": boot.grace_refusal(cfg.boot_grace, "the nightly window"),
           "would_upgrade": runs, "would_defer": deferred,
           "errors": {n: p.error for n, p in plans.items() if p.error},
           "changes": {n: [f"{c.package} {c.installed or '-'} -> {c.candidate}" for c in plans[n].changes]
                       for n in pending}}
    if as_json:
        print(json.dumps(doc, indent=2))
        return Outcome.DONE

    def say(text: str) -> None:
        out.print(text, markup=False, soft_wrap=True)

    if opening:
        say(f"patch window open at {local_time(now)} until {local_time(opening.end)} ({fit.human(opening.left)} left)")
    else:
        say(f"patch window closed at {local_time(now)}; "
            f"{'next opens ' + local_time(upcoming.start) if upcoming else 'no opening within a year'}")
    say(f"expected time per node: {fit.human(estimate.span)} ({estimate.basis})")
    if doc["boot_grace"]:
        say(doc["boot_grace"])
    for n in pending:
        verdict = "would upgrade" if n in runs else "would defer"
        say(f"  {n}: {verdict}: {summary(plans[n].changes)}")
    for n, error in doc["errors"].items():
        say(f"  {n}: {error}")
    if not pending:
        say("nothing to upgrade on any node")
    return Outcome.DONE


def _print(out: Console, as_json: bool, doc: dict[str, Any], line: str) -> None:
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        out.print(line, markup=False, soft_wrap=True)
