"""corosync's votes: ``corosync-quorumtool -s``, read to tell whether nodes can leave without losing quorum.

Pure parsing of its text, e.g.::

    Votequorum information
    ----------------------
    Expected votes:   5
    Highest expected: 5
    Total votes:      5
    Quorum:           3
    Flags:            Quorate

    Membership information
    ----------------------
        Nodeid      Votes Name
             1          1 node1 (local)
             2          1 node2
             0          1 Qdevice

A quorum device's vote is never counted on: which side of a split it goes to is the device's choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from upgrader.pacemaker.state import ParseError

_FIELD = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class Votes:
    quorum: int  # votes a partition needs
    members: dict[str, int]  # node name -> its votes (the quorum device left out)
    flags: tuple[str, ...] = ()

    def left_without(self, nodes: Iterable[str]) -> int:
        """The members' votes once ``nodes`` are gone (their stacks stopped, or rebooting)."""
        gone = set(nodes)
        return sum(v for n, v in self.members.items() if n not in gone)


def parse_quorumtool(text: str) -> Votes:
    """The votes of ``corosync-quorumtool -s``'s output; :class:`ParseError` naming what is missing."""
    fields: dict[str, str] = {}
    members: dict[str, int] = {}
    in_members = False
    for line in text.splitlines():
        if line.strip().startswith("Nodeid"):
            in_members = True
            continue
        if in_members:
            words = [w for w in line.split() if w != "(local)"]
            if len(words) >= 3 and words[0].isdigit() and words[1].isdigit():
                if words[0] != "0" and words[-1] != "Qdevice":
                    members[words[-1]] = int(words[1])
            elif line.strip():
                in_members = False
            continue
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match["key"].strip().lower(), match["value"])
    quorum = re.match(r"\d+", fields.get("quorum", ""))
    if quorum is None:
        raise ParseError("corosync-quorumtool -s gave no 'Quorum:' line (is votequorum the quorum provider?)")
    if not members:
        raise ParseError("corosync-quorumtool -s gave no membership list")
    return Votes(int(quorum[0]), members, tuple(fields.get("flags", "").split()))
