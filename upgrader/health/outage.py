"""The outage watch: how long each moving resource stopped answering, as its clients saw it, during a move.

A level-3 probe (``rolling-upgrade-probe``) names the address a client uses
(``host:port``; IP literals only: a name would need a resolver call that has no
bound). While a move runs (from before its command until it settled and was
verified) each address of each resource that moves is probed with TCP connects
only: non-blocking sockets, one thread, :mod:`selectors`. A probe is sent every
:data:`FINE` seconds whether the ones before it answered or not, each with its
own :data:`TIMEOUT`, so an address that left (its SYN unanswered) costs
resolution nothing: the first probe after it is back succeeds at once. A probe
is a sample ``(time sent, connected)`` on the monotonic clock.

The outage of an address is a span between a successful connect and the next
one with at least one failed probe between them (scheduling jitter is not an
outage); one still going on when the watch ends counts up to its end, one going
on when it starts counts from its start. It is an upper bound of the true
outage: each of its ends is known to one period (:data:`FINE`, 20 ms, plus the
loop's jitter), so it is at most two periods (40 ms) longer.

The cost is kept off the CPU: only the resources that move are watched; a
probe is one ``connect`` and a close with RST (no request, no TIME_WAIT); a
resource is probed every :data:`FINE` seconds until it has been down and up
again for :data:`GRACE` seconds, then every :data:`COARSE` seconds for the rest
of the watch (a resource moves once in a move), and finely again as soon as a
probe fails. At 40 resources that is 2000 connects a second at most: measured
on loopback, about 7% of one CPU for the watch and a selectors-based server
answering it together.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import selectors
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from time import monotonic
from typing import Callable, Iterable, Mapping, Sequence

FINE = 0.02  # seconds between probes of an address that may go down: the resolution
COARSE = 0.2  # seconds between probes of one that has been down and came back (GRACE ago)
TIMEOUT = 0.2  # a connect not done by then failed (an address that left answers nothing)
GRACE = 0.5  # seconds a recovered address stays finely probed (a restart right after the start)
MAX_OPEN = 512  # probes in flight at once, all addresses together (a file descriptor each)
STOP_WAIT = 2.0  # seconds stop() waits for the thread

Address = tuple[str, int]
Sample = tuple[float, bool]  # (monotonic time the probe was sent, whether it connected)
_LINGER_RST = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left per probe


def address(host: str, port: int) -> Address | None:
    """``(host, port)`` when ``host`` is an IP literal (a watch never resolves names), else None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def outages(samples: Sequence[Sample], start: float, end: float, *, from_start: bool = True) -> list[float]:
    """Each span between two successful probes with a failed one between them, within [start, end], in
    seconds (:func:`outage_spans`)."""
    return [up - down for down, up in outage_spans(samples, start, end, from_start=from_start)]


def outage_spans(samples: Sequence[Sample], start: float, end: float, *,
                 from_start: bool = True) -> list[tuple[float, float]]:
    """Each (last answer, next answer) span with a failed probe between them, within [start, end].

    The last success before ``start`` anchors a span that begins before it; with none, a failure
    at the start counts from ``start`` (``from_start`` False: it does not count, as the benchmarks
    want: no answer seen yet is no outage measured). A failure still going on at ``end`` counts up
    to ``end``. Gaps without a failure (scheduling jitter) are not outages.
    """
    ordered = sorted(samples)
    last_ok: float | None = max((t for t, ok in ordered if ok and t < start), default=start if from_start else None)
    failed = False
    found = []
    for t, ok in ordered:
        if t < start or t > end:
            continue
        if not ok:
            failed = True
            continue
        if failed and last_ok is not None:
            found.append((last_ok, t))
        failed, last_ok = False, t
    if failed and last_ok is not None:
        found.append((last_ok, end))
    return found


@dataclass(eq=False)
class _Target:
    key: str
    addr: Address
    hot: bool  # probed every FINE seconds even while it answers
    cool: bool  # hot ends GRACE after its first recovery
    final: list[Sample] = field(default_factory=list)  # settled samples, each run of successes kept as its ends
    recent: list[Sample] = field(default_factory=list)  # samples whose earlier probes may still be in flight
    down: bool = False  # the newest answer was a failure
    recovered: float | None = None  # when it first answered again after a failure
    newest: float = float("-inf")  # send time of the newest probe answered (answers come out of order)
    due: float = 0.0  # when its next probe is sent
    index: int = 0  # its place in the watch's list

    def period(self, now: float) -> float:
        if self.hot and self.cool and self.recovered is not None and now - self.recovered >= GRACE:
            self.hot = False
        return FINE if self.hot or self.down else COARSE


class Watch:
    """TCP-connect probes of ``targets`` (a name -> its addresses) from :meth:`start` to :meth:`stop`.

    ``fine``: the names probed finely from the start (all of them when None); the others every
    :data:`COARSE` seconds until one fails. ``cool``: a fine name goes coarse :data:`GRACE` after it
    came back from its first outage (a move moves each resource once); without it, it stays fine.
    ``enter``: run first in the watch's thread (the bench joins a network namespace there).
    """

    def __init__(self, targets: Mapping[str, Iterable[Address]], *, fine: Iterable[str] | None = None,
                 cool: bool = True, enter: Callable[[], None] | None = None) -> None:
        hot = None if fine is None else set(fine)
        self._targets = [_Target(key, addr, hot is None or key in hot, cool)
                         for key, addrs in targets.items() for addr in dict.fromkeys(addrs)]
        for i, t in enumerate(self._targets):
            t.index = i
        self._enter = enter
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self.error: str | None = None  # why the thread ended early, if it did

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(t.key for t in self._targets))

    def focus(self, keys: Iterable[str], hot: bool = True) -> None:
        """``keys`` probed finely (``hot``) or back to coarsely from now on."""
        wanted = set(keys)
        with self._lock:
            for t in self._targets:
                if t.key in wanted:
                    t.hot, t.recovered = hot, None

    def start(self) -> "Watch":
        self.started = monotonic()
        self._thread = threading.Thread(target=self._run, name="outage-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
        if self.ended is None:
            self.ended = monotonic()

    def __enter__(self) -> "Watch":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def samples(self, key: str) -> dict[Address, list[Sample]]:
        """Every address of ``key`` and its samples, in send order (runs of successes as their ends)."""
        with self._lock:
            return {t.addr: sorted(t.final + t.recent) for t in self._targets if t.key == key}

    def outages(self, start: float | None = None, end: float | None = None) -> dict[str, list[float]]:
        """Per name, its outages between ``start`` and ``end`` (the watch's own span by default), all of
        its addresses together."""
        lo = self.started if start is None else start
        hi = (self.ended or monotonic()) if end is None else end
        found: dict[str, list[float]] = {key: [] for key in self.keys}
        if lo is None:
            return found
        for key in found:
            for s in self.samples(key).values():
                found[key] += outages(s, lo, hi)
        return found

    def longest(self) -> dict[str, float]:
        """Per name, its longest outage in the watch (0.0: none seen), rounded to the millisecond."""
        return {key: round(max(o, default=0.0), 3) for key, o in self.outages().items()}

    # The thread.

    def _run(self) -> None:
        try:
            if self._enter is not None:
                self._enter()
            self._loop()
        except Exception as exc:  # noqa: BLE001 - a watch that fails says so; it never fails the move
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended = monotonic()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        open_: dict[socket.socket, tuple[_Target, float]] = {}
        order: deque[tuple[float, socket.socket]] = deque()  # by deadline (= send time + TIMEOUT)
        now = monotonic()
        for t in self._targets:
            t.due = now
        due = [(now, i) for i in range(len(self._targets))]
        heapq.heapify(due)
        compacted = now
        try:
            while not self._stopping.is_set():
                now = monotonic()
                while due and due[0][0] <= now:
                    when, i = heapq.heappop(due)
                    t = self._targets[i]
                    if when != t.due:  # rescheduled sooner since (it failed while probed coarsely)
                        continue
                    if len(open_) < MAX_OPEN:
                        self._send(t, now, selector, open_, order)
                    with self._lock:
                        step = t.period(now)
                    t.due = when + step if when + step > now else now + step  # on the beat; behind: from now
                    heapq.heappush(due, (t.due, i))
                while order and (order[0][1] not in open_ or order[0][0] <= now):
                    _, sock = order.popleft()
                    if sock in open_:
                        self._soon(self._done(sock, False, selector, open_), now, due)
                wake = min([d for d in (due[0][0] if due else None, order[0][0] if order else None)
                            if d is not None], default=now + FINE) - now
                for key, _ in selector.select(max(0.0, min(wake, FINE))):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock in open_:
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        self._soon(self._done(sock, err == 0, selector, open_), now, due)
                if now - compacted >= 1.0:
                    self._compact(now)
                    compacted = now
        finally:
            for sock in list(open_):  # probes still in flight at the end: not known, not counted
                _close(sock, selector)
            open_.clear()
            selector.close()

    def _send(self, t: _Target, now: float, selector: selectors.BaseSelector,
              open_: dict[socket.socket, tuple[_Target, float]], order: deque[tuple[float, socket.socket]]) -> None:
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in t.addr[0] else socket.AF_INET, socket.SOCK_STREAM)
        except OSError:  # out of descriptors: this probe is not sent (not a failure of the address)
            return
        sock.setblocking(False)
        err = sock.connect_ex(t.addr)
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            selector.register(sock, selectors.EVENT_WRITE)
            open_[sock] = (t, now)
            order.append((now + TIMEOUT, sock))
            return
        self._record(t, now, err == 0)  # refused or unreachable at once (or connected on the spot)
        _close(sock, None)

    def _done(self, sock: socket.socket, ok: bool, selector: selectors.BaseSelector,
              open_: dict[socket.socket, tuple[_Target, float]]) -> _Target:
        t, sent = open_.pop(sock)
        _close(sock, selector)
        self._record(t, sent, ok)
        return t

    def _soon(self, t: _Target, now: float, due: list[tuple[float, int]]) -> None:
        """A target that went down while probed coarsely: its next probe at once finely, not COARSE later."""
        if t.down and t.due > now + FINE:
            t.due = now + FINE
            heapq.heappush(due, (t.due, t.index))

    def _record(self, t: _Target, sent: float, ok: bool) -> None:
        with self._lock:
            t.recent.append((sent, ok))
            if sent < t.newest:  # an older probe's answer, come late (a timeout): the state is the newer one's
                return
            t.newest = sent
            if ok and t.down and t.recovered is None:
                t.recovered = monotonic()
            if not ok and t.recovered is not None and t.cool and not t.hot:
                t.hot = True  # down again: fine again until it is back GRACE seconds
                t.recovered = None
            t.down = not ok

    def _compact(self, now: float) -> None:
        """Samples sent before every probe still in flight could answer are settled: each run of successes
        kept as its first and last sample (an outage's ends are all that count), so memory follows outages."""
        settled = now - TIMEOUT - 1.0
        with self._lock:
            for t in self._targets:
                t.recent.sort()
                cut = next((i for i, (sent, _) in enumerate(t.recent) if sent >= settled), len(t.recent))
                for sample in t.recent[:cut]:
                    if sample[1] and len(t.final) >= 2 and t.final[-1][1] and t.final[-2][1]:
                        t.final[-1] = sample
                    else:
                        t.final.append(sample)
                del t.recent[:cut]


def _close(sock: socket.socket, selector: selectors.BaseSelector | None) -> None:
    if selector is not None:
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()
