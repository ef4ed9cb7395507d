"""The host cache: a warm `inv provision NAME` asks AWS nothing, and a stale entry is found out by
connecting (moved, reused name, another machine's key) and refreshed from AWS, never trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from cli_helpers import ROOT, run_inv, wait_for

from ec2kit.aws.models import Instance
from ec2kit.hostcache import HostCache, ModeMemo, credentials_fingerprint
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.target import SshTarget

WHO = """\
description = "writes who the host thinks it is"

[[step]]
name = "who"
template = "who.j2"
dest = "~/who"
"""


def record(id: str, name: str, state: str = "running", ip: str = "54.1.2.3", tags_in_metadata: bool = True) -> Instance:
    return Instance.from_raw(
        {
            "InstanceId": id,
            "State": {"Name": state},
            "PublicIpAddress": ip,
            "Tags": [{"Key": "Name", "Value": name}],
            "MetadataOptions": {"InstanceMetadataTags": "enabled" if tags_in_metadata else "disabled"},
        }
    )


# -- the cache file, host-free ------------------------------------------------------------------


def test_a_name_is_found_only_when_exactly_one_fresh_running_instance_has_it(tmp_path):
    cache = HostCache(tmp_path, "sandbox")
    cache.remember([record("i-1", "web"), record("i-2", "db", state="stopped"), record("i-3", "twin"), record("i-4", "twin")])
    found = cache.lookup(["web", "i-1"])
    assert found is not None and found["web"].id == "i-1" and found["i-1"].public_ip == "54.1.2.3"
    assert cache.lookup(["web", "db"]) is None  # stopped: AWS must say so
    assert cache.lookup(["twin"]) is None  # two of them: AWS's lookup reports the ambiguity
    assert cache.lookup(["nobody"]) is None
    assert (tmp_path / "hosts.json").stat().st_mode & 0o777 == 0o600
    assert HostCache(tmp_path, "aws:prof:us-east-1:x").lookup(["web"]) is None  # another account scope


def test_an_instance_without_tags_in_its_metadata_is_never_served_from_the_cache(tmp_path):
    cache = HostCache(tmp_path, "sandbox")
    cache.remember([record("i-1", "old", tags_in_metadata=False), record("i-2", "new")])
    assert cache.lookup(["old"]) is None  # its host could not confirm its name: AWS is asked
    assert cache.lookup(["new"]) is not None


def test_entries_expire_a_full_listing_drops_vanished_ones_and_forget_removes(tmp_path):
    cache = HostCache(tmp_path, "sandbox")
    cache.remember([record("i-1", "web"), record("i-2", "db")])
    assert HostCache(tmp_path, "sandbox", ttl=0).lookup(["web"]) is None
    cache.remember([record("i-2", "db")], complete=True)  # web is no longer listed: gone
    assert cache.lookup(["web"]) is None and cache.lookup(["db"]) is not None
    cache.remember_address("i-2", "54.1.2.3", "127.0.0.1", 2222, "ubuntu")
    assert cache.address("i-2", "54.1.2.3") == {"public_ip": "54.1.2.3", "host": "127.0.0.1", "port": 2222, "user": "ubuntu"}
    assert cache.address("i-2", "54.9.9.9") is None  # a new public IP: the address is not the old one
    cache.forget(["i-2"])
    assert cache.lookup(["db"]) is None and cache.address("i-2", "54.1.2.3") is None


def test_a_damaged_cache_file_is_ignored_and_replaced(tmp_path):
    (tmp_path / "hosts.json").write_text("{not json")
    cache = HostCache(tmp_path, "sandbox")
    assert cache.lookup(["web"]) is None
    cache.remember([record("i-1", "web")])
    assert cache.lookup(["web"]) is not None


def test_the_credentials_answer_is_reused_only_while_the_credential_sources_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    memo = ModeMemo(tmp_path)
    before = credentials_fingerprint(None)
    memo.put(before, True)
    assert memo.get(credentials_fingerprint(None)) is True
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIA\n")
    assert memo.get(credentials_fingerprint(None)) is None  # credentials appeared: ask boto3 again
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    assert credentials_fingerprint(None) != before
    assert "AKIA" not in credentials_fingerprint(None)  # names and file stamps only, never a value


# -- end to end on the sandbox --------------------------------------------------------------------


@pytest.fixture
def home(sandbox):
    return sandbox.settings.home


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "recipes" / "who.toml").write_text(WHO)
    (tmp_path / "templates" / "who.j2").write_text("{{ host.id }} {{ host.public_ip }}\n")
    return tmp_path


def ids_of(dirs: dict[str, Path]) -> dict[str, str]:
    return {name: d.name for name, d in dirs.items()}


def who(home: Path, instance_id: str) -> str:
    return (home / "sandbox" / "hosts" / instance_id / "home" / "who").read_text().strip()


def provision(home: Path, project: Path, *hosts: str, env: dict[str, str] | None = None):
    result = run_inv("provision", ",".join(hosts), "--recipe", "who", home=home, cwd=project, env=env)
    assert result.code == 0, result
    return result


def imports_after_provision(home: Path, project: Path, host: str, env: dict[str, str] | None = None) -> set[str]:
    """Run `provision HOST` in a fresh interpreter as the CLI does; the AWS modules it imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['provision-check', 'provision', {host!r}, '--recipe', 'who']\n"
        "from ec2kit.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'ec2kit')))\n"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full_env.update({"EC2KIT_SANDBOX": "1", "EC2KIT_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project, env=full_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(eval(proc.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own printed list


def aws_calls(sandbox) -> list[str]:
    """Every API call made to the sandbox so far by anyone but the daemon (its request log)."""
    path = sandbox.info.dir / "requests.log"
    return path.read_text().splitlines() if path.exists() else []


def cached_transport(sandbox, home: Path, instance_id: str) -> OpenSshTransport:
    """The OpenSSH transport a cached run uses for this instance (same address, so the same master)."""
    entry = json.loads((home / "hosts.json").read_text())["scopes"]["sandbox"]["addresses"][instance_id]
    settings = sandbox.settings
    target = SshTarget(entry["host"], int(entry["port"]), entry["user"], settings.key_file, instance_id, settings.known_hosts)
    return OpenSshTransport(target)


def accepted(home: Path, instance_id: str) -> int:
    """SSH connections the instance's sshd has authenticated so far."""
    log = home / "sandbox" / "hosts" / instance_id / "sshd.log"
    return log.read_text(errors="replace").count("Accepted publickey")


def test_a_cached_run_with_no_open_connection_starts_one_and_asks_aws_nothing(sandbox, home, project, launched):
    iid = ids_of(launched("hc-cold"))["hc-cold"]
    provision(home, project, "hc-cold")  # first contact: AWS says where it is, the cache keeps it
    master = cached_transport(sandbox, home, iid)
    master.disconnect()  # the shared connection is gone, as a minute later: the cached run must dial
    assert not master.shared_connection_alive()
    calls, conns = len(aws_calls(sandbox)), accepted(home, iid)

    result = provision(home, project, "hc-cold")
    assert aws_calls(sandbox)[calls:] == []  # not one AWS call: the cache was used and trusted
    assert "not where last seen" not in result.text
    assert accepted(home, iid) == conns + 1  # one new connection: ssh -N -f, then the batch through it
    assert master.shared_connection_alive()  # the master it started outlives the command
    assert who(home, iid).startswith(iid)
    master.disconnect()


def test_a_cached_run_checks_the_host_key_pin_and_runs_nothing_on_a_host_that_fails_it(sandbox, home, project, launched):
    iid = ids_of(launched("hc-pinned"))["hc-pinned"]
    provision(home, project, "hc-pinned")
    cached_transport(sandbox, home, iid).disconnect()
    before = (home / "sandbox" / "hosts" / iid / "home" / "who").stat().st_mtime_ns
    kh = sandbox.settings.known_hosts
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "hc-other-key")], check=True)
    assert other.returncode == 0
    stranger = (home / "hc-other-key.pub").read_text().split()[:2]
    kept = [line for line in kh.read_text().splitlines() if iid not in line]
    kh.write_text("\n".join([*kept, f"{iid} {' '.join(stranger)}"]) + "\n")  # the pin says another key

    result = run_inv("provision", "hc-pinned", "--recipe", "who", home=home, cwd=project)
    assert result.code != 0 and "host key" in result.text.lower(), result
    assert (home / "sandbox" / "hosts" / iid / "home" / "who").stat().st_mtime_ns == before  # nothing ran there
    kh.write_text("\n".join(kept) + "\n")


def test_a_warm_provision_of_a_named_host_imports_no_boto3_and_asks_the_sandbox_nothing(sandbox, home, project, launched):
    ids = ids_of(launched("hc-warm"))
    provision(home, project, "hc-warm")  # first contact: AWS says where it is, the cache keeps it
    calls = len(aws_calls(sandbox))
    modules = imports_after_provision(home, project, "hc-warm")
    assert aws_calls(sandbox)[calls:] == []
    assert "boto3" not in modules and "botocore" not in modules, sorted(modules)
    assert not {"ec2kit.aws.cloud", "ec2kit.sandbox"} & modules
    assert who(home, ids["hc-warm"]).startswith(ids["hc-warm"])
    # the switch: EC2KIT_HOST_CACHE=0 asks AWS every time
    assert "boto3" in imports_after_provision(home, project, "hc-warm", env={"EC2KIT_HOST_CACHE": "0"})


def test_an_instance_stopped_and_started_behind_our_back_is_found_at_its_new_address(sandbox, home, project, launched):
    ids = ids_of(launched("hc-moved"))
    iid = ids["hc-moved"]
    provision(home, project, "hc-moved")
    old_port = sandbox.resolver.address(iid)["port"]
    old_ip = who(home, iid).split()[1]
    sandbox.ec2.stop_instances(InstanceIds=[iid])
    wait_for(lambda: sandbox.resolver.address(iid) is None, what="the host to stop")
    sandbox.ec2.start_instances(InstanceIds=[iid])
    wait_for(lambda: sandbox.resolver.address(iid), what="the host to boot again")
    assert sandbox.resolver.address(iid)["port"] != old_port  # a new address, as a new public IP on AWS

    calls = len(aws_calls(sandbox))
    result = provision(home, project, "hc-moved")
    assert "not where last seen" in result.text
    assert "DescribeInstances" in aws_calls(sandbox)[calls:]  # the stale entry sent it to AWS
    new_ip = who(home, iid).split()[1]
    assert new_ip != old_ip  # the facts come from AWS's fresh answer, not the stale record
    assert sandbox.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PublicIpAddress"] == new_ip
    # and the cache learnt the new place: the next run goes straight there
    calls = len(aws_calls(sandbox))
    assert "not where last seen" not in provision(home, project, "hc-moved").text
    assert aws_calls(sandbox)[calls:] == []


def test_a_name_reused_by_a_new_instance_reaches_the_new_one(sandbox, home, project, launched):
    ids = ids_of(launched("hc-reused", "hc-newcomer"))
    provision(home, project, "hc-reused")
    old, new = ids["hc-reused"], ids["hc-newcomer"]
    sandbox.ec2.terminate_instances(InstanceIds=[old])
    wait_for(lambda: sandbox.resolver.address(old) is None, what="the old host to go")
    sandbox.ec2.create_tags(Resources=[new], Tags=[{"Key": "Name", "Value": "hc-reused"}])

    calls = len(aws_calls(sandbox))
    result = provision(home, project, "hc-reused")
    assert "not where last seen" in result.text
    assert "DescribeInstances" in aws_calls(sandbox)[calls:]
    assert who(home, new).startswith(new)
    run_inv("terminate", new, home=home)


def test_an_address_that_now_answers_with_another_hosts_key_is_refreshed_not_trusted(sandbox, home, project, launched):
    ids = ids_of(launched("hc-pin-a", "hc-pin-b"))
    a, b = ids["hc-pin-a"], ids["hc-pin-b"]
    provision(home, project, "hc-pin-a", "hc-pin-b")
    b_before = (home / "sandbox" / "hosts" / b / "home" / "who").stat().st_mtime_ns
    # the cache now says A lives where B's sshd listens (as if A's address went to B on AWS)
    path = home / "hosts.json"
    data = json.loads(path.read_text())
    addresses = data["scopes"]["sandbox"]["addresses"]
    addresses[a] = {**addresses[b], "public_ip": addresses[a]["public_ip"]}
    path.write_text(json.dumps(data))
    time.sleep(0.01)

    result = provision(home, project, "hc-pin-a")
    assert "not where last seen" in result.text
    assert who(home, a).startswith(a)
    assert who(home, b).startswith(b)  # nothing ran on B under A's name
    assert (home / "sandbox" / "hosts" / b / "home" / "who").stat().st_mtime_ns == b_before


def test_a_host_renamed_behind_our_back_is_not_acted_on_and_the_job_runs_on_the_instance_named_so(
    sandbox, home, project, launched
):
    ids = ids_of(launched("hc-first", "hc-second"))
    first, second = ids["hc-first"], ids["hc-second"]
    provision(home, project, "hc-first", "hc-second")  # both in the cache, with their addresses and pins
    first_before = (home / "sandbox" / "hosts" / first / "home" / "who").stat().st_mtime_ns
    # outside ec2kit: hc-first becomes hc-first-old, hc-second takes the name hc-first
    sandbox.ec2.create_tags(Resources=[first], Tags=[{"Key": "Name", "Value": "hc-first-old"}])
    sandbox.ec2.create_tags(Resources=[second], Tags=[{"Key": "Name", "Value": "hc-first"}])
    calls = len(aws_calls(sandbox))

    result = provision(home, project, "hc-first")
    assert "not the instance last seen under that name" in result.text and "hc-first-old" in result.text
    assert "DescribeInstances" in aws_calls(sandbox)[calls:]  # it asked AWS who hc-first is now
    assert (home / "sandbox" / "hosts" / first / "home" / "who").stat().st_mtime_ns == first_before  # nothing ran there
    assert who(home, second).startswith(second)  # the job ran on the instance now named hc-first
    # and the cache learnt it: the next run goes to the right host with no AWS call
    calls = len(aws_calls(sandbox))
    provision(home, project, "hc-first")
    assert aws_calls(sandbox)[calls:] == []
    run_inv("terminate", "hc-first-old", home=home)


def test_an_instance_launched_by_ec2kit_shows_its_name_in_its_instance_metadata(sandbox, launched):
    iid = ids_of(launched("hc-imds"))["hc-imds"]
    [inst] = sandbox.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
    assert inst["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    imds = f"{sandbox.info.control_url}/i/{iid}/latest"
    token = urlopen(Request(f"{imds}/api/token", method="PUT"), timeout=10).read().decode()
    ask = lambda key: urlopen(Request(f"{imds}/meta-data/{key}", headers={"X-aws-ec2-metadata-token": token}), timeout=10)  # noqa: E731
    assert ask("tags/instance/Name").read() == b"hc-imds"
    sandbox.ec2.create_tags(Resources=[iid], Tags=[{"Key": "Name", "Value": "hc-imds-renamed"}])
    assert ask("tags/instance/Name").read() == b"hc-imds-renamed"  # the current tags, not the launch's
    assert b"Name" in ask("tags/instance").read().split(b"\n")
    sandbox.ec2.modify_instance_metadata_options(InstanceId=iid, InstanceMetadataTags="disabled")
    with pytest.raises(HTTPError) as err:
        ask("tags/instance/Name")
    assert err.value.code == 404  # tags not in its metadata: as AWS, the endpoint is not there
    sandbox.ec2.create_tags(Resources=[iid], Tags=[{"Key": "Name", "Value": "hc-imds"}])


def test_a_task_step_first_waits_for_the_host_to_be_confirmed_and_runs_once(sandbox, home, project, launched):
    from ec2kit.context import Context
    from ec2kit.recipe import register_task, run_recipe
    from ec2kit.recipe.report import CollectingReporter
    from ec2kit.settings import Settings

    seen: list[str | None] = []

    @register_task("hc_test_seen")
    def seen_task(tc):
        seen.append(tc.target)

    ids = ids_of(launched("hc-task", "hc-task-next"))
    old, new = ids["hc-task"], ids["hc-task-next"]
    provision(home, project, "hc-task", "hc-task-next")
    sandbox.ec2.create_tags(Resources=[old], Tags=[{"Key": "Name", "Value": "hc-task-old"}])
    sandbox.ec2.create_tags(Resources=[new], Tags=[{"Key": "Name", "Value": "hc-task"}])
    recipe = project / "recipes" / "task-first.toml"
    recipe.write_text('[[step]]\ntask = "hc_test_seen"\n\n[[step]]\nname = "mark"\nrun = "echo $EC2KIT_INSTANCE_ID > ~/marked"\n')
    old_home = home / "sandbox" / "hosts" / old / "home"

    with Context(Settings(home=home, sandbox=True), quiet=True) as ctx:
        report = run_recipe(ctx, str(recipe), hosts=["hc-task"], reporter=CollectingReporter())
    assert report.ok, report
    assert seen == ["hc-task"]  # the task ran once, after the host was found out and AWS asked
    assert (home / "sandbox" / "hosts" / new / "home" / "marked").read_text().strip() == new
    assert not (old_home / "marked").exists()
    run_inv("terminate", "hc-task-old", home=home)
