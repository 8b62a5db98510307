"""The lab's slow repository without a lab: the rate's arithmetic on a fake clock, the handler over a
socket pair (no network), the sources entries, the padding, and serving's undo on every exit."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from upgrader_lab import layout, node, repo, slowrepo
from upgrader_lab.layout import Lab, LabError
from upgrader_lab.slowrepo import Served, Throttle, served, served_line, throttled_copy


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_one_sender_gets_the_rate_after_its_burst() -> None:
    clock = FakeClock()
    t = Throttle(1_000_000, burst=16_384, clock=clock, sleep=clock.sleep)
    for _ in range(256):  # 4 MiB in 16 KiB steps
        t.take(16_384)
    assert clock.now - 100.0 == pytest.approx((4 * 2**20 - 16_384) / 1_000_000)  # 4.18 s at 1 MB/s


def test_the_first_burst_goes_at_once_then_each_step_waits_its_share() -> None:
    clock = FakeClock()
    t = Throttle(1000, burst=100, clock=clock, sleep=clock.sleep)
    assert t.reserve(100) == 0.0
    assert t.reserve(500) == pytest.approx(0.5)
    assert t.reserve(500) == pytest.approx(1.0)  # a second caller at the same instant waits behind the first
    clock.now += 1.0
    assert t.reserve(0) == 0.0  # the debt is paid


def test_every_sender_together_stays_within_the_rate() -> None:
    """Three connections at once share the rate: 3 x 120 KB at 100 KB/s take 3.6 s, not 1.2 s."""
    clock = FakeClock()
    t = Throttle(100_000, burst=10_000, clock=clock, sleep=lambda s: None)
    due = {c: 0.0 for c in "abc"}  # when each sender may send its next step
    sent = {c: 0 for c in "abc"}
    while any(n < 120_000 for n in sent.values()):
        c = min((c for c in due if sent[c] < 120_000), key=lambda c: due[c])
        clock.now = max(clock.now, 100.0 + due[c])
        due[c] = clock.now - 100.0 + t.reserve(10_000)
        sent[c] += 10_000
    assert max(due.values()) == pytest.approx((360_000 - 10_000) / 100_000)


def test_an_idle_bucket_fills_up_to_its_burst_only() -> None:
    clock = FakeClock()
    t = Throttle(1000, burst=100, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    assert t.reserve(100) == 0.0
    assert t.reserve(1000) == pytest.approx(1.0)


def test_a_throttle_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        Throttle(0)


def test_a_throttled_copy_is_the_file_at_the_rate() -> None:
    clock = FakeClock()
    data = os.urandom(200_000)
    out = io.BytesIO()
    sent = throttled_copy(io.BytesIO(data), out, Throttle(50_000, burst=16_384, clock=clock, sleep=clock.sleep))
    assert sent == len(data) and out.getvalue() == data
    assert clock.now - 100.0 == pytest.approx((200_000 - 16_384) / 50_000)


@pytest.mark.parametrize("address", ["198.51.100.30", "203.0.113.62"])
def test_a_lab_address_is_one_to_serve_on(address: str) -> None:
    assert slowrepo.check_address(address) == address


@pytest.mark.parametrize("address", ["192.0.2.30", "127.0.0.1", "0.0.0.0", "10.0.0.1"])
def test_the_server_refuses_any_other_address_before_it_binds(address: str, tmp_path: Path) -> None:
    with pytest.raises(LabError, match="not a lab address"):
        slowrepo.SlowServer(address, slowrepo.PORT, tmp_path, 1 << 20)


@pytest.mark.parametrize("rate", [0, 1023, (1 << 30) + 1])
def test_a_rate_out_of_range_is_refused(rate: int) -> None:
    with pytest.raises(LabError, match="out of range"):
        slowrepo.check_rate(rate)


def test_the_sources_entries_copy_and_http() -> None:
    assert repo.sources_entry(Path(node.REPO_MOUNT)) == (
        "Types: deb\nURIs: copy:/srv/upgrader-lab/repo\nSuites: lab lab-security\nComponents: main\nTrusted: yes\n")
    assert repo.http_sources_entry("198.51.100.30", 8080) == (
        "Types: deb\nURIs: http://198.51.100.30:8080/\nSuites: lab lab-security\nComponents: main\nTrusted: yes\n")
    assert slowrepo.url(Lab(name="bnstage", slice=1)) == "http://198.51.100.62:8080/"


def test_no_proxy_is_asked_for_the_slow_repository() -> None:
    assert slowrepo.proxy_conf("198.51.100.30").splitlines()[-1] == 'Acquire::http::Proxy::198.51.100.30 "DIRECT";'


def test_the_log_says_what_was_served() -> None:
    log = "\n".join(["12:00:00 slowrepo: lab x: serving /r on http://198.51.100.30:8080/ at 1048576 bytes/s",
                     "12:00:01 slowrepo: 198.51.100.1 " + served_line("GET", "/dists/lab/InRelease", 404, 0, 0.0012),
                     "12:00:05 slowrepo: 198.51.100.2 " + served_line("GET", "/pool/lab/demo-libfoo_3_all.deb", 200,
                                                                       4_200_000, 4.0061),
                     "12:00:05 slowrepo: 198.51.100.3: ConnectionResetError(104, 'Connection reset by peer')",
                     "12:00:06 slowrepo: 198.51.100.3 " + served_line("GET", "/pool/lab/x.deb", None, 0, 0.5)])
    got = served(log)
    assert got == [Served("GET", "/dists/lab/InRelease", 404, 0, 0.001),
                   Served("GET", "/pool/lab/demo-libfoo_3_all.deb", 200, 4_200_000, 4.006),
                   Served("GET", "/pool/lab/x.deb", None, 0, 0.5)]
    assert [s.archive for s in got] == [False, True, True]


class FakeServer:
    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle


def _ask(root: Path, request: bytes, throttle: Throttle) -> bytes:
    """One request to the handler over a socket pair (no network), the whole answer."""
    import functools

    ours, theirs = socket.socketpair()
    handler = functools.partial(slowrepo.Handler, directory=str(root))

    def serve() -> None:
        try:
            handler(ours, ("198.51.100.1", 40000), FakeServer(throttle))
        finally:
            ours.close()

    worker = threading.Thread(target=serve)
    worker.start()
    theirs.sendall(request)
    answer = b""
    while chunk := theirs.recv(65536):
        answer += chunk
    worker.join(10)
    theirs.close()
    return answer


def test_the_handler_serves_a_file_throttled_and_logs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pool").mkdir()
    data = os.urandom(100_000)
    (tmp_path / "pool" / "a.deb").write_bytes(data)
    clock = FakeClock()
    answer = _ask(tmp_path, b"GET /pool/a.deb HTTP/1.0\r\n\r\n", Throttle(20_000, clock=clock, sleep=clock.sleep))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"Content-Length: 100000" in head and body == data
    assert clock.now - 100.0 == pytest.approx((100_000 - slowrepo.CHUNK) / 20_000)
    assert served(capsys.readouterr().err) == [Served("GET", "/pool/a.deb", 200, 100_000, pytest.approx(0, abs=1))]


@pytest.mark.parametrize("request_line, status", [(b"GET /pool/ HTTP/1.0", b"404"), (b"GET /missing HTTP/1.0", b"404"),
                                                  (b"PUT /pool/a.deb HTTP/1.0", b"501"),
                                                  (b"DELETE /pool/a.deb HTTP/1.0", b"501")])
def test_the_handler_lists_no_directory_and_changes_nothing(tmp_path: Path, request_line: bytes, status: bytes) -> None:
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "a.deb").write_bytes(b"x")
    answer = _ask(tmp_path, request_line + b"\r\n\r\n", Throttle(1 << 20))
    assert answer.split(b" ", 2)[1] == status
    assert (tmp_path / "pool" / "a.deb").read_bytes() == b"x"


def test_publish_pads_the_package_with_random_bytes_only_when_asked(tmp_path: Path) -> None:
    padded = repo.publish(tmp_path, "2", padding_bytes=3 << 20)
    assert padded.stat().st_size > 3 << 20  # random bytes do not compress
    listing = subprocess.run(["dpkg-deb", "-c", str(padded)], capture_output=True, text=True, check=True).stdout
    line = next(x for x in listing.splitlines() if x.endswith(f"/usr/share/{layout.PACKAGE}/{repo.PADDING}"))
    assert str(3 << 20) in line.split()
    plain = repo.publish(tmp_path, "3")
    assert plain.stat().st_size < 1 << 20
    assert repo.PADDING not in subprocess.run(["dpkg-deb", "-c", str(plain)], capture_output=True, text=True,
                                              check=True).stdout
    with pytest.raises(LabError, match="out of range"):
        repo.publish(tmp_path, "4", padding_bytes=-1)


def test_stop_ends_no_process_that_is_not_this_labs_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    lab = Lab(name="nolabx", slice=3)
    slowrepo.state_dir(lab).mkdir(parents=True)
    (slowrepo.state_dir(lab) / "server.pid").write_text(f"{os.getpid()}\n")  # a PID that is not a slow repository
    assert slowrepo.pid(lab) is None
    assert slowrepo.stop(lab) == []  # this test process lives on
    assert not (slowrepo.state_dir(lab) / "server.pid").exists()


class Recorded:
    """serving's steps, faked: what was started, switched and stopped, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: str = "") -> None:
        self.steps: list[str] = []
        self.fail = fail
        monkeypatch.setattr(slowrepo.node, "running", lambda lab, n: True)
        monkeypatch.setattr(slowrepo, "pid", lambda lab: None)
        monkeypatch.setattr(slowrepo, "start", self.start)
        monkeypatch.setattr(slowrepo, "switch", self.switch)
        monkeypatch.setattr(slowrepo, "stop", self.stop)

    def start(self, lab: Lab, rate: int, port: int = slowrepo.PORT) -> int:
        self.steps.append(f"start {rate}")
        if self.fail == "start":
            raise LabError("address in use")
        return 4242

    def switch(self, lab: Lab, nodes: list[str], address: str | None, port: int = slowrepo.PORT) -> None:
        self.steps.append(f"switch {','.join(nodes)} to {address or 'copy'}")
        if self.fail == "switch" and address:
            raise LabError("apt-get update in node2 failed")
        if self.fail == "restore" and not address:
            raise LabError("node3 is gone")

    def stop(self, lab: Lab) -> list[int]:
        self.steps.append("stop")
        return [4242]


LAB = Lab(name="nolabx", slice=3)


def test_serving_switches_every_node_and_undoes_both(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch)
    with slowrepo.serving(LAB, 1 << 20) as got:
        assert got == "http://198.51.100.126:8080/"
        r.steps.append("body")
    assert r.steps == ["start 1048576", "switch node1,node2,node3 to 198.51.100.126", "body",
                       "switch node1,node2,node3 to copy", "stop"]


def test_serving_undoes_both_when_the_block_fails_and_keeps_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch, fail="restore")
    with pytest.raises(KeyboardInterrupt) as caught:
        with slowrepo.serving(LAB, 1 << 20):
            raise KeyboardInterrupt
    assert r.steps[-2:] == ["switch node1,node2,node3 to copy", "stop"]
    assert caught.value.__notes__ == ["switching the nodes back to the copy: repository failed too: node3 is gone"]


def test_serving_switches_back_when_switching_on_failed_half_way(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch, fail="switch")
    with pytest.raises(LabError, match="apt-get update in node2 failed"):
        with slowrepo.serving(LAB, 1 << 20):
            r.steps.append("body")
    assert "body" not in r.steps and r.steps[-2:] == ["switch node1,node2,node3 to copy", "stop"]


def test_serving_stops_a_server_that_failed_to_start_and_switches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch, fail="start")
    with pytest.raises(LabError, match="address in use"):
        with slowrepo.serving(LAB, 1 << 20):
            pass
    assert r.steps == ["start 1048576", "stop"]


def test_a_restore_that_fails_after_a_good_block_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch, fail="restore")
    with pytest.raises(LabError, match="node3 is gone"):
        with slowrepo.serving(LAB, 1 << 20):
            pass
    assert r.steps[-1] == "stop"


class FakeInside:
    """A node's runner: notes each command; apt-cache policy lists the package from ``listed``."""

    def __init__(self, name: str, seen: list[tuple[str, tuple[str, ...], str | None]], listed: str) -> None:
        self.name, self.seen, self.listed = name, seen, listed

    def run(self, argv: list[str], *, input: str | None = None, what: str | None = None, **kw: object) -> object:
        self.seen.append((self.name, tuple(argv), input))
        out = f"demo-libfoo:\n  Installed: 2\n  *** 2 500\n        500 {self.listed} lab/main amd64 Packages\n"
        return type("R", (), {"stdout": out if argv[0] == "apt-cache" else ""})()


def test_switch_writes_the_source_and_the_proxy_exception_then_updates_and_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, tuple[str, ...], str | None]] = []
    monkeypatch.setattr(slowrepo.node, "runner",
                        lambda lab, n, timeout=60: FakeInside(n, seen, "http://198.51.100.126:8080/"))
    slowrepo.switch(LAB, ["node1", "node2"], LAB.client_ip)
    node1 = [(argv, text) for n, argv, text in seen if n == "node1"]
    assert node1 == [(("tee", slowrepo.PROXY_CONF), slowrepo.proxy_conf("198.51.100.126")),
                     (("tee", node.SOURCES), repo.http_sources_entry("198.51.100.126", 8080)),
                     (("apt-get", "update", "-q"), None), (("apt-cache", "policy", layout.PACKAGE), None)]
    seen.clear()
    monkeypatch.setattr(slowrepo.node, "runner",
                        lambda lab, n, timeout=60: FakeInside(n, seen, "copy:/srv/upgrader-lab/repo"))
    slowrepo.switch(LAB, ["node1"], None)
    assert [(argv, text) for n, argv, text in seen] == [
        (("tee", node.SOURCES), repo.sources_entry(Path(node.REPO_MOUNT))), (("rm", "-f", slowrepo.PROXY_CONF), None),
        (("apt-get", "update", "-q"), None), (("apt-cache", "policy", layout.PACKAGE), None)]


def test_a_node_that_does_not_list_the_new_source_is_an_error_after_every_node_was_tried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, tuple[str, ...], str | None]] = []
    monkeypatch.setattr(slowrepo.node, "runner", lambda lab, n, timeout=60: FakeInside(
        n, seen, "copy:/srv/upgrader-lab/repo" if n == "node2" else "http://198.51.100.126:8080/"))
    with pytest.raises(LabError, match="node2 does not list demo-libfoo from http://198.51.100.126:8080 after"):
        slowrepo.switch(LAB, ["node1", "node2", "node3"], LAB.client_ip)
    assert {n for n, argv, _ in seen if argv[0] == "apt-cache"} == {"node1", "node2", "node3"}


def test_serving_leaves_a_server_another_block_runs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Recorded(monkeypatch)
    monkeypatch.setattr(slowrepo, "pid", lambda lab: 4343)
    with pytest.raises(LabError, match="already serves its repository slowly"):
        with slowrepo.serving(LAB, 1 << 20):
            pass
    assert r.steps == []
