"""Capture Pacemaker output from a real lab into tests/pacemaker/data/.

    sudo .venv/bin/python tests/pacemaker/capture.py [--name pcap] [--only start-failed|promotable]

Brings up its own 3-node lab, adds a Dummy clone (so clones are covered),
then produces each situation (or only the one ``--only`` names) and saves crm_mon XML (and crm_simulate text,
CIB copies) with the facts of the moment in data/situations.json. ``promotable`` adds a promotable
Stateful clone and a Dummy colocated with its Promoted role, and predicts the Promoted node's standby. The unit
tests read only these files. The lab is always torn down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from upgrader.pacemaker.live import Check, Cluster
from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"
LAB_CLI = str(Path(sys.executable).parent / "upgrader-lab")
APPS = ("app1", "app2", "app3")
FLAKY = "flaky"  # a Dummy primitive whose start fails on one node (start-failed situation)
PROMOTABLE, FRONT = "db-clone", "db-front"  # a promotable clone, and a resource that runs with its Promoted role
CLONE = (
    '<clone id="probe-clone"><primitive id="probe" class="ocf" provider="pacemaker" type="Dummy">'
    '<operations><op id="probe-monitor-10s" name="monitor" interval="10s"/></operations></primitive></clone>'
)


class Lab:
    """The upgrader-lab CLI for one named lab."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.host = Runner(timeout=180)

    def __call__(self, *argv: str) -> None:
        self.host.run([LAB_CLI, "--name", self.name, *argv], what=f"upgrader-lab {argv[0]}")

    def cluster(self, node: str, timeout: float = 30) -> Cluster:
        return Cluster(Runner(prefix=[LAB_CLI, "--name", self.name, "exec", node, "--"], timeout=timeout))


def save(name: str, text: str) -> None:
    (DATA / name).write_text(text if text.endswith("\n") else text + "\n")
    print(f"  saved {name}")


def crm_mon(cluster: Cluster) -> str:
    return cluster.runner.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"]).stdout


def all_running(*extra: Check) -> Check:
    def check(state: ClusterState) -> list[str]:
        problems = [f"{app} runs nowhere" for app in APPS if not state.running_on(app)]
        for c in extra:
            problems += c(state)
        return problems

    return check


def placement(state: ClusterState) -> dict[str, list[str]]:
    return {rid: sorted(state.running_on(rid)) for rid in state.top_level_ids()}


def setup(lab: Lab) -> ClusterState:
    """The Dummy clone added, every application and clone instance running."""
    c1 = lab.cluster("node1")
    c1.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={CLONE}"])
    return c1.wait_settled(all_running(clone_everywhere), deadline=60)


def clone_everywhere(state: ClusterState) -> list[str]:
    return [] if len(state.running_on("probe-clone")) == 3 else ["clone not everywhere"]


def situation_main(lab: Lab, state: ClusterState) -> dict[str, dict]:
    """all-online, standby, group-moving, ban, failed-action (fail-count 1), node3-offline (in that order)."""
    facts: dict[str, dict] = {}
    c1 = lab.cluster("node1")

    print("all online")
    save("crm_mon-all-online.xml", crm_mon(c1))
    save("cib-all-online.xml", c1.runner.run(["cibadmin", "--query"]).stdout)
    target = sorted(state.running_on("app1"))[0]
    facts["all-online"] = {"placement": placement(state), "dc": state.summary.dc}

    print(f"standby {target}: prediction, then the group moving, then settled")
    save(f"crm_simulate-standby-{target}.txt", c1.simulate_standby(target))
    # The same tool offline on the saved CIB: a failed monitor means a recovery in place.
    inject = f"app1-ct_monitor_5000@{target}=7"
    save("crm_simulate-recover.txt", Runner().run(["crm_simulate", f"--xml-file={DATA / 'cib-all-online.xml'}", "--simulate", f"--op-inject={inject}"]).stdout)
    c1.set_standby(target, True)
    moving, started = None, time.monotonic()
    while moving is None and time.monotonic() - started < 20:
        text = crm_mon(c1)
        if parse_crm_mon(text).busy():
            moving = text
    if moving is None:
        raise SystemExit("never saw a resource in flight after standby: run the capture again")
    save("crm_mon-group-moving.xml", moving)
    away = all_running(lambda s: [f"{a} still on {target}" for a in APPS if target in s.running_on(a)])
    state = c1.wait_settled(away, deadline=60)
    save(f"crm_mon-standby-{target}.xml", crm_mon(c1))
    facts["standby"] = {"node": target, "placement": placement(state)}
    c1.set_standby(target, False)
    c1.wait_settled(all_running(lambda s: [] if len(s.running_on("probe-clone")) == 3 else ["clone not everywhere"]), deadline=60)

    print("a ban left by crm_resource")
    home = sorted(c1.state().running_on("app2"))[0]
    c1.runner.run(["crm_resource", "--ban", "--resource", "app2", "--node", home])
    state = c1.wait_settled(all_running(lambda s: [f"app2 still on {home}"] if home in s.running_on("app2") else []), deadline=60)
    save("crm_mon-ban.xml", crm_mon(c1))
    save("cib-ban.xml", c1.runner.run(["cibadmin", "--query"]).stdout)
    facts["ban"] = {"resource": "app2", "node": home, "placement": placement(state)}
    c1.runner.run(["crm_resource", "--clear", "--resource", "app2"])

    print("a failed action: the container of app3 stopped behind Pacemaker's back")
    state = c1.wait_settled(all_running(), deadline=60)
    where = sorted(state.running_on("app3"))[0]
    container = c1.runner.run(["crm_resource", "--resource", "app3-ct", "--get-parameter", "container"]).stdout.strip()
    lab.cluster(where).runner.run(["lxc-stop", "--name", container, "--kill"], timeout=20)
    state = c1.wait_settled(all_running(lambda s: [] if s.failures else ["no failure recorded yet"]), deadline=60)
    save("crm_mon-failed-action.xml", crm_mon(c1))
    facts["failed-action"] = {"resource": "app3-ct", "node": where, "placement": placement(state)}
    c1.runner.run(["crm_resource", "--cleanup", "--resource", "app3"])

    facts.update(situation_start_failed(lab, c1.wait_settled(all_running(), deadline=60)))
    facts.update(situation_promotable(lab, c1.wait_settled(all_running(), deadline=60)))
    print("node3 powered off")
    c1.wait_settled(all_running(lambda s: [] if not s.failures else ["failures not cleaned up"]), deadline=60)
    lab("kill", "node3")
    offline = all_running(lambda s: [] if not s.node("node3").online else ["node3 still online"])
    state = c1.wait_settled(offline, deadline=90)
    save("crm_mon-node3-offline.xml", crm_mon(c1))
    save("cib-node3-offline.xml", c1.runner.run(["cibadmin", "--query"]).stdout)
    facts["node3-offline"] = {"node": "node3", "placement": placement(state)}
    return facts


def situation_start_failed(lab: Lab, state: ClusterState) -> dict[str, dict]:
    """A start that fails (Dummy's fail_start_on): fail-count INFINITY on that node, recovered elsewhere.

    The resource and its constraint are removed again and cleaned up afterwards.
    """
    c1 = lab.cluster("node1")
    where = "node2"
    print(f"a start failure: {FLAKY} fails to start on {where} (fail-count INFINITY there)")
    c1.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={flaky_xml(where)}"])
    constraint = f'<rsc_location id="{FLAKY}-prefers-{where}" rsc="{FLAKY}" node="{where}" score="100"/>'
    c1.runner.run(["cibadmin", "--create", "--scope", "constraints", f"--xml-text={constraint}"])
    c1.runner.run(["crm_resource", "--resource", FLAKY, "--meta", "--delete-parameter", "target-role"])

    def recovered(s: ClusterState) -> list[str]:
        problems = [] if s.fail_count(FLAKY, where) else [f"no fail-count of {FLAKY} on {where} yet"]
        return problems + ([] if s.running_on(FLAKY) else [f"{FLAKY} not running yet"])

    state = c1.wait_settled(all_running(recovered), deadline=60)
    save("crm_mon-start-failed.xml", crm_mon(c1))
    facts = {"start-failed": {"resource": FLAKY, "node": where, "placement": placement(state)}}
    c1.runner.run(["crm_resource", "--resource", FLAKY, "--meta", "--set-parameter", "target-role",
                   "--parameter-value", "Stopped"])
    c1.wait_settled(all_running(lambda s: [f"{FLAKY} still runs"] if s.running_on(FLAKY) else []), deadline=60)
    c1.runner.run(["crm_resource", "--cleanup", "--resource", FLAKY])
    c1.runner.run(["cibadmin", "--delete", "--scope", "constraints", f"--xml-text={constraint}"])
    c1.runner.run(["cibadmin", "--delete", "--scope", "resources", f'--xml-text=<primitive id="{FLAKY}"/>'])
    c1.runner.run(["crm_resource", "--cleanup"])  # the deleted resource's history too

    def gone(s: ClusterState) -> list[str]:
        return [f"{FLAKY} still listed"] * bool(s.members(FLAKY)) + [f"fail-count {f}" for f in s.fail_counts]

    c1.wait_settled(all_running(gone), deadline=60)
    return facts


def flaky_xml(fail_on: str) -> str:
    return (f'<primitive id="{FLAKY}" class="ocf" provider="pacemaker" type="Dummy">'
            f'<instance_attributes id="{FLAKY}-ia"><nvpair id="{FLAKY}-fail" name="fail_start_on" value="{fail_on}"/>'
            f'</instance_attributes><meta_attributes id="{FLAKY}-meta">'
            f'<nvpair id="{FLAKY}-target-role" name="target-role" value="Stopped"/></meta_attributes>'
            f'<operations><op id="{FLAKY}-monitor-10s" name="monitor" interval="10s"/></operations></primitive>')


def situation_promotable(lab: Lab, state: ClusterState) -> dict[str, dict]:
    """A promotable Stateful clone (promoted-max 1) and a Dummy colocated with its Promoted role: the
    prediction for the Promoted node's standby (crm_simulate, with the CIB and crm_mon it ran on), then
    what the cluster did. Both resources and their constraints are removed again afterwards."""
    c1 = lab.cluster("node1")
    print(f"a promotable clone {PROMOTABLE} and {FRONT} with its Promoted role")
    c1.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={promotable_xml()}"])
    c1.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={front_xml()}"])
    for constraint in promotable_constraints():
        c1.runner.run(["cibadmin", "--create", "--scope", "constraints", f"--xml-text={constraint}"])
    state = c1.wait_settled(all_running(clone_everywhere, promoted_with_front()), deadline=90)
    node = promoted_on(state)[0]
    save("crm_mon-promotable.xml", crm_mon(c1))
    save("cib-promotable.xml", c1.runner.run(["cibadmin", "--query"]).stdout)
    elsewhere = sorted(state.running_on(PROMOTABLE) - {node})[0]
    print(f"offline, on the saved CIB: the Promoted role preferred on {elsewhere} (a demote and a promote)")
    save("crm_simulate-promotable-demote.txt", simulate_promoted_on(DATA / "cib-promotable.xml", elsewhere))
    print(f"standby {node} (runs the Promoted {PROMOTABLE}): prediction, then what the cluster did")
    save("crm_simulate-promotable-standby.txt", c1.simulate_standby(node))
    c1.set_standby(node, True)
    away = all_running(promoted_with_front(away_from=node),
                       lambda s: [f"{a} still on {node}" for a in APPS if node in s.running_on(a)])
    after = c1.wait_settled(away, deadline=90)
    save("crm_mon-promotable-standby.xml", crm_mon(c1))
    facts = {"promotable": {"node": node, "placement": placement(state), "promoted": promoted_on(state),
                            "demote": {"preferred": elsewhere},
                            "after": {"placement": placement(after), "promoted": promoted_on(after)}}}
    c1.set_standby(node, False)
    remove_promotable(c1)
    return facts


def simulate_promoted_on(cib: Path, node: str) -> str:
    """crm_simulate on a copy of ``cib`` with a location constraint that prefers the Promoted role on ``node``."""
    constraint = (f'<rsc_location id="{PROMOTABLE}-promoted-on-{node}" rsc="{PROMOTABLE}" role="Promoted" '
                  f'node="{node}" score="1000"/>')
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "cib.xml"
        shutil.copy(cib, copy)
        Runner(env={"CIB_file": str(copy)}).run(["cibadmin", "--create", "--scope", "constraints",
                                                 f"--xml-text={constraint}"])
        return Runner().run(["crm_simulate", f"--xml-file={copy}", "--simulate"]).stdout


def promoted_on(state: ClusterState) -> list[str]:
    """The nodes where an instance of the promotable clone runs Promoted."""
    return sorted(n for r in state.members(PROMOTABLE) if r.running and r.role in ("Promoted", "Master")
                  for n in r.nodes)


def promoted_with_front(away_from: str | None = None) -> Check:
    """One Promoted instance (not on ``away_from``), an instance on every other node that can run one, and the
    colocated resource with the Promoted one."""

    def check(s: ClusterState) -> list[str]:
        promoted = promoted_on(s)
        if len(promoted) != 1 or promoted[0] == away_from:
            return [f"{PROMOTABLE} promoted on {promoted or 'no node'}"]
        fit = {n.name for n in s.nodes if n.online and not n.standby}
        problems = [] if s.running_on(PROMOTABLE) == fit else [f"{PROMOTABLE} not on every node that can run it"]
        return problems + ([] if s.running_on(FRONT) == {promoted[0]} else [f"{FRONT} not with the Promoted instance"])

    return check


def remove_promotable(c1: Cluster) -> None:
    """Stop and delete the promotable clone, the colocated resource and their constraints."""
    for rid in (FRONT, PROMOTABLE):
        c1.runner.run(["crm_resource", "--resource", rid, "--meta", "--set-parameter", "target-role",
                       "--parameter-value", "Stopped"])
    c1.wait_settled(all_running(lambda s: [f"{r} still runs" for r in (FRONT, PROMOTABLE) if s.running_on(r)]),
                    deadline=90)
    for constraint in promotable_constraints():
        c1.runner.run(["cibadmin", "--delete", "--scope", "constraints", f"--xml-text={constraint}"])
    for tag, rid in (("primitive", FRONT), ("clone", PROMOTABLE)):
        c1.runner.run(["cibadmin", "--delete", "--scope", "resources", f'--xml-text=<{tag} id="{rid}"/>'])
    c1.runner.run(["crm_resource", "--cleanup"])
    c1.wait_settled(all_running(lambda s: [f"{r} still listed" for r in (FRONT, PROMOTABLE) if s.members(r)]),
                    deadline=60)


def promotable_xml() -> str:
    return (f'<clone id="{PROMOTABLE}"><meta_attributes id="{PROMOTABLE}-meta">'
            f'<nvpair id="{PROMOTABLE}-promotable" name="promotable" value="true"/>'
            f'<nvpair id="{PROMOTABLE}-promoted-max" name="promoted-max" value="1"/></meta_attributes>'
            '<primitive id="db" class="ocf" provider="pacemaker" type="Stateful"><operations>'
            '<op id="db-monitor-promoted" name="monitor" interval="10s" role="Promoted"/>'
            '<op id="db-monitor-unpromoted" name="monitor" interval="11s" role="Unpromoted"/>'
            '</operations></primitive></clone>')


def front_xml() -> str:
    return (f'<primitive id="{FRONT}" class="ocf" provider="pacemaker" type="Dummy"><operations>'
            f'<op id="{FRONT}-monitor-10s" name="monitor" interval="10s"/></operations></primitive>')


def promotable_constraints() -> tuple[str, ...]:
    return (f'<rsc_colocation id="{FRONT}-with-promoted" rsc="{FRONT}" with-rsc="{PROMOTABLE}" '
            'with-rsc-role="Promoted" score="INFINITY"/>',
            f'<rsc_order id="{FRONT}-after-promote" first="{PROMOTABLE}" first-action="promote" then="{FRONT}" '
            'then-action="start"/>')


SITUATIONS = {"all": situation_main, "start-failed": situation_start_failed, "promotable": situation_promotable}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="pcap", help="name of the lab to bring up (default pcap)")
    p.add_argument("--only", choices=sorted(SITUATIONS), default="all",
                   help="capture only this situation; its facts are merged into situations.json (default all)")
    args = p.parse_args()
    DATA.mkdir(exist_ok=True)
    lab = Lab(args.name)
    try:
        lab("up", "--nodes", "3")
        facts = SITUATIONS[args.only](lab, setup(lab))
    finally:
        lab("down")
    if args.only != "all":
        facts = {**json.loads((DATA / "situations.json").read_text()), **facts}
    save("situations.json", json.dumps(facts, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
