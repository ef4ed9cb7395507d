"""Built-in Python tasks against moto's EC2 server: check mode asks EC2 with DryRun, a real run acts."""

from __future__ import annotations

import pytest

from ec2kit.aws.cloud import Cloud
from ec2kit.recipe import CollectingReporter, load_recipe, run_recipe
from ec2kit.settings import Settings

UBUNTU = "ami-785db401"  # moto's built-in Canonical Ubuntu image
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class CloudOnly:
    """The part of ec2kit.context.Context that AWS-only tasks use: ``.cloud``."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud

    def shell(self, name: str):
        raise AssertionError(f"an AWS-only recipe must not connect to {name}")

    host = shell


@pytest.fixture
def ctx(moto_reset, tmp_path, monkeypatch) -> CloudOnly:
    monkeypatch.delenv("EC2KIT_SSH_CIDR", raising=False)
    return CloudOnly(Cloud(Settings(home=tmp_path), endpoint_url=moto_reset, credentials=CREDS, region="us-east-1"))


def test_freeze_recipe_in_check_mode_reports_the_dry_run_call_and_makes_no_image(ctx):
    ctx.cloud.launch("base", image=UBUNTU, type="t3.micro")
    reporter = CollectingReporter()
    report = run_recipe(ctx, load_recipe("freeze"), hosts=["base"], check=True, reporter=reporter)
    assert report.ok, report.hosts["base"].failure
    [step] = report.hosts["base"].steps
    assert step.status == "changed" and step.check
    assert step.reason == "would call cloud.freeze('base', image_name='base') → ec2.create_image (DryRun: would succeed)"
    assert "[base] would change  1 make image: would call cloud.freeze('base'" in reporter.text
    assert ctx.cloud.images() == []


def test_freeze_recipe_makes_an_image_named_after_the_instance(ctx):
    ctx.cloud.launch("base", image=UBUNTU, type="t3.micro")
    report = run_recipe(ctx, load_recipe("freeze"), hosts=["base"], reporter=CollectingReporter())
    assert report.ok, report.hosts["base"].failure
    assert report.hosts["base"].recap == {"ok": 0, "changed": 1, "skipped": 0, "failed": 0}
    assert [i.name for i in ctx.cloud.images()] == ["base"]


def test_a_task_failure_names_recipe_step_host_and_passes_the_cloud_message_through(ctx):
    report = run_recipe(ctx, load_recipe("freeze"), hosts=["nosuch"], reporter=CollectingReporter())
    assert not report.ok
    failure = report.hosts["nosuch"].failure
    assert failure.startswith("Recipe freeze, step 1 'make image' (task freeze) failed on nosuch: ")
    assert "nosuch" in failure.split(": ", 1)[1]
    assert report.hosts["nosuch"].steps[0].status == "failed"


def test_launch_then_terminate_in_check_mode_changes_nothing(ctx, tmp_path):
    (tmp_path / "l.toml").write_text(
        '[[step]]\ntask = "launch"\ninstance = "gpu1"\nimage = "%s"\ntype = "t3.micro"\n[[step]]\ntask = "terminate"\n' % UBUNTU
    )
    reporter = CollectingReporter()
    report = run_recipe(ctx, load_recipe(str(tmp_path / "l.toml")), check=True, reporter=reporter)
    assert report.ok, report.summary
    steps = report.hosts["local"].steps
    assert steps[0].reason.startswith(
        "would call cloud.launch('gpu1', image='ami-785db401', type='t3.micro') → ec2.run_instances"
    )
    assert steps[1].reason == "would call cloud.terminate('gpu1')"
    assert ctx.cloud.instances() == []
