"""Two entry points at the same moment: the cron patch window and unattended-upgrades (with Auto-Standby).

Both are started together (a barrier, then each inside its node), on two
different nodes and on the same node. They never run at once. When the window
wins the upgrade lock, unattended-upgrades refuses before dpkg, naming the
holder, and changes nothing. When unattended-upgrades wins, it upgrades its own
node (and its finishing step runs); the window waits for that apt run to end,
then upgrades the rest of the cluster. Then nothing is lost. Which one wins is
up to the race: both outcomes are checked.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.faults.restore import TEST_SETTINGS
from tests.lab.helpers import TOOL, fresh_version
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Result

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fw"
AT = "2026-03-02T02:05+00:00"  # inside the window below, whatever the clock says
SETTINGS = ('Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
            'Rolling-Upgrade::Boot-Grace "0";\n'
            'Rolling-Upgrade::Auto-Standby "true";\n'
            'Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n')
REFUSAL = "/run/upgrader/refusal"
HISTORY = "/var/lib/upgrader/history.jsonl"
WINDOW_LOG = "/var/log/upgrader/window.log"


def history(lab: Lab, n: str) -> list[dict]:
    text = node.runner(lab, n).call(["cat", HISTORY]).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def race(lab: Lab, window_on: str, uu_on: str, first: str | None) -> tuple[tuple[int, dict], Result]:
    """``rolling-upgrade window`` on one node and ``unattended-upgrade`` on another (or the same).

    ``first`` None: both at the same moment (a barrier). ``"window"``/``"uu"``: that one first, the other
    as soon as the first holds the upgrade lock.
    """
    barrier = threading.Barrier(2)
    got: dict[str, object] = {}
    argv = {"window": (window_on, [TOOL, "window", "--json", "--at", AT]), "uu": (uu_on, ["unattended-upgrade", "-v"])}

    def start(which: str) -> threading.Thread:
        def go() -> None:
            if first is None:
                barrier.wait(10)
            where, command = argv[which]
            got[which] = node.runner(lab, where, timeout=600).call(command)
        thread = threading.Thread(target=go)
        thread.start()
        return thread

    if first is None:
        threads = [start("window"), start("uu")]
    else:
        threads = [start(first)]
        holder = argv[first][0]
        c1 = Cluster(node.runner(lab, "node1", timeout=30))
        deadline = time.monotonic() + 120
        while getattr(lock.read(c1), "holder", None) != holder:
            assert time.monotonic() < deadline and threads[0].is_alive(), f"{first} never took the lock: {got}"
            time.sleep(0.1)
        threads.append(start("uu" if first == "window" else "window"))
    for t in threads:
        t.join(660)
    w, u = got["window"], got["uu"]
    assert isinstance(w, Result) and isinstance(u, Result)
    try:
        doc = json.loads(w.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from window (exit {w.returncode}): {w.stdout[-2000:]} {w.stderr[-2000:]}") from None
    return (w.returncode, doc), u


def wait_apt_finished(lab: Lab, n: str, after: int, timeout: float = 180) -> dict:
    """The APT hooks' record of the finishing step on ``n`` (newer than the first ``after`` records)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in history(lab, n)[after:] if e["phase"] == "apt" and e.get("source") == "apt-hooks"]
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no finishing step recorded on {n} within {timeout}s")


def scenario(lab: Lab, nothing_lost, window_on: str, uu_on: str, first: str | None) -> str:
    version = fresh_version(lab)
    for n in lab.node_names:
        node.runner(lab, n).run(["tee", TEST_SETTINGS], input=SETTINGS)
        node.runner(lab, n).run(["rm", "-f", REFUSAL, WINDOW_LOG])
    seen = len(history(lab, uu_on))
    (code, doc), uu = race(lab, window_on, uu_on, first)
    # The guard's refusal file: "<apt run key>\t<the one line apt printed>".
    refusal = node.runner(lab, uu_on).call(["cat", REFUSAL]).stdout.strip().split("\t", 1)[-1]
    uu_won = uu.returncode == 0
    outcome = {"window": (code, doc.get("refused") or doc.get("summary")),
               "unattended-upgrades": (uu.returncode, refusal or uu.stdout[-500:])}
    c1 = Cluster(node.runner(lab, "node1", timeout=30))
    if not uu_won:
        assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in lab.node_names}, doc
        assert all(ops.installed_version(lab, n) == version for n in lab.node_names)
        # unattended-upgrades was refused before dpkg, naming the run that holds the lock.
        assert refusal.startswith("refused:") and "the upgrade lock is held" in refusal, outcome
        assert window_on in refusal, f"the refusal does not name the holder {window_on}: {refusal}"
        assert lock.read(c1) is None
        nothing_lost(lab, via=window_on, run=doc["run"], told=[("run", "start"), ("run", "end")])
        return f"window on {window_on} won; unattended-upgrades on {uu_on} refused: {refusal}"
    # unattended-upgrades won: it upgraded its node and finished; the window waited for that apt run to end,
    # then upgraded the rest of the cluster.
    assert not refusal, outcome
    finished = wait_apt_finished(lab, uu_on, seen)
    assert finished["result"] == "ok" and finished["finish"].endswith("exit 0"), finished
    assert code == 0, outcome
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {
        n: "up to date" if n == uu_on else "ok" for n in lab.node_names}, doc
    assert all(ops.installed_version(lab, n) == version for n in lab.node_names)
    said = node.runner(lab, window_on).run(["cat", WINDOW_LOG]).stdout
    assert f"the upgrade lock is held by {uu_on}'s apt run" in said and "waiting for it to end" in said, said
    assert f"{uu_on}'s apt run ended; the window goes on" in said, said
    assert lock.read(c1) is None
    nothing_lost(lab, via=window_on, run=doc["run"], told=[("run", "start"), ("run", "end")])
    return (f"unattended-upgrades on {uu_on} won; window on {window_on} waited for it, then upgraded "
            f"{', '.join(n for n in lab.node_names if n != uu_on)}")


@pytest.mark.parametrize(("window_on", "uu_on", "first"), [
    ("node1", "node3", None),  # the same moment, two nodes
    ("node2", "node2", None),  # the same moment, the same node
    ("node1", "node3", "window"),  # u-u fires while the window's run holds the lock
    ("node1", "node3", "uu"),  # the window fires while u-u (Auto-Standby) holds the lock
], ids=["same-moment-two-nodes", "same-moment-same-node", "window-holds-uu-fires", "uu-holds-window-fires"])
def test_window_and_unattended_upgrades_at_once(healthy: Lab, nothing_lost, window_on: str, uu_on: str,
                                                first: str | None) -> None:
    said = scenario(healthy, nothing_lost, window_on, uu_on, first)
    if first is not None:
        assert said.startswith({"window": "window", "uu": "unattended-upgrades"}[first]), said
    print("\n" + said)
