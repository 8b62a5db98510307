"""The history file: append-only JSON lines, private, corrupt lines named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from upgrader.orchestrator.history import History, HistoryError


def test_records_are_json_lines_in_a_private_file(tmp_path: Path) -> None:
    h = History(tmp_path / "state" / "history.jsonl")
    h.record("r1", "node1", "drain", "start")
    h.record("r1", "node1", "node", "end", result="ok", seconds=12.5)
    h.record("r2", None, "run", "start")
    assert [e["phase"] for e in h.entries("r1")] == ["drain", "node"]
    assert h.entries("r2")[0]["node"] is None
    assert stat.S_IMODE(h.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(h.path.parent.stat().st_mode) == 0o700


def test_node_durations_count_only_successful_node_upgrades(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl")
    h.record("r1", "node1", "node", "end", result="ok", seconds=30.0)
    h.record("r1", "node2", "node", "end", result="failed", seconds=99.0)
    h.record("r2", "node1", "node", "end", result="ok", seconds=40.0)
    assert h.node_durations() == [30.0, 40.0]


def test_a_corrupt_line_is_named_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"run": "r1", "phase": "x"}\n{not json\n')
    with pytest.raises(HistoryError, match=r"h.jsonl line 2 is corrupt"):
        History(path).entries()


def test_missing_file_is_an_empty_history(tmp_path: Path) -> None:
    assert History(tmp_path / "none.jsonl").entries() == []
