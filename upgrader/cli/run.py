"""``rolling-upgrade run``, ``node``, ``node --finish``, ``resume`` and ``unquarantine``; the run's report.

Exit codes: 0 done or nothing to do; 1 failed and failed back, the cluster
healthy; 2 usage or configuration error; 3 refused by a safety check,
nothing changed; 4 failed and needs a person.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from upgrader import config as configuration
from upgrader.cli.progress import ConsoleReport
from upgrader.cli.render import cell, summary, summary_lines
from upgrader.orchestrator import steering
from upgrader.history import HistoryError
from upgrader.orchestrator.procedure import NodeResult, Outcome, Refused, Rollout
from upgrader.orchestrator.recovery import recover
from upgrader.orchestrator.remote import NodePlan
from upgrader.orchestrator.start import wait_joined
from upgrader.orchestrator.start import rollout as new_rollout
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.pacemaker.lock import LockError
from upgrader.pacemaker.state import ParseError
from upgrader.runner import CommandError
from upgrader.runs import APT_RUN_PREFIX, RUN_ID_ENV, WAITING


def rollout(cluster: Cluster, out: Console, as_json: bool, security_only: bool = False) -> Rollout:
    """The Rollout of this command, its progress on ``out`` (none with --json); ``security_only``: its
    selection takes security updates only (``run --security-only``)."""
    return new_rollout(cluster, ConsoleReport(out, quiet=as_json), security_only=security_only)


def resume(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    """At boot (cron @reboot): end the run of this node its reboot interrupted; otherwise nothing.

    Waits (up to Rejoin-Timeout) until the cluster stack answers and this node is online, then
    rolls back / finishes what the run left, as ``run`` does before its own rollout.
    """
    cfg = configuration.load()
    try:
        wait_joined(cluster, cfg.rejoin_timeout)
    except NotSettled as exc:
        print(f"rolling-upgrade resume: this node did not join the cluster: {exc}", file=sys.stderr)
        return Outcome.NEEDS_PERSON
    r = rollout(cluster, out, as_json)
    try:
        r.recovered = recover(cluster, r.nodes, r.history, r.config)
    except (CommandError, NotSettled, LockError, HistoryError) as exc:
        _finish(out, r, as_json, Outcome.NEEDS_PERSON, None, f"the interrupted run could not be ended: {exc}")
        return Outcome.NEEDS_PERSON
    lines = r.recovered or ["nothing to resume: no interrupted run of this node holds the lock"]
    if as_json:
        print(json.dumps({"run": r.run_id, "exit": 0, "recovered": r.recovered}, indent=2))
    else:
        for line in lines:
            r.report.step(None, "resume", line)
    return Outcome.DONE


def run(cluster: Cluster, out: Console, *, yes: bool, nodes: list[str] | None, as_json: bool,
        source: str = "run", security_only: bool = False) -> int:
    r = rollout(cluster, out, as_json, security_only)
    confirm = None if yes or as_json else _confirm_on_terminal(out)
    try:
        r.recovered = recover(cluster, r.nodes, r.history, r.config)
    except (CommandError, NotSettled, LockError, HistoryError) as exc:
        error = f"an interrupted run was found but could not be rolled back: {exc}"
        _finish(out, r, as_json, Outcome.NEEDS_PERSON, None, error)
        send_report(r, source, Outcome.NEEDS_PERSON, None, error)
        return Outcome.NEEDS_PERSON
    for line in r.recovered:
        r.report.step(None, "recover", line)
    try:
        code = r.run(nodes, confirm=confirm)
    except Refused as exc:
        _finish(out, r, as_json, Outcome.REFUSED, str(exc))
        send_report(r, source, Outcome.REFUSED, str(exc))
        return Outcome.REFUSED
    _finish(out, r, as_json, code, None)
    send_report(r, source, code, None)
    return code


def node(cluster: Cluster, out: Console, *, yes: bool, as_json: bool) -> int:
    """This node only: what cron and the APT hooks' finishing step use."""
    local = cluster.local_node()
    return run(cluster, out, yes=yes, nodes=[local], as_json=as_json, source="node")


def finish(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    """``node --finish``: the APT hooks' finishing step (UPGRADER_RUN_ID names the apt run's lock)."""
    if not os.environ.get(RUN_ID_ENV):
        print("rolling-upgrade: node --finish is started by the APT hooks with UPGRADER_RUN_ID set to the apt "
              "run's lock; to upgrade this node yourself, run 'rolling-upgrade node'", file=sys.stderr)
        return Outcome.USAGE
    run_id = os.environ[RUN_ID_ENV]
    if run_id.startswith(APT_RUN_PREFIX):  # while this step lives, the apt run's lock is not an ended run's
        from upgrader.guard.finish import record_finishing
        from upgrader.runkey import FINISHING_KEY

        record_finishing(run_id.removeprefix(APT_RUN_PREFIX), FINISHING_KEY)
    r = rollout(cluster, out, as_json)
    try:
        code = r.finish()
    except Refused as exc:
        _finish(out, r, as_json, Outcome.REFUSED, str(exc))
        send_report(r, "finishing step", Outcome.REFUSED, str(exc))
        return Outcome.REFUSED
    _finish(out, r, as_json, code, None)
    send_report(r, "finishing step", code, None)  # a fail back at 06:00 after unattended-upgrades must be told
    return code


def lock_now():
    from upgrader.pacemaker.lock import utcnow

    return utcnow()


def send_report(r: Rollout, source: str, code: int, refused: str | None, error: str | None = None) -> None:
    """The run's end in the journal (its exit code; a refusal first), its report under Mail, MailReport and
    Webhook, as the window sends its own, and its metrics; never fails the run."""
    import socket

    from upgrader import journal, metrics
    from upgrader.nightly import report
    from upgrader.syslog import syslog

    nodes = getattr(r, "nodes", None)
    journal.run_end(r.run_id, int(code), Outcome(code).name.lower(), refused=refused, error=error or r.stop_reason,
                    source=source, node=getattr(nodes, "local", None))
    cfg = r.config
    if getattr(r, "cluster", None) is not None:
        metrics.record(r.cluster, cfg.metrics_dir, run_start=getattr(r, "started", None), run_end=lock_now(),
                       run_exit=int(code), results={n: (x.result, x.seconds) for n, x in r.results.items()},
                       left={n: (len(x.old_code), bool(x.reboot)) for n, x in r.results.items()},
                       pending=r.pending_after(), outages=r.longest_outages())
    if not cfg.mail and not cfg.webhook:
        return
    try:
        log = [line for line in (error or r.stop_reason,) if line]
        summary = report.Summary(r.run_id, socket.gethostname(), Outcome(code).name.lower(), int(code),
                                 [vars(x) for x in r.results.values()], refused, log, source=source)
        for said, problem in report.deliver(summary, cfg.mail, cfg.mail_report, cfg.webhook):
            syslog(said, "user.warning" if problem else "user.info", run_id=r.run_id)
            if problem:
                print(f"rolling-upgrade: {said}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the report is news about the run, never a reason to fail it
        syslog(f"run {r.run_id}: its report could not be sent: {type(exc).__name__}: {exc}", "user.warning",
               run_id=r.run_id)


def unquarantine(cluster: Cluster, out: Console, node_name: str) -> int:
    if steering.clear_quarantine(cluster, node_name):
        try:
            after = after_quarantine(cluster, node_name)
        except (CommandError, ParseError) as exc:  # cleared all the same: said first, never lost in an error
            after = f"could not tell whether it is in standby ({exc})"
        out.print(f"{node_name}: quarantine cleared; {after}")
    else:
        out.print(f"{node_name} was not quarantined; nothing changed")
    return Outcome.DONE


def after_quarantine(cluster: Cluster, node_name: str) -> str:
    """What becomes of a node whose quarantine was just cleared: a run brings it online only when a run's
    drain left it in standby (its waiting mark, as a failed dpkg leaves it); a fail back's standby, like an
    operator's, is no run's to end."""
    by_hand = f"crm_attribute --node {node_name} --name standby --update off"
    found = cluster.state().node(node_name)
    if found is None:
        return "it is not in the cluster's status (crm_mon): see 'rolling-upgrade status'"
    if not found.standby:
        return "it is not in standby"
    if WAITING in steering.node_attributes(cluster).get(node_name, {}):
        return f"it stays in standby until you bring it online ({by_hand}) or the next run does"
    return (f"it stays in standby until you bring it online ({by_hand}); a run upgrades a node in standby "
            "but leaves it there, as an operator's standby")


def _no_terminal(plans: dict[str, NodePlan], order: list[str]) -> bool:
    raise Refused("refused: no terminal to confirm on; pass --yes to run without confirmation")


def _confirm_on_terminal(out: Console) -> Any:
    if not sys.stdin.isatty():
        return _no_terminal

    def confirm(plans: dict[str, NodePlan], order: list[str]) -> bool:
        for n in order:
            out.print(escape(f"  {n}: {summary(plans[n].changes)}"))
        question = escape(f"Upgrade {len(order)} node(s) in this order: {', '.join(order)}? [y/N] ")
        return out.input(question).strip().lower() in ("y", "yes")

    return confirm


def _finish(out: Console, r: Rollout, as_json: bool, code: int, refused: str | None, error: str | None = None) -> None:
    """The run's report; a terminal that went away loses the report, never the exit code (the history has it)."""
    try:
        _report(out, r, as_json, code, refused, error)
    except (OSError, ValueError):
        pass


def _report(out: Console, r: Rollout, as_json: bool, code: int, refused: str | None, error: str | None) -> None:
    results = list(r.results.values())
    if as_json:
        print(json.dumps({"run": r.run_id, "exit": int(code), "outcome": Outcome(code).name.lower(),
                          "refused": refused, "error": error or r.stop_reason, "recovered": r.recovered,
                          "package_set": r.package_set.document() if r.package_set else None,
                          "nodes": [vars(x) for x in results]}, indent=2, default=str))
        return
    if refused or error:
        print(refused or f"rolling-upgrade: {error}", file=sys.stderr)
        return
    out.print(_table(r.run_id, results))
    out.print(escape(f"run {r.run_id}: {Outcome(code).name.lower().replace('_', ' ')} (exit {int(code)})"))


def outage_lines(outages: dict[str, float], show: int = 3) -> list[str]:
    """The longest outages the watch saw in a node's moves, longest first (``app1 0.42s``); the others counted."""
    ranked = sorted(outages.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"{rid} {seconds:.2f}s" for rid, seconds in ranked[:show]]
    return lines + ([f"+{len(ranked) - show} more (--json)"] if len(ranked) > show else [])


def _table(run_id: str, results: list[NodeResult]) -> Table:
    """One row per node: its result, its packages summarized (``--json`` and the history list each one), its
    moves and last checks, the longest outages the watch saw (a column only when it saw any); every text from
    the nodes and the cluster escaped."""
    table = Table(title=escape(f"run {run_id}"))
    watched = any(x.outages for x in results)
    for col in ("node", "result", "packages", "moves", "checks", *(("longest outage",) if watched else ()),
                "left on old code", "time"):
        table.add_column(col)
    for x in results:
        colour = {"ok": "green", "failed": "red", "quarantined": "red"}.get(x.result, "")
        result = f"[{colour}]{escape(x.result)}[/]" if colour else escape(x.result)
        outage = (cell(outage_lines(x.outages)),) if watched else ()
        table.add_row(escape(x.node), result, cell(summary_lines(x.changes)) if x.changes else "", cell(x.moves),
                      cell(x.checks[-3:]), *outage, cell([*x.old_code, *(f"reboot: {r}" for r in x.reboot)]),
                      f"{x.seconds:.1f}s" if x.seconds else "")
    return table
