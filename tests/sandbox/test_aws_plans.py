"""ec2kit.aws's plans, waits and paging against moto's real EC2 server (no patched boto3)."""

from __future__ import annotations

import pytest
from aws_helpers import UBUNTU, count_calls

from ec2kit.aws.launch import LaunchPlan
from ec2kit.aws.session import paginate
from ec2kit.errors import ConfigError, WrongState


def test_a_launch_plan_is_plain_data_that_launch_carries_out(cloud):
    plan = cloud.plan_launch("web", image=UBUNTU, type="t3.micro", disk=20, tags={"role": "web"}, user_data="#!/bin/sh\n")
    assert plan == LaunchPlan(
        name="web",
        image_id=UBUNTU,
        image_name=plan.image_name,
        root_device=plan.root_device,
        type="t3.micro",
        disk=20,
        tags={"Name": "web", "ec2kit:managed": "1", "role": "web"},
        user_data="#!/bin/sh\n",
        vpc_id=plan.vpc_id,  # the default VPC, where ec2kit's group goes
        image_note=plan.image_note,
    )
    assert plan.vpc_id and plan.image_note.endswith("as asked")
    assert plan.params["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "enabled",  # a cached host confirms its Name tag from inside (issue 19 item 10)
    }
    assert cloud.instances() == [] and not cloud.settings.key_file.exists()
    inst = cloud.launch(plan)
    assert (inst.name, inst.type, inst.tags["role"], inst.state) == ("web", "t3.micro", "web", "running")


def test_check_sends_the_plans_parameters_with_dry_run(cloud):
    cloud.launch("base", image=UBUNTU, type="t3.micro")
    sent = count_calls(cloud, "CreateImage")
    plan = cloud.plan_freeze("base", image_name="base-v1")
    assert cloud.check(plan) is True
    assert sent == [{"DryRun": True, **plan.params}] and cloud.images() == []
    assert cloud.freeze(plan).name == "base-v1"


def test_a_spot_instance_that_would_stop_on_shutdown_is_refused_before_any_call(cloud):
    runs = count_calls(cloud, "DescribeInstances")
    with pytest.raises(ConfigError, match="one-time spot instance can only terminate"):
        cloud.plan_launch("cheap", image=UBUNTU, type="t3.micro", spot=True, shutdown_behavior="stop")
    assert runs == []


def test_waiting_for_running_gives_up_at_once_on_a_terminated_instance(cloud):
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    cloud.ec2.terminate_instances(InstanceIds=[inst.id])
    with pytest.raises(WrongState, match="is terminated while waiting for it to be running"):
        cloud.wait(inst, "running", timeout=30)


def test_waits_report_progress_until_the_state_is_reached(cloud):
    inst = cloud.launch("base", image=UBUNTU, type="t3.micro")
    assert cloud.wait(inst, "running").state == "running"
    messages: list[str] = []
    assert cloud.stop("base", progress=messages.append).state == "stopped"
    assert all(m.startswith("instance base: ") for m in messages)


def test_paginate_follows_every_page(cloud):
    for _ in range(6):  # moto pages describe_instances by reservation
        cloud.ec2.run_instances(ImageId=UBUNTU, MinCount=1, MaxCount=1)
    pages = count_calls(cloud, "DescribeInstances")
    found = paginate(cloud.ec2, "describe_instances", "Reservations[].Instances[]", MaxResults=5)
    assert len(found) == 6 and len(pages) == 2 and pages[1]["NextToken"]
    assert len(cloud.instances()) == 6


def test_an_ssh_cidr_setting_that_is_no_network_is_refused(cloud, monkeypatch):
    monkeypatch.setenv("EC2KIT_SSH_CIDR", "my laptop")
    with pytest.raises(ConfigError, match="EC2KIT_SSH_CIDR='my laptop' is not an address range"):
        cloud.ensure_security_group()
    monkeypatch.setenv("EC2KIT_SSH_CIDR", "203.0.113.7")
    assert cloud.settings.ssh_cidr == "203.0.113.7/32"
