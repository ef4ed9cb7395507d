"""GPUs by name, host-free: --gpus / --gpu-memory parsing, matching DescribeInstanceTypes records by GpuInfo."""

from __future__ import annotations

import pytest

from ec2kit.api.options import CLI, PYTHON, GpuRequest, choose_gpu_types, gpu_request, parse_gpu_memory
from ec2kit.aws.gpus import cost_key, gigabytes, gpu_types_of, matching
from ec2kit.errors import ConfigError


def info(name: str, model: str, count: int, mib: int, vcpus: int = 4, arch: str = "x86_64", maker: str = "NVIDIA") -> dict:
    """A DescribeInstanceTypes record in AWS's shape (only the keys ec2kit reads)."""
    return {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": vcpus},
        "MemoryInfo": {"SizeInMiB": vcpus * 4096},
        "ProcessorInfo": {"SupportedArchitectures": [arch]},
        "GpuInfo": {"Gpus": [{"Name": model, "Manufacturer": maker, "Count": count, "MemoryInfo": {"SizeInMiB": mib}}]},
    }


RECORDS = [
    info("g5.xlarge", "A10G", 1, 22888),
    info("g5.2xlarge", "A10G", 1, 22888, vcpus=8),
    info("g5.12xlarge", "A10G", 4, 22888, vcpus=48),
    info("g6.xlarge", "L4", 1, 22888),
    info("g4dn.xlarge", "T4", 1, 16384),
    info("g5g.xlarge", "T4g", 1, 16384, arch="arm64"),
    info("p4d.24xlarge", "A100", 8, 40960, vcpus=96),
    info("p4de.24xlarge", "A100", 8, 81920, vcpus=96),
    {"InstanceType": "m5.large", "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192}},
    {"InstanceType": "m5.xlarge", "GpuInfo": {}},
]
TYPES = gpu_types_of(RECORDS)


def test_only_types_with_gpu_info_count_and_names_never_decide():
    named_like_a_gpu = info("g9.xlarge", "A10G", 1, 22888)
    del named_like_a_gpu["GpuInfo"]
    assert "g9.xlarge" not in {t.type for t in gpu_types_of([*RECORDS, named_like_a_gpu])}
    assert {t.type for t in TYPES} == {r["InstanceType"] for r in RECORDS[:8]}
    assert {t.type for t in gpu_types_of(RECORDS, offered={"g5.xlarge", "m5.large"})} == {"g5.xlarge"}


def test_a_model_matches_whatever_its_case_and_count_defaults_to_exactly_one():
    assert [t.type for t in matching(TYPES, "a10g", 1, None)] == ["g5.xlarge", "g5.2xlarge"]
    assert [t.type for t in matching(TYPES, "A10G", 4, None)] == ["g5.12xlarge"]
    assert gpu_request("A10G", None, type=None, types=None) == GpuRequest(("A10G",), 1)
    assert gpu_request("L4:1", None, type=None, types=None) == GpuRequest(("L4",), 1)
    assert gpu_request(" A100:8 ", None, type=None, types="") == GpuRequest(("A100",), 8)


def test_several_models_are_any_of_them_cheapest_first_in_one_architecture():
    assert gpu_request("A10G,l4:1", None, type=None, types=None) == GpuRequest(("A10G", "l4"), 1)
    assert str(gpu_request("A10G,L4", "24GB", type=None, types=None)) == "1× A10G or L4 with ≥ 24GB each"
    either = choose_gpu_types(GpuRequest(("L4", "A10G"), 1), TYPES, "us-east-1")
    alone = {m: choose_gpu_types(GpuRequest((m,), 1), TYPES, "us-east-1") for m in ("A10G", "L4")}
    assert sorted(either) == sorted(alone["A10G"] + alone["L4"])  # the union, each type once ...
    assert either == [t.type for t in sorted((t for t in TYPES if t.type in either), key=cost_key)]  # ... cheapest first
    with pytest.raises(ConfigError, match="--gpus H300"):  # each model is checked
        choose_gpu_types(GpuRequest(("A10G", "H300"), 1), TYPES, "us-east-1", CLI)
    assert "g5g.xlarge" not in choose_gpu_types(GpuRequest(("T4", "T4g"), 1), TYPES, "us-east-1")  # one image fits all


def test_a100_times_8_is_the_cheaper_p4d_first():
    assert choose_gpu_types(GpuRequest(("A100",), 8), TYPES, "us-east-1")[0] == "p4d.24xlarge"


def test_known_on_demand_prices_order_the_types_before_their_size():
    from dataclasses import replace

    priced = [replace(t, on_demand=0.80) if t.type == "g6.xlarge" else replace(t, on_demand=1.0) for t in TYPES]
    assert choose_gpu_types(GpuRequest((), 1, 22888, "24GB"), priced, "us-east-1")[0] == "g6.xlarge"


def test_gpu_memory_is_per_gpu_in_decimal_gb_as_aws_sizes_gpus():
    assert parse_gpu_memory("24GB") == (22888, "24GB")  # AWS's A10G/L4: 22888 MiB, a 24 GB GPU
    assert parse_gpu_memory("24") == (22888, "24GB")
    assert parse_gpu_memory("16GiB") == (16384, "16GiB")
    assert parse_gpu_memory("80gb")[0] <= 81920  # A100 80GB
    request = gpu_request(None, "24GB", type=None, types=None)
    assert request == GpuRequest((), 1, 22888, "24GB")
    fits = choose_gpu_types(request, TYPES, "us-east-1")
    assert fits == ["g5.xlarge", "g6.xlarge", "g5.2xlarge"]  # 1 GPU of ≥ 24 GB; T4 (16) is out


def test_one_fleet_gets_types_of_one_architecture_and_gpu_maker():
    fits = choose_gpu_types(GpuRequest((), 1, 15000, "16GB"), TYPES, "us-east-1")
    assert "g5g.xlarge" not in fits and fits[0] == "g4dn.xlarge"


def test_gpu_memory_labels_read_as_the_gpus_are_sold():
    assert [gigabytes(m) for m in (22888, 16384, 40960, 81920, 45776)] == [24, 16, 40, 80, 48]


@pytest.mark.parametrize(
    ("gpus", "memory", "needles"),
    [
        ("A10G:0", None, ["--gpus A10G:0", "at least 1"]),
        ("A10G:x", None, ["--gpus A10G:x", "MODEL[,MODEL…][:COUNT]"]),
        ("A10G,,L4", None, ["--gpus A10G,,L4", "comma-separated"]),
        ("A10G:1,L4:2", None, ["--gpus A10G:1,L4:2", "MODEL[,MODEL…][:COUNT]"]),
        (":3", None, ["--gpus :3", "MODEL[,MODEL…][:COUNT]"]),
        ("A10G:-1", None, ["--gpus A10G:-1"]),
        (None, "abc", ["--gpu-memory abc", "24GB"]),
        (None, "0GB", ["--gpu-memory 0GB"]),
        ("A10G", "-5", ["--gpu-memory -5"]),
    ],
)
def test_bad_gpus_and_gpu_memory_are_one_paragraph_errors_naming_the_flag(gpus, memory, needles):
    with pytest.raises(ConfigError) as caught:
        gpu_request(gpus, memory, type=None, types=None, spelling=CLI)
    for needle in needles:
        assert needle in str(caught.value)


def test_gpus_with_type_or_types_is_refused_and_python_names_keywords():
    with pytest.raises(ConfigError, match="--gpus chooses the instance types itself: drop --type"):
        gpu_request("A10G", None, type="g5.xlarge", types=None, spelling=CLI)
    with pytest.raises(ConfigError, match="drop --types"):
        gpu_request(None, "24GB", type=None, types="g6.xlarge", spelling=CLI)
    with pytest.raises(ConfigError, match=r"gpus='A10G:0'"):
        gpu_request("A10G:0", None, type=None, types=None, spelling=PYTHON)


def test_an_unknown_model_lists_the_models_offered_and_a_missing_count_the_counts():
    with pytest.raises(ConfigError) as caught:
        choose_gpu_types(GpuRequest(("H300",), 1), TYPES, "us-east-1", CLI)
    assert "--gpus H300" in str(caught.value) and "A100, A10G, L4, T4, T4g" in str(caught.value)
    with pytest.raises(ConfigError, match="its types have 1 or 4 A10G each"):
        choose_gpu_types(GpuRequest(("A10G",), 2), TYPES, "us-east-1", CLI)


def test_nothing_asked_means_no_gpu_request():
    assert gpu_request(None, None, type="m5.large", types="m5.xlarge") is None
    assert gpu_request("", "", type=None, types=None) is None


def test_a_model_with_spaces_matches_as_completion_offers_it():
    from ec2kit.aws.gpus import model_key

    rtx = gpu_types_of([info("g7.2xlarge", "RTX PRO 4500", 1, 32768, vcpus=8)])
    assert model_key("RTX-PRO-4500") == model_key("rtx pro 4500") == model_key("RTX PRO 4500")
    assert choose_gpu_types(GpuRequest(("RTX-PRO-4500",), 1), rtx, "us-east-1") == ["g7.2xlarge"]
