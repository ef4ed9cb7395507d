"""The sandbox end to end: a real daemon, boto3 against its moto, real ssh into its hosts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cli_helpers import wait_for

from ec2kit import sandbox as sb
from ec2kit.errors import SandboxError
from ec2kit.sandbox.client.process import _pid_alive as pid_alive
from ec2kit.sandbox.daemon.volumes import by_id_path
from ec2kit.sandbox.moto.images import CANONICAL_OWNER, UBUNTU_AMI_ID
from ec2kit.settings import Settings


@pytest.fixture(scope="module", autouse=True)
def consistent(sandbox):
    """Plain boto3 here looks new ids up at once: the sandbox's eventual consistency (tested in
    tests/sandbox/test_consistency.py) is off for this module, and back on after it."""
    from ec2kit.sandbox import knobs

    knobs.eventual_consistency(sandbox.settings, 0)
    yield
    knobs.eventual_consistency(sandbox.settings, 1)


@pytest.fixture(scope="module")
def key(sandbox, tmp_path_factory) -> tuple[str, Path]:
    """(key pair name, private key path): an ed25519 key imported into the sandbox."""
    d = tmp_path_factory.mktemp("sbkey")
    path = d / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    name = f"test-{uuid.uuid4().hex[:8]}"
    sandbox.ec2.import_key_pair(KeyName=name, PublicKeyMaterial=path.with_suffix(".pub").read_bytes())
    return name, path


def ssh_group(sandbox) -> str:
    """A default-VPC group letting SSH in from anywhere (the sandbox gates SSH by security groups, as AWS does)."""
    ec2 = sandbox.ec2
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["tests-ssh"]}, {"Name": "vpc-id", "Values": [vpc]}]
    )
    if found["SecurityGroups"]:
        return found["SecurityGroups"][0]["GroupId"]
    gid = ec2.create_security_group(GroupName="tests-ssh", Description="ssh from anywhere", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=gid, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    return gid


def launch(sandbox, key, *, image: str = UBUNTU_AMI_ID, **kwargs) -> str:
    """run_instances one instance with our key, in a group that admits SSH; return its id."""
    kwargs.setdefault("SecurityGroupIds", [ssh_group(sandbox)])
    out = sandbox.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName=key[0], InstanceType="t3.micro", **kwargs)
    return out["Instances"][0]["InstanceId"]


def ssh(sandbox, key, instance_id: str, command: str, *, check: bool = True, strict: str = "accept-new") -> str:
    """Run ``command`` on the instance with the OpenSSH client, pinning its host key by instance id."""
    target = sandbox.ssh_target(instance_id, key_file=key[1], known_hosts=sandbox.settings.known_hosts)
    argv = [
        "ssh",
        "-i",
        str(target.key_file),
        "-p",
        str(target.port),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"HostKeyAlias={instance_id}",
        "-o",
        f"UserKnownHostsFile={target.known_hosts}",
        "-o",
        f"StrictHostKeyChecking={strict}",
        "-o",
        "ConnectTimeout=5",
        f"{target.user}@{target.host}",
        command,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"ssh {command!r} exited {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def state_of(sandbox, instance_id: str) -> str:
    return sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def host_entry(sandbox, instance_id: str) -> dict:
    hosts = sb.status(sandbox.settings)["hosts"]
    return next(h for h in hosts if h["instance_id"] == instance_id)


# ---------------------------------------------------------------------------------------------
def test_daemon_starts_resets_stops_and_is_reused_while_running(tmp_path):
    settings = Settings(home=tmp_path, sandbox=True)
    t0 = time.perf_counter()
    info = sb.up(settings)
    started = time.perf_counter() - t0
    try:
        print(f"\nMEASURE sandbox daemon start (up): {started:.2f}s")
        assert sb.ensure_running(settings).pid == info.pid
        ec2 = info.client()
        iid = ec2.run_instances(ImageId=UBUNTU_AMI_ID, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        wait_for(lambda: iid in [h["instance_id"] for h in sb.status(settings)["hosts"]], what="the host to appear")
        sb.reset(settings)
        after = sb.status(settings)
        assert after["running"] is True and after["hosts"] == []
        assert not (info.dir / "hosts" / iid).exists()
        assert ec2.describe_instances()["Reservations"] == []
        assert ec2.describe_images(ImageIds=[UBUNTU_AMI_ID])["Images"]  # the seeded image survives a reset
    finally:
        assert sb.down(settings) is True
    assert not (settings.sandbox_dir / "state.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    assert sb.status(settings)["running"] is False
    assert sb.down(settings) is False


def test_canonical_ubuntu_2404_image_is_seeded(sandbox):
    images = sandbox.ec2.describe_images(
        Owners=[CANONICAL_OWNER], Filters=[{"Name": "name", "Values": ["ubuntu/images/*24.04-amd64*"]}]
    )["Images"]
    assert [i["Name"] for i in images] == ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101"]
    assert len(sandbox.ec2.describe_images(Owners=["amazon", CANONICAL_OWNER])["Images"]) > 1  # moto's defaults kept


def test_running_instance_accepts_our_key_with_its_own_clean_home(sandbox, key):
    t0 = time.perf_counter()
    iid = launch(sandbox, key)
    out = ssh(sandbox, key, iid, 'echo "$HOME"; ls -A "$HOME" | wc -l; echo "$EC2KIT_INSTANCE_ID"')
    answered = time.perf_counter() - t0
    home, entries, env_id = out.splitlines()
    assert home == str(sandbox.info.dir / "hosts" / iid / "home")
    assert entries == "0"
    assert env_id == iid
    print(
        f"\nMEASURE run_instances -> ssh answered: {answered:.2f}s (sshd start {host_entry(sandbox, iid)['sshd_start_seconds']}s)"
    )


def test_metadata_endpoint_answers_instance_id_and_no_spot_notice(sandbox, key):
    iid = launch(sandbox, key)
    out = ssh(
        sandbox,
        key,
        iid,
        (
            'T=$(curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$EC2KIT_IMDS/latest/api/token"); '
            'curl -fsS -H "X-aws-ec2-metadata-token: $T" "$EC2KIT_IMDS/latest/meta-data/instance-id"; echo; '
            'curl -s -o /dev/null -w "%{http_code}" -H "X-aws-ec2-metadata-token: $T" "$EC2KIT_IMDS/latest/meta-data/spot/instance-action"; echo; '
            'curl -s -o /dev/null -w "%{http_code}" -H "X-aws-ec2-metadata-token: bogus" "$EC2KIT_IMDS/latest/meta-data/instance-id"'
        ),
    )
    assert out.splitlines() == [iid, "404", "401"]


def test_stop_closes_the_port_and_start_keeps_home_and_host_key(sandbox, key):
    iid = launch(sandbox, key)
    ssh(sandbox, key, iid, 'echo kept > "$HOME/marker"')
    port = host_entry(sandbox, iid)["port"]
    sandbox.ec2.stop_instances(InstanceIds=[iid])
    wait_for(lambda: not port_open(port), what="the stopped instance's sshd to close")
    assert sandbox.resolver.address(iid) is None
    sandbox.ec2.start_instances(InstanceIds=[iid])
    # StrictHostKeyChecking=yes: the pinned host key must not have changed across stop/start.
    assert ssh(sandbox, key, iid, 'cat "$HOME/marker"', strict="yes") == "kept"


def test_terminate_removes_the_host_and_its_home(sandbox, key):
    iid = launch(sandbox, key)
    ssh(sandbox, key, iid, "true")
    sandbox.ec2.terminate_instances(InstanceIds=[iid])
    wait_for(lambda: not (sandbox.info.dir / "hosts" / iid).exists(), what="the host directory to go")
    with pytest.raises(SandboxError, match=iid):
        sandbox.ssh_target(iid, key_file=key[1], known_hosts=sandbox.settings.known_hosts, timeout=0.5)


def test_instance_from_a_frozen_image_starts_with_the_source_home(sandbox, key):
    source = launch(sandbox, key)
    ssh(sandbox, key, source, 'mkdir -p "$HOME/proj" && echo frozen > "$HOME/proj/state"')
    image = sandbox.ec2.create_image(
        InstanceId=source,
        Name=f"img-{uuid.uuid4().hex[:6]}",
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "ec2kit:source-instance", "Value": source}]}],
    )["ImageId"]
    sandbox.resolver.address(source)  # a reconcile pass: the image's home is saved now
    ssh(sandbox, key, source, 'echo later > "$HOME/proj/after"')
    clone = launch(sandbox, key, image=image)
    assert ssh(sandbox, key, clone, 'cat "$HOME/proj/state"; ls "$HOME/proj"') == "frozen\nstate"


def test_spot_interruption_posts_a_notice_then_terminates(sandbox, key):
    iid = launch(sandbox, key, InstanceMarketOptions={"MarketType": "spot"})
    ssh(sandbox, key, iid, "true")
    sb.interrupt(sandbox.info, iid, delay=1.5)
    notice = json.loads(ssh(sandbox, key, iid, 'curl -fsS "$EC2KIT_IMDS/latest/meta-data/spot/instance-action"'))
    assert notice["action"] == "terminate" and notice["time"].endswith("Z")
    wait_for(lambda: state_of(sandbox, iid) == "terminated", timeout=20, what="the interrupted instance to terminate")
    wait_for(lambda: not (sandbox.info.dir / "hosts" / iid).exists(), what="the host to go")


def test_an_interruption_with_no_notice_terminates_at_once(sandbox, key):
    iid = launch(sandbox, key, InstanceMarketOptions={"MarketType": "spot"})
    ssh(sandbox, key, iid, "true")
    assert sb.interrupt(sandbox.info, iid, delay=0)["notice"] == "none"
    assert state_of(sandbox, iid) == "terminated"


def test_imds_refuses_tokenless_requests_when_the_launch_required_imdsv2(sandbox, key):
    required = launch(sandbox, key, MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2})
    optional = launch(sandbox, key)
    v1 = 'curl -sS -o /dev/null -w "%{http_code}" "$EC2KIT_IMDS/latest/meta-data/instance-id"'
    v2 = (
        'T=$(curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$EC2KIT_IMDS/latest/api/token") && '
        'curl -fsS -H "X-aws-ec2-metadata-token: $T" "$EC2KIT_IMDS/latest/meta-data/instance-id"'
    )
    assert ssh(sandbox, key, required, v1) == "401"
    assert ssh(sandbox, key, required, v2) == required
    assert ssh(sandbox, key, optional, v1) == "200"


def test_interrupting_an_unknown_instance_says_which(sandbox):
    with pytest.raises(SandboxError, match="i-00000000000000000"):
        sb.interrupt(sandbox.info, "i-00000000000000000")


@pytest.mark.parametrize(
    ("launch_args", "expected"),
    [
        ({"InstanceMarketOptions": {"MarketType": "spot"}}, "terminated"),
        ({}, "stopped"),
        ({"InstanceInitiatedShutdownBehavior": "terminate"}, "terminated"),
    ],
    ids=["spot-terminates", "on-demand-stops", "on-demand-with-terminate-behaviour"],
)
def test_poweroff_from_the_instance_honours_shutdown_behaviour(sandbox, key, launch_args, expected):
    iid = launch(sandbox, key, **launch_args)
    ssh(sandbox, key, iid, "$EC2KIT_POWEROFF >/dev/null")
    wait_for(lambda: state_of(sandbox, iid) == expected, timeout=20, what=f"{iid} to be {expected}")


@pytest.mark.skipif(not sb.volumes_supported(), reason="volumes need root and losetup")
def test_volume_data_survives_detach_snapshot_and_a_new_volume_on_another_instance(sandbox, key):
    ec2 = sandbox.ec2
    first, second = launch(sandbox, key), launch(sandbox, key)
    ssh(sandbox, key, first, "true")
    ssh(sandbox, key, second, "true")
    zone = ec2.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    vol = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    t0 = time.perf_counter()
    ec2.attach_volume(VolumeId=vol, InstanceId=first, Device="/dev/sdf")
    wait_for(lambda: by_id_path(vol).is_symlink(), what="the by-id symlink")
    print(f"\nMEASURE attach_volume -> by-id symlink: {time.perf_counter() - t0:.2f}s")
    dev, mnt = by_id_path(vol), f"/mnt/ec2kit-test-{vol}"
    ssh(sandbox, key, first, f"mkfs.ext4 -q -F {dev} && mkdir -p {mnt} && mount {dev} {mnt} && echo data > {mnt}/f")
    # Each instance has its own mount namespace, like separate machines.
    assert ssh(sandbox, key, second, f"mountpoint -q {mnt} && echo mounted || echo not-mounted") == "not-mounted"
    ssh(sandbox, key, first, f"umount {mnt}")
    ec2.detach_volume(VolumeId=vol, InstanceId=first)
    wait_for(lambda: not by_id_path(vol).is_symlink(), what="the symlink to go on detach")
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig={"Delay": 1, "MaxAttempts": 30})  # pending first
    vol2 = ec2.create_volume(SnapshotId=snap, AvailabilityZone=zone)["VolumeId"]
    ec2.attach_volume(VolumeId=vol2, InstanceId=second, Device="/dev/sdf")
    wait_for(lambda: by_id_path(vol2).is_symlink(), what="the second volume's symlink")
    dev2, mnt2 = by_id_path(vol2), f"/mnt/ec2kit-test-{vol2}"
    try:
        assert ssh(sandbox, key, second, f"mkdir -p {mnt2} && mount {dev2} {mnt2} && cat {mnt2}/f; umount {mnt2}") == "data"
    finally:
        ec2.terminate_instances(InstanceIds=[first, second])
        wait_for(lambda: not by_id_path(vol2).is_symlink(), what="volumes to detach on terminate")
        subprocess.run(["rmdir", mnt, mnt2], capture_output=True)
    attached = sb.status(sandbox.settings)["attached_volumes"]
    assert vol2 not in [a["volume_id"] for a in attached]
    files = [sandbox.info.dir / "volumes" / f"{v}.img" for v in (vol, vol2)] + [sandbox.info.dir / "snapshots" / f"{snap}.img"]
    assert all(f.exists() for f in files)
    ec2.delete_volume(VolumeId=vol)
    ec2.delete_volume(VolumeId=vol2)
    ec2.delete_snapshot(SnapshotId=snap)
    wait_for(lambda: not any(f.exists() for f in files), what="volume and snapshot files to be deleted")


def test_a_python_without_moto_fails_to_start_with_the_install_command(tmp_path, monkeypatch):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))  # a real interpreter lacking moto
    with pytest.raises(SandboxError, match=r"pip install 'ec2kit\[sandbox\]'"):
        sb.ensure_running(Settings(home=tmp_path / "home", sandbox=True))


@pytest.mark.sandbox
def test_an_unreadable_state_file_is_never_wiped_and_sandbox_down_resets_on_purpose(tmp_path):
    """A truncated state.json must not make the next command start a fresh sandbox over the old one."""
    from cli_helpers import assert_clean_error, run_inv

    home = tmp_path / "home"
    settings = Settings(home=home, sandbox=True)
    info = sb.ensure_running(settings)
    try:
        marker = info.dir / "hosts" / "keep-me"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("instance files")
        state = info.dir / "state.json"
        state.write_text(state.read_text()[:20])  # truncated mid-write, as a full disk would leave it
        result = run_inv("instances", home=home)
        assert_clean_error(result, "state.json", "inv sandbox.down")
        assert marker.read_text() == "instance files"
        assert pid_alive(info.pid)  # the old daemon was left alone
        assert run_inv("sandbox.down", home=home).code == 0
        wait_for(lambda: not pid_alive(info.pid), timeout=20, what="the old daemon to stop")
        assert run_inv("instances", home=home).code == 0  # a fresh sandbox starts on request
    finally:
        sb.down(settings)


def test_without_moto_the_sandbox_says_how_to_install_it_and_starts_nothing(tmp_path):
    from cli_helpers import ROOT

    blocker = (
        "import sys\n"
        "class NoMoto:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'moto':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoMoto())\n"
        "from ec2kit.cli import main\n"
        "sys.argv = ['ec2kit', 'instances']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"EC2KIT_HOME": str(tmp_path), "EC2KIT_SANDBOX": "1", "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc
    assert "needs moto's server" in proc.stderr and "pip install 'ec2kit[sandbox]'" in proc.stderr, proc.stderr
    assert not (tmp_path / "sandbox" / "daemon.log").exists()  # no daemon was spawned to fail in its log


def test_a_launch_in_another_region_than_the_sandbox_s_is_refused_clearly_and_starts_nothing(sandbox):
    from cli_helpers import run_inv

    home = sandbox.settings.home
    refused = run_inv("launch", "elsewhere", "--region", "us-west-1", home=home)
    assert refused.code != 0 and "Traceback" not in refused.text, refused
    assert "runs instances in us-east-1 only, not in us-west-1" in refused.err, refused.err
    west = boto3_in(sandbox, "us-west-1").describe_instances()["Reservations"]
    assert west == [], west  # nothing was made there to bill or to hang on


def boto3_in(sandbox, region: str):
    import boto3

    return boto3.client(
        "ec2", region_name=region, endpoint_url=sandbox.info.endpoint_url, aws_access_key_id="x", aws_secret_access_key="x"
    )
