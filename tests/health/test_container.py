"""Level 2 with a fake Runner: this checks argv composition and output handling only.

The real lxc-info / lxc-attach behaviour is tested in the lab.
"""

from __future__ import annotations

from typing import Sequence

import pytest

from upgrader.health.container import check_container, lxc_state
from upgrader.health.errors import CheckFailed
from upgrader.health.spec import ContainerSpec
from upgrader.runner import Result, Runner


class FakeRunner(Runner):
    """Answers from a script instead of running anything; records argv and timeouts."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        super().__init__(prefix=("upgrader-lab", "exec", "node2", "--"))
        self.answers = list(answers)
        self.calls: list[tuple[tuple[str, ...], float | None]] = []

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        full = tuple(self.prefix) + tuple(argv)
        self.calls.append((full, timeout))
        code, out, err = self.answers.pop(0)
        return Result(full, code, out, err, 0.0, missing=code == 127)  # through its prefix, 127: could not run it


RUNNING = (0, "State:          RUNNING\n", "")


def test_running_then_command_in_container() -> None:
    runner = FakeRunner(RUNNING, (0, "", ""))
    check_container(runner, ContainerSpec("web1", "c1", ("/usr/bin/test", "-s", "/srv/web/index.html")), 2.0)
    (info, t1), (attach, t2) = runner.calls
    assert info == ("upgrader-lab", "exec", "node2", "--", "lxc-info", "-n", "c1", "-s") and t1 == 2.0
    assert attach == ("upgrader-lab", "exec", "node2", "--", "lxc-attach", "-n", "c1", "--",
                      "/usr/bin/test", "-s", "/srv/web/index.html")
    assert t2 is not None and 0 < t2 <= 2.0  # what is left of the attempt


def test_no_command_means_state_only() -> None:
    runner = FakeRunner(RUNNING)
    check_container(runner, ContainerSpec("web1", "c1"), 1.0)
    assert len(runner.calls) == 1


def test_stopped() -> None:
    with pytest.raises(CheckFailed, match="^container c1 is STOPPED$"):
        check_container(FakeRunner((0, "State:          STOPPED\n", "")), ContainerSpec("web1", "c1", ("/bin/true",)), 1.0)


def test_command_fails_inside() -> None:
    runner = FakeRunner(RUNNING, (1, "", "index.html missing"))
    with pytest.raises(CheckFailed) as err:
        check_container(runner, ContainerSpec("web1", "c1", ("/bin/check",)), 1.0)
    assert str(err.value) == "check command '/bin/check' in container c1 failed: error (index.html missing)"
    assert not err.value.final


def test_lxc_tools_missing_is_final() -> None:
    with pytest.raises(CheckFailed, match=r"is not installed \(needed for: .* lxc-info -n c1 -s\)") as err:
        check_container(FakeRunner((127, "", "No such file")), ContainerSpec("web1", "c1"), 1.0)
    assert err.value.final


def test_lxc_state_parsing() -> None:
    assert lxc_state("State:          RUNNING\n") == "RUNNING"
    assert lxc_state("web1 doesn't exist\n") == ""
