"""The live glue with a fake runner: preflight validation, runners per node, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from upgrader.config import Config
from upgrader.health import HealthDefaults, ProbeSpecError, Snapshot
from upgrader.health.live import defaults_from, node_runners, validate_probes, verify_moved
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Result, Runner

CIB = (Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml").read_text()


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
    assert tuple(runner_for("node2").prefix) == ("nsenter", "-t", "7", "--", "ssh", "-o", "BatchMode=yes", "node2")
    assert base.calls == [("crm_node", "-n")]
    runner_for("node3")
    assert base.calls == [("crm_node", "-n")], "the local node name is asked once"


def test_settings_fill_the_engine_defaults() -> None:
    d = defaults_from(Config(health_timeout=60, health_retries=3, health_interval=10))
    assert (d.deadline, d.attempt_timeout, d.retries, d.interval) == (60.0, 5.0, 3, 10.0)
    assert defaults_from(Config(health_timeout=2)).attempt_timeout == 2.0
