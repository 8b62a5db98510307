"""The window's pure decisions: what fits, the random delay, when to mail, the mail text, the webhook."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upgrader import boot
from upgrader.nightly import fit, report
from upgrader.runner import Runner

M = timedelta(minutes=1)


def test_a_node_starts_only_when_its_expected_duration_fits() -> None:
    assert fit.defer_reason("node1", 30 * M, 31 * M, "default") is None
    assert fit.defer_reason("node1", 30 * M, 30 * M, "default") is None
    why = fit.defer_reason("node2", 30 * M, 29 * M, "Rolling-Upgrade::Default-Node-Duration, no history yet")
    assert why == ("node2 not started: it is expected to take 30m (Rolling-Upgrade::Default-Node-Duration, "
                   "no history yet) and the patch window has 29m left")
    assert fit.defer_reason("node3", 30 * M, timedelta(0), "x") == "node3 not started: the patch window has closed"


def test_schedule_counts_each_node_and_the_soak_and_defers_the_rest() -> None:
    order = ["node1", "node2", "node3"]
    assert fit.schedule(order, 30 * M, 95 * M) == (order, [])
    assert fit.schedule(order, 30 * M, 89 * M) == (["node1", "node2"], ["node3"])
    assert fit.schedule(order, 30 * M, 95 * M, soak=5 * M) == (["node1", "node2"], ["node3"])
    assert fit.schedule(order, 30 * M, 10 * M) == ([], order)
    assert fit.schedule([], 30 * M, 0 * M) == ([], [])


def test_random_delay_is_bounded_by_the_setting_and_the_room_left() -> None:
    rng = random.Random(7)
    assert fit.random_delay(0, 120 * M, 30 * M) == 0
    delays = [fit.random_delay(600, 120 * M, 30 * M, rng) for _ in range(200)]
    assert min(delays) >= 0 and max(delays) <= 600 and len(set(delays)) > 50
    assert all(fit.random_delay(3600, 40 * M, 30 * M, rng) <= 600 for _ in range(50))  # first node keeps its time
    assert fit.random_delay(3600, 20 * M, 30 * M, rng) == 0


def test_human_durations() -> None:
    assert [fit.human(s) for s in (45 * M, 90 * M, timedelta(seconds=40), timedelta(seconds=75))] == \
        ["45m", "1h30m", "40s", "1m15s"]


def summary(*results: str, exit: int = 0, refused: str | None = None) -> report.Summary:
    nodes = [{"node": f"node{i}", "result": r, "error": "it is expected to take 30m" if r == "deferred" else None,
              "changes": [{"package": "demo-libfoo", "installed": "1", "candidate": "2"}]}
             for i, r in enumerate(results, start=1)]
    return report.Summary("R1", "node1", "done" if not exit else "failed_back", exit, nodes, refused,
                          ["  0.1s node1 drain: standby"])


@pytest.mark.parametrize(("mode", "case", "expected"), [
    ("always", summary("up to date"), True),
    ("only-on-error", summary("ok"), False),
    ("only-on-error", summary("ok", "failed", exit=1), True),
    ("only-on-error", summary(exit=3, refused="refused: nodes offline: node3"), True),
    ("on-change", summary("up to date", "up to date"), False),
    ("on-change", summary("ok"), True),
    ("on-change", summary("deferred"), True),
])
def test_mail_report_policy(mode: str, case: report.Summary, expected: bool) -> None:
    assert report.should_mail(mode, case) is expected


def test_mail_reads_like_unattended_upgrades() -> None:
    msg = report.mail_message(summary("ok", "deferred"), "ops@example.com")
    assert msg["Subject"] == "[deferred] rolling-upgrade window result for node1: SUCCESS"
    assert msg["To"] == "ops@example.com" and msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert "Packages that were upgraded:\n node1 (ok): demo-libfoo 1 -> 2" in body
    assert "Nodes deferred to the next patch window:\n node2: it is expected to take 30m" in body
    assert "Rolling-upgrade log:\n   0.1s node1 drain: standby" in body
    failed = report.mail_message(summary("failed", exit=1), "root")
    assert failed["Subject"].endswith(": FAILURE")


def test_sendmail_gets_the_message_and_a_missing_one_is_one_line(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat > {tmp_path}/mail\n")
    fake.chmod(0o755)
    monkeypatch.setattr(report, "SENDMAIL", str(fake))
    assert report.send_mail(report.mail_message(summary("ok"), "root"), Runner(timeout=10)) is None
    assert (tmp_path / "args").read_text().split() == ["-t", "-oi"]
    assert "Subject: rolling-upgrade window result for node1: SUCCESS" in (tmp_path / "mail").read_text()
    monkeypatch.setattr(report, "SENDMAIL", str(tmp_path / "missing"))
    why = report.send_mail(report.mail_message(summary("ok"), "root"))
    assert why is not None and "is not installed" in why and "\n" not in why


def test_webhook_posts_json_to_the_url_only(webhook_server: tuple[str, list[dict]]) -> None:
    base, got = webhook_server
    doc = summary("ok").document()
    assert report.post_webhook(f"{base}/hook", doc, timeout=5) is None
    assert got == [{"path": "/hook", "type": "application/json", "doc": json.loads(json.dumps(doc))}]
    why = report.post_webhook(f"{base}/moved", doc, timeout=5)
    assert why is not None and "not followed" in why and len(got) == 2  # the redirect target was not asked
    assert "is not an http(s) URL" in (report.post_webhook("file:///etc/passwd", doc) or "")


def test_boot_grace_counts_from_corosync_start_or_boot(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "uptime").write_text("5000.00 100.00\n")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("init\n")
    assert boot.settled_for(tmp_path) == (5000.0, "boot")
    assert boot.grace_refusal(900, "x", tmp_path) is None
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "comm").write_text("corosync\n")
    monkeypatch.setattr(boot.runkey, "start_time", lambda pid: 4800 * 100 if pid == 42 else None)
    monkeypatch.setattr(boot.os, "sysconf", lambda name: 100)
    assert boot.settled_for(tmp_path) == (200.0, "cluster join (corosync start)")
    why = boot.grace_refusal(900, "unattended-upgrades", tmp_path)
    assert why == ("refused: unattended-upgrades within Rolling-Upgrade::Boot-Grace (900s) of this node's "
                   "cluster join (corosync start) 200s ago; it runs again later (or lower Boot-Grace)")
    assert boot.grace_refusal(0, "x", tmp_path) is None


@pytest.mark.parametrize(("run_id", "holder_state", "expired", "fencing", "kind"), [
    ("apt-4711-99", "online", False, True, "apt"),  # unattended-upgrades (or its finishing step): waited for
    ("20261122T020500-node2-abcdef", "online", False, True, "run"),  # another window / rolling-upgrade: it works
    ("20261122T020000-node1-aaaaaa", "online", False, True, "free"),  # our own
    ("apt-4711-99", "offline", True, True, "free"),  # stale and breakable (fencing on): the run breaks it
    ("apt-4711-99", "offline", True, False, "apt"),  # fencing off: never broken automatically
    ("20261122T020500-node2-abcdef", "offline", False, True, "run"),  # offline but not expired: not yet
], ids=["apt-run", "other-run", "ours", "breakable", "no-fencing", "offline-not-expired"])
def test_which_lock_the_window_waits_for(run_id: str, holder_state: str, expired: bool, fencing: bool,
                                         kind: str) -> None:
    from upgrader.nightly.window import lock_kind
    from upgrader.pacemaker.lock import LockInfo, LockStatus

    info = LockInfo("node2", run_id, 4711, "upgrade", None, None, None)
    assert lock_kind(LockStatus(info, holder_state, expired, fencing), "20261122T020000-node1-aaaaaa") == kind
    assert lock_kind(None, "20261122T020000-node1-aaaaaa") == "free"


def test_the_window_goes_on_inside_an_open_window_and_says_why_not_outside(monkeypatch, tmp_path) -> None:
    from upgrader.config import Config
    from upgrader.nightly import window
    from upgrader.timewindow import parse_window

    monkeypatch.setattr(window, "LOG_FILE", str(tmp_path / "window.log"))
    cfg = Config(windows=(parse_window("Mon-Sun 02:00-04:00 UTC"),), boot_grace=0)
    inside = datetime(2026, 3, 2, 2, 5, tzinfo=timezone.utc)
    assert window.not_now(cfg, inside, at_given=True) is None
    assert "the clock is set by --at" in (tmp_path / "window.log").read_text()
    code, line = window.not_now(cfg, inside.replace(hour=5), at_given=False)
    assert code == 0 and line.startswith("patch window closed at ") and line.endswith("; nothing done")
    code, line = window.not_now(Config(), inside, at_given=False)
    assert (code, line) == (0, "no patch window configured (Rolling-Upgrade::Windows); nothing done")


def test_a_webhook_that_drips_its_answer_is_cut_at_one_deadline_and_its_url_is_redacted() -> None:
    import socket
    import time as clock

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:  # reads the request, then answers one byte every 0.3 s: each read is quick, the whole is not
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
                if stop.wait(0.3):
                    return
                try:
                    conn.send(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = clock.monotonic()
    try:
        why = report.post_webhook(f"http://127.0.0.1:{port}/secret-token-123/hook?key=abc", {"x": 1}, timeout=1)
    finally:
        stop.set()
        listener.close()
    took = clock.monotonic() - started
    assert why == f"webhook http://127.0.0.1:{port}/... failed: no answer within 1s", why
    assert took < 3, took
    assert "secret-token" not in why and "key=abc" not in why


def test_a_webhook_url_with_a_user_or_password_is_refused() -> None:
    from upgrader.config import _webhook

    with pytest.raises(ValueError, match=r"a user or password in the URL would go into logs"):
        _webhook("https://bot:hunter2@hooks.example.com/upgrader")
    assert report.redact("https://bot:hunter2@hooks.example.com:8443/t/abc?x=1") == "https://hooks.example.com:8443/..."
