"""Run records in SQLite."""

from __future__ import annotations

import pytest

from ec2kit.errors import AlreadyExists, NotFound
from ec2kit.runs import RunRecord, Runs


def test_saved_run_reads_back_with_its_json_fields(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    rec = RunRecord(name="r1", script="train.sh", options={"retries": 2}, volumes=["vol-1"])
    rec.add_created("instances", "i-1")
    rec.add_created("instances", "i-1")
    runs.create(rec)
    got = runs.get("r1")
    assert got == rec
    assert got.created == {"instances": ["i-1"]}


def test_state_changes_persist(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    rec = runs.create(RunRecord(name="r1"))
    rec.state, rec.exit_code = "failed", 3
    runs.save(rec)
    assert runs.get("r1").state == "failed" and runs.get("r1").exit_code == 3
    assert runs.live() == []


def test_a_live_run_name_cannot_be_reused_but_a_finished_one_can(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="r1", state="running", instance_id="i-9"))
    with pytest.raises(AlreadyExists, match="i-9"):
        runs.create(RunRecord(name="r1"))
    runs.save(RunRecord(name="r1", state="succeeded"))
    runs.create(RunRecord(name="r1", script="again.sh"))
    assert runs.get("r1").script == "again.sh"


def test_unknown_run_suggests_close_names(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="train-big"))
    with pytest.raises(NotFound, match="train-big"):
        runs.get("train-bgi")


def test_cost_is_hourly_price_times_hours_over_every_attempt():
    rec = RunRecord(name="r", hourly_price=0.5)
    rec.instance_started(now=0)
    rec.instance_stopped(now=1800)  # attempt 1: half an hour
    rec.instance_started(now=10_000)
    assert rec.hours(now=10_000 + 3600) == pytest.approx(1.5)
    assert rec.cost_at(now=10_000 + 3600) == pytest.approx(0.75)
    assert RunRecord(name="x").cost is None


def test_runs_list_newest_first(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="old", created_at=1))
    runs.create(RunRecord(name="new", created_at=2))
    assert [r.name for r in runs.all()] == ["new", "old"]
