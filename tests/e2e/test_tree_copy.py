"""The source tree works when copied without symlink support (a zip on Windows, a plain cp of the tracked files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tracked() -> list[tuple[str, str]]:
    """(mode, path) of every file git tracks in this checkout."""
    out = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    entries = []
    for line in out.decode().split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            entries.append((meta.split()[0], path))
    return entries


def copy_without_symlinks(dest: Path) -> int:
    """Copy the tracked files into ``dest`` as a file system without symlinks would hold them: a
    symlink becomes a small file holding its target (what git does with core.symlinks=false)."""
    copied = 0
    for _, path in tracked():
        src, target = ROOT / path, dest / path
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.write_text(os.readlink(src))
        else:
            shutil.copyfile(src, target)
            shutil.copymode(src, target)
        copied += 1
    return copied


def test_the_tree_tracks_no_symlink():
    links = [path for mode, path in tracked() if mode == "120000"]
    assert links == []


@pytest.mark.sandbox
@pytest.mark.timeout(300)
def test_a_spot_run_succeeds_from_a_copy_of_the_tracked_files_made_without_symlinks(tmp_path):
    copy = tmp_path / "ec2kit-copy"
    assert copy_without_symlinks(copy) > 50
    work = tmp_path / "work"  # not the copy: no ./templates or ./recipes to fall back on
    work.mkdir()
    (work / "train.sh").write_text('#!/bin/bash\necho "trained on $(hostname)" > "$EC2KIT_RESULTS/out.txt"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "EC2KIT_"))}
    home = tmp_path / "home"  # a sandbox of its own: its daemon runs from the copy too
    env.update(EC2KIT_HOME=str(home), EC2KIT_SANDBOX="1", COLUMNS="200", PYTHONPATH=str(copy))

    def inv(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "invoke", "--search-root", str(copy), *args]
        return subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True, timeout=240)

    where = subprocess.run(
        [sys.executable, "-c", "import ec2kit.paths as p; print(p.__file__); print(p.data_dir('templates'))"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(copy / "ec2kit" / "paths.py"), str(copy / "templates")]  # the copy, not this checkout

    try:
        ran = inv("spot-run", "--script", "train.sh", "--name", "from-copy", "--type", "t3.micro")
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "TemplateNotFound" not in ran.stdout + ran.stderr
        assert (work / "runs" / "from-copy" / "out.txt").read_text().startswith("trained on")
        listed = inv("runs", "--json")
        assert listed.returncode == 0, listed.stderr
        [record] = [r for r in json.loads(listed.stdout) if r["name"] == "from-copy"]
        assert (record["state"], record["exit_code"]) == ("succeeded", 0)
        daemon = json.loads((home / "sandbox" / "state.json").read_text())["pid"]
        environ = Path(f"/proc/{daemon}/environ").read_bytes().split(b"\0")
        [path] = [e for e in environ if e.startswith(b"PYTHONPATH=")]
        assert path.split(b"=", 1)[1].split(b":")[0] == bytes(copy)  # the daemon imports ec2kit from the copy
    finally:
        inv("sandbox.down")
