"""unattended-upgrades' way of choosing packages, as its 2.9 (Debian 12) reads and matches it.

Origin patterns (``Origins-Pattern``: ``"origin=Debian,codename=${distro_codename},label=Debian-Security"``),
the older ``Allowed-Origins`` entries (``"${distro_id}:${distro_codename}-security"``), the package
blacklist (Python regular expressions), and the ``${distro_id}``/``${distro_codename}`` it substitutes.
Each function names the one of ``unattended-upgrade`` it mirrors. Pure, but for :func:`local_distro`,
which reads os-release as ``lsb_release`` does.

The grammar lives here, outside :mod:`upgrader.packages`, so that :mod:`upgrader.config` can check the
settings with it; :mod:`upgrader.packages.choose` applies it to a plan's changes.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# A pattern's keys, as match_whitelist_string accepts them (case matters), -> the Origin field each matches.
KEYS = {"o": "origin", "origin": "origin", "l": "label", "label": "label", "a": "archive", "suite": "archive",
        "archive": "archive", "c": "component", "component": "component", "site": "site", "n": "codename",
        "codename": "codename"}
KEY_NAMES = "o/origin, a/suite/archive, c/component, l/label, n/codename or site"
OS_RELEASE = (Path("/etc/os-release"), Path("/usr/lib/os-release"))  # lsb_release's order: the first that exists
MAX_OS_RELEASE = 64 << 10
_SHORT = {"origin": "o", "archive": "a", "codename": "n", "label": "l", "component": "c", "site": "site"}


@dataclass(frozen=True)
class Origin:
    """Where a package version comes from: one archive's Release fields, as python-apt names them."""

    origin: str = ""
    label: str = ""
    archive: str = ""  # the suite: bookworm-security
    codename: str = ""
    component: str = ""
    site: str = ""

    @classmethod
    def from_apt(cls, found: Any) -> Origin:
        """From python-apt's ``apt.package.Origin`` (a candidate's ``origins``) or an ``apt_pkg.PackageFile``."""
        return cls(**{f.name: str(getattr(found, f.name, "") or "") for f in fields(cls)})

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | str) -> Origin:
        """From a plan's JSON: a dict of the fields (others ignored), or the text :meth:`__str__` writes."""
        if isinstance(value, str):
            pairs = {KEYS[k]: v for k, v in _terms(value) if k in KEYS}
            return cls(**pairs)
        if isinstance(value, Mapping):
            return cls(**{f.name: str(value.get(f.name) or "") for f in fields(cls)})
        raise TypeError(f"an origin is a dict or a text, not {type(value).__name__}")

    def __str__(self) -> str:
        """In a pattern's syntax, in apt-cache policy's order, empty fields left out: ``o=Debian,a=stable,...``."""
        return ",".join(f"{short}={getattr(self, name).replace(',', chr(92) + ',')}"
                        for name, short in _SHORT.items() if getattr(self, name))


@dataclass(frozen=True)
class Pattern:
    """One origin pattern: every term must match (fnmatch); one without terms (an empty entry) matches nothing."""

    text: str  # as written, before substitution
    terms: tuple[tuple[str, str], ...]  # (Origin field, fnmatch pattern)


def substitute(text: str, distro_id: str, distro_codename: str) -> str:
    """``${distro_id}`` and ``${distro_codename}`` replaced (u-u's ``substitute``: ``string.Template``).

    Raises ValueError for any other ``$`` (u-u 2.9 then stops with a KeyError or ValueError).
    """
    try:
        return string.Template(text).substitute(distro_id=distro_id, distro_codename=distro_codename)
    except KeyError as exc:
        raise ValueError(f"{text!r}: ${{{exc.args[0]}}} is not known (unattended-upgrades substitutes only "
                         "${distro_id} and ${distro_codename})") from None
    except ValueError:
        raise ValueError(f"{text!r}: a '$' that is not ${{distro_id}} or ${{distro_codename}} (unattended-upgrades "
                         "substitutes only those)") from None


def _terms(text: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` pairs split as match_whitelist_string splits them: ``\\,`` is a comma inside a value
    (through u-u's ``%2C``, so a literal ``%2C`` is one too), each side stripped. ValueError if not KEY=VALUE."""
    pairs = []
    for token in text.strip().replace("\\,", "%2C").split(","):
        parts = [s.strip().replace("%2C", ",") for s in token.split("=")]
        if len(parts) != 2:
            raise ValueError(f"{token.strip()!r} in {text!r} is not KEY=VALUE (e.g. origin=Debian; "
                             "a comma inside a value is written \\,)")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_pattern(text: str, distro_id: str, distro_codename: str) -> Pattern:
    """One ``Origins-Pattern`` entry, substituted as u-u does: the whole entry (``get_allowed_origins``),
    then each value again (``match_whitelist_string``). ValueError naming a bad key, term or ``$``."""
    line = substitute(text, distro_id, distro_codename)
    if not line.strip():
        return Pattern(text, ())  # u-u: "empty match string matches nothing"
    terms = []
    for what, value in _terms(line):
        field = KEYS.get(what)
        if field is None:
            raise ValueError(f"unknown key {what!r} in {text!r} (use {KEY_NAMES}, as unattended-upgrades does)")
        terms.append((field, substitute(value, distro_id, distro_codename)))
    return Pattern(text, tuple(terms))


def legacy_pattern(entry: str) -> str:
    """An ``Allowed-Origins`` entry (``ORIGIN:ARCHIVE``, or ``ORIGIN ARCHIVE`` without an unescaped colon) as
    the pattern ``o=ORIGIN,a=ARCHIVE``, unsubstituted (u-u's ``get_allowed_origins_legacy``: ``\\:`` is a colon
    in the origin, commas in either part are escaped). ValueError if it has not exactly two parts."""
    parts = re.split(r"(?<!\\):", entry) if re.findall(r"(?<!\\):", entry) else entry.split()
    if len(parts) != 2:
        raise ValueError(f"{entry!r} is not ORIGIN:ARCHIVE (e.g. ${{distro_id}}:${{distro_codename}}-security)")
    origin, archive = parts
    origin = re.sub(r"([^\\]),", r"\1\\,", re.sub(r"\\:", ":", origin))
    archive = re.sub(r"([^\\]),", r"\1\\,", archive)
    return f"o={origin},a={archive}"


def matches(pattern: Pattern, origin: Origin) -> bool:
    """Whether every term of ``pattern`` matches ``origin`` (u-u's ``match_whitelist_string``: fnmatch)."""
    if not pattern.terms:
        return False
    return all(fnmatch.fnmatch(getattr(origin, field), value) for field, value in pattern.terms)


def is_local(origin: Origin) -> bool:
    """dpkg's own status (component and archive ``now``, no label, no site): u-u allows it whatever the patterns."""
    return origin.component == "now" and origin.archive == "now" and not origin.label and not origin.site


def allowed(patterns: Iterable[Pattern], origins: Iterable[Origin]) -> bool:
    """Whether any of ``origins`` is allowed by any of ``patterns`` (u-u's ``is_in_allowed_origin``);
    no patterns: True (everything is taken; u-u would take nothing). No origins: False."""
    patterns = tuple(patterns)
    if not patterns:
        return True
    return any(is_local(o) or any(matches(p, o) for p in patterns) for o in origins)


def check_regex(text: str) -> str:
    """``text`` if it is a Python regular expression, else ValueError naming it."""
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a Python regular expression ({exc})") from None
    return text


def blacklisted_by(package: str, regexes: Iterable[str]) -> str | None:
    """The first of ``regexes`` that matches ``package`` at its start (u-u's ``is_pkgname_in_blacklist``:
    ``re.match``, so ``linux-`` blacklists ``linux-image-amd64``; end one with ``$`` for a whole name)."""
    return next((r for r in regexes if re.match(r, package)), None)


def blacklisted(package: str, regexes: Iterable[str]) -> bool:
    """Whether any of ``regexes`` matches ``package`` (:func:`blacklisted_by`)."""
    return blacklisted_by(package, regexes) is not None


def os_release(text: str) -> dict[str, str]:
    """os-release's ``KEY=VALUE`` lines, values unquoted as the shell does (``lsb_release`` sources the file)."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        try:
            found[key] = " ".join(shlex.split(value))
        except ValueError:
            continue
    return found


def distro_of(release: Mapping[str, str]) -> tuple[str, str]:
    """``(distro_id, distro_codename)`` as Debian 12's ``lsb_release -i -s`` and ``-c -s`` print them, which
    u-u runs: ID with its first letter capitalised (NAME instead when it differs only in case), and
    VERSION_CODENAME; ``n/a`` for one not set. ``debian``/``bookworm`` gives ``("Debian", "bookworm")``."""
    distro_id = release.get("ID", "")
    distro_id = distro_id[:1].upper() + distro_id[1:]
    name = release.get("NAME")
    if name is not None and name.lower() == distro_id.lower():
        distro_id = name
    return distro_id or "n/a", release.get("VERSION_CODENAME") or "n/a"


def local_distro(paths: Iterable[Path] = OS_RELEASE) -> tuple[str, str]:
    """This machine's :func:`distro_of`, from the first of ``paths`` that exists (no program is run)."""
    for path in paths:
        try:
            with path.open("rb") as f:
                return distro_of(os_release(f.read(MAX_OS_RELEASE).decode(errors="replace")))
        except OSError:
            continue
    return distro_of({})
