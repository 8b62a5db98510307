"""The history file: append-only JSON lines, private, corrupt lines named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from upgrader.history import History, HistoryError


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


@pytest.mark.parametrize("loose", [0o644, 0o666, 0o640, 0o604, 0o700])
def test_an_existing_file_with_looser_modes_is_re_tightened_at_the_next_write(tmp_path: Path, loose: int) -> None:
    state = tmp_path / "state"
    h = History(state / "history.jsonl")
    h.record("r1", "node1", "drain", "start")
    h.path.chmod(loose)  # as left by an older version, a restore from backup or an operator's chmod
    h.record("r1", "node1", "drain", "end")
    assert stat.S_IMODE(h.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert [e["event"] for e in h.entries("r1")] == ["start", "end"]  # appended, nothing lost


def test_a_pre_existing_file_created_world_readable_is_tightened_on_first_write(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"run": "old", "phase": "run", "event": "end"}\n')
    path.chmod(0o666)
    History(path).record("r2", None, "run", "start")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["run"] for e in History(path).entries()] == ["old", "r2"]
