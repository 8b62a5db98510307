"""Inside a lab node: stop or start its cluster stack, or reboot it, as systemctl would on a host.

``python -m upgrader_lab.power stop|start|reboot`` signals the node's
process 1 (:mod:`upgrader_lab.node_init`). ``stop`` returns once neither
pacemakerd nor corosync runs, ``start`` once both run (like ``systemctl``
with units that report started), ``reboot`` at once (the session ends with
the node's processes). The lab's settings name these as the node's
``Stack::Stop``, ``Stack::Start`` and ``Reboot-Command``.
"""

from __future__ import annotations

import os
import signal
import sys

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from upgrader.hastack.control import DAEMONS, running_daemons

SIGNALS = {"stop": signal.SIGUSR2, "start": signal.SIGUSR1, "reboot": signal.SIGHUP}
TIMEOUT = 90.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in SIGNALS:
        print("usage: python -m upgrader_lab.power stop|start|reboot (inside a lab node)", file=sys.stderr)
        return 2
    action = args[0]
    if not _in_lab_node():
        print("upgrader_lab.power: process 1 here is not a lab node's init; refusing to signal it", file=sys.stderr)
        return 3
    os.kill(1, SIGNALS[action])
    if action == "reboot":
        print("rebooting")
        return 0
    want = set() if action == "stop" else set(DAEMONS)
    try:
        Retrying(stop=stop_after_delay(TIMEOUT), wait=wait_fixed(0.1),
                 retry=retry_if_result(lambda running: set(running) != want))(running_daemons)
    except RetryError:
        print(f"the cluster stack did not {action} within {TIMEOUT:g}s (running: "
              f"{', '.join(running_daemons()) or 'none'})", file=sys.stderr)
        return 1
    print(f"cluster stack {'stopped' if action == 'stop' else 'started'}")
    return 0


def _in_lab_node() -> bool:
    try:
        cmdline = open("/proc/1/cmdline", "rb").read()
    except OSError:
        return False
    return b"upgrader_lab.node_init" in cmdline


if __name__ == "__main__":
    sys.exit(main())
