"""The bad-input suite: every case in cases.toml is a hostile-but-fair input typed as a user would.

Each case runs `inv ...` as its own process against the sandbox and asserts: a non-zero exit, no
traceback, no "this is a bug", a message that names what is at fault (the case's ``needles``),
and no side effect: the sandbox's EC2 state, the target host's files, ec2kit's run records and
the project directory are exactly as before. Injection cases (``literal``) instead assert the
exact bytes that reached the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import run_inv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.sandbox

HERE = Path(__file__).parent
CASES = tomllib.loads((HERE / "cases.toml").read_text())["case"]
CATEGORIES = ("cli", "recipe", "state", "injection", "tag", "project", "runaway")


def test_every_case_has_a_known_category_and_a_unique_id():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert {c["category"] for c in CASES} <= set(CATEGORIES)


@pytest.fixture(scope="module")
def web(sandbox):
    """One running instance, 'bad-web', that cases may name; its host home is watched for changes."""
    home = sandbox.settings.home
    result = run_inv("launch", "bad-web", "--type", "t3.micro", home=home)
    assert result.code == 0, result
    listed = json.loads(run_inv("instances", "--json", home=home).out)
    [inst] = [i for i in listed if i["name"] == "bad-web" and i["state"] == "running"]
    yield inst["id"]
    run_inv("terminate", "bad-web", home=home)


def ec2_state(ec2) -> dict:
    """What a user pays for or could lose, as plain data."""
    instances = sorted(
        (i["InstanceId"], i["State"]["Name"], i["InstanceType"])
        for page in ec2.get_paginator("describe_instances").paginate()
        for r in page["Reservations"]
        for i in r["Instances"]
    )  # every page: moto pages at 100 reservations, and an instance a bad input made may be on the second
    return {
        "instances": instances,
        "volumes": sorted((v["VolumeId"], v["State"], v["Size"]) for v in ec2.describe_volumes()["Volumes"]),
        "snapshots": sorted(
            s["SnapshotId"]
            for s in ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": ["ec2kit:managed"]}])["Snapshots"]
        ),
        "images": sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]),
        "spot": sorted(r["SpotInstanceRequestId"] for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]),
        "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "keys": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
    }


def tree(root: Path) -> dict[str, str]:
    """path → size:sha256 for every regular file under ``root`` (mode too, for injection of chmod)."""
    out = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = str(path.relative_to(root))
        if rel.startswith((".cache", ".ec2kit-batch")):
            continue
        data = path.read_bytes()
        out[rel] = f"{oct(path.stat().st_mode & 0o7777)}:{len(data)}:{hashlib.sha256(data).hexdigest()[:16]}"
    return out


def runs_state(home: Path) -> list:
    from ec2kit.runs import Runs

    path = home / "runs.sqlite"
    return [(r.name, r.state, r.instance_id) for r in Runs(path).all()] if path.exists() else []


def host_home(sandbox, instance_id: str) -> Path:
    return sandbox.info.dir / "hosts" / instance_id / "home"


def fill(value, subs: dict[str, str]):
    if isinstance(value, str):
        for key, sub in subs.items():
            value = value.replace("{" + key + "}", sub)
        return value
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {fill(k, subs): fill(v, subs) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_fails_cleanly_and_changes_nothing(case, sandbox, web, tmp_path):
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "templates").mkdir()
    subs = {"web": "bad-web", "web_id": web, "project": str(project), "tmp": str(tmp_path), "home": str(sandbox.settings.home)}
    for rel, content in fill(case.get("files", {}), subs).items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("hex:"):
            path.write_bytes(bytes.fromhex(content[4:]))
        elif content == "<dir>":
            path.mkdir(exist_ok=True)
        elif content.startswith("<link:"):  # a symlink (to a file or directory outside the project, say)
            path.symlink_to(content[len("<link:") : -1])
        elif content.startswith("<steps:"):  # a recipe of N trivial steps
            count = int(content[len("<steps:") : -1])
            path.write_text("".join(f'[[step]]\nname = "s{i}"\nrun = "true"\n' for i in range(count)))
        elif content.startswith("<nested:"):  # `KEY = [[[...]]]` N levels deep
            key, _, depth = content[len("<nested:") : -1].partition(":")
            path.write_text(f"{key} = " + "[" * int(depth) + "]" * int(depth) + "\n")
        elif content.startswith("<big:"):  # a recipe padded with a comment to N bytes
            path.write_text('[[step]]\nname = "s"\nrun = "true"\n#' + "x" * int(content[len("<big:") : -1]) + "\n")
        elif content in ("<key>", "<otherkey>"):  # a fresh ed25519 key: its private half, or another key's public half
            import subprocess

            made = tmp_path / content.strip("<>")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(made)], check=True)
            path.write_bytes(made.read_bytes() if content == "<key>" else made.with_suffix(".pub").read_bytes())
            path.chmod(0o600)
        else:
            path.write_text(content)
    for rel in case.get("unreadable", []):
        (project / rel).chmod(0)
    env = fill(case.get("env", {}), subs)
    home = Path(env.pop("EC2KIT_HOME", sandbox.settings.home))
    for argv in case.get("setup", []):  # commands that make the situation (not checked for side effects)
        made = run_inv(*fill(argv, subs), home=home, env=env, cwd=project)
        assert made.code == 0, made
    host = host_home(sandbox, web)
    before = (ec2_state(sandbox.ec2), tree(host), runs_state(sandbox.settings.home), tree(project))

    if "tag_web" in case:  # what anyone allowed to tag instances in the account can write: bad-web's Name
        sandbox.ec2.create_tags(Resources=[web], Tags=[{"Key": "Name", "Value": fill(case["tag_web"], subs)}])
    try:
        result = run_inv(*fill(case["argv"], subs), home=home, env=env, cwd=project, timeout=case.get("timeout", 120))
    finally:
        if "tag_web" in case:
            sandbox.ec2.create_tags(Resources=[web], Tags=[{"Key": "Name", "Value": "bad-web"}])
    for text in fill(case.get("never", []), subs):  # a secret, a raw escape: never in the output
        assert text not in result.text, (text, result)

    if "literal" in case or "written" in case:  # an injection case: it may succeed, but only the literal bytes land
        for rel, expected in fill(case.get("literal", {}), subs).items():
            assert (host / rel).read_text() == expected, result
        for rel, spec in fill(case.get("written", {}), subs).items():  # a file written on this machine
            assert Path(rel).is_file(), (rel, result)
            text = Path(rel).read_text()
            assert all(t in text for t in spec.get("has", [])) and not any(t in text for t in spec.get("lacks", [])), text
        for needle in fill(case.get("needles", []), subs):
            assert needle.lower() in result.text.lower(), (needle, result)
        assert "Traceback" not in result.text and result.code == case.get("code", result.code), result
        for rel in case.get("absent", []):
            assert not (host / rel).exists() and not Path(fill(rel, subs)).exists(), (rel, result)
        return
    assert result.code != 0, result
    assert "Traceback" not in result.text, result
    assert "this is a bug" not in result.text.lower(), result
    for needle in fill(case["needles"], subs):
        assert needle.lower() in result.text.lower(), (needle, result)
    after = (ec2_state(sandbox.ec2), tree(host), runs_state(sandbox.settings.home), tree(project))
    assert after[0] == before[0], "EC2 state changed"
    assert after[1] == before[1], "the host's files changed"
    assert after[2] == before[2], "run records changed"
    assert after[3] == before[3], "the project directory changed"
    for rel in case.get("absent", []):
        assert not Path(fill(rel, subs)).exists(), rel
    if os.environ.get("EC2KIT_BAD_SHOW"):
        print(f"\n[{case['id']}] {result.text.strip()}")
