"""The automatic path's choice: Rolling-Upgrade::Automatic, the file that makes unattended-upgrades' daily run
stand down (52rolling-upgrade-automatic), as APT reads it after Debian's 20auto-upgrades, ``rolling-upgrade
automatic`` on one node and on every node, and the window's selection under that choice (unattended-upgrades'
origins and blacklist). Temporary APT directories only: never this machine's /etc."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import stat
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import apt_pkg
import pytest

from upgrader import automatic, etcfile
from upgrader import config as configuration
from upgrader.cli import automatic as command
from upgrader.config import UNATTENDED_HA_BLACKLIST, Config, ConfigError, from_apt
from upgrader.guard import install
from upgrader.packages.choose import Origin, selection_for
from upgrader.packages.plan import Change

# Debian 12's 20auto-upgrades as debconf writes it (unattended-upgrades/enable_auto_updates true).
AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
# unattended-upgrades' own choice on the node (as a site's 50unattended-upgrades would have it).
UU = ('Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab,codename=lab-security"; };\n'
      'Unattended-Upgrade::Package-Blacklist { "demo-blocked"; };\n')
WINDOWS = 'Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
SECURITY = Origin(origin="upgrader-lab", label="upgrader-lab", archive="lab-security", codename="lab-security",
                  component="main", site="")
PLAIN = Origin(origin="upgrader-lab", label="upgrader-lab", archive="lab", codename="lab", component="main", site="")


def settings(text: str) -> apt_pkg.Configuration:
    found = apt_pkg.Configuration()
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition(" ")
            found.set(key, value.strip().strip('";'))
    return found


@pytest.fixture()
def etc(tmp_path: Path) -> Path:
    """An apt.conf.d of a cluster node: Debian's 20auto-upgrades, unattended-upgrades' origins and blacklist
    (with the cluster snippet's stack entries), a window."""
    return apt_conf_d(tmp_path)


def apt_conf_d(root: Path) -> Path:
    """:func:`etc`'s apt.conf.d, in ``root``."""
    conf = root / "apt.conf.d"
    conf.mkdir(parents=True)
    (conf / "20auto-upgrades").write_text(AUTO_UPGRADES)
    (conf / "50unattended-upgrades").write_text(UU)
    blacklist = "".join(f'"{e}"; ' for e in UNATTENDED_HA_BLACKLIST)
    (conf / "51rolling-upgrade-unattended").write_text(f"Unattended-Upgrade::Package-Blacklist {{ {blacklist}}};\n"
                                                       'Unattended-Upgrade::MinimalSteps "false";\n')
    (conf / "60rolling-upgrade-local.conf").write_text(WINDOWS)
    return conf


def state(conf: Path) -> automatic.Local:
    return automatic.local_state(conf, None, program=Path("/bin/sh"))  # a program that exists: u-u "installed"


# --- the setting ---------------------------------------------------------------------------------------------

def test_the_setting_defaults_to_unattended_upgrades_and_takes_either_choice() -> None:
    assert Config().automatic == "unattended-upgrades" == from_apt(settings("")).automatic
    assert from_apt(settings('Rolling-Upgrade::Automatic "window"')).automatic == "window"
    assert from_apt(settings('Rolling-Upgrade::Automatic " Window "')).automatic == "window"
    assert from_apt(settings('Rolling-Upgrade::Automatic "unattended-upgrades"')).automatic == "unattended-upgrades"


def test_a_bad_choice_is_one_line_naming_the_key_and_what_to_do() -> None:
    with pytest.raises(ConfigError) as caught:
        from_apt(settings('Rolling-Upgrade::Automatic "cron"'))
    message = str(caught.value)
    assert message.startswith("Rolling-Upgrade::Automatic: 'cron' is not a choice (use unattended-upgrades or window")
    assert "rolling-upgrade automatic CHOICE" in message and "\n" not in message


def test_a_list_where_the_choice_belongs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "60x.conf").write_text('Rolling-Upgrade::Automatic { "window"; };\n')
    with pytest.raises(ConfigError, match=r"Rolling-Upgrade::Automatic: a list or group was given"):
        configuration.load(tmp_path, None)


# --- the file --------------------------------------------------------------------------------------------------

def test_the_file_sets_the_choice_and_turns_unattended_upgrades_daily_run_off() -> None:
    text = automatic.snippet()
    lines = [line for line in text.splitlines() if not line.startswith("//")]
    assert lines == ['Rolling-Upgrade::Automatic "window";', 'APT::Periodic::Unattended-Upgrade "0";']
    assert "rolling-upgrade automatic unattended-upgrades' removes it" in text
    assert automatic.PATH == Path("/etc/apt/apt.conf.d/52rolling-upgrade-automatic")
    assert sorted(["20auto-upgrades", "51rolling-upgrade-unattended", automatic.PATH.name])[-1] == automatic.PATH.name


def test_apt_reading_the_file_after_20auto_upgrades_sees_0(tmp_path: Path) -> None:
    auto, ours = tmp_path / "20auto-upgrades", tmp_path / automatic.PATH.name
    auto.write_text(AUTO_UPGRADES)
    automatic.write_local("window", ours)
    read = apt_pkg.Configuration()
    apt_pkg.read_config_file(read, str(auto))
    assert read.find("APT::Periodic::Unattended-Upgrade") == "1"
    apt_pkg.read_config_file(read, str(ours))
    assert read.find("APT::Periodic::Unattended-Upgrade") == "0"
    assert read.find_i("APT::Periodic::Unattended-Upgrade", 1) == 0  # as apt-config shell gives it to the script
    assert read.find("APT::Periodic::Update-Package-Lists") == "1"  # the lists are still refreshed
    assert from_apt(read).automatic == "window"


def test_apt_reading_the_directory_sees_0_and_the_window(etc: Path) -> None:
    automatic.write_local("window", etc / automatic.PATH.name)
    read = apt_pkg.Configuration()
    apt_pkg.read_config_dir(read, str(etc))
    assert read.find("APT::Periodic::Unattended-Upgrade") == "0" and from_apt(read).automatic == "window"


def test_the_file_is_written_atomically_once_and_removed_for_unattended_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "apt.conf.d" / automatic.PATH.name
    assert automatic.write_local("window", path) is True
    assert path.read_text() == automatic.snippet() and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert automatic.write_local("window", path) is False  # idempotent
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary copy left
    path.write_text('APT::Periodic::Unattended-Upgrade "0";\n')  # a hand edit: replaced by the choice's file
    assert automatic.write_local("window", path) is True and path.read_text() == automatic.snippet()
    assert automatic.write_local("unattended-upgrades", path) is True and not path.exists()
    assert automatic.write_local("unattended-upgrades", path) is False


def test_a_failed_write_leaves_the_old_file_and_no_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / automatic.PATH.name
    path.write_text("// old\n")

    def broken(fd: int, mode: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(etcfile.os, "fchmod", broken)
    with pytest.raises(automatic.AutomaticError, match=r"cannot write .*52rolling-upgrade-automatic: No space left"):
        automatic.write_local("window", path)
    assert path.read_text() == "// old\n" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_an_unknown_choice_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a choice"):
        automatic.write_local("cron", tmp_path / automatic.PATH.name)
    assert not list(tmp_path.iterdir())


# --- this node's state -----------------------------------------------------------------------------------------

def test_by_default_unattended_upgrades_runs_daily_through_the_hooks(etc: Path) -> None:
    now = state(etc)
    assert (now.choice, now.periodic, now.unattended_runs, now.file, now.windows) == \
        ("unattended-upgrades", "1", True, False, 1)
    assert now.problems() == []
    assert now.line().startswith("automatic upgrades: unattended-upgrades through the APT hooks, daily "
                                 '(APT::Periodic::Unattended-Upgrade "1"); the nightly window too (1 set)')


def test_the_window_chosen_stands_unattended_upgrades_down_and_switching_back_restores_it(etc: Path) -> None:
    automatic.write_local("window", etc / automatic.PATH.name)
    now = state(etc)
    assert (now.choice, now.periodic, now.unattended_runs, now.file) == ("window", "0", False, True)
    assert now.problems() == []
    assert now.line() == ('automatic upgrades: the nightly window (Rolling-Upgrade::Automatic "window", 1 window); '
                          "unattended-upgrades' daily run stands down (APT::Periodic::Unattended-Upgrade \"0\")")
    assert now.document() == {"choice": "window", "periodic": "0", "unattended_upgrades_runs": False,
                              "file": str(etc / automatic.PATH.name), "windows": 1, "problems": []}
    automatic.write_local("unattended-upgrades", etc / automatic.PATH.name)
    back = state(etc)
    assert (back.choice, back.periodic, back.unattended_runs, back.file) == ("unattended-upgrades", "1", True, False)


def test_a_later_file_that_turns_unattended_upgrades_back_on_is_a_problem_naming_it(etc: Path) -> None:
    automatic.write_local("window", etc / automatic.PATH.name)
    (etc / "99local").write_text('APT::Periodic::Unattended-Upgrade "1";\n')
    problems = state(etc).problems()
    assert problems == ["Rolling-Upgrade::Automatic is window but APT::Periodic::Unattended-Upgrade is '1' here, so "
                        "unattended-upgrades still upgrades this node every day (a file after "
                        "52rolling-upgrade-automatic sets it again; remove it there)"]


def test_the_window_set_by_hand_without_the_file_is_a_problem_saying_what_to_run(etc: Path) -> None:
    (etc / "60rolling-upgrade-local.conf").write_text(WINDOWS + 'Rolling-Upgrade::Automatic "window";\n')
    (problem,) = state(etc).problems()
    assert "unattended-upgrades still upgrades this node every day" in problem
    assert problem.endswith("is missing; run 'rolling-upgrade automatic window')")


def test_the_window_without_a_window_is_a_problem(etc: Path) -> None:
    (etc / "60rolling-upgrade-local.conf").unlink()
    automatic.write_local("window", etc / automatic.PATH.name)
    (problem,) = state(etc).problems()
    assert problem.startswith("Rolling-Upgrade::Automatic is window but Rolling-Upgrade::Windows has no entry here")


def test_unattended_upgrades_set_again_in_a_later_file_while_the_file_stands_it_down(etc: Path) -> None:
    automatic.write_local("window", etc / automatic.PATH.name)
    (etc / "60rolling-upgrade-local.conf").write_text(WINDOWS + 'Rolling-Upgrade::Automatic "unattended-upgrades";\n')
    now = state(etc)
    assert now.choice == "unattended-upgrades" and not now.unattended_runs
    assert "stands unattended-upgrades down but Rolling-Upgrade::Automatic is unattended-upgrades" in now.problems()[0]


def test_unattended_upgrades_switched_off_by_debconf_or_missing_says_so(etc: Path) -> None:
    (etc / "20auto-upgrades").write_text('APT::Periodic::Update-Package-Lists "1";\n'
                                         'APT::Periodic::Unattended-Upgrade "0";\n')
    assert "unattended-upgrades' daily run is off here (APT::Periodic::Unattended-Upgrade \"0\")" in state(etc).line()
    missing = automatic.local_state(etc, None, program=etc / "no-such-program")
    assert not missing.unattended_runs and "unattended-upgrades is not installed" in missing.line()
    (etc / "20auto-upgrades").write_text(AUTO_UPGRADES + 'APT::Periodic::Enable "0";\n')
    assert not state(etc).unattended_runs


# --- the window's selection under the choice --------------------------------------------------------------------

def test_with_the_window_chosen_a_run_takes_what_unattended_upgrades_would(etc: Path) -> None:
    automatic.write_local("window", etc / automatic.PATH.name)
    cfg = configuration.load(etc, None)
    assert cfg.automatic == "window"
    assert cfg.origins_pattern == ("origin=upgrader-lab,codename=lab-security",)
    assert cfg.package_blacklist == ("demo-blocked",)  # the cluster-stack entries are the run's own to take
    chosen = selection_for(cfg, distro=("Debian", "bookworm"))
    assert chosen.take(Change("demo-libfoo", "1", "2", security=True, origins=(SECURITY,))) is None
    assert chosen.take(Change("demo-tools", "1", "2", origins=(PLAIN,))) == "origin not allowed by Origins-Pattern"
    assert chosen.take(Change("demo-blocked", "1", "2", origins=(SECURITY,))) == "blacklisted by 'demo-blocked'"
    assert chosen.take(Change("resource-agents", "1", "2", origins=(SECURITY,))) is None


def test_the_nightly_window_builds_its_run_with_that_selection(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.orchestrator import start

    automatic.write_local("window", etc / automatic.PATH.name)
    cfg = configuration.load(etc, None)
    monkeypatch.setattr(start.configuration, "load", lambda: cfg)
    monkeypatch.setattr(start, "own_stack_first", lambda cluster, cfg: None)
    monkeypatch.setattr(start, "selection_for", functools.partial(selection_for, distro=("Debian", "bookworm")))
    stub = SimpleNamespace(local_node=lambda: "node1")
    r = start.rollout(stub, SimpleNamespace(), checks=SimpleNamespace())  # type: ignore[arg-type]
    assert r.selection == selection_for(cfg, distro=("Debian", "bookworm")) and len(r.selection.patterns) == 1
    assert r.selection.blacklist == ("demo-blocked",)


# --- rolling-upgrade automatic --local -------------------------------------------------------------------------

@pytest.fixture()
def here(etc: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``automatic --local`` reading and writing the temporary directory instead of /etc/apt."""
    path = etc / automatic.PATH.name
    monkeypatch.setattr(automatic, "local_state",
                        functools.partial(automatic.local_state, etc, None, program=Path("/bin/sh")))
    monkeypatch.setattr(automatic, "write_local", functools.partial(automatic.write_local, path=path))
    return path


def test_local_window_writes_the_file_then_changes_nothing(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.local("window", False) == 0
    said = capsys.readouterr().out.splitlines()
    assert said == ['changed: automatic upgrades: the nightly window (Rolling-Upgrade::Automatic "window", 1 window); '
                    "unattended-upgrades' daily run stands down (APT::Periodic::Unattended-Upgrade \"0\")"]
    assert here.read_text() == automatic.snippet()
    assert command.local("window", True) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["changed"] is False and doc["state"]["periodic"] == "0" and doc["error"] is None
    assert command.local("unattended-upgrades", False) == 0 and not here.exists()
    assert capsys.readouterr().out.startswith("changed: automatic upgrades: unattended-upgrades through the APT hooks")


def test_local_window_without_a_window_is_refused_and_writes_nothing(here: Path, etc: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "60rolling-upgrade-local.conf").unlink()
    assert command.local("window", False) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("rolling-upgrade automatic: refused, nothing changed: Rolling-Upgrade::Windows "
                                   "has no entry")
    assert not here.exists()


def test_local_with_bad_settings_is_refused_naming_the_key(here: Path, etc: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "61typo.conf").write_text('Rolling-Upgrade::Automatic "nightly";\n')
    assert command.local("window", False) == 2
    err = capsys.readouterr().err
    assert "Rolling-Upgrade::Automatic: 'nightly' is not a choice" in err and not here.exists()


def test_local_window_undone_by_a_later_file_exits_1_saying_so(here: Path, etc: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "99local").write_text('APT::Periodic::Unattended-Upgrade "1";\n')
    assert command.local("window", False) == 1
    out = capsys.readouterr().out
    assert "problem: Rolling-Upgrade::Automatic is window but APT::Periodic::Unattended-Upgrade is '1'" in out


# --- rolling-upgrade automatic (every node) --------------------------------------------------------------------

class Cluster:
    def local_node(self) -> str:
        return "node1"

    def state(self) -> Any:
        return SimpleNamespace(nodes=[SimpleNamespace(name=n) for n in ("node1", "node2", "node3")])


def answer(choice: str = "unattended-upgrades", windows: int = 1, changed: bool = False, **more: Any) -> dict[str, Any]:
    periodic = "0" if choice == "window" else "1"
    return {"choice": None, "changed": changed, "error": None, "refused": None,
            "state": {"choice": choice, "periodic": periodic, "unattended_upgrades_runs": periodic == "1",
                      "file": str(automatic.PATH) if choice == "window" else None, "windows": windows,
                      "problems": []}} | more


def every_node(monkeypatch: pytest.MonkeyPatch, first: dict[str, dict[str, Any]],
               then: dict[str, dict[str, Any]] | None = None) -> list[str | None]:
    """``_each`` answering ``first`` for the read-only round and ``then`` for the write; the choices asked."""
    asked: list[str | None] = []

    def each(nodes: Any, names: Any, choice: str | None) -> dict[str, dict[str, Any]]:
        asked.append(choice)
        return first if choice is None else (then or {})

    monkeypatch.setattr(command, "_each", each)
    monkeypatch.setattr(configuration, "load", lambda: Config())
    monkeypatch.setattr("upgrader.orchestrator.remote.tool_path", lambda: "/usr/sbin/rolling-upgrade")
    return asked


def console() -> Any:
    from io import StringIO

    from rich.console import Console

    return Console(file=StringIO(), width=400, highlight=False)


def test_every_node_is_checked_before_any_is_changed(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    asked = every_node(monkeypatch, {"node1": answer(), "node2": answer(windows=0), "node3": answer()})
    assert command.everywhere(Cluster(), "window", False, console()) == 2  # type: ignore[arg-type]
    assert asked == [None]  # nothing was written anywhere
    err = capsys.readouterr().err
    assert err.startswith("rolling-upgrade automatic window: refused, nothing changed on any node: node2: "
                          "Rolling-Upgrade::Windows has no entry") and len(err.splitlines()) == 1


def test_a_node_that_does_not_answer_refuses_the_change(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    asked = every_node(monkeypatch, {"node1": answer(), "node2": {"error": "no answer (exit 255)"},
                                     "node3": answer()})
    assert command.everywhere(Cluster(), "window", False, console()) == 1  # type: ignore[arg-type]
    assert asked == [None] and "node2: no answer (exit 255)" in capsys.readouterr().err


def test_the_window_is_written_on_every_node_and_each_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    written = {n: answer("window", changed=n != "node3") | {"choice": "window"}
               for n in ("node1", "node2", "node3")}
    asked = every_node(monkeypatch, {n: answer() for n in ("node1", "node2", "node3")}, written)
    out = console()
    assert command.everywhere(Cluster(), "window", False, out) == 0  # type: ignore[arg-type]
    assert asked == [None, "window"]
    lines = out.file.getvalue().splitlines()
    assert lines[0] == ("node1: changed: window; unattended-upgrades' daily run stands down "
                        '(APT::Periodic::Unattended-Upgrade "0"); 1 window(s)')
    assert lines[2].startswith("node3: unchanged: window") and len(lines) == 3


def test_a_node_where_the_choice_does_not_hold_is_exit_1_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = answer("window") | {"choice": "window", "error": "Rolling-Upgrade::Automatic is window but ... '1' here"}
    every_node(monkeypatch, {n: answer() for n in ("node1", "node2", "node3")},
               {"node1": answer("window") | {"choice": "window"}, "node2": bad,
                "node3": answer("window") | {"choice": "window"}})
    out = console()
    assert command.everywhere(Cluster(), "window", True, out) == 1  # type: ignore[arg-type]
    doc = json.loads(out.file.getvalue())
    assert doc["nodes"]["node2"]["error"].startswith("Rolling-Upgrade::Automatic is window")


def on_nodes(monkeypatch: pytest.MonkeyPatch, conf: dict[str, Path]) -> None:
    """``_ask`` running the real ``automatic --local --json`` on each node's own apt.conf.d (one at a time)."""
    local_state, write_local, one_at_a_time = automatic.local_state, automatic.write_local, threading.Lock()

    def ask(nodes: Any, node: str, choice: str | None) -> dict[str, Any]:
        with one_at_a_time:
            monkeypatch.setattr(automatic, "local_state",
                                functools.partial(local_state, conf[node], None, program=Path("/bin/sh")))
            monkeypatch.setattr(automatic, "write_local",
                                functools.partial(write_local, path=conf[node] / automatic.PATH.name))
            said = io.StringIO()
            with contextlib.redirect_stdout(said):
                command.local(choice, True)
        return json.loads(said.getvalue())

    monkeypatch.setattr(command, "_ask", ask)
    monkeypatch.setattr(configuration, "load", lambda: Config())
    monkeypatch.setattr("upgrader.orchestrator.remote.tool_path", lambda: "/usr/sbin/rolling-upgrade")


def test_a_write_that_fails_on_one_node_puts_back_the_others_in_one_line_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    conf = {n: apt_conf_d(tmp_path / n) for n in ("node1", "node2", "node3")}
    automatic.write_local("window", conf["node3"] / automatic.PATH.name)  # node3 has it already
    on_nodes(monkeypatch, conf)
    keep, asked = etcfile.keep, []

    def read_only_on_node2(path: Path, text: str | None) -> bool:
        asked.append(path.parent.parent.name)
        if path.parent == conf["node2"]:
            raise OSError(errno.EROFS, "Read-only file system")
        return keep(path, text)

    monkeypatch.setattr(etcfile, "keep", read_only_on_node2)
    files = {n: {p.name: p.read_text() for p in c.iterdir()} for n, c in conf.items()}
    assert command.everywhere(Cluster(), "window", False, console()) == 1  # type: ignore[arg-type]
    assert {n: {p.name: p.read_text() for p in c.iterdir()} for n, c in conf.items()} == files  # nothing changed
    assert sorted(asked) == ["node1", "node1", "node2", "node3"]  # node1 written, then put back
    err = capsys.readouterr().err
    assert err == (f"rolling-upgrade automatic window: {automatic.PATH} not written on every node, nothing changed "
                   f"on any node (put back on node1): node2: cannot write {conf['node2'] / automatic.PATH.name}: "
                   "Read-only file system\n")
    out = console()
    assert command.everywhere(Cluster(), "window", True, out) == 1  # type: ignore[arg-type]
    doc = json.loads(out.file.getvalue())
    assert doc["error"] == err.split(": ", 1)[1].rstrip() and list(doc["put_back"]) == ["node1"]
    assert doc["put_back"]["node1"]["changed"] is True and doc["nodes"]["node3"]["changed"] is False
    assert {n: {p.name: p.read_text() for p in c.iterdir()} for n, c in conf.items()} == files


def test_a_node_that_cannot_be_put_back_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    failed = answer() | {"choice": "window", "error": f"cannot write {automatic.PATH}: Read-only file system"}
    asked = every_node(monkeypatch, {n: answer() for n in ("node1", "node2", "node3")},
                       {"node1": answer("window", changed=True) | {"choice": "window"}, "node2": failed,
                        "node3": {"error": "not reached (TimeoutError: timed out)"}})
    monkeypatch.setattr(command, "_on_each", lambda nodes, back: {
        "node1": answer(), "node3": {"error": "not reached (TimeoutError: timed out)"}} if back == {
        "node1": "unattended-upgrades", "node3": "unattended-upgrades"} else {})
    assert command.everywhere(Cluster(), "window", False, console()) == 1  # type: ignore[arg-type]
    assert asked == [None, "window"]
    err = capsys.readouterr().err
    assert err == (f"rolling-upgrade automatic window: {automatic.PATH} not written on every node (node2: cannot "
                   f"write {automatic.PATH}: Read-only file system; node3: not reached (TimeoutError: timed out)) "
                   "and not put back on every node it changed (node3: not reached (TimeoutError: timed out)): "
                   "fix it there, then 'rolling-upgrade automatic window' again\n")


def test_without_a_choice_every_nodes_state_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = every_node(monkeypatch, {"node1": answer("window"), "node2": answer(), "node3": {"error": "not reached"}})
    out = console()
    assert command.everywhere(Cluster(), None, False, out) == 0  # type: ignore[arg-type]
    text = out.file.getvalue()
    assert asked == [None] and "node1: window; unattended-upgrades' daily run stands down" in text
    assert "node2: unattended-upgrades; unattended-upgrades' daily run runs daily" in text
    assert "node3: error: not reached" in text


# --- status and plan, make install -----------------------------------------------------------------------------

def test_status_lines_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> automatic.Local:
        raise ConfigError("Rolling-Upgrade::Automatic: 'x' is not a choice")

    monkeypatch.setattr(automatic, "local_state", broken)
    assert command.status_lines() == ["automatic upgrades: the settings here cannot be read "
                                      "(Rolling-Upgrade::Automatic: 'x' is not a choice)"]
    assert command.status_document() is None


def test_status_lines_name_the_path_and_its_problems(here: Path, etc: Path) -> None:
    automatic.write_local("window")
    (etc / "99local").write_text('APT::Periodic::Unattended-Upgrade "1";\n')
    lines = command.status_lines()
    assert lines[0].startswith("automatic upgrades: the nightly window") and "still runs" in lines[0]
    assert lines[1].startswith("problem: Rolling-Upgrade::Automatic is window but")


def test_make_installs_uninstall_removes_the_choices_file_too(tmp_path: Path) -> None:
    assert Path("/") / install.AUTOMATIC == automatic.PATH
    target = tmp_path / install.AUTOMATIC
    target.parent.mkdir(parents=True)
    target.write_text(automatic.snippet())
    assert target in install.uninstall(tmp_path) and not target.exists()
