"""AWS behaviours moto never shows, imitated by the sandbox, and ec2kit coping with each (issue 22).

1. Eventual consistency: a just-created instance, group, volume or image answers NotFound to its
   first lookup by id; ec2kit's launch, SSH group set-up, volume and freeze paths wait through it.
2. A pending snapshot refuses CreateVolume (IncorrectState); ec2kit waits for it to complete.
9. CreateImage maps every attached EBS volume into the image; ec2kit's freeze leaves data volumes out.

Every test starts from ``sandbox_reset`` (moto wiped, every knob back to its default).
"""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from ec2kit import sandbox as sb
from ec2kit.aws.models import MANAGED_TAG
from ec2kit.context import Context
from ec2kit.sandbox.moto.images import UBUNTU_AMI_ID


@pytest.fixture
def ctx(sandbox_reset):
    with Context(sandbox_reset.settings, quiet=True) as c:
        yield c


def _error(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def _default_vpc(ec2) -> str:
    return str(ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"])


# -- the imitations themselves ------------------------------------------------------------------
def test_a_new_instance_group_and_volume_answer_not_found_to_their_first_lookup_only(sandbox_reset):
    ec2 = sandbox_reset.ec2
    iid = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    assert _error(lambda: ec2.describe_instances(InstanceIds=[iid])) == "InvalidInstanceID.NotFound"
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceId"] == iid

    gid = ec2.create_security_group(GroupName=f"g-{uuid.uuid4().hex[:6]}", Description="d", VpcId=_default_vpc(ec2))["GroupId"]
    rule = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.1/32"}]}]
    assert _error(lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rule)) == "InvalidGroup.NotFound"
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rule)

    vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    assert _error(lambda: ec2.create_tags(Resources=[vid], Tags=[{"Key": "k", "Value": "v"}])) == "InvalidVolume.NotFound"
    assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["VolumeId"] == vid

    assert sb.knobs.not_found_lookups(sandbox_reset.settings) == [
        ("DescribeInstances", iid),
        ("AuthorizeSecurityGroupIngress", gid),
        ("CreateTags", vid),
    ]


def test_eventual_consistency_can_be_turned_off(sandbox_reset):
    sb.knobs.eventual_consistency(sandbox_reset.settings, 0)
    ec2 = sandbox_reset.ec2
    iid = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceId"] == iid
    assert sb.knobs.not_found_lookups(sandbox_reset.settings) == []


def test_a_pending_snapshot_refuses_create_volume_with_incorrect_state_until_it_completes(sandbox_reset):
    sb.knobs.snapshot_pending(sandbox_reset.settings, 1.5)
    ec2 = sandbox_reset.ec2
    vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vid)
    assert snap["State"] == "pending"
    refused = _error(lambda: ec2.create_volume(SnapshotId=snap["SnapshotId"], AvailabilityZone="us-east-1a"))
    assert refused == "IncorrectState"
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap["SnapshotId"]], WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    made = ec2.create_volume(SnapshotId=snap["SnapshotId"], AvailabilityZone="us-east-1a")
    assert made["SnapshotId"] == snap["SnapshotId"]


def test_create_image_maps_every_attached_volume_unless_told_no_device(sandbox_reset):
    sb.knobs.eventual_consistency(sandbox_reset.settings, 0)
    ec2 = sandbox_reset.ec2
    inst = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    vid = ec2.create_volume(Size=3, AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    ec2.attach_volume(VolumeId=vid, InstanceId=inst["InstanceId"], Device="/dev/sdf")

    taken = ec2.create_image(InstanceId=inst["InstanceId"], Name="with-data")["ImageId"]
    devices = {m["DeviceName"]: m for m in ec2.describe_images(ImageIds=[taken])["Images"][0]["BlockDeviceMappings"]}
    assert set(devices) == {"/dev/sda1", "/dev/sdf"}
    assert devices["/dev/sdf"]["Ebs"]["VolumeSize"] == 3
    assert devices["/dev/sdf"]["Ebs"]["DeleteOnTermination"] is False  # a launch from it leaves a volume behind

    left = ec2.create_image(
        InstanceId=inst["InstanceId"], Name="without-data", BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "NoDevice": ""}]
    )["ImageId"]
    mappings = ec2.describe_images(ImageIds=[left])["Images"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mappings] == ["/dev/sda1"]


# -- ec2kit coping -----------------------------------------------------------------------------
def test_launch_waits_through_not_found_of_the_new_instance_and_of_the_new_ssh_group(ctx, sandbox_reset):
    inst = ctx.cloud.launch("fresh1")
    assert inst.state == "running"
    refused = sb.knobs.not_found_lookups(sandbox_reset.settings)
    assert ("DescribeInstances", inst.id) in refused  # the path taken: the new id did answer NotFound first
    assert any(action == "AuthorizeSecurityGroupIngress" for action, _ in refused)
    assert [i.id for i in ctx.cloud.instances() if i.name == "fresh1"] == [inst.id]


def test_a_spot_launch_through_create_fleet_tags_and_waits_through_not_found(ctx, sandbox_reset):
    inst = ctx.cloud.launch("fleet1", spot=True, type="t3.micro")
    assert inst.state == "running" and inst.lifecycle == "spot"
    refused = sb.knobs.not_found_lookups(sandbox_reset.settings)
    assert [a for a, i in refused if i == inst.id] in (["CreateTags"], ["DescribeInstances"]), refused


def test_a_new_volume_is_waited_for_and_attached_through_not_found(ctx, sandbox_reset):
    inst = ctx.cloud.launch("vols1")
    vol = ctx.cloud.create_volume(name="vols1-data", size=2, zone=inst.zone)
    attached = ctx.cloud.attach_volume(vol, inst)
    assert attached.attached_to == inst.id
    assert ("DescribeVolumes", vol.id) in sb.knobs.not_found_lookups(sandbox_reset.settings)


def test_freeze_waits_through_not_found_of_the_new_image_and_tags_its_snapshots_at_creation(ctx, sandbox_reset):
    ctx.cloud.launch("frz1")
    image = ctx.cloud.freeze("frz1", image_name="frz1-image")
    assert image.state == "available" and image.name == "frz1-image"
    assert ("DescribeImages", image.id) in sb.knobs.not_found_lookups(sandbox_reset.settings)
    for snapshot_id in image.snapshot_ids:
        tags = {
            t["Key"]: t["Value"] for t in sandbox_reset.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["Tags"]
        }
        assert tags["Name"] == "frz1-image" and tags[MANAGED_TAG] == "1"


def test_freeze_with_a_data_volume_attached_leaves_the_volume_out_of_the_image(ctx, sandbox_reset):
    inst = ctx.cloud.launch("frz2")
    vol = ctx.cloud.create_volume(name="frz2-data", size=2, zone=inst.zone)
    ctx.cloud.attach_volume(vol, inst)
    plan = ctx.cloud.plan_freeze("frz2", image_name="frz2-image")
    assert plan.left_out == ("/dev/sdf",)
    image = ctx.cloud.freeze(plan)
    mappings = sandbox_reset.ec2.describe_images(ImageIds=[image.id])["Images"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mappings] == ["/dev/sda1"]


def test_a_volume_from_a_pending_snapshot_waits_for_it_to_complete_with_progress(ctx, sandbox_reset):
    sb.knobs.snapshot_pending(sandbox_reset.settings, 2)
    vol = ctx.cloud.create_volume(name="snapsrc", size=1)
    snap = ctx.cloud.create_snapshot(vol, name="snapsrc-snap")
    assert snap.state == "pending"
    lines: list[str] = []
    made = ctx.cloud.create_volume(name="from-snap", snapshot="snapsrc-snap", progress=lines.append)
    assert sandbox_reset.ec2.describe_volumes(VolumeIds=[made.id])["Volumes"][0]["SnapshotId"] == snap.id
    assert any(line.startswith("snapshot snapsrc-snap: pending") for line in lines), lines


def test_spot_run_from_a_pending_snapshot_waits_for_it_before_paying_for_an_instance(ctx, sandbox_reset, tmp_path):
    from ec2kit import actions
    from ec2kit.spotrun import SpotRunOptions, spot_run

    base = ctx.cloud.launch("pending-src", type="t3.micro")
    try:
        actions.wait_ssh(ctx, base)
        vol = actions.make_volume(ctx, base.id, size=1, name="pending-src-data")  # formatted ext4
        sb.knobs.snapshot_pending(sandbox_reset.settings, 4)
        snap = actions.snapshot(ctx, vol.id, name="pending-data", wait=False)
        assert snap.state == "pending"
    finally:
        ctx.forget_host(base.id)
        ctx.cloud.terminate(base.id)
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\nls /mnt/data > "$EC2KIT_RESULTS/ok.txt"\n')
    lines: list[str] = []
    fast = dict(pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, pull_wait=15)
    options = SpotRunOptions(
        script=str(script), name="pending-run", type="t3.micro", results=str(tmp_path / "results"),
        snapshot="pending-data", out=lines.append, say=lines.append, **fast,
    )  # fmt: skip
    rec = spot_run(ctx, options)
    assert rec.state == "succeeded", (rec, lines)
    waited = [
        n for n, line in enumerate(lines) if line.startswith("waiting for the data snapshot: snapshot pending-data: pending")
    ]
    assert waited and waited[0] == 0, lines  # the first thing the run said: before any instance existed
    assert ctx.cloud.snapshot("pending-data").state == "completed"
