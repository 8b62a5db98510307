"""How long the automatic path keeps a node drained, against the tool's own node upgrade of the same set.

Issue 20: unattended-upgrades through the APT hooks keeps a node drained for as long as it runs (702 s for a
135-package point update with MinimalSteps, 185 s without, against 41 s for the same set by 'apt-get
dist-upgrade' or the tool's own node upgrade). The lab stands in with :data:`PACKAGES` tiny packages
(:func:`upgrader_lab.repo.publish_set`, ``demo-pkg-001`` ..), installed at version 1 in every node
beforehand (past the guard, as an image has them); every measurement publishes a fresh version of the
whole set, so each starts from the same kind of upgrade. Per repetition, on :data:`NODE` (the order of the
three rotates):

- **unattended-upgrades through the hooks** (the cluster snippet as shipped: ``MinimalSteps "false"``, the
  value the lab node reads is recorded): the node put in standby by a bare ``crm_attribute`` (as the issue
  measured it, on a standby node), then ``unattended-upgrade -v`` in it; the finishing step (fail over,
  health check, the lock released) follows by itself. Drained time: from just before the standby to the
  first poll (every :data:`POLL` s, from the host) that finds the node out of standby and the lock free.
- **the tool's node upgrade**: ``rolling-upgrade node --yes --json`` in NODE (one node's whole procedure),
  through :mod:`upgrader_bench.trace`; drained time: its ``drain`` start to its ``node`` end, on the run's
  clock (:func:`upgrader_bench.staging.drain_to_online`), as the staging scenario takes it.
- **the automatic path with Rolling-Upgrade::Automatic "window"**: ``rolling-upgrade automatic window`` on
  every node (unattended-upgrades' daily run then stands down: checked in NODE with ``apt-config``), then the
  nightly window as cron starts it (``rolling-upgrade window --json``, ``--at`` inside its window) in
  :data:`VIA`, through the trace; it upgrades every node, and NODE's drained time is taken as above. This
  path *is* the tool's node upgrade, one node after the other; it is measured as it runs all the same.
  ``rolling-upgrade automatic unattended-upgrades`` restores Debian's setting after it.

``automatic_vs_node_upgrade``: per repetition, the window's drained time of NODE over the node upgrade's;
``unattended_vs_node_upgrade``: the same for unattended-upgrades (for comparison; the issue's 185/41 s is 4.5x).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from upgrader_bench import trace
from upgrader_bench.scenario import TOOL, TRACE, VIA, home, innode
from upgrader_bench.staging import drain_to_online
from upgrader_bench.stats import summarize
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

PACKAGES = 120  # the set's size: issue 20's point update had 135 packages
NODE = "node2"  # the node measured (not VIA, where the window runs: the same role in every measurement)
POLL = 0.25  # seconds between the host's polls for the end of unattended-upgrades' finishing step
SETTINGS = "/etc/apt/apt.conf.d/61upgrader-bench-automatic"  # in every node, for the scenario
INSIDE = "2026-03-02T02:05+00:00"  # a Monday, 5 minutes into the window SETTINGS opens
SETTING = ("// upgrader_bench: the automatic path scenario\n"
           'Rolling-Upgrade::Boot-Grace "0";\n'  # the lab has just formed: automatic runs would refuse
           'Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
           'Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n')  # u-u takes the lab's packages
WAIT = 1800  # seconds any one measurement may take
KINDS = ("unattended-upgrades", "node upgrade", "window")
Say = Callable[[str], None]


@dataclass
class Measured:
    """One measurement on NODE; seconds."""

    kind: str  # one of KINDS
    drained: float  # NODE's drained time
    wall: float  # the command's wall time, from the host
    parts: dict[str, float] = field(default_factory=dict)  # unattended-upgrades: its run, the finishing step
    others: dict[str, float] = field(default_factory=dict)  # the window: every node's drained time


@dataclass
class SetVersions:
    """Publishes a fresh version of the whole set and refreshes every node's indexes."""

    count: int
    last: int = 1

    def publish(self, lab: Lab) -> str:
        self.last += 1
        repo.publish_set(lab.repo_dir, self.count, str(self.last))
        ops.refresh_indexes(lab)
        return str(self.last)


def installed_set(lab: Lab, n: str) -> dict[str, str]:
    """The set's packages installed in ``n``: name -> version."""
    out = node.runner(lab, n, timeout=60).call(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n",
                                                f"{repo.SET_PREFIX}*"]).stdout
    return {p: v for p, v, status in (line.split(maxsplit=2) for line in out.splitlines() if line.strip())
            if status.startswith("ii")}


def expect_set(lab: Lab, n: str, count: int, version: str, what: str) -> None:
    found = installed_set(lab, n)
    wrong = {p: found.get(p) for p in repo.set_names(count) if found.get(p) != version}
    if wrong:
        raise RuntimeError(f"after {what}, {len(wrong)} of the set's packages in {n} are not at {version}: "
                           f"{dict(list(wrong.items())[:5])}")


def prepare(lab: Lab, count: int, say: Say) -> SetVersions:
    """The set at version 1 installed in every node (past the guard, by its own override), the scenario's
    settings written; unattended-upgrades' MinimalSteps as NODE reads it is checked to be the shipped false."""
    say(f"automatic: publishing {count} packages and installing them in every node")
    debs = repo.publish_set(lab.repo_dir, count, "1")
    paths = [f"{node.REPO_MOUNT}/{d.relative_to(lab.repo_dir)}" for d in debs]
    for n in lab.node_names:
        inside = node.runner(lab, n, timeout=600)
        inside.run(["env", "UPGRADER_GUARD=off", "dpkg", "-i", *paths], what=f"installing the set in {n}")
        inside.run(["tee", SETTINGS], input=SETTING, what=f"writing {SETTINGS} in {n}")
    ops.refresh_indexes(lab)
    for n in lab.node_names:
        expect_set(lab, n, count, "1", "installing the set")
    minimal = apt_value(lab, NODE, "Unattended-Upgrade::MinimalSteps")
    if minimal.lower() not in ("false", "0", "no", "off"):
        raise RuntimeError(f"unattended-upgrades in {NODE} reads MinimalSteps {minimal!r}, not the shipped "
                           "\"false\" of 51rolling-upgrade-unattended")
    return SetVersions(count)


def apt_value(lab: Lab, n: str, key: str) -> str:
    """``key`` as APT in ``n`` reads it ('' unset): apt-config shell, as apt.systemd.daily asks."""
    out = node.runner(lab, n, timeout=30).run(["apt-config", "shell", "V", key], what=f"apt-config in {n}").stdout
    return out.strip().removeprefix("V=").strip("'\"")


def cleanup(lab: Lab) -> None:
    for n in lab.node_names:
        node.runner(lab, n).call(["rm", "-f", SETTINGS])


def _back(lab: Lab, deadline: float) -> float:
    """The host's clock when NODE is first seen online, out of standby, with the upgrade lock free."""
    cluster = Cluster(node.runner(lab, VIA, timeout=30))
    while time.monotonic() < deadline:
        seen = time.monotonic()
        state = cluster.state()
        n = state.node(NODE)
        if n is not None and n.online and not n.standby and lock.read(cluster) is None:
            return seen
        time.sleep(POLL)
    raise RuntimeError(f"{NODE} was not back online with the lock free within {WAIT}s of unattended-upgrades "
                       "(see /var/log/upgrader/finisher.log and /run/upgrader/refusal in it)")


def unattended(lab: Lab, versions: SetVersions) -> Measured:
    """unattended-upgrades through the hooks on NODE in standby, and the finishing step after it."""
    home(lab)
    version = versions.publish(lab)
    start = time.monotonic()
    innode(lab, VIA, "move", NODE, "on")
    ran = time.monotonic()
    result = node.runner(lab, NODE, timeout=WAIT).call(["unattended-upgrade", "-v"])
    ended = time.monotonic()
    if result.returncode != 0:
        innode(lab, VIA, "move", NODE, "off")
        raise RuntimeError(f"unattended-upgrade in {NODE} exited {result.returncode}: "
                           f"{(result.stdout + result.stderr)[-1500:]}")
    back = _back(lab, ended + WAIT)
    expect_set(lab, NODE, versions.count, version, "unattended-upgrades")
    return Measured("unattended-upgrades", round(back - start, 3), round(back - start, 3),
                    parts={"standby_s": round(ran - start, 3), "unattended_upgrade_s": round(ended - ran, 3),
                           "finishing_step_s": round(back - ended, 3)})


def _traced(lab: Lab, where: str, *argv: str) -> tuple[dict[str, Any], dict[str, float], float]:
    """``rolling-upgrade ARGV`` in ``where`` through the trace: its JSON, drained time per node, wall time."""
    start = time.monotonic()
    result = node.runner(lab, where, timeout=WAIT).call(
        [sys.executable, "-m", "upgrader_bench.trace", TRACE, "--", *argv])
    wall = time.monotonic() - start
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"rolling-upgrade {argv[0]} gave no JSON (exit {result.returncode}): "
                           f"{result.stderr[-800:]}") from None
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade {argv[0]} exited {result.returncode}: {json.dumps(doc)[-800:]}")
    traced = json.loads(node.runner(lab, where).run(["cat", TRACE], what="reading the trace").stdout)
    return doc, drain_to_online(trace.records(traced)), wall


def node_upgrade(lab: Lab, versions: SetVersions) -> Measured:
    """``rolling-upgrade node`` in NODE: the tool's own upgrade of that node."""
    home(lab)
    version = versions.publish(lab)
    _, drained, wall = _traced(lab, NODE, "node", "--yes", "--json")
    if NODE not in drained:
        raise RuntimeError(f"rolling-upgrade node in {NODE} recorded no drain and end of {NODE}: {drained}")
    expect_set(lab, NODE, versions.count, version, "rolling-upgrade node")
    return Measured("node upgrade", drained[NODE], round(wall, 3))


def choose(lab: Lab, choice: str) -> None:
    """``rolling-upgrade automatic CHOICE`` in VIA (every node), then NODE's APT must say what it means."""
    result = node.runner(lab, VIA, timeout=120).call([TOOL, "automatic", choice, "--json"])
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade automatic {choice} exited {result.returncode}: "
                           f"{(result.stdout + result.stderr)[-800:]}")
    want = "0" if choice == "window" else "1"
    for n in lab.node_names:
        seen = apt_value(lab, n, "APT::Periodic::Unattended-Upgrade")
        if seen != want:
            raise RuntimeError(f"after 'rolling-upgrade automatic {choice}', {n} reads "
                               f"APT::Periodic::Unattended-Upgrade {seen!r}, not {want!r}")


def window(lab: Lab, versions: SetVersions) -> Measured:
    """The automatic path with Automatic "window": the nightly window in VIA, which upgrades every node."""
    choose(lab, "window")
    try:
        home(lab)
        version = versions.publish(lab)
        doc, drained, wall = _traced(lab, VIA, "window", "--json", "--at", INSIDE)
    finally:
        choose(lab, "unattended-upgrades")
    results = {n["node"]: n["result"] for n in doc.get("nodes", [])}
    if results.get(NODE) != "ok" or NODE not in drained:
        raise RuntimeError(f"the window did not upgrade {NODE} (results {results}, drained {drained}): "
                           f"{doc.get('summary') or doc.get('refused')}")
    expect_set(lab, NODE, versions.count, version, "the window")
    return Measured("window", drained[NODE], round(wall, 3), others=drained)


MEASURE = {"unattended-upgrades": unattended, "node upgrade": node_upgrade, "window": window}


def measure(lab: Lab, reps: int, say: Say, count: int = PACKAGES) -> dict[str, Any]:
    """``reps`` repetitions of the three measurements (rotating their order), summarised."""
    versions = prepare(lab, count, say)
    found: list[dict[str, Measured]] = []
    try:
        for i in range(reps):
            order = KINDS[i % 3:] + KINDS[:i % 3]
            rep: dict[str, Measured] = {}
            for kind in order:
                say(f"automatic {i + 1}/{reps}: {kind} of {count} packages on {NODE}")
                rep[kind] = MEASURE[kind](lab, versions)
                say(f"  {NODE} drained {rep[kind].drained:.1f}s")
            found.append(rep)
    finally:
        cleanup(lab)
    return summary(found, count, apt_value(lab, NODE, "Unattended-Upgrade::MinimalSteps"))


def summary(found: list[dict[str, Measured]], count: int, minimal_steps: str) -> dict[str, Any]:
    """The scenario's results: the two ratios, paired per repetition, and the figures behind them."""
    window_ratio = [r["window"].drained / r["node upgrade"].drained for r in found]
    uu_ratio = [r["unattended-upgrades"].drained / r["node upgrade"].drained for r in found]
    figures = {
        "drained_unattended_upgrades_s": [r["unattended-upgrades"].drained for r in found],
        "drained_node_upgrade_s": [r["node upgrade"].drained for r in found],
        "drained_window_s": [r["window"].drained for r in found],
        "drained_window_every_node_s": [s for r in found for s in r["window"].others.values()],
        "unattended_upgrade_run_s": [r["unattended-upgrades"].parts["unattended_upgrade_s"] for r in found],
        "unattended_finishing_step_s (poll)": [r["unattended-upgrades"].parts["finishing_step_s"] for r in found],
        "unattended_standby_s": [r["unattended-upgrades"].parts["standby_s"] for r in found],
        "node_upgrade_wall_s": [r["node upgrade"].wall for r in found],
        "window_wall_s (every node)": [r["window"].wall for r in found],
    }
    return {
        "node": NODE, "packages": count, "repetitions": len(found), "minimal_steps": minimal_steps,
        "automatic_path": "window (Rolling-Upgrade::Automatic \"window\": the nightly window, the tool's own node "
                          "upgrade of each node in turn)",
        "automatic_vs_node_upgrade": summarize(window_ratio).as_dict() if found else None,
        "unattended_vs_node_upgrade": summarize(uu_ratio).as_dict() if found else None,
        "target": 1.5,
        "figures": {name: summarize(values).as_dict() for name, values in figures.items() if values},
    }
