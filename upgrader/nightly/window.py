"""The nightly patch window's rules: when it runs, how long a node takes, an apt run's lock, the report.

``rolling-upgrade window`` (:mod:`upgrader.cli.window`, the cron entry point)
runs the rolling upgrade of the whole cluster inside an open window, but
never starts a node whose expected duration does not fit into the time left;
the nodes it defers, and why, go to the log, the history and the report. An
apt run holding the upgrade lock (unattended-upgrades on one node, with its
finishing step) is waited for while the window has room for a node after it.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

from upgrader import boot, metrics
from upgrader import config as configuration
from upgrader.nightly import fit, report
from upgrader.orchestrator import start
from upgrader.history import History
from upgrader.orchestrator.procedure import Outcome, Refused, Rollout
from upgrader.orchestrator.recovery import recover
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import CommandError
from upgrader.runs import APT_RUN_PREFIX, new_run_id
from upgrader.syslog import syslog
from upgrader.timewindow import expected_node_duration, is_open, local_zone, next_opening

TAG = "rolling-upgrade-window"
LOG_FILE = "/var/log/upgrader/window.log"
APT_WAIT_POLL = 5.0  # seconds between looks at an apt run's upgrade lock


def log(message: str, priority: str = "user.notice", *, run_id: str | None = None, kind: str = "window") -> None:
    """One line to the journal (a ``window`` event of ``run_id`` unless ``kind`` says otherwise), else to syslog
    (``logger``; a missing log daemon is ignored), and to the window's log file."""
    syslog(message, priority, tag=TAG, log_file=LOG_FILE, kind=kind, run_id=run_id)


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


def run_window(cluster: Cluster, cfg: configuration.Config, started: datetime,
               at_given: bool) -> tuple[int, dict[str, Any], str]:
    """The night's run from ``started``: its exit code, its document (``--json``) and its one line."""
    t0 = time.monotonic()

    def clock() -> datetime:
        return started + timedelta(seconds=time.monotonic() - t0)

    estimate, history = Estimate(cfg), History(cfg.history_file)
    quiet = not_now(cfg, clock(), at_given)
    if quiet is not None:
        code, line = quiet
        return code, end_quietly(history, new_run_id(socket.gethostname()), code, line), line
    r = start.rollout(cluster, Collect())
    delay = fit.random_delay(cfg.random_delay, left(cfg, clock()), estimate.span)
    if delay:
        log(f"waiting a random {delay}s (Rolling-Upgrade::Random-Delay {cfg.random_delay}s) before starting",
            run_id=r.run_id)
        time.sleep(delay)
    r.recovered = recover(cluster, r.nodes, r.history, r.config)  # a run of this node that was killed
    for line in r.recovered:
        log(line, run_id=r.run_id, kind="note")
    collect = Collect()
    r.report = collect
    r.before_node = deferral(cfg, estimate, clock)
    for attempt in (1, 2):
        busy = wait_for_lock(cluster, r.run_id, room(cfg, estimate, clock))
        if busy:
            return Outcome.REFUSED, end_quietly(r.history, r.run_id, Outcome.REFUSED, busy), busy
        try:
            code, refused = r.run(None, confirm=None), None
            break
        except Refused as exc:
            # Another run took the lock between the look and the preflight: an apt run is waited for
            # (once more), another node's window does the work.
            held = lock.inspect(cluster)
            if attempt == 1 and lock_kind(held, r.run_id) == "apt":
                continue
            busy = refusal(held, r.run_id)
            if busy:
                return Outcome.REFUSED, end_quietly(r.history, r.run_id, Outcome.REFUSED, busy), busy
            code, refused = Outcome.REFUSED, str(exc)
            break
    nodes = [vars(x) for x in r.results.values()]
    if code == Outcome.DONE and not refused and all(n["result"] == "up to date" for n in nodes):
        line = "window open; nothing to upgrade on any node"
        return Outcome.DONE, end_quietly(r.history, r.run_id, Outcome.DONE, line), line
    summary = report.Summary(r.run_id, socket.gethostname(), Outcome(code).name.lower(), int(code), nodes,
                             refused, collect.lines)
    return summary.exit, summary.document(), report_run(r, cfg, summary)


def lock_kind(held: lock.LockStatus | None, run_id: str) -> str:
    """``free`` (no lock, ours, or stale enough to break), ``apt`` (an apt run's: it upgrades only its own
    node, so the window waits for it), or ``run`` (a rolling upgrade of the cluster: it does the work)."""
    if held is None or held.info.run_id == run_id or held.breakable:
        return "free"
    return "apt" if held.info.run_id.startswith(APT_RUN_PREFIX) else "run"


def refusal(held: lock.LockStatus | None, run_id: str) -> str | None:
    """One line naming the holder when another run holds the upgrade lock, else None."""
    if held is None or lock_kind(held, run_id) == "free":
        return None
    return (f"refused: the upgrade lock is held by {held.info.holder or '?'} ({held.describe(lock.utcnow())}); "
            "that run does the work")


def wait_for_lock(cluster: Cluster, run_id: str, room: Callable[[], float]) -> str | None:
    """None once the lock is free; the refusal line otherwise.

    An apt run's lock (unattended-upgrades, a person, with its finishing step)
    is waited for while the window still has room for a node after it
    (``room()`` seconds): that run upgrades only its own node, the rest of the
    cluster is the window's. Any other run's lock is refused at once.
    """
    held = lock.inspect(cluster)
    if held is None or lock_kind(held, run_id) != "apt":
        return refusal(held, run_id)
    holder, wait = held.info.holder or "?", room()
    if wait <= 0:
        return (f"refused: the upgrade lock is held by {holder}'s apt run ({held.describe(lock.utcnow())}) and the "
                "window has no room left for a node after it")
    log(f"the upgrade lock is held by {holder}'s apt run ({held.info.run_id}); waiting for it to end (at most "
        f"{fit.human(timedelta(seconds=wait))}, while the window has room for a node), then upgrading the rest",
        run_id=run_id)
    try:
        held = Retrying(stop=stop_after_delay(wait), wait=wait_fixed(APT_WAIT_POLL), reraise=True,
                        retry=retry_if_result(lambda h: lock_kind(h, run_id) == "apt")
                        | retry_if_exception_type(CommandError))(lock.inspect, cluster)
    except RetryError:
        return (f"refused: {holder}'s apt run still held the upgrade lock after {fit.human(timedelta(seconds=wait))}"
                " of waiting, and the window has no room left for a node after it")
    busy = refusal(held, run_id)
    if busy is None:
        log(f"{holder}'s apt run ended; the window goes on", run_id=run_id)
    return busy


def room(cfg: configuration.Config, estimate: Estimate, clock: Callable[[], datetime]) -> Callable[[], float]:
    """Seconds the window can still give away before it has no room for one more node."""
    return lambda: (left(cfg, clock()) - estimate.span).total_seconds()


def left(cfg: configuration.Config, now: datetime) -> timedelta:
    current = is_open(cfg.windows, cfg.blackout, now)
    return current.left if current else timedelta(0)


def not_now(cfg: configuration.Config, now: datetime, at_given: bool) -> tuple[int, str] | None:
    """Why this run does nothing (exit code and the log line), None when it goes on."""
    if not cfg.windows:
        return Outcome.DONE, "no patch window configured (Rolling-Upgrade::Windows); nothing done"
    opening = is_open(cfg.windows, cfg.blackout, now)
    if opening is None:
        upcoming = next_opening(cfg.windows, cfg.blackout, now)
        when = f"next opens {local_time(upcoming.start)}" if upcoming else "no opening within a year"
        return Outcome.DONE, f"patch window closed at {local_time(now)} ({when}); nothing done"
    too_soon = boot.grace_refusal(cfg.boot_grace, "the nightly window")
    if too_soon:
        return Outcome.REFUSED, too_soon
    if at_given:
        log(f"the clock is set by --at to {local_time(now)} (a run by hand)")
    return None


def deferral(cfg: configuration.Config, estimate: Estimate, clock: Callable[[], datetime]) -> Callable[[str], str | None]:
    def before_node(node: str) -> str | None:
        return fit.defer_reason(node, estimate.span, left(cfg, clock()), estimate.basis)
    return before_node


def report_run(r: Rollout, cfg: configuration.Config, summary: report.Summary) -> str:
    """Log, history, mail and webhook for a run that did (or refused) something; its one-line summary."""
    line = summary.headline()
    log(line, "user.notice" if not summary.failed else "user.err", run_id=r.run_id,
        kind="refusal" if summary.refused else "failure" if summary.failed else "window")
    r.history.record(r.run_id, None, "window", "end", result=summary.outcome, summary=line,
                     deferred={n["node"]: n["error"] for n in summary.nodes if n["result"] == "deferred"})
    for said, problem in report.deliver(summary, cfg.mail, cfg.mail_report, cfg.webhook):
        log(said, "user.warning" if problem else "user.info", run_id=r.run_id)
    metrics.record(r.cluster, cfg.metrics_dir, run_start=r.started, run_end=datetime.now(timezone.utc),
                   run_exit=summary.exit, results={n: (x.result, x.seconds) for n, x in r.results.items()},
                   left={n: (len(x.old_code), bool(x.reboot)) for n, x in r.results.items()},
                   pending=r.pending_after(), outages=r.longest_outages())
    return line


def end_quietly(history: History, run_id: str, code: int, line: str) -> dict[str, Any]:
    """A run that did nothing: one log line, one history record; the document to print."""
    log(line, "user.notice" if code == Outcome.DONE else "user.warning", run_id=run_id,
        kind="refusal" if code == Outcome.REFUSED else "window")
    history.record(run_id, None, "window", "end", result=Outcome(code).name.lower(), summary=line)
    return {"run": run_id, "exit": int(code), "outcome": Outcome(code).name.lower(),
            "refused": line if code else None, "summary": line, "nodes": []}


def local_time(moment: datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M %Z")
