"""The move anatomy's pure parts on a real lab's logs and probes (captured by tests/bench/capture_anatomy.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from upgrader_bench import anatomy

DATA = Path(__file__).parent / "data"
MOVES = sorted(DATA.glob("anatomy-*/move-*.json"))  # 3 applications (one moving at a time) and 12 (four)


def load(path: Path) -> tuple[dict[str, Any], anatomy.Move]:
    doc = json.loads(path.read_text())
    # the nodes' zone; the captures made before it was kept come from a UTC host
    lines = anatomy.parse_log("\n".join(doc["log"]), doc["year"], doc.get("utc_offset", 0))
    return doc, anatomy.actions(lines, doc["moved"]["wall_start"], doc["end"])


def test_each_capture_holds_a_move_of_every_node() -> None:
    assert sorted(p.parent.name for p in MOVES) == ["anatomy-12"] * 3 + ["anatomy-3"] * 3
    assert {p.stem for p in MOVES} == {"move-node1", "move-node2", "move-node3"}


@pytest.mark.parametrize("path", MOVES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_a_moved_group_stops_in_reverse_order_on_its_node_then_starts_in_order_elsewhere(path: Path) -> None:
    doc, move = load(path)
    node = path.stem.removeprefix("move-")
    for app in doc["moved"]["moved"]:
        members = [rid for rid, _ in doc["moved"]["members"][app]]
        mine = sorted((a for a in move.actions if a.resource in members), key=lambda a: a.initiated)
        expected = [(rid, "stop") for rid in reversed(members)] + [(rid, "start") for rid in members]
        assert [(a.resource, a.op) for a in mine] == expected  # the DC's own actions ("locally on") too
        assert {a.node for a in mine if a.op == "stop"} == {node}
        assert len({a.node for a in mine if a.op == "start"} - {node}) == 1
        assert all(a.result == "ok" and a.done is not None and a.exec_s is not None for a in mine)
        for earlier, later in zip(mine, mine[1:]):  # a group is serial: each action ended before the next began
            assert earlier.done <= later.initiated


@pytest.mark.parametrize("path", MOVES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_an_applications_outage_splits_into_parts_that_fit_inside_it(path: Path) -> None:
    doc, move = load(path)
    start, end = doc["moved"]["wall_start"], doc["end"]
    assert move.calculated_at is not None and start <= move.calculated_at <= min(a.initiated for a in move.actions)
    assert move.complete_at is not None and move.idle_at is not None and move.complete_at <= move.idle_at <= end
    for app in doc["moved"]["moved"]:
        span = anatomy.longest_outage([tuple(s) for s in doc["samples"][app]], start, end)
        assert span is not None and start <= span[0] < span[1] <= end
        split = anatomy.application(move, [tuple(m) for m in doc["moved"]["members"][app]], span)
        assert split["actions"] == 2 * len(doc["moved"]["members"][app])
        assert 0 < split["dc_reaction_s"] < end - start
        assert 0 < split["agents_s"] <= split["actions_span_s"] and split["cluster_hops_s"] >= 0
        assert split["down_after_first_action_s"] > 0  # it answered until its container's stop had begun
        assert split["down_after_first_action_s"] < split["actions_span_s"]
        assert abs(split["serving_s"]) < split["outage_s"]


def test_an_application_whose_actions_the_log_does_not_show_is_said_by_name() -> None:
    doc, move = load(MOVES[0])
    with pytest.raises(ValueError, match=r"no-such-ct"):
        anatomy.application(move, [("no-such-ct", "ocf:heartbeat:lxc")], None)


@pytest.mark.parametrize("capture", ["anatomy-3", "anatomy-12"])
def test_the_summary_and_rows_name_every_part_with_its_spread(capture: str) -> None:
    apps, moves, moved = [], [], []
    for path in sorted((DATA / capture).glob("move-*.json")):
        doc, move = load(path)
        moves.append(move)
        moved.append(len(doc["moved"]["moved"]))
        for app in doc["moved"]["moved"]:
            span = anatomy.longest_outage([tuple(s) for s in doc["samples"][app]], doc["moved"]["wall_start"],
                                          doc["end"])
            apps.append({"move": len(moves) - 1,
                         **anatomy.application(move, [tuple(m) for m in doc["moved"]["members"][app]], span)})
    summary = anatomy.summary(apps, moves)
    assert summary["outage_s"]["n"] == len(apps) == sum(moved)
    assert summary["outage_s"]["min"] <= summary["outage_s"]["median"] <= summary["outage_s"]["max"]
    assert {"agent stop lxc s", "agent start lxc s", "agent stop IPaddr2 s", "agent start IPaddr2 s"} <= set(summary)
    # how many moved at once: one application alone is its move's whole span; several overlap, but no more
    # of them than moved, and a move lasts at least as long as its longest application's chain
    parallel = summary["parallel_applications"]
    if max(moved) == 1:
        assert parallel["min"] == pytest.approx(1.0) and parallel["max"] == pytest.approx(1.0)
    else:
        assert 1.0 < parallel["min"] and parallel["max"] <= max(moved)
    assert summary["move_actions_span_s"]["max"] >= summary["actions_span_s"]["max"]
    shown = dict(anatomy.rows({"summary": summary, "floor_lxc_stop_plus_start_s": 0.07}))
    assert len(shown) == sum(1 for key, _ in anatomy.ROWS if key in summary) + 1


def test_the_logs_are_read_on_the_nodes_clock_whatever_zone_the_bench_runs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    utc = [len(load(path)[1].actions) for path in MOVES]
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert [len(load(path)[1].actions) for path in MOVES] == utc and min(utc) >= 4
    finally:
        monkeypatch.undo()
        time.tzset()
