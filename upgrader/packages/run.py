"""Run this node's dist-upgrade through python-apt, with progress, and report it in plain words.

:func:`upgrade_node` marks ``dist-upgrade``, commits (download, then dpkg),
and returns an :class:`UpgradeReport`: what changed, whether it worked,
which package failed and dpkg's message, the guard's refusal when the APT
hook said no, the process holding dpkg's lock when another apt runs, and
what the upgrade leaves behind (reboot, processes on deleted libraries).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from upgrader import runkey
from upgrader.guard import store
from upgrader.guard.ahead import Ahead
from upgrader.runs import RUN_ID_ENV
from upgrader.packages.after import old_code, stale_processes
from upgrader.packages.pkgset import PackageSet, SetError, differences, held_back
from upgrader.packages.plan import Change, marked_changes, plan_node


class Progress(Protocol):
    """What the caller is told while the upgrade runs."""

    def download(self, done_bytes: int, total_bytes: int, done_items: int, total_items: int) -> None: ...
    def install(self, package: str, percent: float, status: str) -> None: ...
    def error(self, package: str, message: str) -> None: ...
    def waiting(self, text: str) -> None: ...


LOCK_WAIT = 120.0  # seconds to wait for another package manager to let go of dpkg's lock (apt's own default)


@dataclass
class UpgradeReport:
    """result: ok, nothing (up to date), refused (the guard), busy (another apt), download-failed or dpkg-failed."""

    result: str  # also (with a set) unavailable: the set's exact versions cannot be installed here
    message: str = ""
    changes: tuple[Change, ...] = ()
    failed: list[tuple[str, str]] = field(default_factory=list)  # (package, dpkg's message)
    reboot: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # left on old code: to restart (after.old_code)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "nothing")

    def document(self) -> dict[str, Any]:
        return dict(asdict(self), ok=self.ok)


def holder_text(pid: int) -> str:
    """``apt-get (pid 1234)`` for the process holding dpkg's frontend lock."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    return f"{cmd or '?'} (pid {pid})"


def wait_for_dpkg_lock(progress: Progress | None, limit: float,
                       paths: tuple[str, ...] = runkey.PACKAGE_LOCKS) -> int | None:
    """Wait (at most ``limit`` seconds) until no package manager holds dpkg's frontend lock or dpkg's own
    lock (a dpkg whose apt was killed may outlive it a moment); the holder's pid if one still does, else None.
    An apt run the guard refuses here (the node is drained for a rolling upgrade) ends within seconds;
    apt-daily's runs within a minute or two."""
    holder = runkey.package_lock_holder(paths)
    if not holder:
        return None
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    if progress:
        progress.waiting(f"waiting up to {limit:.0f}s for {holder_text(holder)} to let go of dpkg's lock")
    try:
        wait = Retrying(stop=stop_after_delay(limit), wait=wait_fixed(0.5), retry=retry_if_result(bool))
        wait(runkey.package_lock_holder, paths)
    except RetryError as exc:
        return exc.last_attempt.result()
    return None


INSTALL_POLL = 0.01  # seconds between python-apt's looks at the dpkg run it forked (its default 0.1)
MARK_ROUNDS = 6  # rounds of pinning candidates until the resolver's changes are the set's (a chain of deps)


def mark_set(cache: Any, pkgset: PackageSet) -> tuple[Change, ...]:
    """Mark the dist-upgrade that reaches exactly the set's versions here; its changes.

    Each package of the set older here gets the set's version as its candidate (even when a newer one
    is published now), each other package its installed version (never a downgrade); the resolver then
    marks the dist-upgrade. :class:`SetError` names a version of the set this node does not have or
    pins off (a hold), a resolver that cannot reach the set, or how its changes still differ from it.
    """
    import apt_pkg

    wanted = pkgset.versions

    def target(pkg: Any) -> str | None:
        """The version ``pkg`` stays at or goes to here: the set's when newer than what is installed."""
        want, have = wanted.get(pkg.name), pkg.installed.version if pkg.installed is not None else None
        if want is not None and (have is None or apt_pkg.version_compare(have, want) < 0):
            return want
        return have

    pins = {name: version for name in wanted if name in cache and (version := target(cache[name])) is not None
            and cache[name].installed is not None and version != cache[name].installed.version}
    try:
        for _ in range(MARK_ROUNDS):
            cache.clear()
            for name, version in pins.items():
                found = cache[name].versions.get(version)
                if found is None:
                    raise SetError(f"{name} {version} of the run's set is not available here (see 'apt-cache "
                                   f"policy {name}'); refresh its indexes (apt-get update) or leave this node for later")
                if name in wanted and version == wanted[name] and found.policy_priority < 0:
                    raise SetError(f"{name} {version} of the run's set is pinned off here (Pin-Priority "
                                   f"{found.policy_priority}: a hold, see 'rolling-upgrade holds')")
                cache[name].candidate = found
            cache.upgrade(dist_upgrade=True)
            more = {}
            for pkg in cache.get_changes():
                if pkg.marked_delete or pkg.candidate is None or pins.get(pkg.name) == pkg.candidate.version:
                    continue
                version = target(pkg)
                if version is not None:  # a new package outside the set cannot be pinned: differences says so
                    more[pkg.name] = version
            if not more:
                break
            pins.update(more)
    except SystemError as exc:  # the resolver gave up ("generated breaks"): nothing is marked that could run
        raise SetError(f"the run's set cannot be resolved here ({str(exc).strip()})") from None
    changes = marked_changes(cache)
    wrong = differences(pkgset, changes)
    if wrong:
        raise SetError(f"the run's set cannot be installed exactly here: {'; '.join(wrong[:3])}"
                       f"{' ...' if len(wrong) > 3 else ''}")
    return changes


def kept_here(cache: Any, pkgset: PackageSet, changes: tuple[Change, ...]) -> str:
    """A note for the report when the resolver keeps some of the set's packages here (else empty)."""
    wanted = pkgset.versions
    installed = {n: cache[n].installed.version for n in wanted if n in cache and cache[n].installed is not None}
    kept = held_back(pkgset, changes, installed)
    return f"; kept back here: {', '.join(kept[:3])}{' ...' if len(kept) > 3 else ''}" if kept else ""


def archives_lock() -> str:
    """apt's lock on its archive cache (``Dir::Cache::Archives``/lock): held while an apt downloads."""
    import apt_pkg

    return apt_pkg.config.find_dir("Dir::Cache::Archives") + "lock"


def stage_node(pkgset: PackageSet, progress: Progress | None = None, download: bool = True) -> UpgradeReport:
    """Download the set's archives for this node (no dpkg, no lock of dpkg's): staged, nothing (nothing
    of the set concerns this node), unavailable (a version of the set is missing here), download-failed.
    ``download`` false: only checked (the set can be marked here), staged without downloading anything."""
    import apt

    started = time.monotonic()
    cache = apt.Cache()
    try:
        changes = mark_set(cache, pkgset)
    except SetError as exc:
        return UpgradeReport("unavailable", str(exc), seconds=time.monotonic() - started)
    if not changes:
        return UpgradeReport("nothing", "nothing of the run's set to install here", seconds=time.monotonic() - started)
    if not download:
        return UpgradeReport("staged", f"{len(changes)} packages to download at this node's turn (not downloaded)"
                             f"{kept_here(cache, pkgset, changes)}", changes, seconds=time.monotonic() - started)
    fetch, _ = _progress_adapters(progress)
    deadline = time.monotonic() + LOCK_WAIT
    while True:  # another apt downloading here (unattended-upgrades, apt-daily) is waited for, bounded
        holder = wait_for_dpkg_lock(progress, max(0.0, deadline - time.monotonic()), (archives_lock(),))
        try:
            if holder:
                raise apt.cache.LockFailedException(f"held by {holder_text(holder)}")
            fetched = cache.fetch_archives(progress=fetch)
            break
        except (apt.cache.FetchFailedException, apt.cache.FetchCancelledException, SystemError) as exc:
            return UpgradeReport("download-failed", f"downloading failed: {str(exc).strip()}", changes,
                                 seconds=time.monotonic() - started)
        except apt.cache.LockFailedException as exc:
            if time.monotonic() >= deadline:
                return UpgradeReport("busy", f"another package manager held the archives' lock for {LOCK_WAIT:.0f}s "
                                     f"({exc}); try again once it ended", changes, seconds=time.monotonic() - started)
            time.sleep(1.0)
    if fetched is False:  # python-apt's "not everything was fetched" without an exception
        return UpgradeReport("download-failed", "downloading failed: the fetcher did not get every archive",
                             changes, seconds=time.monotonic() - started)
    return UpgradeReport("staged", f"{len(changes)} packages downloaded{kept_here(cache, pkgset, changes)}", changes,
                         seconds=time.monotonic() - started)


def upgrade_node(progress: Progress | None = None, run_id: str | None = None,
                 pkgset: PackageSet | None = None) -> UpgradeReport:
    """dist-upgrade this node now (to exactly ``pkgset``'s versions when given); ``run_id`` is passed to
    the guard hooks as UPGRADER_RUN_ID."""
    import apt

    started = time.monotonic()
    holder = wait_for_dpkg_lock(progress, LOCK_WAIT)
    if holder:
        return UpgradeReport("busy", f"another package manager is running: {holder_text(holder)} still held "
                                     f"dpkg's lock after {LOCK_WAIT:.0f}s; wait until it ends")
    # The orchestrator's run: the guard's first Pre-Invoke verdict decided here, while the cache opens
    # (upgrader.guard.ahead); waited for before dpkg starts, and before any other way out.
    ahead = Ahead(run_id) if run_id else None
    try:
        return _upgrade(apt.Cache(), progress, run_id, pkgset, started, ahead)
    finally:
        if ahead is not None:
            ahead.wait()


def _upgrade(cache: Any, progress: Progress | None, run_id: str | None, pkgset: PackageSet | None,
             started: float, ahead: Ahead | None) -> UpgradeReport:
    """The upgrade marked in ``cache`` and committed, once ``ahead``'s verdict (if any) is in."""
    import apt

    if pkgset is None:
        changes = plan_node(cache)
    else:
        try:
            changes = mark_set(cache, pkgset)
        except SetError as exc:
            return UpgradeReport("unavailable", str(exc), seconds=time.monotonic() - started)
    if not changes:
        return UpgradeReport("nothing", "up to date, nothing to upgrade")
    stack = [c.package for c in changes if c.ha_stack]
    if stack and run_id:
        from upgrader.hastack.control import stopped_by

        if not stopped_by(run_id):  # planned without them, or the stack came back: never upgrade it live
            return UpgradeReport("refused", f"the upgrade includes the cluster stack ({', '.join(stack)}) and the "
                                            "stack runs here: rolling-upgrade stops it around such an upgrade; run "
                                            "it again so that it plans for that", changes)
    fetch, install = _progress_adapters(progress)
    before = os.environ.get(RUN_ID_ENV)
    if run_id:
        os.environ[RUN_ID_ENV] = run_id
    try:
        if ahead is not None:
            ahead.wait()
        cache.commit(fetch, install)
        report = UpgradeReport("ok", f"{len(changes)} packages changed", changes)
    except apt.cache.LockFailedException as exc:
        holder = runkey.lock_holder()
        who = holder_text(holder) if holder else "another package manager"
        report = UpgradeReport("busy", f"{who} holds the dpkg lock ({exc}); wait until it ends", changes)
    except apt.cache.FetchFailedException as exc:
        report = UpgradeReport("download-failed", f"downloading failed: {exc}", changes)
    except SystemError as exc:
        report = _failed(changes, install.errors, str(exc))
    finally:
        if run_id and before is None:
            del os.environ[RUN_ID_ENV]
        elif run_id:
            os.environ[RUN_ID_ENV] = before
    left = old_code()
    report.reboot = list(left.reboot)
    report.stale = [str(p) for p in stale_processes()]
    report.services = list(left.services)
    report.seconds = time.monotonic() - started
    return report


def _failed(changes: tuple[Change, ...], errors: list[tuple[str, str]], raised: str) -> UpgradeReport:
    """A failed commit: the guard's refusal for our run if it refused, else dpkg's own words."""
    refusal = store.refusal_for(runkey.key_of(os.getpid()) or "")
    if refusal:
        return UpgradeReport("refused", refusal, changes)
    if errors:
        text = "; ".join(f"{pkg}: {msg.strip()}" for pkg, msg in errors)
        return UpgradeReport("dpkg-failed", f"dpkg failed: {text}", changes, list(errors))
    return UpgradeReport("dpkg-failed", f"the package run failed ({raised}); see /var/log/apt/term.log", changes)


def _progress_adapters(progress: Progress | None) -> tuple[Any, Any]:
    """python-apt progress objects that forward to ``progress`` and collect dpkg's errors."""
    import apt.progress.base as base

    class Fetch(base.AcquireProgress):
        def pulse(self, owner: Any) -> bool:
            if progress:
                progress.download(int(self.current_bytes), int(self.total_bytes),
                                  int(self.current_items), int(self.total_items))
            return True

    class Install(base.InstallProgress):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[tuple[str, str]] = []
            # python-apt notices dpkg's end at its next look: every 0.1 s by default, 0.05 s of a node's
            # drained time on average; a look costs a select and a waitpid.
            self.select_timeout = INSTALL_POLL

        def status_change(self, pkg: str, percent: float, status: str) -> None:
            if progress:
                progress.install(pkg, percent, status)

        def error(self, pkg: str, errormsg: str) -> None:
            self.errors.append((pkg, errormsg))
            if progress:
                progress.error(pkg, errormsg)

    return Fetch(), Install()


class RichProgress:
    """:class:`Progress` drawn with rich: a download bar and an install bar."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress as Bars, TextColumn

        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console)
        self.fetch = self.bars.add_task("download", total=None)
        self.setup = self.bars.add_task("install", total=100, visible=False)

    def __enter__(self) -> "RichProgress":
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def download(self, done_bytes: int, total_bytes: int, done_items: int, total_items: int) -> None:
        self.bars.update(self.fetch, completed=done_bytes, total=total_bytes or None,
                         description=f"download {done_items}/{total_items}")

    def install(self, package: str, percent: float, status: str) -> None:
        self.bars.update(self.setup, completed=percent, visible=True, description=status)

    def error(self, package: str, message: str) -> None:
        self.bars.console.print(f"[red]{package}[/]: {message.strip()}")

    def waiting(self, text: str) -> None:
        self.bars.console.print(f"[yellow]{text}[/]")
