#!/usr/bin/python3
"""fence_lab: the lab's fence agent, installed as /usr/sbin/fence_lab in the nodes of a fenced lab.

It follows the fence-agent API: ``key=value`` lines on stdin (or ``-o ACTION
-n NODE`` on the command line), actions off, on, reboot, status, monitor,
list, metadata and validate-all; ``port`` (or ``plug``) names the node. It
asks the lab's power controller (:mod:`upgrader_lab.powerswitch`) over a unix
socket bound into every node, the lab's out-of-band channel as IPMI is in
production. The controller answers "off" only once the node's process 1 is
gone, so ``off`` succeeds only then.

Exit codes: 0 success (status: on), 1 failure, 2 status: off.
Standard library only: it runs on a node's root, under Pacemaker's fencer.
"""

from __future__ import annotations

import json
import socket
import sys

SOCKET = "/srv/upgrader-lab/power/power.sock"  # POWER_MOUNT of upgrader_lab.layout, plus the socket
TIMEOUT = 50.0  # below the fencer's default action timeout (stonith-timeout 60s)
ACTIONS = ("off", "on", "reboot", "status", "monitor", "list", "metadata", "validate-all")
SHORT = {"-o": "action", "-n": "port", "-s": "socket"}
LONG = {"--action": "action", "--plug": "port", "--port": "port", "--socket": "socket"}

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="Fence agent for upgrader's lab: cuts a node's power">
<longdesc>fence_lab asks the lab's power controller, over a unix socket bound into every node,
to power a lab node off or on; off returns once the node's process 1 is gone.</longdesc>
<vendor-url>https://invalid/upgrader-lab</vendor-url>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="reboot"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab node to act on</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab node to act on</shortdesc>
  </parameter>
  <parameter name="socket" unique="0" required="0">
    <getopt mixed="-s, --socket=[path]"/>
    <content type="string" default="{socket}"/>
    <shortdesc lang="en">The power controller's unix socket</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off"/>
  <action name="reboot"/>
  <action name="status"/>
  <action name="list"/>
  <action name="monitor"/>
  <action name="metadata"/>
  <action name="validate-all"/>
</actions>
</resource-agent>
""".replace("{socket}", SOCKET)


class Refused(Exception):
    """The request cannot be carried out; the message says why."""


def parse_stdin(text: str) -> dict[str, str]:
    """``key=value`` lines; blank lines and ``#`` comments skipped; ``plug`` is ``port``."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        options["port" if key.strip() == "plug" else key.strip()] = value.strip()
    return options


def parse_argv(argv: list[str]) -> dict[str, str]:
    """``-o ACTION -n NODE``, ``--action=ACTION --plug=NODE`` (and ``--port``, ``--socket``)."""
    options: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        key, _, value = arg.partition("=")
        if key in LONG and value:
            options[LONG[key]] = value
        elif arg in SHORT or arg in LONG:
            options[SHORT.get(arg) or LONG[arg]] = next(args, "")
        else:
            raise Refused(f"unknown argument {arg!r}")
    return options


def ask(path: str, request: dict[str, str]) -> dict:
    """One JSON line to the controller, one JSON line back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT)
        try:
            conn.connect(path)
            conn.sendall((json.dumps(request) + "\n").encode())
            reply = conn.makefile("rb").readline()
        except OSError as exc:
            raise Refused(f"power controller at {path}: {exc}") from None
    try:
        answer = json.loads(reply)
    except ValueError:
        raise Refused(f"power controller at {path} answered {reply[:200]!r}") from None
    if not answer.get("ok"):
        raise Refused(answer.get("error") or "the power controller refused")
    return answer


def act(options: dict[str, str]) -> int:
    """Carry out ``options['action']``; return the exit code."""
    action = options.get("action", "reboot")
    if action == "metadata":
        sys.stdout.write(METADATA)
        return 0
    if action not in ACTIONS:
        raise Refused(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "validate-all":
        return 0
    path = options.get("socket") or SOCKET
    if action in ("monitor", "list"):
        answer = ask(path, {"action": "list"})
        if action == "list":
            sys.stdout.write("".join(f"{n},{n}\n" for n in answer.get("nodes", [])))
        return 0
    target = options.get("port")
    if not target:
        raise Refused(f"action {action} needs port (or plug): the node to act on")
    if action == "status":
        return 0 if ask(path, {"action": "status", "node": target})["power"] == "on" else 2
    for step in (("off", "on") if action == "reboot" else (action,)):
        ask(path, {"action": step, "node": target})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        options = parse_argv(args) if args else parse_stdin(sys.stdin.read())
        return act(options)
    except Refused as exc:
        print(f"fence_lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
