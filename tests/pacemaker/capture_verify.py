"""Capture crm_verify's real output into tests/pacemaker/data/crm_verify-*.json (no lab needed).

    .venv/bin/python tests/pacemaker/capture_verify.py

Each case is a private copy of the captured ``cib-all-online.xml``, changed (or not) by Pacemaker's own
tools through ``CIB_file``, then checked with the argv :meth:`Cluster.verify` runs (``crm_verify
--live-check -V``, which reads ``CIB_file`` as the live CIB). Saved: argv, exit code, stdout, stderr,
the change made, and the crm_verify version.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"
VERIFY = ["crm_verify", "--live-check", "-V"]
# case -> (what the copy's change is, the tool's argv that makes it; None: the captured CIB as it is)
CASES: dict[str, tuple[str, list[str] | None]] = {
    "no-cib": ("no CIB to check: the copy is removed (crm_verify cannot check anything)", ["rm", "cib.xml"]),
    "clean": ("none: the captured CIB as it is", None),
    "no-stonith": ("stonith-enabled set to true (no fencing device is configured)",
                   ["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "true"]),
    "warning": ("meta attribute requires=fencing on app1-ip while fencing is disabled (a warning only)",
                ["crm_resource", "--resource", "app1-ip", "--meta", "--set-parameter", "requires",
                 "--parameter-value", "fencing"]),
}


def capture(case: str) -> dict[str, object]:
    """crm_verify's result on the copy for ``case``."""
    change, argv = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "cib.xml"
        shutil.copy(DATA / "cib-all-online.xml", copy)
        runner = Runner(env={"CIB_file": str(copy)})
        if argv is not None:
            runner.run(argv, cwd=tmp)
        result = runner.call(VERIFY)
    version = Runner().run(["crm_verify", "--version"]).stdout.splitlines()[0]
    return {"argv": VERIFY, "returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
            "change": change, "change_argv": argv, "cib": "cib-all-online.xml", "crm_verify": version}


def main() -> int:
    for case in CASES:
        path = DATA / f"crm_verify-{case}.json"
        path.write_text(json.dumps(capture(case), indent=2) + "\n")
        print(f"  saved {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
