"""Hand-built level-1 readings for the tests: the least that the level-1 protocols
(:class:`~upgrader.health.cluster.ResourceState`, :class:`~upgrader.health.cluster.FailureRecord`) ask.

The product feeds level 1 the parser's own values (:mod:`upgrader.pacemaker.state`);
crm_mon XML tests use lab captures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    id: str
    role: str
    nodes: tuple[str, ...] = ()
    failed: bool = False
    pending: str = ""


@dataclass(frozen=True)
class Failure:
    resource: str
    node: str
    occurrence: str
