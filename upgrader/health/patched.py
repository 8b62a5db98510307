"""Level 4, "patched": no process of a moved container maps a package file older than its node's installed one.

The scan itself (:mod:`upgrader.packages.patched`) reads ``/proc`` on the node
where the container runs, so it runs there: ``rolling-upgrade patched
--container NAME --json`` through the caller's runner for that node. A
container that is not running yet is retried (level 2 says why); an old
mapping found is final: a restart of the same root will not patch it (its
overlay holds a copy of the file, or it did not restart at all).
"""

from __future__ import annotations

import json

from upgrader.health.errors import CheckFailed
from upgrader.health.spec import ContainerSpec
from upgrader.runner import CommandError, CommandMissing, Runner

NOT_RUNNING = 3  # rolling-upgrade patched: a container named is not running (no init pid)
SHOWN = 3  # stale processes named in one check's message, at most (the rest counted)


def check_patched(runner: Runner, tool: str, container: ContainerSpec, timeout: float) -> None:
    """One attempt within ``timeout`` seconds; raise CheckFailed naming each process and file still old."""
    argv = [tool, "patched", "--container", container.name, "--json"]
    try:
        result = runner.run(argv, timeout=timeout, ok=(0, 1, NOT_RUNNING),
                            what=f"the patched scan of container {container.name}")
    except CommandMissing as exc:
        raise CheckFailed(str(exc), final=True) from None
    except CommandError as exc:
        raise CheckFailed(str(exc)) from None
    if result.returncode == NOT_RUNNING:
        raise CheckFailed(f"container {container.name} is not running (no process to scan)")
    lines = stale_lines(result.stdout, container.name)
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
