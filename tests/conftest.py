"""Session fixtures: a real moto EC2 server and real sshd hosts on loopback.

Nothing here fakes boto3 or SSH: tests talk HTTP to moto's server and SSH to
OpenSSH servers started for the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ec2kit.sandbox.daemon.sshd import SshdHost, free_port  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def shared_model_cache(tmp_path_factory):
    """One cache of botocore's parsed models for the session (EC2KIT_CACHE_DIR; commands the tests start
    inherit it) instead of ~3 MB in every test's home. The model cache's own tests point it at their homes."""
    if os.environ.get("EC2KIT_CACHE_DIR"):
        yield None
        return
    path = tmp_path_factory.mktemp("model-cache")
    os.environ["EC2KIT_CACHE_DIR"] = str(path)
    yield path
    os.environ.pop("EC2KIT_CACHE_DIR", None)


@pytest.fixture(scope="session")
def moto_server():
    """A bare moto EC2 server (no sandbox hosts): yields its endpoint URL. It knows one thing more than moto:
    CreateImage takes TagSpecifications for snapshots and BlockDeviceMappings (NoDevice), as AWS does."""
    from moto.server import ThreadedMotoServer

    from ec2kit.sandbox.moto import storage_behaviours

    storage_behaviours.install(snapshots=False)

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def cloud(moto_reset, tmp_path, monkeypatch):
    """A Cloud on a freshly reset bare moto server (no sandbox hosts), state under ``tmp_path``."""
    from aws_helpers import CREDS

    from ec2kit.aws.cloud import Cloud
    from ec2kit.settings import Settings

    monkeypatch.delenv("EC2KIT_SSH_CIDR", raising=False)
    return Cloud(Settings(home=tmp_path), endpoint_url=moto_reset, credentials=CREDS, region="us-east-1")


@pytest.fixture
def moto_reset(moto_server):
    """Wipe moto's state before a test that needs a clean account."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    return moto_server


@pytest.fixture(scope="session")
def user_key(tmp_path_factory) -> Path:
    """A throwaway ed25519 key pair for tests (private key path; .pub beside it)."""
    d = tmp_path_factory.mktemp("keys")
    key = d / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="session")
def sshd_factory(tmp_path_factory, user_key):
    """Start extra plain sshd hosts on loopback: ``host = sshd_factory('web1')``."""
    started: list[SshdHost] = []

    def make(name: str, **kwargs) -> SshdHost:
        host = SshdHost(tmp_path_factory.mktemp(name), authorized_keys=[user_key.with_suffix(".pub").read_text()], **kwargs)
        host.start()
        started.append(host)
        return host

    yield make
    for host in started:
        host.stop()


@pytest.fixture(scope="session")
def sshd_host(sshd_factory) -> SshdHost:
    """One plain sshd host shared by the session."""
    return sshd_factory("host1")


class SandboxSession:
    """What the ``sandbox`` fixture yields: one sandbox daemon for the test session.

    ``.settings`` Settings(home=<tmp>, sandbox=True): keys, known_hosts and runs db live there.
    ``.info``     SandboxInfo(endpoint_url, control_url, region, dir, pid).
    ``.ec2``      a boto3 EC2 client for the sandbox endpoint (dummy credentials, us-east-1).
    ``.resolver`` ec2kit.sandbox.Resolver: where a sandbox instance's sshd answers.
    ``.ssh_target(instance_id, key_file=, known_hosts=, …)`` an SshTarget there, as Context builds one.
    """

    def __init__(self, settings, info) -> None:
        from ec2kit.sandbox import Resolver

        self.settings, self.info = settings, info
        self.ec2 = info.client()
        self.resolver = Resolver(info)

    def ssh_target(self, instance_id, *, key_file, known_hosts, name="", timeout=10.0, from_instance=None):
        """The SshTarget of a running sandbox instance (waits up to ``timeout`` s for its sshd)."""
        from ec2kit.ssh.target import SshTarget

        label = f"{name} ({instance_id})" if name else instance_id
        found = self.resolver.wait_address(instance_id, label=label, timeout=timeout, from_instance=from_instance)
        return SshTarget(found.host, found.port, found.user, Path(key_file), instance_id, Path(known_hosts), name)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """A running sandbox daemon (moto + one real sshd per running instance) shared by the session.

    Yields a SandboxSession with ``.settings``, ``.info``, ``.ec2`` and ``.resolver``; stopped at
    session end. State persists between tests: create your own instances/keys and name them
    uniquely, or use ``sandbox_reset`` for a clean account.
    """
    from ec2kit import sandbox as sb
    from ec2kit.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("ec2kit-home"), sandbox=True)
    session = SandboxSession(settings, sb.ensure_running(settings))
    yield session
    sb.down(settings)


@pytest.fixture
def sandbox_reset(sandbox):
    """The session sandbox wiped clean first (moto reset + every host, volume and image dropped), and
    again afterwards, so what a test set (empty capacity pools, quotas, a moved caller IP) never
    reaches the tests after it."""
    from ec2kit import sandbox as sb

    sb.reset(sandbox.info)
    yield sandbox
    sb.reset(sandbox.info)


@pytest.fixture
def launched(sandbox):
    """``dirs = launched("a", "b", tags="role=web")``: running sandbox instances launched with `inv launch`
    (name → host directory, named by the instance id), terminated afterwards."""
    from cli_helpers import instance_dir, run_inv

    home, made = sandbox.settings.home, []

    def launch(*names: str, tags: str = "") -> dict[str, Path]:
        dirs = {}
        for name in names:
            result = run_inv("launch", name, *(["--tag", tags] if tags else []), home=home)
            assert result.code == 0, result
            made.append(name)
            dirs[name] = instance_dir(home, name)
        return dirs

    yield launch
    for name in made:
        run_inv("terminate", name, home=home)


SERVER_FIXTURES = {"sandbox", "sandbox_reset", "moto_server", "moto_reset", "sshd_host", "sshd_factory"}
#: Directories whose tests run what a user types end to end (the CLI as a process, tmux, the daemon, rsync).
END_TO_END = (Path(__file__).parent / "e2e", Path(__file__).parent / "bad")


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs a server (moto, the sandbox daemon, sshd) or starts real programs as
    ``sandbox``, so ``pytest -m "not sandbox"`` is the fast, host-free tier."""
    for item in items:
        slow = any(Path(item.path).is_relative_to(d) for d in END_TO_END)
        if slow or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sandbox)
