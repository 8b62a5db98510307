"""The outage watch around a move, and what a run leaves pending: a real listener on 127.0.0.1 stands for a moving
resource's probe address; the checks and the run are the small fakes the move steps need."""

from __future__ import annotations

import socket
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from upgrader.config import Config
from upgrader.health import outage
from upgrader.orchestrator.context import NodeResult, Result, RunContext
from upgrader.orchestrator.watching import watching
from upgrader.packages.plan import Change


def listener(port: int = 0) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, node, phase, text) -> None:
        self.lines.append(f"{phase}: {text}")

    def progress(self, node, event) -> None: ...


def run_with(checks: object, config: Config = Config()) -> SimpleNamespace:
    return SimpleNamespace(checks=checks, config=config, report=Said(), results={"node2": NodeResult("node2")})


def test_a_moving_resources_outage_is_noted_in_the_nodes_result() -> None:
    up = listener()
    port = up.getsockname()[1]
    asked: list[list[str]] = []

    class Checks:
        def addresses(self, rids):
            asked.append(list(rids))
            return {"app1": [("127.0.0.1", port)]}  # app2 declares no probe on an address

    run = run_with(Checks())
    with watching(run, "node2", ["app1", "app2"]):  # type: ignore[arg-type]
        time.sleep(0.2)
        up.close()  # the move: down, then up on its new node
        down = time.monotonic()
        time.sleep(0.3)
        up = listener(port)
        gap = time.monotonic() - down
        time.sleep(0.2)
    up.close()
    assert asked == [["app1", "app2"]]
    seconds = run.results["node2"].outages["app1"]
    # An upper bound of the true outage: never shorter than the gap the test made, and longer by
    # at most two probe periods plus the probe loop's scheduling jitter (generous on a loaded CI).
    assert gap - 0.01 <= seconds <= gap + 2 * outage.FINE + 0.1, (seconds, gap)
    assert set(run.results["node2"].outages) == {"app1"}
    with watching(run, "node2", ["app1"]):  # type: ignore[arg-type]  # a second move: the longest kept
        time.sleep(0.1)
    assert run.results["node2"].outages["app1"] == seconds


def test_no_watch_when_turned_off_or_the_declarations_cannot_be_read() -> None:
    class Unreadable:
        def addresses(self, rids):
            raise TimeoutError("cibadmin timed out")

    class MustNotAsk:
        def addresses(self, rids):
            raise AssertionError("asked with the watch off")

    run = run_with(Unreadable())
    with watching(run, "node2", ["app1"]):  # type: ignore[arg-type]
        pass
    assert run.results["node2"].outages == {}
    assert run.report.lines == ["watch: no outage watch for this move: TimeoutError: cibadmin timed out"]
    off = run_with(MustNotAsk(), Config(health_outage_watch=False))
    with watching(off, "node2", ["app1"]):  # type: ignore[arg-type]
        pass
    assert off.results["node2"].outages == {} and off.report.lines == []


def test_pending_after_the_run_is_what_each_node_did_not_install(tmp_path: Path) -> None:
    run = RunContext.__new__(RunContext)  # only its results and plans: no cluster, no lock
    lib, kernel = Change("libfoo", "1", "2", security=True), Change("linux-image-amd64", "6.1", "6.2", security=True)
    tool = Change("tool", "1", "2")
    run.planned = {"node1": (lib, tool, kernel), "node2": (lib, tool), "node3": (lib,), "node4": ()}
    run.results = {
        "node1": NodeResult("node1", Result.OK, changes=[asdict(lib), asdict(tool)], upgraded=True),  # kernel left out
        "node2": NodeResult("node2", Result.DEFERRED, changes=[asdict(lib), asdict(tool)]),  # not upgraded
        "node3": NodeResult("node3", Result.QUARANTINED, changes=[asdict(lib)], upgraded=True,
                            outages={"app1": 0.5}),  # upgraded, then failed its checks
        "node4": NodeResult("node4", Result.UP_TO_DATE, outages={"app1": 0.2, "app2": 0.1}),
    }
    assert run.pending_after() == {"node1": (1, 1), "node2": (2, 1), "node3": (0, 0), "node4": (0, 0)}
    assert run.longest_outages() == {"app1": 0.5, "app2": 0.1}
