"""The holds on this node: an APT preferences file that keeps each held-back package version off it.

The cluster-wide record is the CIB's (:mod:`upgrader.pacemaker.holds`);
``rolling-upgrade holds --sync`` writes it here. apt_preferences(5): a
negative Pin-Priority "prevents the version from being installed", so apt,
unattended-upgrades and later runs keep taking every other version and fix,
and skip exactly this build. One stanza per hold::

    Explanation: rolling-upgrade hold: run 20261201T020000-node1-abcdef, node node2, since 2026-12-01T02:10:00Z; release with rolling-upgrade release-hold demo-app
    Package: demo-app
    Pin: version 3
    Pin-Priority: -1

On a node that has the held version installed (the failed one) apt then has no
candidate for the package: it stays as it is, nothing proposes to upgrade or
remove it. The file's name has no extension, as apt_preferences(5) asks; its
temporary copy starts with a dot, which apt skips.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

from upgrader import etcfile
from upgrader.pacemaker.holds import RELEASE, Hold, HoldError

__all__ = ["PATH", "PRIORITY", "UNCHANGED", "Hold", "HoldError", "changes", "expired", "parse_preferences", "preferences_text",
           "read_local", "write_local"]

PATH = Path("/etc/apt/preferences.d/rolling-upgrade-holds")
PRIORITY = -1
UNCHANGED = "unchanged"  # how the line of a sync that changed nothing starts
_EXPLANATION = re.compile(r"rolling-upgrade hold: run (\S+), node (\S+), since (\S+); release with "
                          + re.escape(RELEASE) + r" (\S+)")
_apt_ready = False


def preferences_text(holds: Iterable[Hold]) -> str:
    """The preferences file for ``holds``: one stanza each, sorted (empty text for none)."""
    stanzas = []
    for h in sorted(set(holds), key=lambda h: (h.package, h.version)):
        stanzas.append(f"Explanation: rolling-upgrade hold: run {h.run_id}, node {h.node}, since {h.since}; "
                       f"release with {RELEASE} {h.package}\n"
                       f"Package: {h.package}\nPin: version {h.version}\nPin-Priority: {PRIORITY}\n")
    return "\n".join(stanzas)


def parse_preferences(text: str, where: str = str(PATH)) -> list[Hold]:
    """The holds a file written by :func:`preferences_text` pins; :class:`HoldError` naming ``where``
    for anything else in it (a hand edit)."""
    found = []
    for number, stanza in enumerate(s for s in re.split(r"\n\s*\n", text.strip()) if s.strip()):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            name, sep, value = line.partition(":")
            if not sep or name in fields:
                raise HoldError(f"{where}: stanza {number + 1} has the line {line[:80]!r}, not written by "
                                "rolling-upgrade; remove the file, then 'rolling-upgrade holds --sync'")
            fields[name] = value.strip()
        match = _EXPLANATION.fullmatch(fields.get("Explanation", ""))
        pin = fields.get("Pin", "")
        if (match is None or set(fields) != {"Explanation", "Package", "Pin", "Pin-Priority"}
                or not pin.startswith("version ") or fields["Pin-Priority"] != str(PRIORITY)
                or match[4] != fields["Package"]):
            raise HoldError(f"{where}: stanza {number + 1} is not a hold written by rolling-upgrade; remove the "
                            "file, then 'rolling-upgrade holds --sync'")
        try:
            found.append(Hold(fields["Package"], pin.removeprefix("version "), match[1], match[2], match[3]))
        except ValueError as exc:
            raise HoldError(f"{where}: stanza {number + 1}: {exc}; remove the file, then "
                            "'rolling-upgrade holds --sync'") from None
    return found


def read_local(path: Path = PATH) -> list[Hold]:
    """The holds this node's preferences file pins now (none when it is missing)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise HoldError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_preferences(text, str(path))


def write_local(holds: Iterable[Hold], path: Path = PATH) -> bool:
    """This node's preferences file made to pin exactly ``holds``: written atomically (a copy beside
    it, renamed over it; mode 0644), removed when there is none. Whether it changed."""
    text = preferences_text(holds)
    try:
        return etcfile.keep(path, text)
    except OSError as exc:
        raise HoldError(f"cannot {'write' if text else 'remove'} {path}: {exc.strerror or exc}") from None


def expired(holds: Iterable[Hold], newest: Mapping[str, str]) -> list[Hold]:
    """The holds whose package now has a strictly newer version in ``newest`` (package -> the candidate or
    installed version the caller saw): that build is superseded, its hold ends."""
    _init_apt()
    import apt_pkg

    return [h for h in holds if newest.get(h.package) and apt_pkg.version_compare(newest[h.package], h.version) > 0]


def changes(before: Iterable[Hold], after: Iterable[Hold]) -> str:
    """What a sync did, in one line: ``pinned demo-app 3; unpinned libfoo 1.2`` or ``unchanged (1 hold)``."""
    was = {(h.package, h.version) for h in before}
    now = {(h.package, h.version) for h in after}
    pinned = [f"{p} {v}" for p, v in sorted(now - was)]
    unpinned = [f"{p} {v}" for p, v in sorted(was - now)]
    parts = ([f"pinned {', '.join(pinned)}"] if pinned else []) + ([f"unpinned {', '.join(unpinned)}"] if unpinned else [])
    return "; ".join(parts) if parts else f"{UNCHANGED} ({len(now)} hold{'s' if len(now) != 1 else ''})"


def _init_apt() -> None:
    """apt_pkg's version comparison needs its system initialised (once; it reads no package state)."""
    global _apt_ready
    if not _apt_ready:
        import apt_pkg

        apt_pkg.init_system()
        _apt_ready = True
