"""A run's report, from every entry point (the window, ``run``, ``node``, the APT hooks' finishing step):
when to send it, the mail (unattended-upgrades' style) and the webhook, under the same Mail, MailReport
and Webhook settings."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.error import URLError

from upgrader.bounded import WorkFailed, call_in_child
from upgrader.runner import SENDMAIL_TIMEOUT, Runner

SENDMAIL = "/usr/sbin/sendmail"
WEBHOOK_TIMEOUT = 10.0


@dataclass
class Summary:
    """What one window run did: per node a result (ok, failed, deferred, up to date), and how it ended."""

    run_id: str
    host: str
    outcome: str  # done, failed_back, refused, needs_person
    exit: int
    nodes: list[dict[str, Any]] = field(default_factory=list)  # NodeResult fields
    refused: str | None = None
    log: list[str] = field(default_factory=list)
    source: str = "window"  # which entry point ran it: window, run, node, finishing step
    @property
    def failed(self) -> bool:
        return self.exit != 0

    @property
    def changed(self) -> bool:
        """Something was upgraded, or left deferred (the cluster is on mixed versions until the next window)."""
        return any(n["result"] in ("ok", "failed", "deferred") for n in self.nodes)

    def document(self) -> dict[str, Any]:
        return {"run": self.run_id, "host": self.host, "source": self.source, "outcome": self.outcome,
                "exit": self.exit, "refused": self.refused, "nodes": self.nodes, "log": self.log}

    def headline(self) -> str:
        """One line for the log: the outcome, what was upgraded, what was deferred."""
        if self.refused:
            return f"{self.source} run {self.run_id}: {self.refused}"
        done = [n["node"] for n in self.nodes if n["result"] == "ok"]
        failed = [f"{n['node']} ({n['error']})" for n in self.nodes if n["result"] == "failed"]
        deferred = [n for n in self.nodes if n["result"] == "deferred"]
        parts = [f"upgraded {', '.join(done) or 'no node'}"]
        if failed:
            parts.append(f"failed {', '.join(failed)}")
        if deferred:
            parts.append(f"deferred {', '.join(n['node'] for n in deferred)}: {deferred[0]['error']}")
        return (f"{self.source} run {self.run_id}: {self.outcome.replace('_', ' ')} (exit {self.exit}); "
                + "; ".join(parts))


def should_mail(mode: str, summary: Summary) -> bool:
    """``always``, ``only-on-error`` (a failure or refusal), ``on-change`` (upgraded, deferred or failed)."""
    if mode == "always":
        return True
    if mode == "only-on-error":
        return summary.failed
    return summary.failed or summary.changed


def mail_message(summary: Summary, to: str, sender: str = "root") -> EmailMessage:
    """The report as unattended-upgrades words it: a SUCCESS/FAILURE subject, packages, then the log."""
    result = "FAILURE" if summary.failed else "SUCCESS"
    deferred = [n for n in summary.nodes if n["result"] == "deferred"]
    tag = "[deferred] " if deferred else ""
    msg = EmailMessage()
    msg["Subject"] = f"{tag}rolling-upgrade {summary.source} result for {summary.host}: {result}"
    msg["From"] = sender
    msg["To"] = to
    msg["Auto-Submitted"] = "auto-generated"
    lines = [f"Rolling upgrade result: {summary.headline()}", ""]
    if summary.refused:
        lines += ["Nothing was changed.", ""]
    upgraded = [n for n in summary.nodes if n["result"] in ("ok", "failed") and n.get("changes")]
    if upgraded:
        lines.append("Packages that were upgraded:")
        for n in upgraded:
            pkgs = ", ".join(f"{c['package']} {c.get('installed') or '-'} -> {c.get('candidate')}" for c in n["changes"])
            lines.append(f" {n['node']} ({n['result']}): {pkgs}")
        lines.append("")
    if deferred:
        lines.append("Nodes deferred to the next patch window:")
        lines += [f" {n['node']}: {n['error']}" for n in deferred]
        lines.append("")
    if summary.nodes:
        lines.append("Nodes:")
        lines += [f" {n['node']}: {n['result']}" + (f" ({n['error']})" if n.get("error") and n["result"] != "deferred"
                                                     else "") for n in summary.nodes]
        lines.append("")
    if summary.log:
        lines.append("Rolling-upgrade log:")
        lines += [f" {line}" for line in summary.log]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send_mail(msg: EmailMessage, runner: Runner | None = None) -> str | None:
    """Hand ``msg`` to the system's sendmail (``-t``: recipients from the headers); a reason when it failed."""
    result = (runner or Runner(timeout=SENDMAIL_TIMEOUT)).call([SENDMAIL, "-t", "-oi"], input=msg.as_string())
    if result.missing:
        return f"no mail sent: {SENDMAIL} is not installed (install an MTA, e.g. exim4 or msmtp-mta)"
    if result.returncode != 0:
        why = result.last_words
        return f"no mail sent: {SENDMAIL} failed ({why})"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The report goes to the configured URL and nowhere else: a redirect is an error."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise URLError(f"redirected ({code}) to {newurl}; not followed (set Rolling-Upgrade::Webhook to the final URL)")


def post_webhook(url: str, doc: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT) -> str | None:
    """POST ``doc`` as JSON to ``url`` (http/https only, no proxy, no redirect); a reason when it failed.

    ``timeout`` is one deadline for the whole POST, name lookup included (it runs in a child process
    killed at it); the reason names the URL without its credentials, path or query.
    """
    shown = redact(url)
    if not url.startswith(("http://", "https://")):
        return f"no webhook sent: {shown} is not an http(s) URL"

    def post() -> bytes:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        request = urllib.request.Request(url, data=json.dumps(doc, default=str).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "rolling-upgrade"})
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(4096)
        except (URLError, OSError, ValueError) as exc:
            return f"webhook {shown} failed: {getattr(exc, 'reason', exc)}".replace(url, shown).encode()
        return b""

    try:
        answer = call_in_child(post, timeout)
    except WorkFailed as exc:
        return f"webhook {shown} failed: {exc}".replace(url, shown)
    if answer is None:
        return f"webhook {shown} failed: no answer within {timeout:g}s"
    return answer.decode(errors="replace") or None


def deliver(summary: Summary, mail: str, mail_report: str, webhook: str) -> list[tuple[str, bool]]:
    """Mail (when ``mail_report`` says so) and post the report; what happened, each (line, a problem?)."""
    said: list[tuple[str, bool]] = []
    if mail and should_mail(mail_report, summary):
        problem = send_mail(mail_message(summary, mail))
        said.append((problem or f"report mailed to {mail}", problem is not None))
    if webhook:
        problem = post_webhook(webhook, summary.document())
        said.append((problem or f"report posted to {redact(webhook)}", problem is not None))
    return said


def redact(url: str) -> str:
    """``https://hooks.example.com/...``: the scheme and the host only (no user, password, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}/..." if parts.scheme else "(webhook)"
