"""Capture the raw material of the move anatomy's unit tests from a real lab into tests/bench/data/anatomy/.

    sudo .venv/bin/python tests/bench/capture_anatomy.py

One repetition of ``python -m upgrader_bench --anatomy-only`` on its own lab (3 nodes, 3 applications, always
taken down): per node moved, every node's Pacemaker log lines of the move, innode's answer and the moved
application's probes (``upgrader_bench.anatomy.measure``'s ``keep``). Its results go to a scratch file, not
bench/results.json.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).parent / "data" / "anatomy"

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        sys.exit(subprocess.run([sys.executable, "-m", "upgrader_bench", "--anatomy-only", "--anatomy-reps", "1",
                                 "--anatomy-keep", str(DATA), "--out", str(Path(scratch) / "results.json")],
                                timeout=1800, check=False).returncode)
