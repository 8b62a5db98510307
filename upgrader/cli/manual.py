"""The manual pages, generated: ``rolling-upgrade(8)`` from the command line's own parser, and
``rolling-upgrade.conf(5)`` from the settings table the configuration parser uses (:data:`upgrader.config.KEYS`)
and the shipped ``50rolling-upgrade.conf``, where each setting is documented above its default.

``python3 -m upgrader.cli.manual command|settings SHIPPED_CONF`` prints one page (roff). The pages in
``debian/`` are its output; a test regenerates them and fails when they differ, so they cannot drift from
the parser or the settings.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DATE = "2026-12-01"
SOURCE = "upgrader"
EXIT_CODES = (("0", "done (every node upgraded, or nothing to do)"), ("1", "failed back: a health check failed "
              "after a move; the resources run on old packages again, the suspect node is quarantined"),
              ("2", "usage: a bad option, setting or node name (one line says which)"),
              ("3", "refused: nothing was changed (the line says why)"),
              ("4", "needs a person: the run stopped part way; the line says what is left and what to do"))


def roff(text: str) -> str:
    """Text safe in a roff line: backslashes and a leading dot or quote escaped, dashes as minus signs."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _header(name: str, section: str, title: str) -> list[str]:
    return [f'.TH {name.upper()} {section} "{DATE}" "{SOURCE}" "{title}"', ".SH NAME",
            f"{roff(name)} \\- {roff(title[0].lower() + title[1:])}"]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:  # argparse's own record of every option
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        flags = ", ".join(f"\\fB{roff(o)}\\fR" for o in action.option_strings)
        arg = f" \\fI{roff(action.metavar or action.dest.upper())}\\fR" if action.nargs != 0 else ""
        lines += [".TP", flags + arg, roff(action.help or "")]
    return lines


def command_page(parser: argparse.ArgumentParser) -> str:
    """rolling-upgrade(8): every subcommand with its help, its arguments and options, the exit codes."""
    lines = _header("rolling-upgrade", "8", "Rolling host upgrades")
    lines += [".SH SYNOPSIS", "\\fBrolling\\-upgrade\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]", ".SH DESCRIPTION",
              roff("Patches the hosts of a Pacemaker cluster node by node without taking its containers down: "
                   "each node is put in standby, dist-upgraded, its resources failed over onto it and "
                   "health-checked, and failed back to an untouched node if anything is wrong. APT hooks guard "
                   "every other apt run on the node, and a cron entry runs the nightly patch window."),
              ".SH COMMANDS"]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, command in sub.choices.items():
        positional = [a for a in command._actions if not a.option_strings]
        words = " ".join(f"\\fI{roff(a.metavar or a.dest.upper())}\\fR" for a in positional)
        lines += [".SS", f"\\fB{roff(name)}\\fR {words}".rstrip(), roff(helps.get(name) or "")]
        for a in positional:
            if a.help:
                lines += [".TP", f"\\fI{roff(a.metavar or a.dest.upper())}\\fR", roff(a.help)]
        lines += _options(command)
    lines += [".SH EXIT STATUS", roff("For run, node, window and finishing steps:")]
    for code, meaning in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    lines += [".SH FILES", ".TP", "\\fI/etc/apt/apt.conf.d/50rolling\\-upgrade.conf\\fR",
              roff("every setting, commented out, with its default: see rolling-upgrade.conf(5)"),
              ".TP", "\\fI/var/lib/upgrader/history.jsonl\\fR", roff("one JSON line per phase of every run"),
              ".TP", "\\fI/var/log/upgrader/\\fR", roff("the APT hooks' events and the finishing step's log"),
              ".TP", "\\fI/etc/apt/preferences.d/rolling\\-upgrade\\-holds\\fR",
              roff("this node's APT pins of the builds held back after a fail back (Pin-Priority -1: never "
                   "installed), written from the CIB by holds --sync; see holds and release-hold"),
              ".TP", "\\fI/etc/apt/apt.conf.d/52rolling\\-upgrade\\-automatic\\fR",
              roff("written by 'automatic window' on every node: Rolling-Upgrade::Automatic \"window\" and "
                   "APT::Periodic::Unattended-Upgrade \"0\" (the nightly window upgrades the node, "
                   "unattended-upgrades' daily run stands down); 'automatic unattended-upgrades' and removing "
                   "the package remove it"),
              ".SH SEE ALSO", "\\fBrolling\\-upgrade.conf\\fR(5), \\fBcrm_mon\\fR(8), \\fBapt.conf\\fR(5), "
              "\\fBapt_preferences\\fR(5)"]
    return "\n".join(lines) + "\n"


_SETTING = re.compile(r"^// (Rolling-Upgrade::([\w:-]+) .*;)$")


def documented(shipped: str) -> dict[str, tuple[str, list[str]]]:
    """Each setting of the shipped file: its example line and the comment paragraph right above it."""
    found: dict[str, tuple[str, list[str]]] = {}
    paragraph: list[str] = []
    for line in shipped.splitlines():
        match = _SETTING.match(line)
        if match:
            found.setdefault(match[2], (match[1], list(paragraph)))
        elif line.startswith("//"):
            text = line[2:].strip()
            paragraph = [] if not text else paragraph + [text]
        else:
            paragraph = []
    return found


def settings_page(shipped: str) -> str:
    """rolling-upgrade.conf(5): every key of the settings table, as the shipped file documents it.

    Raises ValueError naming a key of the table that the shipped file does not document.
    """
    from upgrader.config import KEYS

    docs = documented(shipped)
    missing = [k for k in KEYS if k not in docs]
    if missing:
        raise ValueError(f"settings not documented in the shipped file: {', '.join(missing)}")
    intro = []
    for line in shipped.splitlines():
        if not line.startswith("//"):
            break
        intro.append(line[2:].strip())
    lines = _header("rolling-upgrade.conf", "5", "Settings of rolling-upgrade")
    lines += [".SH DESCRIPTION"]
    lines += [roff(t) if t else ".PP" for t in intro]
    lines += [".SH SETTINGS"]
    for key in KEYS:
        example, about = docs[key]
        lines += [".TP", f"\\fBRolling\\-Upgrade::{roff(key)}\\fR", " ".join(roff(t) for t in about) or ".",
                  ".RS", ".nf", roff(example), ".fi", ".RE"]
    lines += [".SH FILES", ".TP", "\\fI/etc/apt/apt.conf.d/50rolling\\-upgrade.conf\\fR",
              roff("the shipped defaults, every one commented out; set yours in a later file"),
              ".SH SEE ALSO", "\\fBrolling\\-upgrade\\fR(8), \\fBapt.conf\\fR(5)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["command"] and len(args) == 1:
        from upgrader.cli import parser

        sys.stdout.write(command_page(parser()))
        return 0
    if args[:1] == ["settings"] and len(args) == 2:
        sys.stdout.write(settings_page(Path(args[1]).read_text()))
        return 0
    print("usage: python3 -m upgrader.cli.manual command | settings SHIPPED_CONF", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
