"""The guard's verdict for rolling-upgrade's own node upgrade, decided in that process while it opens the cache.

The first Pre-Invoke call of an apt run decides the run (a Python with its
site-packages, the settings, the cluster's state: about 0.2 s on a lab node)
before dpkg may start. ``rolling-upgrade apply`` is its own run's APT frontend:
the run's key is its own process's (:func:`upgrader.runkey.run_key` names the
holder of dpkg's frontend lock, which python-apt takes in this process), so it
can decide the same verdict with the same code (:func:`~upgrader.guard.record.decide_run`)
beside opening the package cache and marking the upgrade; the hook then only
reads it, as it does on every later call of a run. The hook still runs and
still enforces: a refusal decided here is the refusal it reads and says. When
anything goes wrong here, nothing is recorded and the hook decides, as before.
"""

from __future__ import annotations

import os
import threading

from upgrader import runkey
from upgrader.runs import GUARD_ENV

JOIN_LIMIT = 120.0  # at most this long the commit waits for it; then the hook decides (its own bounds apply)


def preload() -> None:
    """Import what deciding needs (the cluster's side, the settings' reader, python-apt), changing nothing:
    ``apply`` does it before its go, while the orchestrator still drains the node. One that fails here
    fails again where it is used, and is said there."""
    import importlib

    for name in ("apt", "upgrader.boot", "upgrader.config", "upgrader.guard.auto", "upgrader.guard.decide",
                 "upgrader.guard.peer", "upgrader.guard.record", "upgrader.pacemaker.live"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class Ahead:
    """The verdict being decided in a thread for this process's apt run (``run_id``, the orchestrator's)."""

    def __init__(self, run_id: str) -> None:
        self.key = runkey.key_of(os.getpid())
        self.verdict: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None
        # UPGRADER_GUARD=off (or a wrong value): the hook's own override or refusal says so, loudly.
        if self.key is None or os.environ.get(GUARD_ENV, "").lower() not in ("", "on"):
            return
        self._thread = threading.Thread(target=self._decide, args=(run_id,), name="guard-ahead", daemon=True)
        self._thread.start()

    def _decide(self, run_id: str) -> None:
        from upgrader.guard import store

        try:
            if store.read_verdict(self.key) is not None:
                return
            from upgrader.guard.record import decide_run

            self.verdict = decide_run(self.key, run_id)
            store.event(self.key, "pre-invoke", self.verdict[0] + "-ahead", self.verdict[1])
        except Exception:  # noqa: BLE001 - whatever failed here, the hook decides the run itself
            self.verdict = None

    def wait(self, limit: float = JOIN_LIMIT) -> tuple[str, str] | None:
        """The verdict once decided (None: left to the hook); waits at most ``limit`` seconds."""
        if self._thread is not None:
            self._thread.join(limit)
            if self._thread.is_alive():
                return None
        return self.verdict
