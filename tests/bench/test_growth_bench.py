"""Growth in applications and the fixed cost per node, without a lab: the arithmetic, results.json's shape,
the tables, the command line's --growth-only (its results file merged, the labs stubbed out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from upgrader_bench import __main__ as bench
from upgrader_bench import growth, report
from upgrader_bench.scenario import Bare, Run
from upgrader_bench.stats import fixed_cost_per_node, irreducible


def bare(n: str, settle: float, dist: float, health: float, outages: dict[str, list[float]]) -> Bare:
    return Bare(n, settle, dist, health, outages)


def run(seconds: float, outages: dict[str, list[float]], steps: int = 4) -> Run:
    return Run(seconds=seconds, move_steps=steps, upgrade_seconds=[], outages=outages, peak_rss_mib={},
               steps={"settle": seconds / 2})


# One repetition on 3 nodes: medians settle 1.0, health 0.2; dist-upgrades 0.3 + 0.4 + 0.5.
CYCLE = [bare("node1", 1.0, 0.3, 0.2, {"app1": [0.5]}), bare("node2", 0.8, 0.4, 0.1, {"app2": [0.4]}),
         bare("node3", 1.2, 0.5, 0.3, {"app3": [0.5, 0.2]})]


def test_irreducible_is_the_dist_upgrades_plus_each_move_step_at_the_median_bare_move() -> None:
    assert irreducible(CYCLE, run(10.0, {})) == pytest.approx(1.2 + 4 * (1.0 + 0.2))


def test_fixed_cost_per_node_is_the_runs_own_cost_over_the_nodes() -> None:
    found = fixed_cost_per_node([CYCLE, CYCLE], [run(10.0, {}), run(7.0, {}, steps=3)])
    assert found == [pytest.approx((10.0 - 6.0) / 3), pytest.approx((7.0 - 4.8) / 3)]
    assert fixed_cost_per_node([[]], [run(1.0, {})]) == []


def entry(apps: int, wall: float, check: float, plan: float, outage: float = 0.5) -> dict[str, Any]:
    return growth.size_entry(apps, 3, [CYCLE], [run(wall, {"app1": [outage], "app2": [0.4], "app3": [0.1, 0.6]})],
                             [{"seconds": [check, check * 1.1], "floor_seconds": [check / 2, check / 4],
                               "resources": apps, "ok": True, "problems": []}],
                             [plan, plan + 0.2])


def test_a_size_entry_holds_wall_irreducible_own_cost_outages_health_and_plan() -> None:
    e = entry(12, 10.0, 0.2, 1.0)
    assert e["run_wall_s"]["median"] == 10.0 and e["run_irreducible_s"]["median"] == pytest.approx(6.0)
    assert e["own_cost_s"]["median"] == pytest.approx(4.0)
    assert e["fixed_cost_per_node_s"]["median"] == pytest.approx(1.333, abs=1e-3)
    # per app, paired with its own bare move: app1 0.5/0.5, app2 0.4/0.4, app3 0.6/0.5
    assert e["downtime_vs_bare_standby"] == {"median": 1.0, "min": 1.0, "max": 1.2, "n": 3}
    assert e["bare_standby_longest_outage_s"]["max"] == 0.5 and e["run_longest_outage_s"]["max"] == 0.6
    assert e["health_check_all_s"]["n"] == 2 and e["health_check_resources"] == 12
    assert e["health_floor_s"] == {"median": 0.075, "min": 0.05, "max": 0.1, "n": 2}
    # paired, each check with the reads right after it: 0.2 - 0.1 and 0.22 - 0.05
    assert e["health_own_s"]["min"] == pytest.approx(0.1) and e["health_own_s"]["max"] == pytest.approx(0.17)
    assert e["plan_s"] == {"median": 1.1, "min": 1.0, "max": 1.2, "n": 2}
    assert e["bare_move_settle_s"]["median"] == 1.0 and e["bare_move_resources"]["max"] == 1
    assert e["run_steps_s"] == {"settle": 5.0}
    json.dumps(e)  # results.json takes it as it is


def sizes() -> dict[str, dict[str, Any]]:
    return {"12": entry(12, 10.0, 0.2, 1.0), "48": entry(48, 12.0, 0.3, 1.5),
            "120": entry(120, 15.0, 0.5, 2.9, outage=0.6)}


def test_the_ratios_compare_the_largest_size_with_the_smallest_against_the_targets() -> None:
    r = growth.ratios(sizes())
    assert list(r) == list(growth.TARGETS)
    assert r["own_cost_vs_smallest"]["value"] == pytest.approx((15.0 - 6.0) / 4.0)  # 2.25
    assert r["own_cost_vs_smallest"]["verdict"] == "MISSED"
    assert r["health_vs_smallest"]["value"] == pytest.approx(0.5 / 0.2) and r["health_vs_smallest"]["verdict"] == \
        "MISSED"
    assert r["health_own_vs_smallest"]["value"] == pytest.approx(0.5 / 0.2, abs=0.01)  # medians rounded to ms
    assert r["downtime_vs_bare_standby"]["value"] == pytest.approx(1.2)  # app1 0.6/0.5, app2 1.0, app3 1.2
    assert r["plan_s"] == {"value": 3.0, "target": 3.0, "unit": "s", "verdict": "MISSED", "small": 12, "big": 120,
                           "label": "rolling-upgrade plan's wall time at 120 applications"}  # strictly under 3 s
    assert (r["own_cost_vs_smallest"]["small"], r["own_cost_vs_smallest"]["big"]) == (12, 120)


def test_a_missing_figure_or_a_single_size_is_not_measured_rather_than_a_guess() -> None:
    one = growth.ratios({"12": entry(12, 10.0, 0.2, 1.0)})
    assert one["own_cost_vs_smallest"]["verdict"] == "not measured" and one["own_cost_vs_smallest"]["value"] is None
    assert one["plan_s"]["verdict"] == "met"  # at the largest size measured, which is 12 here
    cheap = sizes()
    cheap["12"] = entry(12, 5.0, 0.2, 1.0)  # wall below its irreducible parts: no ratio over it
    assert growth.ratios(cheap)["own_cost_vs_smallest"]["value"] is None
    beaten = sizes()
    beaten["120"] = entry(120, 5.0, 0.5, 2.9)  # the big run beat its irreducible parts: noise, never "met"
    assert beaten["120"]["own_cost_s"]["median"] < 0
    assert (growth.ratios(beaten)["own_cost_vs_smallest"]["value"],
            growth.ratios(beaten)["own_cost_vs_smallest"]["verdict"]) == (None, "not measured")
    assert growth.ratios({}) == {}
    assert growth.verdict(1.1, 1.1) == "met" and growth.verdict(3.0, 3.0, strict=True) == "MISSED"


def test_the_growth_document_and_its_tables() -> None:
    doc = growth.document({"120": entry(120, 15.0, 0.5, 2.7), "12": entry(12, 10.0, 0.2, 1.0)}, 1, 1500.0)
    assert list(doc["sizes"]) == ["12", "120"]
    assert set(doc) == {"nodes", "repetitions", "seconds", "measured_at", "sizes", "ratios", "definition"}
    rows = growth.size_rows(doc)
    assert rows[0] == ("resources checked", "12", "120")
    assert rows[1] == ("run wall s", "10.00 (10.00-10.00)", "15.00 (15.00-15.00)")
    assert [r[0] for r in rows[1:]] == [label for label, _ in growth.SIZE_COLUMNS]
    said = {key: (value, target, verdict) for key, _label, value, target, verdict in growth.ratio_rows(doc)}
    assert said["plan_s"] == ("2.80 s", "< 3 s", "met")  # the median of 2.7 and 2.9
    assert said["own_cost_vs_smallest"] == ("2.25x", "<= 2x", "MISSED")
    console = Console(record=True, width=250)
    for t in growth.tables(doc):
        console.print(t)
    text = console.export_text()
    assert "growth in applications" in text and "own_cost_vs_smallest" in text and "MISSED" in text


def test_fixed_cost_is_a_seconds_row_of_the_headline_table() -> None:
    rows = report.seconds_rows({"fixed_cost_per_node_s": {"median": 1.41, "min": 1.2, "max": 1.6, "n": 7}})
    assert rows == [("fixed_cost_per_node_s", "1.41 s", "1.20-1.60", "7", "<= 0.8 s", "MISSED")]
    assert report.seconds_rows({}) == []
    assert report.SECONDS_TARGETS == {"fixed_cost_per_node_s": 0.8}


def test_growth_only_merges_growth_apps_into_the_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"run_overhead": 2.0, "growth_apps": {"old": True}}))
    asked: list[tuple[Any, int]] = []

    def measured(sizes: Any, reps: int, say: Any) -> dict[str, Any]:
        asked.append((sizes, reps))
        return growth.document({"12": entry(12, 10.0, 0.2, 1.0), "120": entry(120, 15.0, 0.5, 2.9)}, reps, 60.0)

    monkeypatch.setattr(growth, "measure", measured)
    assert bench.main(["--growth-only", "--growth-apps", "120,12", "--growth-apps-reps", "2", "--out", str(out)]) == 0
    assert asked == [((12, 120), 2)]
    doc = json.loads(out.read_text())
    assert doc["run_overhead"] == 2.0 and doc["growth_apps"]["repetitions"] == 2
    assert set(doc["growth_apps"]["ratios"]) == set(growth.TARGETS)


def test_the_full_bench_keeps_the_files_earlier_growth_apps_unless_told_to_measure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = growth.argparse.Namespace(growth_only=False, growth_apps_in_bench=False, out=out)
    assert growth.measured_or_kept(args, print, Console()) is None  # no file yet
    out.write_text(json.dumps({"growth_apps": {"measured_at": "then"}}))
    assert growth.measured_or_kept(args, print, Console()) == {"measured_at": "then"}
    out.write_text("[]")
    assert growth.measured_or_kept(args, print, Console()) is None


def test_the_sizes_argument() -> None:
    assert growth._sizes("120, 12,48,12") == (12, 48, 120)
    for bad in ("", "0,12", "121"):
        with pytest.raises(growth.argparse.ArgumentTypeError):
            growth._sizes(bad)


def test_wider_labs_get_a_longer_settle_deadline_in_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader_bench import innode, scenario

    assert scenario.settle_deadline(3) == scenario.settle_deadline(24) == innode.SETTLE_DEADLINE == 120.0
    assert scenario.settle_deadline(120) == 600.0
    monkeypatch.setattr(innode, "SETTLE_DEADLINE", innode.SETTLE_DEADLINE)
    assert innode.main(["--deadline", "600", "no-such-command"]) == 2
    assert innode.SETTLE_DEADLINE == 600.0


def test_the_bench_report_shows_the_fixed_cost_and_the_growth_tables() -> None:
    doc = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results.json").read_text())
    doc["figures"]["fixed_cost_per_node_s"] = {"median": 0.75, "min": 0.7, "max": 0.9, "n": 7}
    doc["growth_apps"] = growth.document(sizes(), 1, 1500.0)
    console = Console(record=True, width=250)
    report.render(doc, console)
    text = console.export_text()
    assert "fixed_cost_per_node_s" in text and "<= 0.8 s" in text
    assert "growth in applications, measured" in text and "health_vs_smallest" in text


def test_a_size_that_fails_keeps_the_sizes_measured_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager
    from types import SimpleNamespace

    @contextmanager
    def lab_up(name: str, nodes: int, apps: int, say: Any) -> Any:
        yield SimpleNamespace(apps=apps)

    def measure_size(lab: Any, reps: int, say: Any) -> dict[str, Any]:
        if lab.apps == 120:
            raise RuntimeError("the whole health check failed at 120 applications: the patched scan timed out")
        return sizes()[str(lab.apps)]

    monkeypatch.setattr(growth.suite, "lab_up", lab_up)
    monkeypatch.setattr(growth, "measure_size", measure_size)
    said: list[str] = []
    doc = growth.measure((12, 48, 120), 1, said.append)
    assert list(doc["sizes"]) == ["12", "48"] and "patched scan timed out" in doc["failed"]["120"]
    assert doc["ratios"]["plan_s"]["big"] == 48  # the ratios compare what was measured, and say so
    assert any("120 applications: not measured" in line for line in said)
    def down(lab: Any, reps: int, say: Any) -> dict[str, Any]:
        raise ValueError("down")

    monkeypatch.setattr(growth, "measure_size", down)
    with pytest.raises(RuntimeError, match="no size could be measured: 12: down"):
        growth.measure((12,), 1, said.append)


def test_the_runs_own_watch_gives_each_application_its_longest_outage_per_node() -> None:
    from upgrader_bench.scenario import watched

    # the shape of `rolling-upgrade run --json`: each node's result with the longest outage of each resource
    # its moves moved (NodeResult.outages); a node that moved nothing has none
    doc = {"nodes": [{"node": "node2", "outages": {"app2": 0.41, "app5": 0.62}},
                     {"node": "node3", "outages": {"app2": 0.38, "app7": 0.0}}, {"node": "node1", "outages": {}}]}
    assert watched(doc) == {"app2": [0.41, 0.38], "app5": [0.62]}  # app7 watched, never down: no outage
    assert watched({"nodes": []}) == {}
