"""Real AWS on the first try, on the sandbox: SSH open to your address only (and kept so when it
changes), subnets and extra groups, instance profiles, image aliases, IMDSv2.

SSH is gated by security groups here (``enforce_ssh_rules``), as on AWS: a launch that did not
admit this machine's public address could not be reached.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, run_inv

from ec2kit import sandbox as sb
from ec2kit.aws.models import SECURITY_GROUP
from ec2kit.context import Context
from ec2kit.errors import ConfigError, NotFound, RemoteError
from ec2kit.sandbox.moto.images import UBUNTU_AMI_ID
from ec2kit.spotrun import SpotRunOptions, spot_run

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IP = "198.51.100.7"


@pytest.fixture
def aws(sandbox_reset):
    """A clean sandbox account that gates SSH by security groups; knobs and ec2kit's caches restored after."""
    sb.enforce_ssh_rules(sandbox_reset.info)
    home = sandbox_reset.settings.home
    forget_caches(home)
    yield sandbox_reset
    sb.enforce_ssh_rules(sandbox_reset.info, False)
    sb.set_caller_ip(sandbox_reset.info, DEFAULT_IP)
    forget_caches(home)


def forget_caches(home: Path) -> None:
    for name in ("caller-ip.json", "ssh-access.json"):
        (home / name).unlink(missing_ok=True)


def age_caller_cache(home: Path, seconds: float = 600) -> None:
    """Make ec2kit's cached public address look ``seconds`` old (as after a lunch break)."""
    path = home / "caller-ip.json"
    data = json.loads(path.read_text())
    for entry in data.values():
        entry["at"] -= seconds
    path.write_text(json.dumps(data))


def inv(sandbox, *args: str, ok: bool = True, **kwargs):
    result = run_inv(*args, home=sandbox.settings.home, **kwargs)
    if ok:
        assert result.code == 0, result
    return result


def describe(sandbox, instance_id: str) -> dict:
    return sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def ec2kit_group(sandbox, vpc_id: str | None = None) -> dict:
    flt = [{"Name": "group-name", "Values": [SECURITY_GROUP]}]
    if vpc_id:
        flt.append({"Name": "vpc-id", "Values": [vpc_id]})
    (group,) = sandbox.ec2.describe_security_groups(Filters=flt)["SecurityGroups"]
    return group


def ssh_sources(group: dict) -> dict[str, str]:
    """CIDR (or source group) -> description of every tcp/22 rule."""
    out = {}
    for perm in group["IpPermissions"]:
        if perm.get("FromPort") == 22:
            out.update({r["CidrIp"]: r.get("Description", "") for r in perm.get("IpRanges", [])})
            out.update({p["GroupId"]: p.get("Description", "") for p in perm.get("UserIdGroupPairs", [])})
    return out


def launch_json(sandbox, name: str, *flags: str) -> dict:
    return json.loads(inv(sandbox, "launch", name, *flags, "--json").out)


# -- 1. SSH access ---------------------------------------------------------------------------------
def test_launch_opens_ssh_to_the_callers_address_only_and_ssh_works_through_the_gate(aws):
    inst = launch_json(aws, "first", "--type", "t3.micro")
    assert inst["state"] == "running"
    group = ec2kit_group(aws)
    sources = ssh_sources(group)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert sources[f"{DEFAULT_IP}/32"] == f"ec2kit: your address on {today}"
    assert sources[group["GroupId"]] == "ec2kit instances to each other"
    assert "0.0.0.0/0" not in sources and "127.0.0.1/32" not in sources
    assert inv(aws, "connect", "first", "--command", "echo through-the-gate").out.strip() == "through-the-gate"


def test_a_new_caller_address_is_added_and_said_by_the_next_command_that_connects_then_pruned(aws):
    launch_json(aws, "laptop", "--type", "t3.micro")
    sb.set_caller_ip(aws.info, "203.0.113.42")  # the laptop joined another network
    age_caller_cache(aws.settings.home)
    moved = inv(aws, "connect", "laptop", "--command", "echo still-here")
    assert moved.out.strip() == "still-here"
    assert "Your public address is now 203.0.113.42: SSH from 203.0.113.42/32 added to ec2kit-ssh" in moved.err
    again = inv(aws, "connect", "laptop", "--command", "true")
    assert "public address is now" not in again.err  # said once; the cached answer costs nothing

    rules = json.loads(inv(aws, "access", "--json").out)
    by_source = {r["source"]: r for r in rules}
    assert by_source["203.0.113.42/32"]["current"] is True and by_source[f"{DEFAULT_IP}/32"]["current"] is False
    table = inv(aws, "access")
    assert "old" in table.out and "inv access --prune" in table.err

    pruned = inv(aws, "access", "--prune")
    assert f"Removed SSH from {DEFAULT_IP}/32" in pruned.err
    sources = ssh_sources(ec2kit_group(aws))
    assert "203.0.113.42/32" in sources and f"{DEFAULT_IP}/32" not in sources
    assert ec2kit_group(aws)["GroupId"] in sources  # instances still reach each other
    assert inv(aws, "connect", "laptop", "--command", "echo pruned-ok").out.strip() == "pruned-ok"


def test_a_group_at_the_rule_limit_makes_room_by_removing_only_the_oldest_addresses_ec2kit_added(aws):
    launch_json(aws, "full", "--type", "t3.micro")
    group = ec2kit_group(aws)
    ours = [f"100.64.0.{i}/32" for i in range(1, 55)]  # 54 old laptop addresses, oldest first
    aws.ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [
                    {"CidrIp": c, "Description": f"ec2kit: your address on 2026-0{1 + i // 10}-01"} for i, c in enumerate(ours)
                ]
                + [{"CidrIp": f"192.0.2.{i}/32", "Description": "the office"} for i in range(1, 5)],
            }
        ],
    )
    before = ssh_sources(ec2kit_group(aws))
    assert len(before) == 60  # AWS's limit: the caller's /32, the group rule, 54 old addresses, 4 of the user's
    sb.set_caller_ip(aws.info, "203.0.113.99")
    age_caller_cache(aws.settings.home)
    moved = inv(aws, "connect", "full", "--command", "echo room-made")
    assert moved.out.strip() == "room-made", moved
    assert "at AWS's rule limit, so the 10 oldest address(es) ec2kit had added were removed" in moved.err
    after = ssh_sources(ec2kit_group(aws))
    assert "203.0.113.99/32" in after and f"{DEFAULT_IP}/32" in after  # the current one was not a candidate
    assert not set(ours[:10]) & set(after) and set(ours[10:]) <= set(after)  # the ten oldest, exactly
    assert all(f"192.0.2.{i}/32" in after for i in range(1, 5)) and group["GroupId"] in after  # never the user's


def test_a_group_full_of_rules_ec2kit_did_not_add_is_a_clear_error(aws):
    launch_json(aws, "full2", "--type", "t3.micro")
    group = ec2kit_group(aws)
    own = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": f"{DEFAULT_IP}/32"}]}
    aws.ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[own])  # no address of ec2kit's left
    aws.ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": f"192.0.2.{i}/32", "Description": "the office"} for i in range(1, 60)],
            }
        ],
    )
    sb.set_caller_ip(aws.info, "203.0.113.98")
    result = inv(aws, "access", ok=False)
    assert result.code != 0 and "Traceback" not in result.err
    assert "has reached AWS's limit of rules per group" in result.err and "L-0EA8095F" in result.err
    assert len(ssh_sources(ec2kit_group(aws))) == 60  # nothing of the user's was touched


def test_access_rechecks_the_address_at_once_even_while_the_cache_is_fresh(aws):
    launch_json(aws, "cafe", "--type", "t3.micro", "--no-wait")
    sb.set_caller_ip(aws.info, "192.0.2.77")
    result = inv(aws, "access")
    assert "Your public address is now 192.0.2.77" in result.err
    assert "192.0.2.77/32" in ssh_sources(ec2kit_group(aws))


def test_open_ssh_warns_opens_the_world_and_prune_closes_it_again(aws):
    result = inv(aws, "launch", "wide", "--type", "t3.micro", "--open-ssh", "--no-wait")
    assert "Warning: --open-ssh allows SSH from anywhere (0.0.0.0/0)" in result.err
    sources = ssh_sources(ec2kit_group(aws))
    assert sources["0.0.0.0/0"].startswith("ec2kit --open-ssh on ")
    assert "everyone!" in inv(aws, "access").out
    inv(aws, "access", "--prune")
    sources = ssh_sources(ec2kit_group(aws))
    assert "0.0.0.0/0" not in sources and f"{DEFAULT_IP}/32" in sources  # prune kept (added) the current address


def test_a_configured_ssh_cidr_still_decides_and_no_address_is_looked_up(aws):
    inv(aws, "launch", "office", "--type", "t3.micro", "--no-wait", env={"EC2KIT_SSH_CIDR": "203.0.113.0/24"})
    sources = ssh_sources(ec2kit_group(aws))
    assert "203.0.113.0/24" in sources and f"{DEFAULT_IP}/32" not in sources
    assert not (aws.settings.home / "caller-ip.json").exists()


def test_an_unreachable_what_is_my_ip_url_is_a_clear_error_naming_the_way_out(aws):
    from ec2kit.aws.cloud import Cloud
    from ec2kit.settings import Settings

    cloud = Cloud(
        Settings(home=aws.settings.home, sandbox=True),
        endpoint_url=aws.info.endpoint_url,
        credentials=dict(sb.SANDBOX_CREDENTIALS),
        region=aws.info.region,
        checkip_url="http://127.0.0.1:9/",
    )
    with pytest.raises(ConfigError) as caught:
        cloud.ensure_security_group()
    text = str(caught.value)
    assert "could not learn your public IP address from http://127.0.0.1:9/" in text
    assert "EC2KIT_SSH_CIDR" in text and "--open-ssh" in text


def test_an_instance_the_groups_keep_out_times_out_with_a_message_naming_the_address_and_what_to_do(aws, tmp_path):
    vpc = aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    closed = aws.ec2.create_security_group(GroupName="closed", Description="no ssh", VpcId=vpc)["GroupId"]
    with Context(aws.settings, quiet=True) as ctx:
        ctx.cloud.ensure_key_pair()
        iid = aws.ec2.run_instances(
            ImageId=UBUNTU_AMI_ID,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            KeyName=aws.settings.key_name,
            SecurityGroupIds=[closed],
        )["Instances"][0]["InstanceId"]
        from ec2kit.ssh import connect

        target = ctx.target(ctx.cloud.instance(iid))
        with pytest.raises(RemoteError) as caught, connect(target, connect_timeout=1.5) as host:
            host.run("true")
    text = str(caught.value)
    assert f"no answer from {target.host}" in text and "inv access" in text


def test_the_ssh_address_is_the_public_ip_else_the_private_one_unless_forced():
    from ec2kit.aws.models import Instance
    from ec2kit.context import ssh_address
    from ec2kit.errors import WrongState

    def inst(public, private="10.0.1.5", state="running"):
        return Instance("i-1", "box", "t3.micro", state, "on-demand", public, private, None, "z", "ami", "k")

    assert ssh_address(inst("54.1.2.3")) == ("54.1.2.3", "its public IP")
    host, why = ssh_address(inst(None))
    assert host == "10.0.1.5" and "it has no public IP" in why and "inside its VPC" in why
    assert ssh_address(inst("54.1.2.3"), "private")[0] == "10.0.1.5"
    with pytest.raises(WrongState, match="no public IP address"):
        ssh_address(inst(None), "public")
    with pytest.raises(WrongState, match="inv start box"):
        ssh_address(inst(None, state="stopped"))


# -- 2. networks and identity ----------------------------------------------------------------------
def make_vpc(sandbox, name: str) -> tuple[str, str, str]:
    """A non-default VPC with a subnet tagged Name=``name`` and an extra group: (vpc, subnet, group)."""
    ec2 = sandbox.ec2
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.42.1.0/24",
        AvailabilityZone="us-east-1b",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}],
    )["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="efs-clients", Description="extra", VpcId=vpc)["GroupId"]
    return vpc, subnet, group


def test_subnet_by_name_tag_puts_the_instance_and_ec2kits_group_in_that_vpc_with_extra_groups(aws):
    vpc, subnet, extra = make_vpc(aws, "training-a")
    inst = launch_json(aws, "netbox", "--type", "t3.micro", "--subnet", "training-a", "--security-group", "efs-clients")
    raw = describe(aws, inst["id"])
    assert raw["SubnetId"] == subnet and raw["VpcId"] == vpc
    mine = ec2kit_group(aws, vpc)
    assert {g["GroupId"] for g in raw["SecurityGroups"]} == {mine["GroupId"], extra}
    assert f"{DEFAULT_IP}/32" in ssh_sources(mine)
    assert inv(aws, "connect", "netbox", "--command", "echo in-the-vpc").out.strip() == "in-the-vpc"


def test_wrong_subnets_and_groups_are_refused_before_anything_is_created(aws):
    make_vpc(aws, "training-b")
    assert_clean_error(inv(aws, "launch", "x", "--subnet", "nosuch", ok=False), "subnet named 'nosuch'", "training-b")
    assert_clean_error(inv(aws, "launch", "x", "--security-group", "sg-0123456789abcdef0", ok=False), "security group")
    assert_clean_error(inv(aws, "launch", "x", "--security-group", "efs-clients", ok=False), "security group named 'efs-clients'")
    assert_clean_error(
        inv(aws, "launch", "x", "--subnet", "training-b", "--zone", "us-east-1a", ok=False), "us-east-1b", "--zone"
    )
    assert aws.ec2.describe_instances()["Reservations"] == []


def test_a_region_without_a_default_vpc_and_no_subnet_gets_a_clear_message(aws):
    ec2 = aws.ec2
    (default,) = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default["VpcId"]]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=default["VpcId"])
    result = inv(aws, "launch", "nowhere", "--type", "t3.micro", ok=False)
    assert_clean_error(result, "has no default VPC", "--subnet", "create-default-vpc")
    assert ec2.describe_instances()["Reservations"] == []


def instance_profile(sandbox, name: str) -> str:
    iam = sandbox.info.client("iam")
    iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=f"{name}-role")
    return str(iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"])


def test_launch_with_an_instance_profile_and_an_unknown_one_is_refused(aws):
    arn = instance_profile(aws, "ec2kit-s3")
    inst = launch_json(aws, "withrole", "--type", "t3.micro", "--instance-profile", "ec2kit-s3", "--no-wait")
    assert describe(aws, inst["id"])["IamInstanceProfile"]["Arn"] == arn
    assert_clean_error(
        inv(aws, "launch", "norole", "--instance-profile", "nosuch", ok=False),
        "instance profile named 'nosuch'",
        "list-instance-profiles",
    )


def test_spot_run_launches_with_the_profile_subnet_and_records_them_in_the_run(aws, tmp_path):
    instance_profile(aws, "runner")
    _, subnet, _ = make_vpc(aws, "training-c")
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\necho done > "$EC2KIT_RESULTS/out.txt"\n')
    lines: list[str] = []
    opts = SpotRunOptions(
        script=str(script),
        name="roled",
        type="t3.micro",
        results=str(tmp_path / "results"),
        subnet="training-c",
        security_groups=["efs-clients"],
        instance_profile="runner",
        out=lines.append,
        say=lines.append,
        pull_interval=0.5,
        poll_interval=0.3,
        notice_poll=0.5,
        pull_wait=15,
    )
    with Context(aws.settings, quiet=True) as ctx:
        record = spot_run(ctx, opts)
    assert record.state == "succeeded", lines
    assert (tmp_path / "results" / "out.txt").read_text() == "done\n"
    assert record.options["instance_profile"] == "runner" and record.options["subnet"] == "training-c"
    runs = json.loads(inv(aws, "runs", "--json").out)
    assert [r["options"]["instance_profile"] for r in runs if r["name"] == "roled"] == ["runner"]
    raw = aws.ec2.describe_instances(InstanceIds=[record.instance_id])["Reservations"][0]["Instances"][0]
    assert raw["SubnetId"] == subnet and raw["MetadataOptions"]["HttpTokens"] == "required"
    # the sandbox's fleets drop a launch template's IamInstanceProfile (AWS applies it); the on-demand
    # test above shows the profile reaching the instance
    assert any(line.startswith("roled: Image: ubuntu 24.04 amd64 (the default)") for line in lines), lines


# -- 3. image aliases ------------------------------------------------------------------------------
ARM_NOBLE, AMD_JAMMY, GPU_X86, GPU_ARM = (
    "ami-0a7a4e87939439934",
    "ami-005fc0f236362e99f",
    "ami-0f1b3c8d6e2a4b590",
    "ami-0d2e6a7c9b4f13e28",
)


@pytest.fixture
def cloud(aws):
    with Context(aws.settings, quiet=True) as ctx:
        yield ctx.cloud


@pytest.mark.parametrize(
    "image, type_, ami, why",
    [
        (None, "m5.large", UBUNTU_AMI_ID, "ubuntu 24.04 amd64 (the default): ubuntu/images/"),
        (None, "t4g.large", ARM_NOBLE, "ubuntu 24.04 arm64 because t4g.large is Graviton"),
        (None, "g5.xlarge", GPU_X86, "gpu image because g5.xlarge has an NVIDIA A10G: Deep Learning Base OSS"),
        (None, "g5g.xlarge", GPU_ARM, "gpu image arm64 because g5g.xlarge has an NVIDIA T4g and g5g.xlarge is Graviton"),
        ("ubuntu", "t3.micro", UBUNTU_AMI_ID, "ubuntu 24.04 amd64 (--image ubuntu)"),
        ("ubuntu-22.04", "t3.micro", AMD_JAMMY, "ubuntu 22.04 amd64 (--image ubuntu-22.04)"),
        (
            "ubuntu-22.04",
            "m7g.large",
            "ami-0c5777a14602ab4b9",
            "ubuntu 22.04 arm64 (--image ubuntu-22.04) because m7g.large is Graviton",
        ),
        ("ubuntu", "g5.xlarge", UBUNTU_AMI_ID, "ubuntu 24.04 amd64 (--image ubuntu)"),
        ("gpu", "g5.xlarge", GPU_X86, "gpu image (--image gpu)"),
        (UBUNTU_AMI_ID, "t3.micro", UBUNTU_AMI_ID, "as asked"),
    ],
)
def test_image_aliases_follow_the_types_architecture_and_gpu(cloud, image, type_, ami, why):
    plan = cloud.plan_launch(f"img-{type_}", image=image, type=type_)
    assert plan.image_id == ami
    assert why in plan.image_note


def test_ami_names_still_work_and_an_image_of_the_wrong_architecture_is_refused(aws, cloud):
    mine = aws.ec2.register_image(Name="my-arm-base", Architecture="arm64", RootDeviceName="/dev/sda1", VirtualizationType="hvm")[
        "ImageId"
    ]
    assert cloud.plan_launch("byname", image="my-arm-base", type="t4g.large").image_id == mine
    with pytest.raises(ConfigError, match="built for x86_64, but t4g.large runs arm64"):
        cloud.plan_launch("wrongarch", image=UBUNTU_AMI_ID, type="t4g.large")
    with pytest.raises(NotFound, match="image named 'nosuch'"):
        cloud.plan_launch("x", image="nosuch", type="t3.micro")


def test_launch_says_which_image_it_chose_and_why(aws):
    result = inv(aws, "launch", "graviton", "--type", "t4g.large", "--no-wait")
    assert "Image: ubuntu 24.04 arm64 because t4g.large is Graviton" in result.err
    assert describe(aws, json.loads(inv(aws, "instances", "--json").out)[0]["id"])["ImageId"] == ARM_NOBLE


# -- 4. IMDSv2 -------------------------------------------------------------------------------------
TOKEN_PATH = (  # the wrapper's own calls (templates/spot-run/wrapper.sh.j2)
    'IMDS="${EC2KIT_IMDS:-http://169.254.169.254}"; '
    'token=$(curl -fsS -m 2 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$IMDS/latest/api/token"); '
    'curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/instance-id"'
)
TOKENLESS = 'curl -s -o /dev/null -w "%{http_code}" -m 2 "${EC2KIT_IMDS:-http://169.254.169.254}/latest/meta-data/instance-id"'


@pytest.mark.parametrize("market", ["on-demand", "spot"])
def test_every_launch_requires_imdsv2_a_tokenless_request_is_refused_and_the_token_path_works(aws, market):
    inst = launch_json(aws, f"imds-{market}", "--type", "t3.micro", *(["--spot"] if market == "spot" else []))
    options = describe(aws, inst["id"])["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 2)
    assert inv(aws, "connect", inst["name"], "--command", TOKENLESS).out.strip() == "401"
    assert inv(aws, "connect", inst["name"], "--command", TOKEN_PATH).out.strip() == inst["id"]


# -- the IAM policy covers every call --------------------------------------------------------------
def test_every_ec2_ssm_and_iam_call_in_the_aws_layer_is_in_the_minimal_iam_policy():
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    allowed = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    calls: set[str] = set()
    for path in (ROOT / "ec2kit" / "aws").glob("*.py"):
        text = path.read_text()
        calls |= {f"ec2:{m}" for m in re.findall(r"\.ec2\.([a-z_]+)\(", text)}
        calls |= {f"ec2:{m}" for m in re.findall(r"paginate\(\s*\"([a-z_]+)\"", text)}
        calls |= {f"{svc}:{m}" for svc, m in re.findall(r"client\(\"(ssm|iam)\"\)\.([a-z_]+)\(", text)}
    calls -= {"ec2:get_paginator", "ec2:get_waiter"}
    assert "ec2:run_instances" in calls and "ssm:get_parameter" in calls and "iam:get_instance_profile" in calls

    def pascal(call: str) -> str:
        service, method = call.split(":")
        return f"{service}:{''.join(w.capitalize() for w in method.split('_'))}"

    missing = sorted(pascal(c) for c in calls if pascal(c) not in allowed)
    assert missing == []
    assert "iam:PassRole" in allowed  # RunInstances with --instance-profile


# -- the public address cache ----------------------------------------------------------------------
def test_the_public_address_is_asked_once_then_cached_until_the_network_changes(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ec2kit.aws.address import caller_ip

    answers = ["203.0.113.5\n"]
    hits: list[str] = []

    class CheckIp(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = answers[-1].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), CheckIp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, cache = f"http://127.0.0.1:{server.server_address[1]}/", tmp_path / "caller-ip.json"
    try:
        assert caller_ip(url, cache=cache) == caller_ip(url, cache=cache) == "203.0.113.5"
        assert len(hits) == 1  # the second command pays nothing
        answers.append("203.0.113.6\n")
        assert caller_ip(url, cache=cache, fresh=True) == "203.0.113.6" and len(hits) == 2
        data = json.loads(cache.read_text())
        data[url]["local"] = "10.99.99.99"  # this machine was on another network when it asked
        cache.write_text(json.dumps(data))
        assert caller_ip(url, cache=cache) == "203.0.113.6" and len(hits) == 3
        for forged in ("0.0.0.0/0", "evil.example", ["203.0.113.6"]):  # caller-ip.json edited behind our back
            data = json.loads(cache.read_text())
            data[url]["ip"] = forged
            cache.write_text(json.dumps(data))
            before = len(hits)
            assert caller_ip(url, cache=cache) == "203.0.113.6" and len(hits) == before + 1  # asked again, never used
        answers.append("<html>captive portal</html>")
        with pytest.raises(ConfigError, match="not an IPv4 address"):
            caller_ip(url, cache=cache, fresh=True)
    finally:
        server.shutdown()
