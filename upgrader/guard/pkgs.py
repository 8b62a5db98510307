"""APT's Pre-Install-Pkgs protocol version 3: what an apt run is about to change.

Input (stdin of the hook): ``VERSION 3``, the configuration as ``Key=value``
lines, a blank line, then one line per package::

    name old-version old-arch old-multiarch direction new-version new-arch new-multiarch action

Versions are ``-`` when absent; direction is ``<``, ``>``, ``=`` (or ``**``
for a configure-only line); action is a .deb path, ``**CONFIGURE**`` or
``**REMOVE**``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

PROTOCOL = "VERSION 3"


class ProtocolError(ValueError):
    """The input is not Pre-Install-Pkgs version 3."""


@dataclass(frozen=True)
class PackageAction:
    """One package line of Pre-Install-Pkgs: what an apt run does to one package."""

    name: str
    old: str | None
    new: str | None
    arch: str
    action: str  # unpack, configure or remove

    def tsv(self) -> str:
        return "\t".join((self.name, self.old or "-", self.new or "-", self.arch, self.action))

    @classmethod
    def from_tsv(cls, line: str) -> "PackageAction":
        name, old, new, arch, action = line.rstrip("\n").split("\t")
        return cls(name, None if old == "-" else old, None if new == "-" else new, arch, action)


def parse(text: str) -> list[PackageAction]:
    """The package lines of a version 3 input, in order."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != PROTOCOL:
        first = lines[0] if lines else ""
        raise ProtocolError(
            f"Pre-Install-Pkgs input starts with {first!r}, not {PROTOCOL!r} "
            "(set DPkg::Tools::Options::<first word of the hook command>::Version \"3\")"
        )
    try:
        body = lines[lines.index("") + 1 :]
    except ValueError:
        raise ProtocolError("Pre-Install-Pkgs input has no blank line after the configuration") from None
    return [_line(line) for line in body if line.strip()]


def _line(line: str) -> PackageAction:
    fields = line.split()
    if len(fields) != 9:
        raise ProtocolError(f"Pre-Install-Pkgs line has {len(fields)} fields, not 9: {line!r}")
    name, old, old_arch, _, _, new, new_arch, _, action = fields
    kind = {"**CONFIGURE**": "configure", "**REMOVE**": "remove"}.get(action, "unpack")
    return PackageAction(name, None if old == "-" else old, None if new == "-" else new,
                  new_arch if new_arch != "-" else old_arch, kind)


def merge(changes: Iterable[PackageAction]) -> list[PackageAction]:
    """One entry per package: the first old version seen, the last new version and action."""
    merged: dict[str, PackageAction] = {}
    for c in changes:
        before = merged.get(c.name)
        if before is None:
            merged[c.name] = c
        else:
            configure = c.action == "configure"
            merged[c.name] = PackageAction(c.name, before.old, (c.new or before.new) if configure else c.new,
                                           c.arch, before.action if configure else c.action)
    return list(merged.values())
