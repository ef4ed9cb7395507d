"""The sandbox behaves like a real AWS account where a first-time user meets it, failures included.

Plain boto3 against the sandbox's endpoint, real sockets and ssh; knobs through ec2kit.sandbox.
Every test starts from ``sandbox_reset`` (moto wiped, every knob back to its default).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cli_helpers import assert_clean_error, run_inv, wait_for

from ec2kit import sandbox as sb
from ec2kit.errors import SandboxError
from ec2kit.sandbox.moto.images import SSM_PARAMETERS, UBUNTU_AMI_ID

G_ON_DEMAND, G_SPOT, STANDARD_ON_DEMAND, STANDARD_SPOT = "L-DB2E81BA", "L-3819A6DF", "L-1216C47A", "L-34B43A08"


@pytest.fixture
def aws(sandbox_reset, tmp_path):
    """The reset sandbox plus an imported key pair: (session, key name, private key path). Plain boto3 here
    looks new ids up at once, so eventual consistency (tests/sandbox/test_consistency.py) is off."""
    sb.knobs.eventual_consistency(sandbox_reset.settings, 0)
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    name = f"aws-{uuid.uuid4().hex[:6]}"
    sandbox_reset.ec2.import_key_pair(KeyName=name, PublicKeyMaterial=path.with_suffix(".pub").read_bytes())
    return sandbox_reset, name, path


def launch(sandbox, key_name: str, **kwargs) -> str:
    params = {"ImageId": UBUNTU_AMI_ID, "MinCount": 1, "MaxCount": 1, "KeyName": key_name, "InstanceType": "t3.micro"}
    return sandbox.ec2.run_instances(**{**params, **kwargs})["Instances"][0]["InstanceId"]


def describe(sandbox, instance_id: str) -> dict:
    return sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def group(sandbox, name: str, *, cidrs: tuple[str, ...] = (), self_ref: bool = False) -> str:
    """A security group in the default VPC allowing tcp/22 from ``cidrs`` (and its own members)."""
    vpc = sandbox.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    gid = sandbox.ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
    perms = []
    if cidrs:
        perms.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": c} for c in cidrs]})
    if self_ref:
        perms.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": gid}]})
    if perms:
        sandbox.ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=perms)
    return gid


def address(sandbox, instance_id: str, **kwargs) -> dict:
    return wait_for(lambda: sandbox.resolver.address(instance_id, **kwargs), timeout=15)


def ssh_banner(port: int, timeout: float = 2.0) -> bytes:
    """The first bytes the port sends (an SSH banner), or raises TimeoutError."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        return conn.recv(64)


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]


# 1. what is my IP ------------------------------------------------------------------------------
def test_checkip_answers_the_callers_public_ip_and_follows_a_laptop_that_moved(sandbox_reset):
    url = sandbox_reset.info.checkip_url
    assert urllib.request.urlopen(url, timeout=5).read() == b"198.51.100.7\n"
    sb.set_caller_ip(sandbox_reset.info, "203.0.113.42")
    assert urllib.request.urlopen(url, timeout=5).read() == b"203.0.113.42\n"
    assert sb.caller_ip(sandbox_reset.info) == "203.0.113.42"
    with pytest.raises(SandboxError, match="IPv4"):
        sb.set_caller_ip(sandbox_reset.info, "not-an-ip")
    sb.reset(sandbox_reset.info)
    assert urllib.request.urlopen(url, timeout=5).read() == b"198.51.100.7\n"


# 2. security groups gate SSH -----------------------------------------------------------------
def test_ssh_is_gated_by_default_and_open_to_any_group_once_enforcement_is_off(aws):
    sandbox, key_name, _ = aws
    assert sb.account(sandbox.info)["enforce_ssh"] is True
    iid = launch(sandbox, key_name)  # the default group: no rule for tcp/22 from outside
    assert address(sandbox, iid).get("filtered") is True
    sb.enforce_ssh_rules(sandbox.info, False)
    assert ssh_banner(address(sandbox, iid)["port"]).startswith(b"SSH-2.0")
    assert sb.account(sandbox.info)["enforce_ssh"] is False


def test_ssh_times_out_unless_a_group_rule_admits_the_callers_ip(aws):
    sandbox, key_name, _ = aws
    sb.enforce_ssh_rules(sandbox.info)
    gid = group(sandbox, "office-only", cidrs=("203.0.113.0/24",))
    iid = launch(sandbox, key_name, SecurityGroupIds=[gid])

    blocked = address(sandbox, iid)
    assert blocked["filtered"] is True
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ssh_banner(blocked["port"], timeout=2)
    assert 1.5 < time.monotonic() - t0 < 5  # a timeout as on AWS, not a refusal

    sandbox.ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.7/32"}]}],
    )
    allowed = address(sandbox, iid)
    assert "filtered" not in allowed and ssh_banner(allowed["port"]).startswith(b"SSH-2.0")

    sb.set_caller_ip(sandbox.info, "192.0.2.99")  # the laptop moved: its /32 no longer matches
    assert address(sandbox, iid).get("filtered") is True
    sb.set_caller_ip(sandbox.info, "203.0.113.200")  # inside the office range
    assert "filtered" not in address(sandbox, iid)


def test_a_world_open_rule_admits_every_caller_ip_also_for_spot_requests_naming_group_ids(aws):
    sandbox, key_name, _ = aws
    sb.enforce_ssh_rules(sandbox.info)
    gid = group(sandbox, "open", cidrs=("0.0.0.0/0",))
    iid = launch(sandbox, key_name, SecurityGroupIds=[gid])
    sb.set_caller_ip(sandbox.info, "192.0.2.1")
    assert "filtered" not in address(sandbox, iid)
    spec = {"ImageId": UBUNTU_AMI_ID, "InstanceType": "t3.micro", "KeyName": key_name, "SecurityGroupIds": [gid]}
    spot = sandbox.ec2.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)["SpotInstanceRequests"][0]
    assert [g["GroupId"] for g in describe(sandbox, spot["InstanceId"])["SecurityGroups"]] == [gid]
    assert "filtered" not in address(sandbox, spot["InstanceId"])


def test_instances_in_one_group_reach_each_other_through_its_self_referencing_rule(aws):
    sandbox, key_name, key_path = aws
    sb.enforce_ssh_rules(sandbox.info)
    gid = group(sandbox, "ec2kit-ssh-like", self_ref=True)
    monitor = launch(sandbox, key_name, SecurityGroupIds=[gid])
    worker = launch(sandbox, key_name, SecurityGroupIds=[gid])
    outsider = launch(sandbox, key_name)  # default group only

    inside = address(sandbox, monitor, from_instance=worker)
    assert "filtered" not in inside and ssh_banner(inside["port"]).startswith(b"SSH-2.0")
    assert address(sandbox, monitor, from_instance=outsider).get("filtered") is True
    assert address(sandbox, monitor).get("filtered") is True  # this machine is not in the group
    target = sandbox.ssh_target(monitor, key_file=key_path, known_hosts=key_path.parent / "kh", from_instance=worker)
    assert target.port == inside["port"]


# 3. SSM public parameters ----------------------------------------------------------------------
def test_ssm_public_parameters_name_seeded_images_of_the_right_architecture(sandbox_reset):
    ssm = sandbox_reset.info.client("ssm")
    assert len(SSM_PARAMETERS) == 6
    for name in SSM_PARAMETERS:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        image = sandbox_reset.ec2.describe_images(ImageIds=[value])["Images"][0]
        want = "arm64" if "/arm64/" in name else "x86_64"
        assert image["Architecture"] == want, name
        owner = "898082745236" if "deeplearning" in name else "099720109477"
        assert image["OwnerId"] == owner, name
    dl = ssm.get_parameter(Name="/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")
    image = sandbox_reset.ec2.describe_images(ImageIds=[dl["Parameter"]["Value"]])["Images"][0]
    assert image["Name"].startswith("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)")
    noble = ssm.get_parameter(Name="/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id")
    assert noble["Parameter"]["Value"] == UBUNTU_AMI_ID
    by_path = ssm.get_parameters_by_path(Path="/aws/service/canonical/ubuntu/server/22.04/stable/current", Recursive=True)
    assert len(by_path["Parameters"]) == 2
    with pytest.raises(ClientError, match="ParameterNotFound"):
        ssm.get_parameter(Name="/aws/service/canonical/ubuntu/server/18.04/stable/current/amd64/hvm/ebs-gp2/ami-id")


# 4. Service Quotas -----------------------------------------------------------------------------
def test_service_quotas_answer_young_account_defaults_then_values_a_test_sets(sandbox_reset):
    quotas = sandbox_reset.info.client("service-quotas")
    # while nothing is enforced the account's quotas are not in the way, and GetServiceQuota agrees
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode=G_ON_DEMAND)["Quota"]["Value"] == 1024.0
    sb.enforce_quotas(sandbox_reset.info)
    standard = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=STANDARD_ON_DEMAND)["Quota"]
    assert standard["Value"] == 5.0 and standard["QuotaName"].startswith("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z)")
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode=G_ON_DEMAND)["Quota"]["Value"] == 0.0
    assert (
        quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-7212CCBC")["Quota"]["QuotaName"]
        == "All P Spot Instance Requests"
    )
    sb.set_quota(sandbox_reset.info, G_ON_DEMAND, 8)
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode=G_ON_DEMAND)["Quota"]["Value"] == 8.0
    sb.deny_quota_access(sandbox_reset.info)
    error = error_of(quotas.get_service_quota, ServiceCode="ec2", QuotaCode=G_ON_DEMAND)
    assert error["Code"] == "AccessDeniedException" and "servicequotas:GetServiceQuota" in error["Message"]
    sb.deny_quota_access(sandbox_reset.info, False)
    assert quotas.get_service_quota(ServiceCode="ec2", QuotaCode=G_ON_DEMAND)["Quota"]["Value"] == 8.0
    with pytest.raises(SandboxError, match="unknown EC2 quota"):
        sb.set_quota(sandbox_reset.info, "L-NOPE", 1)


def test_on_demand_launches_past_a_set_vcpu_quota_fail_with_vcpu_limit_exceeded(aws):
    sandbox, key_name, _ = aws
    sb.set_quota(sandbox.info, G_ON_DEMAND, 8)
    launch(sandbox, key_name, InstanceType="g5.xlarge")  # 4 vCPUs
    launch(sandbox, key_name, InstanceType="g5.xlarge")  # 8 of 8
    error = error_of(sandbox.ec2.run_instances, ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="g5.xlarge")
    assert error["Code"] == "VcpuLimitExceeded"
    assert error["Message"].startswith("You have requested more vCPU capacity than your current vCPU limit of 8 allows")
    launch(sandbox, key_name, InstanceType="m5.24xlarge")  # 96 vCPUs: the Standard quota is not enforced


def test_spot_launches_past_a_set_quota_fail_with_max_spot_instance_count_exceeded(aws):
    sandbox, key_name, _ = aws
    sb.set_quota(sandbox.info, G_SPOT, 4)
    spec = {"ImageId": UBUNTU_AMI_ID, "InstanceType": "g5.xlarge", "KeyName": key_name}
    sandbox.ec2.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)
    error = error_of(sandbox.ec2.request_spot_instances, InstanceCount=1, LaunchSpecification=spec)
    assert (error["Code"], error["Message"]) == ("MaxSpotInstanceCountExceeded", "Max spot instance count exceeded")
    error = error_of(sandbox.ec2.run_instances, MinCount=1, MaxCount=1, InstanceMarketOptions={"MarketType": "spot"}, **spec)
    assert error["Code"] == "MaxSpotInstanceCountExceeded"
    launch(sandbox, key_name, InstanceType="g5.xlarge")  # on-demand G is another quota (not enforced)


def test_enforcing_every_quota_applies_the_young_account_defaults(aws):
    sandbox, key_name, _ = aws
    sb.enforce_quotas(sandbox.info)
    assert (
        error_of(sandbox.ec2.run_instances, ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="g4dn.xlarge")["Code"]
        == "VcpuLimitExceeded"
    )
    launch(sandbox, key_name, InstanceType="t3.xlarge")  # 4 of 5 Standard vCPUs
    error = error_of(sandbox.ec2.run_instances, ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.small")
    assert "current vCPU limit of 5 allows" in error["Message"]


# 5. capacity -----------------------------------------------------------------------------------
def test_an_empty_pool_fails_run_instances_in_its_zone_and_elsewhere_the_launch_moves(aws):
    sandbox, key_name, _ = aws
    sb.set_capacity(sandbox.info, "p3.2xlarge", "us-east-1a", False)
    error = error_of(
        sandbox.ec2.run_instances,
        ImageId=UBUNTU_AMI_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="p3.2xlarge",
        Placement={"AvailabilityZone": "us-east-1a"},
    )
    assert error["Code"] == "InsufficientInstanceCapacity"
    assert error["Message"].startswith(
        "We currently do not have sufficient p3.2xlarge capacity in the Availability Zone you requested (us-east-1a)."
    )
    assert "choosing us-east-1b" in error["Message"]
    iid = launch(sandbox, key_name, InstanceType="p3.2xlarge")  # no zone asked: AWS picks one with capacity
    assert describe(sandbox, iid)["Placement"]["AvailabilityZone"] != "us-east-1a"
    spot = error_of(
        sandbox.ec2.run_instances,
        ImageId=UBUNTU_AMI_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="p3.2xlarge",
        Placement={"AvailabilityZone": "us-east-1a"},
        InstanceMarketOptions={"MarketType": "spot"},
    )
    assert spot == {
        **spot,
        "Code": "InsufficientInstanceCapacity",
        "Message": "There is no Spot capacity available that matches your request.",
    }


def test_a_spot_request_for_an_empty_pool_waits_open_until_capacity_returns(aws):
    sandbox, key_name, _ = aws
    sb.set_capacity(sandbox.info, "g5.xlarge", "us-east-1b", False, market="spot")
    spec = {
        "ImageId": UBUNTU_AMI_ID,
        "InstanceType": "g5.xlarge",
        "KeyName": key_name,
        "Placement": {"AvailabilityZone": "us-east-1b"},
    }
    rid = sandbox.ec2.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)["SpotInstanceRequests"][0][
        "SpotInstanceRequestId"
    ]
    request = sandbox.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]
    assert (request["State"], request["Status"]["Code"]) == ("open", "capacity-not-available")
    assert not request.get("InstanceId")
    launched = sb.set_capacity(sandbox.info, "g5.xlarge", "us-east-1b", True, market="spot")
    request = sandbox.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]
    assert (request["State"], request["Status"]["Code"]) == ("active", "fulfilled")
    assert launched == [request["InstanceId"]]
    instance = describe(sandbox, request["InstanceId"])
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b" and instance["InstanceLifecycle"] == "spot"
    assert address(sandbox, request["InstanceId"])["port"]  # the reconciler started its sshd


def fleet(sandbox, key_name: str, overrides: list[dict], *, spot: bool = True, **extra) -> dict:
    name = f"lt-{uuid.uuid4().hex[:6]}"
    sandbox.ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": UBUNTU_AMI_ID, "KeyName": key_name}
    )
    return sandbox.ec2.create_fleet(
        Type="instant",
        TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot" if spot else "on-demand"},
        LaunchTemplateConfigs=[
            {"LaunchTemplateSpecification": {"LaunchTemplateName": name, "Version": "$Latest"}, "Overrides": overrides}
        ],
        **extra,
    )


POOLS = [
    {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a"},
    {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b"},
    {"InstanceType": "g6.xlarge", "AvailabilityZone": "us-east-1c"},
]


def test_an_instant_fleet_launches_from_a_pool_with_capacity_and_lists_the_empty_ones(aws):
    sandbox, key_name, _ = aws
    sb.set_capacity(sandbox.info, "g5.xlarge", "us-east-1a", False, market="spot")
    out = fleet(sandbox, key_name, POOLS)
    assert [i["InstanceType"] for i in out["Instances"]] == ["g5.xlarge"]
    instance = describe(sandbox, out["Instances"][0]["InstanceIds"][0])
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b" and instance["InstanceLifecycle"] == "spot"
    assert [(e["ErrorCode"], e["LaunchTemplateAndOverrides"]["Overrides"]["AvailabilityZone"]) for e in out["Errors"]] == [
        ("InsufficientInstanceCapacity", "us-east-1a")
    ]
    assert out["Errors"][0]["Lifecycle"] == "spot"
    assert out["Errors"][0]["ErrorMessage"] == "There is no Spot capacity available that matches your request."


def test_an_instant_fleet_with_every_pool_empty_returns_only_errors(aws):
    sandbox, key_name, _ = aws
    for pool in POOLS:
        sb.set_capacity(sandbox.info, pool["InstanceType"], pool["AvailabilityZone"], False)
    out = fleet(sandbox, key_name, POOLS)
    assert out["Instances"] == []
    assert [e["ErrorCode"] for e in out["Errors"]] == ["InsufficientInstanceCapacity"] * 3
    before = len(sandbox.ec2.describe_instances()["Reservations"])
    sb.set_capacity(sandbox.info, "g6.xlarge", "us-east-1c", True)
    on_demand = fleet(sandbox, key_name, POOLS, spot=False)
    assert [i["Lifecycle"] for i in on_demand["Instances"]] == ["on-demand"]
    assert describe(sandbox, on_demand["Instances"][0]["InstanceIds"][0])["Placement"]["AvailabilityZone"] == "us-east-1c"
    assert len(sandbox.ec2.describe_instances()["Reservations"]) == before + 1


def test_an_instant_fleet_reports_a_quota_it_would_pass_as_an_error(aws):
    sandbox, key_name, _ = aws
    sb.set_quota(sandbox.info, G_SPOT, 0)
    out = fleet(sandbox, key_name, POOLS[:1])
    assert out["Instances"] == [] and [e["ErrorCode"] for e in out["Errors"]] == ["MaxSpotInstanceCountExceeded"]


# 6. spot interruptions that stop ---------------------------------------------------------------
def notice(sandbox, instance_id: str) -> dict | None:
    url = f"{sandbox.info.control_url}/i/{instance_id}/latest/meta-data/spot/instance-action"
    try:
        return json.loads(urllib.request.urlopen(url, timeout=5).read())
    except urllib.error.HTTPError:
        return None


def home_of(sandbox, instance_id: str) -> Path:
    host = wait_for(
        lambda: next((h for h in sb.status(sandbox.settings)["hosts"] if h["instance_id"] == instance_id and h["home"]), None),
        timeout=15,
    )
    return Path(host["home"])


def state(sandbox, instance_id: str) -> str:
    return describe(sandbox, instance_id)["State"]["Name"]


def test_a_persistent_stop_request_is_stopped_by_an_interruption_and_restarted_when_capacity_returns(aws):
    sandbox, key_name, _ = aws
    spec = {"ImageId": UBUNTU_AMI_ID, "InstanceType": "t3.micro", "KeyName": key_name}
    rid = sandbox.ec2.request_spot_instances(
        InstanceCount=1, Type="persistent", InstanceInterruptionBehavior="stop", LaunchSpecification=spec
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    request = sandbox.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]
    iid = request["InstanceId"]
    assert request["InstanceInterruptionBehavior"] == "stop"
    (home_of(sandbox, iid) / "work.txt").write_text("kept")
    first_ip = describe(sandbox, iid)["PublicIpAddress"]

    posted = sb.interrupt(sandbox.info, iid, delay=1.0)
    assert posted["action"] == "stop" and notice(sandbox, iid)["action"] == "stop"
    wait_for(lambda: state(sandbox, iid) == "stopped", timeout=15)
    request = sandbox.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]
    assert (request["State"], request["Status"]["Code"]) == ("disabled", "instance-stopped-no-capacity")
    assert "PublicIpAddress" not in describe(sandbox, iid)
    assert wait_for(lambda: sandbox.resolver.address(iid) is None, timeout=10)  # sshd stopped with it

    sb.capacity_returns(sandbox.info, iid)
    wait_for(lambda: state(sandbox, iid) == "running", timeout=15)
    assert describe(sandbox, iid)["PublicIpAddress"] not in (None, first_ip)
    assert (home_of(sandbox, iid) / "work.txt").read_text() == "kept"  # the root disk survived
    assert address(sandbox, iid)["port"]
    assert notice(sandbox, iid) is None
    request = sandbox.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[rid])["SpotInstanceRequests"][0]
    assert request["State"] == "active"
    with pytest.raises(SandboxError, match="not stopped by a spot interruption"):
        sb.capacity_returns(sandbox.info, iid)


def test_run_instances_spot_options_stop_restart_by_themselves_after_a_set_time(aws):
    sandbox, key_name, _ = aws
    options = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}
    iid = launch(sandbox, key_name, InstanceMarketOptions=options)
    address(sandbox, iid)
    assert sb.interrupt(sandbox.info, iid, delay=0, restart_after=1.0)["notice"] == "none"
    assert state(sandbox, iid) == "stopped"
    wait_for(lambda: state(sandbox, iid) == "running", timeout=15)
    assert address(sandbox, iid)["port"]


def test_the_interrupt_command_stops_a_resumable_instance_and_restart_after_starts_it_again(aws):
    sandbox, key_name, _ = aws
    options = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "resumable"}]}]
    iid = launch(sandbox, key_name, InstanceMarketOptions=options, TagSpecifications=tags)
    address(sandbox, iid)
    first_ip = describe(sandbox, iid)["PublicIpAddress"]
    log = sandbox.info.dir / "daemon.log"
    before = log.read_text()

    done = run_inv("sandbox.interrupt", "resumable", "--delay", "0", "--restart-after", "1", home=sandbox.settings.home)
    assert done.code == 0, done
    assert f"resumable ({iid}) was reclaimed with no notice: it is stopped (its disk kept) and starts again 1s later" in done.out
    wait_for(lambda: state(sandbox, iid) == "running" and f"{iid}: capacity returned" in log.read_text(), timeout=20)
    said = log.read_text()[len(before) :]
    assert said.index(f"{iid}: reclaimed (spot interruption, stop)") < said.index(f"{iid}: capacity returned, started again")
    assert describe(sandbox, iid)["PublicIpAddress"] not in (None, first_ip)  # started again, as EC2 does


def test_the_interrupt_command_refuses_a_negative_restart_after(sandbox):
    done = run_inv("sandbox.interrupt", "anything", "--restart-after", "-1", home=sandbox.settings.home)
    assert_clean_error(done, "--restart-after must be 0 or more seconds")


def test_a_fleet_whose_template_asks_stop_is_stopped_by_an_interruption(aws):
    sandbox, key_name, _ = aws
    out = fleet(sandbox, key_name, POOLS[1:2], SpotOptions={"InstanceInterruptionBehavior": "stop"})
    iid = out["Instances"][0]["InstanceIds"][0]
    assert sb.interrupt(sandbox.info, iid, delay=0)["action"] == "stop"
    assert state(sandbox, iid) == "stopped"


def test_a_default_spot_request_is_still_terminated_by_an_interruption(aws):
    sandbox, key_name, _ = aws
    spec = {"ImageId": UBUNTU_AMI_ID, "InstanceType": "t3.micro", "KeyName": key_name}
    iid = sandbox.ec2.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)["SpotInstanceRequests"][0]["InstanceId"]
    assert sb.interrupt(sandbox.info, iid, delay=0)["action"] == "terminate"
    assert state(sandbox, iid) == "terminated"


def test_a_stop_behaviour_spot_instance_that_powers_itself_off_is_stopped_not_terminated(aws):
    sandbox, key_name, _ = aws
    options = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"}}
    iid = launch(sandbox, key_name, InstanceMarketOptions=options)
    address(sandbox, iid)
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.info.control_url}/poweroff/{iid}", method="POST"), timeout=5).read()
    wait_for(lambda: state(sandbox, iid) == "stopped", timeout=15)


def test_a_pool_marked_to_interrupt_reclaims_each_spot_instance_launched_into_it(aws):
    sandbox, key_name, _ = aws
    sb.set_capacity(sandbox.info, "c5.large", "us-east-1d", True, interrupt_after=1.5)
    spec = {
        "ImageId": UBUNTU_AMI_ID,
        "InstanceType": "c5.large",
        "KeyName": key_name,
        "Placement": {"AvailabilityZone": "us-east-1d"},
    }
    iid = sandbox.ec2.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)["SpotInstanceRequests"][0]["InstanceId"]
    calm = launch(sandbox, key_name, InstanceType="c5.large", Placement={"AvailabilityZone": "us-east-1c"})
    assert wait_for(lambda: notice(sandbox, iid), timeout=5)["action"] == "terminate"
    wait_for(lambda: state(sandbox, iid) == "terminated", timeout=10)
    assert state(sandbox, calm) == "running"
    sb.set_capacity(sandbox.info, "c5.large", "us-east-1d", True, interrupt_after=-1)
    assert sb.account(sandbox.info)["interrupt_pools"] == []


# pages ------------------------------------------------------------------------------------------------
def test_an_instance_past_the_first_page_of_reservations_gets_its_sshd_and_keeps_it(aws):
    """moto, like EC2, pages DescribeInstances at 100 reservations; a long session makes more. The daemon
    must read every page: one page hid the newest instances (no sshd: "no running SSH server after 10s")
    and removed the hosts beyond it as vanished."""
    sandbox, key_name, _ = aws
    ended = [
        sandbox.ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0][
            "InstanceId"
        ]
        for _ in range(101)
    ]
    sandbox.ec2.terminate_instances(InstanceIds=ended)
    first_page = sandbox.ec2.describe_instances()
    assert first_page.get("NextToken"), "the account must hold more than one page of reservations"

    late = launch(sandbox, key_name, SecurityGroupIds=[group(sandbox, "pages", cidrs=("0.0.0.0/0",))])
    assert late not in {i["InstanceId"] for r in first_page["Reservations"] for i in r["Instances"]}
    port = address(sandbox, late)["port"]
    assert ssh_banner(port).startswith(b"SSH-")
    status = sb.status(sandbox.settings)
    passes = status.get("passes", 0)
    wait_for(lambda: sb.status(sandbox.settings).get("passes", 0) >= passes + 2, timeout=30)
    assert sandbox.resolver.address(late) is not None, "a full pass removed the host on page two"
    assert address(sandbox, late)["port"] == port
