"""The pin file that keeps a held-back build off a node: its text, read back by apt's own parser and by a
real apt with a private root (nothing of this machine's APT state is read or written), its atomic write,
and when a hold ends."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from upgrader.packages import holds
from upgrader.packages.holds import Hold, HoldError
from upgrader.pacemaker.names import BadValue
from upgrader.runner import Runner

RUN = "20261201T020000-node1-abcdef"
SINCE = "2026-12-01T02:10:00Z"
DEMO = Hold("demo-app", "3", RUN, "node2", SINCE)
LIBSTDCXX = Hold("libstdc++6", "12.2.0-14+deb12u1", RUN, "node2", SINCE)
EPOCH = Hold("libfoo1:i386", "1:2.0~rc1-1", RUN, "node2", SINCE)


def test_one_stanza_per_hold_naming_the_run_the_node_and_the_release_command() -> None:
    assert holds.preferences_text([DEMO]) == (
        "Explanation: rolling-upgrade hold: run 20261201T020000-node1-abcdef, node node2, since "
        "2026-12-01T02:10:00Z; release with rolling-upgrade release-hold demo-app\n"
        "Package: demo-app\nPin: version 3\nPin-Priority: -1\n")
    assert holds.preferences_text([]) == ""


def test_apt_s_own_parser_reads_the_text_back(tmp_path: Path) -> None:
    import apt_pkg

    path = tmp_path / "rolling-upgrade-holds"
    path.write_text(holds.preferences_text([LIBSTDCXX, DEMO, EPOCH, DEMO]))
    with path.open() as f:
        stanzas = [dict(section) for section in apt_pkg.TagFile(f)]
    assert [(s["Package"], s["Pin"], s["Pin-Priority"]) for s in stanzas] == [
        ("demo-app", "version 3", "-1"), ("libfoo1:i386", "version 1:2.0~rc1-1", "-1"),
        ("libstdc++6", "version 12.2.0-14+deb12u1", "-1")]  # sorted, the duplicate once
    assert all(s["Explanation"].endswith(f"rolling-upgrade release-hold {s['Package']}") for s in stanzas)
    assert holds.parse_preferences(path.read_text()) == [DEMO, EPOCH, LIBSTDCXX]


def test_a_hand_edited_file_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "rolling-upgrade-holds"
    path.write_text(holds.preferences_text([DEMO]).replace("Pin-Priority: -1", "Pin-Priority: 1001"))
    with pytest.raises(HoldError) as err:
        holds.read_local(path)
    assert str(err.value) == (f"{path}: stanza 1 is not a hold written by rolling-upgrade; remove the file, then "
                              "'rolling-upgrade holds --sync'")
    path.write_text(holds.preferences_text([DEMO]).replace("Package: demo-app", "Package: demo-app'x"))
    with pytest.raises(HoldError, match="stanza 1"):
        holds.read_local(path)
    assert holds.read_local(tmp_path / "missing") == []


@pytest.mark.parametrize("field, value", [("package", "Demo"), ("package", "a"), ("package", "x y"),
                                          ("version", "3 x"), ("version", "1.2-"), ("version", "a:1"),
                                          ("version", "3\nPin-Priority: 1001"), ("node", "node2'"),
                                          ("run_id", "r 1"), ("since", "yesterday")])
def test_a_hold_with_a_bad_name_version_or_time_cannot_exist(field: str, value: str) -> None:
    good = dict(package="demo-app", version="3", run_id=RUN, node="node2", since=SINCE)
    with pytest.raises(BadValue, match="invalid"):
        Hold(**{**good, field: value})


def test_written_atomically_0644_unchanged_when_equal_removed_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "preferences.d" / "rolling-upgrade-holds"
    assert holds.write_local([DEMO], path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert holds.read_local(path) == [DEMO]
    inode = path.stat().st_ino
    assert holds.write_local([DEMO], path) is False and path.stat().st_ino == inode  # not rewritten
    assert holds.write_local([DEMO, LIBSTDCXX], path) is True and path.stat().st_ino != inode  # renamed over
    assert holds.read_local(path) == [DEMO, LIBSTDCXX]
    assert sorted(p.name for p in path.parent.iterdir()) == ["rolling-upgrade-holds"]  # no copy left
    assert holds.write_local([], path) is True and not path.exists()
    assert holds.write_local([], path) is False


def test_a_failed_write_keeps_the_old_file_and_leaves_no_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rolling-upgrade-holds"
    holds.write_local([DEMO], path)

    def full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(HoldError, match=f"cannot write {path}: No space left on device"):
        holds.write_local([DEMO, LIBSTDCXX], path)
    assert holds.read_local(path) == [DEMO]
    assert [p.name for p in tmp_path.iterdir()] == ["rolling-upgrade-holds"]


def test_a_hold_ends_only_when_a_strictly_newer_version_appears() -> None:
    held = [DEMO, LIBSTDCXX, EPOCH]
    assert holds.expired(held, {}) == []
    assert holds.expired(held, {"demo-app": "3", "libstdc++6": "12.2.0-14"}) == []  # the same, or older
    assert holds.expired(held, {"demo-app": "3.1"}) == [DEMO]
    assert holds.expired(held, {"libfoo1:i386": "2.0-1"}) == []  # no epoch: older than 1:2.0~rc1-1
    assert holds.expired(held, {"libfoo1:i386": "1:2.0-1"}) == [EPOCH]  # ~rc1 sorts before the release
    assert holds.expired(held, {"demo-app": "3~beta"}) == []


def test_the_line_a_sync_prints() -> None:
    assert holds.changes([], [DEMO]) == "pinned demo-app 3"
    assert holds.changes([DEMO], [LIBSTDCXX]) == "pinned libstdc++6 12.2.0-14+deb12u1; unpinned demo-app 3"
    assert holds.changes([DEMO], [DEMO]) == "unchanged (1 hold)"
    assert holds.changes([], []) == "unchanged (0 holds)"


# A real apt, on a root of its own: APT_CONFIG is read before anything else, so with Dir set there apt reads
# its sources, preferences, lists and dpkg status only under tmp_path (apt's own test suite works this way).
# The index is apt's Packages format for a local file: repository; a deb822 text, not CIB XML.
def index(*versions: tuple[str, str]) -> str:
    return "\n".join(f"Package: {p}\nVersion: {v}\nArchitecture: all\nMaintainer: lab <lab@example.org>\n"
                     f"Filename: ./{p}_{v}_all.deb\nSize: 100\nDescription: {p}\n" for p, v in versions)


def status(*installed: tuple[str, str]) -> str:
    return "\n".join(f"Package: {p}\nStatus: install ok installed\nVersion: {v}\nArchitecture: all\n"
                     f"Maintainer: lab <lab@example.org>\nDescription: {p}\n" for p, v in installed)


def private_apt(root: Path, installed: str) -> Runner:
    for d in ("etc/apt/preferences.d", "etc/apt/apt.conf.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial",
              "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt", "repo"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "repo/Packages").write_text(index(("demo-app", "2"), ("demo-app", "3"), ("other", "1.0"), ("other", "1.1")))
    (root / "var/lib/dpkg/status").write_text(status(("demo-app", installed), ("other", "1.0")))
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{root}/repo ./\n")
    (root / "apt.conf").write_text(f'Dir "{root}/";\nDir::State::status "{root}/var/lib/dpkg/status";\n'
                                   'Dir::Bin::methods "/usr/lib/apt/methods/";\nDir::Etc::trusted "/dev/null";\n'
                                   'Dir::Etc::trustedparts "/dev/null";\nAPT::Sandbox::User "root";\n'
                                   'Debug::NoLocking "true";\n')
    apt = Runner(env={"APT_CONFIG": str(root / "apt.conf"), "LC_ALL": "C"}, timeout=60)
    apt.run(["apt-get", "update", "-q"], what="apt-get update on the private root")
    return apt


def policy(apt: Runner, package: str) -> tuple[str, str]:
    out = apt.run(["apt-cache", "policy", package]).stdout
    fields = dict(line.strip().split(": ", 1) for line in out.splitlines()[1:3])
    return fields["Installed"], fields["Candidate"]


needs_apt = pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("apt-cache")), reason="no apt here")


@needs_apt
def test_apt_skips_the_held_build_and_keeps_taking_other_fixes(tmp_path: Path) -> None:
    apt = private_apt(tmp_path, installed="2")
    assert policy(apt, "demo-app") == ("2", "3")  # without the hold, 3 would be installed
    holds.write_local([DEMO], tmp_path / "etc/apt/preferences.d/rolling-upgrade-holds")
    assert policy(apt, "demo-app") == ("2", "2")  # held: nothing to upgrade
    assert policy(apt, "other") == ("1.0", "1.1")  # every other fix still comes
    upgrade = apt.run(["apt-get", "-s", "dist-upgrade"]).stdout
    assert "Inst other [1.0] (1.1" in upgrade and "demo-app" not in upgrade
    holds.write_local([], tmp_path / "etc/apt/preferences.d/rolling-upgrade-holds")
    assert policy(apt, "demo-app") == ("2", "3")  # released


@needs_apt
def test_on_the_node_that_installed_the_held_build_apt_leaves_it_alone(tmp_path: Path) -> None:
    apt = private_apt(tmp_path, installed="3")
    holds.write_local([DEMO], tmp_path / "etc/apt/preferences.d/rolling-upgrade-holds")
    assert policy(apt, "demo-app") == ("3", "(none)")
    upgrade = apt.run(["apt-get", "-s", "dist-upgrade"]).stdout
    assert "demo-app" not in upgrade and "Remv" not in upgrade  # neither upgraded, downgraded nor removed
