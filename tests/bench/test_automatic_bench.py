"""The automatic scenario's arithmetic and its results file, without a lab: the ratios paired per repetition,
the flag's checks, a merge that keeps every other key, and the lab package set's names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upgrader_bench import __main__ as bench
from upgrader_bench import report
from upgrader_bench.automatic import Measured, summary
from upgrader_lab import repo
from upgrader_lab.layout import LabError


def rep(uu: float, node: float, window: float) -> dict[str, Measured]:
    return {"unattended-upgrades": Measured("unattended-upgrades", uu, uu, parts={
                "standby_s": 3.0, "unattended_upgrade_s": uu - 10, "finishing_step_s": 7.0}),
            "node upgrade": Measured("node upgrade", node, node + 5),
            "window": Measured("window", window, 3 * window, others={"node1": window, "node2": window})}


def test_the_ratios_are_paired_per_repetition() -> None:
    found = summary([rep(90.0, 30.0, 33.0), rep(120.0, 40.0, 40.0), rep(60.0, 20.0, 30.0)], 120, "false")
    ratio = found["automatic_vs_node_upgrade"]
    assert (ratio["median"], ratio["min"], ratio["max"], ratio["n"]) == (pytest.approx(1.1), 1.0, 1.5, 3)
    assert found["unattended_vs_node_upgrade"]["median"] == pytest.approx(3.0)
    assert found["packages"] == 120 and found["minimal_steps"] == "false" and found["target"] == 1.5
    assert found["figures"]["drained_window_every_node_s"]["n"] == 6


def test_the_merge_keeps_every_other_key(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"run_overhead": 1.1, "ratios": {"run_overhead": {"median": 1.1}}, "targets": {}}))
    found = summary([rep(90.0, 30.0, 33.0)], 120, "false")
    bench.merge_automatic(out, found)
    doc = json.loads(out.read_text())
    assert doc["run_overhead"] == 1.1 and doc["ratios"]["run_overhead"] == {"median": 1.1}
    assert doc["automatic_vs_node_upgrade"] == pytest.approx(1.1)
    assert doc["targets"]["automatic_vs_node_upgrade"] == report.TARGETS["automatic_vs_node_upgrade"] == 1.5
    assert doc["automatic"]["node"] == "node2"


def test_the_flag_refuses_a_set_smaller_than_a_point_update(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--automatic-only", "--automatic-packages", "20"]) == 2
    assert "at least 100" in capsys.readouterr().err


def test_the_package_sets_names() -> None:
    assert repo.set_names(3) == ["demo-pkg-001", "demo-pkg-002", "demo-pkg-003"]
    assert len(repo.set_names(120)) == 120 and repo.set_names(120)[-1] == "demo-pkg-120"
    with pytest.raises(LabError, match="out of range"):
        repo.set_names(0)
