"""botocore's data files through ec2kit's cache (ec2kit.aws.modelcache): real botocore, real files, no server.

The session's ``data_loader`` component is the loader under test, read back from a real AwsSession;
what it returns is compared with what botocore's own loader returns for the same files.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import create_loader

from ec2kit.aws.modelcache import CachedFileLoader, CachingLoader, cache_dir
from ec2kit.aws.session import AwsSession
from ec2kit.settings import Settings

CREDS = {"aws_access_key_id": "a", "aws_secret_access_key": "b"}


@pytest.fixture(autouse=True)
def cache_in_home(tmp_path, monkeypatch):
    """The cache where a user's is, under the (test's) home, not the session's shared one."""
    monkeypatch.setenv("EC2KIT_CACHE_DIR", str(tmp_path / "cache"))


def aws(home: Path) -> AwsSession:
    return AwsSession(Settings(home=home), endpoint_url="http://127.0.0.1:9", credentials=CREDS, region="us-east-1")


def loader_of(session: AwsSession) -> CachingLoader:
    loader = session.session._session.get_component("data_loader")
    assert isinstance(loader, CachingLoader)
    return loader


def file_loader_of(session: AwsSession) -> CachedFileLoader:
    found = loader_of(session).file_loader
    assert isinstance(found, CachedFileLoader)
    return found


def entries(home: Path) -> dict[str, Path]:
    """The cache's entries by file name (``ec2_2016-11-15_service-2.json.gz.<hash>.marshal``)."""
    return {p.name: p for p in cache_dir(home / "cache").glob("*.marshal")}


def entry_for(home: Path, source_tail: str) -> Path:
    """The one entry whose name (before its hash) ends with ``source_tail``."""
    [found] = [p for name, p in entries(home).items() if name.rsplit(".", 2)[0].endswith(source_tail)]
    return found


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An AWS_DATA_PATH directory searched before botocore's own data (how ~/.aws/models works)."""
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("AWS_DATA_PATH", str(d))
    return d


def write(path: Path, data: dict, *, mtime_ns: int | None = None) -> None:
    path.write_text(json.dumps(data))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.parametrize("type_name", ["service-2", "paginators-1", "waiters-2", "endpoint-rule-set-1"])
def test_the_cached_loader_returns_what_botocore_returns_key_order_included_first_and_second_time(tmp_path, type_name):
    botocore_own = json.dumps(create_loader().load_service_model("ec2", type_name))
    first = aws(tmp_path)
    assert json.dumps(loader_of(first).load_service_model("ec2", type_name)) == botocore_own
    assert file_loader_of(first).parsed and not file_loader_of(first).hits
    second = aws(tmp_path)
    assert json.dumps(loader_of(second).load_service_model("ec2", type_name)) == botocore_own
    assert file_loader_of(second).hits and not file_loader_of(second).parsed


def test_a_client_made_from_the_cache_parses_no_json_and_lists_no_service_directory(tmp_path):
    aws(tmp_path).ec2  # noqa: B018 - fills the cache
    again = aws(tmp_path)
    again.ec2  # noqa: B018
    served = file_loader_of(again)
    assert served.parsed == []
    assert any(s.endswith(os.path.join("ec2", "2016-11-15", "service-2.json.gz")) for s in served.hits)
    assert any(s.endswith("endpoints.json") for s in served.hits)
    # botocore's name check lists every service's directory; the cached loader looked in ec2's only
    assert not [key for key in loader_of(again)._cache if key[0] == "list_available_services"]
    assert again.ec2.meta.service_model.service_name == "ec2"
    assert again.ec2.can_paginate("describe_instances")


def test_an_unknown_service_still_gets_botocores_own_error_naming_the_known_ones(tmp_path):
    with pytest.raises(UnknownServiceError) as err:
        aws(tmp_path).client("ec2-but-not-really")
    assert "ec2-but-not-really" in str(err.value) and "ec2," in str(err.value)
    with pytest.raises(UnknownServiceError):
        loader_of(aws(tmp_path)).load_service_model("../botocore/data/ec2", "service-2")


def test_cache_files_are_private_and_their_directories_too(tmp_path):
    aws(tmp_path).ec2  # noqa: B018
    found = entries(tmp_path)
    assert any(name.startswith("ec2_2016-11-15_service-2.json.gz.") for name in found)
    for path in found.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for d in (tmp_path / "cache", tmp_path / "cache" / "botocore", cache_dir(tmp_path / "cache")):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert not [p for p in cache_dir(tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_an_edited_model_file_is_read_again_whether_its_mtime_its_size_or_only_its_bytes_changed(tmp_path, data_dir):
    source = data_dir / "ec2kit-test.json"
    write(source, {"v": "aaaa"}, mtime_ns=1_700_000_000_000_000_000)
    assert loader_of(aws(tmp_path)).load_data("ec2kit-test") == {"v": "aaaa"}
    assert loader_of(aws(tmp_path)).load_data("ec2kit-test") == {"v": "aaaa"}  # served from the cache now

    write(source, {"v": "bbbb"}, mtime_ns=1_700_000_000_000_000_001)  # same size, newer mtime
    again = aws(tmp_path)
    assert loader_of(again).load_data("ec2kit-test") == {"v": "bbbb"}
    assert file_loader_of(again).parsed == [str(source)]

    write(source, {"v": "cc"}, mtime_ns=1_700_000_000_000_000_001)  # another size, the same mtime
    assert loader_of(aws(tmp_path)).load_data("ec2kit-test") == {"v": "cc"}

    write(source, {"v": "dd"}, mtime_ns=1_700_000_000_000_000_001)  # same size, same mtime: the ctime moved
    assert loader_of(aws(tmp_path)).load_data("ec2kit-test") == {"v": "dd"}


@pytest.mark.parametrize(
    "damage",
    [b"", b"not marshal at all", b"\xe3\x00\x00", "truncated", "another key", "a list"],
)
def test_a_damaged_cache_entry_falls_back_to_the_json_and_is_rewritten(tmp_path, damage):
    import marshal

    aws(tmp_path).ec2  # noqa: B018
    entry = entry_for(tmp_path, "ec2_2016-11-15_service-2.json.gz")
    whole = entry.read_bytes()
    if damage == "truncated":
        blob = whole[: len(whole) // 2]
    elif damage == "another key":
        key, data = marshal.loads(whole)
        blob = marshal.dumps(((key[0], key[1], key[2] + 1, *key[3:]), data))
    elif damage == "a list":
        blob = marshal.dumps([1, 2])
    else:
        assert isinstance(damage, bytes)
        blob = damage
    entry.write_bytes(blob)
    again = aws(tmp_path)
    assert again.ec2.meta.service_model.operation_model("DescribeInstances").name == "DescribeInstances"
    assert any(s.endswith("service-2.json.gz") for s in file_loader_of(again).parsed)
    assert entry.read_bytes() == whole  # rewritten whole
    third = aws(tmp_path)
    third.ec2  # noqa: B018
    assert file_loader_of(third).parsed == []


def test_a_cache_file_others_may_write_or_that_is_a_link_is_not_read(tmp_path, data_dir):
    source = data_dir / "ec2kit-test.json"
    write(source, {"v": 1})
    loader_of(aws(tmp_path)).load_data("ec2kit-test")
    entry = entry_for(tmp_path, "_models_ec2kit-test.json")
    entry.chmod(0o664)
    again = aws(tmp_path)
    assert loader_of(again).load_data("ec2kit-test") == {"v": 1}
    assert file_loader_of(again).parsed == [str(source)]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # replaced by a private one

    target = entry.with_name("elsewhere")
    entry.rename(target)
    entry.symlink_to(target)
    linked = aws(tmp_path)
    assert loader_of(linked).load_data("ec2kit-test") == {"v": 1}
    assert file_loader_of(linked).parsed == [str(source)]


def test_a_cache_that_cannot_be_written_costs_only_the_json_again(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory would be")
    first = aws(tmp_path)
    assert first.ec2.meta.service_model.service_name == "ec2"
    second = aws(tmp_path)
    second.ec2  # noqa: B018
    assert any(s.endswith("service-2.json.gz") for s in file_loader_of(second).parsed)
    assert (tmp_path / "cache").is_file()


def test_model_cache_off_uses_botocores_loader_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EC2KIT_MODEL_CACHE", "0")
    session = aws(tmp_path)
    assert session.ec2.meta.service_model.service_name == "ec2"
    assert not isinstance(session.session._session.get_component("data_loader"), CachingLoader)
    assert not (tmp_path / "cache").exists()


def test_a_model_cache_setting_that_is_not_understood_is_a_config_error_naming_it(tmp_path, monkeypatch):
    from ec2kit.errors import ConfigError

    monkeypatch.setenv("EC2KIT_MODEL_CACHE", "sometimes")
    with pytest.raises(ConfigError, match="EC2KIT_MODEL_CACHE='sometimes'"):
        aws(tmp_path).session  # noqa: B018


def test_ec2kit_cache_dir_moves_the_cache_out_of_the_home(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("EC2KIT_CACHE_DIR", str(elsewhere))
    home = tmp_path / "home"
    aws(home).ec2  # noqa: B018
    assert list(cache_dir(elsewhere).glob("ec2_2016-11-15_service-2.json.gz.*.marshal"))
    assert not (home / "cache").exists()
