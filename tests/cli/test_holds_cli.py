"""``holds``, ``holds --sync``, ``release-hold`` and the holds in ``status``, on a copy of a captured CIB
(CIB_file, Pacemaker's real tools); the pin file in tmp_path; every node's sync scripted."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from upgrader import cli
from upgrader.cli import holds as holds_command
from upgrader.cli import status as status_command
from upgrader.packages import holds as local
from upgrader.pacemaker import holds as store
from upgrader.pacemaker.holds import Hold
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
RUN = "20261201T020000-node1-abcdef"
SINCE = "2026-12-01T02:10:00Z"
DEMO = Hold("demo-app", "3", RUN, "node2", SINCE)
LIBSTDCXX = Hold("libstdc++6", "12.2.0-14+deb12u1", RUN, "node2", SINCE)


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    cib = tmp_path / "cib.xml"
    shutil.copy(DATA / "cib-all-online.xml", cib)
    return Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[Cluster]:
    """Every node's sync, scripted: one line per node of the captured cluster."""
    asked: list[Cluster] = []

    def everywhere(cluster: Cluster) -> list[str]:
        asked.append(cluster)
        return ["node1: unpinned demo-app 3", "node2: unpinned demo-app 3", "node3: holds not synced (ssh: "
                "connect to host node3 port 22: No route to host); run 'rolling-upgrade holds --sync' on node3 "
                "once it answers"]

    monkeypatch.setattr(holds_command, "_sync_everywhere", everywhere)
    return asked


def console() -> Console:
    return Console(file=io.StringIO(), width=250)


def printed(out: Console) -> str:
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def test_sync_writes_the_cib_s_holds_here_and_says_what_changed(cluster: Cluster, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pins = tmp_path / "preferences.d" / "rolling-upgrade-holds"
    assert holds_command.sync(cluster, pins) == 0 and capsys.readouterr().out == "unchanged (0 holds)\n"
    assert not pins.exists()
    store.add(cluster, [DEMO, LIBSTDCXX])
    assert holds_command.sync(cluster, pins) == 0
    assert capsys.readouterr().out == "pinned demo-app 3, libstdc++6 12.2.0-14+deb12u1\n"
    assert local.read_local(pins) == [DEMO, LIBSTDCXX]
    assert holds_command.sync(cluster, pins) == 0 and capsys.readouterr().out == "unchanged (2 holds)\n"
    store.remove(cluster, ["demo-app"])
    assert holds_command.sync(cluster, pins) == 0 and capsys.readouterr().out == "unpinned demo-app 3\n"
    pins.write_text("Package: *\nPin: release a=unstable\nPin-Priority: 1001\n")  # someone's edit
    assert holds_command.sync(cluster, pins) == 0
    assert capsys.readouterr().out.startswith("pinned libstdc++6 12.2.0-14+deb12u1 (replaced: ")
    assert local.read_local(pins) == [LIBSTDCXX]


def test_a_cib_that_cannot_be_read_leaves_the_pins_as_they_are(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pins = tmp_path / "rolling-upgrade-holds"
    local.write_local([DEMO], pins)
    (tmp_path / "broken.xml").write_text("not a CIB\n")
    broken = Cluster(Runner(env={"CIB_file": str(tmp_path / "broken.xml")}, timeout=10))
    assert holds_command.sync(broken, pins) == 1
    err = capsys.readouterr().err
    assert err.startswith("rolling-upgrade holds --sync: reading the held-back packages failed: ")
    assert err.rstrip().endswith("the pins of this node stay as they are") and len(err.splitlines()) == 1
    assert local.read_local(pins) == [DEMO]


def test_holds_sync_takes_the_short_way_and_the_parser_knows_every_spelling() -> None:
    assert cli._internal(["holds", "--sync"]) is holds_command.sync
    assert cli._internal(["holds", "--sync", "--json"]) is None  # any other spelling: the full parser
    args = cli.parser().parse_args(["release-hold", "demo-app", "libstdc++6"])
    assert (args.packages, args.all) == (["demo-app", "libstdc++6"], False)
    assert cli.parser().parse_args(["release-hold", "--all"]).all
    args = cli.parser().parse_args(["holds", "--json"])
    assert args.json and not args.sync


def test_holds_lists_each_hold(cluster: Cluster) -> None:
    out = console()
    assert holds_command.holds_command(cluster, False, out) == 0 and printed(out) == "no build is held back\n"
    store.add(cluster, [DEMO, LIBSTDCXX])
    out = console()
    holds_command.holds_command(cluster, False, out)
    text = printed(out)
    assert "libstdc++6" in text and "12.2.0-14+deb12u1" in text and RUN in text and SINCE in text
    assert "release with 'rolling-upgrade release-hold PACKAGE...' (or --all)" in text
    out = console()
    holds_command.holds_command(cluster, True, out)
    assert json.loads(printed(out)) == {"holds": [
        {"package": "demo-app", "version": "3", "run": RUN, "node": "node2", "since": SINCE},
        {"package": "libstdc++6", "version": "12.2.0-14+deb12u1", "run": RUN, "node": "node2", "since": SINCE}]}


def test_release_hold_ends_a_hold_and_syncs_every_node(cluster: Cluster, synced: list[Cluster]) -> None:
    store.add(cluster, [DEMO, LIBSTDCXX])
    out = console()
    assert holds_command.release(cluster, ["demo-app"], False, out) == 0
    assert store.read(cluster) == [LIBSTDCXX]
    assert printed(out).splitlines() == [
        f"released demo-app 3 (held since {SINCE}: run {RUN} failed back from it on node2)",
        "node1: unpinned demo-app 3", "node2: unpinned demo-app 3",
        "node3: holds not synced (ssh: connect to host node3 port 22: No route to host); run 'rolling-upgrade holds "
        "--sync' on node3 once it answers"]
    assert synced == [cluster]


def test_release_hold_of_a_package_not_held_is_one_line_and_changes_nothing(
        cluster: Cluster, synced: list[Cluster], capsys: pytest.CaptureFixture[str]) -> None:
    store.add(cluster, [DEMO])
    assert holds_command.release(cluster, ["demo-app", "libfoo"], False, console()) == 2
    assert capsys.readouterr().err == "rolling-upgrade: libfoo is not held back (held: demo-app); nothing was changed\n"
    assert store.read(cluster) == [DEMO] and synced == []
    assert holds_command.release(cluster, [], False, console()) == 2
    assert "takes PACKAGE... or --all, not neither" in capsys.readouterr().err
    assert holds_command.release(cluster, ["demo-app"], True, console()) == 2
    assert "not both" in capsys.readouterr().err
    assert store.read(cluster) == [DEMO]
    assert cli.main(["release-hold", "Not_A_Package"]) == 2  # validated before anything is asked
    assert capsys.readouterr().err.startswith("rolling-upgrade: invalid package name 'Not_A_Package'")


def test_release_hold_all(cluster: Cluster, synced: list[Cluster]) -> None:
    store.add(cluster, [DEMO, LIBSTDCXX])
    out = console()
    assert holds_command.release(cluster, [], True, out) == 0
    assert store.read(cluster) == []
    assert printed(out).splitlines()[:2] == [
        f"released demo-app 3 (held since {SINCE}: run {RUN} failed back from it on node2)",
        f"released libstdc++6 12.2.0-14+deb12u1 (held since {SINCE}: run {RUN} failed back from it on node2)"]
    out = console()
    assert holds_command.release(cluster, [], True, out) == 0  # nothing held: the nodes are synced all the same
    assert printed(out).splitlines()[0] == "no build was held back; nothing to release" and len(synced) == 2


def test_status_shows_the_holds(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_command, "_metrics", lambda cluster: None)  # no metrics file of this machine's
    store.add(cluster, [DEMO])
    out = console()
    assert status_command.status(cluster, False, out) == 0
    assert (f"hold: held back on every node: demo-app 3 (run {RUN} failed back from it on node2 at {SINCE}); "
            "'rolling-upgrade release-hold demo-app' ends it") in printed(out)
    out = console()
    status_command.status(cluster, True, out)
    doc: dict[str, Any] = json.loads(printed(out))
    assert doc["holds"] == [{"package": "demo-app", "version": "3", "run": RUN, "node": "node2", "since": SINCE}]
    assert "holds_error" not in doc


def test_status_and_plan_count_many_holds() -> None:
    many = [Hold(f"lib{i}", "1", RUN, "node2", SINCE) for i in range(8)]
    lines = holds_command.status_lines(many)
    assert len(lines) == 6 and lines[-1] == "and 3 more held back: 'rolling-upgrade holds' lists them"


def test_plan_notes_name_the_holds(cluster: Cluster) -> None:
    from upgrader.cli.plan import plan_notes

    store.add(cluster, [DEMO])
    notes = plan_notes(cluster, cluster.state())
    assert notes[-1] == (f"held back on every node: demo-app 3 (run {RUN} failed back from it on node2 at {SINCE}); "
                         "'rolling-upgrade release-hold demo-app' ends it")
