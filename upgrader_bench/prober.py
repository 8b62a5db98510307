"""The prober: the product's outage watch (:mod:`upgrader.health.outage`) on every application's floating IP.

TCP connects to port 80 from the lab's client namespace, one thread, non-blocking
sockets; a probe every 20 ms whether the ones before it answered or not, each
with its own short timeout, so a floating IP that just left (its SYNs
unanswered) costs resolution nothing. Only the applications that are moving are
probed finely (:meth:`Prober.moving`: in a bare move the node's applications, in
a run all of them, since every node is drained); the others every 200 ms, and
finely as soon as one fails. The same probing in the bare move and the run.
Samples are (send time, connected) on the monotonic clock;
:func:`upgrader_bench.stats.outages` turns them into gaps.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping

from upgrader.health.outage import Watch
from upgrader_bench.stats import Sample, outages
from upgrader_lab.client import enter_netns
from upgrader_lab.layout import Lab

PORT = 80


class Prober:
    """Probes every application of ``lab`` from start to stop; use as a context manager."""

    def __init__(self, lab: Lab) -> None:
        self.ips = {app: lab.app_ip(app) for app in lab.app_names}
        netns = lab.client_netns
        self._watch = Watch({app: [(ip, PORT)] for app, ip in self.ips.items()}, fine=(), cool=False,
                            enter=lambda: enter_netns(netns))

    @contextmanager
    def moving(self, apps: Iterable[str]) -> Iterator[None]:
        """``apps`` probed finely (every 20 ms) for the block."""
        apps = list(apps)
        self._watch.focus(apps)
        try:
            yield
        finally:
            self._watch.focus(apps, hot=False)

    @property
    def samples(self) -> dict[str, list[Sample]]:
        return {app: [s for got in self._watch.samples(app).values() for s in got] for app in self.ips}

    def outages(self, start: float, end: float) -> Mapping[str, list[float]]:
        """Per application, its outages between ``start`` and ``end``."""
        return {app: outages(s, start, end) for app, s in self.samples.items()}

    def __enter__(self) -> "Prober":
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.stop()
        if self._watch.error:
            raise RuntimeError(f"the prober stopped early: {self._watch.error}")
