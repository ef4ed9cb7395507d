"""ec2kit.ssh.openssh: commands through the system ssh client, against real sshd hosts on loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ec2kit import settings, ssh
from ec2kit.errors import AuthFailed, ConfigError, HostKeyMismatch, RemoteError
from ec2kit.sandbox.daemon.sshd import SshdHost, free_port
from ec2kit.ssh import openssh, pins
from ec2kit.ssh.fabric import FabricTransport
from ec2kit.ssh.openssh import OpenSshTransport, control_path, exec_argv, ssh_failure
from ec2kit.ssh.pins import pinned_keys
from ec2kit.ssh.target import SshTarget

_aliases = iter(range(10_000))


def target_for(sshd: SshdHost, key: Path, known_hosts: Path, alias: str | None = None, name: str = "web") -> SshTarget:
    return SshTarget("127.0.0.1", sshd.port, sshd.user, key, alias or f"i-{next(_aliases)}", known_hosts, name)


@pytest.fixture
def known_hosts(tmp_path) -> Path:
    path = tmp_path / "ec2kit" / "known_hosts"
    path.parent.mkdir()
    return path


@pytest.fixture
def shell(sshd_host, user_key, known_hosts):
    h = OpenSshTransport(target_for(sshd_host, user_key, known_hosts, alias="i-0abc"))
    yield h
    h.disconnect()


@pytest.fixture(scope="module")
def other_sshd(sshd_factory) -> SshdHost:
    """A second machine: same user and key, a different host key."""
    return sshd_factory("openssh-other")


# --------------------------------------------------------------------------- pure builders

SAMPLE = SshTarget("10.0.0.5", 22, "ubuntu", Path("/k/my keys/ec2kit"), "i-0123", Path("/h/known_hosts"), "base")


def test_exec_argv_pins_by_alias_ignores_user_config_and_shares_the_connection():
    argv = exec_argv(SAMPLE, "echo hi", control=Path("/tmp/cm/abc"), persist=60)
    assert argv[:4] == ["ssh", "-F", "none", "-T"] and argv[-3:] == ["--", "10.0.0.5", "echo hi"]
    opts = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {
        "HostKeyAlias=i-0123",
        "UserKnownHostsFile=/h/known_hosts",
        "StrictHostKeyChecking=accept-new",
        "BatchMode=yes",
        "ControlMaster=auto",
        "ControlPath=/tmp/cm/abc",
        "ControlPersist=60",
    } <= opts
    assert ["-i", "/k/my keys/ec2kit"] == argv[argv.index("-i") : argv.index("-i") + 2]
    assert ["-l", "ubuntu"] == argv[argv.index("-l") : argv.index("-l") + 2]


def test_exec_argv_without_sharing_turns_multiplexing_off():
    argv = exec_argv(SAMPLE, "true", control=Path("/tmp/cm/abc"), persist=0)
    assert "ControlPath=none" in argv and "ControlMaster=no" in argv and not any("Persist" in a for a in argv)


def test_exec_argv_without_a_command_starts_a_master_in_the_background():
    argv = exec_argv(SAMPLE, None, control=Path("/tmp/cm/abc"), persist=60)
    assert argv[-4:] == ["-N", "-f", "--", "10.0.0.5"]  # nothing after the address: no empty command
    assert argv.count("--") == 1


def test_exec_argv_quotes_option_values_with_spaces():
    target = SshTarget("h", 22, "u", Path("/k"), "i-1", Path("/my home/known_hosts"))
    assert 'UserKnownHostsFile="/my home/known_hosts"' in exec_argv(target, "true")


def test_control_path_is_short_and_distinct_per_instance():
    d = Path("/tmp/ec2kit-ssh-0")
    a = control_path(SAMPLE, d)
    b = control_path(SshTarget("10.0.0.5", 22, "ubuntu", SAMPLE.key_file, "i-0999", SAMPLE.known_hosts), d)
    assert a != b and a.parent == d and len(str(a)) + 17 < 104  # ssh adds a 17-char suffix while binding
    assert control_path(SAMPLE, d) == a


@pytest.mark.parametrize("stderr, kind, expected", [
    ("ssh: connect to host 10.0.0.5 port 22: Connection refused\r\n", RemoteError, "connection refused"),
    ("ssh: connect to host 10.0.0.5 port 22: Connection timed out\r\n", RemoteError, "security group"),
    ("ssh: Could not resolve hostname nowhere: Name or service not known\r\n", RemoteError, "cannot resolve 'nowhere'"),
    ("ubuntu@10.0.0.5: Permission denied (publickey).\r\n", AuthFailed, "with key /k/my keys/ec2kit failed"),
    ("kex_exchange_identification: read: Connection reset by peer\r\n", RemoteError, "handshake failed"),
    ("ssh: Connection timed out during banner exchange\r\n", RemoteError, "handshake failed"),
    ("Timeout, server 10.0.0.5 not responding.\r\n", RemoteError, "closed while running"),
    ("Connection to 10.0.0.5 closed by remote host.\r\n", RemoteError, "closed while running"),
    ("@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@\n"
     "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:abcDEF123.\n"
     "Host key verification failed.\r\n", HostKeyMismatch, "presented host key ED25519 SHA256:abcDEF123, but"),
    ("mux_client_request_session: session request failed: Session open refused by peer\r\n", RemoteError,
     "EC2KIT_SSH_PERSIST=0"),
])  # fmt: skip
def test_ssh_failure_names_what_went_wrong(stderr, kind, expected):
    err = ssh_failure(stderr, SAMPLE)
    assert type(err) is kind and expected in str(err), str(err)
    assert "base" in str(err)


def test_ssh_failure_leaves_a_remote_exit_255_to_the_command():
    assert ssh_failure("my tool: fatal error\n", SAMPLE) is None
    assert ssh_failure("", SAMPLE) is None


def test_bad_settings_are_config_errors(monkeypatch):
    monkeypatch.setenv("EC2KIT_SSH", "putty")
    with pytest.raises(ConfigError, match="EC2KIT_SSH='putty'"):
        ssh.openssh_preferred()
    monkeypatch.setenv("EC2KIT_SSH", "paramiko")
    assert ssh.openssh_preferred() is False
    monkeypatch.setenv("EC2KIT_SSH_PERSIST", "soon")
    with pytest.raises(ConfigError, match="EC2KIT_SSH_PERSIST"):
        settings.ssh_persist()


def test_control_dir_is_private_and_short(tmp_path, monkeypatch):
    d = openssh.control_dir(tmp_path)
    assert d == tmp_path / f"ec2kit-ssh-{os.getuid()}" and oct(d.stat().st_mode & 0o777) == "0o700"
    d.chmod(0o777)
    (d / "planted").write_text("")  # others could have put a socket here
    assert openssh.control_dir(tmp_path) == d
    assert oct(d.stat().st_mode & 0o777) == "0o700" and list(d.iterdir()) == []
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    (elsewhere / f"ec2kit-ssh-{os.getuid()}").symlink_to(tmp_path)
    assert openssh.control_dir(elsewhere) is None  # a symlink: not ours to trust
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / ("x" * 60)))
    assert openssh.control_dir() == Path("/tmp") / f"ec2kit-ssh-{os.getuid()}"  # room for the socket name


# --------------------------------------------------------------------------- running commands
# (the contract both transports share is tested in test_remote.py, on both)


def test_a_command_exiting_255_is_not_a_connection_error(shell):
    result = shell.run("echo partial; exit 255", check=False)
    assert (result.exit_code, result.stdout) == (255, "partial\n")
    # even when it prints what ssh itself would: ssh's own messages go to a log of their own
    fake = "echo 'ssh: connect to host db port 22: Connection refused' >&2; exit 255"
    result = shell.run(fake, check=False)
    assert (result.exit_code, result.stderr) == (255, "ssh: connect to host db port 22: Connection refused\n")
    assert shell.run("exit 255", check=False).exit_code == 255  # silent, through a live shared connection


def test_a_shared_connection_that_drops_mid_command_is_a_remote_error(sshd_factory, user_key, known_hosts):
    import threading

    sshd = sshd_factory("openssh-drop")
    shell = OpenSshTransport(target_for(sshd, user_key, known_hosts, name="dropping"), persist=30)
    shell.run("true")  # the shared connection is up
    stopper = threading.Timer(1.0, sshd.stop)
    stopper.start()
    with pytest.raises(RemoteError, match="closed while running") as info:
        shell.run("echo started; sleep 10")
    stopper.join()  # the fixture's teardown stops the same sshd: never both at once
    assert "dropping" in str(info.value)
    assert info.value.message.endswith(".") and "a command Did" not in str(info.value), str(info.value)


def test_a_connection_closed_mid_command_reads_as_a_sentence_then_the_hint():
    from ec2kit.ssh.transport import closed_while_running

    assert str(closed_while_running(SAMPLE)).endswith(
        "while running a command. Did the instance stop or reboot? Check with `inv instances`."
    )
    assert "while running: tar -xzf x (EOF). Did" in str(closed_while_running(SAMPLE, "tar -xzf x (EOF)", "failed"))


# --------------------------------------------------------------------------- shared connections


def test_commands_share_one_connection_across_host_objects(sshd_factory, user_key, known_hosts):
    sshd = sshd_factory("openssh-mux")
    target = target_for(sshd, user_key, known_hosts)
    first = OpenSshTransport(target, persist=30)
    try:
        for _ in range(3):
            first.run("true")
        OpenSshTransport(target, persist=30).run("true")  # a later process reaches the same master
        assert (sshd.connections(), sshd.exec_channels()) == (1, 4)
    finally:
        first.disconnect()
    OpenSshTransport(target, persist=30).run("true")
    assert sshd.connections() == 2  # disconnect() really closed it
    OpenSshTransport(target, persist=30).disconnect()


def test_without_sharing_each_command_is_its_own_connection(sshd_factory, user_key, known_hosts):
    sshd = sshd_factory("openssh-nomux")
    shell = OpenSshTransport(target_for(sshd, user_key, known_hosts), persist=0)
    shell.run("true")
    shell.run("true")
    assert sshd.connections() == 2


def test_a_stale_control_socket_is_replaced(sshd_factory, user_key, known_hosts):
    sshd = sshd_factory("openssh-stale")
    shell = OpenSshTransport(target_for(sshd, user_key, known_hosts), persist=30)
    sock = control_path(shell.target, openssh.control_dir())
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # a socket file nobody listens on, as a killed master leaves behind
    s.close()
    try:
        assert shell.run("echo fresh").stdout == "fresh\n"
    finally:
        shell.disconnect()


def test_the_shared_connection_ends_when_the_host_goes_away(sshd_factory, user_key, known_hosts):
    sshd = sshd_factory("openssh-gone")
    shell = OpenSshTransport(target_for(sshd, user_key, known_hosts, name="gone"), persist=30)
    shell.run("true")
    sshd.stop()
    with pytest.raises(RemoteError, match="connection refused"):
        shell.run("true")


# --------------------------------------------------------------------------- host keys and failures


def test_first_contact_pins_the_key_in_the_format_the_paramiko_host_reads(shell, sshd_host, known_hosts):
    shell.run("true")
    assert known_hosts.read_text().strip() == f"i-0abc {sshd_host.host_public_key().rsplit(' ', 1)[0]}"
    with FabricTransport(shell.target) as host:
        assert host.run("echo same pin").stdout == "same pin\n"
    assert set(pinned_keys(known_hosts, "i-0abc")) == {"ssh-ed25519"}


def test_first_contact_creates_the_pin_file_and_its_directory(sshd_host, user_key, tmp_path):
    known_hosts = tmp_path / "fresh home" / "known_hosts"
    OpenSshTransport(target_for(sshd_host, user_key, known_hosts, alias="i-new"), persist=0).run("true")
    assert known_hosts.read_text().startswith("i-new ssh-ed25519 ")
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"


def test_a_different_host_key_for_the_same_alias_is_refused_before_running_anything(shell, other_sshd, user_key, known_hosts):
    shell.run("true")
    before = other_sshd.exec_channels()
    impostor = OpenSshTransport(target_for(other_sshd, user_key, known_hosts, alias="i-0abc"), persist=0)
    with pytest.raises(HostKeyMismatch) as info:
        impostor.run("touch ~/pwned")
    message = str(info.value)
    assert "'web' (i-0abc)" in message and "inv forget-host web" in message and message.count("SHA256:") == 2
    assert other_sshd.exec_channels() == before and not (other_sshd.home / "pwned").exists()


def test_closed_port_names_host_and_port(user_key, known_hosts):
    port = free_port()
    target = SshTarget("127.0.0.1", port, "ubuntu", user_key, "i-dead", known_hosts, "dead")
    with pytest.raises(RemoteError) as info:
        OpenSshTransport(target).run("true")
    assert f"127.0.0.1:{port}" in str(info.value) and "inv start dead" in str(info.value)


def test_wrong_key_names_the_key_file(sshd_host, known_hosts, tmp_path):
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    with pytest.raises(RemoteError, match="authentication") as info:
        OpenSshTransport(target_for(sshd_host, other_key, known_hosts)).run("true")
    assert str(other_key) in str(info.value)


def test_missing_key_file_is_named_before_dialing(sshd_host, known_hosts, tmp_path):
    with pytest.raises(RemoteError, match="does not exist") as info:
        OpenSshTransport(target_for(sshd_host, tmp_path / "nokey", known_hosts)).run("true")
    assert str(tmp_path / "nokey") in str(info.value)


def test_pinned_fingerprints_reads_plain_and_hashed_pins(sshd_host, tmp_path):
    public = sshd_host.host_public_key().split()
    kh = tmp_path / "kh"
    kh.write_text(f"# comment\ni-plain {public[0]} {public[1]}\ni-hashed {public[0]} {public[1]}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert "i-hashed" not in kh.read_text()
    expected = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=" ".join(public[:2]), capture_output=True, text=True, check=True
    ).stdout.split()[1]
    for alias in ("i-plain", "i-hashed"):
        assert pins.pinned_fingerprints(kh, alias) == [f"{public[0]} {expected}"]
    assert pins.pinned_fingerprints(kh, "i-other") == []


def test_wait_ssh_through_openssh_leaves_the_connection_for_the_next_command(tmp_path, user_key, known_hosts):
    import threading

    from ec2kit.ssh import wait_ssh

    late = SshdHost(tmp_path / "late", port=free_port(), authorized_keys=[user_key.with_suffix(".pub").read_text()])
    late.write_config()
    starter = threading.Timer(0.5, late.start)
    starter.start()
    target = target_for(late, user_key, known_hosts, alias="i-late")
    tries: list[str] = []
    try:
        wait_ssh(target, timeout=15, interval=0.2, progress=tries.append, client=OpenSshTransport)
        assert len(tries) >= 2 and pinned_keys(known_hosts, "i-late")
        assert OpenSshTransport(target).run("echo next").stdout == "next\n"
        assert late.connections() == 1  # the command after the wait needed no handshake
    finally:
        starter.join()
        OpenSshTransport(target).disconnect()
        late.stop()


def test_open_with_no_master_starts_one_that_the_next_command_uses(sshd_factory, user_key, known_hosts):
    host = sshd_factory("openssh-open")
    target = target_for(host, user_key, known_hosts, alias="i-open")
    first = OpenSshTransport(target)
    try:
        assert not first.shared_connection_alive()
        before = host.connections()
        first.open()
        assert first.reached and first.shared_connection_alive()  # ssh -N -f left a master behind
        assert pinned_keys(known_hosts, "i-open")  # the host key was checked and pinned on the way
        assert OpenSshTransport(target).run("echo next").stdout == "next\n"
        assert host.connections() == before + 1  # the command went through the master: one handshake in all
    finally:
        first.disconnect()


def test_connect_picks_openssh_by_default_and_fabric_on_request(monkeypatch):
    from ec2kit.ssh import connect

    monkeypatch.delenv("EC2KIT_SSH", raising=False)
    assert type(connect(SAMPLE)) is OpenSshTransport
    for choice in ("fabric", "paramiko"):
        monkeypatch.setenv("EC2KIT_SSH", choice)
        assert type(connect(SAMPLE)) is FabricTransport
    monkeypatch.setenv("EC2KIT_SSH", "openssh")
    monkeypatch.setenv("PATH", "/nonexistent")  # no ssh client installed
    assert type(connect(SAMPLE)) is FabricTransport


def test_put_and_get_travel_over_the_shared_connection(sshd_factory, user_key, known_hosts, tmp_path):
    sshd = sshd_factory("openssh-files")
    shell = OpenSshTransport(target_for(sshd, user_key, known_hosts), persist=30)
    try:
        shell.put_bytes(b"one\n", "~/one.txt", mode=0o600)
        shell.get("~/one.txt", tmp_path / "one.txt")
        assert (tmp_path / "one.txt").read_bytes() == b"one\n"
        # one handshake; one exec for $HOME (once per transport), one per transfer; no SFTP subsystem
        assert (sshd.connections(), sshd.exec_channels()) == (1, 3)
    finally:
        shell.disconnect()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_upload_script_renames_only_a_complete_file(shell, tmp_path):
    from ec2kit.ssh.openssh import put_script

    dest = tmp_path / "f"
    dest.write_bytes(b"complete\n")
    short = subprocess.run([shell, "-c", put_script(str(dest), 0o600, 100)], input=b"partial", capture_output=True)
    assert short.returncode == 75 and dest.read_bytes() == b"complete\n" and list(tmp_path.iterdir()) == [dest]
    done = subprocess.run([shell, "-c", put_script(str(dest), None, 4)], input=b"new\n", capture_output=True)
    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == b"new\n" and list(tmp_path.iterdir()) == [dest]
    assert oct(dest.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the old file's mode, kept


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- tunnels (inv jupyter)


def _http_server(port: int) -> subprocess.Popen:
    """A tiny HTTP server on the sshd host's loopback (the same machine here), as Jupyter would be."""
    code = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'far side')\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    import sys

    proc = subprocess.Popen([sys.executable, "-c", code])
    from cli_helpers import wait_for

    wait_for(lambda: _fetch(port) == b"far side", 20, "the test server")
    return proc


def _fetch(port: int) -> bytes | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as answer:
            return answer.read()
    except OSError:
        return None


def test_a_tunnel_outlives_the_command_connection_and_end_tunnel_closes_it(shell):
    remote, local = free_port(), free_port()
    server = _http_server(remote)
    try:
        shell.run("true")  # the shared command connection is up
        shell.tunnel(local, remote)
        assert _fetch(local) == b"far side"
        shell.tunnel(local, remote)  # asked again: changes nothing, still one forward
        assert shell._control("exit") == 0  # the command master ends (as after its linger)...
        assert _fetch(local) == b"far side"  # ...the tunnel, on its own master, does not
        assert shell.end_tunnel(local, remote) is True
        assert _fetch(local) is None
        assert shell.end_tunnel(local, remote) is False  # nothing left to end
    finally:
        server.terminate()
        server.wait(10)


def test_a_tunnel_to_a_local_port_in_use_names_the_port(shell):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(RemoteError, match=f"local port {taken}"):
            shell.tunnel(taken, free_port())
    shell.end_tunnel(taken, 0)


def test_fabric_refuses_a_tunnel_with_a_hint(shell):
    with FabricTransport(shell.target) as host, pytest.raises(RemoteError, match="OpenSSH"):
        host.tunnel(free_port(), free_port())
