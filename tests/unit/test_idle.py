"""Idle windows, actions and CPU thresholds (pure), and the watcher's install script (a pure string)."""

from __future__ import annotations

import pytest

from ec2kit.autostop import conf_text, install_script
from ec2kit.errors import ConfigError
from ec2kit.idle import AutostopSetting, check_action, check_cpu, format_window, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("45", 2700), (" 2M ", 120), ("1d", 86400)]
)
def test_idle_windows_read_as_durations(text, seconds):
    assert parse_window(text, minimum=60) == seconds


@pytest.mark.parametrize("text", ["off", "OFF", "none"])
def test_off_disarms(text):
    assert parse_window(text) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [("0", "zero"), ("0m", "zero"), ("-5m", "'-5m'"), ("abc", "'abc'"), ("", "duration"), ("1s", "shortest"), ("31d", "30 days")],
)
def test_bad_idle_windows_name_the_option_and_the_value(text, needle):
    with pytest.raises(ConfigError) as err:
        parse_window(text, option="--idle", minimum=120)
    assert "--idle" in str(err.value) and needle in str(err.value)


def test_off_is_refused_where_a_window_is_required():
    with pytest.raises(ConfigError):
        parse_window("off", allow_off=False)


@pytest.mark.parametrize("value", ["-1", "0", "101", "abc", "nan"])
def test_bad_cpu_thresholds_are_refused(value):
    with pytest.raises(ConfigError, match="--idle-cpu"):
        check_cpu(value)


def test_cpu_threshold_and_action_accept_plain_values():
    assert check_cpu("12.5%") == 12.5
    assert check_action("Terminate") == "terminate"
    with pytest.raises(ConfigError, match="stop or terminate"):
        check_action("hibernate")


def test_the_tag_round_trips_the_setting():
    setting = AutostopSetting(5400, "terminate", 20)
    assert setting.tag == "1h30m terminate"
    assert AutostopSetting.from_tag(setting.tag) == AutostopSetting(5400, "terminate")
    assert AutostopSetting.from_tag("off") == AutostopSetting(None)
    assert AutostopSetting.from_tag("garbage here") is None
    assert format_window(90) == "1m30s"


def test_the_install_script_writes_the_settings_and_arms_a_systemd_timer_as_root():
    script = install_script(AutostopSetting(1800, "stop", 10), every=60)
    assert "WINDOW=1800\nACTION=stop\nCPU=10\n" in conf_text(AutostopSetting(1800, "stop", 10), 60)
    assert "WINDOW=1800" in script and "EVERY=60" in script
    assert "systemctl enable --now ec2kit-autostop.timer" in script
    assert "OnUnitActiveSec=60" in script
    assert 'if [ "${EC2KIT_ONBOOT:-}" = sandbox ]' in script  # the sandbox runs the same script from its loop
    off = install_script(AutostopSetting(None), every=60)
    assert "WINDOW=0" in off and "systemctl disable --now ec2kit-autostop.timer" in off


def test_ec2kit_toml_gives_the_launch_default_and_off_overrides_it(tmp_path, monkeypatch):
    from ec2kit.api.options import CLI, idle_setting
    from ec2kit.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EC2KIT_IDLE_CHECK", raising=False)
    (tmp_path / "ec2kit.toml").write_text('idle = "45m"\nidle_action = "terminate"\nidle_cpu = 25\n')
    settings = Settings.from_env(home=tmp_path / "home")
    got = idle_setting(settings, idle=None, idle_action=None, idle_cpu=None, spot=False, spelling=CLI)
    assert got == AutostopSetting(2700, "terminate", 25.0)
    assert idle_setting(settings, idle="off", idle_action=None, idle_cpu=None, spot=False, spelling=CLI) is None
    with pytest.raises(ConfigError, match="at least 2m"):
        idle_setting(settings, idle="1m", idle_action=None, idle_cpu=None, spot=False, spelling=CLI)


def test_a_bad_idle_in_ec2kit_toml_names_the_file_and_line(tmp_path, monkeypatch):
    from ec2kit.settings import Settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ec2kit.toml").write_text('type = "t3.small"\nidle = "abc"\n')
    with pytest.raises(ConfigError) as err:
        Settings.from_env(home=tmp_path / "home")
    assert "ec2kit.toml:2" in str(err.value) and "'abc'" in str(err.value)
