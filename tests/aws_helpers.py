"""Shared by the tests of ec2kit/aws against a bare moto server: its image, credentials, a call counter
(the ``cloud`` fixture is in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ec2kit.aws.cloud import Cloud

UBUNTU = "ami-785db401"  # moto's built-in Canonical Ubuntu 16.04 image
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def count_calls(cloud: Cloud, operation: str) -> list:
    """Record each call of ``operation`` through botocore's event hooks (observation only)."""
    seen: list = []
    cloud.ec2.meta.events.register(f"before-parameter-build.ec2.{operation}", lambda **kw: seen.append(kw["params"]))
    return seen


@contextmanager
def looked_up_at_once(sandbox: Any) -> Iterator[None]:
    """Plain boto3 in a test names a new id at once: the sandbox's eventual consistency (NotFound for a fresh
    id's first lookup, on by default) is off inside, and back on after (ec2kit itself always waits it out)."""
    from ec2kit.sandbox.client import knobs

    knobs.eventual_consistency(sandbox.info, 0)
    try:
        yield
    finally:
        knobs.eventual_consistency(sandbox.info, 1)
