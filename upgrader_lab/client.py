"""A client on the lab's bridge: HTTP requests from the lab's client namespace.

The host has no address on the lab bridge. Requests are made by threads that
joined the client namespace with setns(2) (network namespaces are per
thread), so a 20 Hz prober costs no process per request.
"""

from __future__ import annotations

import ctypes
import http.client
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class LabClient:
    """HTTP GETs from inside a network namespace; use as a context manager."""

    def __init__(self, netns: str, workers: int = 16) -> None:
        self.netns = netns
        self._pool = ThreadPoolExecutor(max_workers=workers, initializer=self._enter,
                                        thread_name_prefix=f"client-{netns}")

    def _enter(self) -> None:
        enter_netns(self.netns)

    def get(self, host: str, path: str = "/", timeout: float = 2.0) -> Answer:
        return self._pool.submit(_get, host, path, timeout).result()

    def get_many(self, requests: list[tuple[str, str]], timeout: float = 2.0) -> list[Answer]:
        futures = [self._pool.submit(_get, host, path, timeout) for host, path in requests]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "LabClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def enter_netns(netns: str) -> None:
    """The calling thread joins network namespace ``netns`` (/run/netns/NAME), for good."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _get(host: str, path: str, timeout: float) -> Answer:
    conn = http.client.HTTPConnection(host, 80, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return Answer(response.status, response.read().decode(errors="replace").strip())
    except OSError as exc:
        return Answer(None, "", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
