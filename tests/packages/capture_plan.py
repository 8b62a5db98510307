"""Capture this machine's pending dist-upgrade as ``rolling-upgrade plan --local --json`` into tests/packages/data/.

    .venv/bin/python tests/packages/capture_plan.py [--name plan-bookworm-135] [--expect 135]

Read-only: ``plan --local`` opens python-apt's cache and marks a dist-upgrade
in memory (no commit, no dpkg lock, no ``apt-get``); it reads ``/proc/*/maps``
and dpkg's file lists for ``in_use``. The package lists are not refreshed
(no ``apt-get update``): the plan is the one the machine's lists give now.
The unit tests read only the saved file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"
TOOL = str(Path(sys.executable).parent / "rolling-upgrade")


def capture(expect: int | None) -> str:
    """The plan's JSON text, checked: a document with ``changes`` (exactly ``expect`` of them, when given)."""
    text = Runner(timeout=300).run([TOOL, "plan", "--local", "--json"], what="rolling-upgrade plan --local --json").stdout
    doc = json.loads(text)
    if expect is not None and len(doc["changes"]) != expect:
        raise SystemExit(f"this machine has {len(doc['changes'])} pending changes, not {expect}: nothing saved")
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="plan-bookworm-135", help="file name in data/, without .json")
    p.add_argument("--expect", type=int, default=135, help="the number of changes the machine must have (0: any)")
    args = p.parse_args()
    text = capture(args.expect or None)
    DATA.mkdir(exist_ok=True)
    path = DATA / f"{args.name}.json"
    path.write_text(text if text.endswith("\n") else text + "\n")
    doc = json.loads(text)
    print(f"saved {path.name}: {len(doc['changes'])} changes, {doc['security']} security, "
          f"{sum(c['in_use'] for c in doc['changes'])} in use")
    return 0


if __name__ == "__main__":
    sys.exit(main())
