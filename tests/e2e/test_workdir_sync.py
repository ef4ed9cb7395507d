"""`inv sync NAME [DIR]` and `--workdir`: a local tree kept in ~/work/<project> on a sandbox instance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cli_helpers import assert_clean_error, run_inv


def _tree(root: Path) -> Path:
    """A project with an ignored file, a nested .gitignore, an .ec2kitignore, a link in and links out of
    the tree, a .git directory and a results directory."""
    proj = root / "proj"
    (proj / "src" / "deep").mkdir(parents=True)
    (proj / "train.py").write_text("print('train')\n")
    (proj / "src" / "model.py").write_text("W = 1\n")
    (proj / "src" / "deep" / "keep.txt").write_text("keep\n")
    (proj / "src" / "deep" / "cache.bin").write_text("nested-ignored\n")
    (proj / "src" / ".gitignore").write_text("cache.bin\n")
    (proj / ".gitignore").write_text("*.log\n")
    (proj / "debug.log").write_text("ignored\n")
    (proj / ".ec2kitignore").write_text("data/\n")
    (proj / "data").mkdir()
    (proj / "data" / "big.npy").write_text("x" * 1000)
    (proj / ".git").mkdir()
    (proj / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (proj / "runs" / "r1").mkdir(parents=True)
    (proj / "runs" / "r1" / "metrics.csv").write_text("step,loss\n")
    outside = root / "secret.txt"
    outside.write_text("outside the tree\n")
    os.symlink(outside, proj / "abs_link")  # absolute: out of the tree
    os.symlink("../secret.txt", proj / "rel_link")  # relative, climbing out
    os.symlink("train.py", proj / "in_link")  # inside: travels as a link
    return proj


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def test_sync_sends_exactly_the_unignored_files_and_a_second_sync_sends_nothing(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("sync1")
    proj = _tree(tmp_path)
    started = time.monotonic()
    first = run_inv("sync", "sync1", "--dir", str(proj), "--json", home=home, cwd=tmp_path)
    first_s = time.monotonic() - started
    assert first.code == 0, first
    report = json.loads(first.out)
    remote = dirs["sync1"] / "home" / "work" / "proj"
    assert _files(remote) == {
        "train.py",
        "src/model.py",
        "src/deep/keep.txt",
        "src/.gitignore",
        ".gitignore",
        ".ec2kitignore",
        "in_link",
    }
    assert (remote / "in_link").is_symlink() and os.readlink(remote / "in_link") == "train.py"
    assert (remote / "train.py").read_text() == "print('train')\n"
    assert sorted(report["skipped"]) == ["abs_link", "rel_link"]
    assert "in_link" in report["files"] and "debug.log" not in report["files"]
    assert "Synced" in first.err and "skipped 2 link(s) out of the tree" in first.err

    started = time.monotonic()
    again = run_inv("sync", "sync1", "--dir", str(proj), "--json", home=home, cwd=tmp_path)
    again_s = time.monotonic() - started
    assert again.code == 0, again
    noop = json.loads(again.out)
    assert noop["files"] == []
    assert "nothing changed" in again.err
    print(
        f"timings: first sync {first_s:.2f}s (rsync {report['seconds']:.2f}s, {report['bytes_sent']} B), "
        f"no-op sync {again_s:.2f}s (rsync {noop['seconds']:.2f}s, {noop['bytes_sent']} B) — whole `inv sync` processes"
    )

    (proj / "src" / "model.py").write_text("W = 2\n")
    third = run_inv("sync", "sync1", "--dir", str(proj), "--json", home=home, cwd=tmp_path)
    assert third.code == 0, third
    assert json.loads(third.out)["files"] == ["src/model.py"]
    assert (remote / "src" / "model.py").read_text() == "W = 2\n"


def test_results_directories_of_runs_are_never_synced_up(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("sync2")
    proj = _tree(tmp_path)
    # run from inside the project: ./runs is where runs' results land by default
    done = run_inv("sync", "sync2", home=home, cwd=proj, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.code == 0, done
    remote = dirs["sync2"] / "home" / "work" / "proj"
    assert (remote / "train.py").exists()
    assert not (remote / "runs").exists()


def test_sync_of_a_missing_directory_names_it_and_touches_nothing(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    launched("sync3")
    result = run_inv("sync", "sync3", "--dir", str(tmp_path / "nope"), home=home)
    assert result.code != 0
    assert_clean_error(result, str(tmp_path / "nope"), "does not exist")


def test_launch_with_a_bad_workdir_is_refused_before_anything_is_launched(sandbox, tmp_path):
    home = sandbox.settings.home
    result = run_inv("launch", "never-wd", "--workdir", str(tmp_path / "nope"), home=home)
    assert_clean_error(result, "--workdir", "does not exist")
    listed = run_inv("instances", "--json", home=home)
    assert "never-wd" not in {i["name"] for i in json.loads(listed.out)}


def test_launch_with_workdir_syncs_once_ssh_answers(sandbox, tmp_path):
    home = sandbox.settings.home
    proj = _tree(tmp_path)
    try:
        done = run_inv("launch", "sync4", "--workdir", str(proj), home=home, timeout=180)
        assert done.code == 0, done
        listed = json.loads(run_inv("instances", "--json", home=home).out)
        [inst] = [i for i in listed if i["name"] == "sync4" and i["state"] == "running"]
        remote = home / "sandbox" / "hosts" / inst["id"] / "home" / "work" / "proj"
        assert (remote / "src" / "model.py").read_text() == "W = 1\n"
        assert not (remote / "debug.log").exists()
    finally:
        run_inv("terminate", "sync4", home=home)


def test_spot_run_with_workdir_runs_the_script_beside_the_synced_code(sandbox, tmp_path):
    home = sandbox.settings.home
    proj = _tree(tmp_path)
    job = tmp_path / "job.sh"
    job.write_text(
        '#!/bin/bash\ncd "$EC2KIT_WORKDIR" && python3 train.py > "$EC2KIT_RESULTS/out.txt" && ls > "$EC2KIT_RESULTS/ls.txt"\n'
    )
    results = tmp_path / "res"
    done = run_inv(
        "spot-run", "--script", str(job), "--name", "wd-run", "--type", "t3.micro", "--results", str(results),
        "--workdir", str(proj), home=home, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.code == 0, done
    assert (results / "out.txt").read_text() == "train\n"
    listed = set((results / "ls.txt").read_text().split())
    assert {"train.py", "src", "in_link"} <= listed and not {"debug.log", "data", "runs", "abs_link"} & listed
    assert "wd-run: Synced" in done.text


def test_spot_run_with_a_bad_workdir_is_refused_before_anything_is_launched(sandbox, tmp_path):
    home = sandbox.settings.home
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/bash\ntrue\n")
    done = run_inv("spot-run", "--script", str(job), "--name", "wd-bad", "--workdir", str(tmp_path / "nope"), home=home)
    assert_clean_error(done, "--workdir", "does not exist")
    assert "wd-bad" not in run_inv("runs", "--json", home=home).out


def test_a_no_op_sync_rides_the_shared_connection_and_opens_no_new_one(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("sync5")
    proj = _tree(tmp_path)
    log = dirs["sync5"] / "sshd.log"
    first = run_inv("sync", "sync5", "--dir", str(proj), home=home)
    assert first.code == 0, first
    logins = log.read_text(errors="replace").count("Accepted publickey")
    again = run_inv("sync", "sync5", "--dir", str(proj), "--json", home=home)
    assert again.code == 0, again
    assert json.loads(again.out)["files"] == []
    assert log.read_text(errors="replace").count("Accepted publickey") == logins  # no handshake: the master lingers


def test_exec_with_workdir_syncs_then_runs_beside_the_code(sandbox, launched, tmp_path):
    home = sandbox.settings.home
    dirs = launched("sync6")
    proj = _tree(tmp_path)
    job = tmp_path / "job.sh"
    job.write_text('#!/bin/bash\ncd "$EC2KIT_WORKDIR" && python3 train.py > "$EC2KIT_RESULTS/out.txt"\n')
    results = tmp_path / "res"
    done = run_inv(
        "exec", "sync6", "--script", str(job), "--run", "wd-exec", "--results", str(results), "--workdir", str(proj),
        home=home, timeout=180,
    )  # fmt: skip
    assert done.code == 0, done
    assert (results / "out.txt").read_text() == "train\n"
    assert (dirs["sync6"] / "home" / "work" / "proj" / "src" / "model.py").exists()
    assert not (dirs["sync6"] / "home" / "work" / "proj" / "debug.log").exists()
