"""Where a rollout stops early, and how the stop is said.

Ctrl-C / SIGTERM are deferred to the next safe point: between nodes (during
the soak too), or after a node's drain and before its packages are touched
(it is then put back online). A node gone offline or a lost quorum stops the
run before the next node is drained, or after a drain (the node put back). The
patch window defers the nodes left. Whatever stops a run is reported and
recorded once (:func:`stopped`).
"""

from __future__ import annotations

import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Callable, Iterable, Iterator, Sequence

from upgrader.history import HistoryError
from upgrader.orchestrator.context import NodeResult, Result, RunContext
from upgrader.orchestrator.outcome import Deferred, Outcome, Stop
from upgrader.pacemaker.live import NotSettled
from upgrader.pacemaker.lock import LockError
from upgrader.pacemaker.state import ClusterState, ParseError
from upgrader.runner import CommandError

STOPS = (Stop, CommandError, ParseError, NotSettled, LockError)  # what stops a run where it is raised


@contextmanager
def signals_deferred(run: RunContext) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP noted for the next :func:`safe_point` while the block runs."""
    def note(signo: int, _frame: FrameType | None) -> None:
        run.interrupted = signal.Signals(signo).name
        try:
            run.report.step(None, "signal", f"{run.interrupted}: stopping at the next safe point")
        except Exception:  # noqa: BLE001 - a dead terminal must not turn a signal into a crash
            pass

    # SIGHUP too: the operator's session dropped; the run stops at the next safe point, as for Ctrl-C.
    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def named(nodes: Sequence[str]) -> str:
    """``node3``, ``node3 and node4``, ``node3, node4 and node5``."""
    return nodes[0] if len(nodes) == 1 else f"{', '.join(nodes[:-1])} and {nodes[-1]}"


def _nodes(node: str | Sequence[str] | None) -> list[str]:
    return [node] if isinstance(node, str) else list(node or ())


def safe_point(run: RunContext, node: str | Sequence[str] | None, drained_untouched: bool = False) -> None:
    """Stop here if a signal asked to: between nodes, or after draining ``node`` (a batch's nodes: all of
    them; put back online first, the cluster settled)."""
    if not run.interrupted:
        return
    nodes = _nodes(node)
    if nodes and drained_untouched:
        run.back_online(*nodes)
        run.cluster.wait_settled(None, deadline=run.config.settle_timeout)
    where = f"after draining {named(nodes)} (put back online, not upgraded)" if nodes else "between nodes"
    raise Stop(Outcome.NEEDS_PERSON, f"interrupted by {run.interrupted}: stopped at a safe point {where}")


def still_whole(run: RunContext, node: str | Sequence[str], drained_untouched: bool = False) -> ClusterState:
    """Stop before touching ``node`` (a batch's nodes) if a node left the cluster or quorum was lost since
    the preflight; drained (untouched), put back online first. The state it read (what the drain's settle
    starts from)."""
    state = run.cluster.state()
    gone = [n.name for n in state.nodes if not n.online]
    if state.summary.quorum and not gone:
        return state
    why = f"nodes offline: {', '.join(gone)}" if gone else "the cluster lost quorum"
    nodes = _nodes(node)
    if drained_untouched:
        run.back_online(*nodes)
        raise Stop(Outcome.NEEDS_PERSON, f"{why}; stopped after draining {named(nodes)} (put back online, not "
                   "upgraded)")
    raise Stop(Outcome.NEEDS_PERSON, f"{why}; stopped before draining {named(nodes)}")


def soak(run: RunContext) -> None:
    """Soak-Time between two nodes, at a safe point throughout, the lock kept fresh."""
    if run.config.soak_time:
        run.report.step(None, "soak", f"waiting {run.config.soak_time}s before the next node")
        end = time.monotonic() + run.config.soak_time
        while time.monotonic() < end:
            safe_point(run, None)
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            run.lock.heartbeat("soak")


def deferred(run: RunContext, rest: list[str], before_node: Callable[[str], str | None] | None) -> bool:
    """Whether ``before_node`` defers the next node; if so, ``rest`` is recorded as deferred, untouched."""
    reason = before_node(rest[0]) if before_node else None
    if not reason:
        return False
    for n in rest:
        run.results[n].result, run.results[n].error = Result.DEFERRED, reason
        run.history.record(run.run_id, n, "node", "deferred", reason=reason)
    run.report.step(rest[0], "defer", f"{', '.join(rest)} deferred: {reason}")
    return True


def stopped(run: RunContext, node: str | None, exc: Exception) -> Outcome:
    """Report and record why the run stops here; its exit code (an error mid-run needs a person)."""
    stop = exc if isinstance(exc, Stop) else Stop(Outcome.NEEDS_PERSON, f"stopped on an error: {exc}")
    run.stop_reason = str(stop)
    try:  # a full /var must not turn the stop into a traceback: the output still says it
        run.report.step(node, "stop", str(stop))
        run.history.record(run.run_id, node, "run", "note", result="stopped", reason=str(stop))
    except Exception:  # noqa: BLE001
        pass
    return stop.code


def unexpected(run: RunContext, node: str, exc: Exception, *, touched: bool) -> Stop:
    """An error nobody foresaw while ``node`` is worked on: ended like a failed check; the stop to raise.

    Untouched (drained, its packages as they were): back online. Touched (dpkg may have run, or it
    took resources again): standby, quarantined, its resources moved onto the others. Each step is
    tried whatever the one before did; the run then stops (exit 4), its lock released by the caller.
    """
    what = f"an unexpected error ({type(exc).__name__}: {exc})"
    try:  # the history itself may be what failed (a full /var): the node comes first
        run.history.record(run.run_id, node, "run", "note", error=what,
                           where=traceback.format_exception(exc)[-2].strip()[:300] if exc.__traceback__ else None)
    except Exception:  # noqa: BLE001
        pass
    done: list[str] = []
    try:
        if touched:
            run.cluster.set_standby(node, True)
            run.quarantine(node)
            done.append(f"{node} is in standby and quarantined (its packages may have changed)")
        elif node in run.kept_in_standby:
            done.append(f"{node} stays in standby, as an operator left it")
        else:
            run.back_online(node)
            done.append(f"{node} is back online, not upgraded")
        run.cluster.wait_settled(None, deadline=run.config.settle_timeout)
    except Exception as again:  # noqa: BLE001 - the stop must be said whatever the cluster does now
        done.append(f"putting {node} right failed too ({type(again).__name__}: {again}): check it by hand")
    return Stop(Outcome.NEEDS_PERSON, f"{what} while upgrading {node}; {'; '.join(done)}")


@dataclass
class NodeWork:
    """What :func:`recorded` needs to know of the node's work in its block."""

    result: NodeResult
    touched: bool = False  # its packages may have changed (set before the upgrade starts)

    def upgraded(self, changes: Iterable[Any]) -> None:
        """Its dist-upgrade ran to the end: what it installed (the plan's when it says nothing) kept in its
        result, and the node counted as upgraded (what is still pending after the run leaves it out)."""
        self.result.changes = [asdict(c) for c in changes] or self.result.changes
        self.result.upgraded = True


@contextmanager
def recorded(run: RunContext, node: str, changes: list[dict[str, Any]]) -> Iterator[NodeWork]:
    """One node's work: its result and history recorded whatever happens; a stop raised on, and an
    unexpected error ended like a failed check (:func:`unexpected`) and raised as its stop."""
    started = time.monotonic()
    work = NodeWork(run.results[node])
    result = work.result
    run.history.record(run.run_id, node, "node", "start", changes=changes)
    try:
        yield work
        result.result = Result.OK
    except Deferred as why:  # untouched and back online: the run goes on with the next node
        result.result, result.error = Result.DEFERRED, str(why)
        run.report.step(node, "defer", f"deferred: {why}")
    except STOPS as stop:
        result.result = Result.QUARANTINED if result.result == Result.QUARANTINED else Result.FAILED
        result.error = str(stop)
        raise
    except Exception as exc:  # a bug or the unforeseen: never a traceback with a node drained
        stop = unexpected(run, node, exc, touched=work.touched)
        result.result = Result.QUARANTINED if work.touched else Result.FAILED
        result.error = str(stop)
        raise stop from exc
    finally:
        result.seconds = round(time.monotonic() - started, 1)
        try:  # a history that cannot be written must not hide the stop (or the node's state) behind it
            run.history.record(run.run_id, node, "node", "end", result=result.result, seconds=result.seconds,
                               moves=result.moves, error=result.error, outages=result.outages)
        except HistoryError:
            pass
