"""A real point update (this machine's 135 pending bookworm updates, captured by capture_plan.py) in a few lines.

Tables, the prompt and the live progress summarize a node's changes; ``--json`` and the history keep every one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from upgrader.cli import plan as plan_command
from upgrader.cli import run as run_command
from upgrader.cli.progress import ConsoleReport
from upgrader.cli.render import step_text, summary, summary_lines
from upgrader.orchestrator import remote
from upgrader.orchestrator.context import NodeResult, Result
from upgrader.orchestrator.outcome import Outcome
from upgrader.packages.after import mapped_files
from upgrader.packages.pkgset import PackageSet
from upgrader.packages.plan import Change, Plan, in_use, merged_aliases

DATA = Path(__file__).parent / "data"
IN_USE = "in use: libexpat1, libgcrypt20, libgnutls30, libgssapi-krb5-2, libk5crypto3 (+18 more)"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads((DATA / "plan-bookworm-135.json").read_text())


@pytest.fixture(scope="module")
def plan(doc: dict[str, Any]) -> Plan:
    return Plan(doc["node"], tuple(Change(**{k: v for k, v in c.items() if k != "action"}) for c in doc["changes"]))


def node_plan(doc: dict[str, Any], node: str = "node1") -> remote.NodePlan:
    return remote.NodePlan(node, tuple(remote.Change.from_json(c) for c in doc["changes"]))


def console() -> Console:
    return Console(file=io.StringIO(), width=200)


def printed(out: Console) -> str:
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def test_the_capture_is_the_issue_s_update(doc: dict[str, Any], plan: Plan) -> None:
    assert len(doc["changes"]) == 135 and doc["security"] == 87 and doc["ha_stack"] == []
    assert sum(c["in_use"] for c in doc["changes"]) == 23
    # The JSON keeps every change and every field, in_use included; the capture predates origins (none read back).
    assert plan.document() == dict(doc, changes=[dict(c, origins=()) for c in doc["changes"]])


def test_summary_of_a_node(doc: dict[str, Any]) -> None:
    assert summary_lines(doc["changes"]) == ["135 packages, 87 security", IN_USE]
    assert summary(node_plan(doc).changes) == f"135 packages, 87 security; {IN_USE}"


def test_the_cluster_stack_is_named_before_what_is_in_use(doc: dict[str, Any]) -> None:
    stack = [{"package": p, "installed": "1", "candidate": "2", "security": False, "ha_stack": True, "in_use": True}
             for p in ("corosync", "libqb100", "pacemaker")]
    assert summary_lines(doc["changes"] + stack) == ["138 packages, 87 security",
                                                     "HA stack: corosync, libqb100, pacemaker", IN_USE]


def test_few_changes_are_named_with_their_versions() -> None:
    changes = [remote.Change("demo-libfoo", "1", "2", security=True), remote.Change("demo-new", None, "1"),
               remote.Change("demo-old", "3", None)]
    assert summary(changes) == ("3 packages, 1 security, 1 new, 1 removed: demo-libfoo 1 -> 2, demo-new - -> 1, "
                                "demo-old 3 -> removed")
    assert summary([]) == "up to date"


def test_local_plan_lists_the_packages_that_matter(plan: Plan) -> None:
    out = console()
    plan_command.render(plan, out)
    text = printed(out)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert "vm: 135 packages, 87 security" in text.splitlines()[0]
    assert len(rows) == 23 and all(line.rstrip().endswith("yes    │") for line in rows)
    assert rows[0].split("│")[1:4] == [" bash                  ", " 5.2.15-2+b8             ", " 5.2.15-2+b13            "]
    assert " ".join(text.split()).endswith("and 112 packages, 71 security, neither HA stack nor in use: "
                                           "'rolling-upgrade plan --local --json' lists every change")


def test_cluster_plan_row(doc: dict[str, Any]) -> None:
    out = console()
    plans = {"node3": remote.NodePlan("node3"), "node1": node_plan(doc)}
    out.print(plan_command.plan_table(plans, {}))
    rows = [line.split("│")[1:-1] for line in printed(out).splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row[:5]] for row in rows] == [
        ["-", "node3", "up to date", "", ""],
        ["1", "node1", "135 packages, 87 security", "87", ""],
        ["", "", IN_USE, "", ""],
    ]
    document = plan_command.plan_document(plans, {})
    assert document["order"] == ["node1"] and len(document["nodes"]["node1"]["changes"]) == 135


def test_final_report_of_the_run(doc: dict[str, Any]) -> None:
    changes = [c.__dict__ for c in node_plan(doc).changes]  # as the run records them (history and --json)
    results = {"node1": NodeResult("node1", Result.OK, changes=changes, moves=["app1 node1 -> node2"],
                                   checks=["1 resource(s) healthy"], old_code=["ssh.service"], seconds=95.3),
               "node2": NodeResult("node2", Result.UP_TO_DATE)}
    r = SimpleNamespace(run_id="run-1", results=results, stop_reason=None, recovered=[], package_set=PackageSet())
    out = console()
    run_command._finish(out, r, False, Outcome.DONE, None)  # type: ignore[arg-type]
    lines = printed(out).splitlines()
    assert len(lines) == 9 and lines[-1] == "run run-1: done (exit 0)"
    assert [c.strip() for c in lines[4].split("│")[1:-1]] == ["node1", "ok", "135 packages, 87 security",
                                                              "app1 node1 -> node2", "1 resource(s) healthy",
                                                              "ssh.service", "95.3s"]
    assert lines[5].split("│")[3].strip() == IN_USE


def test_final_report_shows_the_longest_outages_the_watch_saw() -> None:
    results = {"node1": NodeResult("node1", Result.OK, moves=["app1 node1 -> node2"], seconds=12.0,
                                   outages={"app1": 0.42, "app2": 0.061, "app3": 1.5, "app4": 0.0}),
               "node2": NodeResult("node2", Result.UP_TO_DATE)}
    r = SimpleNamespace(run_id="run-1", results=results, stop_reason=None, recovered=[], package_set=PackageSet())
    out = console()
    run_command._finish(out, r, False, Outcome.DONE, None)  # type: ignore[arg-type]
    lines = printed(out).splitlines()
    header = [c.strip() for c in lines[2].split("┃")[1:-1]]
    assert header[5] == "longest outage"
    column = [line.split("│")[6].strip() for line in lines if line.count("│") == len(header) + 1]
    assert column[:4] == ["app3 1.50s", "app1 0.42s", "app2 0.06s", "+1 more (--json)"]
    assert run_command.outage_lines({}) == []


def test_final_report_json_keeps_every_change(doc: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    changes = [c.__dict__ for c in node_plan(doc).changes]
    r = SimpleNamespace(run_id="run-1", results={"node1": NodeResult("node1", Result.OK, changes=changes)},
                        stop_reason=None, recovered=[], package_set=PackageSet())
    run_command._finish(console(), r, True, Outcome.DONE, None)  # type: ignore[arg-type]
    got = json.loads(capsys.readouterr().out)["nodes"][0]["changes"]
    assert got == [{k: v for k, v in c.items() if k != "action"} | {"origins": []} for c in doc["changes"]]


def test_confirmation_prompt(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import sys

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(builtins, "input", lambda *a: "yes")
    out = console()
    assert run_command._confirm_on_terminal(out)({"node1": node_plan(doc)}, ["node1"]) is True
    assert printed(out).splitlines()[0] == f"  node1: 135 packages, 87 security; {IN_USE}"


def test_live_progress_of_the_upgrade(doc: dict[str, Any]) -> None:
    names = [c["package"] for c in doc["changes"]]
    # The run's upgrade step says the summary, not the list (procedure.upgrade).
    assert step_text("upgrade", f"{summary(doc['changes'])} in 80.1s") == \
        f"135 packages, 87 security; {IN_USE} in 80.1s"
    one = [{"package": "demo-libfoo", "installed": "1", "candidate": "2"}]
    assert step_text("upgrade", f"{summary(one)} in 3.0s") == "1 package: demo-libfoo 1 -> 2 in 3.0s"
    out = console()
    report = ConsoleReport(out)
    steps = [(n, s) for n in names for s in ("Preparing", "Unpacking", "Setting up")]
    for i, (name, status) in enumerate(steps):
        report.progress("node1", {"event": "progress", "stage": "install", "percent": 100.0 * (i + 1) / len(steps),
                                  "text": f"{status} {name}"})
    lines = printed(out).splitlines()
    assert len(lines) == 11 and lines[-1].endswith("node1 apt 100.0% Setting up zstd")


def test_in_use_maps_dpkg_paths_through_merged_usr(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "etc").mkdir()
    aliases = merged_aliases(root)
    assert aliases == {"/lib": "/usr/lib"}
    info = tmp_path / "info"
    info.mkdir()
    (info / "libc6:amd64.list").write_text("/.\n/lib\n/lib/x86_64-linux-gnu/libc.so.6\n")
    (info / "tzdata.list").write_text("/usr/share/zoneinfo/UTC\n")
    (info / "libfoo:i386.list").write_text("/usr/lib/i386-linux-gnu/libfoo.so.1\n")
    mapped = frozenset({"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/i386-linux-gnu/libfoo.so.1"})
    assert in_use(["libc6", "tzdata", "libfoo:i386", "gone"], mapped, info, aliases) == {"libc6", "libfoo:i386"}


def test_mapped_files_reads_every_process_s_maps(tmp_path: Path) -> None:
    pid = tmp_path / "4242"
    pid.mkdir()
    (pid / "maps").write_text(
        "55d0-55d1 r--p 00000000 08:01 1 /usr/bin/bash\n"
        "7f00-7f01 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)\n"
        "7f02-7f03 rw-p 00000000 00:00 0 \n"
        "7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n")
    (tmp_path / "self").mkdir()
    assert mapped_files(tmp_path) == {"/usr/bin/bash", "/usr/lib/x86_64-linux-gnu/libssl.so.3"}


def test_what_the_running_cluster_stack_maps_is_told_apart(tmp_path: Path) -> None:
    """A real process named corosync that maps a file, and one named otherwise: only the first is the stack's."""
    import subprocess
    import sys

    from upgrader.packages.after import is_stack_process

    lib = tmp_path / "libstack.so.1"
    lib.write_bytes(b"\0" * 4096)
    other = tmp_path / "libother.so.1"
    other.write_bytes(b"\0" * 4096)
    body = ("import mmap, sys, time\n"
            "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
            "f = open(sys.argv[2], 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
            "print('ready', flush=True); time.sleep(60)\n")
    children = [subprocess.Popen([sys.executable, "-c", body, name, str(path)], stdout=subprocess.PIPE, text=True)
                for name, path in (("corosync", lib), ("pacemaker-cont", lib), ("sshd", other))]
    try:
        assert [c.stdout.readline().strip() for c in children] == ["ready"] * 3
        stack = mapped_files(only=is_stack_process)
        assert str(lib) in stack and str(other) not in stack
        assert str(other) in mapped_files()
    finally:
        for c in children:
            c.kill()
            c.wait()


def test_old_code_names_services_by_unit_and_a_replaced_init_as_a_reboot(tmp_path: Path) -> None:
    from upgrader.packages.after import old_code

    proc = tmp_path / "proc"
    for pid, comm, unit in ((1, "systemd", "/init.scope"), (812, "sshd", "/system.slice/ssh.service"),
                            (900, "worker", "/user.slice/user-0.slice/session-1.scope")):
        entry = proc / str(pid)
        entry.mkdir(parents=True)
        (entry / "maps").write_text(f"7f00-7f01 r-xp 00000000 08:01 {pid} /usr/lib/x86_64-linux-gnu/libssl.so.3 "
                                    "(deleted)\n")
        (entry / "comm").write_text(comm + "\n")
        (entry / "cgroup").write_text(f"4:memory:/lab\n1:name=systemd:{unit}\n0::{unit}\n")
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    got = old_code(root, proc, needrestart=tmp_path / "no-needrestart")
    assert got.services == ("ssh.service", "worker (pid 900)")
    assert got.reboot == ("process 1 (systemd) maps a replaced library: /usr/lib/x86_64-linux-gnu/libssl.so.3",)


def test_needrestart_batch_output_gives_services_and_an_outdated_kernel() -> None:
    from upgrader.packages.after import parse_needrestart

    # The batch format of needrestart 3.6 (its README.batch): one KEY: value per line.
    text = ("NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-18-amd64\nNEEDRESTART-KEXP: 6.1.0-27-amd64\n"
            "NEEDRESTART-KSTA: 3\nNEEDRESTART-SVC: ssh.service\nNEEDRESTART-SVC: cron.service\n")
    assert parse_needrestart(text) == (("ssh.service", "cron.service"),
                                       ["needrestart: kernel 6.1.0-27-amd64 is expected, 6.1.0-18-amd64 runs"])
    assert parse_needrestart("NEEDRESTART-KSTA: 1\n") == ((), [])
