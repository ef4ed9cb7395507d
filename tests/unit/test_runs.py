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


def test_a_stale_writer_keeps_the_other_writers_fields(tmp_path):
    """`inv runs` read the record, `inv pull` then marked it pulled; the stale save must not undo that."""
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="r1", state="succeeded", options={"detach": True}))
    stale = runs.get("r1")  # inv runs reads
    puller = runs.get("r1")  # inv pull reads and saves first
    puller.options["pulled"] = True
    runs.save(puller)
    stale.options["instance_gone"] = True
    stale.exit_code = 0
    runs.save(stale)
    got = runs.get("r1")
    assert got.options == {"detach": True, "pulled": True, "instance_gone": True}
    assert got.exit_code == 0
    assert stale.options["pulled"] is True  # the stale writer now sees the other's change


def test_a_state_change_applies_only_if_nobody_moved_the_state_first(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="r1", state="running"))
    follower, stopper = runs.get("r1"), runs.get("r1")
    stopper.state = "cancelled"
    assert runs.save(stopper) is True
    follower.state = "succeeded"
    assert runs.save(follower) is False
    assert follower.state == "cancelled" and runs.get("r1").state == "cancelled"


def test_concurrent_writers_lose_no_update(tmp_path):
    import threading

    path = tmp_path / "runs.sqlite"
    Runs(path).create(RunRecord(name="r1", state="running"))
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            runs = Runs(path)
            for n in range(15):
                rec = runs.get("r1")
                rec.options[f"w{i}"] = n
                runs.save(rec)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Runs(path).get("r1").options == {f"w{i}": 14 for i in range(6)}


def test_secret_values_are_never_stored(tmp_path):
    runs = Runs(tmp_path / "runs.sqlite")
    runs.create(RunRecord(name="r1", options={"vars": {"lr": 0.1, "secret:TOKEN": "hunter2-value"}}))
    assert b"hunter2-value" not in (tmp_path / "runs.sqlite").read_bytes()
    assert runs.get("r1").options["vars"] == {"lr": 0.1, "secret:TOKEN": "***"}


def test_the_runs_database_is_private(tmp_path):
    path = tmp_path / "home" / "runs.sqlite"
    Runs(path).create(RunRecord(name="r1"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_corrupt_runs_database_names_its_path_and_how_to_move_it_aside(tmp_path):
    from ec2kit.errors import ConfigError

    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError) as err:
        Runs(path).all()
    assert str(path) in str(err.value) and "mv " in err.value.hint


def test_ec2kit_home_is_created_private_and_an_old_open_one_is_tightened(tmp_path):
    from ec2kit.settings import Settings

    fresh = Settings(home=tmp_path / "fresh").ensure_home()
    assert fresh.stat().st_mode & 0o777 == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    Settings(home=old).ensure_home()
    assert old.stat().st_mode & 0o777 == 0o700
