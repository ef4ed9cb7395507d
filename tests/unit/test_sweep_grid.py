"""The pure parts of sweeps: the grid, the scheduling plan, the summary (no AWS, no SSH)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ec2kit.errors import ConfigError
from ec2kit.sweep.grid import environment, expand, load_file, parse_flag
from ec2kit.sweep.options import SweepOptions, check, run_names, run_options
from ec2kit.sweep.plan import Item, Plan
from ec2kit.sweep.records import SweepRecord, Sweeps
from ec2kit.sweep.summary import Objective, Row, csv_text, missing_objective, parse_objective, sort_rows

# ------------------------------------------------------------------ grid


def test_the_grid_is_the_product_of_the_flags_in_order():
    runs = expand(["lr=1e-3,3e-4,1e-4", "seed=1,2"])
    assert len(runs) == 6
    assert runs[0] == {"lr": "1e-3", "seed": "1"} and runs[1] == {"lr": "1e-3", "seed": "2"}
    assert runs[-1] == {"lr": "1e-4", "seed": "2"}


def test_settings_become_upper_case_environment_variables():
    assert environment({"lr": "1e-3", "batch_size": "32"}) == {"LR": "1e-3", "BATCH_SIZE": "32"}


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        ([], ["no runs", "--grid"]),
        (["lr"], ["--grid 'lr'", "KEY=VALUE"]),
        (["lr="], ["empty value"]),
        (["lr=1,,2"], ["empty value"]),
        (["lr=1,1"], ["'1' twice"]),
        (["lr=1", "lr=2"], ["'lr' is given twice"]),
        (["lr=1", "LR=2"], ["both become LR"]),
        (["my-lr=1"], ["'my-lr'", "letters"]),
        (["1lr=1"], ["'1lr'"]),
        (["home=1"], ["HOME", "Rename"]),
        (["ec2kit_run=1"], ["EC2KIT_RUN"]),
    ],
)
def test_a_bad_grid_flag_says_which_flag_and_what_to_write(flags, needles):
    with pytest.raises(ConfigError) as err:
        expand(flags)
    text = f"{err.value} {err.value.hint or ''}"
    for needle in needles:
        assert needle in text, text


def test_a_grid_flag_is_split_on_commas_and_trimmed():
    assert parse_flag("lr= 1e-3, 3e-4") == ("lr", ["1e-3", "3e-4"])


def grid_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_a_grid_file_takes_a_product_and_a_list(tmp_path):
    path = grid_file(
        tmp_path,
        """\
[grid]
lr = [1e-3, 3e-4]
seed = [1, 2]

[[runs]]
lr = 1e-2
seed = 7

[[runs]]
lr = "big"
seed = 8
""",
    )
    runs = expand([], load_file(path))
    assert len(runs) == 6
    assert runs[0] == {"lr": "0.001", "seed": "1"}
    assert runs[4:] == [{"lr": "0.01", "seed": "7"}, {"lr": "big", "seed": "8"}]


def test_grid_flags_and_a_grid_file_multiply_and_may_not_repeat_a_key(tmp_path):
    path = grid_file(tmp_path, "[grid]\nseed = [1, 2]\n")
    assert len(expand(["lr=1,2,3"], load_file(path))) == 6
    with pytest.raises(ConfigError, match="given twice"):
        expand(["seed=3"], load_file(path))


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[grid]\nlr = [1, 2\n", ["sweep.toml", "not valid TOML", "line"]),
        ("[grid]\nlr = [1, 2]\nseed = 3\n", ["sweep.toml:3", "'seed'", "non-empty list"]),
        ("[grid]\nlr = []\n", ["sweep.toml:2", "non-empty list"]),
        ("[grid]\nlr = [1, 1]\n", ["sweep.toml:2", "twice"]),
        ("[grid]\nlr = [[1], [2]]\n", ["sweep.toml:2", "plain value"]),
        ("[grid]\nbad-key = [1]\n", ["sweep.toml:2", "'bad-key'"]),
        ("seeds = [1]\n", ["sweep.toml:1", "unknown key 'seeds'"]),
        ("[[runs]]\nlr = 1\n\n[[runs]]\nlr = 1\n", ["Runs 1 and 2", "same settings"]),
        ("[[runs]]\n\n[[runs]]\nlr = 1\n", ["sweep.toml:1", "empty [[runs]]"]),
        ("# nothing\n", ["no runs"]),
    ],
)
def test_a_bad_grid_file_names_the_file_and_line(tmp_path, text, needles):
    path = grid_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        expand([], load_file(path))
    shown = f"{err.value} {err.value.hint or ''}"
    for needle in needles:
        assert needle in shown, shown


def test_a_missing_grid_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="nosuch.toml"):
        load_file(tmp_path / "nosuch.toml")


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"parallel": 0}, "--parallel 0"),
        ({"retries": -1}, "--retries"),
        ({"max_cost": 0}, "--max-cost"),
        ({"max_hours": 0}, "--max-hours"),
    ],
)
def test_bad_sweep_numbers_are_refused(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        check(SweepOptions(script="train.sh", **changes))


def test_each_run_gets_its_settings_as_env_and_its_own_results_directory(tmp_path):
    opts = SweepOptions(script="train.sh", results=str(tmp_path), type="t3.micro", recipe=None)
    run = run_options(opts, "sw", "sw-01", {"lr": "1e-3", "seed": "1"})
    assert run.env == {"LR": "1e-3", "SEED": "1", "EC2KIT_SWEEP": "sw"}
    assert run.results == str(tmp_path.resolve() / "sw" / "sw-01")
    assert run.name == "sw-01" and run.type == "t3.micro"


def test_run_names_are_numbered_in_grid_order():
    assert run_names("sw", 3) == ["sw-01", "sw-02", "sw-03"]
    assert run_names("sw", 120)[-1] == "sw-120"


def test_sweep_options_survive_the_record_round_trip():
    opts = SweepOptions(script="t.sh", grid=["lr=1,2"], parallel=3, max_cost=2.5, say=print)
    back = SweepOptions.from_stored(opts.stored())
    assert back.grid == ["lr=1,2"] and back.parallel == 3 and back.max_cost == 2.5 and back.say is None


# ------------------------------------------------------------------ plan


def items(n: int) -> list[Item]:
    return [Item(i, f"r{i + 1}", {"i": str(i)}) for i in range(n)]


def test_the_first_batch_asks_for_every_free_place_at_once():
    plan = Plan(items(6), parallel=3)
    assert plan.launches_wanted(running=0) == 3
    assert plan.launches_wanted(running=2) == 1
    assert Plan(items(2), parallel=5).launches_wanted(running=0) == 2


def test_runs_start_in_grid_order_and_an_instance_takes_the_next_one():
    plan = Plan(items(3), parallel=1)
    first = plan.next_run()
    assert first is not None and first.name == "r1"
    plan.finished(first, "succeeded")
    assert plan.reuse()
    assert [plan.next_run().name, plan.next_run().name] == ["r2", "r3"]  # type: ignore[union-attr]
    assert not plan.reuse() and plan.next_run() is None


def test_fresh_never_reuses_an_instance():
    plan = Plan(items(3), parallel=1, fresh=True)
    plan.finished(plan.next_run(), "succeeded")  # type: ignore[arg-type]
    assert not plan.reuse() and plan.launches_wanted(running=0) == 1


def test_an_interrupted_run_goes_back_to_the_front_while_it_has_retries():
    plan = Plan(items(3), parallel=1, retries=1)
    first = plan.next_run()
    assert first is not None
    assert plan.interrupted(first) is True
    again = plan.next_run()
    assert again is first and again.attempts == 2
    assert plan.interrupted(again) is False and again.outcome == "interrupted"
    assert plan.next_run().name == "r2"  # type: ignore[union-attr]


def test_max_cost_launches_what_fits_and_then_nothing():
    plan = Plan(items(6), parallel=3, max_cost=0.000025)
    assert plan.affordable(3, spent=0.0, running_hourly=0.0, price=0.00001) == 2
    assert plan.affordable(3, spent=0.0, running_hourly=0.00002, price=0.00001) == 0
    assert plan.may_continue(spent=0.000001, running_hourly=0.00002)
    assert not plan.may_continue(spent=0.00001, running_hourly=0.00002)
    plan.next_run()
    skipped = plan.stop("budget")
    assert [i.name for i in skipped] == ["r2", "r3", "r4", "r5", "r6"] and all(i.outcome == "skipped" for i in skipped)
    assert plan.next_run() is None and plan.launches_wanted(running=0) == 0 and plan.done(running=0)


def test_without_max_cost_every_wanted_instance_is_affordable():
    assert Plan(items(4), parallel=4).affordable(4, spent=1e9, running_hourly=1e9, price=1e9) == 4


# ------------------------------------------------------------------ summary


def test_objective_is_metric_or_metric_colon_min_or_max():
    assert parse_objective("loss") == Objective("loss", "min")
    assert parse_objective("acc:max") == Objective("acc", "max")
    assert parse_objective(None) is None
    with pytest.raises(ConfigError, match="acc:max"):
        parse_objective("loss:up")


def rows() -> list[Row]:
    return [
        Row("r1", {"lr": "1"}, "succeeded", exit_code=0, cost=0.5, metrics={"loss": 0.3, "acc": 0.7}),
        Row("r2", {"lr": "2"}, "failed", exit_code=3, metrics={}),
        Row("r3", {"lr": "3"}, "succeeded", exit_code=0, metrics={"loss": 0.1, "acc": 0.9}),
    ]


def test_rows_sort_best_first_and_runs_without_the_metric_last():
    assert [r.run for r in sort_rows(rows(), Objective("loss", "min"))] == ["r3", "r1", "r2"]
    assert [r.run for r in sort_rows(rows(), Objective("acc", "max"))] == ["r3", "r1", "r2"]
    assert [r.run for r in sort_rows(rows(), None)] == ["r1", "r2", "r3"]


def test_an_objective_no_run_reported_is_said_with_the_metrics_there_are():
    assert missing_objective(rows(), Objective("loss")) == ""
    said = missing_objective(rows(), Objective("f1"))
    assert "'f1'" in said and "loss, acc" in said


def test_summary_csv_has_one_row_per_run_with_settings_state_exit_code_metrics_and_cost():
    text = csv_text(rows(), ["lr"])
    lines = text.splitlines()
    assert lines[0] == "run,lr,state,exit_code,attempts,instance_type,elapsed_s,cost_usd,loss,acc"
    assert lines[1] == "r1,1,succeeded,0,0,,,0.500000,0.3,0.7"
    assert lines[2] == "r2,2,failed,3,0,,,,,"


# ------------------------------------------------------------------ records


def test_a_sweep_record_is_written_atomically_and_read_back(tmp_path):
    sweeps = Sweeps(tmp_path)
    sweeps.create(SweepRecord(name="sw", runs=[{"name": "sw-01", "settings": {"lr": "1"}, "outcome": ""}]))
    sweeps.update("sw", lambda r: setattr(r, "fleet_calls", 2))
    got = sweeps.get("sw")
    assert got.fleet_calls == 2 and got.run_names == ["sw-01"] and got.live
    assert not list((tmp_path / "sweeps").glob("*.tmp"))
    assert (tmp_path / "sweeps" / "sw.json").stat().st_mode & 0o077 == 0


def test_a_live_sweep_of_the_same_name_is_refused(tmp_path):
    from ec2kit.errors import AlreadyExists

    sweeps = Sweeps(tmp_path)
    sweeps.create(SweepRecord(name="sw"))
    with pytest.raises(AlreadyExists, match="still starting"):
        sweeps.create(SweepRecord(name="sw"))
    sweeps.update("sw", lambda r: setattr(r, "state", "succeeded"))
    sweeps.create(SweepRecord(name="sw"))  # a finished one is replaced


def test_only_the_settings_spot_run_toml_takes_become_its_set_vars():
    from ec2kit.sweep.options import recipe_vars

    assert recipe_vars("spot-run", {"lr": "1e-3", "tools": "tmux"}) == {"tools": "tmux"}
    assert recipe_vars(None, {"lr": "1e-3"}) == {}


def test_cleanup_is_told_the_sweeps_whose_process_still_runs_and_no_finished_or_dead_one(tmp_path):
    """`inv cleanup` leaves a live sweep's spare instances alone: the api names those sweeps to spotrun."""
    import subprocess

    from ec2kit.spotrun import owner
    from ec2kit.sweep.records import SweepRecord, Sweeps, live_sweep_names

    dead = subprocess.Popen(["true"])
    dead.wait()
    sweeps = Sweeps(tmp_path)
    sweeps.create(SweepRecord(name="alive", state="running", owner=owner.me()))
    sweeps.create(SweepRecord(name="dead", state="running", owner={**owner.me(), "pid": dead.pid}))
    sweeps.create(SweepRecord(name="done", state="succeeded", owner=owner.me()))
    assert live_sweep_names(tmp_path) == {"alive"}


def test_each_run_of_a_sweep_syncs_the_sweeps_workdir():
    from ec2kit.sweep.options import SweepOptions, run_options

    options = SweepOptions(script="train.sh", workdir="/src/proj")
    assert run_options(options, "sw", "sw-01", {"lr": "1"}).workdir == "/src/proj"
    assert SweepOptions.from_stored(options.stored()).workdir == "/src/proj"  # a resumed sweep syncs it too
