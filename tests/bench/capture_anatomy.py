"""Capture the raw material of the move anatomy's unit tests from a real lab into tests/bench/data/anatomy-N/.

    sudo .venv/bin/python tests/bench/capture_anatomy.py [APPS]

One repetition of ``python -m upgrader_bench --anatomy-only`` on its own lab (3 nodes, APPS applications,
default 3; always taken down): per node moved, every node's Pacemaker log lines of the move, innode's answer
and the moved applications' probes (``upgrader_bench.anatomy.measure``'s ``keep``). Its results go to a scratch
file, not bench/results.json. 3 applications move one at a time; 12 move four at once, under load.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    apps = sys.argv[1] if len(sys.argv) > 1 else "3"
    data = Path(__file__).parent / "data" / f"anatomy-{apps}"
    with tempfile.TemporaryDirectory() as scratch:
        sys.exit(subprocess.run([sys.executable, "-m", "upgrader_bench", "--anatomy-only", "--anatomy-reps", "1",
                                 "--anatomy-apps", apps, "--anatomy-keep", str(data),
                                 "--out", str(Path(scratch) / "results.json")], timeout=1800, check=False).returncode)
