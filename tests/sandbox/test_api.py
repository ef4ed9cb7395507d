"""The Python API (``from ec2kit import EC2``) on the sandbox: real moto EC2, real sshd per instance.

Each verb is the one the command line calls, so these tests check what the facade adds: live
objects, results people can read, displays in Jupyter and IPython, tab completion, clean errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_inv

from ec2kit.api import EC2, CommandResult, Instance, Listing, RecipeReport, Run, UnknownInstance, examples_dir, identifier
from ec2kit.errors import ConfigError, NotFound, RecipeError, Terminated, UnexpectedExit, WrongState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ec2(sandbox):
    with EC2(home=sandbox.settings.home, sandbox=True, quiet=True) as api:
        yield api


@pytest.fixture(scope="module")
def box(ec2):
    """One running instance shared by the module's read-mostly tests; terminated at the end."""
    inst = ec2.launch("api-box", type="t3.small", disk=16)
    yield inst
    inst.terminate()


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# -- without a cloud ----------------------------------------------------------------------------


def test_importing_the_api_and_making_an_ec2_loads_no_heavy_library(tmp_path):
    code = (
        "import sys\n"
        "from ec2kit import EC2\n"
        f"ec2 = EC2(sandbox=True, home={str(tmp_path)!r})\n"
        "repr(ec2)\n"
        "heavy = [m for m in ('boto3', 'botocore', 'rich', 'jinja2', 'matplotlib', 'IPython', 'fabric') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert out.strip() == "heavy: []"


def test_identifiers_for_instance_names_are_attribute_names_that_never_start_with_an_underscore():
    assert identifier("gpu-1") == "gpu_1"
    assert identifier("web.prod") == "web_prod"
    assert identifier("1st") == "i_1st"
    assert identifier("class") == "class_"
    assert identifier("_hidden") == "hidden"
    assert identifier("-") == "i_"
    for name in ("gpu-1", "1st", "class", "_hidden", "a b"):
        assert identifier(name).isidentifier()


def test_examples_ship_with_the_package():
    assert (examples_dir() / "train.sh").is_file() and (examples_dir() / "train.py").is_file()


# -- instances, commands, files -------------------------------------------------------------------


def test_launch_returns_a_running_instance_that_answers_ssh(ec2, box):
    assert isinstance(box, Instance)
    assert (box.name, box.state, box.type) == ("api-box", "running", "t3.small")
    assert box.id in [i.id for i in ec2.instances()]
    assert "api-box" in ec2 and "api-box-nope" not in ec2
    assert ec2["api-box"] == box and ec2.instance(box.id) == box

    result = box.ssh().run("echo hello; echo oops >&2")
    assert isinstance(result, CommandResult)
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("hello\n", "oops\n", 0, True)
    assert str(result) == "hello\n"


def test_a_failing_command_raises_with_its_exit_code_unless_check_is_off(box):
    failed = box.ssh().run("echo partial; exit 3", check=False)
    assert (failed.exit_code, failed.ok, failed.stdout) == (3, False, "partial\n")
    with pytest.raises(UnexpectedExit) as err:
        box.run("echo partial; exit 3")
    assert err.value.exit_code == 3 and "partial" in str(err.value)


def test_put_and_get_round_trip_a_file(box, tmp_path):
    data = os.urandom(4096) + b"\n<end>"
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    remote = box.put(local, "~/api-blob.bin")
    assert remote.startswith("/") and remote.endswith("/api-blob.bin")
    assert box.run("wc -c < ~/api-blob.bin").stdout.strip() == str(len(data))
    back = box.get("~/api-blob.bin", tmp_path / "back" / "blob.bin")
    assert back.read_bytes() == data
    assert box.ssh().put_bytes(b"tiny", "~/api-tiny.txt", mode=0o600).endswith("/api-tiny.txt")
    assert box.run("stat -c %a ~/api-tiny.txt; cat ~/api-tiny.txt").stdout == "600\ntiny"


def test_ssh_command_logs_in_with_the_pinned_key(box):
    cmd = box.ssh_command(ports=[8888])
    assert cmd.startswith("ssh ") and f"HostKeyAlias={box.id}" in cmd and "-L 8888:localhost:8888" in cmd


@pytest.mark.skipif(os.geteuid() != 0, reason="volumes in the sandbox need root (loop devices)")
def test_volumes_are_made_mounted_snapshotted_remounted_and_deleted(ec2, box):
    vol = ec2.create_volume(box, 1, name="api-data")
    assert (vol.name, vol.attached_to, vol.size) == ("api-data", box.id, 1)
    assert box.run("mountpoint -q /mnt/data && echo kept > /mnt/data/x && echo writable").stdout == "writable\n"
    assert any(v.id == vol.id for v in ec2.volumes())

    snap = ec2.snapshot(vol, name="api-snap", wait=True)
    assert (snap.name, snap.state) == ("api-snap", "completed")
    assert box.run("mountpoint -q /mnt/data", check=False).exit_code != 0, "unmounted and detached first"
    assert ec2.volume(vol.id).attached_to is None
    assert ec2.mount_volume(vol, box).attached_to == box.id
    assert box.run("cat /mnt/data/x").stdout == "kept\n"

    with pytest.raises(WrongState, match="detach=True"):  # Python's spelling of --detach
        ec2.delete_volume(vol)
    assert box.run("mountpoint -q /mnt/data").exit_code == 0, "a refused delete leaves the volume mounted"
    assert not ec2.delete_volume(vol, detach=True, dry_run=True).done
    assert ec2.volume(vol.id).attached_to == box.id, "a dry run changes nothing"
    gone = ec2.delete_volume(vol, detach=True)
    assert (gone.id, gone.done) == (vol.id, True)
    assert box.run("mountpoint -q /mnt/data", check=False).exit_code != 0
    assert not [v for v in ec2.volumes() if v.id == vol.id]
    copy = ec2.create_volume(box, snapshot="api-snap", name="api-data2")
    try:
        assert box.run("cat /mnt/data/x").stdout == "kept\n"
    finally:
        ec2.delete_volume(copy, detach=True)
    assert ec2.delete_snapshot("api-snap").id == snap.id
    assert not [s for s in ec2.snapshots() if s.id == snap.id]


def test_snapshot_of_an_instances_root_disk_by_its_name_never_detaches_it(ec2, box):
    root = [v for v in ec2.volumes() if v.attached_to == box.id and v.name == "api-box"]
    assert len(root) == 1, root  # the root disk carries the instance's Name tag, so `inv snapshot api-box` finds it
    with pytest.raises(WrongState, match="root disk of instance"):
        ec2.detach_volume("api-box")
    snap = ec2.snapshot("api-box", name="api-root-snap")
    try:
        assert snap.volume_id == root[0].id
        assert ec2.volume(root[0].id).attached_to == box.id, "the root disk stays attached"
        assert box.run("echo still-up").stdout == "still-up\n"
    finally:
        ec2.delete_snapshot(snap.id)


def test_cleanup_ages_are_checked_before_anything_is_listed_and_named_as_python_spells_them(ec2):
    with pytest.raises(ConfigError, match=r"older_than='7'.*older_than='7d'"):
        ec2.cleanup(older_than="7")
    with pytest.raises(ConfigError, match="0 up to 100 years"):
        ec2.cleanup(older_than=-5.0)
    assert all(x.kind not in ("volume", "snapshot", "image") for x in ec2.cleanup(older_than=86400 * 365 * 50))


def test_create_volume_needs_a_size_or_a_snapshot(ec2, box):
    with pytest.raises(ConfigError, match="size"):
        ec2.create_volume(box)


# -- recipes ---------------------------------------------------------------------------------------

RECIPE = """
description = "api test recipe"

[vars]
greeting = "hello"

[[step]]
name = "greeting file"
run = "echo {{ greeting }} > ~/api-greeting.txt"
creates = "~/api-greeting.txt"
"""


def test_a_recipe_checks_then_runs_then_has_nothing_left_to_do(ec2, box, tmp_path):
    path = tmp_path / "api-greet.toml"
    path.write_text(RECIPE)
    recipe = ec2.recipe(str(path))
    assert recipe.steps == ["greeting file"] and recipe.vars == {"greeting": "hello"}

    checked = recipe.run(on=[box], vars={"greeting": "hi"}, check=True)
    assert isinstance(checked, RecipeReport) and checked.ok and checked.check
    assert [s.status for s in checked.hosts["api-box"].steps] == ["changed"]
    assert box.run("test -e ~/api-greeting.txt", check=False).exit_code == 1, "check mode changed nothing"

    done = recipe.run(on="api-box", vars={"greeting": "hi"})
    assert done.ok and not done.check and done.hosts["api-box"].recap["changed"] == 1
    assert box.run("cat ~/api-greeting.txt").stdout == "hi\n"

    again = recipe.run(on=["api-box"])
    assert again.ok and [s.status for s in again.hosts["api-box"].steps] == ["skipped"]
    html = again._repr_html_()
    assert "api-box" in html and "greeting file" in html and "skipped" in html


def test_a_recipe_refuses_a_variable_it_does_not_know(ec2, tmp_path):
    path = tmp_path / "api-greet2.toml"
    path.write_text(RECIPE)
    with pytest.raises(RecipeError, match="greeting"):
        ec2.recipe(str(path)).run(on="api-box", vars={"greetng": "x"})


def test_a_failed_recipe_is_in_the_report_and_raise_for_failure_names_the_step(ec2, box, tmp_path):
    path = tmp_path / "api-fail.toml"
    path.write_text('[[step]]\nname = "breaks"\nrun = "echo about to fail; exit 7"\n')
    report = ec2.recipe(str(path)).run(on=box)
    assert not report.ok and report.failed_hosts == ["api-box"]
    with pytest.raises(Exception, match="breaks"):
        report.raise_for_failure()


# -- displays -----------------------------------------------------------------------------------


def test_html_and_text_displays_name_the_instance_and_escape_markup(ec2, box):
    from IPython.lib.pretty import pretty

    evil = ec2.launch("<b>evil</b>&co", type="t3.small", wait=False)
    try:
        listing = ec2.instances()
        assert isinstance(listing, Listing) and isinstance(listing, list)
        html = listing._repr_html_()
        assert "api-box" in html and "&lt;b&gt;evil&lt;/b&gt;&amp;co" in html and "<b>evil" not in html
        text = pretty(listing)
        assert "api-box" in text and "<b>evil</b>&co" in text and text.splitlines()[1].split()[:2] == ["name", "id"]
        one = box._repr_html_()
        assert "api-box" in one and box.id in one and "running" in one
        assert "&lt;b&gt;evil" in evil._repr_html_()
        assert pretty(box).startswith("Instance api-box") and repr(box).startswith("<Instance api-box i-")
        result = box.run("printf '<script>x</script>'")
        assert "&lt;script&gt;" in result._repr_html_() and pretty(result) == "<script>x</script>"
    finally:
        evil.terminate()


# -- completion ------------------------------------------------------------------------------------


def test_instance_names_complete_as_attributes_and_as_keys(ec2, box):
    assert "api_box" in dir(ec2.i)
    assert "api-box" in ec2._ipython_key_completions_()
    assert ec2.i.api_box == box
    assert not hasattr(ec2.i, "_repr_html_"), "IPython's probes are plain AttributeErrors"
    with pytest.raises(UnknownInstance) as err:
        ec2.i.api_bx  # noqa: B018
    assert isinstance(err.value, NotFound) and isinstance(err.value, AttributeError)
    assert "Did you mean 'api_box'" in str(err.value)


def test_ipython_completes_instance_names(ec2, box, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    from IPython.core.completer import provisionalcompleter
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.user_ns["ec2"] = ec2
        ec2._names_cache = (0.0, [])  # as if a new box had been launched since
        for text, expected in (("ec2.i.api_b", "api_box"), ('ec2["api-b', "api-box")):
            with provisionalcompleter():
                found = [c.text for c in shell.Completer.completions(text, len(text))]
            assert expected in found, (text, found)
    finally:
        InteractiveShell.clear_instance()


def test_the_ipython_extension_shows_ec2kit_errors_without_a_traceback(ec2, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("EC2KIT_DEBUG", raising=False)
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.user_ns["ec2"] = ec2
        shell.run_line_magic("load_ext", "ec2kit.repl")
        result = shell.run_cell("ec2.instance('api-bo')")
        assert isinstance(result.error_in_exec, NotFound)
    finally:
        InteractiveShell.clear_instance()
    out = capsys.readouterr()
    assert "ec2kit: No instance named 'api-bo'. Did you mean 'api-box'?" in out.out
    assert "Traceback" not in out.out + out.err


# -- errors -------------------------------------------------------------------------------------------


def test_unknown_names_are_not_found_errors_with_suggestions(ec2, box):
    with pytest.raises(NotFound, match="Did you mean 'api-box'"):
        ec2.instance("api-bx")
    with pytest.raises(NotFound):
        ec2["no-such-instance"]  # noqa: B018
    with pytest.raises(NotFound):
        ec2.run("no-such-run")
    with pytest.raises(NotFound, match="Did you mean 'base'"):
        ec2.recipe("bsae")


def test_launch_refuses_reserved_tags_and_silly_disks_before_calling_aws(ec2):
    with pytest.raises(ConfigError, match="reserved"):
        ec2.launch("api-x", tags={"ec2kit:run": "x"})
    with pytest.raises(ConfigError, match="disk"):
        ec2.launch("api-x", disk=0)
    assert "api-x" not in ec2


# -- the lifecycle ------------------------------------------------------------------------------------


def test_stop_change_type_start_freeze_terminate_and_the_objects_stay_current(ec2, tmp_path):
    inst = ec2.launch("api-life", type="t3.small", disk=16)
    other = ec2["api-life"]  # a second view of the same machine
    other.max_age = 0
    try:
        inst.run("echo kept > ~/marker")
        with pytest.raises(WrongState, match="stop"):
            inst.change_type("t3.large")

        assert inst.stop() is inst and inst.state == "stopped"
        assert other.state == "stopped", "another view re-reads a stale snapshot"
        inst.change_type("t3.large")
        assert inst.type == "t3.large"
        inst.start()
        assert (inst.state, inst.type) == ("running", "t3.large")
        assert inst.run("cat ~/marker").stdout == "kept\n", "a new connection after the restart, same disk"

        image = ec2.freeze(inst)
        assert (image.name, image.state) == ("api-life", "available")
        assert "api-life" in ec2.images().names
        child = ec2.launch("api-child", image="api-life", type="t3.small")
        try:
            assert child.run("cat ~/marker").stdout == "kept\n"
        finally:
            child.terminate()
        gone = ec2.delete_image("api-life")
        assert (gone.id, gone.snapshots, gone.done) == (image.id, image.snapshot_ids, True)
        assert "api-life" not in ec2.images().names
        assert not [
            s for s in ec2.cloud.aws.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["SnapshotId"] in gone.snapshots
        ]
    finally:
        inst.terminate()
    assert inst.state in ("shutting-down", "terminated")
    assert wait_until(lambda: other.state == "terminated", what="the other view to see the termination")
    assert "api-life" not in ec2
    with pytest.raises(Terminated, match="terminated"):
        ec2["api-life"]  # noqa: B018


# -- spot runs ----------------------------------------------------------------------------------------


def test_a_detached_spot_run_can_be_watched_pulled_measured_and_plotted(ec2, tmp_path, capsys):
    ex = examples_dir()
    run = ec2.spot_run(
        ex / "train.sh", files=ex / "train.py", name="api-train", type="t3.small", results=tmp_path / "r", detach=True
    )
    assert isinstance(run, Run) and run.status in ("starting", "running", "succeeded")
    assert wait_until(lambda: "attempt 1" in run.logs(), what="the log")
    assert wait_until(lambda: run.status == "succeeded", timeout=90, what="the script to end")
    assert run.exit_code == 0
    assert "api-train" in [r.name for r in ec2.runs()]
    assert run.follow() == "succeeded"
    assert "step 30/30" in capsys.readouterr().out

    assert run.pull() == tmp_path / "r"
    metrics = run.metrics()
    assert set(metrics) >= {"loss", "weight", "bias"}
    loss = metrics["loss"]
    assert loss.xs == [float(x) for x in range(1, 31)] and loss.latest < loss.ys[0]
    assert run.latest()["loss"] == loss.latest

    figure = run.plot("loss")
    assert figure._repr_png_().startswith(b"\x89PNG")
    html = run._repr_html_()
    assert "api-train" in html and "succeeded" in html and "loss" in html
    assert "api-train" in ec2.runs()._repr_html_()
    with pytest.raises(ConfigError, match="no metric 'los'"):
        run.plot("los")


def test_stopping_a_spot_run_cancels_it_and_removes_its_instance(ec2, tmp_path):
    script = tmp_path / "long.sh"
    script.write_text("#!/usr/bin/env bash\necho started long job\nsleep 300\n")
    run = ec2.spot_run(script, name="api-long", type="t3.small", results=tmp_path / "r", detach=True)
    instance_id = run.record.instance_id
    assert instance_id and wait_until(lambda: "started long job" in run.logs(), what="the log")
    attach = run.attach_command()
    assert attach.startswith("ssh ") and "tmux" in attach and f"HostKeyAlias={instance_id}" in attach
    assert run.stop() is run and run.state == "cancelled"
    assert run.instance is None or run.instance.state in ("shutting-down", "terminated")
    assert run.metrics() == {}
    with pytest.raises(ConfigError, match="no metrics"):
        run.plot()
    leftovers = ec2.cleanup()
    assert isinstance(leftovers, Listing) and instance_id not in [x.id for x in leftovers]


# -- the REPL ---------------------------------------------------------------------------------------------


def test_inv_repl_starts_ipython_with_ec2_ready(sandbox, box):
    stdin = "print('names:', dir(ec2.i))\nec2.instance('api-bo')\nprint('still here')\n"
    result = run_inv("repl", home=sandbox.settings.home, stdin=stdin, env={"IPYTHONDIR": str(sandbox.settings.home / "ipython")})
    assert result.code == 0, result
    assert "ec2kit REPL: `ec2` is <EC2 sandbox" in result.out
    assert "names: [" in result.out and "'api_box'" in result.out
    assert "ec2kit: No instance named 'api-bo'. Did you mean 'api-box'?" in result.out
    assert "still here" in result.out and "Traceback" not in result.text


def test_the_repl_without_ipython_says_how_to_install_it(tmp_path):
    code = "import sys; sys.modules['IPython'] = None; sys.argv = ['ec2kit', 'repl']; from ec2kit.cli import main; main()"
    env = {**os.environ, "EC2KIT_HOME": str(tmp_path), "EC2KIT_SANDBOX": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc
    assert "pip install 'ec2kit[repl]'" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, "one paragraph"
