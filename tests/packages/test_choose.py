"""Choosing what to take: unattended-upgrades' origin patterns, Allowed-Origins and blacklist, --security-only,
the settings and their fallbacks to unattended-upgrades' own keys (Origins-Pattern, Allowed-Origins,
Package-Blacklist), and a Change's origins through its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import apt_pkg
import pytest

from upgrader.config import UNATTENDED_HA_BLACKLIST, Config, ConfigError, from_apt
from upgrader.origins import (KEYS, distro_of, is_local, legacy_pattern, local_distro, os_release,
                              substitute)
from upgrader.packages.choose import (Origin, Selection, allowed, blacklisted, matches, parse_pattern, select,
                                      selection_for)
from upgrader.packages.plan import Change, Plan

TREE = Path(__file__).resolve().parents[2]
DEBIAN = ("Debian", "bookworm")
SECURITY = Origin(origin="Debian", label="Debian-Security", archive="bookworm-security", codename="bookworm-security",
                  component="main", site="deb.debian.org")
MAIN = Origin(origin="Debian", label="Debian", archive="stable", codename="bookworm", component="main",
              site="deb.debian.org")
UPDATES = Origin(origin="Debian", label="Debian", archive="stable-updates", codename="bookworm-updates",
                 component="main", site="deb.debian.org")
LAB = Origin(origin="upgrader-lab", label="upgrader-lab", archive="lab-security", codename="lab-security",
             component="main", site="")
# Debian 12's /etc/apt/apt.conf.d/50unattended-upgrades, its settings (the comments left out).
DEBIAN_UU = """Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
};
Unattended-Upgrade::Package-Blacklist {
};
"""


def pattern(text: str) -> Any:
    return parse_pattern(text, *DEBIAN)


def settings(tmp_path: Path, text: str, *more: Path) -> apt_pkg.Configuration:
    """An APT configuration of its own (never the global one), read from ``more`` files, then ``text``."""
    config = apt_pkg.Configuration()
    for path in more:
        apt_pkg.read_config_file(config, str(path))
    path = tmp_path / "test.conf"
    path.write_text(text)
    apt_pkg.read_config_file(config, str(path))
    return config


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        from_apt(settings(tmp_path, text))
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- patterns, as unattended-upgrades' match_whitelist_string -----------------------------------------------------

@pytest.mark.parametrize("key", sorted(KEYS))
def test_each_key_and_abbreviation_matches_its_own_field(key: str) -> None:
    field = KEYS[key]
    origin = Origin(**{field: "x,y"})
    assert pattern(f"{key}=x\\,y").terms == ((field, "x,y"),)
    assert matches(pattern(f"{key}=x\\,y"), origin)
    assert not matches(pattern(f"{key}=x"), origin)
    assert not matches(pattern(f"{key}=x\\,y"), Origin())


def test_the_keys_are_unattended_upgrades_own_and_case_matters() -> None:
    assert set(KEYS) == {"o", "origin", "l", "label", "a", "suite", "archive", "c", "component", "site", "n",
                         "codename"}
    for bad in ("Origin=Debian", "b=amd64", "release=stable"):
        with pytest.raises(ValueError, match="unknown key"):
            pattern(bad)


def test_every_term_must_match_one_archive() -> None:
    debian_security = pattern("origin=Debian,codename=${distro_codename}-security,label=Debian-Security")
    assert debian_security.terms == (("origin", "Debian"), ("codename", "bookworm-security"),
                                     ("label", "Debian-Security"))
    assert matches(debian_security, SECURITY) and not matches(debian_security, MAIN)
    assert matches(pattern(" origin = Debian , a = stable "), MAIN)  # each side stripped


def test_values_are_fnmatch_wildcards() -> None:
    assert matches(pattern("a=*-security"), SECURITY) and matches(pattern("a=*-security"), LAB)
    assert not matches(pattern("a=*-security"), UPDATES)
    assert matches(pattern("o=Deb?an,n=bookworm*"), UPDATES)
    assert matches(pattern("l=[DU]*"), MAIN) and not matches(pattern("l=[DU]*"), LAB)
    assert matches(pattern("o=*"), Origin())  # "*" matches an empty field too
    assert not matches(pattern("o=debian"), MAIN)  # case matters (fnmatch on Linux)


def test_an_empty_pattern_matches_nothing_and_a_bad_term_is_refused() -> None:
    assert pattern("").terms == () and not matches(pattern("  "), MAIN)
    for bad in ("origin", "o=Debian,", "o=a=b", "o=Debian,,a=stable"):
        with pytest.raises(ValueError, match="is not KEY=VALUE"):
            pattern(bad)


def test_substitution_is_unattended_upgrades_2_9() -> None:
    assert pattern("o=${distro_id},n=$distro_codename").terms == (("origin", "Debian"), ("codename", "bookworm"))
    assert substitute("${distro_id}:${distro_codename}", "Ubuntu", "noble") == "Ubuntu:noble"
    with pytest.raises(ValueError, match=r"\$\{distro_release\} is not known"):
        pattern("n=${distro_release}")  # 2.9 knows only these two (2.10 added distro_release)
    for lone in ("o=US$", "o=a$$-b"):  # "$$" is "$" after the entry's substitution, then the value's fails (as u-u)
        with pytest.raises(ValueError, match="a '\\$' that is not"):
            pattern(lone)


def test_allowed_is_any_origin_by_any_pattern() -> None:
    debian = [pattern("origin=Debian,codename=${distro_codename},label=Debian"), pattern("a=*-security")]
    assert allowed(debian, [MAIN]) and allowed(debian, [UPDATES, SECURITY]) and allowed(debian, [LAB])
    assert not allowed(debian, [UPDATES]) and not allowed(debian, [])
    assert allowed([], [UPDATES]) and allowed([], [])  # no patterns: everything (u-u would take nothing)
    assert not allowed([pattern("")], [MAIN])
    local = Origin(archive="now", component="now")  # dpkg's status: u-u's is_allowed_origin lets it through
    assert is_local(local) and allowed([pattern("o=Debian")], [local])


def test_allowed_origins_entries_become_the_patterns_unattended_upgrades_makes() -> None:
    assert legacy_pattern("${distro_id}:${distro_codename}-security") == "o=${distro_id},a=${distro_codename}-security"
    assert legacy_pattern("Debian stable") == "o=Debian,a=stable"  # no colon: split on spaces
    assert legacy_pattern("Foo\\:Bar:stable") == "o=Foo:Bar,a=stable"  # "\:" is a colon in the origin
    assert legacy_pattern("Foo, Inc.:x,y") == "o=Foo\\, Inc.,a=x\\,y"  # commas escaped
    assert matches(pattern(legacy_pattern("${distro_id}:${distro_codename}-security")), SECURITY)
    for bad in ("a:b:c", "Debian", "Debian stable extra"):
        with pytest.raises(ValueError, match="is not ORIGIN:ARCHIVE"):
            legacy_pattern(bad)


def test_blacklist_is_re_match_from_the_start_of_the_name() -> None:
    assert blacklisted("linux-image-amd64", ["linux-"]) and blacklisted("linux-image-amd64", ["linux-.*"])
    assert not blacklisted("util-linux", ["linux-"])  # re.match: anchored at the start only
    assert blacklisted("foo-dev", ["foo"]) and not blacklisted("foo-dev", ["foo$"])
    assert not blacklisted("foo", []) and not blacklisted("foo", ["^$"])


_UU_SCRIPT = """
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("uu", "/usr/bin/unattended-upgrade")
uu = importlib.util.module_from_spec(importlib.util.spec_from_loader("uu", loader))
loader.exec_module(uu)
origins, patterns = json.loads(sys.stdin.read())
answers = [[uu.match_whitelist_string(uu.substitute(p), type("O", (), o)) for p in patterns] for o in origins]
print(json.dumps({"distro": [uu.DISTRO_ID, uu.DISTRO_CODENAME], "answers": answers}))
"""


@pytest.mark.skipif(not Path("/usr/bin/unattended-upgrade").exists(), reason="unattended-upgrades not installed")
def test_the_same_answers_as_the_installed_unattended_upgrade() -> None:
    """Its own functions, in a child process (bounded), on synthetic origins: never this machine's cache."""
    origins = [MAIN, UPDATES, SECURITY, LAB, Origin(origin="Foo, Inc.", archive="x")]
    patterns = ["origin=Debian,codename=${distro_codename},label=Debian", "a=*-security", "o=Deb?an,n=book*",
                "l=[DU]*", "o=Foo\\, Inc.", " origin = Debian , suite = stable-updates ", "site=deb.*", "c=main",
                "n=${distro_codename}-updates", "o=*,a=x"]
    doc = json.dumps([[vars(o) for o in origins], patterns])
    got = json.loads(subprocess.run([sys.executable, "-c", _UU_SCRIPT], input=doc, capture_output=True, text=True,
                                    timeout=60, check=True).stdout)
    distro = tuple(got["distro"])
    assert distro == local_distro()  # os-release read as lsb_release reads it
    assert got["answers"] == [[matches(parse_pattern(p, *distro), o) for p in patterns] for o in origins]


# --- the distribution, as lsb_release names it ----------------------------------------------------------------------

def test_distro_as_lsb_release_gives_it(tmp_path: Path) -> None:
    debian = os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                        "VERSION_CODENAME=bookworm\nID=debian\n# a comment\nnot a line\n")
    assert debian["NAME"] == "Debian GNU/Linux" and distro_of(debian) == DEBIAN
    assert distro_of({"ID": "ubuntu", "NAME": "Ubuntu", "VERSION_CODENAME": "noble"}) == ("Ubuntu", "noble")
    assert distro_of({"ID": "opensuse-leap", "NAME": "openSUSE Leap"}) == ("Opensuse-leap", "n/a")
    assert distro_of({}) == ("n/a", "n/a")
    first, second = tmp_path / "etc-os-release", tmp_path / "usr-os-release"
    second.write_text("ID=devuan\nVERSION_CODENAME=daedalus\n")
    assert local_distro([first, second]) == ("Devuan", "daedalus")  # the first that exists
    first.write_text("ID='debian'\nVERSION_CODENAME=\"trixie\"\n")
    assert local_distro([first, second]) == ("Debian", "trixie")
    assert local_distro([tmp_path / "none"]) == ("n/a", "n/a")


# --- Selection ------------------------------------------------------------------------------------------------------

def change(package: str = "libfoo1", *, security: bool = False, origins: tuple[Origin, ...] = (MAIN,),
           candidate: str | None = "2") -> Change:
    return Change(package, "1", candidate, security=security, origins=origins)


def test_the_default_selection_takes_everything() -> None:
    assert Selection().take(change(origins=())) is None and Selection().take(change()) is None


def test_take_says_why_not() -> None:
    selection = Selection((pattern("o=Debian,a=stable"), pattern("a=*-security")), ("linux-.*", "foo$"))
    assert selection.take(change()) is None
    assert selection.take(change("linux-image-amd64")) == "blacklisted by 'linux-.*'"
    assert selection.take(change("foo")) == "blacklisted by 'foo$'" and selection.take(change("foo-dev")) is None
    assert selection.take(change(origins=(UPDATES,))) == "origin not allowed by Origins-Pattern"
    assert selection.take(change(origins=(UPDATES, SECURITY))) is None
    assert selection.take(change(origins=())) == ("origin not allowed by Origins-Pattern (its origin is unknown: "
                                                  "planned by an older upgrader)")
    security_only = Selection(security_only=True)
    assert security_only.take(change()) == "not a security update"
    assert security_only.take(change(security=True, origins=(SECURITY,))) is None
    assert Selection(blacklist=("libfoo",), security_only=True).take(change()) == "blacklisted by 'libfoo'"


def test_a_removal_is_always_taken() -> None:
    removal = change("linux-image-old", candidate=None, origins=())
    assert Selection((pattern("o=nobody"),), ("linux-",), security_only=True).take(removal) is None


def test_select_splits_in_order() -> None:
    changes = [change("a"), change("linux-b"), change("c", origins=(UPDATES,)), change("d", security=True)]
    taken, skipped = select(changes, Selection((pattern("o=Debian,a=stable"),), ("linux-",)))
    assert [c.package for c in taken] == ["a", "d"]
    assert [(c.package, why) for c, why in skipped] == [("linux-b", "blacklisted by 'linux-'"),
                                                       ("c", "origin not allowed by Origins-Pattern")]
    assert select([], Selection()) == ([], [])


def test_selection_for_substitutes_this_distro_and_names_a_bad_entry() -> None:
    config = Config(origins_pattern=("o=${distro_id},n=${distro_codename}-security",), package_blacklist=("linux-",))
    selection = selection_for(config, True, distro=("Ubuntu", "noble"))
    assert selection.patterns[0].terms == (("origin", "Ubuntu"), ("codename", "noble-security"))
    assert selection.blacklist == ("linux-",) and selection.security_only is True
    assert selection_for(Config(), distro=DEBIAN) == Selection()
    with pytest.raises(ConfigError, match="^Origins-Pattern: unknown key 'x' in 'x=1'"):
        selection_for(Config(origins_pattern=("x=1",)), distro=DEBIAN)


# --- the settings, and their fallbacks to unattended-upgrades' -----------------------------------------------------

def test_nothing_set_takes_everything(tmp_path: Path) -> None:
    config = from_apt(settings(tmp_path, 'Other::Setting "1";\n'))
    assert (config.origins_pattern, config.package_blacklist, config.update, config.update_timeout) == ((), (), False,
                                                                                                        300)


def test_ours_are_read_and_unattended_upgrades_not_even_looked_at(tmp_path: Path) -> None:
    config = from_apt(settings(tmp_path, """
        Rolling-Upgrade::Origins-Pattern { "o=Debian,a=*-security"; "origin=upgrader-lab"; };
        Rolling-Upgrade::Package-Blacklist { "linux-"; };
        Rolling-Upgrade::Update "yes";
        Rolling-Upgrade::Update-Timeout "10m";
        Unattended-Upgrade::Origins-Pattern { "bad-key=1"; };
        Unattended-Upgrade::Package-Blacklist { "lib("; "vim"; };
    """))
    assert config.origins_pattern == ("o=Debian,a=*-security", "origin=upgrader-lab")
    assert config.package_blacklist == ("linux-",) and config.update is True and config.update_timeout == 600


def test_unattended_upgrades_allowed_origins_then_its_patterns(tmp_path: Path) -> None:
    config = from_apt(settings(tmp_path, DEBIAN_UU + """
        Unattended-Upgrade::Allowed-Origins { "${distro_id}:${distro_codename}-security"; "Foo\\:Bar stable"; };
        Unattended-Upgrade::Package-Blacklist { "linux-"; "pacemaker"; "libqb"; };
    """))
    assert config.origins_pattern == ("o=${distro_id},a=${distro_codename}-security", "o=Foo:Bar,a=stable",
                                      "origin=Debian,codename=${distro_codename},label=Debian",
                                      "origin=Debian,codename=${distro_codename},label=Debian-Security",
                                      "origin=Debian,codename=${distro_codename}-security,label=Debian-Security")
    assert config.package_blacklist == ("linux-",)  # the cluster stack's entries are never inherited
    selection = selection_for(config, distro=DEBIAN)
    assert selection.take(change(origins=(UPDATES,))) == "origin not allowed by Origins-Pattern"
    assert selection.take(change(origins=(SECURITY,))) is None


def test_the_cluster_stack_entries_left_out_are_exactly_what_51rolling_upgrade_unattended_adds(tmp_path: Path) -> None:
    shipped = TREE / "apt.conf.d/51rolling-upgrade-unattended"
    uu = settings(tmp_path, "", shipped)
    assert tuple(uu.value_list("Unattended-Upgrade::Package-Blacklist")) == UNATTENDED_HA_BLACKLIST
    debian = tmp_path / "50unattended-upgrades"
    debian.write_text(DEBIAN_UU)
    config = from_apt(settings(tmp_path, "", debian, shipped))  # a node as make install leaves it
    assert config.package_blacklist == ()
    selection = selection_for(config, distro=DEBIAN)
    assert selection.take(change("pacemaker", origins=(MAIN,))) is None
    assert selection.take(change("libqb100", origins=(SECURITY,))) is None


def test_unattended_upgrades_takes_no_small_steps_on_a_cluster_node(tmp_path: Path) -> None:
    """A node it works on stays drained as long as it runs: the cluster snippet turns MinimalSteps off,
    after Debian's own 50unattended-upgrades (which sorts first and leaves it on)."""
    debian = tmp_path / "50unattended-upgrades"
    debian.write_text(DEBIAN_UU + 'Unattended-Upgrade::MinimalSteps "true";\n')
    uu = settings(tmp_path, "", debian, TREE / "apt.conf.d/51rolling-upgrade-unattended")
    assert uu.find_b("Unattended-Upgrade::MinimalSteps", True) is False


def test_the_lab_takes_its_own_repository_despite_the_hosts_unattended_upgrades(tmp_path: Path) -> None:
    from upgrader_lab.node import LAB_SETTINGS

    debian = tmp_path / "50unattended-upgrades"
    debian.write_text(DEBIAN_UU)
    config = from_apt(settings(tmp_path, LAB_SETTINGS, debian))
    assert config.origins_pattern == ("origin=upgrader-lab",)
    assert selection_for(config, distro=DEBIAN).take(change("demo-libfoo", origins=(LAB,))) is None


@pytest.mark.parametrize("text, message", [
    ('Rolling-Upgrade::Origins-Pattern { "orgin=Debian"; };',
     "Rolling-Upgrade::Origins-Pattern: unknown key 'orgin' in 'orgin=Debian' (use o/origin, a/suite/archive, "
     "c/component, l/label, n/codename or site, as unattended-upgrades does)"),
    ('Rolling-Upgrade::Origins-Pattern { "origin=Debian,"; };',
     "Rolling-Upgrade::Origins-Pattern: '' in 'origin=Debian,' is not KEY=VALUE"),
    ('Rolling-Upgrade::Origins-Pattern { "n=${distro_release}"; };',
     "Rolling-Upgrade::Origins-Pattern: 'n=${distro_release}': ${distro_release} is not known"),
    ('Rolling-Upgrade::Origins-Pattern "origin=Debian";', "Rolling-Upgrade::Origins-Pattern: 'origin=Debian' is a "
                                                          "single value (write a list"),
    ('Unattended-Upgrade::Origins-Pattern { "origin=Debian"; "Origin=Debian"; };',
     "Unattended-Upgrade::Origins-Pattern: unknown key 'Origin' in 'Origin=Debian'"),
    ('Unattended-Upgrade::Allowed-Origins { "Debian:stable:extra"; };',
     "Unattended-Upgrade::Allowed-Origins: 'Debian:stable:extra' is not ORIGIN:ARCHIVE"),
    ('Rolling-Upgrade::Package-Blacklist { "linux-"; "lib(foo"; };',
     "Rolling-Upgrade::Package-Blacklist: 'lib(foo' is not a Python regular expression (missing ), unterminated "
     "subpattern at position 3); an entry is matched at the start of a package name, e.g. 'linux-image-'"),
    ('Unattended-Upgrade::Package-Blacklist { "*vim"; };',
     "Unattended-Upgrade::Package-Blacklist: '*vim' is not a Python regular expression (nothing to repeat"),
    ('Rolling-Upgrade::Update "maybe";', "Rolling-Upgrade::Update: 'maybe' is not a boolean (use true or false)"),
    ('Rolling-Upgrade::Update-Timeout "0";', "Rolling-Upgrade::Update-Timeout: '0' is too short"),
    ('Rolling-Upgrade::Update-Timeout "soon";', "Rolling-Upgrade::Update-Timeout: 'soon' is not a duration"),
    ('Rolling-Upgrade::Origin-Pattern { "o=Debian"; };', "did you mean Rolling-Upgrade::Origins-Pattern?"),
])
def test_bad_values_are_one_line_naming_the_key_and_the_entry(tmp_path: Path, text: str, message: str) -> None:
    assert message in refused(tmp_path, text)


# --- a Change's origins, through plan's JSON --------------------------------------------------------------------

@dataclass
class AptOrigin:
    """The attributes of python-apt's ``apt.package.Origin``."""

    origin: str
    label: str
    archive: str
    codename: str
    component: str
    site: str
    trusted: bool = True


def test_origin_from_python_apt_and_back_from_json() -> None:
    apt_origin = AptOrigin("Debian", "Debian-Security", "bookworm-security", "bookworm-security", "main",
                           "deb.debian.org")
    assert Origin.from_apt(apt_origin) == SECURITY
    assert Origin.from_apt(SimpleNamespace(origin="x", label=None)) == Origin(origin="x")
    assert str(SECURITY) == ("o=Debian,a=bookworm-security,n=bookworm-security,l=Debian-Security,c=main,"
                             "site=deb.debian.org")
    assert Origin.from_json(str(SECURITY)) == SECURITY and Origin.from_json(str(Origin(origin="A, B"))).origin == "A, B"
    assert Origin.from_json({"origin": "Debian", "archive": "stable", "trusted": True}) == Origin("Debian",
                                                                                                  archive="stable")


def test_change_from_json_with_and_without_origins() -> None:
    old = {"package": "libfoo1", "installed": "1", "candidate": "2", "security": True, "ha_stack": False}
    assert Change.from_json(old) == Change("libfoo1", "1", "2", security=True)  # an older upgrader's plan
    assert Change.from_json(old | {"origins": None}).origins == ()
    new = Change("libfoo1", "1", "2", security=True, origins=(SECURITY, LAB))
    document = json.loads(json.dumps(Plan("node1", (new, change("gone", candidate=None, origins=()))).document()))
    assert document["changes"][0]["origins"][0] == {"origin": "Debian", "label": "Debian-Security",
                                                    "archive": "bookworm-security", "codename": "bookworm-security",
                                                    "component": "main", "site": "deb.debian.org"}
    assert [Change.from_json(c) for c in document["changes"]] == [new, change("gone", candidate=None, origins=())]
    # What the run records with default=str (history, --json, the report): each origin in a pattern's syntax.
    recorded = json.loads(json.dumps(new.__dict__, default=str))
    assert recorded["origins"] == [str(SECURITY), str(LAB)] and Change.from_json(recorded) == new


# --- where a run gets its selection ----------------------------------------------------------------------------

def test_run_security_only_reaches_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.cli import parser
    from upgrader.cli import run as runs

    seen: dict[str, Any] = {}
    monkeypatch.setattr(runs, "run", lambda cluster, out, **kwargs: seen.update(kwargs) or 0)
    args = parser().parse_args(["run", "--yes", "--security-only"])
    assert args.func(args, None, None) == 0 and seen["security_only"] is True
    args = parser().parse_args(["run", "--yes"])
    args.func(args, None, None)
    assert seen["security_only"] is False


def test_the_rollout_carries_the_settings_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from upgrader.orchestrator import start

    config = Config(origins_pattern=("origin=upgrader-lab",), package_blacklist=("linux-",),
                    history_file=tmp_path / "history.jsonl")
    monkeypatch.setattr(start.configuration, "load", lambda: config)
    monkeypatch.setattr(start, "own_stack_first", lambda cluster, cfg: None)
    monkeypatch.setattr(start, "Nodes", lambda cfg, local: SimpleNamespace(local=local))
    cluster = SimpleNamespace(local_node=lambda: "node1")
    r = start.rollout(cluster, SimpleNamespace(), checks=object(), security_only=True)  # type: ignore[arg-type]
    assert r.selection == Selection((parse_pattern("origin=upgrader-lab", *local_distro()),), ("linux-",), True)
    plain = start.rollout(cluster, SimpleNamespace(), checks=object())  # type: ignore[arg-type]
    assert plain.selection.security_only is False
