"""Real AWS, second pass (issue 22, the aws/ items): every region, every instance family's quota, the spot
quota of a resumable launch, the missing spot service-linked role.

The region and family lists are botocore's own (its endpoints data and EC2's InstanceType enum), so a
botocore upgrade that brings a new family or region fails here until ec2kit knows it. The quota
cases run on the sandbox: its Service Quotas answers the quota ec2kit asks for and its RunInstances
refuses a spot launch over the spot quota with AWS's MaxSpotInstanceCountExceeded.
"""

from __future__ import annotations

import pytest

from ec2kit import sandbox as sb
from ec2kit.aws.errors import translate_code
from ec2kit.aws.quota_table import NO_SPOT, NO_VCPU_QUOTA, family_of, quota_for
from ec2kit.aws.regions import botocore_regions, find_region
from ec2kit.context import Context
from ec2kit.errors import ConfigError, CredentialsError, QuotaExceeded

STANDARD_ON_DEMAND, STANDARD_SPOT = "L-1216C47A", "L-34B43A08"


def botocore_instance_types() -> list[str]:
    import botocore.session

    return list(botocore.session.get_session().get_service_model("ec2").shape_for("InstanceType").enum)


# regions (22.4) ------------------------------------------------------------------------------------
def test_every_region_botocore_knows_for_ec2_is_accepted_as_itself():
    known = botocore_regions()
    assert {"ap-southeast-5", "ap-southeast-7", "mx-central-1", "ap-east-2", "us-gov-west-1", "us-gov-east-1"} <= set(known)
    assert {code: find_region(code) for code in known} == {code: code for code in known}
    assert find_region("  US-GOV-WEST-1 ") == "us-gov-west-1"


@pytest.mark.parametrize(
    "text, code",
    [("Ohio", "us-east-2"), ("malaysia", "ap-southeast-5"), ("Mexico", "mx-central-1"), ("GovCloud (US-East)", "us-gov-east-1")],
)
def test_a_part_of_a_regions_name_still_finds_its_code(text, code):
    assert find_region(text) == code


def test_a_misspelt_region_code_is_refused_naming_the_closest_codes():
    with pytest.raises(ConfigError) as caught:
        find_region("us-esat-1")
    assert "No AWS region matches 'us-esat-1'" in str(caught.value)
    assert "us-east-1 (US East (N. Virginia))" in caught.value.hint and "pip install -U boto3" in caught.value.hint


# every family has its quota (22.10) -------------------------------------------------------------------
def test_every_instance_family_in_botocores_list_counts_against_a_vcpu_quota_of_each_market():
    types = botocore_instance_types()
    assert len(types) > 1000
    unmapped = sorted(
        {
            f"{family_of(t)} ({market})"
            for t in types
            for market in ("on-demand", "spot")
            if quota_for(t, market) is None
            and family_of(t) not in NO_VCPU_QUOTA
            and not (market == "spot" and family_of(t) in NO_SPOT)
        }
    )
    assert unmapped == [], "place these families in ec2kit/aws/quota_table.py"
    assert {family_of(t) for t in types} >= {"im", "is", "gr", "hpc", "mac"}


@pytest.mark.parametrize(
    "instance_type, market, code",
    [
        ("im4gn.large", "on-demand", STANDARD_ON_DEMAND),
        ("is4gen.xlarge", "spot", STANDARD_SPOT),
        ("gr6.4xlarge", "on-demand", "L-DB2E81BA"),
        ("hpc6a.48xlarge", "on-demand", "L-F7808C92"),
        ("inf2.xlarge", "on-demand", "L-1945791B"),
        ("trn1.2xlarge", "spot", "L-6B0D517C"),
        ("dl1.24xlarge", "on-demand", "L-6E869C2A"),
    ],
)
def test_a_family_that_shares_its_first_letter_gets_its_own_quota(instance_type, market, code):
    quota = quota_for(instance_type, market)
    assert quota is not None and quota.code == code


def test_mac_instances_count_against_no_vcpu_quota():
    assert quota_for("mac2.metal", "on-demand") is None and quota_for("hpc7g.16xlarge", "spot") is None


@pytest.fixture
def ctx(sandbox_reset):
    with Context(sandbox_reset.settings, quiet=True) as c:
        yield c


def test_an_im4gn_launch_past_the_standard_quota_stops_before_any_paid_call(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, STANDARD_ON_DEMAND, 1)
    runs: list[dict] = []
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.RunInstances", lambda **kw: runs.append(kw["params"]))
    with pytest.raises(QuotaExceeded) as caught:
        ctx.cloud.launch("im1", type="im4gn.large")
    text = str(caught.value)
    assert f"'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances' ({STANDARD_ON_DEMAND})" in text
    assert "its limit is 1 vCPUs" in text and "this launch needs 2 (im4gn.large)" in text
    assert runs == []


# the quota a resumable spot launch names (22.7) --------------------------------------------------------
def test_a_resumable_spot_launch_refused_by_aws_names_the_spot_quota(ctx, sandbox_reset):
    sb.set_quota(sandbox_reset.info, STANDARD_SPOT, 0)
    sb.deny_quota_access(sandbox_reset.info)  # ec2kit cannot look first: RunInstances itself is refused
    runs: list[dict] = []
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.RunInstances", lambda **kw: runs.append(kw["params"]))
    with pytest.raises(QuotaExceeded) as caught:
        ctx.cloud.launch("resume1", type="t3.micro", spot=True, interruption="stop")
    text = str(caught.value)
    assert len(runs) == 1 and runs[0]["InstanceMarketOptions"]["SpotOptions"]["SpotInstanceType"] == "persistent"
    assert f"'All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests' ({STANDARD_SPOT})" in text
    assert "MaxSpotInstanceCountExceeded" in text and STANDARD_ON_DEMAND not in text
    assert f"--quota-code {STANDARD_SPOT}" in caught.value.hint


# the spot service-linked role (22.8) ----------------------------------------------------------------------
def test_a_missing_spot_service_linked_role_in_a_fleets_errors_says_how_to_create_it():
    message = "The provided credentials do not have permission to create the service-linked role for EC2 Spot Instances."
    err = translate_code("AuthFailure.ServiceLinkedRoleCreationNotPermitted", message, "launch spot instance run1")
    assert type(err) is CredentialsError
    assert "AWSServiceRoleForEC2Spot" in str(err) and "launch spot instance run1" in str(err) and message in str(err)
    assert err.hint.endswith("aws iam create-service-linked-role --aws-service-name spot.amazonaws.com")


def test_other_auth_failures_are_still_about_credentials():
    err = translate_code("AuthFailure", "", "list instances")
    assert type(err) is CredentialsError and "aws sts get-caller-identity" in err.hint


# a zone without a default subnet (22.5) -------------------------------------------------------------------
def drop_default_subnet(ec2) -> str:
    """Delete the default VPC's default subnet in the last zone (as in a zone AWS added after the VPC was made)."""
    defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    last = max(defaults, key=lambda s: s["AvailabilityZone"])
    ec2.delete_subnet(SubnetId=last["SubnetId"])
    return str(last["AvailabilityZone"])


def test_the_sandbox_refuses_a_fleet_pool_in_a_zone_without_a_default_subnet_as_aws_does(sandbox_reset):
    ec2 = sandbox_reset.ec2
    zone = drop_default_subnet(ec2)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="nosub", LaunchTemplateData={"ImageId": image})
    answer = ec2.create_fleet(
        Type="instant",
        LaunchTemplateConfigs=[
            {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "nosub", "Version": "$Latest"},
                "Overrides": [{"InstanceType": "t3.micro", "AvailabilityZone": zone}],
            }
        ],
        TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
    )
    assert not [i for item in answer.get("Instances") or [] for i in item.get("InstanceIds") or []]
    assert [(e["ErrorCode"], e["ErrorMessage"]) for e in answer["Errors"]] == [
        ("InvalidInput", f"No default subnet for availability zone: '{zone}'.")
    ]


def test_a_spot_fleet_names_each_zones_default_subnet_and_skips_a_zone_without_one(ctx, sandbox_reset):
    zone = drop_default_subnet(sandbox_reset.ec2)
    defaults = {
        s["SubnetId"]: s["AvailabilityZone"]
        for s in sandbox_reset.ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    }
    offered = {
        o["Location"]
        for o in sandbox_reset.ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}]
        )["InstanceTypeOfferings"]
    }
    defaults = {subnet: z for subnet, z in defaults.items() if z in offered}
    fleets: list[dict] = []
    said: list[str] = []
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.CreateFleet", lambda **kw: fleets.append(kw["params"]))
    inst = ctx.cloud.launch("subnets1", type="t3.micro", spot=True, progress=said.append)
    overrides = [o for p in fleets for c in p["LaunchTemplateConfigs"] for o in c["Overrides"]]
    assert overrides and all("AvailabilityZone" not in o for o in overrides), overrides
    assert {o["SubnetId"] for o in overrides} == set(defaults), overrides  # every zone that has one, by its subnet
    assert zone not in defaults.values() and inst.zone != zone
    assert any(f"skipping {zone} (no default subnet" in s and "create-default-subnet" in s for s in said), said


def test_a_launch_in_a_zone_without_a_default_subnet_is_refused_before_createfleet(ctx, sandbox_reset):
    zone = drop_default_subnet(sandbox_reset.ec2)
    fleets: list[dict] = []
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.CreateFleet", lambda **kw: fleets.append(kw["params"]))
    with pytest.raises(ConfigError) as caught:
        ctx.cloud.launch("subnets2", type="t3.micro", spot=True, zone=zone)
    assert f"no default subnet in zone {zone}" in str(caught.value)
    assert f"create-default-subnet --availability-zone {zone}" in caught.value.hint
    assert fleets == []


# a subnet that assigns no public IPv4 (22.6) ---------------------------------------------------------------
def private_subnet(ec2) -> dict:
    """A default subnet made to assign no public IPv4 (MapPublicIpOnLaunch false), as most custom subnets are."""
    subnet = min(
        ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"],
        key=lambda s: s["AvailabilityZone"],
    )
    ec2.modify_subnet_attribute(SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": False})
    return subnet


def filtered(sandbox, instance_id: str) -> bool:
    """Whether the sandbox hands this machine the blackhole for the instance (once its sshd runs)."""
    sandbox.resolver.wait_address(instance_id, timeout=20)
    return bool((sandbox.resolver.address(instance_id) or {}).get("filtered"))


def test_the_sandbox_answers_only_inside_the_vpc_for_an_instance_without_a_public_ip(sandbox_reset):
    ec2 = sandbox_reset.ec2
    subnet = private_subnet(ec2)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"])["Instances"][0]
    ec2.get_waiter("instance_exists").wait(
        InstanceIds=[made["InstanceId"]], WaiterConfig={"Delay": 1}
    )  # waits out eventual consistency
    described = ec2.describe_instances(InstanceIds=[made["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert not described.get("PublicIpAddress") and described["PrivateIpAddress"]
    assert filtered(sandbox_reset, made["InstanceId"])  # from the laptop: the blackhole, as a private address from outside


def test_a_launch_in_a_subnet_without_public_ips_asks_for_one_and_is_reachable(ctx, sandbox_reset):
    subnet = private_subnet(sandbox_reset.ec2)
    runs: list[dict] = []
    said: list[str] = []
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.RunInstances", lambda **kw: runs.append(kw["params"]))
    plan = ctx.cloud.plan_launch("public1", type="t3.micro", subnet=subnet["SubnetId"])
    assert "assigns no public IPv4" in plan.network_note and "asks AWS for one" in plan.network_note
    inst = ctx.cloud.launch(plan, progress=said.append)
    (nic,) = runs[0]["NetworkInterfaces"]
    assert nic["AssociatePublicIpAddress"] is True and nic["SubnetId"] == subnet["SubnetId"] and nic["Groups"]
    assert "SubnetId" not in runs[0] and "SecurityGroupIds" not in runs[0]  # AWS refuses them beside an interface
    assert inst.public_ip
    assert not filtered(sandbox_reset, inst.id)


def test_a_spot_fleet_in_a_subnet_without_public_ips_asks_for_one_in_its_template(ctx, sandbox_reset):
    subnet = private_subnet(sandbox_reset.ec2)
    templates: list[dict] = []
    fleets: list[dict] = []
    ctx.cloud.ec2.meta.events.register(
        "before-parameter-build.ec2.CreateLaunchTemplate", lambda **kw: templates.append(kw["params"])
    )
    ctx.cloud.ec2.meta.events.register("before-parameter-build.ec2.CreateFleet", lambda **kw: fleets.append(kw["params"]))
    inst = ctx.cloud.launch("public2", type="t3.micro", spot=True, subnet=subnet["SubnetId"])
    (nic,) = templates[-1]["LaunchTemplateData"]["NetworkInterfaces"]
    assert nic["AssociatePublicIpAddress"] is True and nic["SubnetId"] == subnet["SubnetId"]
    overrides = [o for p in fleets for c in p["LaunchTemplateConfigs"] for o in c["Overrides"]]
    assert overrides and all(set(o) == {"InstanceType"} for o in overrides), overrides
    assert inst.public_ip and inst.lifecycle == "spot" and inst.zone == subnet["AvailabilityZone"]
    assert not filtered(sandbox_reset, inst.id)


def test_with_ssh_address_private_a_launch_there_stays_private_and_says_so(ctx, sandbox_reset, monkeypatch):
    subnet = private_subnet(sandbox_reset.ec2)
    from dataclasses import replace

    monkeypatch.setattr(ctx.cloud.aws, "settings", replace(ctx.cloud.aws.settings, ssh_address="private"))
    plan = ctx.cloud.plan_launch("private2", type="t3.micro", subnet=subnet["SubnetId"])
    assert not plan.associate_public_ip and "private-only" in plan.network_note
    assert "NetworkInterfaces" not in plan.params and plan.params["SubnetId"] == subnet["SubnetId"]
