"""A rolling upgrade killed or stopped mid-way: the next run rolls back what is half done, then finishes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import (TOOL, history, run_leftovers, signal_run, standby_nodes, start_run, versions_served,
                               wait_for_phase)
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ilab() -> Iterator[Lab]:
    with private_lab("k") as the_lab:
        yield the_lab


def rerun(lab: Lab) -> tuple[int, dict]:
    result = node.runner(lab, "node1", timeout=900).call([TOOL, "run", "--yes", "--json"])
    return result.returncode, json.loads(result.stdout)


def assert_nothing_lost(lab: Lab, version: str) -> None:
    assert all(ops.installed_version(lab, n) == version for n in lab.node_names)
    assert versions_served(lab) == {a: version for a in lab.app_names}
    assert standby_nodes(lab) == []
    assert run_leftovers(lab) == []


@pytest.mark.parametrize("phase, version", [("drain", "2"), ("upgrade", "3"), ("fail-over", "4")])
def test_sigkill_then_the_next_run_rolls_back_and_finishes(ilab: Lab, phase: str, version: str) -> None:
    repo.publish(ilab.repo_dir, version)
    ops.refresh_indexes(ilab)
    seen = len(history(ilab))
    run = start_run(ilab)
    entry = wait_for_phase(ilab, run, seen, phase)
    signal_run(ilab, run, "KILL")
    assert lock.read(Cluster(node.runner(ilab, "node1"))) is not None  # the dead run's lock outlives it
    code, doc = rerun(ilab)
    assert code == 0, doc
    assert doc["recovered"][0].startswith(f"found run {entry['run']} interrupted")
    assert_nothing_lost(ilab, version)


def test_sigterm_stops_at_a_safe_point_and_leaves_no_half_done_node(ilab: Lab) -> None:
    repo.publish(ilab.repo_dir, "5")
    ops.refresh_indexes(ilab)
    seen = len(history(ilab))
    run = start_run(ilab)
    wait_for_phase(ilab, run, seen, "drain")
    signal_run(ilab, run, "TERM")
    out, _ = run.communicate()
    doc = json.loads(out)
    assert doc["exit"] == 4 and "stopped at a safe point" in json.dumps(doc)
    assert standby_nodes(ilab) == []  # the drained node was put back, untouched
    assert run_leftovers(ilab) == []  # constraints, marks and the lock are gone
    code, doc = rerun(ilab)
    assert code == 0, doc
    assert doc["recovered"] == []
    assert_nothing_lost(ilab, "5")
