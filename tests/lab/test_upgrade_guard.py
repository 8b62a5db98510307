"""The APT/dpkg guard with real apt-get, dpkg, python-apt and unattended-upgrades inside lab nodes.

Named to run after test_lab.py, which expects every node still at version 1.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from upgrader_bench.hook import bench_hook
from upgrader_lab import lab as ops
from upgrader_lab import node, project, repo
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, drained
from upgrader.runner import Result

pytestmark = pytest.mark.lab
EVENTS = "/var/log/upgrader/hooks.jsonl"
UU_CONF = "/etc/apt/apt.conf.d/51upgrader-lab-uu"
PY = sys.executable


def run(lab: Lab, n: str, *argv: str, timeout: float = 120, **env: str) -> Result:
    return node.runner(lab, n, timeout=timeout).with_env(**env).call(list(argv))


def cluster(lab: Lab, via: str = "node1") -> Cluster:
    return Cluster(node.runner(lab, via, timeout=30))


def fresh_version(lab: Lab, security: bool = False) -> str:
    """Publish a version no earlier test published, and refresh every node's indexes."""
    taken = {d.name.split("_")[1] for d in lab.repo_dir.glob("**/*.deb")}
    version = next(str(v) for v in range(2, 1000) if str(v) not in taken)
    repo.publish(lab.repo_dir, version, security=security)
    ops.refresh_indexes(lab)
    return version


def active_node(lab: Lab) -> str:
    state = cluster(lab).state()
    return sorted(state.running_on("app1"))[0]


def drain(lab: Lab, *nodes: str) -> None:
    c = cluster(lab)
    for n in nodes:
        c.set_standby(n, True)
    apps = tuple(lab.app_names)
    c.wait_settled(lambda s: [p for n in nodes for p in drained(n, apps)(s)], deadline=60)


def events(lab: Lab, n: str, run_key: str | None = None) -> list[dict]:
    out = run(lab, n, "cat", EVENTS).stdout
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in found if run_key is None or e["run"] == run_key]


def last_run(lab: Lab, n: str, stage: str = "pre-invoke") -> str:
    return [e for e in events(lab, n) if e["stage"] == stage][-1]["run"]


def wait_for(what: str, probe, timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def history(lab: Lab, n: str) -> list[dict]:
    out = run(lab, n, "cat", "/var/lib/upgrader/history.jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def finishing_step(lab: Lab, n: str, key: str) -> list[dict]:
    """The finisher's record of apt run ``key`` on ``n`` (it ends with the finishing step's exit code)."""
    return wait_for(f"the finishing step of apt run {key} on {n}",
                    lambda: [h for h in history(lab, n) if h["run"] == f"apt-{key}" and h["phase"] == "apt"],
                    timeout=120)


@pytest.fixture(autouse=True)
def clean_cluster(lab: Lab) -> Iterator[None]:
    """Every node online, no upgrade lock, the apps serving: before and after each test."""
    yield
    c = cluster(lab)
    for n in lab.node_names:
        c.set_standby(n, False)
    lock.force_unlock(c)
    ops.wait_serving(lab, 90)


def test_active_node_is_refused_with_the_reason_and_nothing_changes(lab: Lab) -> None:
    fresh_version(lab)
    n = active_node(lab)
    before = ops.installed_version(lab, n)
    got = run(lab, n, "apt-get", "dist-upgrade", "-y")
    assert got.returncode == 100
    assert f"refused: {n} is active (runs app1" in got.stderr
    assert "put it in standby or run rolling-upgrade" in got.stderr
    assert ops.installed_version(lab, n) == before
    assert lock.read(cluster(lab)) is None
    assert f"refused: {n} is active" in run(lab, n, "cat", "/run/upgrader/refusal").stdout
    # python-apt callers only see installArchives() failed: upgrade_node reads the guard's reason.
    code = "import json; from upgrader.packages.run import upgrade_node; print(json.dumps(upgrade_node().document()))"
    report = json.loads(run(lab, n, PY, "-c", code).stdout)
    assert report["result"] == "refused" and f"refused: {n} is active" in report["message"]
    assert ops.installed_version(lab, n) == before


def test_dpkg_i_on_an_active_node_is_refused(lab: Lab) -> None:
    version = fresh_version(lab)
    n = active_node(lab)
    before = ops.installed_version(lab, n)
    deb = f"{node.REPO_MOUNT}/pool/lab/{repo.PACKAGE}_{version}_all.deb"
    got = run(lab, n, "dpkg", "-i", deb)
    assert got.returncode != 0
    assert f"refused: {n} is active" in got.stderr
    assert ops.installed_version(lab, n) == before
    assert run(lab, n, "dpkg", "--audit").stdout == ""


def test_standby_node_upgrades_and_the_finishing_step_is_recorded_once(lab: Lab) -> None:
    version = fresh_version(lab, security=True)
    plan = json.loads(run(lab, "node1", PY, "-c", "import json; from upgrader.packages.plan import local_plan; "
                                                  "print(json.dumps(local_plan().document()))").stdout)
    assert plan["changes"] == [{"package": repo.PACKAGE, "installed": plan["changes"][0]["installed"],
                                "candidate": version, "security": True, "ha_stack": False, "in_use": False,
                                "action": "upgrade",
                                "origins": [{"origin": repo.ORIGIN, "label": repo.ORIGIN, "archive": "lab-security",
                                             "codename": "lab-security", "component": "main", "site": ""}]}]
    drain(lab, "node1")
    got = run(lab, "node1", "apt-get", "dist-upgrade", "-y")
    assert got.returncode == 0, got.stderr
    assert ops.installed_version(lab, "node1") == version
    key = last_run(lab, "node1")
    finished = finishing_step(lab, "node1", key)
    assert len(finished) == 1 and finished[0]["result"] == "ok"
    assert finished[0]["changes"][0]["new"] == version and finished[0]["changes"][0]["now"] == version
    assert finished[0]["finish"].endswith("exit 0"), finished[0]["finish"]
    # The finishing step brought node1 back, moved its share onto the patched root, and let go of the lock.
    state = cluster(lab).state()
    assert not state.node("node1").standby
    assert any("node1" in state.running_on(a) for a in lab.app_names)
    assert lock.read(cluster(lab)) is None
    seen = [e["event"] for e in events(lab, "node1", key)]
    assert seen.count("lock-acquired") == 1 and seen.count("finish-spawned") == 1


def test_unattended_upgrades_on_a_standby_node_is_one_logical_run(lab: Lab) -> None:
    version = fresh_version(lab)
    node.runner(lab, "node2").run(["tee", UU_CONF], input='Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n'
                                                           'Unattended-Upgrade::MinimalSteps "true";\n'
                                                           'Rolling-Upgrade::Boot-Grace "0";\n')
    drain(lab, "node2")
    got = run(lab, "node2", "unattended-upgrade", "-v", timeout=300)
    assert got.returncode == 0, got.stdout + got.stderr
    assert ops.installed_version(lab, "node2") == version
    key = last_run(lab, "node2")
    assert finishing_step(lab, "node2", key)[0]["finish"].endswith("exit 0")
    seen = events(lab, "node2", key)
    firings = [e for e in seen if e["stage"] in ("pre-invoke", "dpkg-pre-invoke", "pre-install-pkgs", "post-invoke", "dpkg-post-invoke")]
    hook_calls = len({e["pid"] for e in firings})
    print(f"unattended-upgrades: {hook_calls} hook calls, "
          f"{sum(e['event'] == 'lock-acquired' for e in seen)} lock acquisition, "
          f"{sum(e['event'] == 'finish-spawned' for e in seen)} finishing-step trigger")
    assert sum(e["stage"] == "pre-invoke" for e in firings) >= 2  # u-u registers the hooks twice
    assert [e["event"] for e in seen].count("lock-acquired") == 1
    assert [e["event"] for e in seen].count("finish-spawned") == 1


def test_two_standby_nodes_at_once_one_proceeds_the_other_is_told_who_holds_the_lock(lab: Lab) -> None:
    version = fresh_version(lab)
    drain(lab, "node1", "node2")
    results: dict[str, Result] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, run(lab, n, "apt-get", "dist-upgrade", "-y")))
               for n in ("node1", "node2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    winners = [n for n, r in results.items() if r.returncode == 0]
    assert len(winners) == 1, {n: r.stderr for n, r in results.items()}
    winner, loser = winners[0], ({"node1", "node2"} - set(winners)).pop()
    assert results[loser].returncode == 100
    assert f"refused: the upgrade lock is held by {winner}" in results[loser].stderr
    assert ops.installed_version(lab, winner) == version
    assert ops.installed_version(lab, loser) != version
    # Nothing lost: once the winner's finishing step has released the lock, the other one goes.
    finishing_step(lab, winner, last_run(lab, winner))
    wait_for("the lock to be free", lambda: lock.read(cluster(lab)) is None, timeout=30)
    assert run(lab, loser, "apt-get", "dist-upgrade", "-y").returncode == 0
    assert ops.installed_version(lab, loser) == version
    finishing_step(lab, loser, last_run(lab, loser))


def test_removed_tool_never_blocks_apt_and_a_crashing_guard_refuses(lab: Lab) -> None:
    n = active_node(lab)
    reinstall = ("apt-get", "install", "-y", "--reinstall", repo.PACKAGE)
    try:
        node.runner(lab, n).run(["tee", "/etc/apt/apt.conf.d/99broken"], input='Rolling-Upgrade::Lock-Expiry "soon";\n')
        crashed = run(lab, n, *reinstall)
        assert crashed.returncode == 100 and "refused: Rolling-Upgrade::Lock-Expiry" in crashed.stderr
        node.runner(lab, n).run(["rm", "-f", "/etc/apt/apt.conf.d/99broken"])
        node.runner(lab, n).run(["rm", "-rf", "/usr/local/lib/upgrader"])
        assert run(lab, n, *reinstall).returncode == 0
        assert run(lab, n, "dpkg", "--configure", "-a").returncode == 0
    finally:
        node.runner(lab, n).run(["rm", "-f", "/etc/apt/apt.conf.d/99broken"])
        project.install_project(lab, n)
    assert run(lab, n, *reinstall).returncode == 100


def test_override_lets_apt_run_and_says_so_loudly(lab: Lab) -> None:
    n = active_node(lab)
    got = run(lab, n, "apt-get", "install", "-y", "--reinstall", repo.PACKAGE, UPGRADER_GUARD="off")
    assert got.returncode == 0, got.stderr
    assert "WARNING: UPGRADER_GUARD=off" in got.stderr
    assert "UPGRADER_GUARD=off" in run(lab, n, "cat", "/var/log/upgrader/hooks.log").stdout
    assert lock.read(cluster(lab)) is None


def test_repeated_pre_invoke_costs_at_most_one_and_a_half_crm_mon(lab: Lab) -> None:
    figures = bench_hook(lab, "node3", runs=7)
    print(f"hook benchmark: {figures}")
    assert figures["ratio"] <= 1.5, figures
