"""One package set per run, on a real cluster: frozen at the plan, staged on every node before the first drain.

- A newer build published mid-run (into the security suite, as Debian's
  bookworm-security does while bookworm keeps the older one) is not taken by
  the later nodes: every node ends at the set's version; the next run takes it.
- The repository gone after staging: the run completes from the nodes' archive
  caches. (Gone before staging: refused, nothing drained, is a fault scenario:
  tests/faults/test_faults_packages.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import fresh_version, history, rolling, run_leftovers, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import repo
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
