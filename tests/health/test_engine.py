"""The engine: parallel checks, retries within deadlines, one cluster reading per round.

Level 1 reads hand-built snapshots, level 2 a fake Runner (argv only), level 3
real servers on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from time import monotonic
from typing import Sequence

import pytest
from rich.console import Console

from tests.health.level1 import Failure, Resource
from upgrader.health import (CHECK_CMD_ATTR, PROBE_ATTR, HealthDefaults, Level, ResourceConfig, Snapshot, Target,
                             check_health, health_spec)
from upgrader.runner import Result, Runner

FAST = HealthDefaults(deadline=3.0, attempt_timeout=1.0, interval=0.05)
BASELINE = Snapshot()


LXC_LS = ("lxc-ls", "--fancy", "--fancy-format", "NAME,STATE")  # every container's state on a node, at once


def lxc_ls_answer(*running: str) -> str:
    """``lxc-ls --fancy --fancy-format NAME,STATE`` as it prints: a header, then a row per container."""
    return "NAME      STATE\n" + "".join(f"{name:<9} RUNNING\n" for name in running)


class LxcRunner(Runner):
    """Says every container is RUNNING and every command succeeds; records argv (nothing is run)."""

    def __init__(self, node: str, calls: list[tuple[str, ...]]) -> None:
        super().__init__(prefix=("upgrader-lab", "exec", node, "--"))
        self.calls = calls

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        full = tuple(self.prefix) + tuple(argv)
        self.calls.append(full)
        return Result(full, 0, lxc_ls_answer("app-c", "db-c") if tuple(argv) == LXC_LS else "", "", 0.0)


def started_on(node: str, *ids: str) -> Snapshot:
    return Snapshot({rid: Resource(rid, "Started", (node,)) for rid in ids})


def lxc_group(gid: str, probe: str | None = None) -> ResourceConfig:
    meta = {PROBE_ATTR: probe} if probe else {}
    return ResourceConfig(gid, meta=meta, members=(
        ResourceConfig(f"{gid}-vip", "ocf:heartbeat:IPaddr2"),
        ResourceConfig(f"{gid}-ct", "ocf:heartbeat:lxc", {"container": f"{gid}-c"}, {CHECK_CMD_ATTR: "/bin/true"}),
    ))


def test_all_levels_pass(serve) -> None:
    calls: list[tuple[str, ...]] = []
    with serve(lambda n: (200, b"ok")) as (port, paths):
        spec = health_spec(lxc_group("app", f"http://127.0.0.1:{port}/health#body=ok tcp://127.0.0.1:{port}"))
        report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "app-vip", "app-ct"),
                              baseline=BASELINE, runner_for=lambda node: LxcRunner(node, calls), defaults=FAST)
    assert report.ok, report.problems()
    assert [(r.level, r.target, r.attempts) for r in report.results] == [
        (Level.CLUSTER, "app-vip, app-ct", 1), (Level.CONTAINER, "app-c", 1),
        (Level.APPLICATION, f"http://127.0.0.1:{port}/health#body=ok", 1), (Level.APPLICATION, f"tcp://127.0.0.1:{port}", 1)]
    assert paths == ["/health"]
    assert calls == [("upgrader-lab", "exec", "node2", "--", *LXC_LS),
                     ("upgrader-lab", "exec", "node2", "--", "lxc-attach", "-n", "app-c", "--", "/bin/true")]


def test_unchecked_levels_are_reported_not_failed() -> None:
    spec = health_spec(ResourceConfig("dk", "ocf:heartbeat:docker"))
    report = check_health([Target(spec, "node3")], snapshot=lambda t: started_on("node3", "dk"), baseline=BASELINE,
                          runner_for=lambda node: Runner(), defaults=FAST)
    assert report.ok
    assert [(r.level, r.checked, r.note) for r in report.results] == [
        (Level.CLUSTER, True, None),
        (Level.CONTAINER, False, "container level not checked: agent ocf:heartbeat:docker"),
        (Level.APPLICATION, False, "no application probe declared")]


def test_retries_until_the_application_answers(serve) -> None:
    with serve(lambda n: (503, b"") if n <= 2 else (200, b"")) as (port, paths):
        spec = health_spec(ResourceConfig("a", "ocf:heartbeat:anything", meta={PROBE_ATTR: f"http://127.0.0.1:{port}/"}))
        report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "a"),
                              baseline=BASELINE, runner_for=lambda node: Runner(), defaults=FAST)
    probe = report.results[-1]
    assert report.ok and probe.attempts == 3 and len(paths) == 3
    assert 0.1 <= probe.seconds < 0.5  # two 0.05 s pauses, no more


def test_retries_limit_and_failure_report(serve) -> None:
    with serve(lambda n: (500, b"")) as (port, paths):
        spec = health_spec(ResourceConfig("a", "ocf:heartbeat:anything", meta={PROBE_ATTR: f"http://127.0.0.1:{port}/"}))
        report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "a"), baseline=BASELINE,
                              runner_for=lambda node: Runner(), defaults=HealthDefaults(retries=1, interval=0.01))
    assert not report.ok and len(paths) == 2
    assert report.problems() == [f"a on node2: application check http://127.0.0.1:{port}/ failed after 2 attempts in "
                                 f"{report.failures[0].seconds:.1f}s: HTTP status 500 Internal Server Error, expected 200"]
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["results"][-1]["level"] == "application"
    assert data["results"][-1]["error"].startswith("HTTP status 500")
    console = Console(record=True, width=200)
    report.render(console)
    text = console.export_text()
    assert "FAILED" in text and "HTTP status 500" in text and "not checked" in text


def test_slow_server_fails_at_the_deadline(serve) -> None:
    with serve(lambda n: (200, b""), delay=10.0) as (port, _):
        spec = health_spec(ResourceConfig("a", "ocf:heartbeat:anything", meta={PROBE_ATTR: f"http://127.0.0.1:{port}/"}))
        started = monotonic()
        report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "a"), baseline=BASELINE,
                              runner_for=lambda node: Runner(),
                              defaults=HealthDefaults(deadline=0.7, attempt_timeout=0.25, interval=0.05))
        elapsed = monotonic() - started
    probe = report.results[-1]
    # attempts at 0-0.25 and 0.30-0.55; the third starts at 0.60 with only the 0.1 s left to the deadline
    assert (probe.ok, probe.attempts) == (False, 3)
    assert probe.error and probe.error.startswith("no answer within ")
    assert 0.05 < float(probe.error.removeprefix("no answer within ").rstrip("s")) < 0.15
    assert 0.7 <= elapsed < 0.95


def test_new_failure_fails_at_once() -> None:
    now = Snapshot({"w": Resource("w", "Started", ("node2",))}, (Failure("w", "node2", "w_monitor_5000"),))
    spec = health_spec(ResourceConfig("w", "ocf:heartbeat:anything"))
    report = check_health([Target(spec, "node2")], snapshot=lambda t: now, baseline=BASELINE,
                          runner_for=lambda node: Runner(), defaults=HealthDefaults(deadline=30))
    cluster = report.results[0]
    assert not cluster.ok and cluster.attempts == 1 and cluster.seconds < 0.5
    assert cluster.error == "new failure of w on node2: w_monitor_5000"


def test_one_cluster_reading_per_round_for_many_resources() -> None:
    ids = [f"r{i}" for i in range(20)]
    calls: list[float] = []
    lock = threading.Lock()

    def snapshot(timeout: float) -> Snapshot:
        with lock:
            calls.append(timeout)
            role = "Starting" if len(calls) <= 2 else "Started"
        return Snapshot({rid: Resource(rid, role, ("node2",)) for rid in ids})

    targets = [Target(health_spec(ResourceConfig(rid, "ocf:heartbeat:anything")), "node2") for rid in ids]
    report = check_health(targets, snapshot=snapshot, baseline=BASELINE, runner_for=lambda node: Runner(), defaults=FAST)
    assert report.ok
    assert len(calls) == 3  # three rounds, not 20 x 3 crm_mon calls
    attempts = [r.attempts for r in report.results if r.level is Level.CLUSTER]
    # the check that asked for the second reading saw all three; one whose thread began late (a loaded
    # machine) joined at the second or third reading and needed fewer: none needed more
    assert max(attempts) == 3 and all(1 <= a <= 3 for a in attempts), attempts


def test_fifty_probes_cost_about_one(serve) -> None:
    """Each answer takes 0.2 s: serial would be 10 s for 50; parallel must stay under 2x one."""

    def run(n: int, port: int) -> float:
        targets = [Target(health_spec(ResourceConfig(f"a{i}", "ocf:heartbeat:anything",
                                                     meta={PROBE_ATTR: f"http://127.0.0.1:{port}/{i}"})), "node2")
                   for i in range(n)]
        ids = [t.spec.resource for t in targets]
        started = monotonic()
        report = check_health(targets, snapshot=lambda t: started_on("node2", *ids), baseline=BASELINE,
                              runner_for=lambda node: Runner(), defaults=FAST)
        assert report.ok and len(report.results) == 3 * n
        return monotonic() - started

    with serve(lambda n: (200, b"ok"), delay=0.2) as (port, paths):
        one = run(1, port)
        fifty = run(50, port)
    assert len(paths) == 51
    print(f"1 probe: {one:.3f}s, 50 probes: {fifty:.3f}s")
    assert fifty < 2 * one, (one, fifty)


def test_a_crashing_check_does_not_hide_the_others() -> None:
    class Unreachable(Runner):
        def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
            raise PermissionError("upgrader-lab: permission denied")

    spec = health_spec(lxc_group("app"))
    report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "app-vip", "app-ct"),
                          baseline=BASELINE, runner_for=lambda node: Unreachable(), defaults=FAST)
    assert [(r.level, r.ok) for r in report.results[:2]] == [(Level.CLUSTER, True), (Level.CONTAINER, False)]
    assert report.results[1].error == ("cannot read the containers' states on node2: upgrader-lab: "
                                       "permission denied")


def test_no_attempt_starts_too_close_to_the_deadline_to_be_useful() -> None:
    def snapshot(timeout: float) -> Snapshot:
        if timeout < 0.05:
            raise TimeoutError(f"crm_mon did not answer within {timeout:.2g}s")
        return started_on("node3", "app-vip")

    spec = health_spec(ResourceConfig("app-vip", "ocf:heartbeat:IPaddr2"))
    report = check_health([Target(spec, "node2")], snapshot=snapshot, baseline=BASELINE, runner_for=lambda n: Runner(),
                          defaults=HealthDefaults(deadline=1.0, attempt_timeout=1.0, interval=0.48))
    cluster = report.results[0]
    # attempts at 0 and 0.48; a third at 0.96 would have 0.04 s, less than a tenth of attempt_timeout
    assert (cluster.ok, cluster.attempts) == (False, 2)
    assert cluster.error == "app-vip runs on node3, expected node2"


def test_checks_sharing_a_reading_run_as_one_task_those_that_do_not_each_as_their_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Level 1 of every resource is one task (one worker); level 2 without a check command one a node; a
    container's check command (lxc-attach) and a probe each their own, so that they still run in parallel."""
    from upgrader.health import engine

    tasks: list[tuple[tuple[Level, str], ...]] = []
    real = engine._run_together

    def recording(task, d):
        tasks.append(tuple((c.level, c.node) for c in task))
        return real(task, d)

    monkeypatch.setattr(engine, "_run_together", recording)
    plain = [ResourceConfig(f"p{i}", meta={PROBE_ATTR: "tcp://127.0.0.1:9"}, members=(
        ResourceConfig(f"p{i}-ct", "ocf:heartbeat:lxc", {"container": f"p{i}-c"}),)) for i in range(6)]
    commanded = [lxc_group(f"c{i}") for i in range(3)]
    targets = [Target(health_spec(r), f"node{1 + i % 2}") for i, r in enumerate(plain)] + \
        [Target(health_spec(r), "node3") for r in commanded]
    calls: list[tuple[str, ...]] = []

    class AllRunning(LxcRunner):
        def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
            self.calls.append(tuple(argv))
            names = [c.name for t in targets for c in t.spec.containers]
            return Result(tuple(argv), 0, lxc_ls_answer(*names) if tuple(argv) == LXC_LS else "", "", 0.0)

    placed = {p: t.node for t in targets for p in t.spec.primitives}
    report = check_health(targets, snapshot=lambda t: Snapshot({rid: Resource(rid, "Started", (node,))
                                                                for rid, node in placed.items()}),
                          baseline=BASELINE, runner_for=lambda node: AllRunning(node, calls),
                          defaults=HealthDefaults(deadline=0.3, attempt_timeout=0.2, interval=0.05))
    assert len(placed) == 12 and all(r.ok for r in report.results if r.level is not Level.APPLICATION), report
    assert len(report.results) == 9 + 9 + 6 + 3  # level 1 and 2 of each, 6 probes, 3 "no probe" notes
    shape = sorted((len(t), t[0]) for t in tasks)
    assert shape == sorted([(9, (Level.CLUSTER, "node1")), (3, (Level.CONTAINER, "node1")),
                            (3, (Level.CONTAINER, "node2"))] + [(1, (Level.CONTAINER, "node3"))] * 3
                           + [(1, (Level.APPLICATION, t.node)) for t in targets[:6]]), shape
    assert all(len(set(t)) == 1 for t in tasks if t[0][0] is not Level.CLUSTER), "a task keeps to its node"
    assert sum(1 for c in calls if c == LXC_LS) == 3, "one lxc-ls a node"
    assert sum(1 for c in calls if c[0] == "lxc-attach") == 3


def test_in_a_shared_worker_each_check_ends_on_its_own() -> None:
    """One resource's new failure ends its check at once; another's start is waited for; a third that never
    starts fails at the deadline with its last error; each says its own attempts."""
    rounds: list[int] = []

    def snapshot(timeout: float) -> Snapshot:
        rounds.append(1)
        late = "Started" if len(rounds) >= 3 else "Starting"
        return Snapshot({"a": Resource("a", "Started", ("node2",)), "b": Resource("b", late, ("node2",)),
                         "c": Resource("c", "Stopped", ())},
                        failures=(Failure("a", "node2", "a_monitor_5000"),))

    targets = [Target(health_spec(ResourceConfig(rid, "ocf:heartbeat:anything")), "node2") for rid in "abc"]
    report = check_health(targets, snapshot=snapshot, baseline=BASELINE, runner_for=lambda node: Runner(),
                          defaults=HealthDefaults(deadline=0.6, attempt_timeout=0.2, interval=0.05))
    got = {r.resource: r for r in report.results if r.level is Level.CLUSTER}
    assert (got["a"].ok, got["a"].attempts, got["a"].error) == (False, 1, "new failure of a on node2: a_monitor_5000")
    assert (got["b"].ok, got["b"].attempts) == (True, 3)
    assert not got["c"].ok and got["c"].attempts == len(rounds) > 3 and got["c"].error == "c runs on no node, expected node2"
    assert got["a"].seconds < got["b"].seconds < got["c"].seconds
