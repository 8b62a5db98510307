"""The pure arithmetic of the benchmarks: summaries, outages seen by a prober, ratios against targets."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from upgrader.health.outage import Sample
from upgrader.health.outage import outages as outage_spans


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    def as_dict(self, digits: int = 3) -> dict[str, float | int]:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(values: Iterable[float]) -> Summary:
    """Median, min and max of at least one value."""
    got = list(values)
    if not got:
        raise ValueError("nothing to summarize: no values")
    return Summary(float(statistics.median(got)), float(min(got)), float(max(got)), len(got))


def outages(samples: Sequence[Sample], start: float, end: float) -> list[float]:
    """Each gap between two successful answers with at least one failed probe between them, in [start, end]
    (the last success before ``start`` may begin one); an application not yet seen answering has none:
    the product's own rule (:func:`upgrader.health.outage.outages`) without counting from ``start``."""
    return outage_spans(samples, start, end, from_start=False)


def ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0:
        raise ValueError(f"cannot take a ratio over {denominator}")
    return numerator / denominator


def verdict(value: float, target: float) -> str:
    """'met' when ``value`` is at most ``target``, else 'MISSED'."""
    return "met" if value <= target else "MISSED"


def paired_downtime(bare: list[list[Any]], runs: list[Any]) -> list[float]:
    """Per (repetition, application): its longest outage in the run over its outage in the bare move."""
    found = []
    for cycle, run in zip(bare, runs):
        alone = {app: max(o) for b in cycle for app, o in b.outages.items() if o}
        found += [max(o) / alone[app] for app, o in run.outages.items() if o and alone.get(app)]
    return found


def irreducible(bare: Sequence[Any], run: Any) -> float:
    """Seconds of a run's irreducible parts, from the bare cycles (one per node) of the same repetition: each
    node's bare dist-upgrade, plus per move step the run made the median bare move's settle and health check."""
    settle = statistics.median(b.settle for b in bare)
    check = statistics.median(b.health for b in bare)
    return sum(b.dist_upgrade for b in bare) + run.move_steps * (settle + check)


def fixed_cost_per_node(bare: list[list[Any]], runs: list[Any]) -> list[float]:
    """Per repetition: the run's wall time minus its irreducible parts, over the nodes (one bare cycle each)."""
    return [(run.seconds - irreducible(cycle, run)) / len(cycle) for cycle, run in zip(bare, runs) if cycle]
