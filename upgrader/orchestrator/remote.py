"""Reaching a node: locally, or through the configured remote shell, running this same tool there.

Package work always runs on the node itself, in a child process
(``rolling-upgrade plan --local --json`` and ``rolling-upgrade apply``), the
same way for the local node and for a peer. ``apply`` writes JSON lines:
``{"event": "progress", ...}`` while it works and one ``{"event": "result", ...}``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from upgrader.config import Config, node_runner, tool_path
from upgrader.packages.pkgset import PackageSet
from upgrader.packages.plan import Change
from upgrader.pacemaker.holds import Hold
from upgrader.runs import RUN_ID_ENV
from upgrader.runner import NODE_TIMEOUT, PLAN_TIMEOUT, RUN_STATE_TIMEOUT, Channel, Runner

# apply results that leave the node's packages as they were
UNTOUCHED = ("download-failed", "refused", "busy", "no-go", "unavailable")
READY, GO = "ready", "go\n"  # apply's first line, and the answer without which it touches nothing
WAIT, NO = "wait\n", "no\n"  # to an apply started ahead of its node's drain: the go comes later; no go at all


@dataclass(frozen=True)
class NodePlan:
    node: str
    changes: tuple[Change, ...] = ()
    error: str | None = None
    skipped: tuple[tuple[Change, str], ...] = ()  # pending, but left out by the selection (and why)
    pins: frozenset[Hold] | None = None  # the holds its pin file pins (None: unknown, unreadable)

    @property
    def ha_stack(self) -> bool:
        return any(c.ha_stack for c in self.changes)

    @property
    def security(self) -> int:
        return sum(c.security for c in self.changes)


def pins_of(doc: dict[str, Any]) -> frozenset[Hold] | None:
    """The holds a node's ``plan --local --json`` says its pin file pins; None when it could not say
    (an unreadable pin file, an older tool, a malformed entry): that node is synced."""
    try:
        return frozenset(Hold(d["package"], d["version"], d["run"], d["node"], d["since"]) for d in doc["pins"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    changes: tuple[Change, ...] = ()
    error: str | None = None
    reboot_required: bool = False
    stale_processes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # left on old code on the node: to restart
    reboot: tuple[str, ...] = ()  # why it needs a reboot
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list, compare=False)
    touched: bool = True  # False: it failed before dpkg ran (download, the guard, another apt), the node is unchanged
    unavailable: bool = False  # the run's set cannot be installed there (a version gone since staging)


@dataclass(frozen=True)
class StageResult:
    """``result``: staged, nothing (the set has nothing for the node), unavailable (a version of the set is
    missing there: the node waits for a later run), download-failed, busy or failed (no result came)."""

    node: str
    result: str
    error: str | None = None
    changes: tuple[Change, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in ("staged", "nothing")


REMOTE_SHELL_LOST = 255  # ssh's own error: the connection failed or dropped


class Gate:
    """When an apply gets its go: at once, when it says it is ready."""

    def __init__(self) -> None:
        self.readied = self.went = False
        self.final: dict[str, Any] = {}

    def talk(self, channel: Channel) -> None:
        pass

    def at_ready(self) -> str:
        self.readied = self.went = True
        return GO

    def at_waiting(self) -> None:
        pass


class Prepared(Gate):
    """An apply started ahead of its node's drain (:meth:`Nodes.prepare_apply`), in a thread of its own.

    Told ``wait`` when ready; then :meth:`go` or :meth:`drop`. The go is sent only over a session just
    shown to carry: a ``wait`` answered ``waiting`` within :data:`PULSE_LIMIT` (or a ready that comes after
    the go was due). A session that does not answer (its node cut off during the drain) is ended without a
    go, so that nothing ran there, as for an apply that could not start; :meth:`Nodes.apply` then starts
    a fresh one, which says so. Bounded by the wait (:data:`WAIT_LIMIT`, apply's own) and, from its go on,
    by the upgrade's own ``timeout``, as an apply started then would be."""

    def __init__(self, nodes: Nodes, node: str, run_id: str, timeout: float, set_digest: str | None) -> None:
        super().__init__()
        self.upgrade = (run_id, set_digest)
        self.timeout = timeout
        self.result: ApplyResult | None = None
        self._state = threading.Condition()
        self._channel: Channel | None = None
        self._due: str | None = None  # what a ready that comes now is answered (GO, NO), None: WAIT
        self._waits = self._answered = 0
        self._finished = False  # its command ended (its result is in)
        self._on_event: Callable[[dict[str, Any]], None] = lambda e: None  # the upgrade's, from its go
        self._thread = threading.Thread(target=self._run, args=(nodes, node, run_id, set_digest),
                                        name=f"apply-{node}", daemon=True)
        self._thread.start()

    def _run(self, nodes: Nodes, node: str, run_id: str, set_digest: str | None) -> None:
        try:
            self.result = nodes._apply(node, run_id, lambda e: self._on_event(e), WAIT_LIMIT + GO_GRACE,
                                       set_digest, self)
        finally:
            with self._state:
                self._finished = True
                self._state.notify_all()

    def talk(self, channel: Channel) -> None:
        with self._state:
            self._channel = channel

    def at_ready(self) -> str:
        with self._state:
            self.readied = True
            self._state.notify_all()
            if self._due is None:
                self._waits += 1
                return WAIT
            if self._due == GO and self._channel is not None:
                self._channel.rebound(self.timeout)
            self.went = self._due == GO
            return self._due

    def at_waiting(self) -> None:
        with self._state:
            self._answered += 1
            self._state.notify_all()

    def go(self, on_event: Callable[[dict[str, Any]], None]) -> ApplyResult | None:
        """The go, over a session that carries, then the upgrade's result; None: it never ended."""
        self._on_event = on_event
        with self._state:
            if not self.readied:  # a ready that comes in time is answered go at once
                self._due = GO
                self._state.wait_for(lambda: self.readied or self._finished, PULSE_LIMIT)
                carries = self.readied
            elif self._channel is not None and self._channel.send(WAIT):
                self._waits += 1
                self._state.wait_for(lambda: self._answered >= self._waits or self._finished, PULSE_LIMIT)
                carries = self._answered >= self._waits and not self._finished
                if carries:
                    self._channel.rebound(self.timeout)
                    self.went = self._channel.send(GO)
            else:
                carries = False
            if not carries:
                self._end()
        self._thread.join()
        return self.result

    def drop(self) -> None:
        with self._state:
            self._due = NO
            if self.readied and self._channel is not None:
                self._channel.send(NO)
        self._thread.join(DROP_GRACE)
        if self._thread.is_alive():
            with self._state:
                self._end()

    def _end(self) -> None:
        """No go, ever: a ready that still comes is answered no, and the command is ended (lock held)."""
        self._due = NO
        if self._channel is not None:
            self._channel.end()


WAIT_LIMIT = 600.0  # as apply's WAIT_TIMEOUT (upgrader.cli.apply): how long a prepared apply waits for its go
PULSE_LIMIT = 10.0  # how long a prepared apply's session has to answer the wait sent before its go
GO_GRACE = 60.0  # beyond it, for the go itself to arrive and be read
DROP_GRACE = 2.0  # how long a dropped apply is given to end (it ends at once: nothing to undo), then ended


class Nodes:
    """Runners and package operations for every node, from the node this tool runs on."""

    def __init__(self, config: Config, local: str, tool: str | None = None) -> None:
        self.config = config
        self.local = local
        self.tool = tool or tool_path()
        self._prepared: dict[str, Prepared] = {}

    def runner(self, node: str, timeout: float = NODE_TIMEOUT) -> Runner:
        return node_runner(self.config, node, self.local, Runner(timeout=timeout))

    def run_state(self, node: str, run_id: str) -> str | None:
        """Whether the apt run ``run_id`` still runs on ``node`` (running, finishing, ended), asked there;
        None when ``node`` could not say."""
        result = self.runner(node, timeout=RUN_STATE_TIMEOUT).call([self.tool, "run-state", run_id])
        state = result.stdout.strip()
        return state if result.returncode == 0 and state in ("running", "finishing", "ended") else None

    def plan(self, node: str) -> NodePlan:
        result = self.runner(node, timeout=PLAN_TIMEOUT).call([self.tool, "plan", "--local", "--json"])
        if result.returncode != 0:
            why = result.last_words
            return NodePlan(node, error=f"planning on {node} failed: {why}")
        try:
            doc = json.loads(result.stdout)
            return NodePlan(node, tuple(Change.from_json(c) for c in doc["changes"]), pins=pins_of(doc))
        except (ValueError, KeyError, TypeError) as exc:
            return NodePlan(node, error=f"planning on {node} gave unreadable output ({exc})")

    def stage(self, node: str, pkgset: PackageSet, on_event: Callable[[dict[str, Any]], None],
              timeout: float = 3600, download: bool = True) -> StageResult:
        """The run's set kept on ``node`` and its archives downloaded there (nothing installed); never raises.

        ``download`` false: the set is kept and checked there (``stage --no-download``), nothing downloaded."""
        final: dict[str, Any] = {}

        def line(text: str) -> None:
            try:
                event = json.loads(text)
            except ValueError:
                return None
            if isinstance(event, dict) and event.get("event") == "result":
                final.update(event)
            elif isinstance(event, dict):
                on_event(event)
            return None

        doc = json.dumps(pkgset.document())
        argv = [self.tool, "stage", "--events", *(() if download else ("--no-download",))]
        result = self.runner(node).stream(argv, line, timeout=timeout, input=doc)
        if not final:
            return StageResult(node, "failed", f"staging on {node} ended without a result: {result.last_words}",
                               seconds=result.seconds)
        try:
            changes = tuple(Change.from_json(c) for c in final.get("changes", []))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return StageResult(node, "failed", f"staging on {node} gave an unreadable result ({exc})",
                               seconds=result.seconds)
        return StageResult(node, str(final.get("result")), final.get("error"), changes, result.seconds)

    def prepare_apply(self, node: str, run_id: str, timeout: float = 3600, set_digest: str | None = None) -> None:
        """``apply`` started on ``node`` now, ahead of its upgrade: told ``wait`` when it is ready, it waits
        for the go that :meth:`apply` sends once the node is drained (its interpreter, python-apt and the
        guard's code load meanwhile: about 0.3 s of a node's upgrade on the lab's nodes). Until that go it
        touches nothing; :meth:`drop_prepared` tells it no."""
        self.drop_prepared(node)
        self._prepared[node] = Prepared(self, node, run_id, timeout, set_digest)

    def drop_prepared(self, node: str) -> None:
        """The apply started ahead for ``node``, if it was not used: told no (it ends, nothing changed)."""
        prepared = self._prepared.pop(node, None)
        if prepared is not None:
            prepared.drop()

    def apply(self, node: str, run_id: str, on_event: Callable[[dict[str, Any]], None],
              timeout: float = 3600, set_digest: str | None = None) -> ApplyResult:
        """Upgrade ``node``'s packages now (it must be drained); never raises for a failed upgrade.

        Whether anything ran there is a fact, not a reading of ssh's words: ``apply`` prints
        ``ready`` before it touches anything and goes on only once it reads ``go`` back. Without
        our ``go`` (the remote shell never connected, or dropped before), nothing ran there.
        An apply started ahead for the same upgrade (:meth:`prepare_apply`) gets the go; one that our go
        never reached (it ended before: its shell dropped, its wait ran out) is started afresh.
        """
        prepared = self._prepared.pop(node, None)
        if prepared is not None and prepared.upgrade == (run_id, set_digest):
            result = prepared.go(on_event)
            if result is not None and prepared.went and prepared.final.get("result") != "no-go":
                return result
        elif prepared is not None:
            prepared.drop()
        return self._apply(node, run_id, on_event, timeout, set_digest, Gate())

    def _apply(self, node: str, run_id: str, on_event: Callable[[dict[str, Any]], None], timeout: float,
               set_digest: str | None, gate: Gate) -> ApplyResult:
        events: list[dict[str, Any]] = []
        final = gate.final

        def line(text: str) -> str | None:
            try:
                event = json.loads(text)
            except ValueError:
                return None
            if not isinstance(event, dict):
                return None
            events.append(event)
            if event.get("event") == READY and not gate.readied:
                return gate.at_ready()
            if event.get("event") == "waiting":
                gate.at_waiting()
                return None
            if event.get("event") == "result":
                final.update(event)
            else:
                on_event(event)
            return None

        argv = ["env", f"{RUN_ID_ENV}={run_id}", self.tool, "apply", "--events",
                *(["--set", set_digest] if set_digest else [])]
        result = self.runner(node).stream(argv, line, timeout=timeout, replies=True, talk=gate.talk)
        went = gate.went
        if not final:
            why = result.last_words
            lost = node != self.local and result.returncode == REMOTE_SHELL_LOST
            if not went:
                error = (f"could not reach {node} to upgrade it ({why}); nothing ran there" if lost
                         else f"the upgrade on {node} did not start ({why}); nothing ran there")
                return ApplyResult(False, error=error, seconds=result.seconds, events=events, touched=False)
            if lost:
                return ApplyResult(False, error=f"lost contact with {node} during its upgrade (the remote shell "
                                   f"ended: {why}); dpkg may still be running there", seconds=result.seconds,
                                   events=events)
            return ApplyResult(False, error=f"the upgrade on {node} ended without a result: {why}",
                               seconds=result.seconds, events=events)
        return ApplyResult(
            ok=bool(final.get("ok")) and result.returncode == 0,
            changes=tuple(Change.from_json(c) for c in final.get("changes", [])),
            error=final.get("error"),
            reboot_required=bool(final.get("reboot_required")),
            stale_processes=tuple(final.get("stale_processes", [])),
            services=tuple(final.get("services", [])),
            reboot=tuple(final.get("reboot", [])),
            seconds=result.seconds,
            events=events,
            touched=final.get("result") not in UNTOUCHED,
            unavailable=final.get("result") == "unavailable",
        )
