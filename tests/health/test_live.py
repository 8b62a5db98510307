"""The live glue with a fake runner: preflight validation, runners per node, settings."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Sequence

import pytest

from upgrader.config import Config
from upgrader.health import HealthDefaults, ProbeSpecError, Snapshot
from upgrader.health import live
from upgrader.health.cluster import new_failures
from upgrader.health.live import defaults_from, node_runners, read_state, validate_probes, verify_moved
from upgrader.health.snapshot import read_crm_mon
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Result, Runner

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
CIB = (DATA / "cib-all-online.xml").read_text()


class CibRunner(Runner):
    """Answers cibadmin with a CIB and crm_node with a node name; records argv (nothing is run)."""

    def __init__(self, cib: str, prefix: Sequence[str] = ()) -> None:
        super().__init__(prefix=prefix)
        self.cib = cib
        self.calls: list[tuple[str, ...]] = []

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        self.calls.append(tuple(argv))
        out = {"cibadmin": self.cib, "crm_node": "node1\n"}[argv[0]]
        return Result(tuple(argv), 0, out, "", 0.0)


def test_valid_declarations_pass_preflight() -> None:
    runner = CibRunner(CIB)
    assert validate_probes(Cluster(runner)) == []
    assert runner.calls == [("cibadmin", "--query", "--scope", "resources")]


def test_every_malformed_declaration_is_one_line_naming_resource_and_attribute() -> None:
    bad = CIB.replace("http://198.51.100.44/health", "htp://x").replace(
        "http://198.51.100.45/health", "tcp://198.51.100.45")
    assert validate_probes(Cluster(CibRunner(bad))) == [
        "app2: meta attribute rolling-upgrade-probe: 'htp://x' is not tcp://, http:// or https://",
        "app3: meta attribute rolling-upgrade-probe: 'tcp://198.51.100.45' needs a port (tcp://host:port)",
    ]


def test_verify_moved_refuses_a_malformed_or_unknown_resource_before_checking() -> None:
    bad = Cluster(CibRunner(CIB.replace("http://198.51.100.44/health", "htp://x")))
    with pytest.raises(ProbeSpecError, match="^app2: meta attribute rolling-upgrade-probe"):
        verify_moved(bad, {"app2": "node1"}, Snapshot(), HealthDefaults())
    with pytest.raises(KeyError, match="no group or ungrouped primitive called 'app9'"):
        verify_moved(Cluster(CibRunner(CIB)), {"app9": "node1"}, Snapshot(), HealthDefaults())


def test_local_node_runs_directly_others_through_the_remote_shell() -> None:
    base = CibRunner(CIB, prefix=("nsenter", "-t", "7", "--"))
    runner_for = node_runners(Cluster(base), Config(remote_shell=("ssh", "-o", "BatchMode=yes", "{node}")))
    assert runner_for("node1") is base
    assert tuple(runner_for("node2").prefix) == ("nsenter", "-t", "7", "--", "ssh", "-o", "BatchMode=yes", "--", "node2")
    assert base.calls == [("crm_node", "-n")]
    runner_for("node3")
    assert base.calls == [("crm_node", "-n")], "the local node name is asked once"


def test_settings_fill_the_engine_defaults() -> None:
    d = defaults_from(Config(health_timeout=60, health_retries=3, health_interval=10))
    assert (d.deadline, d.attempt_timeout, d.retries, d.interval) == (60.0, 5.0, 3, 10.0)
    assert defaults_from(Config(health_timeout=2)).attempt_timeout == 2.0


class MonRunner(Runner):
    """Answers crm_mon with a captured crm_mon XML; records argv and timeouts (nothing is run)."""

    def __init__(self, xml: str) -> None:
        super().__init__()
        self.xml = xml
        self.calls: list[tuple[tuple[str, ...], float | None]] = []

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        self.calls.append((tuple(argv), timeout))
        assert argv[0] == "crm_mon", argv
        return Result(tuple(argv), 0, self.xml, "", 0.0)


@pytest.mark.parametrize("situation, count", [("failed-action", 1), ("start-failed", 1_000_000), ("all-online", 0)])
def test_read_state_is_one_crm_mon_call_with_typed_fail_counts(situation: str, count: int) -> None:
    xml = (DATA / f"crm_mon-{situation}.xml").read_text()
    runner = MonRunner(xml)
    state, snap = read_state(Cluster(runner), timeout=4.0)
    assert runner.calls == [(("crm_mon", "--one-shot", "--inactive", "--output-as=xml"), 4.0)]
    facts = json.loads((DATA / "situations.json").read_text()).get(situation, {})
    expected = {(facts["resource"], facts["node"]): count} if count else {}
    assert snap.fail_counts == expected  # what the capture script recorded of that failure
    assert (state, snap) == read_crm_mon(xml)


def test_a_failed_start_counts_as_a_new_infinite_fail_count_against_the_baseline() -> None:
    _, before = read_state(Cluster(MonRunner((DATA / "crm_mon-all-online.xml").read_text())))
    state, after = read_state(Cluster(MonRunner((DATA / "crm_mon-start-failed.xml").read_text())))
    where = state.fail_counts[0].node
    assert new_failures(("flaky",), after, before)[-1] == f"fail-count of flaky on {where} rose from 0 to 1000000"
    assert new_failures(("flaky",), after, after) == []


def test_live_glue_uses_no_private_adapter_call() -> None:
    assert "._xml(" not in inspect.getsource(live)


def test_the_outage_watch_takes_its_addresses_from_the_declarations_the_preflight_read() -> None:
    """A watch is news, never a verdict: one cibadmin call at the preflight, none before each move."""
    from upgrader.orchestrator.gate import HealthGate

    runner = CibRunner(CIB)
    fresh = HealthGate(Cluster(runner), Config()).addresses(["app1", "app2"])  # no preflight: read now
    assert sum(c[0] == "cibadmin" for c in runner.calls) == 1 and fresh
    runner.calls.clear()
    gate = HealthGate(Cluster(runner), Config())
    gate.preflight()
    read = sum(c[0] == "cibadmin" for c in runner.calls)
    assert read == 1
    assert gate.addresses(["app1", "app2"]) == gate.addresses(["app1", "app2"]) == fresh
    assert sum(c[0] == "cibadmin" for c in runner.calls) == read  # no more reads
