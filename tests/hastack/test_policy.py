"""The policy-rc.d that keeps maintainer scripts from starting a stopped cluster stack, and the run's marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrader.hastack import marker, policy
from upgrader.runner import Runner

run = Runner(timeout=10)


def ask(path: Path, *args: str) -> int:
    """What invoke-rc.d / deb-systemd-invoke get from the policy (they run it with these arguments)."""
    return run.call([str(path), *args]).returncode


@pytest.mark.parametrize("args", [("pacemaker", "start"), ("--quiet", "corosync", "restart"),
                                  ("pacemaker.service", "start"), ("corosync.service", "try-restart"),
                                  ("sbd", "start"), ("pacemaker_remote", "reload")])
def test_the_cluster_stack_may_not_start(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "policy-rc.d"
    policy.install("r1", path)
    assert ask(path, *args) == 101


def test_other_services_are_allowed_when_the_machine_had_no_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy-rc.d"
    policy.install("r1", path)
    assert ask(path, "ssh", "restart") == 0 and ask(path, "--quiet", "cron", "start") == 0
    policy.remove(path)
    assert not path.exists() and not policy.saved_path(path).exists()


def test_a_policy_of_the_machine_is_asked_for_the_rest_and_put_back_after(tmp_path: Path) -> None:
    path = tmp_path / "policy-rc.d"
    path.write_text("#!/bin/sh\n# the machine's own: nothing starts in this chroot\nexit 101\n")
    path.chmod(0o755)
    own = path.read_text()
    policy.install("r1", path)
    policy.install("r1", path)  # twice (a retried stop): the machine's own is not lost
    assert policy.ours(path) and policy.saved_path(path).read_text() == own
    assert ask(path, "ssh", "restart") == 101  # the machine's answer
    assert ask(path, "pacemaker", "start") == 101
    policy.remove(path)
    assert path.read_text() == own and not policy.saved_path(path).exists()


def test_remove_leaves_a_policy_that_is_not_ours_alone(tmp_path: Path) -> None:
    path = tmp_path / "policy-rc.d"
    path.write_text("#!/bin/sh\nexit 0\n")
    policy.remove(path)
    assert path.read_text() == "#!/bin/sh\nexit 0\n"


def test_the_marker_names_the_run_and_an_unreadable_one_trusts_nobody(tmp_path: Path) -> None:
    path = tmp_path / "run/upgrader/stack-stopped"
    assert marker.read(path) is None
    marker.write(marker.Stopped("r1", "node1", 4242), path)
    assert marker.read(path) == marker.Stopped("r1", "node1", 4242)
    assert path.parent.stat().st_mode & 0o777 == 0o700
    path.write_text("{not json")
    assert marker.read(path) is None
    marker.clear(path)
    marker.clear(path)
    assert not path.exists()
