"""A run's live progress on a terminal (or plain lines in a log); silent with --json."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console


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
