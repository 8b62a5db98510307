"""Level 4, "patched": no process of a moved container maps a package file older than its node's installed one.

The scan itself (:mod:`upgrader.packages.patched`) reads ``/proc`` on the node
where the container runs, so it runs there: ``rolling-upgrade patched
--container NAME... --json`` through the caller's runner for that node, once a
round for every container checked there (:func:`node_scan`). A
container that is not running yet is retried (level 2 says why); an old
mapping found is final: a restart of the same root will not patch it (its
overlay holds a copy of the file, or it did not restart at all).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from upgrader.health.errors import CheckFailed
from upgrader.health.spec import ContainerSpec
from upgrader.runner import CommandError, CommandMissing, Runner

NOT_RUNNING = 3  # rolling-upgrade patched: a container named is not running (no init pid)
SHOWN = 3  # stale processes named in one check's message, at most (the rest counted)


def node_scan(runner: Runner, tool: str, names: Sequence[str], timeout: float) -> dict[str, Any]:
    """One ``patched`` scan of the containers ``names`` on the runner's node: its JSON ``containers``."""
    argv = [tool, "patched", *(a for name in names for a in ("--container", name)), "--json"]
    what = f"the patched scan of container {names[0]}" if len(names) == 1 else \
        f"the patched scan of {len(names)} containers"
    try:
        result = runner.run(argv, timeout=timeout, ok=(0, 1, NOT_RUNNING), what=what)
    except CommandMissing as exc:
        raise CheckFailed(str(exc), final=True) from None
    except CommandError as exc:
        raise CheckFailed(str(exc)) from None
    try:
        found = json.loads(result.stdout)["containers"]
        if not isinstance(found, dict):
            raise TypeError("no containers")
        return found
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckFailed(f"{what} gave unreadable output ({exc})", final=True) from None


def check_patched(runner: Runner, tool: str, container: ContainerSpec, timeout: float,
                  scan: Callable[[float], Mapping[str, Any]] | None = None) -> None:
    """One attempt within ``timeout`` seconds; raise CheckFailed naming each process and file still old.
    ``scan``: a reading of every checked container on that node, shared (one scan a round); else its own."""
    found = (scan or (lambda left: node_scan(runner, tool, [container.name], left)))(timeout)
    got = found.get(container.name)
    if not isinstance(got, dict) or not got.get("running"):
        raise CheckFailed(f"container {container.name} is not running (no process to scan)")
    lines = stale_lines(json.dumps({"containers": found}), container.name)
    if lines:
        more = f" and {len(lines) - SHOWN} more process(es)" if len(lines) > SHOWN else ""
        raise CheckFailed(f"container {container.name} still runs old code: {'; '.join(lines[:SHOWN])}{more}",
                          final=True)


def stale_lines(output: str, name: str) -> list[str]:
    """The stale processes of container ``name`` in ``patched --json`` output, one line each."""
    try:
        doc = json.loads(output)
        found = doc["containers"][name]
        return [str(line) for line in found["stale"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckFailed(f"the patched scan of container {name} gave unreadable output ({exc})", final=True) from None
