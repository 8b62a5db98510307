"""The benchmarks' pure parts: summaries, outages from probe samples, the ratio table."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrader_bench.report import TARGETS, ratio_rows
from upgrader_bench.stats import Summary, outages, ratio, summarize, verdict


def test_summary_is_median_min_max() -> None:
    assert summarize([3.0, 1.0, 2.0, 10.0]) == Summary(2.5, 1.0, 10.0, 4)
    assert summarize(iter([5.0])) == Summary(5.0, 5.0, 5.0, 1)
    assert summarize([1.23456, 2.0, 3.0]).as_dict(2) == {"median": 2.0, "min": 1.23, "max": 3.0, "n": 3}
    with pytest.raises(ValueError):
        summarize([])


def probes(start: float, pattern: str, period: float = 0.05) -> list[tuple[float, bool]]:
    """One sample per character: '+' answered 200, '-' failed."""
    return [(start + i * period, c == "+") for i, c in enumerate(pattern)]


def test_an_outage_runs_from_the_last_success_to_the_next() -> None:
    samples = probes(10.0, "+++----++++")
    assert outages(samples, 10.0, 11.0) == [pytest.approx(0.25)]  # 10.10 -> 10.35


def test_jitter_without_a_failed_probe_is_no_outage() -> None:
    samples = [(0.0, True), (0.4, True), (0.45, True)]
    assert outages(samples, 0.0, 1.0) == []


def test_two_moves_are_two_outages() -> None:
    samples = probes(0.0, "++--++++---++")
    assert outages(samples, 0.0, 1.0) == [pytest.approx(0.15), pytest.approx(0.2)]


def test_window_keeps_the_success_before_it_as_anchor_and_counts_an_open_outage_to_its_end() -> None:
    samples = probes(0.0, "++++----")  # successes at 0-0.15, failures from 0.2
    assert outages(samples, 0.18, 0.5) == [pytest.approx(0.35)]  # 0.15 -> end 0.5
    assert outages(samples, 0.0, 0.1) == []


def test_outages_ignore_probes_outside_the_window_and_order() -> None:
    samples = list(reversed(probes(0.0, "+-+" + "+" * 10 + "-+")))
    assert outages(samples, 0.3, 1.0) == [pytest.approx(0.1)]


def test_ratio_and_verdict() -> None:
    assert ratio(3.0, 2.0) == 1.5
    with pytest.raises(ValueError):
        ratio(1.0, 0.0)
    assert verdict(1.5, 1.5) == "met" and verdict(1.51, 1.5) == "MISSED"


def test_ratio_table_marks_each_target_met_or_missed_in_a_fixed_order() -> None:
    rows = ratio_rows({"run_overhead": Summary(2.345, 2.0, 3.0, 5),
                       "hook_repeat_vs_crm_mon": Summary(0.84, 0.8, 0.9, 5)})
    assert rows == [("hook_repeat_vs_crm_mon", "0.84x", "0.80-0.90", "5", "<= 1.5x", "met"),
                    ("run_overhead", "2.35x", "2.00-3.00", "5", "<= 1.2x", "MISSED")]
    assert list(TARGETS) == ["hook_repeat_vs_crm_mon", "downtime_vs_bare_standby", "run_overhead",
                             "run_overhead_realistic_size", "health_50_vs_1", "automatic_vs_node_upgrade"]
    realistic = ratio_rows({"run_overhead_realistic_size": Summary(1.189, 1.186, 1.208, 3)})
    assert realistic == [("run_overhead_realistic_size", "1.19x", "1.19-1.21", "3", "<= 1.1x", "MISSED")]


def test_the_bare_dist_upgrade_drops_only_upgraders_hook_entries(tmp_path) -> None:
    import apt_pkg

    from upgrader_bench.innode import without_our_hooks

    shipped = (Path(__file__).resolve().parents[2] / "apt.conf.d" / "20rolling-upgrade-hooks").read_text()
    machine = tmp_path / "machine.conf"
    machine.write_text('DPkg::Pre-Install-Pkgs { "/usr/sbin/dpkg-preconfigure --apt || true"; };\n'
                       'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n')
    before = apt_pkg.Configuration()
    for text in (shipped, machine.read_text()):
        (tmp_path / "part.conf").write_text(text)
        apt_pkg.read_config_file(before, str(tmp_path / "part.conf"))
    assert len(before.value_list("DPkg::Pre-Invoke")) == 1 and len(before.value_list("DPkg::Post-Invoke")) == 2
    (tmp_path / "bare.conf").write_text(without_our_hooks(before))
    apt_pkg.read_config_file(before, str(tmp_path / "bare.conf"))  # as apt-get -c reads it, after the rest
    assert before.value_list("DPkg::Pre-Invoke") == []
    assert before.value_list("DPkg::Post-Invoke") == ["rm -f /var/cache/apt/archives/*.deb || true"]
    assert before.value_list("DPkg::Pre-Install-Pkgs") == ["/usr/sbin/dpkg-preconfigure --apt || true"]


def test_a_main_only_bench_merges_into_the_results_instead_of_replacing_them() -> None:
    """--main-only measures the 3-node lab alone: what it left out stays as the file had it."""
    from upgrader_bench.__main__ import merged

    previous = {"run_overhead": 1.9, "concurrency_2_vs_1": 0.96, "move_anatomy": {"3": {}}, "seed": {"x": 1},
                "ratios": {"run_overhead": {"median": 1.9}, "automatic_vs_node_upgrade": {"median": 0.99}},
                "figures": {"ssh_round_trip_s": {"median": 0.1}, "seed_figure": {"median": 2}},
                "growth": [{"apps": 3, "nodes": 2, "run_seconds": 1}, {"apps": 3, "nodes": 3, "run_seconds": 9}]}
    doc = {"run_overhead": 1.8, "seed": None, "ratios": {"run_overhead": {"median": 1.8}},
           "figures": {"ssh_round_trip_s": {"median": 0.01}},
           "growth": [{"apps": 3, "nodes": 3, "run_seconds": 8}]}
    out = merged(previous, doc, main_only=True)
    assert out["run_overhead"] == 1.8 and out["concurrency_2_vs_1"] == 0.96 and out["move_anatomy"] == {"3": {}}
    assert out["seed"] == {"x": 1}  # not measured by this run: kept
    assert out["ratios"] == {"run_overhead": {"median": 1.8}, "automatic_vs_node_upgrade": {"median": 0.99}}
    assert out["figures"] == {"ssh_round_trip_s": {"median": 0.01}, "seed_figure": {"median": 2}}
    assert out["growth"] == [{"apps": 3, "nodes": 2, "run_seconds": 1}, {"apps": 3, "nodes": 3, "run_seconds": 8}]
    # a whole bench writes what it measured, None included, and keeps only the keys it has not
    full = merged(previous, doc, main_only=False)
    assert full["seed"] is None and full["growth"] == doc["growth"] and full["concurrency_2_vs_1"] == 0.96


def test_the_health_floor_reads_what_every_check_needs_and_each_node_at_once() -> None:
    """The CIB's resources and crm_mon in turn, meanwhile LXC's states on each node; it waits for them all."""
    import threading
    from types import SimpleNamespace

    from upgrader_bench.innode import LXC_STATES, floor_reads

    calls: list[tuple[str, tuple[str, ...]]] = []
    both = threading.Barrier(3, timeout=5)  # the two nodes' lxc-ls run at the same time, beside the main thread

    class Fake:
        def __init__(self, where: str) -> None:
            self.where = where

        def run(self, argv: list[str], timeout: float, what: str) -> None:
            assert timeout > 0 and what
            calls.append((self.where, tuple(argv)))
            if argv == LXC_STATES or argv[0] == "cibadmin":  # all three meet: none waits for another's end
                both.wait()

    seconds = floor_reads(SimpleNamespace(runner=Fake("local")), Fake, ["node1", "node2"])
    assert seconds > 0
    assert sorted(c for c in calls if c[1] == tuple(LXC_STATES)) == [("node1", tuple(LXC_STATES)),
                                                                     ("node2", tuple(LXC_STATES))]
    assert [c[1][0] for c in calls if c[0] == "local"] == ["cibadmin", "crm_mon"]
    assert LXC_STATES[:3] == ["lxc-ls", "--fancy", "--fancy-format"] and "PID" in LXC_STATES[3]
