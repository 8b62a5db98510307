"""Reaching a node: locally, or through the configured remote shell, running this same tool there.

Package work always runs on the node itself, in a child process
(``rolling-upgrade plan --local --json`` and ``rolling-upgrade apply``), the
same way for the local node and for a peer. ``apply`` writes JSON lines:
``{"event": "progress", ...}`` while it works and one ``{"event": "result", ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from upgrader.config import Config, node_runner, tool_path
from upgrader.packages.pkgset import PackageSet
from upgrader.packages.plan import Change
from upgrader.pacemaker.holds import Hold
from upgrader.runs import RUN_ID_ENV
from upgrader.runner import NODE_TIMEOUT, PLAN_TIMEOUT, RUN_STATE_TIMEOUT, Runner

# apply results that leave the node's packages as they were
UNTOUCHED = ("download-failed", "refused", "busy", "no-go", "unavailable")
READY, GO = "ready", "go\n"  # apply's first line, and the answer without which it touches nothing


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


class Nodes:
    """Runners and package operations for every node, from the node this tool runs on."""

    def __init__(self, config: Config, local: str, tool: str | None = None) -> None:
        self.config = config
        self.local = local
        self.tool = tool or tool_path()

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

    def apply(self, node: str, run_id: str, on_event: Callable[[dict[str, Any]], None],
              timeout: float = 3600, set_digest: str | None = None) -> ApplyResult:
        """Upgrade ``node``'s packages now (it must be drained); never raises for a failed upgrade.

        Whether anything ran there is a fact, not a reading of ssh's words: ``apply`` prints
        ``ready`` before it touches anything and goes on only once it reads ``go`` back. Without
        our ``go`` (the remote shell never connected, or dropped before), nothing ran there.
        """
        events: list[dict[str, Any]] = []
        final: dict[str, Any] = {}
        went = False

        def line(text: str) -> str | None:
            nonlocal went
            try:
                event = json.loads(text)
            except ValueError:
                return None
            if not isinstance(event, dict):
                return None
            events.append(event)
            if event.get("event") == READY and not went:
                went = True
                return GO
            if event.get("event") == "result":
                final.update(event)
            else:
                on_event(event)
            return None

        argv = ["env", f"{RUN_ID_ENV}={run_id}", self.tool, "apply", "--events",
                *(["--set", set_digest] if set_digest else [])]
        result = self.runner(node).stream(argv, line, timeout=timeout, replies=True)
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
