"""How long the next node's upgrade will take, learned from history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

SAMPLES = 5
FACTOR = 1.5


def expected_node_duration(
    past: Sequence[float], default: float, *, samples: int = SAMPLES, factor: float = FACTOR
) -> timedelta:
    """A conservative estimate of one node's upgrade time.

    ``past``: seconds taken by earlier successful node upgrades, oldest first.
    The estimate is ``factor`` times the longest of the last ``samples`` (>= 1)
    of them; with no history it is ``default`` seconds (the configured
    Default-Node-Duration), taken as is.
    """
    for seconds in past:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{seconds!r} is not a duration in seconds (finite, not negative)")
    recent = past[-samples:]
    return timedelta(seconds=max(recent) * factor if recent else default)
