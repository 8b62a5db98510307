"""Pacemaker's rolling-upgrade rules (compat), crm_verify's output, and the stack preflight (stack_check).

crm_verify's output is the one capture_verify.py saved (data/crm_verify-*.json, real Pacemaker 2.1.5 on
copies of a captured CIB); crm_mon's is the lab's (data/crm_mon-*.xml). Bookworm has one Pacemaker, so
the version rules are tested on rows of the documentation's table (compat.ROLLING_MINIMUM).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from upgrader.pacemaker import compat
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.stack_check import stack_upgrade_problems
from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.runner import VERIFY_TIMEOUT, CommandError, Result, Runner

DATA = Path(__file__).parent / "data"
VERIFY_CASES = ("clean", "no-stonith", "warning")  # the captures where crm_verify checked a CIB (not no-cib)
SHUTDOWN = "complete cluster shutdown"  # what every refusal offers instead


def captured_verify(case: str) -> dict[str, Any]:
    return json.loads((DATA / f"crm_verify-{case}.json").read_text())


def error_lines(stderr: str) -> list[str]:
    """The text after "error:" on each of crm_verify's error lines."""
    return [line.split("error:", 1)[1].strip() for line in stderr.splitlines() if "\terror:" in line]


class VerifyRunner(Runner):
    """Answers crm_verify with a captured result (nothing is run); records argv and timeouts."""

    def __init__(self, returncode: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__()
        self.answer = (returncode, stdout, stderr)
        self.calls: list[tuple[tuple[str, ...], float | None]] = []

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        self.calls.append((tuple(argv), timeout))
        assert argv[0] == "crm_verify", argv
        code, out, err = self.answer
        return Result(tuple(argv), code, out, err, 0.0)


def replaying(case: str) -> VerifyRunner:
    c = captured_verify(case)
    return VerifyRunner(c["returncode"], c["stdout"], c["stderr"])


# --- versions ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("debian, upstream", [
    ("2.1.5-1+deb12u1", "2.1.5"),  # bookworm
    ("2.0.5-2", "2.0.5"),  # bullseye
    ("1:2.1.5-1", "2.1.5"),  # an epoch
    ("2.1.0~rc1-1", "2.1.0~rc1"),  # a pre-release
    ("2.1.5", "2.1.5"),  # a native version has no revision
])
def test_upstream_version_drops_epoch_and_debian_revision(debian: str, upstream: str) -> None:
    assert compat.upstream_version(debian) == upstream


@pytest.mark.parametrize("running, candidate, allowed", [
    ("1.0.8", "1.1.15", True),  # the documentation's own example of a supported rolling upgrade
    ("1.0.8", "2.0.0", False),  # ... and of one that "may not be possible"
    ("1.1.11", "2.1.5", True),  # 2.y.z: the oldest compatible version is 1.1.11
    ("1.1.10", "2.1.5", False),
    ("2.0.0", "3.0.2", True),  # 3.y.z: from 2.0.0
    ("1.1.24", "3.0.0", False),
    ("2.1.5", "2.1.9", True),  # within a series
    ("2.1.5", "2.1.5", True),
    ("2.1.5", "3.0.0", True),  # bookworm to trixie
])
def test_rolling_upgrade_follows_the_documented_table(running: str, candidate: str, allowed: bool) -> None:
    problem = compat.rolling_upgrade_problem(running, candidate)
    assert (problem is None) == allowed, problem
    if problem is not None:
        assert f"from Pacemaker {running} to {candidate} is not supported" in problem and SHUTDOWN in problem


def test_every_row_of_the_table_allows_its_minimum_and_refuses_the_release_before_it() -> None:
    known = sorted(compat.RELEASES, key=compat.release)
    for major, minimum in compat.ROLLING_MINIMUM.items():
        candidate = max((v for v in known if compat.release(v)[0] == major), key=compat.release)
        at = "%d.%d.%d" % minimum
        assert compat.rolling_upgrade_problem(at, candidate) is None, (at, candidate)
        before = [v for v in known if compat.release(v) < minimum]
        if before:
            assert compat.rolling_upgrade_problem(before[-1], candidate) is not None, (before[-1], candidate)


@pytest.mark.parametrize("running, candidate", [("2.1.5", "2.0.5"), ("3.0.0", "2.1.11"), ("2.1.5", "1.1.24")])
def test_a_downgrade_of_the_series_is_refused_naming_both_versions(running: str, candidate: str) -> None:
    problem = compat.rolling_upgrade_problem(running, candidate)
    assert problem is not None
    assert problem.startswith(f"Pacemaker {candidate} is a downgrade from the running {running}")


def test_a_major_version_the_table_lacks_is_refused_across_majors_and_allowed_within_one() -> None:
    newest = max(compat.RELEASES, key=compat.release)
    beyond = f"{max(compat.ROLLING_MINIMUM) + 1}.0.0"
    problem = compat.rolling_upgrade_problem(newest, beyond)
    assert problem is not None and "is not documented" in problem and newest in problem and beyond in problem
    assert compat.rolling_upgrade_problem(beyond, beyond.replace(".0.0", ".2.1")) is None


def test_a_version_that_is_not_a_version_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="^'bogus' is not a version"):
        compat.rolling_upgrade_problem("2.1.5", "bogus")


# --- feature sets and the remote protocol -----------------------------------------------------------------

def test_the_table_knows_the_feature_set_the_lab_runs(mon: Callable[[str], ClusterState]) -> None:
    state = mon("all-online")
    assert state.summary.dc_version is not None
    assert compat.feature_set_of(compat.dc_release(state.summary.dc_version)) == state.dc_feature_set


@pytest.mark.parametrize("dc, joining, compatible", [
    ("2.1.5", "2.1.6", True),  # a newer minor joins an older DC
    ("2.1.6", "2.1.5", False),  # an older minor is refused by a newer DC
    ("2.1.7", "2.1.8", True),
    ("2.1.8", "2.1.7", True),  # 3.19.5 and 3.19.0: the minor-minor number is ignored from 3.1.0 on
    ("1.1.13", "1.1.12", False),  # 3.0.10 and 3.0.9: before 3.1.0 it counts
    ("1.1.24", "2.0.0", True),  # 3.0.14 and 3.1.0
    ("0.6.6", "0.7.0", False),  # 2.1 and 3.0: another major number
])
def test_feature_sets_follow_pacemakers_join_rule(dc: str, joining: str, compatible: bool) -> None:
    dc_set, joining_set = compat.feature_set_of(dc), compat.feature_set_of(joining)
    assert dc_set is not None and joining_set is not None
    problem = compat.feature_set_problem(dc_set, joining_set)
    assert (problem is None) == compatible, problem
    if problem is not None:
        assert joining_set in problem and dc_set in problem


def test_an_unknown_candidate_feature_set_leaves_the_version_rule_alone() -> None:
    assert compat.feature_set_of("2.1.0~rc1") is None and compat.feature_set_of("9.9.9") is None
    assert compat.feature_set_problem("3.16.1", None) is None


def test_remote_nodes_refuse_cluster_nodes_with_an_older_remote_protocol() -> None:
    older, newer = "2.1.7", "2.1.8"  # the protocol went from 1.1 to 1.2 in 2.1.8
    assert compat.remote_protocol_of(older) != compat.remote_protocol_of(newer)
    problem = compat.remote_protocol_problem(newer, older, ["guest1"])
    assert problem is not None and "guest1" in problem and older in problem and newer in problem
    assert compat.remote_protocol_problem(newer, older, []) is None, "no remote node: nothing to refuse"
    assert compat.remote_protocol_problem(older, newer, ["guest1"]) is None, "newer cluster nodes are fine"


# --- crm_mon: the DC's version and feature set ------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(DATA.glob("crm_mon-*.xml")), ids=lambda p: p.stem)
def test_dc_version_and_feature_set_are_read_from_crm_mon(path: Path) -> None:
    root = ET.fromstring(path.read_text())
    dc = root.find("summary/current_dc")
    assert dc is not None
    dc_node = next(n for n in root.iterfind("nodes/node") if n.get("is_dc") == "true")
    state = parse_crm_mon(path.read_text())
    assert state.summary.dc_version == dc.get("version")
    assert state.dc_feature_set == dc_node.get("feature_set") and state.dc_feature_set
    assert compat.dc_release(dc.get("version", "")) == dc.get("version", "").split("-")[0]


def test_no_dc_means_no_dc_feature_set(mon: Callable[[str], ClusterState]) -> None:
    state = mon("all-online")
    assert replace(state, summary=replace(state.summary, dc=None)).dc_feature_set is None


# --- crm_verify --------------------------------------------------------------------------------------------

def test_crm_verify_errors_are_its_error_lines() -> None:
    c = captured_verify("no-stonith")
    assert c["returncode"] != 0 and error_lines(c["stderr"])
    assert compat.verify_errors(c["returncode"], c["stderr"]) == error_lines(c["stderr"])


@pytest.mark.parametrize("case", ["clean", "warning"])
def test_a_clean_check_or_warnings_alone_are_no_errors(case: str) -> None:
    c = captured_verify(case)
    assert compat.verify_errors(c["returncode"], c["stderr"]) == []


def test_a_warnings_only_exit_code_is_the_errors_one_so_the_text_decides() -> None:
    warning, errors = captured_verify("warning"), captured_verify("no-stonith")
    assert warning["returncode"] == errors["returncode"] != 0


def test_a_failure_without_error_lines_is_reported_with_its_closing_sentence() -> None:
    c = captured_verify("no-stonith")
    closing = c["stderr"].strip().splitlines()[-1]
    assert compat.verify_errors(c["returncode"], closing) == [closing]
    assert compat.verify_errors(78, "something else\n") == ["crm_verify exited 78: something else"]


@pytest.mark.parametrize("case", VERIFY_CASES)
def test_verify_runs_the_captured_argv_bounded_and_parses_its_answer(case: str) -> None:
    c = captured_verify(case)
    runner = replaying(case)
    assert Cluster(runner).verify() == compat.verify_errors(c["returncode"], c["stderr"])
    assert runner.calls == [(tuple(c["argv"]), VERIFY_TIMEOUT)]


def test_verify_that_cannot_read_the_cib_raises_naming_why() -> None:
    c = captured_verify("no-cib")
    with pytest.raises(CommandError, match="^crm_verify \\(the live CIB\\) failed: ") as failed:
        Cluster(replaying("no-cib")).verify()
    assert c["stderr"].strip() in str(failed.value)


@pytest.mark.parametrize("case", VERIFY_CASES)
def test_the_real_crm_verify_still_says_what_was_captured(case: str, offline: Callable[[str], Cluster]) -> None:
    c = captured_verify(case)
    cluster = offline(c["cib"].removeprefix("cib-").removesuffix(".xml"))
    if c["change_argv"]:
        cluster.runner.run(c["change_argv"])
    assert cluster.verify() == compat.verify_errors(c["returncode"], c["stderr"])


# --- the stack preflight -----------------------------------------------------------------------------------

def test_crm_verify_errors_refuse_the_run_naming_them(mon: Callable[[str], ClusterState]) -> None:
    c = captured_verify("no-stonith")
    problems = stack_upgrade_problems(Cluster(replaying("no-stonith")), mon("all-online"), None)
    assert problems == [f"crm_verify finds errors in the live CIB: {'; '.join(error_lines(c['stderr']))}; "
                        "fix them first (crm_verify -L -V)"]


@pytest.mark.parametrize("case", ["clean", "warning"])
def test_a_clean_cib_and_the_same_pacemaker_pass(case: str, mon: Callable[[str], ClusterState]) -> None:
    state = mon("all-online")
    assert state.summary.dc_version is not None
    same = compat.dc_release(state.summary.dc_version) + "-1+deb12u1"
    assert stack_upgrade_problems(Cluster(replaying(case)), state, same) == []


def test_a_documented_jump_passes_and_a_downgrade_is_refused(mon: Callable[[str], ClusterState]) -> None:
    state = mon("all-online")
    assert stack_upgrade_problems(Cluster(replaying("clean")), state, "3.0.0-2") == []  # trixie's
    problems = stack_upgrade_problems(Cluster(replaying("clean")), state, "2.0.5-2")  # bullseye's
    running = compat.dc_release(state.summary.dc_version or "")
    assert problems[0].startswith(f"Pacemaker 2.0.5 is a downgrade from the running {running}")
    assert any("CRM feature set 3.6.1 is an older one" in p for p in problems[1:]), problems


def test_a_crm_verify_that_cannot_check_refuses_too(mon: Callable[[str], ClusterState]) -> None:
    problems = stack_upgrade_problems(Cluster(replaying("no-cib")), mon("all-online"), None)
    assert len(problems) == 1 and problems[0].startswith("crm_verify could not check the live CIB: ")


def test_without_a_dc_the_candidate_cannot_be_compared(mon: Callable[[str], ClusterState]) -> None:
    state = mon("all-online")
    no_dc = replace(state, summary=replace(state.summary, dc=None, dc_version=None))
    problems = stack_upgrade_problems(Cluster(replaying("clean")), no_dc, "2.1.5-1+deb12u1")
    assert len(problems) == 1 and "no DC is elected" in problems[0]


def test_a_candidate_that_is_not_a_version_is_one_line(mon: Callable[[str], ClusterState]) -> None:
    problems = stack_upgrade_problems(Cluster(replaying("clean")), mon("all-online"), "bogus")
    assert len(problems) == 1 and problems[0].startswith("cannot compare the candidate Pacemaker bogus")


def test_a_remote_node_refuses_an_older_remote_protocol(mon: Callable[[str], ClusterState]) -> None:
    # The captured state with node3 as a Pacemaker Remote node and a DC on 2.1.8 (feature set from the table).
    state = mon("all-online")
    dc_set = compat.feature_set_of("2.1.8")
    nodes = tuple(replace(n, type="remote") if n.name == "node3" else replace(n, feature_set=dc_set)
                  for n in state.nodes)
    state = replace(state, nodes=nodes, summary=replace(state.summary, dc_version="2.1.8-3235e9a"))
    problems = stack_upgrade_problems(Cluster(replaying("clean")), state, "2.1.7-1")
    assert len(problems) == 1 and "Pacemaker Remote protocol" in problems[0] and "node3" in problems[0]
