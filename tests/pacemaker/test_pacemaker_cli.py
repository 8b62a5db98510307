"""``rolling-upgrade status`` and ``unlock --force`` on a copy of a captured CIB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from upgrader import cli
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"


@pytest.fixture
def cib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    copy = tmp_path / "cib.xml"
    shutil.copy(DATA / "cib-node3-offline.xml", copy)
    monkeypatch.setenv("CIB_file", str(copy))
    monkeypatch.setenv("COLUMNS", "200")
    return Cluster(Runner())


def test_status_json(cib: Cluster, situations: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    lock.UpgradeLock(cib, "run-3", "node3", ttl=60).acquire("upgrading")
    assert cli.main(["status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(n["name"], n["online"]) for n in doc["nodes"]] == [("node1", True), ("node2", True), ("node3", False)]
    placement = {r["id"]: r["running_on"] for r in doc["resources"]}
    assert placement == situations["node3-offline"]["placement"]
    assert doc["lock"]["holder"] == "node3" and doc["lock"]["phase"] == "upgrading"
    assert doc["lock"]["stale"] and not doc["lock"]["breakable"] and doc["lock"]["age_seconds"] >= 0


def test_status_table(cib: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "node3" in out and "offline" in out and "app1" in out and "upgrade lock: free" in out


def test_unlock_force_says_what_it_broke(cib: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    lock.UpgradeLock(cib, "run-2", "node2").acquire("verifying")
    assert cli.main(["unlock", "--force"]) == 0
    assert capsys.readouterr().out.startswith("broke the upgrade lock: holder node2, run run-2, pid ")
    assert lock.read(cib) is None


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(["unlock", "--bogus"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
