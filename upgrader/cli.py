"""rolling-upgrade: rolling host upgrades of a Pacemaker cluster.

Exit codes: 0 ok, 1 the cluster could not be asked or changed, 2 usage or
configuration error, 3 refused by a safety check.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_ERROR, EXIT_USAGE = 1, 2


def parser() -> argparse.ArgumentParser:
    from upgrader.health import command as health_command
    from upgrader.orchestrator import cli as orchestrator
    from upgrader.pacemaker import commands

    p = argparse.ArgumentParser(prog="rolling-upgrade", description="Rolling host upgrades of a Pacemaker cluster.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", help="nodes, resources and where they run, and the upgrade lock")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.set_defaults(func=lambda a, c, out: commands.status(c, a.json, out))
    s = sub.add_parser("unlock", help="release this node's upgrade lock")
    s.add_argument("--force", action="store_true", help="break the lock whoever holds it, and say what was broken")
    s.set_defaults(func=lambda a, c, out: commands.unlock(c, a.force, out))
    s = sub.add_parser("check", help="health-check every running resource now (exit 0 healthy, 1 unhealthy, 2 bad probe)")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.set_defaults(func=lambda a, c, out: health_command.check(c, a.json, out))
    orchestrator.add_commands(sub)
    return p


def _internal(argv: list[str]) -> Callable[[], int] | None:
    """The node-local commands a run starts on every node, when given exactly as the run gives them.

    ``apply --events`` and ``plan --local --json`` run once per node and run:
    they skip building the full parser, which imports every subcommand's
    module (rich, the orchestrator, the health engine) and costs more than a
    small upgrade's dpkg run. Any other spelling (``--help``, a typo, other
    options) takes the full parser, so the meaning of a command line never
    depends on this shortcut.
    """
    if argv in (["apply", "--events"], ["apply"]):
        from upgrader.orchestrator.apply import apply

        return lambda: apply(handshake=argv == ["apply", "--events"])
    if argv and argv[0] == "plan" and sorted(argv[1:]) == ["--json", "--local"]:
        from upgrader.packages.cli import plan_json

        return plan_json
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
    from upgrader.orchestrator.history import HistoryError
    from upgrader.pacemaker import commands
    from upgrader.pacemaker.lock import LockError
    from upgrader.pacemaker.names import BadValue
    from upgrader.pacemaker.state import ParseError
    from upgrader.runner import CommandError

    if isinstance(exc, commands.Refused):
        print(exc, file=sys.stderr)
        return commands.EXIT_REFUSED
    if isinstance(exc, (BadValue, ConfigError)):
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, (CommandError, LockError, ParseError, HistoryError)):
        print(f"rolling-upgrade: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    raise exc


if __name__ == "__main__":
    sys.exit(main())
