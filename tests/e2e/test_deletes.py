"""Deleting what costs money, end to end on the sandbox: `inv delete-volume`, `delete-snapshot`, `delete-image`
refuse what is in use (saying why) and remove the rest; `inv cleanup --older-than` offers unused storage.

Each `inv` is a process, as a user's shell runs it; what is left is read back from the sandbox's EC2
through boto3 (and its volume/image files on disk).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from aws_helpers import looked_up_at_once
from cli_helpers import ROOT, assert_clean_error, run_inv
from pty_helpers import ANSI, inv_argv
from rich.cells import cell_len

pytestmark = pytest.mark.usefixtures("sandbox")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sandbox volumes are loop devices, which need root")


@pytest.fixture
def home(sandbox):
    return sandbox.settings.home


def inv_json(home, *args, cwd=None):
    result = run_inv(*args, "--json", home=home, cwd=cwd)
    assert result.code == 0, result
    return json.loads(result.out)


@pytest.fixture
def machine(home):
    """``machine(NAME)``: a running instance from `inv launch` (its JSON), terminated after the test."""
    names: list[str] = []

    def launch(name: str) -> dict:
        names.append(name)
        return inv_json(home, "launch", name, "--type", "t3.micro")

    yield launch
    for name in names:
        run_inv("terminate", name, home=home)


def answer_on_terminal(home, argv: list[str], answer: str, *, columns: int = 80, cwd=None) -> tuple[int, list[str]]:
    """``inv ARGV`` on a pty ``columns`` wide, typing ``answer`` at its ``[y/N]`` question; (exit code, lines)."""
    import fcntl
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("COLUMNS", "LINES")}
    env.update(EC2KIT_HOME=str(home), EC2KIT_SANDBOX="1", PYTHONPATH=str(ROOT))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        inv_argv(*argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd or ROOT, start_new_session=True
    )
    os.close(slave)
    out, asked = b"", False
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not data:
            break
        out += data
        if not asked and b"[y/N]" in out:
            os.write(master, answer.encode() + b"\n")
            asked = True
    os.close(master)
    code = proc.wait(timeout=60)
    assert asked, out.decode(errors="replace")
    return code, [line.rstrip("\r") for line in ANSI.sub("", out.decode("utf-8", "replace")).split("\n")]


def volume_ids(sandbox) -> set[str]:
    return {v["VolumeId"] for v in sandbox.ec2.describe_volumes()["Volumes"]}


def snapshot_ids(sandbox) -> set[str]:
    return {s["SnapshotId"] for s in sandbox.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def image_ids(sandbox) -> set[str]:
    return {i["ImageId"] for i in sandbox.ec2.describe_images(Owners=["self"])["Images"]}


def blank_volume(sandbox, name: str, size: int = 2) -> str:
    """An unattached ec2kit volume (as `inv make-volume` tags one), made through boto3."""
    return sandbox.ec2.create_volume(
        Size=size,
        AvailabilityZone="us-east-1a",
        VolumeType="gp3",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": name}, {"Key": "ec2kit:managed", "Value": "1"}]}
        ],
    )["VolumeId"]


@needs_root
def test_delete_volume_refuses_an_attached_volume_and_deletes_it_once_detached(home, sandbox, machine):
    inst = machine("del-vol")
    vol = inv_json(home, "make-volume", "del-vol", "--size", "1", "--name", "del-data")
    assert vol["attached_to"] == inst["id"]

    refused = run_inv("delete-volume", "del-data", "--yes", home=home)
    assert_clean_error(refused, "del-data", "attached to instance del-vol", inst["id"], "inv detach-volume del-data", "--detach")
    assert vol["id"] in volume_ids(sandbox), "an attached volume is never deleted"

    asked = run_inv("delete-volume", "del-data", "--detach", home=home, stdin="")  # no terminal, no --yes
    assert_clean_error(asked, "without --yes")
    assert vol["id"] in volume_ids(sandbox)

    gone = inv_json(home, "delete-volume", "del-data", "--detach", "--yes")
    assert (gone["kind"], gone["id"], gone["size"], gone["done"]) == ("volume", vol["id"], 1, True)
    assert gone["monthly"] == pytest.approx(0.08)
    assert vol["id"] not in volume_ids(sandbox)
    mounted = run_inv("connect", "del-vol", "--command", "mountpoint -q /mnt/data && echo still || echo unmounted", home=home)
    assert mounted.out.strip() == "unmounted", mounted


def test_on_a_terminal_delete_volume_asks_first_and_a_no_keeps_the_volume(home, sandbox):
    vol = blank_volume(sandbox, "del-asked", size=4)
    code, lines = answer_on_terminal(home, ["delete-volume", "del-asked"], "n")
    assert code == 0 and "Nothing deleted." in lines, lines
    [question] = [line for line in lines if "[y/N]" in line]
    assert f"Delete volume del-asked ({vol}), 4 GB (about $0.32 a month)?" in question, question
    assert vol in volume_ids(sandbox)
    code, lines = answer_on_terminal(home, ["delete-volume", "del-asked"], "y")
    assert code == 0 and any(line.startswith("Deleted volume del-asked") for line in lines), lines
    assert vol not in volume_ids(sandbox)


def test_delete_volume_deletes_an_unattached_volume_by_id_and_says_what_it_saved(home, sandbox):
    vol = blank_volume(sandbox, "del-loose", size=3)
    done = run_inv("delete-volume", vol, "--yes", home=home)
    assert done.code == 0, done
    assert f"Deleted volume del-loose ({vol})" in done.out and "$0.24 a month" in done.out, done
    assert vol not in volume_ids(sandbox)
    assert_clean_error(run_inv("delete-volume", vol, "--yes", home=home), vol)


def test_a_snapshot_behind_an_image_is_refused_naming_the_image_and_goes_with_the_image(home, sandbox, machine, tmp_path):
    machine("del-img")
    image = inv_json(home, "freeze", "del-img", "--image-name", "del-image")
    [snap] = image["snapshot_ids"]

    refused = run_inv("delete-snapshot", snap, "--yes", home=home)
    assert_clean_error(refused, snap, "image del-image", image["id"], "inv delete-image del-image")
    assert snap in snapshot_ids(sandbox)
    with pytest.raises(Exception, match="InvalidSnapshot.InUse"):  # and the sandbox answers as AWS does
        sandbox.ec2.delete_snapshot(SnapshotId=snap)

    # an image a project's ec2kit.toml names is refused, naming the file and line
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "ec2kit.toml").write_text('type = "t3.small"\nimage = "del-image"\n')
    named = run_inv("delete-image", "del-image", "--yes", home=home, cwd=project)
    assert_clean_error(named, "del-image", f"{project / 'ec2kit.toml'}:2", "not deleted")
    # ... and so is one a recipe launches from (by id)
    (project / "ec2kit.toml").unlink()
    recipe = project / "recipes" / "gpu-box.toml"
    recipe.write_text(f'description = "a box"\n[[step]]\nname = "box"\ntask = "launch"\nimage = "{image["id"]}"\n')
    assert_clean_error(run_inv("delete-image", "del-image", "--yes", home=home, cwd=project), str(recipe), "not deleted")
    assert image["id"] in image_ids(sandbox) and snap in snapshot_ids(sandbox)

    recipe.unlink()
    gone = inv_json(home, "delete-image", "del-image", "--yes", cwd=project)
    assert (gone["id"], gone["snapshots"], gone["done"]) == (image["id"], [snap], True)
    assert image["id"] not in image_ids(sandbox)
    assert snap not in snapshot_ids(sandbox), "the image's snapshot is deleted with it"
    assert not (sandbox.settings.sandbox_dir / "images" / image["id"]).exists(), "the sandbox dropped the saved disk"


def test_delete_image_refuses_an_image_someone_else_owns(home, sandbox, machine):
    inst = machine("del-other")
    refused = run_inv("delete-image", inst["image_id"], "--yes", home=home)
    assert_clean_error(refused, inst["image_id"], "not one of yours")
    assert sandbox.ec2.describe_images(ImageIds=[inst["image_id"]])["Images"]


def test_a_live_runs_volume_and_snapshot_are_refused_naming_the_run(home, sandbox):
    from ec2kit.runs import RunRecord, Runs

    runs = Runs(sandbox.settings.runs_db)
    record = runs.create(RunRecord(name="del-live-run", state="running", options={"snapshot": "del-run-data"}))
    with looked_up_at_once(sandbox):  # plain boto3 tags the new volume at once
        vol = blank_volume(sandbox, "del-run-vol")
        sandbox.ec2.create_tags(Resources=[vol], Tags=[{"Key": "ec2kit:run", "Value": "del-live-run"}])
    snap = sandbox.ec2.create_snapshot(
        VolumeId=vol,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": [{"Key": "Name", "Value": "del-run-data"}, {"Key": "ec2kit:managed", "Value": "1"}],
            }
        ],
    )["SnapshotId"]
    try:
        refused = run_inv("delete-volume", "del-run-vol", "--yes", home=home)
        assert_clean_error(refused, "live run del-live-run", "inv stop-run del-live-run")
        assert_clean_error(run_inv("delete-snapshot", "del-run-data", "--yes", home=home), "live run del-live-run", snap)
        assert vol in volume_ids(sandbox) and snap in snapshot_ids(sandbox)
    finally:
        record.state = "failed"
        runs.save(record)
    assert run_inv("delete-snapshot", "del-run-data", "--yes", home=home).code == 0
    assert run_inv("delete-volume", "del-run-vol", "--yes", home=home).code == 0
    assert vol not in volume_ids(sandbox) and snap not in snapshot_ids(sandbox)


def test_a_lone_snapshot_is_deleted_by_name(home, sandbox):
    vol = blank_volume(sandbox, "del-snapsrc")
    snap = sandbox.ec2.create_snapshot(
        VolumeId=vol,
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": "del-lone"}, {"Key": "ec2kit:managed", "Value": "1"}]}
        ],
    )["SnapshotId"]
    sandbox.ec2.delete_volume(VolumeId=vol)
    assert_clean_error(run_inv("delete-snapshot", "del-lone", home=home, stdin=""), "without --yes")
    assert snap in snapshot_ids(sandbox)
    gone = inv_json(home, "delete-snapshot", "del-lone", "--yes")
    assert (gone["kind"], gone["id"], gone["name"]) == ("snapshot", snap, "del-lone")
    assert snap not in snapshot_ids(sandbox)


def test_cleanup_offers_old_unused_storage_with_its_cost_and_keeps_what_is_named_or_young(sandbox_reset, machine, tmp_path):
    sandbox = sandbox_reset
    home = sandbox.settings.home
    machine("cl-box")
    kept_image = inv_json(home, "freeze", "cl-box", "--image-name", "cl-kept")
    spare_image = inv_json(home, "freeze", "cl-box", "--image-name", "cl-spare")
    vol = blank_volume(sandbox, "cl-data", size=10)
    project = tmp_path / "project"
    project.mkdir()
    (project / "ec2kit.toml").write_text('image = "cl-kept"\n')
    snapshots = snapshot_ids(sandbox)  # moto's own images have snapshots too

    young = inv_json(home, "cleanup", cwd=project)  # default --older-than 7d: everything here is minutes old
    assert not [x for x in young if x["kind"] in ("volume", "snapshot", "image")], young

    offered = inv_json(home, "cleanup", "--older-than", "0", cwd=project)
    by_id = {x["id"]: x for x in offered}
    assert set(by_id) == {vol, spare_image["id"]}, offered  # not the named image, nor any image's snapshot
    assert (by_id[vol]["kind"], by_id[vol]["size"], by_id[vol]["monthly"]) == ("volume", 10, pytest.approx(0.8))
    assert by_id[spare_image["id"]]["kind"] == "image" and by_id[spare_image["id"]]["monthly"] > 0

    table = run_inv("cleanup", "--older-than", "0s", home=home, cwd=project, stdin="")
    assert_clean_error(table, "without --yes")
    assert "$/month" in table.out and "cl-data" in table.out and "costs up to $" in table.out, table
    assert vol in volume_ids(sandbox)

    code, lines = answer_on_terminal(home, ["cleanup", "--older-than", "0"], "n", columns=80, cwd=project)
    assert code == 0 and "Nothing removed." in lines, lines
    assert not [line for line in lines if cell_len(line) > 80 and "[y/N]" not in line], lines
    [header] = [line for line in lines if line.startswith("kind ")]
    assert {"kind", "name", "$/month"} <= set(header.split()), header
    assert vol in volume_ids(sandbox)

    removed = run_inv("cleanup", "--older-than", "0", "--yes", home=home, cwd=project)
    assert removed.code == 0 and "Removed 2 resource(s); up to $" in removed.out, removed
    assert vol not in volume_ids(sandbox)
    assert image_ids(sandbox) == {kept_image["id"]}
    assert snapshot_ids(sandbox) == snapshots - set(spare_image["snapshot_ids"]), "the spare image's snapshot went with it"
    assert set(kept_image["snapshot_ids"]) <= snapshots - set(spare_image["snapshot_ids"])
