"""`inv instances` twice on the sandbox: the second reads botocore's models from ec2kit's cache.

Which files each command opened is recorded from inside the real process by an audit hook
(``sys.addaudithook`` in a ``sitecustomize`` on PYTHONPATH): nothing in ec2kit or botocore is changed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import botocore
import pytest
from cli_helpers import ROOT, run_inv

from ec2kit.aws.modelcache import cache_dir

BOTOCORE_DATA = str(Path(botocore.__file__).resolve().parent / "data")

AUDIT = """\
import os, sys
_log = open(os.environ["EC2KIT_TEST_AUDIT_LOG"], "a", buffering=1)

def _hook(event, args):
    if event in ("open", "os.listdir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _log.write(event + "\\t" + os.fsdecode(os.fspath(args[0])) + "\\n")

sys.addaudithook(_hook)
"""


@pytest.fixture
def home(sandbox) -> Path:
    """The session sandbox's home with no model cache yet."""
    shutil.rmtree(sandbox.settings.home / "cache", ignore_errors=True)
    return sandbox.settings.home


@pytest.fixture
def audited(tmp_path):
    """``audited("instances")``: run_inv with every open/listdir of the process recorded; (result, events)."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    runs = iter(range(1000))

    def run(*args: str, home: Path, env: dict[str, str] | None = None) -> tuple[object, list[tuple[str, str]]]:
        log = tmp_path / f"audit-{next(runs)}.log"
        log.touch()
        env = {
            "PYTHONPATH": f"{hook_dir}:{ROOT}",
            "EC2KIT_TEST_AUDIT_LOG": str(log),
            "EC2KIT_CACHE_DIR": str(home / "cache"),  # where a user's is, not the session's shared one
            **(env or {}),
        }
        result = run_inv(*args, home=home, env=env)
        assert result.code == 0, result
        events = [tuple(line.split("\t", 1)) for line in log.read_text().splitlines()]
        return result, events  # type: ignore[return-value]

    return run


def botocore_json(events) -> list[str]:
    return [path for event, path in events if event == "open" and path.startswith(BOTOCORE_DATA) and ".json" in path]


def test_the_second_instances_command_reads_botocores_models_from_the_cache_not_the_json(home, audited):
    _, first = audited("instances", home=home)
    opened = botocore_json(first)
    assert any(p.endswith("ec2/2016-11-15/service-2.json.gz") for p in opened), opened
    assert any(p.endswith("endpoints.json") for p in opened), opened

    entries = sorted(cache_dir(home / "cache").glob("*.marshal"))
    assert any(p.name.startswith("ec2_2016-11-15_service-2.json.gz.") for p in entries), entries
    for path in entries:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for d in (home / "cache", home / "cache" / "botocore", cache_dir(home / "cache")):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d

    _, second = audited("instances", home=home)
    assert botocore_json(second) == []
    assert {p for e, p in second if e == "open" and p.endswith(".marshal")} >= {str(p) for p in entries if "service-2" in p.name}
    # botocore's name check lists its data directory (every service); the cached loader does not
    assert [p for e, p in first if e == "os.listdir" and p.rstrip("/") == BOTOCORE_DATA] == [], "no scan even when parsing"
    assert [p for e, p in second if e == "os.listdir" and p.rstrip("/") == BOTOCORE_DATA] == []


def test_a_corrupt_cache_entry_is_parsed_again_and_the_command_still_works(home, audited, launched):
    launched("mc1")
    audited("instances", home=home)
    [entry] = cache_dir(home / "cache").glob("ec2_2016-11-15_service-2.json.gz.*.marshal")
    entry.write_bytes(b"\x00garbage, not a marshal blob")

    result, events = audited("instances", home=home)
    assert "mc1" in result.out and "running" in result.out
    assert any(p.endswith("ec2/2016-11-15/service-2.json.gz") for p in botocore_json(events))

    result, events = audited("instances", "--json", home=home)
    assert '"mc1"' in result.out
    assert botocore_json(events) == []  # the entry was rewritten whole


def test_a_stale_cache_entry_is_not_used_when_the_model_file_changed(home, audited, tmp_path):
    # AWS_DATA_PATH (like ~/.aws/models) is searched before botocore's own data: an edited copy of
    # the EC2 paginators stands in for an upgraded botocore, without touching the installed one
    models = tmp_path / "models"
    source = models / "ec2" / "2016-11-15" / "paginators-1.json"
    source.parent.mkdir(parents=True)
    shutil.copy(Path(BOTOCORE_DATA) / "ec2" / "2016-11-15" / "paginators-1.json", source)

    def parsed() -> list[str]:
        _, events = audited("instances", home=home, env={"AWS_DATA_PATH": str(models)})
        return [p for e, p in events if e == "open" and p == str(source)]

    assert parsed() == [str(source)]  # parsed, then kept
    assert parsed() == []  # from the cache
    stamp = source.stat()
    source.write_text(source.read_text().replace('"RouteTables"', '"RouteTablez"', 1))  # same size, another content
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    assert source.stat().st_size == stamp.st_size
    assert parsed() == [str(source)]  # changed: parsed again
    assert parsed() == []
