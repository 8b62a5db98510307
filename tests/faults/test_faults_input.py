"""Bad input and hostile values: one clear line, nothing changed, nothing reaching a shell; safe files.

Malformed settings, unknown or hostile node names, malformed probe
declarations, a corrupt history file; a check command and node names that
would run ``touch /tmp/pwned`` if they ever reached a shell; the modes of
everything the tool writes in a node after a run.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest

from tests.faults.restore import TEST_SETTINGS
from tests.lab.helpers import HISTORY, TOOL, fresh_version, history, rolling
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Result

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fi"
PWNED = "/tmp/pwned"
HOSTILE = f";touch {PWNED}"
STATE_DIRS = ("/var/lib/upgrader", "/run/upgrader", "/var/log/upgrader")


def epoch(lab: Lab) -> tuple[str, str]:
    root = ET.fromstring(node.runner(lab, "node1").run(["cibadmin", "--query", "--xpath", "/cib", "--no-children"]).stdout)
    return root.get("admin_epoch", ""), root.get("epoch", "")


def tool(lab: Lab, *argv: str, via: str = "node1") -> Result:
    return node.runner(lab, via, timeout=300).call([TOOL, *argv])


def pwned(lab: Lab) -> list[str]:
    return [n for n in lab.node_names if node.runner(lab, n).call(["test", "-e", PWNED]).returncode == 0]


def one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("setting, says", [
    ('Rolling-Upgrade::Settle-Timeout "soon";', "Rolling-Upgrade::Settle-Timeout: 'soon' is not a duration"),
    ('Rolling-Upgrade::Settle-Timout "30";', "unknown setting (did you mean Rolling-Upgrade::Settle-Timeout?)"),
    ('Rolling-Upgrade::Remote-Shell "ssh {node}' + HOSTILE + '";', None),
], ids=["bad-duration", "unknown-key", "hostile-remote-shell"])
def test_malformed_settings_are_one_line_and_change_nothing(healthy: Lab, nothing_lost, setting: str,
                                                            says: str | None) -> None:
    fresh_version(healthy)
    node.runner(healthy, "node1").run(["tee", TEST_SETTINGS], input=setting + "\n")
    before = epoch(healthy)
    result = tool(healthy, "run", "--yes")
    if says is None:  # a hostile but well-formed remote shell: its words are never a shell's syntax
        assert result.returncode != 0 and pwned(healthy) == [], result
    else:
        assert result.returncode == 2 and says in one_line(result), result
    assert epoch(healthy) == before
    nothing_lost(healthy)


@pytest.mark.parametrize("nodes, says", [
    ("nodeX", "refused: unknown node(s) nodeX: the cluster has node1, node2, node3"),
    (f"node2{HOSTILE}", f"refused: unknown node(s) node2{HOSTILE}: the cluster has node1, node2, node3"),
], ids=["nodeX", "hostile"])
def test_unknown_node_names_are_refused(healthy: Lab, nothing_lost, nodes: str, says: str) -> None:
    before = epoch(healthy)
    code, doc = rolling(healthy, "run", "--yes", "--nodes", nodes)
    assert code == 3 and doc["refused"] == says, doc
    assert epoch(healthy) == before and pwned(healthy) == []
    nothing_lost(healthy)


@pytest.mark.parametrize("name", ["node1']|//*['", f"node2{HOSTILE}", f"$(touch {PWNED})"],
                         ids=["xpath", "semicolon", "substitution"])
def test_hostile_node_names_never_reach_a_command_line_or_xpath(healthy: Lab, nothing_lost, name: str) -> None:
    before = epoch(healthy)
    result = tool(healthy, "unquarantine", name)
    assert result.returncode == 2 and "invalid node name" in one_line(result), result
    assert epoch(healthy) == before and pwned(healthy) == []
    nothing_lost(healthy)


@pytest.mark.parametrize("attribute, value", [
    ("rolling-upgrade-probe", "http://198.51.100.300/health"),
    ("rolling-upgrade-probe", f"tcp://198.51.100.1:80{HOSTILE}"),
    ("rolling-upgrade-check-cmd", "/usr/bin/test 'unterminated"),
], ids=["bad-address", "hostile-port", "unbalanced-quote"])
def test_malformed_probe_declarations_refuse_the_run_naming_them(healthy: Lab, nothing_lost, attribute: str,
                                                                 value: str) -> None:
    fresh_version(healthy)
    target = "app1" if attribute.endswith("probe") else "app1-ct"
    inside = node.runner(healthy, "node1")
    inside.run(["crm_resource", "--resource", target, "--meta", "--set-parameter", attribute, "--parameter-value", value])
    try:
        before = epoch(healthy)
        code, doc = rolling(healthy, "run", "--yes")
        assert code == 3 and attribute in doc["refused"] and target in doc["refused"], doc
        assert epoch(healthy) == before and pwned(healthy) == []
    finally:
        inside.run(["crm_resource", "--resource", target, "--meta", "--delete-parameter", attribute])
    nothing_lost(healthy)


def test_corrupt_history_with_a_dead_run_to_roll_back_is_one_line_and_changes_nothing(healthy: Lab, nothing_lost) -> None:
    inside = node.runner(healthy, "node1")
    existed = inside.call(["test", "-e", HISTORY]).returncode == 0
    kept = inside.call(["cat", HISTORY]).stdout
    inside.run(["tee", "-a", HISTORY], input='{"run": "half a line\n')
    # A dead run of node1 (its pid is no process there) that the next run has to roll back.
    lock.UpgradeLock(Cluster(inside), "dead-run", "node1").acquire("upgrade")
    try:
        before = epoch(healthy)
        code, doc = rolling(healthy, "run", "--yes")
        assert code == 4 and "is corrupt" in doc["error"] and "move the file aside" in doc["error"], doc
        assert epoch(healthy) == before
        nothing_lost(healthy, lock_phase="upgrade")
    finally:  # the file as it was (tee keeps its mode), or no file
        inside.run(["tee", HISTORY], input=kept) if existed else inside.run(["rm", HISTORY])


ALLOW_ECHO = "/etc/apt/apt.conf.d/62rolling-upgrade-allow-echo"


def test_check_commands_never_reach_a_shell_and_state_files_are_private(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    inside = node.runner(healthy, "node1")
    for app in healthy.app_names:  # argv: echo prints it all and succeeds; a shell would also touch the file
        inside.run(["crm_resource", "--resource", f"{app}-ct", "--meta", "--set-parameter",
                    "rolling-upgrade-check-cmd", "--parameter-value", f"/usr/bin/echo ok{HOSTILE}"])
    try:
        # A CIB write alone runs nothing: the program is not in this node's Health::Commands.
        before = epoch(healthy)
        code, doc = rolling(healthy, "run", "--yes")
        assert code == 3 and "meta attribute rolling-upgrade-check-cmd runs '/usr/bin/echo', which " \
            "Rolling-Upgrade::Health::Commands does not allow" in doc["refused"], doc
        assert epoch(healthy) == before
        for n in healthy.node_names:
            node.runner(healthy, n).run(["tee", ALLOW_ECHO], input='Rolling-Upgrade::Health::Commands { "/usr/bin/echo"; };\n')
        code, doc = rolling(healthy, "run", "--yes")
        assert code == 0, doc
    finally:
        for n in healthy.node_names:
            node.runner(healthy, n).run(["rm", "-f", ALLOW_ECHO])
        for app in healthy.app_names:
            inside.run(["crm_resource", "--resource", f"{app}-ct", "--meta", "--delete-parameter",
                        "rolling-upgrade-check-cmd"])
    assert pwned(healthy) == []
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    assert inside.run(["stat", "-c", "%a", HISTORY]).stdout.strip() == "600"
    assert inside.run(["stat", "-c", "%a", HISTORY.rsplit("/", 1)[0]]).stdout.strip() == "700"
    for n in healthy.node_names:
        found = node.runner(healthy, n).call(["find", *STATE_DIRS, "-perm", "-o+w", "-o", "-name", "*.tmp"])
        assert found.stdout.strip() == "", f"{n}: world-writable or half-written state: {found.stdout}"
    assert json.dumps(history(healthy, doc["run"]))  # the run is in the history, readable
    nothing_lost(healthy, run=doc["run"], told=[("run", "start"), ("verify", "start"), ("run", "end")])


HOSTILE_UNAME = f"-oProxyCommand=touch {PWNED}"


def test_a_hostile_node_name_in_the_cluster_is_refused_before_any_remote_shell(healthy: Lab, nothing_lost) -> None:
    """A node entry whose name is an ssh option (listed offline by crm_mon): plan, run and the window's check
    each refuse in one line naming it, and nothing reaches ssh."""
    inside = node.runner(healthy, "node1")
    inside.run(["cibadmin", "--create", "--scope", "nodes", "--xml-text", f'<node id="9" uname="{HOSTILE_UNAME}"/>'])
    try:
        before = epoch(healthy)
        for argv in (("plan",), ("run", "--yes"), ("window", "--check")):
            result = tool(healthy, *argv)
            assert result.returncode != 0, (argv, result)
            line = one_line(result) if result.stderr.strip() else result.stdout
            assert "invalid node name" in line and HOSTILE_UNAME in line, (argv, result)
        assert epoch(healthy) == before and pwned(healthy) == []
    finally:
        inside.run(["cibadmin", "--delete", "--scope", "nodes", "--xml-text", '<node id="9"/>'])
    nothing_lost(healthy)


def test_a_catastrophic_probe_regex_is_cut_at_its_deadline(healthy: Lab, nothing_lost) -> None:
    """body=(a+)+b against a 404 page echoing 40 a's backtracks for hours: the check ends at Health::Timeout,
    naming the regex, and the cluster is untouched."""
    ip = healthy.app_ip("app1")
    probe = f"http://{ip}/{'a' * 40}#status=404&body=(a+)+b"
    inside = node.runner(healthy, "node1")
    inside.run(["tee", TEST_SETTINGS], input='Rolling-Upgrade::Health::Timeout "8";\n')
    inside.run(["crm_resource", "--resource", "app1", "--meta", "--set-parameter", "rolling-upgrade-probe",
                "--parameter-value", probe])
    try:
        before = epoch(healthy)
        started = time.monotonic()
        result = tool(healthy, "check", "--json")
        took = time.monotonic() - started
        assert result.returncode == 1, result
        rows = [r for r in json.loads(result.stdout)["results"] if r["resource"] == "app1" and not r["ok"]]
        assert rows and "did not finish matching" in rows[0]["error"], result.stdout
        assert took < 30, took  # Health::Timeout (8 s), plus the other checks
        assert epoch(healthy) == before
    finally:
        inside.run(["crm_resource", "--resource", "app1", "--meta", "--set-parameter", "rolling-upgrade-probe",
                    "--parameter-value", f"http://{ip}/health"])
    nothing_lost(healthy)
