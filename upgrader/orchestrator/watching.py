"""The outage watch around a move (:mod:`upgrader.health.outage`): what its clients saw of each moving resource.

:func:`watching` wraps a move from before its command until it settled and
was verified (the block). It watches the resources predicted to move that
declare a level-3 probe on an IP address, and adds each one's longest outage
to the node's result (``NodeResult.outages``, resource -> seconds, the longest
over the node's moves); :func:`watching_each` watches a batch's move
(Concurrency) with one watch, each resource noted for its own node. Off with ``Rolling-Upgrade::Health::Outage-Watch "no"``.
The watch is news, never a reason to stop: a declaration that cannot be read,
or a watch that fails, leaves the move as it is (and says so once).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Iterable, Iterator, Mapping

from upgrader.health.outage import Watch
from upgrader.orchestrator.context import RunContext


def watching(run: RunContext, node: str, rids: Iterable[str]) -> AbstractContextManager[None]:
    """The block's outage watch of ``rids``; their longest outages noted in ``node``'s result when it ends."""
    return watching_each(run, {node: rids})


@contextmanager
def watching_each(run: RunContext, owners: Mapping[str, Iterable[str]]) -> Iterator[None]:
    """One outage watch of every node's ``rids`` for the block (a batch's move: Concurrency); each
    resource's longest outage noted in the result of the node it is of (the first node named for it)."""
    of: dict[str, str] = {}
    for node, rids in owners.items():
        for rid in rids:
            of.setdefault(rid, node)
    first = next(iter(owners), "")
    watch = _start(run, first, list(of))
    try:
        yield
    finally:
        if watch is not None:
            try:
                watch.stop()
                for node in owners:
                    note(run, node, {rid: s for rid, s in watch.longest().items() if of.get(rid) == node})
                if watch.error:
                    _say(run, first, f"the outage watch stopped early: {watch.error}")
            except Exception as exc:  # noqa: BLE001 - the watch is news: never the move's error
                _say(run, first, f"the outage watch failed: {type(exc).__name__}: {exc}")


def _start(run: RunContext, node: str, rids: list[str]) -> Watch | None:
    if not rids or not run.config.health_outage_watch:
        return None
    try:
        targets = run.checks.addresses(rids)
        return Watch(targets).start() if targets else None
    except Exception as exc:  # noqa: BLE001 - e.g. cibadmin timed out, no thread to be had: the move goes on, unwatched
        _say(run, node, f"no outage watch for this move: {type(exc).__name__}: {exc}")
        return None


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
