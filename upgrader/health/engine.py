"""Runs every check of every moved resource in parallel, each retried within its deadline.

Checks that read one shared reading a round (level 1: one crm_mon; level 2 without a check command: one
lxc-ls a node; level 4: one patched scan a node) run together in one worker, a round at a time, instead of
one thread each waiting on the same reading: at 120 applications, 5 threads instead of 240 beside the
probes. With level 4 on, level 2 reads its states from that node's patched scan (the scan's own lxc-ls
gives them): one remote command and one lxc-ls a node a round instead of two; a scan that gives no states
(its lxc-ls failed, or an older tool on the node) or fails leaves level 2 to its own lxc-ls.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from time import monotonic
from typing import Callable, Sequence

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_fixed
from tenacity.stop import stop_base

from upgrader.runner import Runner
from upgrader.health.cluster import ClusterSnapshot, SnapshotRounds, cluster_problem
from upgrader.health.container import check_container, node_states
from upgrader.health.errors import CheckFailed
from upgrader.health.patched import check_patched, node_scan
from upgrader.health.probes import run_probe
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.health.spec import HealthSpec

MIN_ATTEMPT = 0.01  # seconds; an attempt started just before the deadline still gets this
# No attempt starts with less than this share of attempt_timeout left before the deadline:
# a crm_mon given 20 ms would only replace the real error with "did not answer".
MIN_SHARE = 0.1


@dataclass(frozen=True)
class HealthDefaults:
    """Global settings (the caller fills them from its configuration)."""

    deadline: float = 60.0  # per check: no attempt starts later than this after the first (see MIN_SHARE)
    attempt_timeout: float = 5.0  # one probe, one lxc command, one crm_mon reading
    interval: float = 0.2  # pause between attempts
    retries: int | None = None  # extra attempts at most; None: until the deadline
    patched_tool: str | None = None  # level 4 ("patched") for lxc containers, through this rolling-upgrade; None: off
    workers: int = 256  # threads; checks beyond this wait for a free one

    def __post_init__(self) -> None:
        if min(self.deadline, self.attempt_timeout, self.workers) <= 0 or self.interval < 0:
            raise ValueError(f"health check settings must be positive: {self}")
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"health check retries must be 0 or more, not {self.retries}")


@dataclass(frozen=True)
class Target:
    """A resource that was moved, and the node it must now run on."""

    spec: HealthSpec
    node: str


@dataclass(frozen=True)
class _Check:
    resource: str
    node: str
    level: Level
    target: str
    attempt: Callable[[float], None]  # one try within the given seconds; raises CheckFailed
    attempt_timeout: float | None = None  # one try's bound when not the default's (a node's batched reading)
    shared: str | None = None  # the reading its attempts share with others' (they run together: _run_together)


PER_CONTAINER = 0.05  # seconds one container adds to its node's batched state reading (lxc-ls), at most
PATCHED_PER_CONTAINER = 0.15  # and to its node's patched scan (bench: 0.058 s a container)
FALLBACK_MIN = 1.0  # seconds (or half the attempt) left for level 2's own lxc-ls after the scan could not tell


class _NodeReadings:
    """Per node, one reading a round shared by its containers' checks: one patched scan of them all when
    level 4 is on, whose own lxc-ls gives level 2 their states; else (or once that scan failed or gave no
    states) one ``lxc-ls`` for level 2; one remote shell each instead of one per container."""

    def __init__(self, targets: Sequence[Target], runner_for: Callable[[str], Runner], d: HealthDefaults) -> None:
        self.defaults = d
        self.names: dict[str, list[str]] = {}
        for t in targets:
            self.names.setdefault(t.node, []).extend(c.name for c in t.spec.containers)
        self._states = {n: SnapshotRounds(partial(node_states, runner_for(n)), f"the containers' states on {n}")
                        for n, names in self.names.items() if names}
        self._scans = {n: SnapshotRounds(partial(node_scan, runner_for(n), d.patched_tool, tuple(names)),
                                         f"the patched scan on {n}")
                       for n, names in self.names.items() if names and d.patched_tool}
        self._own_states: dict[str, str] = {}  # node: why its level 2 reads its own lxc-ls from now on
        # level 2's bound a container: the scan's when its states come from the scan
        self.state_share = PATCHED_PER_CONTAINER if d.patched_tool else PER_CONTAINER

    def states(self, node: str) -> Callable[[float], dict[str, str]]:
        """Level 2's reader: the states in the node's patched scan when there is one; else, and for the rest
        of the check once that scan failed or gave no states, the node's own lxc-ls reading. A scan that
        failed too late in an attempt for an lxc-ls to follow fails the attempt naming it (retried)."""
        own = self._states[node].reader()
        if node not in self._scans:
            return own
        scan = self._scans[node].reader()

        def read(timeout: float) -> dict[str, str]:
            deadline = monotonic() + timeout
            if node not in self._own_states:
                try:
                    found = scan(timeout)
                    why = "it gave no container states (an older rolling-upgrade there?)"
                except CheckFailed as exc:
                    found, why = {}, str(exc)
                states = {name: got["state"] for name, got in found.items()
                          if isinstance(got, dict) and isinstance(got.get("state"), str)}
                if self.names[node] and set(self.names[node]) <= set(states):
                    return states
                self._own_states[node] = why
                if deadline - monotonic() < min(FALLBACK_MIN, timeout / 2):
                    raise CheckFailed(f"the patched scan on {node} could not give the containers' states ({why}); "
                                      "lxc-ls is asked at the next attempt")
            return own(max(deadline - monotonic(), MIN_ATTEMPT))

        return read

    def scan(self, node: str) -> Callable[[float], dict]:
        return self._scans[node].reader()

    def timeout(self, node: str, per: float = PER_CONTAINER) -> float:
        """One try's bound for a check that reads its node's batch: the default, plus a share per container."""
        return self.defaults.attempt_timeout + per * len(self.names.get(node, ()))


def check_health(
    targets: Sequence[Target],
    *,
    snapshot: Callable[[float], ClusterSnapshot],
    baseline: ClusterSnapshot,
    runner_for: Callable[[str], Runner],
    defaults: HealthDefaults = HealthDefaults(),
    first: ClusterSnapshot | None = None,
) -> HealthReport:
    """Check every level of every target in parallel.

    ``snapshot(timeout)`` reads the cluster status (one crm_mon call) and is
    called once per poll round for all level-1 checks; ``baseline`` is such a
    reading from before the move; ``first``, one the caller has just made, is
    the first round's (a crm_mon saved: 0.25 s at 120 applications).
    ``runner_for(node)`` gives the Runner that reaches ``node``.
    """
    started = monotonic()
    rounds = SnapshotRounds(snapshot, first=first)
    checks: list[_Check] = []
    notes: list[CheckResult] = []
    per_node = _NodeReadings(targets, runner_for, defaults)
    for t in targets:
        checks.append(_Check(t.spec.resource, t.node, Level.CLUSTER, ", ".join(t.spec.primitives),
                             _cluster_attempt(rounds, t.spec.primitives, t.node, baseline), shared="cluster"))
        if t.spec.containers:
            runner = runner_for(t.node)
            checks += [_Check(t.spec.resource, t.node, Level.CONTAINER, c.name,
                              partial(check_container, runner, c, states=per_node.states(t.node)),
                              per_node.timeout(t.node, per_node.state_share),
                              shared=None if c.command else f"states on {t.node}")
                       for c in t.spec.containers]  # a check command runs in its container: a thread each
            if defaults.patched_tool:
                checks += [_Check(t.spec.resource, t.node, Level.PATCHED, c.name,
                                  partial(check_patched, runner, defaults.patched_tool, c, scan=per_node.scan(t.node)),
                                  per_node.timeout(t.node, PATCHED_PER_CONTAINER), shared=f"scan on {t.node}")
                           for c in t.spec.containers]
        if t.spec.container_note:
            notes.append(_note(t, Level.CONTAINER, t.spec.container_note))
        checks += [_Check(t.spec.resource, t.node, Level.APPLICATION, p.text, partial(run_probe, p))
                   for p in t.spec.probes]
        if not t.spec.probes:
            notes.append(_note(t, Level.APPLICATION, "no application probe declared"))
    results = _run_all(checks, defaults)
    place = {t.spec.resource: i for i, t in enumerate(targets)}
    level = {lv: i for i, lv in enumerate(Level)}
    rows = sorted(results + notes, key=lambda r: (place[r.resource], level[r.level]))  # stable sort
    return HealthReport(tuple(rows), monotonic() - started)


def _cluster_attempt(rounds: SnapshotRounds, primitives: tuple[str, ...], node: str,
                     baseline: ClusterSnapshot) -> Callable[[float], None]:
    read = rounds.reader()

    def attempt(timeout: float) -> None:
        problem = cluster_problem(primitives, node, read(timeout), baseline)
        if problem:
            raise CheckFailed(problem.message, final=problem.final)

    return attempt


def _note(t: Target, level: Level, note: str) -> CheckResult:
    return CheckResult(t.spec.resource, t.node, level, "-", ok=True, note=note, checked=False)


def _run_all(checks: list[_Check], d: HealthDefaults) -> list[CheckResult]:
    if not checks:
        return []
    tasks: dict[object, list[int]] = {}  # checks sharing a reading together, every other one alone
    for i, c in enumerate(checks):
        tasks.setdefault(c.shared if c.shared is not None else i, []).append(i)
    workers = min(d.workers, len(tasks))
    longest = max(c.attempt_timeout or d.attempt_timeout for c in checks)
    limit = math.ceil(len(tasks) / workers) * (d.deadline + longest) + 1.0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
    futures = [(task, pool.submit(_run_together, [checks[i] for i in task], d)) for task in tasks.values()]
    wait([f for _, f in futures], timeout=limit)
    pool.shutdown(wait=False, cancel_futures=True)
    results: list[CheckResult | None] = [None] * len(checks)
    for task, f in futures:
        for i, r in zip(task, f.result() if f.done() else [None] * len(task)):
            c = checks[i]
            results[i] = r or CheckResult(c.resource, c.node, c.level, c.target, ok=False,
                                          error=f"check did not finish within {limit:.0f}s")
    return [r for r in results if r is not None]


class StopBefore(stop_base):
    """Stop when the next attempt, after its ``pause``, would start later than ``delay`` seconds after the first.

    tenacity's own stop_before_delay (8.3 and later) does this; Debian 12's python3-tenacity is 8.2.
    """

    def __init__(self, delay: float, pause: float) -> None:
        self.delay, self.pause = delay, pause

    def __call__(self, retry_state) -> bool:
        return (retry_state.seconds_since_start or 0.0) + self.pause >= self.delay


class _Pending(Exception):
    """Checks of a task have neither passed nor finally failed yet: another round."""


def _run_together(task: list[_Check], d: HealthDefaults) -> list[CheckResult]:
    """Rounds of one attempt of every check of ``task`` still pending, until each has passed or finally
    failed, or no round may start before the deadline; a check alone is a task of one."""
    started = monotonic()
    deadline = started + d.deadline
    bound = [c.attempt_timeout or d.attempt_timeout for c in task]
    last_start = d.deadline - max(MIN_ATTEMPT, MIN_SHARE * max(bound))
    attempts = [0] * len(task)
    errors: list[str | None] = [None] * len(task)
    ended: list[float | None] = [None] * len(task)
    pending = list(range(len(task)))
    retrying = Retrying(
        stop=StopBefore(last_start, d.interval) | (stop_never if d.retries is None else stop_after_attempt(d.retries + 1)),
        wait=wait_fixed(d.interval),
        retry=retry_if_exception_type(_Pending),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                still = []
                for i in pending:
                    attempts[i] += 1
                    errors[i], again = _attempt(task[i], max(min(bound[i], deadline - monotonic()), MIN_ATTEMPT))
                    if again:
                        still.append(i)
                    else:
                        ended[i] = monotonic()
                pending = still
                if pending:
                    raise _Pending
    except _Pending:
        pass  # no round may start any more: the pending checks' last errors stand
    now = monotonic()
    return [CheckResult(c.resource, c.node, c.level, c.target, ok=errors[i] is None, attempts=attempts[i],
                        seconds=(ended[i] or now) - started, error=errors[i]) for i, c in enumerate(task)]


def _attempt(check: _Check, timeout: float) -> tuple[str | None, bool]:
    """One attempt: its error (None: passed) and whether another may fix it."""
    try:
        check.attempt(timeout)
    except CheckFailed as exc:
        return str(exc), not exc.final
    except Exception as exc:  # noqa: BLE001 - a bug in one check must not hide the others' results
        return f"unexpected {type(exc).__name__}: {exc}", False
    return None, False
