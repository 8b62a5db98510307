"""The orchestrator's subcommands of ``rolling-upgrade``.

Exit codes: 0 done or nothing to do; 1 failed and failed back, the cluster
healthy; 2 usage or configuration error; 3 refused by a safety check,
nothing changed; 4 failed and needs a person.
"""

from __future__ import annotations

import argparse

from upgrader.nightly.command import parse_at, window
from upgrader.orchestrator import commands
from upgrader.orchestrator.apply import apply, dpkg_state, stack_command
from upgrader.packages.cli import plan_command


def _nodes(text: str) -> list[str]:
    nodes = [n.strip() for n in text.split(",") if n.strip()]
    if not nodes:
        raise argparse.ArgumentTypeError("--nodes takes a comma-separated list of node names, e.g. node1,node2")
    return nodes


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("plan", help="per node: pending changes, the order, and the moves Pacemaker would make")
    s.add_argument("--json", action="store_true")
    s.add_argument("--local", action="store_true", help="this node's pending changes only (no cluster needed)")
    s.set_defaults(func=lambda a, c, out: plan_command(a.json, out) if a.local else commands.plan(c, out, as_json=a.json))
    s = sub.add_parser("apply", help="internal: this drained node's dist-upgrade, as JSON lines (used by run)")
    s.add_argument("--events", action="store_true", help="JSON lines on stdout, as the run reads them: a 'ready' "
                                                          "line first, then nothing is touched until 'go' on stdin")
    s.set_defaults(func=lambda a, c, out: apply(handshake=a.events))
    s = sub.add_parser("dpkg-state", help="internal: wait until no package manager runs here; exit 0 if dpkg is "
                                          "clean, 1 if not, 124 if still busy")
    s.add_argument("--wait", type=float, default=600.0, metavar="SECONDS")
    s.set_defaults(func=lambda a, c, out: dpkg_state(a.wait))
    s = sub.add_parser("stack", help="stop or start this drained node's cluster stack around an upgrade of it, or "
                                     "reboot it (used by run; 'stack start' by hand after an interrupted run)")
    s.add_argument("action", choices=("stop", "start", "reboot"))
    s.add_argument("--run-id", help="the run that stops (or stopped) the stack; start: only if that run stopped it")
    s.add_argument("--by", default="", help="stop: the node the run drives this one from")
    s.add_argument("--pid", type=int, default=0, help="stop: the run's process id on that node")
    s.set_defaults(func=lambda a, c, out: stack_command(a.action, a.run_id, a.by, a.pid))
    s = sub.add_parser("run", help="upgrade the whole cluster, node by node (exit 0 done, 1 failed back, "
                                   "2 usage, 3 refused, 4 needs a person)")
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    s.add_argument("--nodes", type=_nodes, help="only these nodes, e.g. node1,node2")
    s.add_argument("--json", action="store_true", help="print the result as JSON (no progress, no prompt)")
    s.set_defaults(func=lambda a, c, out: commands.run(c, out, yes=a.yes, nodes=a.nodes, as_json=a.json))
    s = sub.add_parser("node", help="upgrade this node only (cron and the APT hooks' finishing step)")
    s.add_argument("--yes", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--finish", action="store_true",
                   help="only the finishing step after an apt run on this drained node (started by the APT hooks)")
    s.set_defaults(func=lambda a, c, out: commands.finish(c, out, as_json=a.json) if a.finish
                   else commands.node(c, out, yes=a.yes, as_json=a.json))
    s = sub.add_parser("resume", help="at boot (cron @reboot): end the run of this node that its reboot "
                                      "interrupted; nothing when there is none")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda a, c, out: commands.resume(c, out, as_json=a.json))
    s = sub.add_parser("window", help="the nightly patch window (cron): upgrade what fits into the open window")
    s.add_argument("--check", action="store_true", help="only say whether the window is open and what would run")
    s.add_argument("--at", type=parse_at, metavar="TIME", help="pretend the clock reads TIME (ISO 8601) at the start")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda a, c, out: window(c, out, check=a.check, at=a.at, as_json=a.json))
    s = sub.add_parser("unquarantine", help="clear a node's quarantine mark after fixing it")
    s.add_argument("node")
    s.set_defaults(func=lambda a, c, out: commands.unquarantine(c, out, a.node))
