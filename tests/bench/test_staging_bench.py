"""The staging scenario's pure parts: the history records on the trace's clock, drain-to-online per
node, the staging phase, the summary and its table, the setting it writes into the nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from upgrader.config import load
from upgrader_bench import report, scenario, staging, trace
from upgrader_bench.staging import StagedRun, drain_to_online, stage_phase
from upgrader_lab.layout import Lab

PROJECT = str(Path(__file__).resolve().parents[2])


def test_a_history_call_gives_its_node_phase_and_event_however_it_is_called() -> None:
    assert trace.record_fields(("self", "run-1", "node2", "drain", "start"), {"changes": []}) == {
        "node": "node2", "phase": "drain", "event": "start"}
    assert trace.record_fields(("self", "run-1"), {"node": None, "phase": "stage", "event": "note"}) == {
        "node": None, "phase": "stage", "event": "note"}


def test_the_traced_history_lines_carry_their_record(tmp_path: Path) -> None:
    """trace.install as the bench runs it (in a child: it wraps the Runner and time.sleep for good)."""
    code = ("import json, sys; from pathlib import Path; from upgrader_bench import trace; events = []; "
            "trace.install(events, 0.0); from upgrader.history import History; "
            f"h = History(Path({str(tmp_path / 'h.jsonl')!r})); h.record('run-1', 'node2', 'drain', 'start'); "
            "h.record('run-1', None, 'stage', 'note', download=False); print(json.dumps(events))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=PROJECT,
                         check=True).stdout
    doc = {"events": json.loads(out)}
    assert [{k: r[k] for k in ("node", "phase", "event")} for r in trace.records(doc)] == [
        {"node": "node2", "phase": "drain", "event": "start"}, {"node": None, "phase": "stage", "event": "note"}]
    assert trace.breakdown({"seconds": 1.0, **doc})[trace.HISTORY] >= 0  # still a step of the breakdown


def rec(at: float, node: str | None, phase: str, event: str) -> dict:
    return {"at": at, "node": node, "phase": phase, "event": event}


RECORDS = [rec(0.5, None, "run", "start"), rec(1.0, None, "stage", "start"), rec(1.1, None, "stage", "note"),
           rec(13.0, "node2", "stage", "end"), rec(13.01, "node3", "stage", "end"), rec(13.02, "node1", "stage", "end"),
           rec(13.5, "node2", "node", "start"), rec(13.6, "node2", "drain", "start"),
           rec(15.0, "node2", "upgrade", "start"),
           rec(16.0, "node2", "upgrade", "end"), rec(16.1, "node2", "fail-over", "start"),
           rec(17.6, "node2", "node", "end"), rec(18.0, "node3", "node", "start"), rec(18.1, "node3", "drain", "start"),
           rec(21.1, "node3", "node", "end"), rec(21.5, "node1", "drain", "start"), rec(24.0, "node1", "node", "end"),
           rec(24.5, None, "run", "end")]


def test_drain_to_online_runs_from_each_nodes_drain_to_its_end() -> None:
    assert drain_to_online(RECORDS) == {"node2": pytest.approx(4.0), "node3": pytest.approx(3.0),
                                        "node1": pytest.approx(2.5)}
    assert drain_to_online(sorted(RECORDS, key=lambda r: r["at"])[:12]) == {"node2": pytest.approx(4.0)}


def test_the_staging_phase_ends_with_the_first_nodes_end_record() -> None:
    assert stage_phase(RECORDS) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="no staging phase"):
        stage_phase([r for r in RECORDS if r["phase"] != "stage"])


def run(stage: bool, drains: dict[str, float], stage_s: float, upgrade: float, archive: float) -> StagedRun:
    return StagedRun(stage, 30.0, stage_s, drains, {n: upgrade for n in drains}, {n: 1.0 for n in drains},
                     [archive] * 3)


RUNS = [run(True, {"node1": 3.0, "node2": 4.0, "node3": 3.0}, 12.5, 0.9, 12.0),
        run(False, {"node1": 7.5, "node2": 8.0, "node3": 7.5}, 0.8, 5.0, 4.1)]


def test_the_summary_pairs_each_node_without_staging_with_itself_with_staging() -> None:
    found = staging.summary(RUNS, 1 << 20, 4 << 20)
    assert found["repetitions"] == 1 and found["nodes"] == 3
    assert found["drain_to_online_unstaged_vs_staged"] == {"median": 2.5, "min": 2.0, "max": 2.5, "n": 3}
    assert found["per_node"]["node2"] == {"staged_s": [4.0], "unstaged_s": [8.0]}
    figures = found["figures"]
    assert figures["stage_phase_staged_s (every node downloads)"]["median"] == 12.5
    assert figures["drain_to_online_unstaged_s (per node)"] == {"median": 7.5, "min": 7.5, "max": 8.0, "n": 3}
    assert figures["archive_download_unstaged_s (per archive, server side)"]["median"] == 4.1
    json.dumps(found)  # it goes into results.json as it is


def test_the_staging_table_says_each_node_and_the_ratio() -> None:
    found = staging.summary(RUNS, 1 << 20, 4 << 20)
    rows = report.staging_rows(found)
    assert rows[:3] == [("node1: drain to online s", "3.00", "7.50", "2.50x"),
                        ("node2: drain to online s", "4.00", "8.00", "2.00x"),
                        ("node3: drain to online s", "3.00", "7.50", "2.50x")]
    assert rows[3] == ("staging phase s (wall)", "12.50", "0.80", "0.06x")
    out = Console(record=True, width=140)
    out.print(report.staging_table(found))
    text = out.export_text()
    assert "4.0 MiB package" in text and "Stage false / true: 2.50x (2.00-2.50, 3 pairs)" in text


def test_render_shows_the_staging_table_only_when_there_is_one() -> None:
    doc = {"cpus": 2, "seconds": 60.0, "ratios": {}, "figures": {}, "growth": [], "definitions": []}
    plain = Console(record=True, width=140)
    report.render(doc, plain)
    assert "staging:" not in plain.export_text()
    staged = Console(record=True, width=140)
    report.render({**doc, "staging": staging.summary(RUNS, 1 << 20, 4 << 20)}, staged)
    assert "staging:" in staged.export_text()


@pytest.mark.parametrize("stage", [True, False])
def test_the_setting_written_into_the_nodes_is_read_as_meant(tmp_path: Path, stage: bool) -> None:
    (tmp_path / Path(staging.SETTING).name).write_text(staging.setting(stage))
    assert load(tmp_path, main_file=None).stage is stage


def test_versions_publish_the_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[tuple[str, dict]] = []
    monkeypatch.setattr(scenario.repo, "publish", lambda repo, version, **kw: published.append((version, kw)))
    monkeypatch.setattr(scenario.ops, "refresh_indexes", lambda lab: [])
    versions = scenario.Versions(padding_bytes=4 << 20)
    assert versions.publish(Lab(name="nolabx")) == "2"
    assert published == [("2", {"postinst_sleep": 0.0, "padding_bytes": 4 << 20})]


def test_the_bench_refuses_staging_options_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader_bench import suite
    from upgrader_bench.__main__ import main

    def no_lab(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bad option must be refused before any lab comes up")

    monkeypatch.setattr(suite, "lab_up", no_lab)
    for argv in (["--staging-only", "--staging-reps", "0"], ["--staging-only", "--staging-rate", "10"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
