"""Defaults from ~/.ec2kit/config.toml and ./ec2kit.toml, with their precedence and located errors."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_clean_error, run_inv

from ec2kit import config
from ec2kit.errors import ConfigError


def test_precedence_is_environment_then_project_then_user_then_built_in(tmp_path):
    home, project = tmp_path / "home", tmp_path / "proj"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text('type = "m5.large"\ndisk = 40\nregion = "eu-west-1"\n')
    (project / "ec2kit.toml").write_text('type = "g5.xlarge"\ntypes = ["g5.xlarge", "g6.xlarge"]\n')
    cfg = config.load(home, project, environ={"AWS_REGION": "us-east-2"})
    assert cfg.values["type"] == "g5.xlarge" and cfg.sources["type"] == f"{project / 'ec2kit.toml'}:1"
    assert cfg.values["disk"] == 40 and cfg.sources["disk"] == f"{home / 'config.toml'}:2"
    assert cfg.values["region"] == "us-east-2" and cfg.sources["region"] == "env AWS_REGION"
    assert cfg.values["types"] == ["g5.xlarge", "g6.xlarge"]
    assert cfg.values["login_user"] == "ubuntu" and cfg.sources["login_user"] == "built-in"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('typo = "x"\n', ["ec2kit.toml:1", "unknown key 'typo'"]),
        ('region = "us-east-1"\ndisk = "big"\n', ["ec2kit.toml:2", "disk = 'big'", "disk = 60"]),
        ("disk = -3\n", ["ec2kit.toml:1", "disk = -3"]),
        ('ssh_address = "sideways"\n', ["ssh_address", "public, private"]),
        ("types = [1, 2]\n", ["types", '["a", "b"]']),
        ('max_price = "cheap"\n', ["max_price", "0.5"]),
        ("type = \n", ["ec2kit.toml", "TOML"]),
    ],
)
def test_a_bad_project_file_is_a_located_error(tmp_path, text, needles):
    (tmp_path / "ec2kit.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path / "home", tmp_path, environ={})
    for needle in needles:
        assert needle in str(err.value)


def test_inv_config_shows_each_value_with_its_source(tmp_path):
    home, project = tmp_path / "home", tmp_path / "proj"
    project.mkdir()
    (project / "ec2kit.toml").write_text('type = "g5.xlarge"\n')
    result = run_inv("config", "--json", home=home, cwd=project, env={"EC2KIT_SSH_CIDR": "203.0.113.0/24"})
    assert result.code == 0, result
    shown = json.loads(result.out)
    assert shown["type"] == {"value": "g5.xlarge", "source": f"{project / 'ec2kit.toml'}:1"}
    assert shown["ssh_cidr"] == {"value": "203.0.113.0/24", "source": "env EC2KIT_SSH_CIDR"}
    (project / "ec2kit.toml").write_text("colour = 'blue'\n")
    assert_clean_error(run_inv("config", home=home, cwd=project), "ec2kit.toml:1", "colour")


@pytest.mark.sandbox
def test_launch_takes_its_type_and_disk_from_the_project_file(sandbox, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "ec2kit.toml").write_text('type = "t3.small"\ndisk = 20\n')
    home = sandbox.settings.home
    result = run_inv("launch", "cfg-1", "--json", "--no-wait", home=home, cwd=project)
    try:
        assert result.code == 0, result
        inst = json.loads(result.out)
        assert inst["type"] == "t3.small"
        vols = sandbox.ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst["id"]]}])["Volumes"]
        assert [v["Size"] for v in vols] == [20]
        flag = run_inv("launch", "cfg-2", "--json", "--no-wait", "--type", "t3.large", home=home, cwd=project)
        assert flag.code == 0 and json.loads(flag.out)["type"] == "t3.large"  # a flag beats the file
    finally:
        run_inv("terminate", "cfg-1", home=home)
        run_inv("terminate", "cfg-2", home=home)


def test_only_a_region_given_as_a_flag_is_asked_for_so_the_sandbox_honours_only_that(tmp_path, monkeypatch):
    from ec2kit.settings import Settings

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('region = "eu-west-1"\n')
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env(home=home).region == "us-east-2" and Settings.from_env(home=home).region_asked is None
    assert Settings.from_env(home=home, region="us-west-1").region_asked == "us-west-1"
