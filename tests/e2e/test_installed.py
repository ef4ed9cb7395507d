"""The pip-installed package, as a new user gets it: a wheel in a fresh venv, used outside any checkout.

Builds the wheel from this checkout, installs it (with its sandbox extra) into a new venv in a
temporary directory, and runs the README's journeys there with the `ec2kit` command on the
sandbox: demo, launch, provision, freeze, spot-run, init and recipes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(ec2kit executable, environment, work dir): the wheel installed into a fresh venv."""
    base = tmp_path_factory.mktemp("installed")
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("ec2kit-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"{wheel}[sandbox]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    work = base / "work"  # not a checkout: no recipes/, templates/, examples/ or tasks.py here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "EC2KIT_"))}
    env.update(
        EC2KIT_HOME=str(base / "ec2kit-home"),
        EC2KIT_SANDBOX="1",
        COLUMNS="200",
        PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    yield venv / "bin" / "ec2kit", env, work
    subprocess.run([str(venv / "bin" / "ec2kit"), "sandbox.down"], env=env, cwd=work, capture_output=True, timeout=60)


def ec2kit(installed, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    exe, env, work = installed
    return subprocess.run([str(exe), *args], env=env, cwd=cwd or work, capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_imports_from_site_packages_not_this_checkout(installed):
    exe, env, work = installed
    where = subprocess.run(
        [str(exe.parent / "python"), "-c", "import ec2kit; print(ec2kit.__file__)"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert "site-packages" in where.stdout and str(ROOT) not in where.stdout


def test_demo_runs_from_the_installed_package(installed):
    result = ec2kit(installed, "demo")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "succeeded" in result.stdout and "metrics.csv" in result.stdout


def test_launch_provision_freeze_and_spot_run_work_outside_a_checkout(installed):
    _, _, work = installed
    launched = ec2kit(installed, "launch", "web1", "--json")
    assert launched.returncode == 0, launched.stderr
    provisioned = ec2kit(installed, "provision", "web1")  # the built-in base recipe
    assert provisioned.returncode == 0, provisioned.stdout[-2000:] + provisioned.stderr[-2000:]
    frozen = ec2kit(installed, "freeze", "web1", "--json")  # the built-in freeze recipe
    assert frozen.returncode == 0, frozen.stderr
    assert json.loads(frozen.stdout)["name"] == "web1"
    (work / "train.sh").write_text('#!/bin/bash\necho "trained on $(hostname)" > "$EC2KIT_RESULTS/out.txt"\n')
    ran = ec2kit(installed, "spot-run", "--script", "train.sh", "--name", "inst1", "--type", "t3.micro")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert (work / "runs" / "inst1" / "out.txt").read_text().startswith("trained on")
    assert ec2kit(installed, "terminate", "web1").returncode == 0


def test_init_copies_editable_recipes_that_then_override_the_built_ins(installed):
    _, _, work = installed
    made = ec2kit(installed, "init", "proj")
    assert made.returncode == 0, made.stderr
    proj = work / "proj"
    assert sorted(p.name for p in (proj / "recipes").iterdir()) == [
        "base.toml",
        "data-volume.toml",
        "freeze.toml",
        "jupyter.toml",
        "spot-run.toml",
    ]
    assert (proj / "tasks.py").exists() and (proj / "templates" / "tmux.conf.j2").exists()
    again = ec2kit(installed, "init", "proj")
    assert again.returncode != 0 and "would overwrite" in again.stderr
    (proj / "recipes" / "base.toml").write_text('description = "my own base"\n[[step]]\nname = "hi"\nrun = "true"\n')
    listed = ec2kit(installed, "recipes", "--json", cwd=proj)
    assert listed.returncode == 0, listed.stderr
    base = [r for r in json.loads(listed.stdout) if r["name"] == "base"]
    assert base and base[0]["description"] == "my own base"


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox volumes are loop devices, which need root")
def test_a_data_volume_and_its_snapshot_work_outside_a_checkout(installed):
    assert ec2kit(installed, "launch", "vol-host").returncode == 0
    made = ec2kit(installed, "make-volume", "vol-host", "--size", "1", "--name", "inst-data", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["attached_to"]
    wrote = ec2kit(installed, "connect", "vol-host", "--command", "echo kept > /mnt/data/f && sync && cat /mnt/data/f")
    assert wrote.returncode == 0 and "kept" in wrote.stdout, wrote.stderr
    snap = ec2kit(installed, "snapshot", "inst-data", "--wait", "--json")
    assert snap.returncode == 0, snap.stderr
    assert json.loads(snap.stdout)["name"] == "inst-data"
    assert ec2kit(installed, "terminate", "vol-host").returncode == 0


def test_the_installed_ec2kit_lists_its_commands_and_its_hints_name_it(installed):
    listed = ec2kit(installed, "--help")
    assert listed.returncode == 0 and listed.stdout.startswith("Usage: ec2kit COMMAND"), listed.stdout[:500]
    assert "Machines:" in listed.stdout and "--write-pyc" not in listed.stdout
    missing = ec2kit(installed, "connect")
    assert missing.returncode == 2 and "Usage: ec2kit connect [options] NAME" in missing.stderr, missing.stderr
    refused = ec2kit(installed, "launch", "odf", "--", "--spot")
    assert refused.returncode != 0 and "takes nothing after `--`" in refused.stderr, refused.stderr
    hint = ec2kit(installed, "logs", "no-such-run")
    assert hint.returncode != 0 and "List runs with: ec2kit runs" in hint.stderr, hint.stderr
