"""A spot-run attempt under faults, on the sandbox: results that do not come home, interruptions in every phase.

Faults are injected for real: a no-notice interruption (the sandbox terminates the instance) while the run
is being prepared, and a final pull that cannot land (a results directory on a 4 MiB tmpfs that a larger
result fills: rsync fails with ENOSPC). Nothing is mocked.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from cli_helpers import wait_for as wait_until
from test_spotrun_sandbox import options, run_resources, script

from ec2kit import sandbox as sb
from ec2kit.context import Context
from ec2kit.runs import Runs
from ec2kit.spotrun import pull, refresh, spot_run
from ec2kit.spotrun.outcome import outcome_line


@pytest.fixture
def ctx(sandbox):
    with Context(sandbox.settings, quiet=True) as c:
        yield c


def slow_setup_recipe(tmp_path: Path) -> str:
    """A setup step that says it runs (``in-setup``) and waits until ``results/go`` exists on the instance."""
    path = tmp_path / "slow-setup.toml"
    path.write_text(
        'description = "a setup step that waits"\n\n[[step]]\nname = "wait for go"\n'
        'run = "touch ~/ec2kit/{{ run }}/in-setup; until [ -e ~/ec2kit/{{ run }}/results/go ]; do sleep 0.2; done"\n'
    )
    return str(path)


@pytest.mark.parametrize("times", [1, 2], ids=["first-instance", "and-its-replacement"])
def test_an_interruption_while_the_run_is_prepared_is_retried_not_a_failure(ctx, sandbox, tmp_path, times):
    lines: list[str] = []
    name = f"prep-int{times}"
    s = script(tmp_path, 'echo "hello from attempt $EC2KIT_ATTEMPT"\necho done > "$EC2KIT_RESULTS/out.txt"\n')
    opts = options(tmp_path, s, name, lines, retries=times, recipe=slow_setup_recipe(tmp_path))
    results = tmp_path / "results"
    interrupted: list[str] = []

    def interrupt_during_setup() -> None:
        with Context(sandbox.settings, quiet=True) as other:

            def in_setup() -> str | None:
                rec = Runs(sandbox.settings.runs_db).find(name)
                if rec is None or not rec.instance_id or rec.instance_id in interrupted:
                    return None
                found = other.connect(rec.instance_id).run(f"test -e ~/ec2kit/{name}/in-setup", check=False, timeout=10)
                return rec.instance_id if found.ok else None

            for n in range(times):
                instance = wait_until(in_setup, 120, f"the setup step of attempt {n + 1}")
                if n + 1 == times:
                    results.mkdir(parents=True, exist_ok=True)
                    (results / "go").write_text("")  # the next replacement gets it pushed back: its setup goes on
                interrupted.append(instance)
                sb.interrupt(sandbox.settings, instance, delay=0)

    thread = threading.Thread(target=interrupt_during_setup, daemon=True)
    thread.start()
    rec = spot_run(ctx, opts)
    thread.join(10)
    assert rec.state == "succeeded" and rec.attempt == times + 1, lines
    assert [line for line in lines if line.startswith("hello from attempt")] == [f"hello from attempt {times + 1}"]
    assert sum("went away while the run was being prepared" in line for line in lines) == times, lines
    assert rec.created["instances"][:times] == interrupted and rec.instance_id not in interrupted
    assert (results / "out.txt").read_text() == "done\n"
    assert run_resources(sandbox, name) == {}


def test_an_interruption_while_prepared_without_retries_ends_interrupted_and_releases_everything(ctx, sandbox, tmp_path):
    from ec2kit.errors import RunError

    s = script(tmp_path, "echo never\n")
    opts = options(tmp_path, s, "prep-int0", retries=0, recipe=slow_setup_recipe(tmp_path))

    def interrupt_during_setup() -> None:
        with Context(sandbox.settings, quiet=True) as other:

            def in_setup() -> str | None:
                rec = Runs(sandbox.settings.runs_db).find("prep-int0")
                if rec is None or not rec.instance_id:
                    return None
                ok = other.connect(rec.instance_id).run("test -e ~/ec2kit/prep-int0/in-setup", check=False, timeout=10).ok
                return rec.instance_id if ok else None

            instance = wait_until(in_setup, 120, "the setup step")
        sb.interrupt(sandbox.settings, instance, delay=0)

    thread = threading.Thread(target=interrupt_during_setup, daemon=True)
    thread.start()
    with pytest.raises(RunError) as raised:
        spot_run(ctx, opts)
    thread.join(10)
    assert "was interrupted on attempt 1" in str(raised.value) and "--retries" in (raised.value.hint or "")
    assert Runs(sandbox.settings.runs_db).get("prep-int0").state == "interrupted"
    assert run_resources(sandbox, "prep-int0") == {}


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs for the results (root only): a larger result cannot land there."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_final_pull_that_cannot_land_keeps_the_instance_and_the_run_is_not_succeeded(ctx, sandbox, tmp_path, small_disk):
    lines: list[str] = []
    s = script(
        tmp_path,
        """\
        echo small > "$EC2KIT_RESULTS/step1.txt"
        sleep 2
        head -c 6000000 /dev/zero > "$EC2KIT_RESULTS/final.bin"
        echo end
    """,
    )
    results = small_disk / "results"
    opts = options(tmp_path, s, "full-disk", lines)
    opts.results = str(results)
    rec = spot_run(ctx, opts)
    assert rec.state == "running" and rec.options.get("orphaned"), (rec.state, lines)  # not succeeded: results not home
    assert rec.exit_code == 0
    note = rec.options["note"]
    assert "final pull failed" in note and str(results) in note and f"inv pull {rec.name}" in note and "more" in note
    said = [line for line in lines if "disk is full" in line]
    assert said and str(results) in said[0] and "MiB" in said[0], lines  # said at the first failed pull, with the space
    assert not (results / ".rsync-partial").exists() or not any((results / ".rsync-partial").iterdir())
    assert run_resources(sandbox, "full-disk").get("instances") == [rec.instance_id]  # kept: it holds final.bin
    print("\n".join([*said[:1], note, outcome_line(rec)]))
    assert "NOT home" in outcome_line(rec) and f"inv pull {rec.name}" in outcome_line(rec)
    # `inv runs` keeps saying what is missing, and that the instance waits for `inv pull`
    notes = refresh(ctx, [Runs(sandbox.settings.runs_db).get("full-disk")])
    shown = Runs(sandbox.settings.runs_db).get("full-disk")
    assert "no room for the results" in shown.options["note"] and shown.awaiting_pull, (shown, notes)
    assert notes.get("full-disk") == "waiting for `inv pull full-disk`"
    # room is made: `inv pull` brings everything home and releases the instance
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    pull(ctx, rec.name)
    assert (results / "final.bin").stat().st_size == 6000000
    pulled = Runs(sandbox.settings.runs_db).get("full-disk")
    assert pulled.state == "succeeded" and "pulled into" in pulled.options["note"] and not pulled.options.get("not_home")
    wait_until(lambda: run_resources(sandbox, "full-disk") == {}, 60, "the instance to power off after the pull")


def instance_state(sandbox, instance_id: str) -> str:
    found = sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return found["State"]["Name"]


def test_terminate_of_a_live_runs_instance_is_refused_without_yes_and_names_the_run(ctx, sandbox, tmp_path):
    from cli_helpers import assert_clean_error, run_inv

    s = script(tmp_path, "sleep 120\n")
    rec = spot_run(ctx, options(tmp_path, s, "guarded", detach=True))
    assert rec.live and rec.instance_id
    for verb in ("terminate", "stop"):
        refused = run_inv(verb, rec.instance_id, home=sandbox.settings.home)
        assert refused.code != 0, refused
        assert_clean_error(refused, "guarded", "--yes", "inv stop-run guarded")
        assert instance_state(sandbox, rec.instance_id) == "running"
    done = run_inv("terminate", rec.instance_id, "--yes", home=sandbox.settings.home)
    assert done.code == 0, done
    assert instance_state(sandbox, rec.instance_id) in ("shutting-down", "terminated")
    assert Runs(sandbox.settings.runs_db).get("guarded").options["ended_by_you"].startswith("terminated by you")
    from ec2kit.spotrun import stop_run

    stop_run(ctx, "guarded")
    assert run_resources(sandbox, "guarded") == {}


@pytest.mark.parametrize("verb", ["terminate", "stop"])
def test_an_instance_ended_by_its_owner_ends_the_run_without_a_replacement(ctx, sandbox, tmp_path, verb):
    lines: list[str] = []
    name = f"by-you-{verb}"
    s = script(tmp_path, 'echo started > "$EC2KIT_RESULTS/started.txt"\nsleep 120\n')
    opts = options(tmp_path, s, name, lines, retries=2)

    def terminate_from_the_console() -> None:
        wait_until(lambda: (tmp_path / "results" / "started.txt").exists(), 120, "the run's first pull")
        rec = Runs(sandbox.settings.runs_db).get(name)
        # as the console would: not through ec2kit
        if verb == "terminate":
            sandbox.ec2.terminate_instances(InstanceIds=[rec.instance_id])
        else:
            sandbox.ec2.stop_instances(InstanceIds=[rec.instance_id])

    thread = threading.Thread(target=terminate_from_the_console, daemon=True)
    thread.start()
    rec = spot_run(ctx, opts)
    thread.join(10)
    assert len(rec.created["instances"]) == 1 and rec.attempt == 1, lines  # no replacement was launched
    if verb == "terminate":
        assert rec.state == "cancelled" and "terminated by you" in rec.options["note"]
        assert any("without a replacement" in line for line in lines), lines
        assert run_resources(sandbox, name) == {}
    else:  # its disk may hold results that are not home: kept, and the note says how to get them
        assert rec.live and "stopped by you" in rec.options["note"] and f"inv pull {name}" in rec.options["note"]
        assert instance_state(sandbox, rec.instance_id) in ("stopping", "stopped")
        from ec2kit.spotrun import stop_run

        stop_run(ctx, name)
        assert run_resources(sandbox, name).get("instances") is None


def test_an_interruption_during_the_final_pull_is_retried_and_the_result_comes_home(ctx, sandbox, tmp_path):
    lines: list[str] = []
    # final.bin appears whole (a rename) as the script's last act; with one pull at the start and no periodic
    # pull after it, only the final pull can bring it: the interruption lands in that pull.
    s = script(
        tmp_path,
        """\
        head -c 200000000 /dev/urandom > "$HOME/ec2kit/$EC2KIT_RUN/final.tmp"  # incompressible: the pull takes seconds
        mv "$HOME/ec2kit/$EC2KIT_RUN/final.tmp" "$EC2KIT_RESULTS/final.bin"
        echo "attempt $EC2KIT_ATTEMPT" > "$EC2KIT_RESULTS/attempt.txt"
    """,
    )
    opts = options(tmp_path, s, "pull-int", lines, retries=1, pull_interval=1000.0)
    partial = tmp_path / "results" / ".rsync-partial"
    seen: dict = {}

    def interrupt_mid_pull() -> None:
        def transferring() -> bool:  # a temporary copy of final.bin somewhere under the results (rsync's temp dir)
            try:
                return any(p != partial.parent / "final.bin" for p in partial.parent.rglob("*final.bin*"))
            except OSError:
                return False

        wait_until(transferring, 180, "the final pull of final.bin")
        seen["instance"] = Runs(sandbox.settings.runs_db).get("pull-int").instance_id
        sb.interrupt(sandbox.settings, seen["instance"], delay=0)

    thread = threading.Thread(target=interrupt_mid_pull, daemon=True)
    thread.start()
    rec = spot_run(ctx, opts)
    thread.join(10)
    assert rec.state == "succeeded" and rec.attempt == 2, lines
    assert any("went away during the final pull" in line for line in lines), lines
    assert (tmp_path / "results" / "final.bin").stat().st_size == 200000000
    assert (tmp_path / "results" / "attempt.txt").read_text() == "attempt 2\n"
    assert seen["instance"] in rec.created["instances"] and len(rec.created["instances"]) == 2
    assert run_resources(sandbox, "pull-int") == {}


def test_inv_spot_run_ends_with_one_outcome_line(sandbox, tmp_path):
    from cli_helpers import run_inv

    s = script(tmp_path, 'echo 1 > "$EC2KIT_RESULTS/one.txt"\n')
    results = tmp_path / "cli-results"
    done = run_inv(
        "spot-run", "--script", s, "--name", "cli-end", "--type", "t3.micro", "--results", str(results),
        home=sandbox.settings.home, timeout=300,
    )  # fmt: skip
    assert done.code == 0, done
    last = done.out.strip().splitlines()[-1]
    assert last.startswith(f"cli-end succeeded · results in {results} · ") and last.endswith(("$0.0000", "cost unknown")), last
    assert (results / "one.txt").read_text() == "1\n"


def test_a_sweep_run_whose_results_cannot_land_keeps_its_instance_out_of_the_sweep(ctx, sandbox, tmp_path, small_disk):
    from test_sweep_sandbox import FAST as SWEEP_FAST
    from test_sweep_sandbox import sweep_instances

    from ec2kit.sweep import SweepOptions, prepare, run

    s = script(tmp_path, 'head -c 6000000 /dev/zero > "$EC2KIT_RESULTS/model.bin"\n', name="train.sh")
    said: list[str] = []
    opts = SweepOptions(
        script=s,
        grid=["lr=1"],
        name="swfull",
        parallel=1,
        type="t3.micro",
        results=str(small_disk / "runs"),
        say=said.append,
        **SWEEP_FAST,
    )
    record, plan = prepare(ctx, opts)
    final = run(ctx, opts, record, plan)
    assert final.state == "failed", said  # not succeeded: one run's results are not home
    kept = Runs(sandbox.settings.runs_db).get("swfull-01")
    assert kept.live and kept.options.get("not_home") and "no room for the results" in kept.options["note"], said
    assert sweep_instances(sandbox, "swfull") == [kept.instance_id]  # neither reused nor terminated
    assert any("keeps results that are not home" in m for m in said), said
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    pull(ctx, "swfull-01")
    assert (Path(kept.results_dir) / "model.bin").stat().st_size == 6000000
    wait_until(lambda: sweep_instances(sandbox, "swfull") == [], 60, "the instance to power off after the pull")


def test_inv_demo_shows_an_interruption_survived_then_what_still_runs_and_what_to_try_next(sandbox, tmp_path):
    from cli_helpers import run_inv

    done = run_inv("demo", home=sandbox.settings.home, cwd=tmp_path, timeout=600)
    assert done.code == 0, done
    lines = done.out.strip().splitlines()
    survived = next(line for line in lines if line.startswith("Interruption survived:"))
    assert "resumed from the checkpoint at step" in survived and "every step exactly once, 30 steps" in survived, done.out
    assert lines[-2].startswith("Still running: the local sandbox (pid ") and "sandbox.down" in lines[-2]
    assert lines[-1].startswith("Next: `inv runs`") and lines[-1].count("`") == 6
    assert any(" succeeded · results in " in line for line in lines), done.out
    run_dirs = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]  # the pull lock beside it is hidden
    assert len(run_dirs) == 1, run_dirs
