"""Journeys 1, 2, 3 and 5 end to end through the command line, on the sandbox.

Each `inv` call is a separate process talking to the sandbox's moto server
and to real sshd hosts, exactly as a user's shell would.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cli_helpers import assert_clean_error, run_inv

pytestmark = pytest.mark.usefixtures("sandbox")


@pytest.fixture
def home(sandbox):
    return sandbox.settings.home


@pytest.fixture
def launch(home):
    """``launch(NAME, *flags)``: inv launch --json; the instance is terminated after the test, pass or fail."""
    names: list[str] = []

    def do(name: str, *flags: str) -> dict:
        names.append(name)
        return inv_json(home, "launch", name, *flags)

    yield do
    listed = {i["name"] for i in inv_json(home, "instances")}
    for name in names:
        if name in listed:
            run_inv("terminate", name, home=home)


def inv_json(home, *args):
    result = run_inv(*args, "--json", home=home)
    assert result.code == 0, result
    return json.loads(result.out)


def ssh(home, name, command):
    result = run_inv("connect", name, "--command", command, home=home)
    assert result.code == 0, result
    return result.out


def test_launch_connect_freeze_relaunch_change_type_terminate(home, launch):
    inst = launch("j-base", "--disk", "16", "--type", "t3.small")
    assert inst["name"] == "j-base" and inst["state"] == "running" and inst["type"] == "t3.small"

    listed = inv_json(home, "instances")
    assert [i["id"] for i in listed if i["name"] == "j-base"] == [inst["id"]]

    assert "hello-from-base" in ssh(home, "j-base", "echo hello-from-base > ~/marker && cat ~/marker")

    image = inv_json(home, "freeze", "j-base")
    assert image["name"] == "j-base" and image["state"] == "available"
    assert any(i["name"] == "j-base" for i in inv_json(home, "images"))

    child = launch("j-child", "--image", "j-base")
    assert child["image_id"] == image["id"]
    assert "hello-from-base" in ssh(home, "j-child", "cat ~/marker")

    # change-type needs a stopped instance (moto would allow it while running; AWS does not)
    assert_clean_error(run_inv("change-type", "j-child", "t3.large", home=home), "stop")
    assert inv_json(home, "stop", "j-child")["state"] == "stopped"
    assert run_inv("change-type", "j-child", "t3.large", home=home).code == 0
    started = inv_json(home, "start", "j-child")
    assert started["type"] == "t3.large" and started["state"] == "running"
    assert "hello-from-base" in ssh(home, "j-child", "cat ~/marker")

    for name in ("j-child", "j-base"):
        assert inv_json(home, "terminate", name)["state"] in ("terminated", "shutting-down")
    assert not [i for i in inv_json(home, "instances") if i["name"] in ("j-base", "j-child")]


def test_ssh_config_lets_plain_ssh_reach_an_instance_by_name(home, launch, tmp_path):
    launch("j-cfg")
    cfg = tmp_path / "ssh_config"
    result = run_inv("ssh-config", "--path", str(cfg), home=home)
    assert result.code == 0, result
    assert "Host j-cfg" in cfg.read_text()
    out = subprocess.run(
        ["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "j-cfg", "echo via-ssh-config"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "via-ssh-config" in out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox volumes are loop devices, which need root")
def test_volume_snapshot_and_volume_from_snapshot_keep_the_data(home, launch):
    launch("j-vol1")
    vol = inv_json(home, "make-volume", "j-vol1", "--size", "1", "--name", "j-data")
    assert vol["attached_to"] and vol["size"] == 1
    ssh(home, "j-vol1", "echo dataset-v1 > /mnt/data/train.csv && sync")
    assert any(v["name"] == "j-data" for v in inv_json(home, "volumes"))

    snap = inv_json(home, "snapshot", "j-data", "--wait")
    assert snap["name"] == "j-data"
    assert any(s["id"] == snap["id"] for s in inv_json(home, "snapshots"))

    launch("j-vol2")
    vol2 = inv_json(home, "make-volume", "j-vol2", "--snapshot", "j-data", "--name", "j-data2")
    assert vol2["snapshot_id"] == snap["id"]
    assert "dataset-v1" in ssh(home, "j-vol2", "cat /mnt/data/train.csv")


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox volumes are loop devices, which need root")
def test_freeze_with_a_data_volume_attached_says_so_and_leaves_it_out_of_the_image(home, launch, sandbox):
    launch("j-frzvol")
    inv_json(home, "make-volume", "j-frzvol", "--size", "1", "--name", "j-frzvol-data")
    done = run_inv("freeze", "j-frzvol", "--json", home=home)
    assert done.code == 0, done
    assert "leaving the attached volume(s) at /dev/sdf out of the image" in done.err, done
    image = json.loads(done.out)
    mappings = sandbox.ec2.describe_images(ImageIds=[image["id"]])["Images"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mappings] == ["/dev/sda1"]  # AWS (and the sandbox) would map /dev/sdf too


def test_unknown_instance_name_suggests_close_names(home, launch):
    launch("j-trainer")
    assert_clean_error(run_inv("stop", "j-trainr", home=home), "j-trainr", "j-trainer")


def test_duplicate_name_on_launch_is_refused(home, launch):
    launch("j-dup")
    assert_clean_error(run_inv("launch", "j-dup", home=home), "j-dup", "already")


def test_unknown_image_and_bogus_type_are_refused(home):
    assert_clean_error(run_inv("launch", "j-bad", "--image", "no-such-image", home=home), "no-such-image")
    assert_clean_error(run_inv("launch", "j-bad", "--type", "m5.hyperlarge", home=home), "m5.hyperlarge")
    assert not [i for i in inv_json(home, "instances") if i["name"] == "j-bad"]


def test_unknown_volume_and_snapshot_names_are_clean_errors(home):
    assert_clean_error(run_inv("snapshot", "no-such-volume", home=home), "no-such-volume")
    assert_clean_error(run_inv("make-volume", "nobody", "--snapshot", "nothing", home=home), "nobody")


def test_missing_credentials_on_aws_is_one_paragraph(tmp_path):
    env = {
        "EC2KIT_SANDBOX": "0",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    assert_clean_error(run_inv("instances", home=tmp_path, env=env), "credentials")


def test_unknown_profile_is_a_clean_error(tmp_path):
    env = {"EC2KIT_SANDBOX": "0", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    assert_clean_error(run_inv("instances", "--profile", "nope", home=tmp_path, env=env), "nope")
