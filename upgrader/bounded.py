"""Work with a hard time limit: done in a child process that is killed at the deadline.

For what a timeout cannot bound from inside: a regular expression's search, a
DNS lookup, a server that drips its answer. The child does only that work and
writes its answer (bytes) to a pipe; nothing else of this process runs there.
"""

from __future__ import annotations

import os
import select
import signal
from typing import Callable

MAX_ANSWER = 64 * 1024


class WorkFailed(RuntimeError):
    """The work raised in the child: its exception's type and message (not a timeout)."""


def call_in_child(work: Callable[[], bytes], limit: float) -> bytes | None:
    """``work()``'s answer, or None when it did not finish within ``limit`` seconds (the child is killed).

    An exception raised by ``work`` is raised here as :class:`WorkFailed`, naming it: never a timeout.
    """
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read)
            try:
                answer = b"=" + work()[:MAX_ANSWER]
            except BaseException as exc:  # noqa: BLE001 - said to the parent, whatever it was
                answer = f"!{type(exc).__name__}: {exc}".encode(errors="replace")[:MAX_ANSWER]
            os.write(write, answer)
        finally:
            os._exit(0)
    os.close(write)
    answer = b""
    try:
        ready, _, _ = select.select([read], [], [], max(0.0, limit))
        if ready:
            answer = os.read(read, MAX_ANSWER + 1)
    finally:
        os.close(read)
        if not answer:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    if answer.startswith(b"!"):
        raise WorkFailed(answer[1:].decode(errors="replace"))
    return answer[1:] if answer.startswith(b"=") else None
