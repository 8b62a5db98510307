"""Adapter operations with Pacemaker's real tools on copies of captured CIBs (CIB_file)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.pacemaker.names import BadValue
from upgrader.pacemaker.simulate import parse_transition_summary
from upgrader.runner import CommandError

Offline = Callable[[str], Cluster]
DATA = Path(__file__).parent / "data"


def test_prediction_on_a_copy_matches_the_capture(offline: Offline, situations: dict[str, Any]) -> None:
    node = situations["standby"]["node"]
    cluster = offline("all-online")
    captured = parse_transition_summary((DATA / f"crm_simulate-standby-{node}.txt").read_text())
    assert cluster.predict_standby(node) == captured
    assert not cluster.state().node(node).standby, "the prediction leaves the CIB it copied alone"


def test_standby_on_and_off_is_permanent(offline: Offline) -> None:
    cluster = offline("all-online")
    cluster.set_standby("node2", True)
    assert cluster.state().node("node2").standby
    assert cluster.runner.run(["cibadmin", "--query", "--xpath=//nodes/node[@uname='node2']//nvpair[@name='standby']"]).stdout
    cluster.set_standby("node2", False)
    assert not cluster.state().node("node2").standby


def test_node_attributes_of_our_own(offline: Offline) -> None:
    cluster = offline("all-online")
    assert cluster.get_attribute("node1", "rolling-upgrade-state") is None
    cluster.set_attribute("node1", "rolling-upgrade-state", "upgrading 1.2/3")
    assert cluster.get_attribute("node1", "rolling-upgrade-state") == "upgrading 1.2/3"
    cluster.delete_attribute("node1", "rolling-upgrade-state")
    assert cluster.get_attribute("node1", "rolling-upgrade-state") is None
    with pytest.raises(CommandError, match="there is no node 'node9'"):
        cluster.get_attribute("node9", "rolling-upgrade-state")
    with pytest.raises(BadValue, match="must start with 'rolling-upgrade-'"):
        cluster.set_attribute("node1", "standby", "on")


def test_preflight_finds_the_stray_ban(offline: Offline, situations: dict[str, Any]) -> None:
    facts = situations["ban"]
    pre = offline("ban").preflight()
    ban = f"cli-ban-{facts['resource']}-on-{facts['node']}"
    assert pre.cli_constraints == (ban,)
    assert pre.quorum and pre.all_online and not pre.stonith_enabled and not pre.maintenance_mode
    assert pre.problems() == [f"leftover crm_resource constraints: {ban} (crm_resource --clear)"]


def test_preflight_of_a_clean_cluster_finds_nothing(offline: Offline) -> None:
    assert offline("all-online").preflight().problems() == []


def test_wait_settled_gives_up_at_its_deadline_saying_why(offline: Offline) -> None:
    # No controller answers for a CIB file, so the DC can never be seen idle.
    started = time.monotonic()
    with pytest.raises(NotSettled) as err:
        offline("all-online").wait_settled({"app1": "node1"}, deadline=2, interval=0.2)
    assert time.monotonic() - started < 6
    text = str(err.value)
    assert text.startswith("cluster not settled after 2s (waited for: DC idle, no resource starting/stopping/pending, expected placement)")
    assert "last seen: crmadmin (state of DC" in text


def noted(cluster: Cluster) -> list[str]:
    """The programs the cluster's runner runs from now on, in order (each still run)."""
    asked: list[str] = []
    call = cluster.runner.call

    def noting(argv: list[str], *args: Any, **kw: Any) -> Any:
        asked.append(argv[0])
        return call(argv, *args, **kw)

    cluster.runner.call = noting  # type: ignore[method-assign]
    return asked


def test_a_poll_that_cannot_be_settled_does_not_ask_the_dc(offline: Offline) -> None:
    """crmadmin (the slower call) only when crm_mon shows nothing in flight and the expectation holds."""
    cluster = offline("all-online")
    asked = noted(cluster)
    _, problems = cluster.settled_problems(lambda state: ["app1 not yet on node3"], timeout=5)
    assert problems == ["app1 not yet on node3"] and "crmadmin" not in asked and "crm_mon" in asked
    asked.clear()
    with pytest.raises(CommandError, match="crmadmin"):  # no controller answers for a CIB file
        cluster.settled_problems(lambda state: [], timeout=5)
    assert asked == ["crm_mon", "crmadmin"]  # everything else holds: now the DC is asked


def test_a_state_just_read_is_the_first_polls_first_reading_only(offline: Offline) -> None:
    """A caller's fresh reading saves the first poll's crm_mon; the settled state is still read after the DC
    answered, and later polls read their own."""
    cluster = offline("all-online")
    now = cluster.state()
    asked = noted(cluster)
    state, problems = cluster.settled_problems(lambda s: ["app1 not yet on node3"], timeout=5, now=now)
    assert (state, problems, asked) == (now, ["app1 not yet on node3"], [])
    with pytest.raises(CommandError, match="crmadmin"):
        cluster.settled_problems(lambda s: [], timeout=5, now=now)
    assert asked == ["crmadmin"]
    asked.clear()
    with pytest.raises(NotSettled):
        cluster.wait_settled(lambda s: [], deadline=1, interval=0.2, first=now)
    assert asked[:2] == ["crmadmin", "crm_mon"] and asked.count("crm_mon") == asked.count("crmadmin") - 1, asked


@pytest.mark.parametrize("situation", ["all-online", "promotable", "ban", "node3-offline"])
def test_the_prediction_is_the_summary_crm_simulate_s_would_give(offline: Offline, situation: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The prediction asks ``crm_simulate --run`` (the scheduler's answer alone); ``--simulate`` also fakes
    the transition's execution, far slower with many moves, and prints the same transition summary: for
    every captured CIB and every node's standby, in and out, the two agree."""
    cluster = offline(situation)
    flags: list[str] = []
    real = cluster.runner.run

    def as_asked(argv: list[str], *args: Any, **kw: Any) -> Any:
        if argv[0] == "crm_simulate":
            flags.append(argv[-1])
        return real(argv, *args, **kw)

    def simulated(argv: list[str], *args: Any, **kw: Any) -> Any:
        return as_asked([*argv[:-1], "--simulate"] if argv[0] == "crm_simulate" else argv, *args, **kw)

    for node in ("node1", "node2", "node3"):
        for standby in (True, False):
            monkeypatch.setattr(cluster.runner, "run", as_asked)
            predicted = cluster.predict_standby(node, standby)
            monkeypatch.setattr(cluster.runner, "run", simulated)
            assert predicted == cluster.predict_standby(node, standby), (situation, node, standby)
    assert set(flags) == {"--run", "--simulate"}
    assert any(cluster.predict_standby(n) for n in ("node1", "node2", "node3")), "some standby moves something"


def test_a_settled_poll_returns_the_state_read_after_the_dc_answered_idle(offline: Offline) -> None:
    """crmadmin can take seconds under load: what changed while it answered (here node2 put in standby,
    as a transition that ran meanwhile would change the state) is in the state returned, checked again."""
    cluster = offline("all-online")

    def idle_after_a_change(dc: str, timeout: float) -> str:
        cluster.set_standby("node2", True)  # the CIB changes while the DC is asked
        return "S_IDLE"

    cluster.dc_state = idle_after_a_change  # type: ignore[method-assign]
    state, problems = cluster.settled_problems(lambda s: [], timeout=5)
    assert problems == [] and state.node("node2").standby
    cluster.set_standby("node2", False)
    state, problems = cluster.settled_problems(
        lambda s: ["node2 in standby"] if s.node("node2").standby else [], timeout=5)
    assert problems == ["node2 in standby"] and state.node("node2").standby


def test_the_prediction_bounds_the_scheduler_alone_longer_than_a_daemon_query(
        offline: Offline, situations: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """crm_simulate on the copy asks no daemon and grows with the resources: SIMULATE_TIMEOUT, not the 30 s
    a query of a daemon gets (at 120 applications three predictions at once took longer on 2 CPUs)."""
    from upgrader import runner as runner_module

    asked: list[tuple[str, float | None]] = []
    real = runner_module.Runner.run

    def recording(self, argv, **kwargs):
        asked.append((argv[0], kwargs.get("timeout")))
        return real(self, argv, **kwargs)

    monkeypatch.setattr(runner_module.Runner, "run", recording)
    offline("all-online").predict_standby(situations["standby"]["node"])
    assert ("crm_simulate", runner_module.SIMULATE_TIMEOUT) in asked
    assert runner_module.SIMULATE_TIMEOUT > runner_module.DEFAULT_TIMEOUT
    assert all(timeout is None for command, timeout in asked if command != "crm_simulate"), asked
