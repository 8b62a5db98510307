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


def call_in_child(work: Callable[[], bytes], limit: float) -> bytes | None:
    """``work()``'s answer, or None when it did not finish within ``limit`` seconds (the child is killed)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read)
            os.write(write, b"=" + work()[:MAX_ANSWER])
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
    return answer[1:] if answer.startswith(b"=") else None
