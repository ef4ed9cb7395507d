"""The sandbox's client side stays light: importing ``ec2kit.sandbox`` loads neither the daemon, moto,
boto3 nor ec2kit's SSH layer (the sandbox hands out addresses; Context turns them into SSH targets)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import ec2kit.sandbox as sb
names = ("ensure_running", "up", "down", "status", "interrupt", "reset", "Resolver", "SandboxAddress", "set_capacity",
         "capacity_returns", "set_quota", "enforce_ssh_rules", "set_caller_ip", "volumes_supported")
print(json.dumps({"missing": [n for n in names if not hasattr(sb, n)],
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "moto", "ec2kit"))}))
"""


def test_importing_the_sandbox_loads_only_its_client_and_the_bottom_modules():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert found["missing"] == []
    heavy = (
        "boto3",
        "botocore",
        "moto",
        "ec2kit.ssh",
        "ec2kit.aws",
        "ec2kit.context",
        "ec2kit.sandbox.daemon",
        "ec2kit.sandbox.moto",
    )
    assert [m for m in found["loaded"] if m.startswith(heavy)] == []
    sandbox = [m for m in found["loaded"] if m.startswith("ec2kit.sandbox")]
    assert sandbox == [
        "ec2kit.sandbox",
        "ec2kit.sandbox.client",
        "ec2kit.sandbox.client.info",
        "ec2kit.sandbox.client.knobs",
        "ec2kit.sandbox.client.process",
        "ec2kit.sandbox.client.resolver",
    ]
