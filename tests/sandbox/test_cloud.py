"""Cloud against moto's real EC2 server over HTTP (no patched boto3)."""

from __future__ import annotations

import stat
import subprocess

import pytest
from aws_helpers import CREDS, UBUNTU, count_calls

from ec2kit.aws.cloud import Cloud
from ec2kit.aws.errors import translate_client_error
from ec2kit.aws.models import LAUNCH_TAG, MANAGED_TAG, SECURITY_GROUP
from ec2kit.aws.regions import find_region
from ec2kit.context import Context
from ec2kit.errors import (
    AlreadyExists,
    AwsError,
    ConfigError,
    CredentialsError,
    NotFound,
    QuotaExceeded,
    TimedOut,
    WrongState,
)
from ec2kit.settings import Settings


# -- launch and find -------------------------------------------------------------------
def test_launch_tags_instance_and_root_volume_and_sizes_the_disk(cloud):
    inst = cloud.launch("base", image=UBUNTU, disk=60, type="t3.micro")
    assert inst.state == "running" and inst.name == "base" and inst.type == "t3.micro"
    assert inst.tags[MANAGED_TAG] == "1" and inst.key_name == "ec2kit"
    (root,) = [v for v in cloud.volumes() if v.attached_to == inst.id]
    assert root.size == 60 and root.name == "base" and root.tags[MANAGED_TAG] == "1"
    assert cloud.instance("base").id == inst.id == cloud.instance(inst.id).id


def test_launch_reports_progress_and_sets_up_key_and_group(cloud):
    messages: list[str] = []
    cloud.launch("web", image=UBUNTU, type="t3.micro", progress=messages.append)
    assert messages and messages[0] == "instance web: launching"
    assert stat.S_IMODE(cloud.settings.key_file.stat().st_mode) == 0o600
    groups = cloud.ec2.describe_security_groups(GroupNames=[SECURITY_GROUP])["SecurityGroups"]
    ranges = [r["CidrIp"] for p in groups[0]["IpPermissions"] for r in p["IpRanges"]]
    assert ranges == ["127.0.0.1/32"]


def test_launching_a_duplicate_live_name_is_refused(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro")
    with pytest.raises(AlreadyExists, match="'base' already exists"):
        cloud.launch("base", image=UBUNTU, type="t3.micro")
    assert len(cloud.instances()) == 1


def test_two_launches_of_one_name_at_once_leave_one_instance_with_that_name(cloud):
    """Both launches passed the name check before either ran (the race of two `inv launch NAME`): the
    later one sees the earlier, removes what it made and says so."""
    first, second = (
        cloud.plan_launch("twin", image=UBUNTU, type="t3.micro"),
        cloud.plan_launch("twin", image=UBUNTU, type="t3.micro"),
    )
    kept = cloud.launch(first)
    with pytest.raises(AlreadyExists, match=f"keeps the name \\({kept.id}\\)"):
        cloud.launch(second)
    named = cloud.instances(tags={"Name": "twin"})
    assert [i.id for i in named if i.state in ("pending", "running")] == [kept.id]
    assert all(i.state in ("shutting-down", "terminated") for i in named if i.id != kept.id)


def test_instances_lists_everything_with_one_describe_call(cloud):
    for name in ("a", "b", "c"):
        cloud.launch(name, image=UBUNTU, type="t3.micro")
    calls = count_calls(cloud, "DescribeInstances")
    found = cloud.instances()
    assert [i.name for i in found] == ["a", "b", "c"]
    assert len(calls) == 1
    assert [i.name for i in cloud.instances(tags={"Name": "b"})] == ["b"]
    cloud.ec2.create_tags(Resources=[found[2].id], Tags=[{"Key": "role", "Value": "db"}])
    assert [i.name for i in cloud.instances(tags={"role": None})] == ["c"]


def test_unknown_instance_name_suggests_close_names(cloud):
    cloud.launch("trainer", image=UBUNTU, type="t3.micro")
    with pytest.raises(NotFound, match="Did you mean 'trainer'"):
        cloud.instance("trainr")


def test_two_instances_with_one_name_ask_for_the_id(cloud):
    for _ in range(2):
        cloud.ec2.run_instances(
            ImageId=UBUNTU,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "twin"}]}],
        )
    with pytest.raises(ConfigError, match="2 instances are named 'twin'.*instance id"):
        cloud.instance("twin")


def test_bogus_instance_type_is_refused_before_anything_is_created(cloud):
    with pytest.raises(NotFound, match="instance type named 'm5.humongous'"):
        cloud.launch("base", image=UBUNTU, type="m5.humongous")
    assert cloud.instances() == []


def test_bogus_image_id_and_name_are_refused(cloud):
    with pytest.raises(NotFound, match="image named 'ami-12345678'"):
        cloud.launch("base", image="ami-12345678", type="t3.micro")
    with pytest.raises(NotFound, match="image named 'nosuch'"):
        cloud.launch("base", image="nosuch", type="t3.micro")
    assert cloud.instances() == []


def test_default_image_without_ubuntu_lts_says_to_pass_an_image(cloud):
    with pytest.raises(NotFound, match="--image"):
        cloud.default_image()


def test_dry_run_launch_describes_the_call_and_creates_nothing(cloud):
    plan = cloud.plan_launch("base", image=UBUNTU, disk=30, type="t3.micro")
    assert plan.action == "run_instances" and cloud.check(plan) is True
    assert plan.params["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 30
    assert cloud.instances() == [] and not cloud.settings.key_file.exists()


def test_dry_run_freeze_and_create_volume_create_nothing(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro")
    assert cloud.check(cloud.plan_freeze("base")) is True
    volume = cloud.plan_volume(size=5, name="data")
    assert cloud.check(volume) is True and volume.params["Size"] == 5
    assert cloud.images() == [] and [v.name for v in cloud.volumes()] == ["base"]


def interrupt_after(cloud: Cloud, operation: str) -> None:
    """Simulate Ctrl-C right after AWS answered ``operation``, before ec2kit sees the answer."""

    def hook(**kwargs):
        raise KeyboardInterrupt

    cloud.ec2.meta.events.register(f"after-call.ec2.{operation}", hook)


def test_ctrl_c_right_after_run_instances_terminates_the_new_instance(cloud):
    interrupt_after(cloud, "RunInstances")
    with pytest.raises(KeyboardInterrupt):
        cloud.launch("base", image=UBUNTU, type="t3.micro")
    left = cloud.instances(states=["terminated"])
    assert [i.name for i in left] == ["base"] and cloud.instances() == []


def test_ctrl_c_during_a_spot_launch_cancels_the_request_and_terminates_the_instance(cloud):
    interrupt_after(cloud, "CreateTags")  # tagging the fulfilled spot instance
    with pytest.raises(KeyboardInterrupt):
        cloud.launch("cheap", image=UBUNTU, type="t3.micro", spot=True)
    assert cloud.ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []
    assert cloud.instances() == [] and len(cloud.instances(states=["terminated"])) == 1


def test_ctrl_c_right_after_create_fleet_terminates_the_instance_and_deletes_the_launch_template(cloud):
    interrupt_after(cloud, "CreateFleet")  # the instance exists, ec2kit never saw its id
    with pytest.raises(KeyboardInterrupt):
        cloud.launch("cheap", image=UBUNTU, type="t3.micro", types=["t3.small"], spot=True)
    assert cloud.instances() == [] and len(cloud.instances(states=["terminated"])) == 1
    assert cloud.ec2.describe_launch_templates()["LaunchTemplates"] == []
    assert [r["State"] for r in cloud.ec2.describe_spot_instance_requests()["SpotInstanceRequests"]] in ([], ["cancelled"])


def test_a_launch_template_a_killed_launch_left_is_found_by_its_tag(cloud):
    cloud.ec2.create_launch_template(
        LaunchTemplateName="ec2kit-0123456789abcdef",
        LaunchTemplateData={"ImageId": UBUNTU},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": LAUNCH_TAG, "Value": "0123456789abcdef"}]}],
    )
    cloud.ec2.create_launch_template(LaunchTemplateName="theirs", LaunchTemplateData={"ImageId": UBUNTU})
    assert cloud.stale_launch_templates() == []  # young: maybe a launch in another terminal
    assert [t["LaunchTemplateName"] for t in cloud.stale_launch_templates(older_than=0)] == ["ec2kit-0123456789abcdef"]
    assert cloud.cleanup_launch("0123456789abcdef") == []
    assert [t["LaunchTemplateName"] for t in cloud.ec2.describe_launch_templates()["LaunchTemplates"]] == ["theirs"]


def test_freeze_refuses_names_aws_would_reject(cloud):
    cloud.launch("xy", image=UBUNTU, type="t3.micro")
    with pytest.raises(ConfigError, match="'xy' cannot be an image name.*--image-name"):
        cloud.freeze("xy")


# -- lifecycle -------------------------------------------------------------------------
def test_change_type_while_running_is_refused(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro")
    with pytest.raises(WrongState, match="only change while it is stopped"):
        cloud.change_type("base", "t3.large")


def test_change_type_of_a_stopped_instance_changes_it(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro")
    assert cloud.stop("base").state == "stopped"
    with pytest.raises(NotFound):
        cloud.change_type("base", "t3.gigantic")
    assert cloud.change_type("base", "t3.large").type == "t3.large"
    assert cloud.start("base").state == "running"


def test_ssh_target_uses_the_public_ip_and_refuses_a_stopped_instance(cloud):
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    ctx = Context(cloud.settings, cloud=cloud)
    target = ctx.target(inst)
    assert (target.host, target.port, target.user, target.alias) == (inst.public_ip, 22, "ubuntu", inst.id)
    cloud.stop("base")
    with pytest.raises(WrongState, match="no public IP.*inv start base"):
        ctx.target("base")


def test_ssh_target_can_use_the_private_ip(moto_reset, tmp_path):
    cloud = Cloud(
        Settings(home=tmp_path, ssh_address="private", login_user="ec2-user"),
        endpoint_url=moto_reset,
        credentials=CREDS,
        region="us-east-1",
    )
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    target = Context(cloud.settings, cloud=cloud).target("base")
    assert (target.host, target.user, target.known_hosts) == (inst.private_ip, "ec2-user", tmp_path / "known_hosts")


class LoopbackReach:
    """The Reach contract (ec2kit.where): an instance in, the address of its sshd out, as the sandbox does."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def address(self, inst):
        from ec2kit.where import Address

        self.asked.append(inst.id)
        return Address("127.0.0.1", 2222, "me", "a loopback sshd")


def test_ssh_target_asks_the_reach_it_was_given(moto_reset, tmp_path):
    reach = LoopbackReach()
    cloud = Cloud(Settings(home=tmp_path), endpoint_url=moto_reset, credentials=CREDS, region="us-east-1")
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    target = Context(cloud.settings, cloud=cloud, reach=reach).target("base")
    assert (target.host, target.port, target.user, target.alias, target.name) == ("127.0.0.1", 2222, "me", inst.id, "base")
    assert (target.key_file, target.known_hosts) == (cloud.settings.key_file, cloud.settings.known_hosts)
    assert reach.asked == [inst.id]


def test_spot_launch_tags_the_instance_and_terminate_cancels_its_request(cloud):
    inst = cloud.launch("cheap", image=UBUNTU, type="t3.micro", spot=True, max_price=0.05)
    assert inst.lifecycle == "spot" and inst.state == "running" and inst.tags[MANAGED_TAG] == "1"
    reqs = cloud.ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
    assert [r["InstanceId"] for r in reqs] == [inst.id]
    assert cloud.terminate("cheap").state in ("shutting-down", "terminated")
    assert cloud.ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []  # moto drops cancelled ones
    assert cloud.instances() == []


# -- images ----------------------------------------------------------------------------
def test_freeze_tags_image_and_snapshots_and_finds_the_image_by_name(cloud):
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    messages: list[str] = []
    image = cloud.freeze("base", progress=messages.append)
    assert image.state == "available" and image.name == "base"
    assert image.tags == {"Name": "base", MANAGED_TAG: "1", "ec2kit:source-instance": inst.id}
    snaps = {s.id: s for s in cloud.snapshots()}
    assert image.snapshot_ids and all(snaps[s].name == "base" for s in image.snapshot_ids)
    assert cloud.image("base").id == image.id
    with pytest.raises(AlreadyExists, match="--image-name base-2"):
        cloud.freeze("base")
    other = cloud.launch("from-image", image="base", type="t3.micro")
    assert other.image_id == image.id


# -- volumes and snapshots -------------------------------------------------------------
def test_volumes_and_snapshots_work_by_name_end_to_end(cloud):
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro", zone="us-east-1a")
    vol = cloud.create_volume(size=20, zone="us-east-1a", name="data")
    assert (vol.state, vol.size, vol.tags[MANAGED_TAG]) == ("available", 20, "1")
    attached = cloud.attach_volume("data", "base")
    assert attached.attached_to == inst.id and attached.device == "/dev/sdf"
    with pytest.raises(WrongState, match="still attached"):
        cloud.delete_volume("data")
    detach_calls = count_calls(cloud, "DetachVolume")
    assert cloud.detach_volume("data").attached_to is None
    assert detach_calls[0]["InstanceId"] == inst.id
    snap = cloud.create_snapshot("data", name="data-v1", wait=True)
    assert snap.state == "completed" and cloud.snapshot("data-v1").id == snap.id
    cloud.delete_volume("data")
    restored = cloud.create_volume(snapshot="data-v1", zone="us-east-1a", name="data")
    assert restored.snapshot_id == snap.id and restored.size == 20
    with pytest.raises(AlreadyExists):
        cloud.create_volume(size=5, zone="us-east-1a", name="data")


def test_attach_picks_a_free_device_when_the_default_is_taken(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro", zone="us-east-1a")
    cloud.create_volume(size=5, zone="us-east-1a", name="one")
    cloud.create_volume(size=5, zone="us-east-1a", name="two")
    assert cloud.attach_volume("one", "base").device == "/dev/sdf"
    assert cloud.attach_volume("two", "base").device == "/dev/sdg"


def test_attach_across_zones_is_refused(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro", zone="us-east-1a")
    cloud.create_volume(size=5, zone="us-east-1b", name="far")
    with pytest.raises(ConfigError, match="us-east-1b.*us-east-1a"):
        cloud.attach_volume("far", "base")


def test_snapshots_listing_excludes_motos_builtin_snapshots_but_ids_still_work(cloud):
    assert cloud.snapshots() == []
    builtin = cloud.ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)["Snapshots"][0]["SnapshotId"]
    assert cloud.snapshot(builtin).id == builtin
    with pytest.raises(NotFound, match="snapshot named 'data'"):
        cloud.snapshot("data")


# -- key pair and security group -------------------------------------------------------
def test_ensure_key_pair_generates_locally_imports_once_and_is_idempotent(cloud):
    key = cloud.ensure_key_pair()
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert cloud.ensure_key_pair() == key
    pairs = cloud.ec2.describe_key_pairs()["KeyPairs"]
    assert [p["KeyName"] for p in pairs] == ["ec2kit"]


def test_key_pair_in_aws_without_the_local_file_is_a_clear_error(cloud):
    cloud.ensure_key_pair().unlink()
    with pytest.raises(ConfigError, match="EC2KIT_KEY_NAME"):
        cloud.ensure_key_pair()


def test_key_pair_in_aws_for_another_key_is_a_clear_error(cloud, user_key):
    cloud.ec2.import_key_pair(KeyName="ec2kit", PublicKeyMaterial=user_key.with_suffix(".pub").read_bytes())
    cloud.settings.keys_dir.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(cloud.settings.key_file)], check=True)
    with pytest.raises(ConfigError, match="does not match your local key.*delete-key-pair"):
        cloud.ensure_key_pair()


def test_key_fingerprints_match_what_aws_reports_for_an_imported_key():
    from ec2kit.aws.access import key_fingerprints

    # ssh-keygen -lf of this key prints SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host"
    assert "+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU" in key_fingerprints(line)


def test_security_group_is_idempotent_and_honours_the_cidr_setting(cloud, monkeypatch):
    first = cloud.ensure_security_group()
    monkeypatch.setenv("EC2KIT_SSH_CIDR", "203.0.113.7")
    assert cloud.ensure_security_group() == first
    assert cloud.ensure_security_group() == first
    perms = cloud.ec2.describe_security_groups(GroupIds=[first])["SecurityGroups"][0]["IpPermissions"]
    assert sorted(r["CidrIp"] for p in perms for r in p["IpRanges"]) == ["127.0.0.1/32", "203.0.113.7/32"]


def test_security_group_lets_ec2kit_instances_reach_each_other_once(cloud):
    gid = cloud.ensure_security_group()
    cloud.ensure_security_group()
    perms = cloud.ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissions"]
    pairs = [pair["GroupId"] for p in perms if p.get("FromPort") == 22 for pair in p.get("UserIdGroupPairs", [])]
    assert pairs == [gid]


def test_without_a_known_address_ssh_access_is_refused_unless_opened_explicitly(tmp_path, monkeypatch):
    monkeypatch.delenv("EC2KIT_SSH_CIDR", raising=False)
    monkeypatch.setenv("EC2KIT_CHECKIP_URL", "http://127.0.0.1:9/")  # nothing answers there
    aws = Cloud(Settings.from_env(home=tmp_path), credentials=CREDS, region="us-east-1")  # no endpoint: never called here
    with pytest.raises(ConfigError, match="could not learn your public IP address from http://127.0.0.1:9/.*EC2KIT_SSH_CIDR"):
        aws.ssh_cidr()
    assert aws.ssh_cidr(open_ssh=True) == "0.0.0.0/0"
    monkeypatch.setenv("EC2KIT_SSH_CIDR", "203.0.113.7")
    assert aws.ssh_cidr() == aws.ssh_cidr(open_ssh=True) == "203.0.113.7/32"


# -- errors and regions ----------------------------------------------------------------
def client_error(code: str, message: str = "", op: str = "RunInstances"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}, op)


@pytest.mark.parametrize(
    "code, kind, words",
    [
        ("AuthFailure", CredentialsError, "did not accept your credentials"),
        ("ExpiredToken", CredentialsError, "expired"),
        ("RequestExpired", CredentialsError, "expired"),
        ("InsufficientInstanceCapacity", AwsError, "another instance type"),
        ("MaxSpotInstanceCountExceeded", QuotaExceeded, "spot vCPU quota for this instance family"),
        ("VcpuLimitExceeded", QuotaExceeded, "aws service-quotas list-service-quotas --service-code ec2"),
        ("InstanceLimitExceeded", QuotaExceeded, "on-demand vCPU quota"),
        ("InvalidAMIID.NotFound", NotFound, "image named 'ami-0abc123'"),
        ("InvalidAMIID.Malformed", NotFound, "image"),
        ("InvalidInstanceID.NotFound", NotFound, "instance named 'ami-0abc123'"),
        ("InvalidParameterValue", AwsError, "rejected a parameter"),
        ("SpotMaxPriceTooLow", AwsError, "--max-price"),
        ("IncorrectInstanceState", WrongState, "wrong state"),
        ("InvalidKeyPair.Duplicate", AlreadyExists, "already exists"),
        ("OptInRequired", ConfigError, "AWS Regions"),
        ("PendingVerification", AwsError, "verifying your new account"),
        ("RequestLimitExceeded", AwsError, "throttling"),
        ("SomethingNew", AwsError, "SomethingNew"),
    ],
)
def test_client_errors_become_messages_a_person_can_act_on(code, kind, words):
    err = translate_client_error(client_error(code, "The id 'ami-0abc123' does not exist"), action="launch instance base")
    assert type(err) is kind
    assert words in str(err) and "launch instance base" in str(err)


def test_a_quota_error_for_a_known_type_names_its_familys_quota_and_the_request_command():
    message = "You have requested more vCPU capacity than your current vCPU limit of 8 allows for the instance bucket"
    err = translate_client_error(
        client_error("VcpuLimitExceeded", message), action="launch instance gpu1", instance_type="g5.xlarge"
    )
    assert type(err) is QuotaExceeded and "'Running On-Demand G and VT instances' (L-DB2E81BA)" in str(err)
    assert "its limit is 8 vCPUs" in str(err) and "Standard" not in str(err)
    assert "request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA --desired-value" in str(err)
    spot = translate_client_error(
        client_error("MaxSpotInstanceCountExceeded", "x"), action="launch", instance_type="p4d.24xlarge"
    )
    assert "'All P Spot Instance Requests' (L-7212CCBC)" in str(spot)


def test_unauthorized_operation_names_the_action_and_how_to_decode_the_message():
    err = translate_client_error(
        client_error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. Encoded authorization failure message: AbC-123_x",
        ),
        action="launch instance base",
    )
    assert isinstance(err, CredentialsError)
    assert "not allowed to launch instance base" in str(err)
    assert "aws sts decode-authorization-message --encoded-message AbC-123_x" in str(err)


def test_dry_run_operation_is_not_an_error():
    assert translate_client_error(client_error("DryRunOperation", "Request would have succeeded"), action="x") is None


def test_missing_credentials_and_unreachable_endpoints_are_translated():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, WaiterError

    assert "aws configure" in str(translate_client_error(NoCredentialsError(), action="list instances"))
    err = translate_client_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), action="list instances")
    assert isinstance(err, AwsError) and "Could not reach AWS to list instances" in str(err)
    assert isinstance(
        translate_client_error(WaiterError(name="x", reason="Max attempts exceeded", last_response={}), action="wait"), TimedOut
    )


def test_cloud_methods_translate_errors_from_a_real_call(cloud):
    from ec2kit.aws.models import Instance

    ghost = Instance(
        id="i-0123456789abcdef0",
        name="ghost",
        type="t3.micro",
        state="running",
        lifecycle="on-demand",
        public_ip=None,
        private_ip=None,
        launch_time=None,
        zone="us-east-1a",
        image_id=UBUNTU,
        key_name=None,
    )
    with pytest.raises(NotFound, match="instance named 'i-0123456789abcdef0'.*wait for instance ghost"):
        cloud.wait(ghost, "running")


def test_missing_credentials_are_reported_with_what_to_do(moto_server, tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    cloud = Cloud(Settings(home=tmp_path), endpoint_url=moto_server, region="us-east-1")
    with pytest.raises(CredentialsError, match="No usable AWS credentials were found to list instances.*aws configure"):
        cloud.instances()


def test_an_unreachable_endpoint_is_reported_without_a_traceback(tmp_path):
    from ec2kit.sandbox.daemon.sshd import free_port

    dead = Cloud(Settings(home=tmp_path), endpoint_url=f"http://127.0.0.1:{free_port()}", credentials=CREDS, region="us-east-1")
    with pytest.raises(AwsError, match="Could not reach AWS to list instances"):
        dead.instances()


@pytest.mark.parametrize(
    "text, code",
    [
        ("Ohio", "us-east-2"),
        ("frankfurt", "eu-central-1"),
        ("eu-west-1", "eu-west-1"),
        ("N. Virginia", "us-east-1"),
        ("Tokyo", "ap-northeast-1"),
    ],
)
def test_find_region_maps_names_to_codes(text, code):
    assert find_region(text) == code


def test_find_region_refuses_unknown_and_ambiguous_names():
    with pytest.raises(ConfigError, match="No AWS region matches 'Atlantis'.*us-east-1"):
        find_region("Atlantis")
    with pytest.raises(ConfigError, match="ambiguous.*us-east-2"):
        find_region("US East")


# -- default image (a moto server of our own, seeded through MOTO_AMIS_PATH) ---------------------
def canonical(ami_id: str, name: str, created: str) -> dict:
    return {
        "ami_id": ami_id,
        "name": name,
        "owner_id": "099720109477",
        "state": "available",
        "public": True,
        "image_location": f"amazon/{name}",
        "root_device_type": "ebs",
        "root_device_name": "/dev/sda1",
        "description": name,
        "image_type": "machine",
        "platform": None,
        "architecture": "x86_64",
        "virtualization_type": "hvm",
        "hypervisor": "xen",
        "sriov": "simple",
        "creation_date": created,
    }


@pytest.fixture(scope="module")
def seeded_moto(tmp_path_factory):
    import json
    import os
    import socket
    import subprocess
    import sys
    import time

    from ec2kit.sandbox.daemon.sshd import free_port

    amis = tmp_path_factory.mktemp("amis") / "amis.json"
    amis.write_text(
        json.dumps(
            [
                canonical(
                    "ami-0000000000000a404",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423",
                    "2024-04-23T00:00:00.000Z",
                ),
                canonical(
                    "ami-0000000000000b404",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101",
                    "2026-11-01T00:00:00.000Z",
                ),
                canonical(
                    "ami-0000000000000c404",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20261120",
                    "2026-11-20T00:00:00.000Z",
                )
                | {"architecture": "arm64"},
                canonical(
                    "ami-0000000000000a204",
                    "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20261115",
                    "2026-11-15T00:00:00.000Z",
                ),
            ]
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_AMIS_PATH": str(amis)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_default_image_is_the_newest_ubuntu_24_04_amd64_then_22_04(seeded_moto, tmp_path):
    cloud = Cloud(Settings(home=tmp_path), endpoint_url=seeded_moto, credentials=CREDS, region="us-east-1")
    assert cloud.default_image().id == "ami-0000000000000b404"
    for ami in ("ami-0000000000000a404", "ami-0000000000000b404"):
        cloud.ec2.deregister_image(ImageId=ami)
    assert cloud.default_image().id == "ami-0000000000000a204"


def test_without_ssm_an_alias_is_found_by_searching_images_and_the_note_says_so(seeded_moto, tmp_path):
    # a plain moto server has none of AWS's public image parameters: GetParameter fails
    cloud = Cloud(Settings(home=tmp_path), endpoint_url=seeded_moto, credentials=CREDS, region="us-east-1")
    image, why = cloud.choose_image(None, "t4g.large")
    assert image.id == "ami-0000000000000c404"
    assert why.startswith("ubuntu 24.04 arm64 because t4g.large is Graviton")
    assert why.endswith("(SSM parameter unreadable: ParameterNotFound; found by searching images instead)")
    image, _ = cloud.choose_image("ubuntu-22.04", "t3.micro")
    assert image.id == "ami-0000000000000a204"


# -- how Cloud is built: plain services over one session ------------------------------------------------
SERVICES = ("types", "compute", "amis", "storage", "access", "networks", "image_choice", "quotas", "fleets", "launcher")


def test_every_service_is_a_plain_class_sharing_the_clouds_one_session(tmp_path):
    cloud = Cloud(Settings(home=tmp_path), region="us-east-1")
    for name in SERVICES:
        service = getattr(cloud, name)
        assert type(service).__mro__ == (type(service), object), f"{name} inherits {type(service).__mro__[1:]}"
        assert service.aws is cloud.aws
    assert cloud.storage.instances is cloud.compute and cloud.fleets.quotas is cloud.quotas
    assert cloud.storage.images is cloud.amis and cloud.image_choice.images is cloud.amis
    assert cloud.launcher.fleets is cloud.fleets and cloud.networks.access is cloud.access


def test_the_cloud_answers_every_public_verb_of_its_services_with_the_services_own_method(tmp_path):
    import inspect

    cloud = Cloud(Settings(home=tmp_path), region="us-east-1")
    renamed = {("types", "info"): "instance_type", ("types", "describe"): None}  # describe fills a cache: not a verb
    missing = []
    for name in SERVICES:
        service = getattr(cloud, name)
        for verb, _ in inspect.getmembers(type(service), inspect.isfunction):
            if verb.startswith("_") or renamed.get((name, verb), verb) is None:
                continue
            if getattr(cloud, renamed.get((name, verb), verb), None) != getattr(service, verb):
                missing.append(f"{name}.{verb}")
    assert missing == [], "forward these in Cloud._forward"
    assert cloud.freeze == cloud.amis.freeze and cloud.launch.__doc__ == cloud.launcher.launch.__doc__
