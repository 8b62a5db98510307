"""The concurrency scenario's pure parts: drains read from a history, the ratio, the results file merged."""

from __future__ import annotations

import json
from pathlib import Path

from upgrader_bench import concurrency as c


def test_drains_group_the_nodes_drained_together_and_the_ratio_is_n2_over_n1(tmp_path: Path) -> None:
    events = [{"phase": p, "event": "start", "node": n} for p, n in (
        ("node", "node2"), ("drain", "node2"), ("drain", "node3"), ("upgrade", "node2"), ("upgrade", "node3"),
        ("fail-over", "node2"), ("drain", "node4"), ("upgrade", "node4"))]
    assert c.drains(events) == [["node2", "node3"], ["node4"]]
    found = c.summary([c.ConcurrentRun(1, 100.0), c.ConcurrentRun(2, 60.0), c.ConcurrentRun(2, 70.0),
                       c.ConcurrentRun(1, 100.0)])
    assert found["concurrency_2_vs_1"]["median"] == 0.65 and found["met"] and found["target"] == c.TARGET
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"run_overhead": 1.1, "targets": {"run_overhead": 1.2}}))
    doc = c.merge(out, found)
    assert doc["run_overhead"] == 1.1 and doc["targets"] == {"run_overhead": 1.2}  # the others' keys kept
    assert json.loads(out.read_text())["concurrency_2_vs_1"] == 0.65


def test_the_realistic_size_is_merged_under_its_own_key_beside_the_lab_size(tmp_path: Path) -> None:
    found = c.summary([c.ConcurrentRun(1, 20.0), c.ConcurrentRun(2, 17.0)])
    found["realistic_size"] = c.summary([c.ConcurrentRun(1, 80.0), c.ConcurrentRun(2, 50.0)])
    found["realistic_size"]["postinst_s"] = c.REALISTIC_POSTINST
    assert not found["met"] and found["realistic_size"]["met"]  # 0.85x and 0.625x against 0.65x
    out = tmp_path / "results.json"
    doc = c.merge(out, found)
    assert doc["concurrency_2_vs_1"] == 0.85 and doc["concurrency_2_vs_1_realistic_size"] == 0.625
    assert doc["concurrency"]["realistic_size"]["postinst_s"] == c.REALISTIC_POSTINST
    assert "realistic upgrade size" in found["definition"]
