"""What unit and lab tests share, needing no lab (lab tests may import it; it imports nothing of the lab)."""

from __future__ import annotations

from typing import Any, Mapping

from collections.abc import Iterable


def drained_together(events: Iterable[dict]) -> list[list[str]]:
    """The nodes of each drain, in order: drain starts with no upgrade or fail over started in between."""
    groups: list[list[str]] = []
    last = None
    for e in events:
        if (e["phase"], e["event"]) == ("drain", "start"):
            if last != "drain":
                groups.append([])
            groups[-1].append(e["node"])
        if e["event"] == "start" and e["phase"] in ("drain", "upgrade", "fail-over"):
            last = e["phase"]
    return groups


def write_node_attributes(cluster: Any, values: Mapping[str, Mapping[str, str]]) -> None:
    """A fake cluster's one write of several nodes' attributes, as its set_standby and set_attribute apply them."""
    for node, attrs in values.items():
        for name, value in attrs.items():
            if name == "standby":
                cluster.set_standby(node, value == "on")
            else:
                cluster.set_attribute(node, name, value)


class AheadNoted:
    """A fake Nodes' :meth:`~upgrader.orchestrator.remote.Nodes.prepare_apply` and ``drop_prepared``: each
    noted (``prepared``, ``dropped``: node names in order), nothing started."""

    def prepare_apply(self, node: str, run_id: str, timeout: float = 3600, set_digest: str | None = None) -> None:
        self.__dict__.setdefault("prepared", []).append(node)

    def drop_prepared(self, node: str) -> None:
        self.__dict__.setdefault("dropped", []).append(node)
