"""A run's live progress on a terminal (or plain lines in a log); silent with --json."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from upgrader.cli.render import step_text

ALWAYS = ("error", "wait")  # apt stages shown on every event; the others once per stage and tenth of the way


class ConsoleReport:
    """Live progress on a terminal (or plain lines in a log); silent with --json.

    Text from the nodes (package names, dpkg's and the cluster's messages) is
    printed escaped. apt's progress comes as one line when a stage starts and
    one each tenth of the way (errors and waits every time), so an upgrade of
    a hundred packages stays a dozen lines a stage.
    """

    def __init__(self, out: Console, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.started = time.monotonic()
        self._shown: dict[str, tuple[Any, int]] = {}  # node -> (stage, tenth) of its last apt line

    def step(self, node: str | None, phase: str, text: str) -> None:
        if not self.quiet:
            at = time.monotonic() - self.started
            self._print(f"[dim]{at:6.1f}s[/] [bold]{escape(node or 'cluster')}[/] [cyan]{escape(phase)}[/] "
                        f"{step_text(phase, text)}")

    def progress(self, node: str, event: dict[str, Any]) -> None:
        if self.quiet or not self._news(node, event):
            return
        pct = event.get("percent")
        self._print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] [bold]{escape(node)}[/] [cyan]apt[/] "
                    f"{f'{pct:5.1f}% ' if isinstance(pct, (int, float)) else ''}{escape(str(event.get('text', '')))}")

    def _print(self, line: str) -> None:
        """A terminal that went away (the operator's ssh session dropped) silences the progress, never the run."""
        try:
            self.out.print(line)
        except (OSError, ValueError):
            self.quiet = True

    def _news(self, node: str, event: dict[str, Any]) -> bool:
        """Whether the event starts a stage, reaches the next tenth of it, or is an error or a wait."""
        stage, pct = event.get("stage"), event.get("percent")
        tenth = int(pct // 10) if isinstance(pct, (int, float)) else 0
        last = self._shown.get(node)
        if stage in ALWAYS or last is None or last[0] != stage or tenth > last[1]:
            self._shown[node] = (stage, tenth)
            return True
        return False
