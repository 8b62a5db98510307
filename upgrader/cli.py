"""rolling-upgrade: rolling host upgrades of a Pacemaker cluster.

Exit codes: 0 ok, 1 the cluster could not be asked or changed, 2 usage or
configuration error, 3 refused by a safety check.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from upgrader.config import ConfigError
from upgrader.health import command as health_command
from upgrader.orchestrator import cli as orchestrator
from upgrader.orchestrator.history import HistoryError
from upgrader.pacemaker import commands
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.lock import LockError
from upgrader.pacemaker.names import BadValue
from upgrader.pacemaker.state import ParseError
from upgrader.runner import CommandError, Runner

EXIT_ERROR, EXIT_USAGE = 1, 2


def parser() -> argparse.ArgumentParser:
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Console(highlight=False)
    try:
        return args.func(args, Cluster(Runner()), out)
    except commands.Refused as exc:
        print(exc, file=sys.stderr)
        return commands.EXIT_REFUSED
    except (BadValue, ConfigError) as exc:
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, LockError, ParseError, HistoryError) as exc:
        print(f"rolling-upgrade: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
