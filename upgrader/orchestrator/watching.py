"""The outage watch around a move (:mod:`upgrader.health.outage`): what its clients saw of each moving resource.

:func:`watching` wraps a move from before its command until it settled and
was verified (the block). It watches the resources predicted to move that
declare a level-3 probe on an IP address, and adds each one's longest outage
to the node's result (``NodeResult.outages``, resource -> seconds, the longest
over the node's moves). Off with ``Rolling-Upgrade::Health::Outage-Watch "no"``.
The watch is news, never a reason to stop: a declaration that cannot be read,
or a watch that fails, leaves the move as it is (and says so once).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from upgrader.health.outage import Watch
from upgrader.orchestrator.context import RunContext


@contextmanager
def watching(run: RunContext, node: str, rids: Iterable[str]) -> Iterator[None]:
    """The block's outage watch of ``rids``; their longest outages noted in ``node``'s result when it ends."""
    watch = _start(run, node, list(dict.fromkeys(rids)))
    try:
        yield
    finally:
        if watch is not None:
            watch.stop()
            note(run, node, watch.longest())
            if watch.error:
                _say(run, node, f"the outage watch stopped early: {watch.error}")


def _start(run: RunContext, node: str, rids: list[str]) -> Watch | None:
    find = getattr(run.checks, "addresses", None)
    if not rids or find is None or not getattr(run.config, "health_outage_watch", True):
        return None
    try:
        targets = find(rids)
    except Exception as exc:  # noqa: BLE001 - e.g. cibadmin timed out: the move goes on, unwatched
        _say(run, node, f"no outage watch for this move: {type(exc).__name__}: {exc}")
        return None
    return Watch(targets).start() if targets else None


def note(run: RunContext, node: str, longest: dict[str, float]) -> None:
    """Each resource's longest outage kept in ``node``'s result (the longest of its moves)."""
    result = run.results.get(node)
    if result is None:
        return
    for rid, seconds in longest.items():
        result.outages[rid] = max(seconds, result.outages.get(rid, 0.0))


def _say(run: RunContext, node: str, text: str) -> None:
    try:
        run.report.step(node, "watch", text)
    except Exception:  # noqa: BLE001 - a dead terminal must not fail a move
        pass
