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


# -- the catalogue: one pass per region, kept on disk, priced by AWS's "GPU instance" family --------------


def gpu_product(template: dict, instance_type: str, usd: str) -> str:
    """A GetProducts PriceList entry for ``instance_type`` in AWS's shape (a recorded t3 entry, re-typed)."""
    import copy
    import json

    entry = copy.deepcopy(template)
    entry["product"]["attributes"].update(instanceType=instance_type, instanceFamily="GPU instance", regionCode="us-east-1")
    for term in entry["terms"]["OnDemand"].values():
        for dim in term["priceDimensions"].values():
            dim["pricePerUnit"] = {"USD": usd}
    return json.dumps(entry)


@pytest.fixture
def gpu_pricing():
    """A Pricing API on loopback answering the "GPU instance" family query (g6.xlarge cheaper than g5.xlarge, as on
    AWS); yields (endpoint, the requests' filters)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    recorded = json.loads((Path(__file__).parent.parent / "data" / "pricing" / "t3-eu-central-1.json").read_text())
    template = json.loads(recorded["PriceList"][0])
    answer = {
        "FormatVersion": "aws_v1",
        "PriceList": [gpu_product(template, "g5.xlarge", "1.0060000000"), gpu_product(template, "g6.xlarge", "0.8048000000")],
    }
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({f["Field"]: f["Value"] for f in body.get("Filters", [])})
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_the_catalogue_is_one_describe_pass_kept_on_disk_until_its_ttl(cloud, tmp_path, gpu_pricing):
    from aws_helpers import count_calls

    from ec2kit.aws.gpus import GpuCatalog
    from ec2kit.aws.prices import gpu_on_demand_prices

    endpoint, seen = gpu_pricing
    described = count_calls(cloud, "DescribeInstanceTypes")
    path = tmp_path / "gpu-types.json"

    def catalog(ttl: float = 86400.0) -> GpuCatalog:
        prices = lambda: gpu_on_demand_prices("us-east-1", session=cloud.session, endpoint_url=endpoint)  # noqa: E731
        return GpuCatalog(cloud.aws, path, scope="aws:us-east-1", ttl=ttl, on_demand=prices)

    first = catalog()
    types = first.by_type()
    assert first.fresh and len(described) >= 1 and len(seen) == 1
    assert seen[0]["instanceFamily"] == "GPU instance" and "instanceType" not in seen[0]
    assert (types["g5.xlarge"].on_demand, types["g6.xlarge"].on_demand, types["g4dn.xlarge"].on_demand) == (1.006, 0.8048, None)
    assert "m5.large" not in types and types["p4d.24xlarge"].model == "A100"

    calls = len(described)
    second = catalog()
    assert second.types() == first.types() and not second.fresh
    assert len(described) == calls and len(seen) == 1  # read from the file: no AWS call at all

    from ec2kit.api.options import GpuRequest, choose_gpu_types

    chosen = choose_gpu_types(GpuRequest((), 1, 22888, "24GB"), second.types(), "us-east-1")
    assert chosen[:2] == ["g6.xlarge", "g5.xlarge"]  # priced ones first, cheapest first

    stale = catalog(ttl=0.0)
    stale.types()
    assert stale.fresh and len(described) > calls
