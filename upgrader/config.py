"""upgrader's settings: ``Rolling-Upgrade::...`` in APT's configuration syntax.

They live in apt.conf.d-style files, so the APT hooks and the tool read the
same place. :func:`load` reads them into an ``apt_pkg.Configuration`` of its
own; the global ``apt_pkg.config`` is never touched. Every setting, with its
default and meaning, is documented in ``apt.conf.d/50rolling-upgrade.conf``.
Bad values and unknown keys raise :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from upgrader import origins
from upgrader.runner import Runner
from upgrader.timewindow import Window, parse_blackout, parse_window

if TYPE_CHECKING:
    import apt_pkg

PREFIX = "Rolling-Upgrade"
UNATTENDED = "Unattended-Upgrade"  # unattended-upgrades' tree: Origins-Pattern and Package-Blacklist default to it
DEFAULT_DIR = Path("/etc/apt/apt.conf.d")
DEFAULT_MAIN = Path("/etc/apt/apt.conf")
MAIL_REPORTS = ("always", "only-on-error", "on-change")
# Automatic: what upgrades a node by itself. "unattended-upgrades" (Debian's timer, through the APT hooks) or
# "window" (the nightly window, the tool's own node upgrade; u-u's periodic run stands down: upgrader.automatic).
AUTOMATIC_UNATTENDED, AUTOMATIC_WINDOW = "unattended-upgrades", "window"
AUTOMATIC_CHOICES = (AUTOMATIC_UNATTENDED, AUTOMATIC_WINDOW)
# Where the default Remote-Shell keeps its shared ssh connections (one per peer, kept 60 s after last use).
SSH_CONTROL_DIR = "/run/upgrader/ssh"
# What apt.conf.d/51rolling-upgrade-unattended adds to unattended-upgrades' Package-Blacklist: it keeps u-u off the
# cluster stack, which rolling-upgrade upgrades itself (the stack stopped), so Package-Blacklist never inherits them.
UNATTENDED_HA_BLACKLIST = ("pacemaker", "corosync", "resource-agents", "crmsh", "pcs", "fence-agents", "sbd", "booth",
                           "dlm", "libqb", "libknet", "libnozzle", "libcrm", "libcib", "liblrmd", "libpe-",
                           "libpacemaker", "libstonithd", "libcorosync", "libcfg", "libcmap", "libcpg", "libquorum",
                           "libsam", "libvotequorum")


class ConfigError(ValueError):
    """A setting upgrader cannot use; the one-line message names it and says what to do."""


@dataclass(frozen=True)
class Config:
    """upgrader's settings; durations are in seconds. Each field's APT key is in its comment."""

    auto_standby: bool = False  # Auto-Standby
    remote_shell: tuple[str, ...] = ("ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o",
                                     "ServerAliveCountMax=3", "-o", "ControlMaster=auto", "-o",
                                     f"ControlPath={SSH_CONTROL_DIR}/%C", "-o", "ControlPersist=60",
                                     "{node}")  # Remote-Shell
    soak_time: int = 0  # Soak-Time
    settle_timeout: int = 300  # Settle-Timeout
    health_timeout: int = 60  # Health::Timeout
    health_retries: int = 3  # Health::Retries
    health_interval: int = 10  # Health::Interval
    health_patched: bool = True  # Health::Patched: level 4 after each move (no moved container on old code)
    health_outage_watch: bool = True  # Health::Outage-Watch: TCP connects to the moving resources during each move
    boot_grace: int = 900  # Boot-Grace
    reboot: bool = False  # Reboot
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")  # Reboot-Command
    stack_stop: tuple[str, ...] = ("systemctl", "stop", "pacemaker.service", "corosync.service")  # Stack::Stop
    stack_start: tuple[str, ...] = ("systemctl", "start", "corosync.service", "pacemaker.service")  # Stack::Start
    rejoin_timeout: int = 600  # Rejoin-Timeout
    history_file: Path = Path("/var/lib/upgrader/history.jsonl")  # History-File
    lock_expiry: int = 600  # Lock-Expiry
    mail: str = ""  # Mail
    mail_report: str = "on-change"  # MailReport
    metrics_dir: Path = Path("/var/lib/prometheus/node-exporter")  # Metrics-Dir: node_exporter's textfile dir
    webhook: str = ""  # Webhook
    windows: tuple[Window, ...] = ()  # Windows
    blackout: tuple[date, ...] = ()  # Blackout
    default_node_duration: int = 1800  # Default-Node-Duration
    hooks_query_timeout: int = 30  # Hooks::Query-Timeout
    apply_timeout: int = 0  # Apply-Timeout (0: derived from the plan, see apply_limit)
    health_commands: tuple[str, ...] = ()  # Health::Commands: programs a rolling-upgrade-check-cmd may run
    hooks_finish_wait: int = 7200  # Hooks::Finish-Wait
    random_delay: int = 0  # Random-Delay
    # Origins-Pattern, unsubstituted; not set: u-u's Allowed-Origins (as patterns) and Origins-Pattern; () takes all
    origins_pattern: tuple[str, ...] = ()
    # Package-Blacklist; not set: u-u's Package-Blacklist less UNATTENDED_HA_BLACKLIST
    package_blacklist: tuple[str, ...] = ()
    update: bool = False  # Update: apt-get update on every node before the run plans
    update_timeout: int = 300  # Update-Timeout
    stage: bool = True  # Stage: every node downloads the run's set before the first drain (false: at its turn)
    concurrency: int = 1  # Concurrency: up to this many nodes drained and upgraded at once (orchestrator.batches)
    automatic: str = AUTOMATIC_UNATTENDED  # Automatic: AUTOMATIC_CHOICES (set by 'rolling-upgrade automatic')

    def apply_limit(self, packages: int) -> int:
        """How long one node's upgrade may take: Apply-Timeout, or 10 min plus 1 min per package."""
        return self.apply_timeout or 600 + 60 * packages

    def remote_command(self, node: str) -> list[str]:
        """The Remote-Shell argv for ``node`` (``{node}`` replaced).

        ssh refuses to start when the directory of its ControlPath is missing
        (/run is empty after a boot), so a plain directory named there is
        created first (0700); one with ssh's tokens (``%d``, ``~``) is left to ssh.
        """
        from upgrader.pacemaker import names

        names.node_name(node)  # a name that could read as an option or syntax never reaches the remote shell
        argv = [arg.replace("{node}", node) for arg in self.remote_shell]
        if os.path.basename(argv[0]) == "ssh":
            host = next(i for i, arg in enumerate(self.remote_shell) if "{node}" in arg)
            if "--" not in argv[:host]:
                argv.insert(host, "--")  # ssh's options end before the host, whatever the host reads like
        for arg in argv:
            _, found, path = arg.partition("ControlPath=")
            directory = os.path.dirname(path)
            if found and directory.startswith("/") and not any(c in directory for c in "%~"):
                try:
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                except OSError:
                    pass  # ssh then says what is wrong with it, in the command's own error
        return argv


def tool_path() -> str:
    """This tool's absolute path; peers are expected to have it at the same place."""
    import shutil
    import sys

    argv0 = Path(sys.argv[0])
    if argv0.name == "rolling-upgrade" and argv0.exists():
        return str(argv0.absolute())
    found = shutil.which("rolling-upgrade", path=str(Path(sys.executable).parent)) or shutil.which("rolling-upgrade")
    if not found:
        raise RuntimeError("cannot find the rolling-upgrade command itself; reinstall it (make install)")
    return found


def node_runner(config: Config, node: str, local: str, base: Runner | None = None) -> Runner:
    """The runner for commands on ``node``: ``base`` itself on ``local`` (this node), ``base`` behind
    the Remote-Shell (:meth:`Config.remote_command`) on any other. ``base`` defaults to a plain Runner."""
    if base is None:
        base = Runner()
    if node == local:
        return base
    return Runner(env=base.env, prefix=(*base.prefix, *config.remote_command(node)), timeout=base.timeout,
                  remote=True)


def load(directory: Path | str = DEFAULT_DIR, main_file: Path | str | None = DEFAULT_MAIN) -> Config:
    """Read ``directory`` as APT does (sorted; ``*.conf`` or no extension), then ``main_file`` if it exists."""
    return from_apt(read(directory, main_file))


def read(directory: Path | str = DEFAULT_DIR, main_file: Path | str | None = DEFAULT_MAIN) -> apt_pkg.Configuration:
    """The whole APT configuration of ``directory`` and ``main_file`` (as :func:`load` reads them), unchecked:
    for what upgrader reads beside its own tree (APT::Periodic::Unattended-Upgrade)."""
    import apt_pkg

    if not Path(directory).is_dir():
        raise ConfigError(f"{directory}: not a directory (give APT's configuration directory, e.g. {DEFAULT_DIR})")
    settings = apt_pkg.Configuration()
    try:
        apt_pkg.read_config_dir(settings, str(directory))
        if main_file is not None and Path(main_file).is_file():
            apt_pkg.read_config_file(settings, str(main_file))
    except apt_pkg.Error as exc:
        message = " ".join(line.removeprefix("E:") for line in str(exc).splitlines())
        raise ConfigError(f"{message} (fix the APT syntax there)") from None
    return settings


def from_apt(settings: apt_pkg.Configuration) -> Config:
    """The :class:`Config` given by the ``Rolling-Upgrade::`` tree of an APT configuration.

    An empty (or unset) Origins-Pattern or Package-Blacklist is unattended-upgrades' own, from the same
    configuration (:func:`_unattended`).
    """
    _check_keys(settings, PREFIX)
    values: dict[str, Any] = {}
    for key, (name, parse) in _SCALARS.items():
        full = f"{PREFIX}::{key}"
        if settings.exists(full):
            values[name] = _parse(full, parse, settings.find(full))
    for key, (name, parse) in _LISTS.items():
        full = f"{PREFIX}::{key}"
        values[name] = tuple(_parse(full, parse, entry) for entry in settings.value_list(full))
    return Config(**(values | _unattended(settings, values)))


def _unattended(settings: apt_pkg.Configuration, values: dict[str, Any]) -> dict[str, Any]:
    """unattended-upgrades' choice where ours is empty: its Allowed-Origins entries (as patterns) and
    Origins-Pattern, in that order (as its get_allowed_origins lists them), and its Package-Blacklist less
    :data:`UNATTENDED_HA_BLACKLIST`. Checked as ours are; an error names u-u's key."""
    found: dict[str, Any] = {}
    if not values["origins_pattern"]:
        legacy, patterns = f"{UNATTENDED}::Allowed-Origins", f"{UNATTENDED}::Origins-Pattern"
        found["origins_pattern"] = (
            *(_parse(legacy, _allowed_origin, entry) for entry in settings.value_list(legacy)),
            *(_parse(patterns, _origins_pattern, entry) for entry in settings.value_list(patterns)))
    if not values["package_blacklist"]:
        blacklist = f"{UNATTENDED}::Package-Blacklist"
        found["package_blacklist"] = tuple(_parse(blacklist, _regex, entry) for entry in settings.value_list(blacklist)
                                           if entry not in UNATTENDED_HA_BLACKLIST)
    return found


def _parse(key: str, parse: Callable[[str], Any], raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _check_keys(settings: apt_pkg.Configuration, parent: str) -> None:
    """Refuse unknown keys, values on groups and lists, and lists or groups where one value belongs."""
    for full in settings.list(parent):
        canonical = _KNOWN.get(full[len(PREFIX) + 2 :].lower())
        if canonical is None:
            raise ConfigError(f"{full}: unknown setting ({_suggest(full)})")
        key, value = f"{PREFIX}::{canonical}", settings.find(full)
        if canonical in _GROUPS:
            if value:
                members = ", ".join(f"{PREFIX}::{k}" for k in _SCALARS if k.startswith(canonical + "::"))
                raise ConfigError(f"{key}: {value!r} cannot be set, it is a group (set {members})")
            _check_keys(settings, full)
        elif canonical in _LISTS and value:
            raise ConfigError(f"{key}: {value!r} is a single value (write a list: {key} {{ \"...\"; }};)")
        elif canonical in _SCALARS and settings.list(full):
            raise ConfigError(f"{key}: a list or group was given (give one value: {key} \"...\";)")


def _suggest(full: str) -> str:
    relative = full[len(PREFIX) + 2 :].lower()
    close = difflib.get_close_matches(relative, list(_KNOWN), n=1)
    if close:
        return f"did you mean {PREFIX}::{_KNOWN[close[0]]}?"
    return "see 50rolling-upgrade.conf for the settings there are"


_DURATION = re.compile(r"(\d+)\s*([smh]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_TRUE = {"1", "yes", "true", "with", "on", "enable"}
_FALSE = {"0", "no", "false", "without", "off", "disable"}


MAX_DURATION = 7 * 24 * 3600  # no wait of upgrader's is longer than a week


def _duration(raw: str) -> int:
    match = _DURATION.fullmatch(raw.strip().lower())
    if not match:
        raise ValueError(f"{raw!r} is not a duration (use seconds or 30s/15m/2h)")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > MAX_DURATION:
        raise ValueError(f"{raw!r} is too long (at most {MAX_DURATION // 86400} days, {MAX_DURATION}s)")
    return seconds


def _positive_duration(raw: str) -> int:
    seconds = _duration(raw)
    if not seconds:
        raise ValueError(f"{raw!r} is too short (use more than zero: seconds or 30s/15m/2h)")
    return seconds


MAX_RANDOM_DELAY = 3600


def _random_delay(raw: str) -> int:
    seconds = _duration(raw)
    if seconds > MAX_RANDOM_DELAY:
        raise ValueError(f"{raw!r} is too long (at most {MAX_RANDOM_DELAY // 60}m; 0 for no delay)")
    return seconds


def _count(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError(f"{raw!r} is not a whole number (use e.g. 3)")
    return int(raw)


def _concurrency(raw: str) -> int:
    """Concurrency: a whole number of nodes, at least 1 (more than the cluster has is fine: all but the node
    running the run, which always goes alone and last)."""
    if not (raw.strip().isascii() and raw.strip().isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise ValueError(f"{raw!r} is not a whole number of nodes (use e.g. 2; 1 drains one node at a time)")
    if int(raw) < 1:
        raise ValueError(f"{raw!r} is too small (at least 1: one node at a time)")
    return int(raw)


def _bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError(f"{raw!r} is not a boolean (use true or false)")


def _reboot(raw: str) -> bool:
    """Reboot: a boolean, or ``auto`` (the same as true: a node is rebooted only on a trigger, see the
    shipped 50rolling-upgrade.conf)."""
    if raw.strip().lower() == "auto":
        return True
    try:
        return _bool(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not auto, true or false") from None


_HOST_WORD = re.compile(r"(?:[A-Za-z0-9._-]+@)?\{node\}")


def _remote_shell(raw: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a command line ({exc}; quote as in a shell)") from None
    if not any("{node}" in arg for arg in argv):
        raise ValueError(f"{raw!r} lacks the {{node}} placeholder (use e.g. 'ssh -o BatchMode=yes {{node}}')")
    for arg in argv:
        if "{node}" in arg and not _HOST_WORD.fullmatch(arg):
            raise ValueError(f"{{node}} may only stand alone or as USER@{{node}}, not inside {arg!r} (a node name "
                             "must never become part of an option or a command)")
    if sum("{node}" in arg for arg in argv) > 1:
        raise ValueError(f"{raw!r} names {{node}} more than once (give it once, as the host)")
    return argv


def _command(raw: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a command line ({exc}; quote as in a shell)") from None
    if not argv:
        raise ValueError("the command is empty (give a command line, e.g. 'systemctl reboot')")
    return argv


def _origins_pattern(raw: str) -> str:
    """An origin pattern, checked (substituted with placeholder values; the run substitutes this machine's)."""
    origins.parse_pattern(raw, "Debian", "bookworm")
    return raw


def _allowed_origin(raw: str) -> str:
    """u-u's older ``ORIGIN:ARCHIVE`` entry, as the pattern it stands for."""
    return _origins_pattern(origins.legacy_pattern(raw))


def _regex(raw: str) -> str:
    try:
        return origins.check_regex(raw)
    except ValueError as exc:
        raise ValueError(f"{exc}; an entry is matched at the start of a package name, e.g. 'linux-image-'") from None


def _absolute_program(raw: str) -> str:
    if not raw.startswith("/") or any(c.isspace() for c in raw):
        raise ValueError(f"{raw!r} is not the absolute path of a program (list programs as e.g. /usr/bin/test)")
    return raw


def _absolute_path(raw: str) -> Path:
    if not raw.startswith("/"):
        raise ValueError(f"{raw!r} is not an absolute path (use e.g. {Config.history_file})")
    return Path(raw)


def _mail(raw: str) -> str:
    if len(raw.split()) > 1:
        raise ValueError(f"{raw!r} is not one address (use e.g. root or ops@example.com; empty for no mail)")
    return raw.strip()


def _mail_report(raw: str) -> str:
    if raw.strip() not in MAIL_REPORTS:
        raise ValueError(f"{raw!r} is not a report mode (use always, only-on-error or on-change)")
    return raw.strip()


def _automatic(raw: str) -> str:
    word = raw.strip().lower()
    if word not in AUTOMATIC_CHOICES:
        raise ValueError(f"{raw!r} is not a choice (use unattended-upgrades or window; 'rolling-upgrade automatic "
                         "CHOICE' sets it on every node)")
    return word


def _webhook(raw: str) -> str:
    url = raw.strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{raw!r} is not an http(s) URL (use e.g. https://hooks.example.com/upgrader; empty for none)"
            )
        if parts.username or parts.password:
            raise ValueError(f"{parts.scheme}://...@{parts.hostname}: a user or password in the URL would go into "
                             "logs; use a URL without them (a token the server checks in its path is redacted)")
    return url


# APT key (under Rolling-Upgrade::) -> Config field and parser of one value.
_SCALARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Auto-Standby": ("auto_standby", _bool),
    "Remote-Shell": ("remote_shell", _remote_shell),
    "Soak-Time": ("soak_time", _duration),
    "Settle-Timeout": ("settle_timeout", _positive_duration),
    "Health::Timeout": ("health_timeout", _positive_duration),
    "Health::Retries": ("health_retries", _count),
    "Health::Interval": ("health_interval", _duration),
    "Health::Patched": ("health_patched", _bool),
    "Health::Outage-Watch": ("health_outage_watch", _bool),
    "Boot-Grace": ("boot_grace", _duration),
    "Reboot": ("reboot", _reboot),
    "Reboot-Command": ("reboot_command", _command),
    "Stack::Stop": ("stack_stop", _command),
    "Stack::Start": ("stack_start", _command),
    "Rejoin-Timeout": ("rejoin_timeout", _positive_duration),
    "History-File": ("history_file", _absolute_path),
    "Lock-Expiry": ("lock_expiry", _positive_duration),
    "Mail": ("mail", _mail),
    "MailReport": ("mail_report", _mail_report),
    "Webhook": ("webhook", _webhook),
    "Metrics-Dir": ("metrics_dir", _absolute_path),
    "Default-Node-Duration": ("default_node_duration", _positive_duration),
    "Hooks::Query-Timeout": ("hooks_query_timeout", _positive_duration),
    "Apply-Timeout": ("apply_timeout", _duration),
    "Hooks::Finish-Wait": ("hooks_finish_wait", _positive_duration),
    "Random-Delay": ("random_delay", _random_delay),
    "Update": ("update", _bool),
    "Update-Timeout": ("update_timeout", _positive_duration),
    "Stage": ("stage", _bool),
    "Concurrency": ("concurrency", _concurrency),
    "Automatic": ("automatic", _automatic),
}
# APT list key -> Config field and parser of one entry.
_LISTS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Windows": ("windows", parse_window),
    "Blackout": ("blackout", parse_blackout),
    "Health::Commands": ("health_commands", _absolute_program),
    "Origins-Pattern": ("origins_pattern", _origins_pattern),
    "Package-Blacklist": ("package_blacklist", _regex),
}
_GROUPS = ("Health", "Hooks", "Stack")
KEYS = (*_SCALARS, *_LISTS)  # every setting under Rolling-Upgrade:: (the manual page lists them from here)
_KNOWN = {key.lower(): key for key in (*_SCALARS, *_LISTS, *_GROUPS)}
