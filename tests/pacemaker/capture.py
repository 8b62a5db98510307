"""Capture Pacemaker output from a real lab into tests/pacemaker/data/.

    sudo .venv/bin/python tests/pacemaker/capture.py [--name pcap]

Brings up its own 3-node lab, adds a Dummy clone (so clones are covered),
then produces each situation and saves crm_mon XML (and crm_simulate text,
CIB copies) with the facts of the moment in data/situations.json. The unit
tests read only these files. The lab is always torn down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from upgrader.pacemaker.live import Check, Cluster
from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"
LAB_CLI = str(Path(sys.executable).parent / "upgrader-lab")
APPS = ("app1", "app2", "app3")
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


def capture(lab: Lab) -> dict[str, dict]:
    facts: dict[str, dict] = {}
    c1 = lab.cluster("node1")
    c1.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={CLONE}"])
    state = c1.wait_settled(all_running(lambda s: [] if len(s.running_on("probe-clone")) == 3 else ["clone not everywhere"]), deadline=60)

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

    print("node3 powered off")
    c1.wait_settled(all_running(lambda s: [] if not s.failures else ["failures not cleaned up"]), deadline=60)
    lab("kill", "node3")
    offline = all_running(lambda s: [] if not s.node("node3").online else ["node3 still online"])
    state = c1.wait_settled(offline, deadline=90)
    save("crm_mon-node3-offline.xml", crm_mon(c1))
    save("cib-node3-offline.xml", c1.runner.run(["cibadmin", "--query"]).stdout)
    facts["node3-offline"] = {"node": "node3", "placement": placement(state)}
    return facts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="pcap", help="name of the lab to bring up (default pcap)")
    args = p.parse_args()
    DATA.mkdir(exist_ok=True)
    lab = Lab(args.name)
    lab("up", "--nodes", "3")
    try:
        facts = capture(lab)
    finally:
        lab("down")
    save("situations.json", json.dumps(facts, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
