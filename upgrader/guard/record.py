"""The hooks' slow paths: decide a run once, capture what it installs, record what it did.

Imported lazily by :mod:`upgrader.guard.hook` (only on the first call of a
run, or in Pre-Install-Pkgs and Post-Invoke).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from upgrader.guard import pkgs, store
from upgrader.syslog import syslog

RUN_INFO = "run.json"
PACKAGES = "packages.tsv"
RESULT = "result.json"
FINISHER = "finisher"


def decide_run(key: str, env_run_id: str) -> tuple[str, str]:
    """Judge the cluster for run ``key``, cache and return (verdict, reason)."""
    from upgrader import config
    from upgrader.guard.auto import is_unattended
    from upgrader.guard.decide import decide
    from upgrader.boot import grace_refusal
    from upgrader.runs import APT_RUN_PREFIX, RUN_ID_ENV
    from upgrader.pacemaker import names
    from upgrader.pacemaker.live import Cluster
    from upgrader.runner import Runner

    run_id = env_run_id or f"{APT_RUN_PREFIX}{key}"
    try:
        conf = config.load()
        names.run_id(run_id)
    except config.ConfigError as exc:
        return _verdict(key, False, f"refused: {exc}", run_id)
    except names.BadValue as exc:  # not a run id to give the journal either
        return _verdict(key, False, f"refused: {RUN_ID_ENV}: {exc}; unset it (rolling-upgrade sets it itself)")
    drain_within = None
    if not env_run_id and is_unattended(int(key.split("-")[0])):
        refusal = grace_refusal(conf.boot_grace, "unattended-upgrades")
        if refusal:
            return _verdict(key, False, refusal, run_id)
        drain_within = float(conf.settle_timeout) if conf.auto_standby else None
    from upgrader.guard.peer import ask_a_peer

    cluster = Cluster(Runner(timeout=conf.hooks_query_timeout))
    decision = decide(cluster, run_id, conf.lock_expiry, bool(env_run_id), drain_within,
                      ask_a_peer=lambda: ask_a_peer(conf, conf.hooks_query_timeout))
    if decision.allowed:
        info = {"key": key, "run_id": run_id, "node": decision.node, "decided": time.time(),
                "from_orchestrator": bool(env_run_id), "pid": int(key.split("-")[0]), "via": decision.via}
        try:
            _write_json(Path(store.run_dir(key)) / RUN_INFO, info)
            store.write_verdict(key, store.ALLOWED, decision.reason)
        except OSError as exc:  # /run full or not ours: no lock may stay behind a verdict nobody recorded
            if not env_run_id:
                _release(conf, cluster, decision, run_id)
            return _verdict(key, False, f"refused: cannot record this apt run's verdict ({exc.strerror or exc}: "
                                        f"{exc.filename or store.RUN_DIR}); the upgrade lock was released; free "
                                        "/run, then run apt again", run_id, decision.node)
        store.event(key, "pre-invoke", "lock-acquired", run_id)
        syslog(f"run {key}: {store.ALLOWED}: {decision.reason}", "user.notice", kind="apt", run_id=run_id,
               node=decision.node, phase="pre-invoke")
        return store.ALLOWED, decision.reason
    return _verdict(key, False, decision.reason, run_id, decision.node)


def _release(conf, cluster, decision, run_id: str) -> None:
    """Give back the lock this apt run just took (locally, or through the peer that was asked)."""
    from upgrader.guard.peer import ask_a_peer
    from upgrader.pacemaker.lock import LockError, UpgradeLock
    from upgrader.runner import CommandError

    where = cluster
    if decision.via:
        peer = ask_a_peer(conf, conf.hooks_query_timeout)
        if isinstance(peer, str):
            return
        where = peer.cluster
    try:
        UpgradeLock(where, run_id, decision.node).release()
    except (LockError, CommandError):
        pass


def _verdict(key: str, allowed: bool, reason: str, run_id: str | None = None,
             node: str | None = None) -> tuple[str, str]:
    """Record and say the verdict (a refusal in the journal, of ``run_id``); one that cannot be recorded (a
    full /run) is still returned and said."""
    verdict = store.ALLOWED if allowed else store.REFUSED
    try:
        store.write_verdict(key, verdict, reason)
    except OSError:
        pass
    syslog(f"run {key}: {verdict}: {reason}", "user.warning" if not allowed else "user.notice",
           kind="apt" if allowed else "refusal", run_id=run_id, node=node, phase="pre-invoke")
    return verdict, reason


def capture(key: str, text: str) -> int:
    """Pre-Install-Pkgs: append the packages this step changes to the run's capture."""
    changes = pkgs.parse(text)
    directory = Path(store.private_dir(store.run_dir(key)))
    fd = os.open(directory / PACKAGES, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as f:
        f.writelines(c.tsv() + "\n" for c in changes)
    store.event(key, "pre-install-pkgs", "captured", f"{len(changes)} packages")
    return 0


def captured(key: str) -> list[pkgs.PackageAction]:
    """Everything the run's Pre-Install-Pkgs calls announced, one entry per package."""
    try:
        lines = (Path(store.run_dir(key)) / PACKAGES).read_text().splitlines()
    except FileNotFoundError:
        return []
    return pkgs.merge(pkgs.PackageAction.from_tsv(line) for line in lines if line)


def record_result(key: str) -> dict:
    """The run's changes with the versions dpkg has now, and whether dpkg left anything broken."""
    from upgrader.runner import DPKG_QUERY_TIMEOUT, Runner

    runner = Runner(timeout=DPKG_QUERY_TIMEOUT)
    changes = captured(key)
    now: dict[str, tuple[str, str]] = {}
    if changes:
        listed = runner.call(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n",
                              *(c.name for c in changes)])
        for line in listed.stdout.splitlines():
            name, version, status = (line.split("\t") + ["", ""])[:3]
            now[name.split(":")[0]] = (version, status.strip())
    audit = runner.call(["dpkg", "--audit"])
    broken = [c.name for c in changes if c.action != "remove"
              and (now.get(c.name, ("", ""))[0] != c.new or now.get(c.name, ("", ""))[1] != "ii")]
    failed = bool(audit.stdout.strip()) or audit.returncode not in (0, 1) or bool(broken)
    result = {
        "key": key, "at": time.time(), "result": "dpkg-failed" if failed else "ok",
        "changes": [{"package": c.name, "old": c.old, "new": c.new, "action": c.action,
                     "now": now.get(c.name, (None, None))[0], "status": now.get(c.name, (None, None))[1]}
                    for c in changes],
        "broken": broken, "audit": audit.stdout.strip()[:2000],
    }
    _write_json(Path(store.run_dir(key)) / RESULT, result)
    return result


def read_json(key: str, name: str) -> dict | None:
    try:
        return json.loads((Path(store.run_dir(key)) / name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    store.private_dir(str(path.parent))
    store.atomic(str(path), json.dumps(data) + "\n")
