"""Where a ``rolling-upgrade`` command's wall time goes: its steps and every external command, timed.

Runs the tool's own ``main`` in this process with a few of its functions
wrapped (they only note the time; arguments and results pass through), and
writes one JSON document: the import time, the wall time and each event
(start offset, seconds, kind, what, thread):

- ``span`` events for the procedure's steps: waiting for the cluster to
  settle, the health check of a move, the upgrade on a node (``apply``, with
  the seconds the node's own upgrade took in-process), planning every node,
  the lock's heartbeat, a history line (with the record's node, phase and
  event: :func:`records` gives the run's phases on this clock);
- ``command`` events for every external command (:class:`~upgrader.runner.Runner`),
  named by program (``crm_mon``, ``cibadmin query``, ``ssh rolling-upgrade apply``);
- ``pause`` events for every ``time.sleep``.

    python -m upgrader_bench.trace OUT.json -- run --yes --json     (inside a lab node)

:func:`breakdown` splits the main thread's wall time into the steps and the
rest (preflight reads, standby switches, constraints, clean-up, interpreter
start-up and Python's own work).
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

Event = dict[str, Any]

HISTORY = "history line"
# (module, class, method, step name): the steps a run's wall time is split into.
SPANS = (
    ("upgrader.pacemaker.live", "Cluster", "wait_settled", "settle"),
    ("upgrader.orchestrator.gate", "HealthGate", "verify", "health check"),
    ("upgrader.orchestrator.remote", "Nodes", "apply", "upgrade (apply on the node)"),
    ("upgrader.orchestrator.context", "RunContext", "plan_all", "plan every node"),
    ("upgrader.pacemaker.lock", "UpgradeLock", "heartbeat", "lock heartbeat"),
    ("upgrader.history", "History", "record", HISTORY),
)
REST = "the rest (preflight, standby, constraints, clean-up, start-up)"


def kind_of(argv: Sequence[str]) -> str:
    """A short name for a command line: the program, or for the remote shell / tool the subcommand."""
    words = [str(a) for a in argv]
    if not words:
        return "?"
    if words[0] == "ssh":
        rest = [w.strip("'") for w in words[1:] if not w.startswith("-") and "=" not in w]
        tool = next((i for i, w in enumerate(rest) if w.endswith("rolling-upgrade")), None)
        if tool is not None and tool + 1 < len(rest):
            return f"ssh rolling-upgrade {rest[tool + 1]}"
        return "ssh " + (Path(rest[1]).name if len(rest) > 1 else "?")
    if words[0] == "env":
        words = [w for w in words[1:] if "=" not in w] or words
    name = Path(words[0]).name
    if name == "rolling-upgrade" and len(words) > 1:
        return f"rolling-upgrade {words[1]}"
    if name == "crm_attribute":
        return "crm_attribute " + ("query" if "--query" in words else "delete" if "--delete" in words else "update")
    if name == "cibadmin":
        return "cibadmin " + next((w[2:] for w in words[1:] if w in ("--query", "--create", "--delete", "--modify",
                                                                      "--replace")), "?")
    return name


def install(events: list[Event], t0: float) -> None:
    """Wrap the steps, the Runner and ``time.sleep`` so that each call appends an event."""
    from upgrader.runner import Runner

    lock = threading.Lock()

    def note(kind: str, name: str, what: str, started: float, **extra: Any) -> None:
        with lock:
            events.append({"at": round(started - t0, 4), "seconds": round(time.monotonic() - started, 4),
                           "kind": kind, "name": name, "what": what[:200],
                           "thread": threading.current_thread().name, **extra})

    def command(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def traced(self: Runner, argv: Sequence[str], *args: Any, **kw: Any) -> Any:
            started = time.monotonic()
            try:
                return method(self, argv, *args, **kw)
            finally:
                full = [*self.prefix, *argv]
                note("command", kind_of(full), " ".join(str(a) for a in full), started)
        return traced

    Runner.call = command(Runner.call)  # type: ignore[method-assign]
    Runner.stream = command(Runner.stream)  # type: ignore[method-assign]

    def span(method: Callable[..., Any], name: str) -> Callable[..., Any]:
        @functools.wraps(method)
        def traced(*args: Any, **kw: Any) -> Any:
            started, result = time.monotonic(), None
            try:
                result = method(*args, **kw)
                return result
            finally:
                extra: dict[str, Any] = {"record": record_fields(args, kw)} if name == HISTORY else {}
                inner = getattr(result, "events", None)
                if isinstance(inner, list):  # an ApplyResult: the node's own in-process upgrade time
                    final = next((e for e in reversed(inner) if e.get("event") == "result"), {})
                    if isinstance(final.get("seconds"), (int, float)):
                        extra["inner_seconds"] = final["seconds"]
                note("span", name, method.__qualname__, started, **extra)
        return traced

    for module, cls, attr, name in SPANS:
        owner = getattr(importlib.import_module(module), cls)
        setattr(owner, attr, span(getattr(owner, attr), name))

    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        started = time.monotonic()
        real_sleep(seconds)
        note("pause", "pause", f"sleep {seconds:.3f}", started)

    time.sleep = sleep


def record_fields(args: Sequence[Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    """The node, phase and event of a ``History.record(self, run_id, node, phase, event, **data)`` call."""
    names = ("run_id", "node", "phase", "event")
    given = {**dict(zip(names, args[1:])), **{k: kw[k] for k in names if k in kw}}
    return {k: given.get(k) for k in ("node", "phase", "event")}


def records(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's history records on the trace's clock, in order: ``at`` (seconds from the start), node,
    phase, event."""
    found = [{"at": e["at"], **e["record"]} for e in doc["events"]
             if e["kind"] == "span" and e["name"] == HISTORY and isinstance(e.get("record"), dict)]
    return sorted(found, key=lambda r: r["at"])


def breakdown(doc: Mapping[str, Any]) -> dict[str, float]:
    """Seconds of the main thread per step (:data:`SPANS`), and the rest of the wall time."""
    found = {name: 0.0 for *_, name in SPANS}
    for e in doc["events"]:
        if e["kind"] == "span" and e["thread"] == "MainThread":
            found[e["name"]] += e["seconds"]
    found[REST] = max(0.0, doc["seconds"] - sum(found.values()))
    return {k: round(v, 3) for k, v in found.items()}


def commands(doc: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Count and seconds per kind of external command, every thread (threads overlap in time)."""
    found: dict[str, dict[str, float]] = {}
    for e in doc["events"]:
        if e["kind"] == "command":
            f = found.setdefault(e["name"], {"count": 0, "seconds": 0.0})
            f["count"] += 1
            f["seconds"] = round(f["seconds"] + e["seconds"], 3)
    return dict(sorted(found.items(), key=lambda kv: -kv[1]["seconds"]))


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[2:] if argv[1:2] == ["--"] else argv[1:]
    events: list[Event] = []
    t0 = time.monotonic()
    install(events, t0)
    from upgrader.cli import main as tool_main

    imported = time.monotonic() - t0
    code = 1
    try:
        code = tool_main(args)
    finally:
        out.write_text(json.dumps({"argv": args, "exit": code, "import_seconds": round(imported, 4),
                                   "seconds": round(time.monotonic() - t0, 4), "events": events}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
