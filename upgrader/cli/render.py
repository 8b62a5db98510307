"""Text for the terminal: text from outside (the cluster, the configuration, a probe) escaped for rich.

The summaries of a node's changes are :mod:`upgrader.packages.summary`'s.
"""

from __future__ import annotations

from typing import Iterable

from rich.markup import escape

from upgrader.packages.summary import counts, names, summary, summary_lines, version_text

__all__ = ["cell", "counts", "names", "step_text", "summary", "summary_lines", "version_text"]


def cell(lines: Iterable[str]) -> str:
    """Lines of outside text for one table cell, escaped for rich."""
    return "\n".join(escape(line) for line in lines)


def step_text(phase: str, text: str) -> str:
    """A progress step's text as rich markup: escaped, whatever it quotes."""
    return escape(text)
