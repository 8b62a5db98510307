"""Staging with Rolling-Upgrade::Stage on and off: the set always frozen, recorded and kept on every node;
downloaded before the first drain only when Stage is on (off: ``stage --no-download``)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AheadNoted
from upgrader import cli
from upgrader.config import Config
from upgrader.history import History
from upgrader.orchestrator import staging
from upgrader.orchestrator.context import NodeResult
from upgrader.orchestrator.procedure import Rollout
from upgrader.orchestrator.remote import Nodes, StageResult
from upgrader.packages.pkgset import PackageSet, Pinned
from upgrader.packages.plan import Change

RUN_ID = "20261201T000000-node1-abcdef"
SET = PackageSet((Pinned("demo-libfoo", "2", "upgrader-lab lab"),))
CHANGE = Change("demo-libfoo", "1", "2")


class FakeNodes(AheadNoted):
    """Each node stages what it is asked, recorded with the download flag."""

    local = "node1"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def stage(self, node: str, pkgset: PackageSet, on_event: Any, timeout: float = 3600,
              download: bool = True) -> StageResult:
        self.calls.append((node, pkgset.digest, download))
        return StageResult(node, "staged", None, (CHANGE,), 0.5)


class Said:
    def __init__(self) -> None:
        self.steps: list[tuple[str | None, str, str]] = []

    def step(self, node: str | None, phase: str, text: str) -> None:
        self.steps.append((node, phase, text))

    def progress(self, node: str, event: dict) -> None: ...


class FreshLock:
    def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> None: ...


@pytest.fixture(autouse=True)
def sets_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The orchestrating node keeps the set too: here, never in the machine's /var/lib/upgrader."""
    from upgrader.packages import pkgset

    monkeypatch.setattr(pkgset, "SETS_DIR", tmp_path / "sets")


def staged(tmp_path: Path, stage: bool) -> tuple[dict, FakeNodes, Said, History]:
    nodes, said, history = FakeNodes(), Said(), History(tmp_path / "history.jsonl")
    r = Rollout(None, nodes, checks=None, config=Config(stage=stage),  # type: ignore[arg-type]
                history=history, report=said, run_id=RUN_ID)
    r.lock = FreshLock()  # type: ignore[assignment]
    r.package_set = SET
    r.results = {n: NodeResult(n) for n in ("node1", "node2", "node3")}
    return staging.stage(r, ["node2", "node3", "node1"]), nodes, said, history


def test_stage_on_downloads_on_every_node_and_says_so(tmp_path: Path) -> None:
    ready, nodes, said, history = staged(tmp_path, stage=True)
    assert list(ready) == ["node2", "node3", "node1"]
    assert sorted(nodes.calls) == [(n, SET.digest, True) for n in ("node1", "node2", "node3")]
    note = next(e for e in history.entries() if (e["phase"], e["event"]) == ("stage", "note"))
    assert note["download"] is True and note["digest"] == SET.digest
    assert [t for n, p, t in said.steps if p == "stage"][0].endswith("downloaded in 0.5s")


def test_stage_off_still_freezes_records_and_sends_the_set_but_downloads_nothing(tmp_path: Path) -> None:
    ready, nodes, said, history = staged(tmp_path, stage=False)
    assert list(ready) == ["node2", "node3", "node1"]  # every node still has the set (apply --set DIGEST needs it)
    assert sorted(nodes.calls) == [(n, SET.digest, False) for n in ("node1", "node2", "node3")]
    events = history.entries(RUN_ID)
    note = next(e for e in events if (e["phase"], e["event"]) == ("stage", "note"))
    assert note["download"] is False
    assert note["packages"] == [{"package": "demo-libfoo", "version": "2", "origin": "upgrader-lab lab"}]
    assert [e["node"] for e in events if (e["phase"], e["event"]) == ("stage", "end")] == ["node2", "node3", "node1"]
    assert all(t.endswith("kept, to download at its turn (Stage is off)") for n, p, t in said.steps if p == "stage")


def _fake_tool(tmp_path: Path) -> Path:
    """A stand-in for rolling-upgrade on the node: notes its argv and stdin, answers one result line."""
    tool = tmp_path / "rolling-upgrade"
    tool.write_text("#!/bin/sh\n"
                    f"echo \"$@\" > {tmp_path}/argv\n"
                    f"cat > {tmp_path}/stdin\n"
                    "echo '{\"event\": \"result\", \"ok\": true, \"result\": \"staged\", \"changes\": []}'\n")
    tool.chmod(0o755)
    return tool


@pytest.mark.parametrize("download, argv", [(True, "stage --events"), (False, "stage --events --no-download")])
def test_nodes_stage_asks_the_node_for_no_download_only_when_told(tmp_path: Path, download: bool, argv: str) -> None:
    nodes = Nodes(Config(), local="node1", tool=str(_fake_tool(tmp_path)))
    got = nodes.stage("node1", SET, lambda e: None, timeout=30, download=download)
    assert got.ok and got.result == "staged"
    assert (tmp_path / "argv").read_text().strip() == argv
    assert json.loads((tmp_path / "stdin").read_text()) == SET.document()


def test_the_no_download_spelling_takes_the_fast_path_and_the_parser_knows_it_too() -> None:
    assert cli._internal(["stage", "--events", "--no-download"]) is not None
    assert cli._internal(["stage", "--no-download"]) is None  # any other spelling: the full parser
    args = cli.parser().parse_args(["stage", "--events", "--no-download"])
    assert args.no_download is True
    assert cli.parser().parse_args(["stage", "--events"]).no_download is False


@pytest.mark.parametrize("argv, download", [(["stage", "--events"], True),
                                            (["stage", "--events", "--no-download"], False)])
def test_the_stage_command_keeps_the_set_and_passes_the_flag(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str],
                                                             argv: list[str], download: bool) -> None:
    from upgrader.packages import pkgset
    from upgrader.packages import run as package_run
    from upgrader.packages.run import UpgradeReport

    kept: list[str] = []
    asked: list[bool] = []
    monkeypatch.setattr(pkgset, "save", lambda s: kept.append(s.digest))
    monkeypatch.setattr(package_run, "stage_node", lambda s, progress, download=True: asked.append(download)
                        or UpgradeReport("staged", "", (CHANGE,)))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(SET.document())))
    assert cli._internal(argv)() == 0
    assert kept == [SET.digest] and asked == [download]
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["ok"] and result["result"] == "staged"


class FakeCache:
    """What stage_node asks of python-apt's cache once the set is marked; fetching must not happen."""

    def __init__(self) -> None:
        self.fetched = False

    def __contains__(self, name: str) -> bool:
        return False

    def fetch_archives(self, progress: Any = None) -> None:
        self.fetched = True


@pytest.mark.parametrize("download", [True, False])
def test_stage_node_fetches_the_archives_only_with_download(monkeypatch: pytest.MonkeyPatch, download: bool) -> None:
    import apt

    from upgrader.packages import run as package_run

    cache = FakeCache()
    monkeypatch.setattr(apt, "Cache", lambda: cache)
    marked: list[PackageSet] = []
    monkeypatch.setattr(package_run, "mark_set", lambda c, s: marked.append(s) or (CHANGE,))
    report = package_run.stage_node(SET, None, download=download)
    assert marked == [SET]  # checked either way: the set can be installed here
    assert report.result == "staged" and report.changes == (CHANGE,)
    assert cache.fetched is download


def test_a_run_whose_every_node_was_deferred_at_staging_is_refused_not_done(tmp_path: Path) -> None:
    from upgrader.orchestrator.context import Result
    from upgrader.orchestrator.outcome import Refused

    r = Rollout(None, FakeNodes(), checks=None, config=Config(),  # type: ignore[arg-type]
                history=History(tmp_path / "history.jsonl"), report=Said(), run_id=RUN_ID)
    r.results = {"node1": NodeResult("node1", Result.UP_TO_DATE),
                 "node2": NodeResult("node2", Result.DEFERRED, error="libnew 1 would be removed, which no node's "
                                     "plan showed"),
                 "node3": NodeResult("node3", Result.DEFERRED, error="its candidates are older than the run's set")}
    with pytest.raises(Refused, match=r"no node can take the run's package set, nothing was drained: node2: libnew "
                                      r"1 would be removed.*; node3: its candidates are older"):
        r.refuse_all_deferred([])
    r.refuse_all_deferred(["node1"])  # one node still goes ahead: the others wait for a later run, exit 0
    r.results = {"node1": NodeResult("node1", Result.UP_TO_DATE)}
    r.refuse_all_deferred([])  # nothing deferred: nothing to refuse (the set had nothing to install)
