"""The domain both faces call (``ec2kit.api.EC2``): its checks speak each face's language, its launch takes
the network and fallback options, ``--check`` is its plan, and sweeps are objects. Sandbox tests talk to
moto's EC2 server and real sshd hosts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from aws_helpers import count_calls

from ec2kit.api import EC2, LaunchCheck, Sweep
from ec2kit.errors import ConfigError

# -- host-free: checks before any AWS call --------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "said", "example"),
    [(True, "--disk 0: a disk is 1 to 16384 GB", "Example: --disk 60"), (False, "disk=0: a disk is 1 to 16384 GB", "disk=60")],
)
def test_a_bad_disk_is_named_the_way_the_caller_spelled_it(tmp_path, cli, said, example):
    ec2 = EC2(sandbox=True, home=tmp_path, cli=cli)
    with pytest.raises(ConfigError) as err:
        ec2.launch("x", disk=0)
    assert said in str(err.value) and example in str(err.value)
    assert not ec2.ctx.where.contacted  # refused before the cloud (or the sandbox) was even started


def test_fallback_options_without_spot_are_refused_in_each_faces_words(tmp_path):
    with pytest.raises(ConfigError, match=r"^--types and --on-demand-fallback .* add --spot"):
        EC2(sandbox=True, home=tmp_path, cli=True).launch("x", types="t3.small")
    with pytest.raises(ConfigError, match=r"^types and on_demand_fallback .* add spot=True"):
        EC2(sandbox=True, home=tmp_path).launch("x", on_demand_fallback=True)


def test_reserved_tags_are_refused_once_for_both_faces(tmp_path):
    for cli, name in ((True, "--tag 'Name'"), (False, "tag 'Name'")):
        with pytest.raises(ConfigError, match="is reserved") as err:
            EC2(sandbox=True, home=tmp_path, cli=cli).launch("x", tags={"Name": "other"})
        assert str(err.value).startswith(name)


def test_the_configured_defaults_fill_in_what_neither_face_gave(tmp_path, monkeypatch):
    from ec2kit.api.options import launch_options, run_options
    from ec2kit.settings import Settings

    monkeypatch.chdir(tmp_path)
    settings = Settings(home=tmp_path / "home")
    nothing = dict(image=None, type=None, disk=None, max_price=None, subnet=None, security_groups=None, instance_profile=None)
    assert launch_options(
        settings, spot=False, zone=None, tags=None, types=None, on_demand_fallback=False, open_ssh=False, **nothing
    )["type"] == ("t3.medium")
    assert run_options(settings, types=None, on_demand_fallback=False, vars=None, open_ssh=False, **nothing)["type"] == "m5.large"
    (tmp_path / "ec2kit.toml").write_text('type = "c5.large"\ndisk = 40\nsubnet = "training-a"\n')
    settings = Settings(home=tmp_path / "home")
    got = run_options(settings, types="c5.xlarge, c6i.large", on_demand_fallback=True, vars=None, open_ssh=False, **nothing)
    assert (got["type"], got["disk"], got["types"], got["subnet"]) == ("c5.large", 40, ["c5.xlarge", "c6i.large"], "training-a")


# -- on the sandbox --------------------------------------------------------------------------------


@pytest.fixture
def ec2(sandbox_reset):
    with EC2(home=sandbox_reset.settings.home, sandbox=True, quiet=True) as api:
        yield api


def test_a_launch_check_asks_create_fleet_with_dry_run_over_every_type_and_creates_nothing(ec2, sandbox_reset):
    fleets = count_calls(ec2.cloud, "CreateFleet")
    found = ec2.launch("api-check", type="t3.micro", spot=True, types=["t3.small"], on_demand_fallback=True, check=True)
    assert isinstance(found, LaunchCheck) and found.action == "create_fleet"
    assert [f["DryRun"] for f in fleets] == [True]
    pools = {o["InstanceType"] for c in fleets[0]["LaunchTemplateConfigs"] for o in c["Overrides"]}
    assert pools == {"t3.micro", "t3.small"}
    assert any(line.startswith("  t3.small in ") for line in found.lines)
    assert "then, only if no pool had spot capacity, an on-demand fleet over the same types" in found.lines
    assert sandbox_reset.ec2.describe_instances()["Reservations"] == []


def test_launch_from_python_takes_the_subnet_groups_and_instance_profile_of_the_command_line(ec2, sandbox_reset):
    aws = sandbox_reset.ec2
    vpc = aws.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.create_subnet(
        VpcId=vpc,
        CidrBlock="10.43.1.0/24",
        AvailabilityZone="us-east-1b",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "api-net"}]}],
    )["Subnet"]["SubnetId"]
    extra = aws.create_security_group(GroupName="api-extra", Description="extra", VpcId=vpc)["GroupId"]
    iam = sandbox_reset.info.client("iam")
    iam.create_role(RoleName="api-role", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="api-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="api-profile", RoleName="api-role")

    inst = ec2.launch(
        "api-net", type="t3.micro", subnet="api-net", security_groups="api-extra", instance_profile="api-profile", wait=False
    )
    raw = aws.describe_instances(InstanceIds=[inst.id])["Reservations"][0]["Instances"][0]
    assert raw["SubnetId"] == subnet and raw["VpcId"] == vpc
    assert extra in {g["GroupId"] for g in raw["SecurityGroups"]}
    assert raw["IamInstanceProfile"]["Arn"].endswith("/api-profile")
    ec2.terminate("api-net")


def script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.sh"
    path.write_text("#!/bin/bash\n" + textwrap.dedent(text))
    return str(path)


def test_a_sweep_from_python_is_one_fleet_call_and_a_sweep_object_pull_and_stop_run_accept(ec2, tmp_path):
    train = script(
        tmp_path,
        """\
        echo step,loss > "$EC2KIT_RESULTS/metrics.csv"
        echo "1,$LR" >> "$EC2KIT_RESULTS/metrics.csv"
        """,
    )
    fleets = count_calls(ec2.cloud, "CreateFleet")
    done = ec2.sweep(train, grid={"lr": [0.5, 0.25]}, parallel=2, type="t3.micro", name="api-sweep", results=tmp_path / "out")
    assert isinstance(done, Sweep) and done.state == "succeeded"
    assert len([f for f in fleets if not f.get("DryRun")]) == 1
    rows = done.rows()
    assert sorted((r.settings["lr"], r.state, r.metrics.get("loss")) for r in rows) == [
        ("0.25", "succeeded", 0.25),
        ("0.5", "succeeded", 0.5),
    ]
    assert (tmp_path / "out" / "api-sweep" / "summary.csv").is_file()
    assert "loss" in done.summary._show()[1] and len(done.summary) == 2
    assert "api-sweep" in ec2.sweeps().names and ec2.sweep_status("api-sweep").snapshot.state == "succeeded"
    assert isinstance(ec2.pull("api-sweep"), Sweep)  # a sweep's name: every run of it (none left to pull)
    assert isinstance(ec2.stop_run("api-sweep"), Sweep)
    assert ec2.run("api-sweep-01").state == "succeeded"
