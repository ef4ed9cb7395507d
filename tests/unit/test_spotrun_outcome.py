"""The line a spot-run and a sweep end with, and the exit code that goes with it (host-free)."""

from __future__ import annotations

from types import SimpleNamespace

from ec2kit.runs import RunRecord
from ec2kit.spotrun.outcome import duration_text, outcome_code, outcome_line, sweep_outcome_line


def record(**kw) -> RunRecord:
    base = dict(name="train-1", state="succeeded", results_dir="runs/train-1", created_at=1000.0, ended_at=1185.0)
    rec = RunRecord(**{**base, **kw})
    rec.hourly_price, rec.instance_hours = 0.036, 0.05
    return rec


def test_a_succeeded_run_ends_with_state_results_duration_and_cost_and_exit_0():
    rec = record()
    assert outcome_line(rec) == "train-1 succeeded · results in runs/train-1 · 3m 05s · $0.0018"
    assert outcome_code(rec) == 0


def test_a_failed_run_names_its_exit_code_and_exits_3():
    rec = record(state="failed", exit_code=2)
    assert outcome_line(rec).startswith("train-1 failed (exit code 2) · results in runs/train-1")
    assert outcome_code(rec) == 3


def test_a_run_whose_results_are_not_home_says_so_and_how_to_get_them_and_is_not_exit_0():
    rec = record(state="running", exit_code=0, options={"orphaned": True, "not_home": True, "note": "the final pull failed: ..."})
    line = outcome_line(rec)
    assert "ended (exit code 0) but its results are NOT home" in line and "`inv pull train-1`" in line
    assert outcome_code(rec) == 3 and outcome_code(rec, detach=True) == 3


def test_a_detached_run_under_way_exits_0_and_says_how_to_get_its_results():
    rec = record(state="running", ended_at=None, options={"detach": True})
    assert "detached: `inv pull train-1`" in outcome_line(rec)
    assert outcome_code(rec, detach=True) == 0


def test_durations_read_as_a_person_would_say_them():
    assert [duration_text(s) for s in (None, 12, 185, 3720)] == ["-", "12s", "3m 05s", "1h 02m"]


def test_a_sweep_ends_with_its_state_counts_results_duration_and_cost():
    sweep = SimpleNamespace(
        name="lr",
        state="failed",
        runs=[{"outcome": "succeeded"}, {"outcome": "succeeded"}, {"outcome": "failed"}],
        results_dir="runs/lr",
        created_at=0.0,
        ended_at=250.0,
        spent=0.03,
    )
    assert sweep_outcome_line(sweep) == "lr failed · 3 runs: 2 succeeded, 1 failed · results in runs/lr · 4m 10s · $0.0300"
