"""Level 1: Pacemaker reports the resource Started where expected, with no new failure.

The cluster state is read through the small protocols below, which
:class:`upgrader.pacemaker.state.Resource` and ``Failure`` satisfy; the
adapter :mod:`upgrader.health.snapshot` gathers them into a :class:`Snapshot`. :class:`SnapshotRounds` shares one
snapshot per poll round among all level-1 checks: one crm_mon call per round,
however many resources are checked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from upgrader.health.errors import CheckFailed


class ResourceState(Protocol):
    """A primitive as crm_mon shows it (:class:`upgrader.pacemaker.state.Resource`)."""

    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...  # "Started", "Starting", "Stopped", ...
    @property
    def nodes(self) -> Sequence[str]: ...  # nodes it runs on
    @property
    def failed(self) -> bool: ...
    @property
    def pending(self) -> str: ...  # the pending operation ("Starting"), "" if none


class FailureRecord(Protocol):
    """An entry of crm_mon's failures list (:class:`upgrader.pacemaker.state.Failure`)."""

    @property
    def resource(self) -> str: ...
    @property
    def node(self) -> str: ...
    @property
    def occurrence(self) -> str: ...  # which failure: the op_key, with call id and time when known


class ClusterSnapshot(Protocol):
    """One crm_mon reading: primitives by id, failures, fail-counts by (resource, node)."""

    @property
    def resources(self) -> Mapping[str, ResourceState]: ...
    @property
    def failures(self) -> Sequence[FailureRecord]: ...
    @property
    def fail_counts(self) -> Mapping[tuple[str, str], int]: ...


@dataclass(frozen=True)
class Snapshot:
    """A :class:`ClusterSnapshot`: what :func:`upgrader.health.snapshot.to_snapshot` makes of a crm_mon reading."""

    resources: Mapping[str, ResourceState] = field(default_factory=dict)
    failures: tuple[FailureRecord, ...] = ()
    fail_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Why level 1 does not pass yet; ``final`` when waiting cannot fix it."""

    message: str
    final: bool = False


def cluster_problem(
    primitives: Sequence[str], node: str, snapshot: ClusterSnapshot, baseline: ClusterSnapshot
) -> Problem | None:
    """Level 1 for ``primitives`` expected on ``node``; ``baseline`` was read before the move."""
    new = new_failures(primitives, snapshot, baseline)
    if new:
        return Problem("; ".join(new), final=True)
    for rid in primitives:
        res = snapshot.resources.get(rid)
        if res is None:
            return Problem(f"{rid} is not in the cluster status")
        if res.failed:
            return Problem(f"{rid} is failed")
        if res.pending:
            return Problem(f"{rid} has a pending operation ({res.pending})")
        if list(res.nodes) != [node]:
            return Problem(f"{rid} runs on {', '.join(res.nodes) or 'no node'}, expected {node}")
        if res.role != "Started":
            return Problem(f"{rid} is {res.role} on {node}, expected Started")
    return None


def new_failures(primitives: Sequence[str], snapshot: ClusterSnapshot, baseline: ClusterSnapshot) -> list[str]:
    """Failures and fail-count rises of ``primitives`` (on any node) not in ``baseline``."""
    ids = set(primitives)
    old = {(f.resource, f.node, f.occurrence) for f in baseline.failures}
    found = [
        f"new failure of {f.resource} on {f.node}: {f.occurrence}"
        for f in snapshot.failures
        if f.resource in ids and (f.resource, f.node, f.occurrence) not in old
    ]
    for (rid, node), count in snapshot.fail_counts.items():
        before = baseline.fail_counts.get((rid, node), 0)
        if rid in ids and count > before:
            found.append(f"fail-count of {rid} on {node} rose from {before} to {count}")
    return list(dict.fromkeys(found))


class SnapshotRounds:
    """Calls ``fetch(timeout)`` (one crm_mon) at most once per round for all its readers.

    Each reader gets a reading newer than the last one it saw: fetched by
    itself, or by another reader that asked first. A failed fetch is that
    round's answer for everyone; the next round fetches again.
    """

    def __init__(self, fetch: Callable[[float], Any], what: str = "the cluster status", first: Any = None) -> None:
        """``first``: a reading the caller just made, taken as the first round's (no fetch for it)."""
        self._fetch = fetch
        self.what = what  # what one fetch reads, for its errors
        self._lock = threading.Lock()
        self._round = 0 if first is None else 1
        self._value: Any = RuntimeError("no reading yet") if first is None else first

    def reader(self) -> Callable[[float], ClusterSnapshot]:
        """A function giving, within ``timeout`` seconds, a reading newer than its previous one."""
        seen = 0

        def read(timeout: float) -> ClusterSnapshot:
            nonlocal seen
            seen, value = self._newer_than(seen, timeout)
            if isinstance(value, Exception):
                raise CheckFailed(str(value) if isinstance(value, CheckFailed) else f"cannot read {self.what}: {value}",
                                  final=isinstance(value, CheckFailed) and value.final)
            return value

        return read

    def _newer_than(self, seen: int, timeout: float) -> tuple[int, ClusterSnapshot | Exception]:
        if not self._lock.acquire(timeout=timeout):
            raise CheckFailed(f"waited {timeout:.2g}s for another check's reading of {self.what}")
        try:
            if self._round <= seen:
                try:
                    self._value = self._fetch(timeout)
                except Exception as exc:  # noqa: BLE001 - any reading error is this round's answer
                    self._value = exc
                self._round += 1
            return self._round, self._value
        finally:
            self._lock.release()
