"""Network faults during the upgrade phase: a node cut off the bridge while ``rolling-upgrade apply`` runs on it.

The run reaches the node through the default remote shell (ssh, one shared
connection per peer). With its keep-alive options (``ServerAliveInterval=5``,
``ServerAliveCountMax=3``), the shared connection gives up about 15 s after the
link goes, and with it the session of apply, so the run ends in
bounded time instead of waiting for apply's 3600 s timeout. The upgrade is made
long enough to cut the node mid-apply by a postinst that sleeps: the lab's
package, repacked from the test side (see ``publish_slow``), sleeps only on nodes
that carry the flag file, so the rest of the suite is not slowed down.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.lost import QUARANTINE
from tests.lab.helpers import TOOL, history, run_leftovers, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fn"
SLOW_FLAG = "/etc/upgrader-fault-slow-postinst"  # on a node: its postinst sleeps that many seconds
SLOW_STARTED = "/var/tmp/upgrader-fault-slow-postinst.started"  # written by the postinst before it sleeps
POSTINST_SLEEP = 40  # seconds: longer than ssh needs to notice the cut (3 x 5 s)
BOUND = 90.0  # the run must end within this many seconds of the cut


def publish_slow(lab: Lab) -> str:
    """A new version of the lab package whose postinst sleeps on flagged nodes; every index refreshed.

    Built by the lab's own ``repo.publish``, then repacked with a postinst (the
    lab's repo module has no option for it; see the report for the proposed one).
    """
    taken = {d.name.split("_")[1] for d in lab.repo_dir.glob("**/*.deb")}
    version = next(str(v) for v in range(2, 1000) if str(v) not in taken)
    deb = repo.publish(lab.repo_dir, version)
    host = Runner(timeout=60)
    with tempfile.TemporaryDirectory(prefix="upgrader-slow-") as tmp:
        host.run(["dpkg-deb", "--raw-extract", str(deb), tmp])
        postinst = Path(tmp) / "DEBIAN" / "postinst"
        postinst.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = configure ] && [ -s {SLOW_FLAG} ]; then\n'
            f"    date +%s > {SLOW_STARTED}\n"
            f'    sleep "$(cat {SLOW_FLAG})"\n'
            "fi\n"
            "exit 0\n")
        postinst.chmod(0o755)
        host.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tmp, str(deb)])
    repo.index(lab.repo_dir)
    ops.refresh_indexes(lab)
    return version


def wait_for_file(lab: Lab, n: str, path: str, run: subprocess.Popen, timeout: float = 120) -> None:
    inside = node.runner(lab, n, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inside.call(["test", "-e", path]).returncode == 0:
            return
        if run.poll() is not None:
            raise AssertionError(f"the run ended before {path} appeared on {n}: {run.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear on {n} within {timeout}s")


def serving(lab: Lab) -> dict[str, str]:
    """Each application's answer on its floating IP (empty when it answers)."""
    with LabClient(lab.client_netns) as client:
        answers = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names], timeout=1.0)
    return {a: (g.error or str(g.status)) for a, g in zip(lab.app_names, answers) if not g.ok}


def test_node_cut_off_the_network_while_apply_runs_on_it(healthy: Lab, nothing_lost) -> None:
    version = publish_slow(healthy)
    peers = [n for n in healthy.node_names if n != "node1"]  # node1 runs the tool; the first node upgraded is a peer
    try:
        for n in peers:
            node.runner(healthy, n).run(["tee", SLOW_FLAG], input=f"{POSTINST_SLEEP}\n")
            node.runner(healthy, n).run(["rm", "-f", SLOW_STARTED])
        seen = len(history(healthy))
        run = start_run(healthy)
        entry = wait_for_phase(healthy, run, seen, "upgrade")
        victim, run_id = entry["node"], entry["run"]
        assert victim in peers, entry
        wait_for_file(healthy, victim, SLOW_STARTED, run)  # dpkg is in the postinst: mid-apply
        ops.cut(healthy, victim)
        cut_at = time.monotonic()
        try:
            out, err = run.communicate(timeout=BOUND + 30)
        except subprocess.TimeoutExpired:
            run.kill()
            out, err = run.communicate(timeout=30)
            raise AssertionError(f"the run did not end within {BOUND + 30:.0f}s of the cut: {out[-1500:]} "
                                 f"{err[-1500:]}") from None
        took = time.monotonic() - cut_at
        print(f"\nrun ended {took:.1f}s after {victim} was cut off mid-apply (exit {run.returncode})")
        doc = json.loads(out)
        assert took < BOUND, f"the run took {took:.0f}s to end after the cut"
        assert run.returncode == 4 and doc["exit"] == 4, doc
        failed = {n["node"]: n for n in doc["nodes"]}[victim]
        assert failed["result"] in ("failed", "quarantined"), failed
        assert failed["error"].startswith(f"the upgrade of {victim} failed: lost contact with {victim} during its "
                                          "upgrade (the remote shell ended: "), failed
        assert "dpkg may still be running there" in failed["error"], failed
        assert f"{victim} stays in standby and quarantined" in failed["error"], failed
        assert all(n["result"] in ("pending", "up to date") for n in doc["nodes"] if n["node"] != victim), doc

        # While the node is still cut off: the peers serve everything, the victim is marked, nothing else is left.
        assert serving(healthy) == {}, "an application stopped answering while the node was cut off"
        c1 = Cluster(node.runner(healthy, "node1", timeout=30))
        state = c1.state()
        assert not state.node(victim).online and state.node(victim).standby
        assert c1.get_attribute(victim, QUARANTINE) is not None
        assert lock.read(c1) is None
        assert [x for x in run_leftovers(healthy) if QUARANTINE not in x] == []
        told = {(e["phase"], e["event"]): e for e in history(healthy, run_id)}
        assert told[("upgrade", "end")]["ok"] is False and victim in told[("upgrade", "end")]["error"]
        assert ("quarantine", "note") in told and victim in told[("run", "note")]["reason"]

        # Heal: the node rejoins, still quarantined in standby; apply went on there without its controller.
        ops.heal(healthy, victim)
        ops.wait_formed(healthy, 90)
        inside = node.runner(healthy, victim, timeout=POSTINST_SLEEP + 120)
        dpkg = inside.call([TOOL, "dpkg-state", "--wait", str(POSTINST_SLEEP + 60)])
        assert dpkg.returncode == 0, dpkg.stdout  # dpkg finished cleanly (apply ignores the lost session's SIGHUP)
        assert ops.installed_version(healthy, victim) == version
        nothing_lost(healthy, quarantined=[victim], run=run_id,
                     told=[("upgrade", "start"), ("upgrade", "end"), ("quarantine", "note"), ("run", "end")])

        # Recoverable as the product says: unquarantine, bring it online, and the next run finishes the rest.
        for n in peers:
            node.runner(healthy, n).run(["rm", "-f", SLOW_FLAG])
        node.runner(healthy, "node1").run([TOOL, "unquarantine", victim])
        c1.set_standby(victim, False)
        again = node.runner(healthy, "node1", timeout=600).call([TOOL, "run", "--yes", "--json"])
        doc = json.loads(again.stdout)
        assert again.returncode == 0, doc
        assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
        nothing_lost(healthy, run=doc["run"], told=[("run", "start"), ("run", "end")])
    finally:
        for n in peers:
            node.runner(healthy, n).call(["rm", "-f", SLOW_FLAG, SLOW_STARTED])
