"""The run's package set: one version per package for the whole cluster, frozen before the first drain.

The plan asks every node for its candidates; :func:`from_plans` keeps, per
package, the newest version any node offers. Every node then installs exactly
those versions (:func:`upgrader.packages.run.mark_set`), even when its mirror
publishes a newer one mid-run; a node whose own candidate is older (its mirror
lags) is deferred with the reason. Removals are not pinned: they are what the
resolver needs on a node to reach the set's versions there. But the set names
every package some node's plan removes (``removals``), so a node's resolver
that would remove anything else (what nobody was shown) is refused.

The set travels to each node as JSON (``rolling-upgrade stage`` reads it on
stdin and keeps it in :data:`SETS_DIR` under its digest); ``apply --set
DIGEST`` reads it back. The digest, short enough for a CIB value, is in the
lock's record and the history, so one run's nodes and its finishing step
name the same set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from upgrader.packages.plan import Change

SETS_DIR = Path("/var/lib/upgrader/sets")
DIGEST_LENGTH = 16
KEEP_SETS = 10  # the newest set files kept on a node
_DIGEST = re.compile(r"^[0-9a-f]{16}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
_VERSION = re.compile(r"^[0-9A-Za-z.+~:-]+$")


class SetError(ValueError):
    """A package set that cannot be used: unreadable, or not the one asked for; one line naming it."""


@dataclass(frozen=True)
class Pinned:
    """One package of the set at exactly ``version``; ``origin`` says where it comes from (``Debian
    bookworm-security``), for people."""

    package: str
    version: str
    origin: str = ""


@dataclass(frozen=True)
class PackageSet:
    entries: tuple[Pinned, ...] = ()
    removals: tuple[str, ...] = ()  # the packages some node's plan removes: the only removals a node may make

    def __post_init__(self) -> None:
        """Sorted; :class:`SetError` for a malformed package name or version (from a node's JSON)."""
        object.__setattr__(self, "entries", tuple(sorted(self.entries, key=lambda p: p.package)))
        object.__setattr__(self, "removals", tuple(sorted(set(self.removals))))
        bad = [p.package for p in self.entries if not _PACKAGE.fullmatch(p.package) or not _VERSION.fullmatch(p.version)]
        bad += [name for name in self.removals if not _PACKAGE.fullmatch(name)]
        if bad:
            raise SetError(f"a package set with a malformed package name or version: {bad[0]!r}")

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def versions(self) -> dict[str, str]:
        return {p.package: p.version for p in self.entries}

    @property
    def digest(self) -> str:
        """What names the set: a hash of its ``package=version`` lines and ``-package`` removals (origins are
        not part of it)."""
        text = "".join(f"{p.package}={p.version}\n" for p in self.entries)
        text += "".join(f"-{name}\n" for name in self.removals)
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]

    def document(self) -> dict[str, Any]:
        return {"digest": self.digest, "packages": [{"package": p.package, "version": p.version,
                                                     "origin": p.origin} for p in self.entries],
                "removals": list(self.removals)}

    @classmethod
    def from_document(cls, doc: Any) -> "PackageSet":
        """From :meth:`document`'s JSON; :class:`SetError` when malformed or when its digest does not match."""
        try:
            entries = tuple(Pinned(str(p["package"]), str(p["version"]), str(p.get("origin", "")))
                            for p in doc["packages"])
            removals = tuple(str(name) for name in doc.get("removals") or ())
            digest = str(doc["digest"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise SetError(f"a package set without its packages or digest ({exc})") from None
        found = cls(entries, removals)
        if found.digest != digest:
            raise SetError(f"package set {digest!r} does not match its packages (digest {found.digest})")
        return found

    def summary(self) -> str:
        """``3 packages (set 0123456789abcdef)``."""
        return f"{len(self)} package{'s' if len(self) != 1 else ''} (set {self.digest})"


def from_plans(plans: Mapping[str, Iterable[Change]]) -> tuple[PackageSet, dict[str, str]]:
    """The run's set from every node's changes, and, per node that cannot take it, why.

    Per package the newest candidate any node offers; a node whose own candidate of a package is
    older is left out of this run (its mirror lags: the run would install there what no check saw).
    """
    import apt_pkg

    apt_pkg.init_system()
    newest: dict[str, Change] = {}
    for changes in plans.values():
        for c in changes:
            if c.candidate is None:
                continue
            seen = newest.get(c.package)
            if seen is None or apt_pkg.version_compare(c.candidate, seen.candidate or "") > 0:
                newest[c.package] = c
    removals = {c.package for changes in plans.values() for c in changes if c.candidate is None}
    found = PackageSet(tuple(Pinned(c.package, c.candidate or "", origin_text(c)) for c in newest.values()),
                       tuple(removals))
    return found, lagging(found, plans)


def lagging(pkgset: PackageSet, plans: Mapping[str, Iterable[Change]]) -> dict[str, str]:
    """Per node whose candidate of one of the set's packages is older than the set's, why it waits."""
    import apt_pkg

    apt_pkg.init_system()
    wanted = pkgset.versions
    found: dict[str, str] = {}
    for node, changes in plans.items():
        behind = [f"{c.package} {c.candidate} (the set has {wanted[c.package]})" for c in changes
                  if c.candidate is not None and c.package in wanted
                  and apt_pkg.version_compare(c.candidate, wanted[c.package]) < 0]
        if behind:
            found[node] = (f"its candidates are older than the run's set: {', '.join(behind[:3])}"
                           f"{' ...' if len(behind) > 3 else ''}; refresh its indexes (apt-get update)")
    return found


def origin_text(change: Change) -> str:
    """Where a change's candidate comes from, for people: ``Debian bookworm-security``."""
    if not change.origins:
        return ""
    first = change.origins[0]
    return " ".join(part for part in (first.origin, first.archive) if part)


def differences(pkgset: PackageSet, changes: Iterable[Change]) -> list[str]:
    """How ``changes`` (what a node's resolver would do) go beyond the set; empty: nothing but the set.

    A change to a version the set does not name, of a package the set does not have, or a downgrade
    is one; so is a removal of a package no node's plan removes (``removals``): the others are what the
    set's versions need there.
    """
    import apt_pkg

    apt_pkg.init_system()
    wanted = pkgset.versions
    found = []
    for c in changes:
        if c.candidate is None:
            if c.package not in pkgset.removals:
                found.append(f"{c.package} would be removed, which no node's plan showed")
            continue
        if c.installed is not None and apt_pkg.version_compare(c.candidate, c.installed) < 0:
            found.append(f"{c.package} would go down from {c.installed} to {c.candidate}")
        elif c.package not in wanted:
            found.append(f"{c.package} {c.candidate} is not in the run's set")
        elif c.candidate != wanted[c.package]:
            found.append(f"{c.package}: {c.candidate} instead of the set's {wanted[c.package]}")
    return found


def held_back(pkgset: PackageSet, changes: Iterable[Change], installed: Mapping[str, str]) -> list[str]:
    """The set's packages that a node has at an older version and does not upgrade (``installed``: its
    versions of the set's packages): the resolver keeps them, e.g. for a dependency the selection left out."""
    import apt_pkg

    apt_pkg.init_system()
    wanted = pkgset.versions
    changed = {c.package for c in changes}
    return [f"{package} {version} (the set has {wanted[package]})" for package, version in sorted(installed.items())
            if package in wanted and package not in changed and apt_pkg.version_compare(version, wanted[package]) < 0]


def save(pkgset: PackageSet, directory: Path | None = None) -> Path:
    """Keep the set on this node under its digest (atomic, root-only; in :data:`SETS_DIR` by default); the
    oldest beyond :data:`KEEP_SETS` go."""
    directory = directory or SETS_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{pkgset.digest}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(pkgset.document(), f)
    os.replace(tmp, path)
    old = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_SETS:]
    for stale in old:
        stale.unlink(missing_ok=True)
    return path


def load(digest: str, directory: Path | None = None) -> PackageSet:
    """The set this node kept under ``digest``; :class:`SetError` when it is not here or not that set."""
    directory = directory or SETS_DIR
    if not _DIGEST.fullmatch(digest):
        raise SetError(f"{digest!r} is not a package set's digest (16 hex digits)")
    path = directory / f"{digest}.json"
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise SetError(f"package set {digest} is not on this node ({exc.strerror}); stage it first") from None
    except ValueError as exc:
        raise SetError(f"package set {digest} is unreadable here ({exc})") from None
    found = PackageSet.from_document(doc)
    if found.digest != digest:
        raise SetError(f"{path} holds set {found.digest}, not {digest}")
    return found
