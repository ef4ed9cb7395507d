"""GPUs by name from Python: ``EC2.launch(gpus=...)``, ``EC2.gpus()``, checked before any AWS call."""

from __future__ import annotations

import pytest

from ec2kit.api import EC2, LaunchCheck
from ec2kit.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        (dict(gpus="A10G:0"), "gpus='A10G:0': give a GPU model"),
        (dict(gpu_memory="abc"), "gpu_memory='abc': not an amount"),
        (dict(gpus="A10G", type="g5.xlarge"), "gpus chooses the instance types itself: drop type"),
    ],
)
def test_bad_gpu_keywords_are_refused_in_python_s_words_before_the_cloud_starts(tmp_path, kwargs, said):
    ec2 = EC2(sandbox=True, home=tmp_path)
    with pytest.raises(ConfigError) as err:
        ec2.launch("x", **kwargs)
    assert str(err.value).startswith(said)
    assert not ec2.ctx.where.contacted  # refused before the cloud (or the sandbox) was even started


def test_launch_check_with_gpus_plans_the_cheapest_fitting_type_and_spot_plans_them_all(sandbox):
    with EC2(home=sandbox.settings.home, sandbox=True, quiet=True) as ec2:
        plain = ec2.launch("gpu-py", gpus="a10g", check=True)
        assert isinstance(plain, LaunchCheck)
        assert "would launch gpu-py: g5.xlarge on-demand" in plain.lines
        spot = ec2.launch("gpu-py", gpus="V100:4", spot=True, check=True)
        assert [line.split()[0] for line in spot.lines if line.startswith("  ")] == ["p3.8xlarge"]
        offers = ec2.gpus("L40S")
        assert [o.type for o in offers][:2] == ["g6e.xlarge", "g6e.2xlarge"]
        assert {(o.model, o.gpu_memory_gb) for o in offers} == {("L40S", 48)}
