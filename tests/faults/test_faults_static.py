"""No shell anywhere: every command is an argument list run by upgrader.runner.Runner."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput")


def test_no_code_hands_a_string_to_a_shell() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for top in ("upgrader", "upgrader_lab", "upgrader_bench", "tests") for path in sorted((ROOT / top).rglob("*.py")) if path != Path(__file__)
             for number, line in enumerate(path.read_text().splitlines(), start=1) if SHELL.search(line)]
    assert found == []
    assert sum(1 for _ in (ROOT / "upgrader").rglob("*.py")) > 50  # the search did look at the code base
