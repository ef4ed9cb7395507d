"""What names an image or a snapshot (so `inv delete-image`/`delete-snapshot` refuse it), ages and monthly costs:
host-free, from real files in a temporary home and project."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ec2kit.api.options import CLI, PYTHON, parse_age
from ec2kit.api.unused import Mentions, monthly_cost
from ec2kit.aws.ebs_prices import FALLBACK_STORAGE_PRICES, StoragePrices
from ec2kit.aws.models import Image, Snapshot
from ec2kit.errors import ConfigError
from ec2kit.runs import RunRecord, Runs
from ec2kit.settings import Settings


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A Context's settings over an empty home, run from an empty project directory."""
    home, project = tmp_path / "home", tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("EC2KIT_HOME", str(home))
    monkeypatch.chdir(project)
    return SimpleNamespace(settings=Settings(home=home, sandbox=True))


IMAGE = Image("ami-0abc1234", "trainer", "available", "2026-11-01T00:00:00.000Z", ["snap-0aaa"], {"Name": "trainer"})
SNAP = Snapshot("snap-0bbb", "dataset", "completed", "100%", 20, None, None)


def test_an_image_nothing_names_has_no_mentions_and_the_builtin_freeze_recipe_does_not_count(ctx):
    assert Mentions(ctx).of_image(IMAGE) == []


def test_both_config_files_name_an_image_with_file_and_line_even_when_one_overrides_the_other(ctx):
    (ctx.settings.home / "config.toml").write_text('region = "us-east-1"\nimage = "ami-0abc1234"\n')
    project = ctx.settings.home.parent / "project"
    (project / "ec2kit.toml").write_text('type = "t3.small"\n\nimage = "other"\n')
    assert Mentions(ctx).of_image(IMAGE) == [f"`image = 'ami-0abc1234'` in {ctx.settings.home / 'config.toml'}:2"]
    (project / "ec2kit.toml").write_text('image = "trainer"\n')
    found = Mentions(ctx).of_image(IMAGE)
    assert found == [
        f"`image = 'ami-0abc1234'` in {ctx.settings.home / 'config.toml'}:2",
        f"`image = 'trainer'` in {project / 'ec2kit.toml'}:1",
    ]


def test_a_recipe_names_an_image_or_snapshot_literally_but_not_through_a_template_or_a_freeze_step(ctx):
    recipes = ctx.settings.home.parent / "project" / "recipes"
    (recipes / "makes.toml").write_text('description = "x"\n[[step]]\nname = "f"\ntask = "freeze"\nimage = "trainer"\n')
    (recipes / "templated.toml").write_text('description = "x"\n[vars]\nimage = "{{ name }}"\n')
    assert Mentions(ctx).of_image(IMAGE) == []
    (recipes / "uses.toml").write_text('description = "x"\n[vars]\nimage = "trainer"\nsnapshot = "dataset"\n')
    (recipes / "run.toml").write_text('description = "x"\n[[step]]\nname = "r"\ntask = "spot_run"\nsnapshot = "snap-0bbb"\n')
    mentions = Mentions(ctx)
    assert mentions.of_image(IMAGE) == [f"recipe {recipes / 'uses.toml'}"]
    assert mentions.of_snapshot(SNAP, []) == [f"recipe {recipes / 'run.toml'}", f"recipe {recipes / 'uses.toml'}"]


def test_a_live_run_names_its_image_and_snapshot_and_a_finished_one_does_not(ctx):
    runs = Runs(ctx.settings.runs_db)
    runs.create(RunRecord(name="old", state="succeeded", options={"image": "trainer", "snapshot": "dataset"}))
    assert Mentions(ctx).of_image(IMAGE) == [] and Mentions(ctx).of_snapshot(SNAP, []) == []
    runs.create(RunRecord(name="now", state="running", options={"image": "trainer", "snapshot": "snap-0bbb"}))
    assert Mentions(ctx).of_image(IMAGE) == ["live run now"]
    assert Mentions(ctx).of_snapshot(SNAP, []) == ["live run now"]


def test_a_snapshot_behind_an_image_is_named_by_that_image(ctx):
    behind = Image("ami-0def", "base", "available", "", ["snap-0bbb"])
    assert Mentions(ctx).of_snapshot(SNAP, [IMAGE, behind]) == ["image base (ami-0def)"]


def test_monthly_costs_are_the_size_times_the_regions_price_of_that_type():
    west = StoragePrices(ebs={"gp3": 0.096, "gp2": 0.12}, snapshot=0.055, ipv4=0.005)
    assert monthly_cost(20, "gp3", west) == pytest.approx(20 * 0.096)
    assert monthly_cost(20, "gp2", west) == pytest.approx(20 * 0.12)
    assert monthly_cost(100, "snapshot", west) == pytest.approx(5.5)
    assert monthly_cost(10, "", west) == pytest.approx(10 * 0.096)  # no type said: gp3, as `inv costs` assumes
    assert monthly_cost(10, "io2", west) is None  # no price for it: unknown, never a guess


def test_the_fallback_table_is_us_east_1s_list_prices():
    assert monthly_cost(20, "gp3", FALLBACK_STORAGE_PRICES) == pytest.approx(1.6)
    assert monthly_cost(10, "io2", FALLBACK_STORAGE_PRICES) == pytest.approx(1.25)
    assert monthly_cost(100, "snapshot", FALLBACK_STORAGE_PRICES) == pytest.approx(5.0)
    assert FALLBACK_STORAGE_PRICES.fallback == ""  # the reason is added when it is used


@pytest.mark.parametrize(
    ("given", "seconds"), [("7d", 604800), ("36h", 129600), ("90m", 5400), ("2w", 1209600), ("0", 0), ("1.5d", 129600), (60, 60)]
)
def test_ages_are_read_with_their_unit(given, seconds):
    assert parse_age(given) == seconds


@pytest.mark.parametrize("given", ["7", "seven days", "-1d", "7 days", "", "1e3d", "99999999999d"])
def test_an_age_without_a_unit_or_out_of_range_is_refused_naming_the_flag(given):
    with pytest.raises(ConfigError) as cli:
        parse_age(given, "older_than", CLI)
    assert f"--older-than {given}" in str(cli.value) and "7d" in str(cli.value)
    with pytest.raises(ConfigError, match="older_than="):
        parse_age(given, "older_than", PYTHON)
