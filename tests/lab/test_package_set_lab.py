"""One package set per run, on a real cluster: frozen at the plan, staged on every node before the first drain.

- A newer build published mid-run (into the security suite, as Debian's
  bookworm-security does while bookworm keeps the older one) is not taken by
  the later nodes: every node ends at the set's version; the next run takes it.
- The repository gone after staging: the run completes from the nodes' archive
  caches. (Gone before staging: refused, nothing drained, is a fault scenario:
  tests/faults/test_faults_packages.py.)
- ``run --security-only`` with a security fix and a plain one pending takes
  only the security fix, on every node.
- A cluster-stack upgrade is refused while crm_verify finds errors in the live
  CIB, naming them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import fresh_version, history, rolling, run_leftovers, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def slab() -> Iterator[Lab]:
    """A lab of its own: these tests publish into both suites and take the repository away."""
    with private_lab("ps", apps=2) as the_lab:
        yield the_lab


def test_a_build_published_mid_run_is_not_taken_until_the_next_run(slab: Lab) -> None:
    frozen = fresh_version(slab, postinst_sleep=3)
    seen = len(history(slab))
    run = start_run(slab)
    try:
        wait_for_phase(slab, run, seen, "upgrade", timeout=180)
        newer = str(int(frozen) + 1)
        repo.publish(slab.repo_dir, newer, security=True)  # the older build stays in its own suite
        ops.refresh_indexes(slab)  # every node's candidate is now the newer one
        out, err = run.communicate(timeout=900)
    except BaseException:
        run.kill()
        run.communicate(timeout=60)
        raise
    assert run.returncode == 0, (out[-3000:], err[-2000:])
    assert {n: ops.installed_version(slab, n) for n in slab.node_names} == {n: frozen for n in slab.node_names}
    runs = [e["run"] for e in history(slab)[seen:] if (e["phase"], e["event"]) == ("run", "start")]
    assert len(runs) == 1, runs
    events = history(slab, runs[0])
    sets = [e for e in events if (e["phase"], e["event"]) == ("stage", "note")]
    assert len(sets) == 1 and {p["package"]: p["version"] for p in sets[0]["packages"]} == {repo.PACKAGE: frozen}
    said = json.loads(out)["package_set"]  # run --json names the same set
    assert said["digest"] == sets[0]["digest"] and said["packages"] == sets[0]["packages"], (said, sets)
    upgraded = [c for e in events if (e["phase"], e["event"]) == ("upgrade", "end") for c in e["changes"]]
    assert len(upgraded) == len(slab.node_names) and {c["candidate"] for c in upgraded} == {frozen}, upgraded
    code, doc = rolling(slab, "run", "--yes")
    assert code == 0, doc
    assert all(ops.installed_version(slab, n) == newer for n in slab.node_names)
    assert run_leftovers(slab) == []


def test_the_repository_gone_after_staging_does_not_stop_the_run(slab: Lab) -> None:
    version = fresh_version(slab)
    seen = len(history(slab))
    pool, gone = slab.repo_dir / "pool", slab.repo_dir / "pool.gone"
    run = start_run(slab)
    try:
        wait_for_phase(slab, run, seen, "drain", timeout=180)  # staging is over before the first drain
        pool.rename(gone)
        out, err = run.communicate(timeout=900)
    except BaseException:
        run.kill()
        run.communicate(timeout=60)
        raise
    finally:
        if gone.exists():
            gone.rename(pool)
    doc = json.loads(out)
    assert run.returncode == 0, (doc.get("error"), [(n["node"], n["result"], n["error"]) for n in doc["nodes"]], err)
    assert all(ops.installed_version(slab, n) == version for n in slab.node_names)
    assert run_leftovers(slab) == []


def test_security_only_takes_the_security_fix_and_leaves_the_plain_one(slab: Lab) -> None:
    tools = repo.TOOLS_PACKAGE
    first = repo.publish_tools(slab.repo_dir, "1")
    for n in slab.node_names:  # installed as an image would have it: past the guard, by its own override
        node.runner(slab, n, timeout=120).run(["env", "UPGRADER_GUARD=off", "dpkg", "-i",
                                               f"{node.REPO_MOUNT}/{first.relative_to(slab.repo_dir)}"])
    repo.publish_tools(slab.repo_dir, "2")  # a plain fix ...
    fix = fresh_version(slab, security=True)  # ... and a security one
    code, doc = rolling(slab, "run", "--yes", "--security-only")
    assert code == 0, doc
    assert {n: (ops.installed_version(slab, n), ops.installed_version(slab, n, tools)) for n in slab.node_names} \
        == {n: (fix, "1") for n in slab.node_names}
    events = history(slab, doc["run"])
    staged = [e for e in events if (e["phase"], e["event"]) == ("stage", "note")]
    assert [p["package"] for p in staged[0]["packages"]] == [repo.PACKAGE], staged
    code, doc = rolling(slab, "run", "--yes")  # without the filter, the next run takes the plain fix
    assert code == 0, doc
    assert all(ops.installed_version(slab, n, tools) == "2" for n in slab.node_names)
    assert run_leftovers(slab) == []


def test_crm_verify_errors_refuse_a_cluster_stack_upgrade_naming_them(slab: Lab) -> None:
    version = fresh_version(slab, ha_stack=True)  # resource-agents-lab: a cluster-stack package by its name
    before = {n: ops.installed_version(slab, n) for n in slab.node_names}
    inside = node.runner(slab, "node1", timeout=30)
    # An error crm_verify reports in the live CIB: fencing on, and no fencing device defined (nothing runs
    # differently: Pacemaker only refuses to start what is stopped, and everything runs).
    inside.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "true"])
    try:
        code, doc = rolling(slab, "run", "--yes")
    finally:
        inside.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "false"])
    assert code == 3, doc
    assert "crm_verify finds errors in the live CIB: " in doc["refused"] and "STONITH" in doc["refused"], doc
    assert {n: ops.installed_version(slab, n) for n in slab.node_names} == before
    code, doc = rolling(slab, "run", "--yes")  # fixed: the stack upgrade goes ahead, the stack stopped around it
    assert code == 0, doc
    assert all(ops.installed_version(slab, n) == version for n in slab.node_names)
    assert run_leftovers(slab) == []
