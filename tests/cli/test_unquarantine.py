"""``rolling-upgrade unquarantine NODE`` says what becomes of the node, on a CIB captured from the lab and
written by Pacemaker's own tools (CIB_file): a run brings it online only when a run's drain left it waiting."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from upgrader.cli.run import unquarantine
from upgrader.orchestrator.steering import QUARANTINE
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner
from upgrader.runs import WAITING

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"
BY_HAND = "crm_attribute --node node2 --name standby --update off"


def said(cluster: Cluster) -> str:
    out = io.StringIO()
    assert unquarantine(cluster, Console(file=out, width=400), "node2") == 0
    return " ".join(out.getvalue().split())


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    cib = tmp_path / "cib.xml"
    shutil.copy(CAPTURED, cib)
    return Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))


def test_a_fail_backs_standby_is_left_to_the_operator_and_said_so(cluster: Cluster) -> None:
    cluster.set_standby("node2", True)  # a fail back: standby, quarantined, no waiting mark
    cluster.set_attribute("node2", QUARANTINE, "r1 2026-12-03T02:00:00Z")
    assert said(cluster) == (f"node2: quarantine cleared; it stays in standby until you bring it online ({BY_HAND}); "
                             "a run upgrades a node in standby but leaves it there, as an operator's standby")
    assert cluster.get_attribute("node2", QUARANTINE) is None
    assert said(cluster) == "node2 was not quarantined; nothing changed"


def test_a_drained_node_that_dpkg_failed_on_is_brought_online_by_the_next_run(cluster: Cluster) -> None:
    cluster.set_standby("node2", True)
    cluster.set_attribute("node2", WAITING, "r1")  # the drain's mark, kept by a dpkg failure's quarantine
    cluster.set_attribute("node2", QUARANTINE, "r1 2026-12-03T02:00:00Z")
    assert said(cluster) == (f"node2: quarantine cleared; it stays in standby until you bring it online ({BY_HAND}) "
                             "or the next run does")


def test_a_node_already_online_is_said_to_be(cluster: Cluster) -> None:
    cluster.set_attribute("node2", QUARANTINE, "r1 2026-12-03T02:00:00Z")
    assert said(cluster) == "node2: quarantine cleared; it is not in standby"


def test_the_quarantine_cleared_is_said_even_when_the_cluster_cannot_then_be_read(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.runner import CommandError, Result

    cluster.set_attribute("node2", QUARANTINE, "r1 2026-12-03T02:00:00Z")

    def unreadable(timeout: float | None = None) -> object:
        raise CommandError(Result(("crm_mon",), 102, "", "crm_mon: Connection to cluster failed", 0.0), "crm_mon")

    monkeypatch.setattr(cluster, "state", unreadable)
    text = said(cluster)
    assert text.startswith("node2: quarantine cleared; could not tell whether it is in standby (crm_mon failed"), text
    assert cluster.get_attribute("node2", QUARANTINE) is None
