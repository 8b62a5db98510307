"""``rolling-upgrade patched``'s reading of lxc-ls: each running container's init pid in one command."""

from __future__ import annotations

from upgrader.cli.patched import lxc_inits


def test_lxc_ls_names_and_pids_are_read_and_a_row_without_a_pid_is_left_out() -> None:
    # The shape of lxc 5.0's lxc-ls --fancy output (a header, padded columns; tests/lab/test_patched_lab.py
    # checks this parser against the real one on every lab node). The "-" row is a made-up defensive case.
    out = "NAME   PID   \napp1   41236 \napp10  -     \napp2   41530 \n"
    assert lxc_inits(out) == {"app1": 41236, "app2": 41530}
    assert lxc_inits("") == {}
