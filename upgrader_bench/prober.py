"""A 20 Hz prober: one thread per floating IP sends ``GET /version`` from the lab's client namespace.

Each probe has a short timeout, so a floating IP that is gone costs one
timeout, not a TCP retry. Samples are (send time, answered 200) on the
monotonic clock; :func:`upgrader_bench.stats.outages` turns them into gaps.
"""

from __future__ import annotations

import threading
import time
from typing import Mapping

from upgrader_bench.stats import Sample, outages
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab

HZ = 20.0
PROBE_TIMEOUT = 0.25


class Prober:
    """Probes every application of ``lab`` from start to stop; use as a context manager."""

    def __init__(self, lab: Lab, hz: float = HZ, timeout: float = PROBE_TIMEOUT) -> None:
        self.ips = {app: lab.app_ip(app) for app in lab.app_names}
        self.period = 1.0 / hz
        self.timeout = timeout
        self.samples: dict[str, list[Sample]] = {app: [] for app in self.ips}
        self._client = LabClient(lab.client_netns, workers=len(self.ips) + 2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._probe, args=(app,), daemon=True) for app in self.ips]

    def _probe(self, app: str) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic()
            answer = self._client.get(self.ips[app], "/version", timeout=self.timeout)
            self.samples[app].append((sent, answer.ok))
            due += self.period
            pause = due - time.monotonic()
            if pause < 0:
                due = time.monotonic()
            self._stop.wait(max(0.0, pause))

    def outages(self, start: float, end: float) -> Mapping[str, list[float]]:
        """Per application, its outages between ``start`` and ``end``."""
        return {app: outages(list(s), start, end) for app, s in self.samples.items()}

    def __enter__(self) -> "Prober":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._client.close()
