"""The command line itself: listing, help, argument errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

from cli_helpers import ROOT, assert_clean_error, run_inv


def test_list_shows_every_journey_command(tmp_path):
    result = run_inv("--list", home=tmp_path)
    assert result.code == 0, result
    for name in (
        "launch",
        "provision",
        "connect",
        "ssh-config",
        "freeze",
        "make-volume",
        "snapshot",
        "spot-run",
        "runs",
        "logs",
        "pull",
        "stop-run",
        "sweep",
        "sweeps",
        "sweep-status",
        "instances",
        "change-type",
        "prices",
        "costs",
        "images",
        "volumes",
        "snapshots",
        "cleanup",
        "delete-volume",
        "delete-snapshot",
        "delete-image",
        "recipes",
        "recipe",
        "sandbox.up",
        "sandbox.interrupt",
    ):
        assert f"  {name} " in result.out, name


def test_listing_tasks_does_not_import_boto3_or_fabric():
    code = (
        "import sys; from ec2kit.cli import ns; "
        "heavy = [m for m in ('boto3', 'botocore', 'fabric', 'paramiko', 'jinja2', 'moto') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert out == ""


def test_every_task_has_help_text():
    from ec2kit.cli import ns

    def walk(coll):
        yield from coll.tasks.values()
        for sub in coll.collections.values():
            yield from walk(sub)

    for task in walk(ns):
        assert task.__doc__ and task.__doc__.strip(), task.name
        for arg in task.get_arguments():
            assert arg.help, f"{task.name} --{arg.name} has no help"


def test_task_help_shows_options(tmp_path):
    result = run_inv("--help", "make-volume", home=tmp_path)
    assert result.code == 0, result
    assert "--size" in result.out and "--snapshot" in result.out and "format" in result.out


def test_help_after_a_task_with_positional_arguments_shows_its_help_and_does_nothing(tmp_path):
    # Invoke hands `--help` to a positional argument: `inv launch --help` once launched "--help"
    for task in ("launch", "terminate", "spot-run", "connect"):
        for word in ("--help", "-h"):
            result = run_inv(task, word, home=tmp_path)
            assert result.code == 0, result
            assert result.out.startswith(f"Usage: inv {task}"), result
    result = run_inv("sweep", "--help", home=tmp_path)  # no positional argument since --resume: Invoke's own help
    assert result.code == 0 and "sweep [--options]" in result.out and "--resume" in result.out, result
    assert not (tmp_path / "sandbox").exists()  # no command ran: not even the sandbox was started


def test_region_finds_code_from_part_of_the_name(tmp_path):
    result = run_inv("region", "Ohio", home=tmp_path)
    assert result.code == 0, result
    assert result.out.strip() == "us-east-2"


def test_unknown_region_is_a_clean_error(tmp_path):
    assert_clean_error(run_inv("region", "Atlantis", home=tmp_path), "Atlantis")


def test_non_numeric_disk_is_a_clean_error(tmp_path):
    assert_clean_error(run_inv("launch", "x", "--disk", "big", home=tmp_path), "--disk", "number")


def test_set_values_are_parsed_as_toml_literals():
    from ec2kit.recipe.loader import parse_overrides as parse_sets

    assert parse_sets(["n=3", "name=base", 'pkgs=["a","b"]', "flag=true"]) == {
        "n": 3,
        "name": "base",
        "pkgs": ["a", "b"],
        "flag": True,
    }


def test_set_without_equals_is_a_clean_error():
    import pytest

    from ec2kit.errors import ConfigError
    from ec2kit.recipe.loader import parse_overrides as parse_sets

    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["oops"])


def test_console_script_exposes_the_same_tasks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv=['ec2kit','--list']; from ec2kit.cli import main; main()"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "spot-run" in proc.stdout and "sandbox.up" in proc.stdout


def test_a_closed_pipe_ends_a_listing_quietly(tmp_path):
    """`inv runs --json | head`: the reader left before the output; no traceback, no 'unexpected error'."""
    import os

    from ec2kit.runs import RunRecord, Runs

    Runs(tmp_path / "runs.sqlite").save(RunRecord(name="r1", state="succeeded"))
    env = {**os.environ, "EC2KIT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "EC2KIT_SANDBOX": "1"}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ec2kit writes a byte
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "runs", "--json"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=120,
    )
    os.close(write_end)
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
