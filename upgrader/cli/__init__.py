"""rolling-upgrade: rolling host upgrades of a Pacemaker cluster; the command line, a module per command.

Exit codes: 0 done or nothing to do; 1 the cluster could not be asked or
changed, or (run, node, window) a check failed and the run failed back, the
cluster healthy; 2 usage or configuration error; 3 refused by a safety check,
nothing changed; 4 failed and needs a person.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable

EXIT_ERROR, EXIT_USAGE = 1, 2


def parser() -> argparse.ArgumentParser:
    """Every subcommand; each one's work is in its own module of this package."""
    from upgrader.cli import automatic as automatic_path
    from upgrader.cli import check as health_check
    from upgrader.cli import holds as held
    from upgrader.cli import plan as plans
    from upgrader.cli import run as runs
    from upgrader.cli import status as cluster_status
    from upgrader.cli.apply import apply, apt_run_state, dpkg_state, stack_command, stage
    from upgrader.cli.patched import patched as scan_patched
    from upgrader.cli.window import parse_at, window
    from upgrader.config import AUTOMATIC_CHOICES

    p = argparse.ArgumentParser(prog="rolling-upgrade", description="Rolling host upgrades of a Pacemaker cluster.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", help="nodes, resources and where they run, and the upgrade lock")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.set_defaults(func=lambda a, c, out: cluster_status.status(c, a.json, out))
    s = sub.add_parser("unlock", help="release this node's upgrade lock")
    s.add_argument("--force", action="store_true", help="break the lock whoever holds it, and say what was broken")
    s.set_defaults(func=lambda a, c, out: cluster_status.unlock(c, a.force, out))
    s = sub.add_parser("check", help="health-check every running resource now (exit 0 healthy, 1 unhealthy, 2 bad probe)")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.add_argument("--patched", action="store_true", help="also level 4: which containers still run code older "
                                                          "than what their node has installed")
    s.add_argument("--nagios", action="store_true", help="one line with perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, "
                                                         "3 UNKNOWN (a monitoring plugin)")
    s.set_defaults(func=lambda a, c, out: health_check.check(c, a.json, out, patched=a.patched, nagios=a.nagios))
    s = sub.add_parser("plan", help="per node: pending changes, the order, and the moves Pacemaker would make")
    s.add_argument("--json", action="store_true")
    s.add_argument("--local", action="store_true", help="this node's pending changes only (no cluster needed)")
    s.set_defaults(func=lambda a, c, out: plans.plan_command(a.json, out) if a.local else plans.plan(c, out, as_json=a.json))
    s = sub.add_parser("apply", help="internal: this drained node's dist-upgrade, as JSON lines (used by run)")
    s.add_argument("--events", action="store_true", help="JSON lines on stdout, as the run reads them: a 'ready' "
                                                          "line first, then nothing is touched until 'go' on stdin")
    s.add_argument("--set", dest="set_digest", type=_digest, metavar="DIGEST",
                   help="install exactly the package set staged here under DIGEST (rolling-upgrade stage)")
    s.set_defaults(func=lambda a, c, out: apply(handshake=a.events, set_digest=a.set_digest))
    s = sub.add_parser("stage", help="internal: keep the run's package set (JSON on stdin) and download its "
                                     "archives here, installing nothing (used by run before the first drain)")
    s.add_argument("--events", action="store_true", help="JSON lines on stdout, as the run reads them")
    s.add_argument("--no-download", action="store_true", help="keep the set and check that it can be installed "
                                                               "here, but download nothing (Rolling-Upgrade::Stage "
                                                               "false: the upgrade downloads at the node's turn)")
    s.set_defaults(func=lambda a, c, out: stage(download=not a.no_download))
    s = sub.add_parser("dpkg-state", help="internal: wait until no package manager runs here; exit 0 if dpkg is "
                                          "clean, 1 if not, 124 if still busy")
    s.add_argument("--wait", type=float, default=600.0, metavar="SECONDS")
    s.set_defaults(func=lambda a, c, out: dpkg_state(a.wait))
    s = sub.add_parser("patched", help="internal: on this node, which running containers map package files older "
                                       "than installed (exit 0 none, 1 some, 3 one named is not running)")
    s.add_argument("--container", action="append", default=[], type=_container, metavar="NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda a, c, out: scan_patched(a.container, a.json))
    s = sub.add_parser("run-state", help="internal: whether the apt run holding the lock (apt-PID-START) still "
                                         "runs here: prints running, finishing (its finishing step) or ended")
    s.add_argument("run_id")
    s.set_defaults(func=lambda a, c, out: apt_run_state(a.run_id))
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
    s.add_argument("--security-only", action="store_true", help="take only the changes whose candidate is from a "
                                                                "security archive (a suite ending in -security)")
    s.set_defaults(func=lambda a, c, out: runs.run(c, out, yes=a.yes, nodes=a.nodes, as_json=a.json,
                                                   security_only=a.security_only))
    s = sub.add_parser("node", help="upgrade this node only (cron and the APT hooks' finishing step)")
    s.add_argument("--yes", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--finish", action="store_true",
                   help="only the finishing step after an apt run on this drained node (started by the APT hooks)")
    s.set_defaults(func=lambda a, c, out: runs.finish(c, out, as_json=a.json) if a.finish
                   else runs.node(c, out, yes=a.yes, as_json=a.json))
    s = sub.add_parser("resume", help="at boot (cron @reboot): end the run of this node that its reboot "
                                      "interrupted; nothing when there is none")
    s.add_argument("--json", action="store_true")
    s.add_argument("--from-cron", action="store_true", help="cron's entry: stand down where systemd's "
                                                            "rolling-upgrade-resume.service runs it")
    s.set_defaults(func=lambda a, c, out: _scheduled("resume", a.from_cron, lambda: runs.resume(c, out, as_json=a.json)))
    s = sub.add_parser("window", help="the nightly patch window (cron): upgrade what fits into the open window")
    s.add_argument("--check", action="store_true", help="only say whether the window is open and what would run")
    s.add_argument("--at", type=parse_at, metavar="TIME", help="pretend the clock reads TIME (ISO 8601) at the start")
    s.add_argument("--json", action="store_true")
    s.add_argument("--from-cron", action="store_true", help="cron's entry: stand down where systemd's "
                                                            "rolling-upgrade-window.timer runs it")
    s.set_defaults(func=lambda a, c, out: _scheduled("window", a.from_cron and not a.check,
                                                     lambda: window(c, out, check=a.check, at=a.at, as_json=a.json)))
    s = sub.add_parser("automatic", help="what upgrades the nodes by themselves (Rolling-Upgrade::Automatic), on "
                                         "every node: 'window' makes the nightly window the automatic path and "
                                         "unattended-upgrades' daily run stand down (/etc/apt/apt.conf.d/"
                                         "52rolling-upgrade-automatic); 'unattended-upgrades' (the default) removes "
                                         "that file; no CHOICE: every node's state")
    s.add_argument("choice", nargs="?", choices=AUTOMATIC_CHOICES, metavar="CHOICE",
                   help="window or unattended-upgrades; checked on every node first (each must answer and, for "
                        "the window, have a Rolling-Upgrade::Windows entry), else nothing is changed")
    s.add_argument("--local", action="store_true", help="this node only (what the command runs on each node)")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.set_defaults(func=lambda a, c, out: automatic_path.local(a.choice, a.json) if a.local
                   else automatic_path.everywhere(c, a.choice, a.json, out))
    s = sub.add_parser("unquarantine", help="clear a node's quarantine mark after fixing it")
    s.add_argument("node")
    s.set_defaults(func=lambda a, c, out: runs.unquarantine(c, out, a.node))
    s = sub.add_parser("holds", help="the builds held back on every node since a fail back (an APT pin on each "
                                     "node): package, version, run, node, since")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.add_argument("--sync", action="store_true", help="internal: write this node's pin file "
                                                       "(/etc/apt/preferences.d/rolling-upgrade-holds) from the "
                                                       "CIB's holds and say what changed (a run starts it on "
                                                       "every node)")
    s.set_defaults(func=lambda a, c, out: held.sync(c) if a.sync else held.holds_command(c, a.json, out))
    s = sub.add_parser("release-hold", help="end the hold of a held-back build (a newer version of the package "
                                            "ends it too) and sync every node's pins")
    s.add_argument("packages", nargs="*", metavar="PACKAGE", help="a held package; every held version of it "
                                                                   "is released")
    s.add_argument("--all", action="store_true", help="release every hold")
    s.set_defaults(func=lambda a, c, out: held.release(c, a.packages, a.all, out))
    return p


def _scheduled(command: str, from_cron: bool, run: Callable[[], int]) -> int:
    """``run()``, unless cron started it (``--from-cron``) where systemd's unit runs ``command``: then 0, said."""
    if from_cron:
        from upgrader.scheduler import systemd_runs

        unit = systemd_runs(command)
        if unit is not None:
            print(f"rolling-upgrade {command}: {unit} runs it on this machine; cron's entry stands down")
            return 0
    return run()


_DIGEST = re.compile(r"[0-9a-f]{16}")


def _digest(text: str) -> str:
    if not _DIGEST.fullmatch(text):
        raise argparse.ArgumentTypeError(f"invalid package set digest {text!r}: 16 hex digits, as run and plan print")
    return text


_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _container(text: str) -> str:
    if not _CONTAINER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"invalid container name {text!r}: use letters, digits, '.', '_' or '-'")
    return text


def _nodes(text: str) -> list[str]:
    nodes = [n.strip() for n in text.split(",") if n.strip()]
    if not nodes:
        raise argparse.ArgumentTypeError("--nodes takes a comma-separated list of node names, e.g. node1,node2")
    return nodes


def _internal(argv: list[str]) -> Callable[[], int] | None:
    """The node-local commands a run starts on every node, when given exactly as the run gives them.

    ``apply --events``, ``stage --events``, ``plan --local --json`` and ``holds --sync`` run once per node and run,
    ``patched --container NAME... --json`` once per node and health check:
    they skip building the full parser, which imports every subcommand's
    module (rich, the orchestrator, the health engine) and costs more than a
    small upgrade's dpkg run. Any other spelling (``--help``, a typo, other
    options) takes the full parser, so the meaning of a command line never
    depends on this shortcut.
    """
    if argv in (["apply", "--events"], ["apply"]):
        from upgrader.cli.apply import apply

        return lambda: apply(handshake=argv == ["apply", "--events"])
    if len(argv) == 4 and argv[:3] == ["apply", "--events", "--set"] and _DIGEST.fullmatch(argv[3]):
        from upgrader.cli.apply import apply

        return lambda: apply(handshake=True, set_digest=argv[3])
    if argv in (["stage", "--events"], ["stage", "--events", "--no-download"]):
        from upgrader.cli.apply import stage

        return lambda: stage(download="--no-download" not in argv)
    if argv and argv[0] == "plan" and sorted(argv[1:]) == ["--json", "--local"]:
        from upgrader.cli.plan import plan_json

        return plan_json
    if argv == ["holds", "--sync"]:
        from upgrader.cli.holds import sync

        return sync
    names = argv[2:-1:2]
    if (argv[:1] == ["patched"] and argv[-1:] == ["--json"] and len(argv) % 2 == 0 and names
            and argv[1:-1:2] == ["--container"] * len(names) and all(_CONTAINER.fullmatch(n) for n in names)):
        from upgrader.cli.patched import patched

        return lambda: patched(names, True)
    return None


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    fast = _internal(args_list)
    try:
        if fast is not None:
            return fast()
        args = parser().parse_args(args_list)
        from rich.console import Console

        from upgrader.pacemaker.live import Cluster
        from upgrader.runner import Runner

        return args.func(args, Cluster(Runner()), Console(highlight=False))
    except Exception as exc:
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """The exit code and one line for the errors a command reports in words; anything else propagates."""
    from upgrader.config import ConfigError
    from upgrader.history import HistoryError
    from upgrader.orchestrator.outcome import Outcome, Refused
    from upgrader.pacemaker.holds import HoldError
    from upgrader.pacemaker.lock import LockError
    from upgrader.pacemaker.names import BadValue
    from upgrader.pacemaker.state import ParseError
    from upgrader.runner import CommandError

    if isinstance(exc, Refused):
        from upgrader import journal

        print(exc, file=sys.stderr)
        journal.event("refusal", str(exc), priority="warning")
        return Outcome.REFUSED
    if isinstance(exc, (BadValue, ConfigError)):
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, (CommandError, HoldError, LockError, ParseError, HistoryError)):
        print(f"rolling-upgrade: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    raise exc


if __name__ == "__main__":
    sys.exit(main())
