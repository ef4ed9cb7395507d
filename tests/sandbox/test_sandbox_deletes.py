"""Deleting in the sandbox answers as AWS does, and ec2kit's delete verbs cope with it.

Plain boto3 against the sandbox daemon's endpoint for what AWS answers; a Cloud on the same endpoint
(its calls counted through botocore's event hooks) for what ec2kit does about it.
"""

from __future__ import annotations

import pytest
from aws_helpers import count_calls, looked_up_at_once
from botocore.exceptions import ClientError
from cli_helpers import wait_for

from ec2kit.aws.cloud import Cloud
from ec2kit.errors import WrongState
from ec2kit.sandbox import SANDBOX_CREDENTIALS
from ec2kit.sandbox.moto.images import UBUNTU_AMI_ID
from ec2kit.settings import Settings


@pytest.fixture
def cloud(sandbox, tmp_path):
    return Cloud(
        Settings(home=tmp_path, sandbox=True),
        endpoint_url=sandbox.info.endpoint_url,
        credentials=SANDBOX_CREDENTIALS,
        region=sandbox.info.region,
    )


def image_of_a_new_instance(sandbox, name: str) -> tuple[str, str, str]:
    """(instance id, image id, its snapshot id): an image made by CreateImage, as `inv freeze` makes one."""
    ec2 = sandbox.ec2
    with looked_up_at_once(sandbox):
        instance = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
        image = ec2.create_image(
            InstanceId=instance["InstanceId"],
            Name=name,
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "ec2kit:managed", "Value": "1"}]}],
        )["ImageId"]
        described = ec2.describe_images(ImageIds=[image])["Images"][0]
    [snap] = [b["Ebs"]["SnapshotId"] for b in described["BlockDeviceMappings"]]
    return instance["InstanceId"], image, snap


def test_a_snapshot_behind_an_image_answers_in_use_and_still_does_right_after_the_image_is_deregistered(sandbox):
    instance, image, snap = image_of_a_new_instance(sandbox, "sbx-del-lag")
    try:
        with pytest.raises(ClientError) as held:
            sandbox.ec2.delete_snapshot(SnapshotId=snap)
        assert held.value.response["Error"]["Code"] == "InvalidSnapshot.InUse" and image in str(held.value)
        sandbox.ec2.deregister_image(ImageId=image)
        with pytest.raises(ClientError) as lagging:  # AWS lets go of the snapshots a while after DeregisterImage
            sandbox.ec2.delete_snapshot(SnapshotId=snap)
        assert lagging.value.response["Error"]["Code"] == "InvalidSnapshot.InUse" and image in str(lagging.value)

        def deleted() -> bool:
            try:
                sandbox.ec2.delete_snapshot(SnapshotId=snap)
            except ClientError as err:
                assert err.response["Error"]["Code"] == "InvalidSnapshot.InUse"
                return False
            return True

        wait_for(deleted, 15, "the deregistered image to let go of its snapshot")
    finally:
        sandbox.ec2.terminate_instances(InstanceIds=[instance])


def test_deleting_an_attached_volume_answers_volume_in_use(sandbox):
    ec2 = sandbox.ec2
    instance = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    try:
        [root] = [b["Ebs"]["VolumeId"] for b in instance.get("BlockDeviceMappings") or []] or [
            v["VolumeId"]
            for v in ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}])[
                "Volumes"
            ]
        ]
        with pytest.raises(ClientError) as refused:
            ec2.delete_volume(VolumeId=root)
        assert refused.value.response["Error"]["Code"] == "VolumeInUse"
    finally:
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])


def test_delete_image_waits_until_ec2_lets_go_of_its_snapshots_and_deletes_them(sandbox, cloud):
    instance, image, snap = image_of_a_new_instance(sandbox, "sbx-del-wait")
    try:
        tries = count_calls(cloud, "DeleteSnapshot")
        deregistered = count_calls(cloud, "DeregisterImage")
        with pytest.raises(WrongState, match="sbx-del-wait"):
            cloud.delete_snapshot(snap)
        assert tries == [], "refused before any DeleteSnapshot call"
        gone = cloud.delete_image("sbx-del-wait")
        assert [s.id for s in gone] == [snap]
        assert deregistered == [{"ImageId": image}]
        assert len(tries) >= 2 and {t["SnapshotId"] for t in tries} == {snap}, "the first try met InvalidSnapshot.InUse"
        assert not sandbox.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snap]}])["Snapshots"]
        assert not sandbox.ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image]}])["Images"]
    finally:
        sandbox.ec2.terminate_instances(InstanceIds=[instance])
