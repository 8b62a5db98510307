"""The manual pages: generated from the parser and the settings table, committed in debian/, never drifting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from upgrader.cli import parser
from upgrader.cli.manual import command_page, documented, roff, settings_page
from upgrader.config import KEYS

TREE = Path(__file__).resolve().parents[2]
SHIPPED = (TREE / "apt.conf.d/50rolling-upgrade.conf").read_text()
PAGES = {"rolling-upgrade.8": lambda: command_page(parser()),
         "rolling-upgrade.conf.5": lambda: settings_page(SHIPPED)}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_committed_page_is_what_the_generator_makes_now(page: str) -> None:
    assert (TREE / "debian" / page).read_text() == PAGES[page](), (
        f"debian/{page} is stale: regenerate it with python3 -m upgrader.cli.manual "
        + ("command" if page.endswith(".8") else "settings apt.conf.d/50rolling-upgrade.conf"))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_renders_without_a_warning(page: str) -> None:
    got = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(TREE / "debian" / page)],
                         capture_output=True, text=True, timeout=30)
    assert got.returncode == 0 and got.stderr == "", got.stderr
    shown = subprocess.run(["man", "-l", str(TREE / "debian" / page)], capture_output=True, text=True, timeout=30,
                           env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and "SEE ALSO" in shown.stdout, shown.stderr


def test_every_setting_and_every_command_is_in_the_pages() -> None:
    settings = settings_page(SHIPPED)
    assert all(f"\\fBRolling\\-Upgrade::{k.replace('-', chr(92) + '-')}\\fR" in settings for k in KEYS)
    commands = command_page(parser())
    for name in ("status", "unlock", "check", "plan", "run", "node", "resume", "window", "unquarantine", "patched",
                 "holds", "release-hold"):
        assert f".SS\n\\fB{roff(name)}\\fR" in commands, name


def test_a_setting_the_shipped_file_does_not_document_is_refused() -> None:
    without = "\n".join(line for line in SHIPPED.splitlines() if "Rolling-Upgrade::Soak-Time" not in line)
    assert "Soak-Time" not in documented(without)
    with pytest.raises(ValueError, match="not documented in the shipped file: Soak-Time"):
        settings_page(without)


def test_logrotate_reads_the_shipped_rotation_of_our_logs(tmp_path: Path) -> None:
    """logrotate's own parser, in debug mode (nothing is rotated), with a state file of the test's own."""
    got = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "state"), str(TREE / "logrotate.d/upgrader")],
                         capture_output=True, text=True, timeout=30)
    said = got.stdout + got.stderr
    assert got.returncode == 0 and "error" not in said.lower(), said
    assert "/var/log/upgrader/*.log" in said and "/var/log/upgrader/*.jsonl" in said, said


COMPLETE = """source {script}
COMP_WORDS=({words}); COMP_CWORD={cword}
_rolling_upgrade
printf '%s\\n' "${{COMPREPLY[@]}}"
"""


def complete(*words: str) -> list[str]:
    script = COMPLETE.format(script=TREE / "completions/rolling-upgrade", words=" ".join(repr(w) for w in words),
                             cword=len(words) - 1)
    got = subprocess.run(["/bin/bash", "--norc", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"})  # no crm_node (/usr/sbin): node names complete to nothing
    assert got.returncode == 0 and got.stderr == "", got.stderr
    return got.stdout.split()


def test_bash_completes_every_command_and_its_options_from_the_parser() -> None:
    sub = next(a for a in parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    public = {c.dest for c in sub._choices_actions if not (c.help or "").startswith("internal:")}
    assert set(complete("rolling-upgrade", "")) == public | {"--help"}
    for name in public:
        options = {o for a in sub.choices[name]._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        assert set(complete("rolling-upgrade", name, "--")) == options, name
    assert complete("rolling-upgrade", "unquarantine", "") == []  # no cluster here: no node names, no error
    assert complete("rolling-upgrade", "release-hold", "") == []  # no pin file here: no package, no error
