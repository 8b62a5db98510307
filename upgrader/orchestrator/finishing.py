"""The APT hooks' finishing step: this node, upgraded by an apt run it was drained for, takes resources again.

The rollout's procedure from "fail over" on: this node comes online and
resources still on old packages come onto it, checked, failed back on a bad
check. In a two-node cluster the old peer then goes to standby, ready for its
own apt run (the seed idea); with more nodes this node takes its fair share,
from the nodes with most resources.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from upgrader.orchestrator import steering
from upgrader.orchestrator.context import NodeResult, Result, RunContext
from upgrader.orchestrator.moves import placement
from upgrader.orchestrator.outcome import Outcome, Refused
from upgrader.orchestrator.stops import STOPS, signals_deferred, stopped, unexpected
from upgrader.pacemaker import shapes
from upgrader.pacemaker.live import drained
from upgrader.pacemaker.lock import LockHeld
from upgrader.pacemaker.state import ClusterState
from upgrader.runs import APT_RUN_PREFIX, WAITING

FailOver = Callable[[str, Mapping[str, str]], None]  # the procedure's step: node, resources to take (id -> node)
CatchUp = Callable[[str], object]  # the procedure's check of what moved since it was last checked


def finish(run: RunContext, fail_over: FailOver, catch_up: CatchUp | None = None) -> Outcome:
    """The finishing step on this node; its exit code (:class:`Refused` while another run holds the lock)."""
    node = run.nodes.local
    state = run.cluster.state()
    run.all_nodes = [n.name for n in state.nodes]
    run.placed = placement(state)
    run.results[node] = NodeResult(node, result=Result.PENDING, changes=apt_changes(run.run_id))
    mark = steering.quarantined(run.cluster, [node]).get(node)
    if mark is not None:
        raise Refused(f"refused: {node} is quarantined ({mark}); it stays in standby: fix it, then clear it with "
                      f"'rolling-upgrade unquarantine {node}'")
    try:
        run.lock.acquire("fail-over")
    except LockHeld as exc:
        raise Refused(f"refused: {exc}; the finishing step of {node} waits for that run") from None
    with run.locked(), signals_deferred(run):
        try:
            plans = run.plan_all([n for n in run.all_nodes if n != node])
            for n, plan in plans.items():
                if not plan.changes and not plan.error:
                    run.mark_patched(n)
            run.mark_patched(node)
            take = fair_share(run, state, node)
            fail_over(node, take)
            old_peers = [n for n in run.all_nodes if n not in run.patched]
            if len(run.all_nodes) == 2 and old_peers:
                run.cluster.set_attribute(old_peers[0], WAITING, run.run_id)  # ours: a later run brings it back
                run.cluster.set_standby(old_peers[0], True)
                run.cluster.wait_settled(drained(old_peers[0], ()), deadline=run.config.settle_timeout)
                if catch_up is not None:
                    catch_up(node)  # what the old peer's standby moved onto this node is checked here too
                run.report.step(old_peers[0], "standby", "the old peer waits in standby for its own upgrade")
                run.history.record(run.run_id, old_peers[0], "standby", "note",
                                   reason="two-node cluster: the old peer waits in standby for its upgrade")
            run.results[node].result = Result.OK
            return Outcome.DONE
        except STOPS as exc:
            run.results[node].result, run.results[node].error = Result.FAILED, str(exc)
            return stopped(run, node, exc)
        except Exception as exc:  # the apt run changed this node: never a traceback with it half taken
            stop = unexpected(run, node, exc, touched=True)
            run.results[node].result, run.results[node].error = Result.QUARANTINED, str(stop)
            return stopped(run, node, stop)


def apt_changes(run_id: str) -> list[dict[str, Any]]:
    """What the apt run this step follows changed on this node, as a node result's changes (package,
    installed, candidate: the version dpkg has now), from the APT hooks' record of it; none for a run
    that is not an apt run's, or when the record is gone. A fail back holds these versions back."""
    if not run_id.startswith(APT_RUN_PREFIX):
        return []
    from upgrader.guard import record

    outcome = record.read_json(run_id.removeprefix(APT_RUN_PREFIX), record.RESULT) or {}
    changes = outcome.get("changes") if isinstance(outcome, dict) else None
    return [{"package": c["package"], "installed": c.get("old"),
             "candidate": None if c.get("action") == "remove" else c.get("now") or c.get("new")}
            for c in changes or [] if isinstance(c, dict) and isinstance(c.get("package"), str)]


def fair_share(run: RunContext, state: ClusterState, node: str) -> dict[str, str]:
    """Resources on old packages that ``node`` should take: all of them with one peer, else its share."""
    movable = {rid for n in state.nodes for rid in shapes.movable_on(state, n.name)}  # not clones
    on_old = {rid: sorted(state.running_on(rid))[0] for rid in state.top_level_ids()
              if rid in movable and state.running_on(rid) and not state.running_on(rid) & run.patched}
    if len(run.all_nodes) == 2:
        return on_old
    share = -(-len(state.top_level_ids()) // len(run.all_nodes))
    load: dict[str, int] = {}
    for where in on_old.values():
        load[where] = load.get(where, 0) + 1
    ranked = sorted(on_old.items(), key=lambda item: (-load[item[1]], item[0]))
    return dict(ranked[:share])
