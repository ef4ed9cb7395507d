"""Shared by the tests of ec2kit/aws against a bare moto server: its image, credentials, a call counter
(the ``cloud`` fixture is in conftest.py)."""

from __future__ import annotations

from ec2kit.aws.cloud import Cloud

UBUNTU = "ami-785db401"  # moto's built-in Canonical Ubuntu 16.04 image
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def count_calls(cloud: Cloud, operation: str) -> list:
    """Record each call of ``operation`` through botocore's event hooks (observation only)."""
    seen: list = []
    cloud.ec2.meta.events.register(f"before-parameter-build.ec2.{operation}", lambda **kw: seen.append(kw["params"]))
    return seen
