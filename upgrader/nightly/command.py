"""``rolling-upgrade window [--check] [--at TIME] [--json]``: the cron entry point.

Outside every patch window, or with nothing to upgrade, it exits 0 with one
log line. Inside, it runs the rolling upgrade of the whole cluster
(unconfirmed), but never starts a node whose expected duration does not fit
into the time left; the nodes it defers, and why, go to the log, the history
and the report. An apt run holding the upgrade lock (unattended-upgrades on
one node, with its finishing step) is waited for while the window has room
for a node after it: that run upgrades only its own node. Exit codes are
``rolling-upgrade run``'s; 3 (refused, nothing changed) also when another
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
import os
import socket
import sys
import time
from datetime import datetime, timedelta
from typing import Any, Callable

from rich.console import Console
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from upgrader import config as configuration
from upgrader.guard.decide import APT_RUN_PREFIX
from upgrader.nightly import boot, fit, report
from upgrader.orchestrator import commands
from upgrader.orchestrator.history import History
from upgrader.orchestrator.procedure import Outcome, Refused, Rollout
from upgrader.orchestrator.recovery import recover
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import CommandError, Runner
from upgrader.timewindow import expected_node_duration, is_open, local_zone, next_opening

TAG = "rolling-upgrade-window"
LOG_FILE = "/var/log/upgrader/window.log"
APT_WAIT_POLL = 5.0  # seconds between looks at an apt run's upgrade lock


def parse_at(text: str) -> datetime:
    """``--at``: an ISO 8601 time; without an offset, in the system's time zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at {text!r} is not a time (use ISO 8601, e.g. 2026-03-02T02:30 "
                                         "or 2026-03-02T02:30+01:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=local_zone())


def log(message: str, priority: str = "user.notice") -> None:
    """One line to syslog (``logger``; a missing log daemon is ignored) and to the window's log file."""
    Runner(timeout=5).call(["logger", "-t", TAG, "-p", priority, "--", message])
    try:
        os.makedirs(os.path.dirname(LOG_FILE), exist_ok=True)
        with open(LOG_FILE, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} [{os.getpid()}] {message}\n")
    except OSError:
        pass


class Collect:
    """The Rollout's reporter for an unattended run: every step kept for the report."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines: list[str] = []

    def step(self, node: str | None, phase: str, text: str) -> None:
        self.lines.append(f"{time.monotonic() - self.started:6.1f}s {node or 'cluster'} {phase}: {text}")

    def progress(self, node: str, event: dict[str, Any]) -> None:
        """apt's progress is not kept: the steps say what was upgraded."""


class Estimate:
    """The expected duration of one node, and what it is based on."""

    def __init__(self, cfg: configuration.Config) -> None:
        past = History(cfg.history_file).node_durations()
        self.span = expected_node_duration(past, cfg.default_node_duration)
        self.basis = (f"1.5 x the longest of the last {min(len(past), 5)} node upgrades" if past
                      else "Rolling-Upgrade::Default-Node-Duration, no history yet")


def window(cluster: Cluster, out: Console, *, check: bool, at: datetime | None, as_json: bool) -> int:
    started, t0 = at or datetime.now(local_zone()), time.monotonic()

    def clock() -> datetime:
        return started + timedelta(seconds=time.monotonic() - t0)

    try:
        cfg = configuration.load()
    except configuration.ConfigError as exc:
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return Outcome.USAGE
    estimate, history = Estimate(cfg), History(cfg.history_file)
    if not check:
        quiet = _not_now(cfg, clock(), at is not None)
        if quiet is not None:
            return _end(history, commands.new_run_id(socket.gethostname()), out, as_json, *quiet)
    r = commands.rollout(cluster, out, as_json=True)
    if check:
        return _check(r, cfg, estimate, started, out, as_json)
    delay = fit.random_delay(cfg.random_delay, _left(cfg, clock()), estimate.span)
    if delay:
        log(f"waiting a random {delay}s (Rolling-Upgrade::Random-Delay {cfg.random_delay}s) before starting")
        time.sleep(delay)
    r.recovered = recover(cluster, r.nodes, r.history, r.config)  # a run of this node that was killed
    for line in r.recovered:
        log(line)
    collect = Collect()
    r.report = collect
    r.before_node = _deferral(cfg, estimate, clock)
    for attempt in (1, 2):
        busy = _wait_for_lock(cluster, r.run_id, _room(cfg, estimate, clock))
        if busy:
            return _end(r.history, r.run_id, out, as_json, Outcome.REFUSED, busy)
        try:
            code, refused = r.run(None, confirm=None), None
            break
        except Refused as exc:
            # Another run took the lock between the look and the preflight: an apt run is waited for
            # (once more), another node's window does the work.
            held = lock.inspect(cluster)
            if attempt == 1 and lock_kind(held, r.run_id) == "apt":
                continue
            busy = _refusal(held, r.run_id)
            if busy:
                return _end(r.history, r.run_id, out, as_json, Outcome.REFUSED, busy)
            code, refused = Outcome.REFUSED, str(exc)
            break
    nodes = [vars(x) for x in r.results.values()]
    if code == Outcome.DONE and not refused and all(n["result"] == "up to date" for n in nodes):
        return _end(r.history, r.run_id, out, as_json, Outcome.DONE, "window open; nothing to upgrade on any node")
    summary = report.Summary(r.run_id, socket.gethostname(), Outcome(code).name.lower(), int(code), nodes,
                             refused, collect.lines)
    return _report(r, cfg, summary, out, as_json)


def lock_kind(held: lock.LockStatus | None, run_id: str) -> str:
    """``free`` (no lock, ours, or stale enough to break), ``apt`` (an apt run's: it upgrades only its own
    node, so the window waits for it), or ``run`` (a rolling upgrade of the cluster: it does the work)."""
    if held is None or held.info.run_id == run_id or held.breakable:
        return "free"
    return "apt" if held.info.run_id.startswith(APT_RUN_PREFIX) else "run"


def _refusal(held: lock.LockStatus | None, run_id: str) -> str | None:
    """One line naming the holder when another run holds the upgrade lock, else None."""
    if held is None or lock_kind(held, run_id) == "free":
        return None
    return (f"refused: the upgrade lock is held by {held.info.holder or '?'} ({held.describe(lock.utcnow())}); "
            "that run does the work")


def _wait_for_lock(cluster: Cluster, run_id: str, room: Callable[[], float]) -> str | None:
    """None once the lock is free; the refusal line otherwise.

    An apt run's lock (unattended-upgrades, a person, with its finishing step)
    is waited for while the window still has room for a node after it
    (``room()`` seconds): that run upgrades only its own node, the rest of the
    cluster is the window's. Any other run's lock is refused at once.
    """
    held = lock.inspect(cluster)
    if held is None or lock_kind(held, run_id) != "apt":
        return _refusal(held, run_id)
    holder, wait = held.info.holder or "?", room()
    if wait <= 0:
        return (f"refused: the upgrade lock is held by {holder}'s apt run ({held.describe(lock.utcnow())}) and the "
                "window has no room left for a node after it")
    log(f"the upgrade lock is held by {holder}'s apt run ({held.info.run_id}); waiting for it to end (at most "
        f"{fit.human(timedelta(seconds=wait))}, while the window has room for a node), then upgrading the rest")
    try:
        held = Retrying(stop=stop_after_delay(wait), wait=wait_fixed(APT_WAIT_POLL), reraise=True,
                        retry=retry_if_result(lambda h: lock_kind(h, run_id) == "apt")
                        | retry_if_exception_type(CommandError))(lock.inspect, cluster)
    except RetryError:
        return (f"refused: {holder}'s apt run still held the upgrade lock after {fit.human(timedelta(seconds=wait))}"
                " of waiting, and the window has no room left for a node after it")
    busy = _refusal(held, run_id)
    if busy is None:
        log(f"{holder}'s apt run ended; the window goes on")
    return busy


def _room(cfg: configuration.Config, estimate: Estimate, clock: Callable[[], datetime]) -> Callable[[], float]:
    """Seconds the window can still give away before it has no room for one more node."""
    return lambda: (_left(cfg, clock()) - estimate.span).total_seconds()


def _left(cfg: configuration.Config, now: datetime) -> timedelta:
    current = is_open(cfg.windows, cfg.blackout, now)
    return current.left if current else timedelta(0)


def _not_now(cfg: configuration.Config, now: datetime, at_given: bool) -> tuple[int, str] | None:
    """Why this run does nothing (exit code and the log line), None when it goes on."""
    if not cfg.windows:
        return Outcome.DONE, "no patch window configured (Rolling-Upgrade::Windows); nothing done"
    opening = is_open(cfg.windows, cfg.blackout, now)
    if opening is None:
        upcoming = next_opening(cfg.windows, cfg.blackout, now)
        when = f"next opens {_local(upcoming.start)}" if upcoming else "no opening within a year"
        return Outcome.DONE, f"patch window closed at {_local(now)} ({when}); nothing done"
    refusal = boot.grace_refusal(cfg.boot_grace, "the nightly window")
    if refusal:
        return Outcome.REFUSED, refusal
    if at_given:
        log(f"the clock is set by --at to {_local(now)} (a run by hand)")
    return None


def _deferral(cfg: configuration.Config, estimate: Estimate, clock: Callable[[], datetime]) -> Callable[[str], str | None]:
    def before_node(node: str) -> str | None:
        return fit.defer_reason(node, estimate.span, _left(cfg, clock()), estimate.basis)
    return before_node


def _check(r: Rollout, cfg: configuration.Config, estimate: Estimate, now: datetime, out: Console,
           as_json: bool) -> int:
    """Whether the window is open at ``now`` and what would run (nothing is changed)."""
    opening = is_open(cfg.windows, cfg.blackout, now)
    upcoming = None if opening else next_opening(cfg.windows, cfg.blackout, now)
    state = r.cluster.state()
    order = r.order(state)
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
        say(f"patch window open at {_local(now)} until {_local(opening.end)} ({fit.human(opening.left)} left)")
    else:
        say(f"patch window closed at {_local(now)}; "
            f"{'next opens ' + _local(upcoming.start) if upcoming else 'no opening within a year'}")
    say(f"expected time per node: {fit.human(estimate.span)} ({estimate.basis})")
    if doc["boot_grace"]:
        say(doc["boot_grace"])
    for n in pending:
        verdict = "would upgrade" if n in runs else "would defer"
        say(f"  {n}: {verdict}: {', '.join(doc['changes'][n])}")
    for n, error in doc["errors"].items():
        say(f"  {n}: {error}")
    if not pending:
        say("nothing to upgrade on any node")
    return Outcome.DONE


def _report(r: Rollout, cfg: configuration.Config, summary: report.Summary, out: Console, as_json: bool) -> int:
    """Log, history, mail and webhook for a run that did (or refused) something."""
    line = summary.headline()
    log(line, "user.notice" if not summary.failed else "user.err")
    r.history.record(r.run_id, None, "window", "end", result=summary.outcome, summary=line,
                     deferred={n["node"]: n["error"] for n in summary.nodes if n["result"] == "deferred"})
    if cfg.mail and report.should_mail(cfg.mail_report, summary):
        problem = report.send_mail(report.mail_message(summary, cfg.mail))
        log(problem or f"report mailed to {cfg.mail}", "user.warning" if problem else "user.info")
    if cfg.webhook:
        problem = report.post_webhook(cfg.webhook, summary.document())
        if problem:
            log(problem, "user.warning")
    _print(out, as_json, summary.document(), line)
    return summary.exit


def _end(history: History, run_id: str, out: Console, as_json: bool, code: int, line: str) -> int:
    """A run that did nothing: one log line, one history record, one line of output."""
    log(line, "user.notice" if code == Outcome.DONE else "user.warning")
    history.record(run_id, None, "window", "end", result=Outcome(code).name.lower(), summary=line)
    _print(out, as_json, {"run": run_id, "exit": int(code), "outcome": Outcome(code).name.lower(),
                          "refused": line if code else None, "summary": line, "nodes": []}, line)
    return code


def _print(out: Console, as_json: bool, doc: dict[str, Any], line: str) -> None:
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        out.print(line, markup=False, soft_wrap=True)


def _local(moment: datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M %Z")
