"""What lab tests share: the tool inside a node, runs started and signalled, and what a run leaves behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

TOOL = str(Path(sys.executable).parent / "rolling-upgrade")
HISTORY = "/var/lib/upgrader/history.jsonl"
CONFIGURATION = ("rolling-upgrade-probe", "rolling-upgrade-check-cmd")  # declarations, not leftovers
QUARANTINE, WAITING = "rolling-upgrade-quarantine", "rolling-upgrade-waiting"
HOLDS_ID = "rolling-upgrade-holds"  # the CIB's record of the builds held back on every node
PINS = "/etc/apt/preferences.d/rolling-upgrade-holds"  # a node's APT pins of them


def rolling(lab: Lab, *argv: str, via: str = "node1", timeout: float = 900, tool: str = TOOL) -> tuple[int, dict]:
    """``rolling-upgrade ARGV --json`` inside ``via`` (``tool``: this tree's, or the package's): exit code, JSON."""
    result = node.runner(lab, via, timeout=timeout).call([tool, *argv, "--json"])
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from {tool} (exit {result.returncode}): "
                             f"{result.stdout[-2000:]} {result.stderr[-2000:]}") from None


def cib(lab: Lab, via: str = "node1") -> str:
    return node.runner(lab, via).run(["cibadmin", "--query"]).stdout


def run_leftovers(lab: Lab, via: str = "node1") -> list[str]:
    """Constraints, node attributes and the lock a run adds (the probes are configuration, not leftovers;
    the builds a fail back holds back outlive the run on purpose, like the quarantine: see :func:`held`)."""
    root = ET.fromstring(cib(lab, via))
    # A quarantined node's waiting mark (the drain that took it out) belongs to its quarantine.
    theirs = {id(nv) for n in root.iterfind("configuration/nodes/node")
              if any(nv.get("name") == QUARANTINE for nv in n.iter("nvpair"))
              for nv in n.iter("nvpair") if nv.get("name") == WAITING}
    theirs |= {id(el) for s in root.iterfind(f"configuration/crm_config/cluster_property_set[@id='{HOLDS_ID}']")
               for el in s.iter()}
    found = [el.get("id", "") for el in root.iter() if el.get("id", "").startswith("rolling-upgrade-")
             and id(el) not in theirs]
    found += [f"{el.get('name')} ({el.get('id')})" for el in root.iter("nvpair")
              if el.get("name", "").startswith("rolling-upgrade-") and el.get("name") not in CONFIGURATION
              and id(el) not in theirs]
    return found


def held(lab: Lab, via: str = "node1") -> list[tuple[str, str]]:
    """(package, version) of every hold the CIB records, as ``rolling-upgrade holds --json`` lists them."""
    result = node.runner(lab, via).run([TOOL, "holds", "--json"])
    return [(h["package"], h["version"]) for h in json.loads(result.stdout)["holds"]]


def pins(lab: Lab, n: str) -> str:
    """The text of ``n``'s pin file ('' when it has none)."""
    result = node.runner(lab, n).call(["cat", PINS])
    return result.stdout if result.returncode == 0 else ""


def standby_nodes(lab: Lab, via: str = "node1") -> list[str]:
    out = node.runner(lab, via).run(["crm_mon", "--one-shot", "--output-as=xml"]).stdout
    return sorted(n.get("name", "") for n in ET.fromstring(out).iterfind("nodes/node") if n.get("standby") == "true")


def versions_served(lab: Lab) -> dict[str, str]:
    """What each application answers on /version ('' when it does not answer), asked all at once."""
    with LabClient(lab.client_netns) as client:
        answers = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names])
    return {a: answer.body for a, answer in zip(lab.app_names, answers)}


def history(lab: Lab, run_id: str | None = None, via: str = "node1") -> list[dict]:
    """The history file of ``via`` (every record, or one run's)."""
    result = node.runner(lab, via).call(["cat", HISTORY])
    if result.returncode != 0 and "No such file" not in result.stderr:
        raise AssertionError(f"cannot read the history of {via}: {result.stderr.strip() or result.meaning}")
    found = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [e for e in found if run_id is None or e.get("run") == run_id]


def fresh_version(lab: Lab, **build: bool) -> str:
    """Publish a version nobody published before (``bad=``, ``broken_postinst=``) and refresh every index."""
    taken = {d.name.split("_")[1] for d in lab.repo_dir.glob("**/*.deb")}
    version = next(str(v) for v in range(2, 1000) if str(v) not in taken)
    repo.publish(lab.repo_dir, version, **build)
    ops.refresh_indexes(lab)
    return version


def start_run(lab: Lab, via: str = "node1", *argv: str) -> subprocess.Popen:
    """``rolling-upgrade run --yes --json`` started in the background inside ``via``."""
    full = node.exec_argv(lab, via, [TOOL, "run", "--yes", "--json", *argv])
    return subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(node.NODE_ENV))


def wait_for_phase(lab: Lab, run: subprocess.Popen, seen: int, phase: str, timeout: float = 120,
                   via: str = "node1") -> dict:
    """The first start of ``phase`` by a run that started after ``via``'s first ``seen`` history records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = history(lab, via=via)[seen:]
        new_runs = {e["run"] for e in entries if (e["phase"], e["event"]) == ("run", "start")}
        for entry in entries:
            if entry["phase"] == phase and entry["event"] == "start" and entry["run"] in new_runs:
                return entry
        if run.poll() is not None:
            raise AssertionError(f"the run ended before phase {phase}: {run.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for phase {phase}")


def signal_run(lab: Lab, run: subprocess.Popen, signame: str, via: str = "node1", timeout: float = 300) -> None:
    """Signal the run by the PID its lock records (a process we started), inside ``via``; wait for it to end."""
    info = lock.read(Cluster(node.runner(lab, via)))
    assert info is not None and info.pid
    node.runner(lab, via).run(["kill", f"-{signame}", str(info.pid)])
    run.wait(timeout=timeout)
