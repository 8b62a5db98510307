"""Verifying a move, and failing back from a bad one.

Every move is followed by the health checks of the resources that moved, on
the nodes they moved to (:class:`~upgrader.orchestrator.context.Checks`). A
bad check blames the patched nodes a check failed on (the suspects; every
patched node the move landed on when none of the failures is on one): the
fail back moves the resources onto old packages, checks them there, and
leaves the suspects in standby, quarantined, and holds back on every node the
package versions they installed in the run (:mod:`holding`). With no suspect the upgrade is not to blame:
the drained node comes back online. Either way the run ends: both return the
:class:`~upgrader.orchestrator.outcome.Stop` the procedure raises.
"""

from __future__ import annotations

from upgrader.orchestrator import holding
from upgrader.orchestrator.context import Result, RunContext
from upgrader.orchestrator.moves import Move, preferring
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.watching import watching
from upgrader.pacemaker.live import Check
from upgrader.pacemaker.state import ClusterState


def problems(run: RunContext, node: str, move: Move) -> str | None:
    """The failed checks of the moved resources in one line (recorded), or None when all are healthy."""
    report = move.checked if move.checked is not None else \
        run.checks.verify(move.moved, move.before, move.first_reading)
    run.results[node].checks += [str(p) for p in report.problems()] or [f"{len(move.moved)} resource(s) healthy"]
    if report.ok:
        return None
    # Blame the patched nodes a check failed on, not every patched node the move landed on.
    blamed = move.suspects & {r.node for r in report.failures}
    if blamed:
        move.suspects = blamed
    found = "; ".join(str(p) for p in report.problems())
    run.history.record(run.run_id, node, "verify", "end", ok=False, problems=found)
    return found


def drained_nodes(move: Move) -> list[str]:
    """The untouched nodes the move drained (a batch's: all of them), to put back online together."""
    return [n for n in (move.untouched, *move.untouched_too) if n]


def not_upgraded(run: RunContext, node: str, move: Move, problems: str) -> Stop:
    """Moved onto old packages and unhealthy there: not the upgrade's doing; the drained node back online."""
    run.back_online(*drained_nodes(move))
    drained = " and ".join((node, *move.untouched_too))
    return Stop(Outcome.NEEDS_PERSON, f"resources moved off {drained} are unhealthy on nodes that were not "
                f"upgraded: {problems}; {drained} {'were' if move.untouched_too else 'was'} put back online, "
                "nothing was upgraded")


def fail_back(run: RunContext, node: str, move: Move, problems: str) -> Stop:
    """Resources back onto old packages, checked there; the suspect node(s) standby and quarantined; what
    they installed in this run held back on every node (:func:`~upgrader.orchestrator.holding.hold_back`,
    after the resources are back, and also when the fail back itself fails: it never raises)."""
    run.phase(node, "fail-back")
    before = run.checks.baseline()
    try:
        with preferring(run, move.moved, patched=False), watching(run, node, move.moved):
            run.back_online(*drained_nodes(move))
            run.standby_again(sorted(move.suspects))
            for suspect in move.suspects:
                run.quarantine(suspect)
                run.results[suspect].result = Result.QUARANTINED
                run.results[suspect].error = f"quarantined: {problems}"
            after = run.cluster.wait_settled(off_nodes(list(move.moved), move.suspects),
                                             deadline=run.config.settle_timeout)
            back = {rid: sorted(after.running_on(rid))[0] for rid in move.moved}
            run.note_moves(node, None, back)
            report = run.checks.verify(back, before)
    finally:
        holding.hold_back(run, node, move.suspects)
    who = ", ".join(sorted(move.suspects))
    if report.ok:
        return Stop(Outcome.FAILED_BACK, f"health check failed after the move: {problems}; failed back onto "
                    f"old packages (healthy again), {who} in standby and quarantined")
    return Stop(Outcome.NEEDS_PERSON, f"health check failed after the move: {problems}; and still unhealthy "
                f"after failing back: {'; '.join(str(p) for p in report.problems())}")


def off_nodes(rids: list[str], nodes: set[str]) -> Check:
    def check(state: ClusterState) -> list[str]:
        return [f"{rid} still on {','.join(sorted(state.running_on(rid)))}" for rid in rids
                if not state.running_on(rid) or state.running_on(rid) & nodes]
    return check
