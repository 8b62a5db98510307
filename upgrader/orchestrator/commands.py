"""``rolling-upgrade run``, ``node``, ``plan`` and ``unquarantine``: the orchestrator's commands."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from typing import Any

from rich.console import Console
from rich.table import Table
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from upgrader import config as configuration
from upgrader.hastack.control import StackError
from upgrader.orchestrator import steering
from upgrader.orchestrator.gate import HealthGate
from upgrader.orchestrator.history import History, HistoryError
from upgrader.orchestrator.procedure import Checks, NodeResult, Outcome, Refused, Rollout
from upgrader.orchestrator.recovery import recover, restart_own_stack
from upgrader.orchestrator.remote import NodePlan, Nodes
from upgrader.orchestrator.restarts import online
from upgrader.pacemaker.commands import Refused as PacemakerRefused
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.pacemaker.lock import LockError
from upgrader.runner import CommandError



class ConsoleReport:
    """Live progress on a terminal (or plain lines in a log); silent with --json."""

    def __init__(self, out: Console, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.started = time.monotonic()
        self._last_progress = 0.0

    def step(self, node: str | None, phase: str, text: str) -> None:
        if not self.quiet:
            at = time.monotonic() - self.started
            self.out.print(f"[dim]{at:6.1f}s[/] [bold]{node or 'cluster'}[/] [cyan]{phase}[/] {text}")

    def progress(self, node: str, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.quiet or (now - self._last_progress < 0.25 and event.get("percent", 0) < 100):
            return
        self._last_progress = now
        pct = event.get("percent")
        self.out.print(f"[dim]{now - self.started:6.1f}s[/] [bold]{node}[/] [cyan]apt[/] "
                       f"{f'{pct:5.1f}% ' if isinstance(pct, (int, float)) else ''}{event.get('text', '')}")


def new_run_id(node: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{node}-{uuid.uuid4().hex[:6]}"


def rollout(cluster: Cluster, out: Console, as_json: bool, checks: Checks | None = None) -> Rollout:
    cfg = configuration.load()
    restarted = own_stack_first(cluster, cfg)
    local = cluster.local_node()
    report = ConsoleReport(out, quiet=as_json)
    r = Rollout(cluster, Nodes(cfg, local), checks or default_checks(cluster, cfg), cfg,
                History(cfg.history_file), report, os.environ.get("UPGRADER_RUN_ID") or new_run_id(local))
    if restarted:
        report.step(local, "recover", restarted)
    return r


def own_stack_first(cluster: Cluster, cfg: configuration.Config) -> str | None:
    """This node's cluster stack, if a run of this node stopped it and died: started, and rejoined."""
    try:
        restarted = restart_own_stack(cfg, _host_names())
    except StackError as exc:
        raise PacemakerRefused(f"refused: {exc}") from None
    if restarted:
        wait_joined(cluster, cfg.rejoin_timeout)
    return restarted


def _host_names() -> set[str]:
    host = socket.gethostname()
    return {host, host.split(".")[0]}


def wait_joined(cluster: Cluster, timeout: float) -> str:
    """This node's name once its cluster stack answers and it is online (up to ``timeout`` seconds)."""
    end = time.monotonic() + timeout
    try:
        local = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(1), retry=retry_if_exception_type(CommandError),
                         reraise=True)(cluster.local_node)
    except CommandError as exc:
        raise NotSettled(f"the cluster stack on this node did not answer within {timeout:g}s: {exc}") from None
    cluster.wait_settled(online(local), deadline=max(1.0, end - time.monotonic()))
    return local


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


def default_checks(cluster: Cluster, cfg: configuration.Config) -> Checks:
    return HealthGate(cluster, cfg)


def run(cluster: Cluster, out: Console, *, yes: bool, nodes: list[str] | None, as_json: bool) -> int:
    r = rollout(cluster, out, as_json)
    confirm = None if yes or as_json else _confirm_on_terminal(out)
    try:
        r.recovered = recover(cluster, r.nodes, r.history, r.config)
    except (CommandError, NotSettled, LockError, HistoryError) as exc:
        _finish(out, r, as_json, Outcome.NEEDS_PERSON, None, f"an interrupted run was found but could not be "
                f"rolled back: {exc}")
        return Outcome.NEEDS_PERSON
    for line in r.recovered:
        r.report.step(None, "recover", line)
    try:
        code = r.run(nodes, confirm=confirm)
    except Refused as exc:
        _finish(out, r, as_json, Outcome.REFUSED, str(exc))
        return Outcome.REFUSED
    _finish(out, r, as_json, code, None)
    return code


def node(cluster: Cluster, out: Console, *, yes: bool, as_json: bool) -> int:
    """This node only: what cron and the APT hooks' finishing step use."""
    local = cluster.local_node()
    return run(cluster, out, yes=yes, nodes=[local], as_json=as_json)


def finish(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    """``node --finish``: the APT hooks' finishing step (UPGRADER_RUN_ID names the apt run's lock)."""
    if not os.environ.get("UPGRADER_RUN_ID"):
        print("rolling-upgrade: node --finish is started by the APT hooks with UPGRADER_RUN_ID set to the apt "
              "run's lock; to upgrade this node yourself, run 'rolling-upgrade node'", file=sys.stderr)
        return Outcome.USAGE
    r = rollout(cluster, out, as_json)
    try:
        code = r.finish()
    except Refused as exc:
        _finish(out, r, as_json, Outcome.REFUSED, str(exc))
        return Outcome.REFUSED
    _finish(out, r, as_json, code, None)
    return code


def plan(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    cfg = configuration.load()
    nodes = Nodes(cfg, cluster.local_node())
    r = Rollout(cluster, nodes, default_checks(cluster, cfg), cfg, History(cfg.history_file),
                ConsoleReport(out, quiet=True), "plan")
    state = cluster.state()
    order = r.order(state)
    plans = {n: nodes.plan(n) for n in order}
    moves = {n: [str(m) for m in cluster.predict_standby(n)] for n in order if plans[n].changes}
    if as_json:
        print(json.dumps({"order": [n for n in order if plans[n].changes],
                          "nodes": {n: _plan_doc(p) | {"moves": moves.get(n, [])} for n, p in plans.items()}},
                         indent=2))
        return Outcome.DONE
    table = Table(title="rolling-upgrade plan")
    for col in ("#", "node", "changes", "security", "HA stack", "moves on standby (crm_simulate)"):
        table.add_column(col)
    for i, (n, p) in enumerate(plans.items(), start=1):
        changes = p.error or "\n".join(f"{c.package} {c.installed or '-'} -> {c.candidate}" for c in p.changes) or "up to date"
        table.add_row(str(i) if p.changes else "-", n, changes, str(p.security) if p.changes else "",
                      "yes" if p.ha_stack else "", "\n".join(moves.get(n, [])))
    out.print(table)
    return Outcome.DONE


def unquarantine(cluster: Cluster, out: Console, node_name: str) -> int:
    if steering.clear_quarantine(cluster, node_name):
        out.print(f"{node_name}: quarantine cleared; it stays in standby until you bring it online "
                  f"(crm_attribute --node {node_name} --name standby --update off) or the next run does")
    else:
        out.print(f"{node_name} was not quarantined; nothing changed")
    return Outcome.DONE


def _plan_doc(p: NodePlan) -> dict[str, Any]:
    return {"error": p.error, "changes": [c.__dict__ for c in p.changes]}


def _confirm_on_terminal(out: Console) -> Any:
    if not sys.stdin.isatty():
        return lambda plans, order: (_ for _ in ()).throw(
            Refused("refused: no terminal to confirm on; pass --yes to run without confirmation"))

    def confirm(plans: dict[str, NodePlan], order: list[str]) -> bool:
        for n in order:
            out.print(f"  {n}: " + ", ".join(f"{c.package} {c.installed or '-'} -> {c.candidate}"
                                             for c in plans[n].changes))
        return out.input(f"Upgrade {len(order)} node(s) in this order: {', '.join(order)}? [y/N] ").strip().lower() in ("y", "yes")

    return confirm


def _finish(out: Console, r: Rollout, as_json: bool, code: int, refused: str | None, error: str | None = None) -> None:
    results = list(r.results.values())
    if as_json:
        print(json.dumps({"run": r.run_id, "exit": int(code), "outcome": Outcome(code).name.lower(),
                          "refused": refused, "error": error or r.stop_reason, "recovered": r.recovered,
                          "nodes": [vars(x) for x in results]}, indent=2, default=str))
        return
    if refused or error:
        print(refused or f"rolling-upgrade: {error}", file=sys.stderr)
        return
    out.print(_table(r.run_id, results))
    out.print(f"run {r.run_id}: {Outcome(code).name.lower().replace('_', ' ')} (exit {int(code)})")


def _table(run_id: str, results: list[NodeResult]) -> Table:
    table = Table(title=f"run {run_id}")
    for col in ("node", "result", "packages", "moves", "checks", "time"):
        table.add_column(col)
    for x in results:
        pkgs = "\n".join(f"{c['package']} {c.get('installed') or '-'} -> {c['candidate']}" for c in x.changes)
        colour = {"ok": "green", "failed": "red", "quarantined": "red"}.get(x.result, "")
        table.add_row(x.node, f"[{colour}]{x.result}[/]" if colour else x.result, pkgs, "\n".join(x.moves),
                      "\n".join(x.checks[-3:]), f"{x.seconds:.1f}s" if x.seconds else "")
    return table


