"""Every entry point reports: a failed-back finishing step after unattended-upgrades mails and posts its report
(a test sendmail that keeps what it is given, a webhook receiver on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from upgrader.cli import run as run_command
from upgrader.config import Config
from upgrader.nightly import report
from upgrader.orchestrator.context import NodeResult, Result
from upgrader.orchestrator.outcome import Outcome


def test_a_failed_back_finishing_step_mails_and_posts_its_report(tmp_path: Path, webhook_server, monkeypatch) -> None:
    base, got = webhook_server
    url = f"{base}/hook"
    kept = tmp_path / "mail.txt"
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f"#!/bin/sh\n# a test sendmail: keeps its arguments and the message\necho \"$@\" > {kept}.args\n"
                        f"cat > {kept}\n")
    sendmail.chmod(0o755)
    monkeypatch.setattr(report, "SENDMAIL", str(sendmail))
    failed = NodeResult("node2", Result.QUARANTINED, error="quarantined: app1 on node2: application check failed")
    r = SimpleNamespace(run_id="apt-812-77001", results={"node2": failed}, stop_reason="health check failed after the "
                        "move; failed back onto old packages", config=Config(mail="ops@example.org", webhook=url))
    run_command.send_report(r, "finishing step", Outcome.FAILED_BACK, None)  # type: ignore[arg-type]
    assert len(got) == 1 and got[0]["path"] == "/hook"
    doc = got[0]["doc"]
    assert (doc["source"], doc["outcome"], doc["exit"], doc["run"]) == ("finishing step", "failed_back", 1,
                                                                        "apt-812-77001")
    assert doc["nodes"][0]["result"] == "quarantined" and "failed back" in doc["log"][0]
    mail = kept.read_text()
    assert "Subject: rolling-upgrade finishing step result for" in mail and ": FAILURE" in mail
    assert "To: ops@example.org" in mail and "node2: quarantined" in mail
    assert (tmp_path / "mail.txt.args").read_text().split() == ["-t", "-oi"]


def test_without_mail_or_webhook_nothing_is_sent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "SENDMAIL", str(tmp_path / "must-not-run"))
    r = SimpleNamespace(run_id="r1", results={}, stop_reason=None, config=Config())
    run_command.send_report(r, "run", Outcome.DONE, None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
