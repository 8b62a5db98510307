"""Reading Rolling-Upgrade:: settings from apt.conf.d-style files."""

import re
import subprocess
import sys
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import apt_pkg
import pytest

from upgrader.config import Config, ConfigError, load
from upgrader.pacemaker.names import BadValue

SHIPPED = Path(__file__).resolve().parents[2] / "apt.conf.d" / "50rolling-upgrade.conf"
ALL_KEYS = {
    "Auto-Standby", "Remote-Shell", "Soak-Time", "Settle-Timeout", "Health::Timeout", "Health::Retries",
    "Health::Interval", "Boot-Grace", "Reboot", "History-File", "Lock-Expiry", "Mail", "MailReport",
    "Webhook", "Windows", "Blackout", "Default-Node-Duration", "Hooks::Query-Timeout", "Hooks::Finish-Wait",
    "Random-Delay", "Reboot-Command", "Stack::Stop", "Stack::Start", "Rejoin-Timeout", "Apply-Timeout",
    "Health::Commands", "Health::Patched", "Health::Outage-Watch", "Metrics-Dir", "Origins-Pattern", "Package-Blacklist", "Update",
    "Update-Timeout", "Stage", "Concurrency", "Automatic",
}  # fmt: skip


def read(tmp_path: Path, text: str, name: str = "50rolling-upgrade.conf") -> Config:
    directory = tmp_path / "apt.conf.d"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return load(directory, main_file=None)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    config = read(tmp_path, 'Other::Setting "1";\n')
    assert config == Config()
    assert config.remote_shell == ("ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o",
                                   "ServerAliveCountMax=3", "-o", "ControlMaster=auto", "-o",
                                   "ControlPath=/run/upgrader/ssh/%C", "-o", "ControlPersist=60", "{node}")
    assert config.reboot_command == ("systemctl", "reboot") and config.rejoin_timeout == 600
    assert config.stack_stop == ("systemctl", "stop", "pacemaker.service", "corosync.service")
    assert config.stack_start == ("systemctl", "start", "corosync.service", "pacemaker.service")
    assert (config.soak_time, config.settle_timeout, config.health_timeout) == (0, 300, 60)
    assert (config.boot_grace, config.lock_expiry, config.default_node_duration) == (900, 600, 1800)
    assert config.auto_standby is False and config.reboot is False
    assert config.history_file == Path("/var/lib/upgrader/history.jsonl")
    assert (config.mail, config.mail_report, config.webhook) == ("", "on-change", "")
    assert (config.windows, config.blackout) == ((), ())


def test_every_key_parsed(tmp_path: Path) -> None:
    config = read(
        tmp_path,
        """
        Rolling-Upgrade {
          Auto-Standby "yes";
          Remote-Shell "ssh -p 2222 -o 'ProxyJump=bastion host' root@{node}";
          Soak-Time "15m";
          Settle-Timeout "2h";
          Health { Timeout "90s"; Retries "5"; Interval "0"; };
          Boot-Grace "1200";
          Reboot "true";
          History-File "/srv/upgrader/history.jsonl";
          Lock-Expiry "30m";
          Mail "ops@example.com";
          MailReport "only-on-error";
          Webhook "https://hooks.example.com/upgrader";
          Windows { "Mon-Fri 02:00-05:00 Europe/Berlin"; "Sat,Sun 01:00-06:00 UTC"; };
          Blackout { "2026-12-24"; "2026-12-31"; };
          Default-Node-Duration "45m";
          Reboot-Command "/sbin/shutdown -r now";
          Stack { Stop "crm cluster stop"; Start "crm cluster start"; };
          Rejoin-Timeout "20m";
        };
        """,
    )
    assert config.auto_standby is True and config.reboot is True
    assert config.remote_shell == ("ssh", "-p", "2222", "-o", "ProxyJump=bastion host", "root@{node}")
    assert config.remote_command("n2") == ["ssh", "-p", "2222", "-o", "ProxyJump=bastion host", "--", "root@n2"]
    assert (config.soak_time, config.settle_timeout, config.boot_grace, config.lock_expiry) == (900, 7200, 1200, 1800)
    assert (config.health_timeout, config.health_retries, config.health_interval) == (90, 5, 0)
    assert config.history_file == Path("/srv/upgrader/history.jsonl")
    assert (config.mail, config.mail_report) == ("ops@example.com", "only-on-error")
    assert config.webhook == "https://hooks.example.com/upgrader"
    assert [str(w) for w in config.windows] == ["Mon,Tue,Wed,Thu,Fri 02:00-05:00 Europe/Berlin", "Sat,Sun 01:00-06:00 UTC"]
    assert config.windows[0].zone == ZoneInfo("Europe/Berlin") and config.windows[0].start == time(2)
    assert config.blackout == (date(2026, 12, 24), date(2026, 12, 31))
    assert config.default_node_duration == 2700
    assert config.reboot_command == ("/sbin/shutdown", "-r", "now") and config.rejoin_timeout == 1200
    assert (config.stack_stop, config.stack_start) == (("crm", "cluster", "stop"), ("crm", "cluster", "start"))


@pytest.mark.parametrize("raw, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), (" 2H ", 7200), ("0", 0)])
def test_durations(tmp_path: Path, raw: str, seconds: int) -> None:
    assert read(tmp_path, f'Rolling-Upgrade::Soak-Time "{raw}";').soak_time == seconds


@pytest.mark.parametrize("raw, value", [("true", True), ("Yes", True), ("on", True), ("1", True), ("false", False), ("no", False), ("off", False), ("0", False), ("auto", True), ("AUTO", True)])
def test_booleans(tmp_path: Path, raw: str, value: bool) -> None:
    assert read(tmp_path, f'Rolling-Upgrade::Reboot "{raw}";').reboot is value


@pytest.mark.parametrize("raw, value", [("true", True), ("false", False), ("no", False), ("1", True)])
def test_stage_is_a_boolean_and_on_by_default(tmp_path: Path, raw: str, value: bool) -> None:
    assert Config().stage is True and read(tmp_path, 'Other::Setting "1";').stage is True
    assert read(tmp_path, f'Rolling-Upgrade::Stage "{raw}";').stage is value
    assert error(tmp_path, 'Rolling-Upgrade::Stage "later";') == (
        "Rolling-Upgrade::Stage: 'later' is not a boolean (use true or false)")


def test_window_without_zone_takes_the_system_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    config = read(tmp_path, 'Rolling-Upgrade::Windows { "Sat 01:00-06:00"; };')
    assert config.windows[0].zone == ZoneInfo("America/Chicago")


def test_keys_are_case_insensitive_as_in_apt(tmp_path: Path) -> None:
    assert read(tmp_path, 'rolling-upgrade::soak-time "5m";\nROLLING-UPGRADE::HEALTH::RETRIES "1";').soak_time == 300


@pytest.mark.parametrize(
    "line, message",
    [
        ('Rolling-Upgrade::Soak-Time "ten";', "Rolling-Upgrade::Soak-Time: 'ten' is not a duration (use seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Soak-Time "-5";', "Rolling-Upgrade::Soak-Time: '-5' is not a duration (use seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Boot-Grace "1d";', "Rolling-Upgrade::Boot-Grace: '1d' is not a duration (use seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Health::Interval "";', "Rolling-Upgrade::Health::Interval: '' is not a duration (use seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Settle-Timeout "0";', "Rolling-Upgrade::Settle-Timeout: '0' is too short (use more than zero: seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Health::Timeout "0s";', "Rolling-Upgrade::Health::Timeout: '0s' is too short (use more than zero: seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Lock-Expiry "0";', "Rolling-Upgrade::Lock-Expiry: '0' is too short (use more than zero: seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Default-Node-Duration "0m";', "Rolling-Upgrade::Default-Node-Duration: '0m' is too short (use more than zero: seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Reboot-Command "";', "Rolling-Upgrade::Reboot-Command: the command is empty (give a command line, e.g. 'systemctl reboot')"),
        ("Rolling-Upgrade::Stack::Stop \"sh -c 'x\";", "Rolling-Upgrade::Stack::Stop: \"sh -c 'x\" is not a command line (No closing quotation; quote as in a shell)"),
        ('Rolling-Upgrade::Stack "on";', "Rolling-Upgrade::Stack: 'on' cannot be set, it is a group (set Rolling-Upgrade::Stack::Stop, Rolling-Upgrade::Stack::Start)"),
        ('Rolling-Upgrade::Rejoin-Timeout "0";', "Rolling-Upgrade::Rejoin-Timeout: '0' is too short (use more than zero: seconds or 30s/15m/2h)"),
        ('Rolling-Upgrade::Health::Retries "three";', "Rolling-Upgrade::Health::Retries: 'three' is not a whole number (use e.g. 3)"),
        ('Rolling-Upgrade::Auto-Standby "maybe";', "Rolling-Upgrade::Auto-Standby: 'maybe' is not a boolean (use true or false)"),
        ('Rolling-Upgrade::Reboot "";', "Rolling-Upgrade::Reboot: '' is not auto, true or false"),
        ('Rolling-Upgrade::Remote-Shell "ssh root@host";', "Rolling-Upgrade::Remote-Shell: 'ssh root@host' lacks the {node} placeholder (use e.g. 'ssh -o BatchMode=yes {node}')"),
        ("Rolling-Upgrade::Remote-Shell \"ssh 'x {node}\";", "Rolling-Upgrade::Remote-Shell: \"ssh 'x {node}\" is not a command line (No closing quotation; quote as in a shell)"),
        ("Rolling-Upgrade::Remote-Shell \"ssh -o 'ProxyCommand=nc {node} 22' {node}\";", "Rolling-Upgrade::Remote-Shell: {node} may only stand alone or as USER@{node}, not inside 'ProxyCommand=nc {node} 22' (a node name must never become part of an option or a command)"),
        ('Rolling-Upgrade::Remote-Shell "ssh -o=x{node}";', "Rolling-Upgrade::Remote-Shell: {node} may only stand alone or as USER@{node}, not inside '-o=x{node}' (a node name must never become part of an option or a command)"),
        ('Rolling-Upgrade::Remote-Shell "ssh {node} {node}";', "Rolling-Upgrade::Remote-Shell: 'ssh {node} {node}' names {node} more than once (give it once, as the host)"),
        ('Rolling-Upgrade::History-File "history.jsonl";', "Rolling-Upgrade::History-File: 'history.jsonl' is not an absolute path (use e.g. /var/lib/upgrader/history.jsonl)"),
        ('Rolling-Upgrade::Mail "root ops";', "Rolling-Upgrade::Mail: 'root ops' is not one address (use e.g. root or ops@example.com; empty for no mail)"),
        ('Rolling-Upgrade::MailReport "sometimes";', "Rolling-Upgrade::MailReport: 'sometimes' is not a report mode (use always, only-on-error or on-change)"),
        ('Rolling-Upgrade::Webhook "ftp://example.com/x";', "Rolling-Upgrade::Webhook: 'ftp://example.com/x' is not an http(s) URL (use e.g. https://hooks.example.com/upgrader; empty for none)"),
        ('Rolling-Upgrade::Windows { "Mon-Fri 02:00-05:00"; "Mon-Fry 22:00-04:00"; };', "Rolling-Upgrade::Windows: 'Fry' is not a day in 'Mon-Fry 22:00-04:00' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun; ranges like Mon-Fri)"),
        ('Rolling-Upgrade::Windows { "Sat 01:00-06:00 Europe/Berln"; };', "Rolling-Upgrade::Windows: 'Europe/Berln' is not a time zone in 'Sat 01:00-06:00 Europe/Berln' (use a name from /usr/share/zoneinfo, e.g. Europe/Berlin)"),
        ('Rolling-Upgrade::Blackout { "24.12.2026"; };', "Rolling-Upgrade::Blackout: '24.12.2026' is not a date (use YYYY-MM-DD, e.g. 2026-12-24)"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, message: str) -> None:
    assert error(tmp_path, line) == message


@pytest.mark.parametrize(
    "line, message",
    [
        ('Rolling-Upgrade::Sok-Time "60";', "Rolling-Upgrade::Sok-Time: unknown setting (did you mean Rolling-Upgrade::Soak-Time?)"),
        ('Rolling-Upgrade::Health::Timout "60";', "Rolling-Upgrade::Health::Timout: unknown setting (did you mean Rolling-Upgrade::Health::Timeout?)"),
        ('Rolling-Upgrade::Frobnicate "1";', "Rolling-Upgrade::Frobnicate: unknown setting (see 50rolling-upgrade.conf for the settings there are)"),
        ('Rolling-Upgrade::Mail { "a"; "b"; };', 'Rolling-Upgrade::Mail: a list or group was given (give one value: Rolling-Upgrade::Mail "...";)'),
        ('Rolling-Upgrade::Windows "Sat 01:00-06:00";', "Rolling-Upgrade::Windows: 'Sat 01:00-06:00' is a single value (write a list: Rolling-Upgrade::Windows { \"...\"; };)"),
        ('Rolling-Upgrade::Health "60";', "Rolling-Upgrade::Health: '60' cannot be set, it is a group (set Rolling-Upgrade::Health::Timeout, Rolling-Upgrade::Health::Retries, Rolling-Upgrade::Health::Interval, Rolling-Upgrade::Health::Patched, Rolling-Upgrade::Health::Outage-Watch)"),
    ],
)
def test_unknown_keys_and_wrong_shapes(tmp_path: Path, line: str, message: str) -> None:
    assert error(tmp_path, line) == message


def test_apt_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, 'Rolling-Upgrade::Soak-Time "60";\nRolling-Upgrade::Reboot "true"\n')
    assert message.startswith("Syntax error ")
    assert f"{tmp_path}/apt.conf.d/50rolling-upgrade.conf:" in message
    assert message.endswith("(fix the APT syntax there)")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "nowhere", main_file=None)
    assert str(caught.value) == f"{tmp_path}/nowhere: not a directory (give APT's configuration directory, e.g. /etc/apt/apt.conf.d)"


def test_files_are_read_as_apt_reads_them(tmp_path: Path) -> None:
    directory = tmp_path / "apt.conf.d"
    directory.mkdir()
    (directory / "50rolling-upgrade.conf").write_text(
        'Rolling-Upgrade::Soak-Time "1m";\nRolling-Upgrade::Blackout { "2026-12-24"; };\n'
        'Rolling-Upgrade::Windows { "Sat 01:00-06:00 UTC"; };\n'
    )
    # Later files override scalars and add to lists; #clear empties a list.
    (directory / "60local").write_text(
        'Rolling-Upgrade::Soak-Time "2m";\nRolling-Upgrade::Blackout { "2026-12-31"; };\n'
        "#clear Rolling-Upgrade::Windows;\nRolling-Upgrade::Windows { \"Sun 01:00-06:00 UTC\"; };\n"
    )
    # APT ignores these names; so must we.
    (directory / "70old.conf.disabled").write_text('Rolling-Upgrade::Soak-Time "3m";\n')
    (directory / "70old.conf~").write_text('Rolling-Upgrade::Soak-Time "4m";\n')
    main = tmp_path / "apt.conf"
    main.write_text('Rolling-Upgrade::Lock-Expiry "5m";\n')
    config = load(directory, main_file=main)
    assert config.soak_time == 120
    assert config.blackout == (date(2026, 12, 24), date(2026, 12, 31))
    assert [str(w) for w in config.windows] == ["Sun 01:00-06:00 UTC"]
    assert config.lock_expiry == 300
    assert load(directory, main_file=tmp_path / "absent.conf").lock_expiry == 600


def test_reading_leaves_the_global_apt_config_alone(tmp_path: Path) -> None:
    before = apt_pkg.config.dump()
    read(tmp_path, 'Rolling-Upgrade::Soak-Time "60";\nDPkg::Pre-Invoke { "/bin/true"; };\n')
    assert apt_pkg.config.dump() == before
    assert not apt_pkg.config.exists("Rolling-Upgrade::Soak-Time")


def test_importing_config_does_not_import_apt_pkg() -> None:
    code = "import sys, upgrader.config; print('apt_pkg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_shipped_file_sets_nothing_and_documents_every_key(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    assert read(tmp_path, text) == Config()
    settings = re.findall(r"^// (Rolling-Upgrade::.*;)$", text, flags=re.MULTILINE)
    assert {re.match(r"Rolling-Upgrade::([\w:-]+)", line)[1] for line in settings} == ALL_KEYS
    # Uncommented, every line is valid and shows the default (the lists show examples).
    config = read(tmp_path, "\n".join(settings))
    assert config == Config(windows=config.windows, blackout=config.blackout)
    assert len(config.windows) == 2 and len(config.blackout) == 2


def test_remote_command_creates_the_control_path_directory(tmp_path: Path) -> None:
    control = tmp_path / "run" / "ssh"
    config = read(tmp_path, f'Rolling-Upgrade::Remote-Shell "ssh -o ControlMaster=auto -o ControlPath={control}/%C '
                            f'-oControlPersist=60 {{node}}";')
    assert config.remote_command("n2") == ["ssh", "-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C",
                                           "-oControlPersist=60", "--", "n2"]
    assert control.is_dir() and control.stat().st_mode & 0o777 == 0o700


def test_remote_command_leaves_ssh_tokens_and_other_shells_alone(tmp_path: Path) -> None:
    tokens = read(tmp_path, f'Rolling-Upgrade::Remote-Shell "ssh -o ControlPath={tmp_path}/%d/cm-%C {{node}}";')
    assert tokens.remote_command("n3")[-1] == "n3"
    assert not (tmp_path / "%d").exists()  # ssh expands %d itself; not upgrader's to create
    other = read(tmp_path, 'Rolling-Upgrade::Remote-Shell "lxc-attach -n {node} --";')
    assert other.remote_command("n3") == ["lxc-attach", "-n", "n3", "--"]
    assert [p.name for p in tmp_path.iterdir()] == ["apt.conf.d"]


@pytest.mark.parametrize("name", ["-oProxyCommand=touch /tmp/PWNED", "node1;id", "-p2", "a b", ""])
def test_a_node_name_that_could_read_as_an_option_never_reaches_the_remote_shell(tmp_path: Path, name: str) -> None:
    config = read(tmp_path, 'Rolling-Upgrade::Remote-Shell "ssh -o BatchMode=yes {node}";')
    with pytest.raises(BadValue, match="invalid node name"):
        config.remote_command(name)


def test_ssh_options_end_before_the_host_and_other_shells_are_left_as_written(tmp_path: Path) -> None:
    ssh = read(tmp_path, 'Rolling-Upgrade::Remote-Shell "/usr/bin/ssh -o BatchMode=yes root@{node}";')
    assert ssh.remote_command("n2") == ["/usr/bin/ssh", "-o", "BatchMode=yes", "--", "root@n2"]
    ended = read(tmp_path, 'Rolling-Upgrade::Remote-Shell "ssh -o BatchMode=yes -- {node}";')
    assert ended.remote_command("n2") == ["ssh", "-o", "BatchMode=yes", "--", "n2"]  # not twice
    assert Config().remote_command("n2")[-2:] == ["--", "n2"]  # the default Remote-Shell


@pytest.mark.parametrize("key", ["Health::Timeout", "Settle-Timeout", "Apply-Timeout", "Lock-Expiry"])
def test_a_duration_beyond_a_week_is_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    assert error(tmp_path, f'Rolling-Upgrade::{key} "3000000h";') == (
        f"Rolling-Upgrade::{key}: '3000000h' is too long (at most 7 days, 604800s)")


def test_the_apply_timeout_is_derived_from_the_plan_unless_set(tmp_path: Path) -> None:
    assert Config().apply_limit(135) == 600 + 60 * 135
    assert read(tmp_path, 'Rolling-Upgrade::Apply-Timeout "2h";').apply_limit(135) == 7200


def test_the_check_commands_a_node_allows_are_absolute_programs(tmp_path: Path) -> None:
    got = read(tmp_path, 'Rolling-Upgrade::Health::Commands { "/usr/bin/test"; "/usr/bin/curl"; };')
    assert got.health_commands == ("/usr/bin/test", "/usr/bin/curl") and Config().health_commands == ()
    assert error(tmp_path, 'Rolling-Upgrade::Health::Commands { "curl"; };') == (
        "Rolling-Upgrade::Health::Commands: 'curl' is not the absolute path of a program (list programs as e.g. "
        "/usr/bin/test)")


def test_reboot_takes_auto_true_or_false_and_names_the_key_otherwise(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Rolling-Upgrade::Reboot: 'sometimes' is not auto, true or false"):
        read(tmp_path, 'Rolling-Upgrade::Reboot "sometimes";')


def test_the_outage_watch_is_on_unless_turned_off(tmp_path: Path) -> None:
    assert Config().health_outage_watch is True
    assert read(tmp_path, 'Rolling-Upgrade::Health::Outage-Watch "no";').health_outage_watch is False
