"""The SSH transport contract (ec2kit.ssh), on both transports, against real OpenSSH servers on loopback (no mocks)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ec2kit.errors import ConfigError, HostKeyMismatch, RemoteError, TimedOut, UnexpectedExit
from ec2kit.sandbox.daemon.sshd import SshdHost, free_port
from ec2kit.ssh import wait_ssh
from ec2kit.ssh.fabric import FabricTransport
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.pins import forget_host, pinned_keys
from ec2kit.ssh.target import SshTarget, rsync_argv, ssh_argv, ssh_config_block, wrap_command, write_ssh_config


def target_for(sshd: SshdHost, key: Path, known_hosts: Path, alias: str = "i-0abc", name: str = "web") -> SshTarget:
    return SshTarget("127.0.0.1", sshd.port, sshd.user, key, alias, known_hosts, name)


@pytest.fixture
def known_hosts(tmp_path) -> Path:
    return tmp_path / "ec2kit" / "known_hosts"


TRANSPORTS = {"fabric": FabricTransport, "openssh": OpenSshTransport}


@pytest.fixture(params=list(TRANSPORTS))
def make_host(request):
    """Makes transports of one kind (each test runs on both); every one is disconnected afterwards."""
    made = []

    def make(target: SshTarget, **options):
        made.append(TRANSPORTS[request.param](target, **options))
        return made[-1]

    yield make
    for t in made:
        t.disconnect()


@pytest.fixture
def host(make_host, sshd_host, user_key, known_hosts):
    with make_host(target_for(sshd_host, user_key, known_hosts)) as h:
        yield h


@pytest.fixture
def fabric_host(sshd_host, user_key, known_hosts):
    """The Fabric transport alone (tests of its own connection handling)."""
    with FabricTransport(target_for(sshd_host, user_key, known_hosts)) as h:
        yield h


@pytest.fixture
def any_host(host):
    """The run contract holds for both transports: Fabric (paramiko) and OpenSSH."""
    return host


@pytest.fixture(scope="module")
def other_sshd(sshd_factory) -> SshdHost:
    """A second machine: same user and key, a different host key."""
    return sshd_factory("host2")


# --------------------------------------------------------------------------- pure builders

SAMPLE = SshTarget("10.0.0.5", 22, "ubuntu", Path("/k/ec2kit"), "i-0123", Path("/h/known_hosts"), "base")


def test_wrap_command_leaves_a_plain_command_alone():
    assert wrap_command("ls -l") == "ls -l"


def test_wrap_command_changes_directory_and_keeps_tilde_expandable():
    assert wrap_command("make", cwd="~/my src") == "cd ~/'my src' && make"
    assert wrap_command("ls", cwd="/var/log") == "cd /var/log && ls"


def test_wrap_command_exports_quoted_environment():
    assert wrap_command("env", env={"A": "1", "B": "x y"}) == "export A=1; export B='x y'; env"


def test_wrap_command_runs_env_and_command_under_sudo_after_cd():
    got = wrap_command("make install", sudo=True, env={"J": "4"}, cwd="~/src")
    assert got == "cd ~/src && sudo -n -H bash -c 'export J=4; make install'"


def test_wrap_command_rejects_a_bad_environment_name():
    from ec2kit.errors import ConfigError

    with pytest.raises(ConfigError, match="1BAD"):
        wrap_command("true", env={"1BAD": "x"})


def test_ssh_argv_pins_by_alias_and_forwards_ports():
    assert ssh_argv(SAMPLE, ports=[8888, "8080:80"], command="uptime", tty=True) == [
        "ssh", "-i", "/k/ec2kit", "-p", "22",
        "-o", "IdentitiesOnly=yes", "-o", "HostKeyAlias=i-0123", "-o", "UserKnownHostsFile=/h/known_hosts",
        "-o", "StrictHostKeyChecking=accept-new", "-o", "CheckHostIP=no",
        "-L", "8888:localhost:8888", "-L", "8080:localhost:80", "-t", "-l", "ubuntu", "--", "10.0.0.5", "uptime",
    ]  # fmt: skip


def test_rsync_argv_pulls_with_quoted_ssh_command():
    argv = rsync_argv(SAMPLE, "/home/ubuntu/runs/r1/", "out/", delete=True, excludes=["*.tmp"])
    assert argv[:6] == ["rsync", "-az", "--partial", "--delete", "--exclude", "*.tmp"]
    assert argv[6] == "-e"
    assert shlex.split(argv[7])[-6:] == ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "ConnectTimeout=10"]
    assert "HostKeyAlias=i-0123" in shlex.split(argv[7])
    assert argv[8:] == ["ubuntu@10.0.0.5:/home/ubuntu/runs/r1/", "out/"]


def test_rsync_argv_pushes_when_the_source_is_local():
    assert rsync_argv(SAMPLE, "src/", "/srv/app", remote_src=False)[-2:] == ["src/", "ubuntu@10.0.0.5:/srv/app"]


def test_ssh_config_block_names_key_alias_and_known_hosts():
    assert ssh_config_block("base", SAMPLE) == (
        "Host base\n"
        '    HostName "10.0.0.5"\n'
        '    Port "22"\n'
        '    User "ubuntu"\n'
        '    IdentityFile "/k/ec2kit"\n'
        '    IdentitiesOnly "yes"\n'
        '    HostKeyAlias "i-0123"\n'
        '    UserKnownHostsFile "/h/known_hosts"\n'
        '    StrictHostKeyChecking "accept-new"\n'
    )


# --------------------------------------------------------------------------- running commands


def test_run_returns_output_and_exit_code(any_host):
    result = any_host.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("out\n", "err\n", 3, False)
    assert any_host.run("true").ok


def test_failed_command_raises_unexpected_exit_with_command_code_and_output_tail(any_host):
    with pytest.raises(UnexpectedExit) as info:
        any_host.run("for i in $(seq 1 30); do echo line$i; done; exit 7")
    err = info.value
    assert (err.command, err.exit_code, err.host) == ("for i in $(seq 1 30); do echo line$i; done; exit 7", 7, "web")
    assert "line30" in str(err) and "line5\n" not in str(err)


def test_env_and_cwd_reach_the_command(any_host, sshd_host):
    (sshd_host.home / "work dir").mkdir(exist_ok=True)
    result = any_host.run('echo "$GREETING" && pwd', env={"GREETING": "hello 'world'"}, cwd="~/work dir")
    assert result.stdout == f"hello 'world'\n{sshd_host.home}/work dir\n"


def test_five_megabytes_of_stdin_reach_the_command_intact(any_host):
    data = os.urandom(5 * 1024 * 1024)
    result = any_host.run("sha256sum", stdin=data)
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_command_that_echoes_large_stdin_does_not_deadlock(any_host):
    data = b"x" * (4 * 1024 * 1024)
    assert len(any_host.run("cat", stdin=data).stdout) == len(data)


def test_command_without_stdin_sees_end_of_file(any_host):
    assert any_host.run("cat", timeout=5).stdout == ""


def test_timeout_stops_waiting_for_a_slow_command(any_host):
    with pytest.raises(TimedOut, match="sleep 5"):
        any_host.run("sleep 5", timeout=0.3)
    assert any_host.run("echo still usable").stdout == "still usable\n"


def test_stream_receives_lines_as_they_arrive(any_host):
    lines: list[str] = []
    result = any_host.run("echo a; echo b >&2; printf c", stream=lines.append)
    assert sorted(lines) == ["a", "b", "c"] and result.stdout == "a\nc"


@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed (CI installs it)")
def test_sudo_runs_the_command_as_root_in_the_login_users_cwd(any_host, sshd_host):
    result = any_host.run('echo "$(id -u) $V $PWD"', sudo=True, env={"V": "x y"}, cwd="~")
    assert result.stdout == f"0 x y {sshd_host.home}\n"


def test_home_is_the_remote_home_and_tilde_expands_against_it(any_host, sshd_host):
    assert any_host.home == str(sshd_host.home)
    assert any_host.expand("~/a/b") == f"{sshd_host.home}/a/b"
    assert any_host.expand("/etc/x") == "/etc/x"
    assert any_host.run("pwd").stdout == f"{sshd_host.home}\n"  # every command starts in $HOME


def test_one_connection_is_reused_for_many_commands(fabric_host):
    host = fabric_host
    host.run("true")
    transport = host.connection.transport
    for _ in range(3):
        host.run("true")
    assert host.connection.transport is transport


def test_host_reconnects_after_the_connection_drops(fabric_host):
    host = fabric_host
    host.run("true")
    host.connection.transport.close()
    assert host.run("echo back").stdout == "back\n"


# --------------------------------------------------------------------------- files


def test_put_bytes_put_and_get_round_trip_under_home(host, sshd_host, tmp_path):
    host.run("mkdir -p ~/files")
    host.put_bytes(b"secret\n", "~/files/a.txt", mode=0o600)
    assert (sshd_host.home / "files" / "a.txt").read_bytes() == b"secret\n"
    assert oct((sshd_host.home / "files" / "a.txt").stat().st_mode & 0o777) == "0o600"
    local = tmp_path / "b.bin"
    local.write_bytes(os.urandom(300_000))
    host.put(local, "~/files/b.bin")
    host.get("~/files/b.bin", tmp_path / "back" / "b.bin")
    assert (tmp_path / "back" / "b.bin").read_bytes() == local.read_bytes()


def test_put_into_a_missing_directory_says_to_create_it(host):
    with pytest.raises(RemoteError, match="mkdir -p"):
        host.put_bytes(b"x", "~/no/such/dir/f")


def test_put_sets_the_mode_before_the_file_appears_and_keeps_an_existing_mode(host, sshd_host):
    host.run("mkdir -p ~/modes")
    host.put_bytes(b"#!/bin/sh\necho hi\n", "~/modes/run.sh", mode=0o750)
    target = sshd_host.home / "modes" / "run.sh"
    assert oct(target.stat().st_mode & 0o777) == "0o750"
    host.put_bytes(b"#!/bin/sh\necho again\n", "~/modes/run.sh")  # no mode: the file keeps its own
    assert oct(target.stat().st_mode & 0o777) == "0o750" and target.read_bytes().endswith(b"again\n")
    assert host.run("~/modes/run.sh").stdout == "again\n"


def test_put_replaces_a_file_atomically_and_leaves_no_temp_file(host, sshd_host):
    host.run("mkdir -p ~/atomic")
    host.put_bytes(b"old contents\n", "~/atomic/f")
    path = sshd_host.home / "atomic" / "f"
    with open(path, "rb") as reader:  # a reader of the old file keeps the whole old file
        host.put_bytes(b"new\n", "~/atomic/f")
        assert reader.read() == b"old contents\n"
    assert path.read_bytes() == b"new\n"
    assert [p.name for p in path.parent.iterdir()] == ["f"]


def test_several_megabytes_round_trip_intact(host, tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(6 * 1024 * 1024 + 123))
    host.run("mkdir -p ~/big")
    host.put(local, "~/big/big.bin")
    assert host.run("sha256sum ~/big/big.bin").stdout.split()[0] == hashlib.sha256(local.read_bytes()).hexdigest()
    back = tmp_path / "back" / "big.bin"
    host.get("~/big/big.bin", back)
    assert back.read_bytes() == local.read_bytes()


def test_get_of_a_missing_file_names_it_and_keeps_the_local_copy(host, tmp_path):
    local = tmp_path / "local" / "keep.txt"
    local.parent.mkdir()
    local.write_text("complete\n")
    with pytest.raises(RemoteError, match="no such file or directory") as info:
        host.get("~/no/such/file.txt", local)
    assert f"{host.home}/no/such/file.txt" in str(info.value) and "web" in str(info.value)
    assert local.read_text() == "complete\n" and [p.name for p in local.parent.iterdir()] == ["keep.txt"]


# --------------------------------------------------------------------------- host keys


def test_first_contact_pins_the_host_key_under_the_alias(host, sshd_host, known_hosts):
    host.run("true")
    line = known_hosts.read_text().strip()
    assert line == f"i-0abc {sshd_host.host_public_key().rsplit(' ', 1)[0]}"
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"


def test_a_different_host_key_for_the_same_alias_is_refused_before_running_anything(
    make_host, host, other_sshd, user_key, known_hosts
):
    host.run("true")
    before = other_sshd.exec_channels()
    impostor = make_host(target_for(other_sshd, user_key, known_hosts))
    with pytest.raises(HostKeyMismatch) as info:
        impostor.run("touch ~/pwned")
    message = str(info.value)
    assert "'web' (i-0abc)" in message and "inv forget-host web" in message and message.count("SHA256:") == 2
    assert other_sshd.exec_channels() == before
    assert not (other_sshd.home / "pwned").exists()


def test_forget_host_then_reconnect_learns_the_new_key(make_host, host, other_sshd, user_key, known_hosts):
    host.run("true")
    assert forget_host(known_hosts, "i-0abc") == 1
    with make_host(target_for(other_sshd, user_key, known_hosts)) as rebuilt:
        assert rebuilt.run("echo ok").stdout == "ok\n"
    assert pinned_keys(known_hosts, "i-0abc")["ssh-ed25519"].get_base64() in other_sshd.host_public_key()


def test_pins_are_per_alias_not_per_address(make_host, sshd_host, user_key, known_hosts):
    for alias in ("i-1", "i-2"):
        with make_host(target_for(sshd_host, user_key, known_hosts, alias=alias)) as h:
            h.run("true")
    assert set(pinned_keys(known_hosts, "i-1")) == {"ssh-ed25519"} and pinned_keys(known_hosts, "i-2")
    assert "127.0.0.1" not in known_hosts.read_text()


def test_corrupt_known_hosts_lines_are_ignored_and_kept(host, known_hosts):
    known_hosts.parent.mkdir(parents=True)
    junk = "i-0abc ssh-ed25519 !!!not-base64\n@revoked * ssh-ed25519 AAAA\n# comment\ngarbage\n"
    known_hosts.write_text(junk)
    assert host.run("echo ok").stdout == "ok\n"
    assert known_hosts.read_text().startswith(junk) and set(pinned_keys(known_hosts, "i-0abc")) == {"ssh-ed25519"}
    assert forget_host(known_hosts, "i-0abc") == 1 and known_hosts.read_text() == junk


def test_an_unreadable_known_hosts_file_stops_the_connection_and_says_how_to_recover(make_host, sshd_host, user_key, known_hosts):
    known_hosts.parent.mkdir(parents=True)
    public = sshd_host.host_public_key().split()
    damaged = f"i-0abc {public[0]} {public[1]}\n".encode() + b"\0" * 512  # as a crash mid-append leaves it
    known_hosts.write_bytes(damaged)
    before = sshd_host.exec_channels()
    with pytest.raises(ConfigError) as info:
        make_host(target_for(sshd_host, user_key, known_hosts)).run("touch ~/should-not-run")
    message = str(info.value)
    assert str(known_hosts) in message and "NUL" in message and f"mv {known_hosts} {known_hosts}.corrupt" in message
    assert known_hosts.read_bytes() == damaged  # no key re-learned behind the user's back
    assert sshd_host.exec_channels() == before and not (sshd_host.home / "should-not-run").exists()
    with pytest.raises(ConfigError, match="cannot be read"):
        forget_host(known_hosts, "i-0abc")
    with pytest.raises(ConfigError):
        wait_ssh(target_for(sshd_host, user_key, known_hosts), timeout=10, client=make_host)  # never retried


def _ssh_batch(target: SshTarget, command: str, *extra: str) -> subprocess.CompletedProcess:
    argv = ssh_argv(target, command=command)
    argv[1:1] = ["-o", "BatchMode=yes", "-F", "/dev/null", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)


def test_openssh_client_uses_the_pin_that_host_learned(host, other_sshd, user_key, known_hosts):
    host.run("true")
    pinned = known_hosts.read_text()
    ok = _ssh_batch(host.target, "echo via-ssh")
    assert (ok.returncode, ok.stdout) == (0, "via-ssh\n"), ok.stderr
    assert known_hosts.read_text() == pinned
    refused = _ssh_batch(target_for(other_sshd, user_key, known_hosts), "echo should-not-run")
    assert refused.returncode == 255 and "should-not-run" not in refused.stdout
    assert "IDENTIFICATION HAS CHANGED" in refused.stderr


def test_host_accepts_a_hashed_pin_the_openssh_client_learned_first(make_host, sshd_host, other_sshd, user_key, known_hosts):
    target = target_for(sshd_host, user_key, known_hosts, alias="i-ssh-first")
    known_hosts.parent.mkdir(parents=True)
    assert _ssh_batch(target, "true", "-o", "HashKnownHosts=yes").returncode == 0
    assert known_hosts.read_text().startswith("|1|")  # hashed, as Debian's ssh_config does by default
    with make_host(target) as h:
        assert h.run("echo fine").stdout == "fine\n"
    with pytest.raises(HostKeyMismatch):
        make_host(target_for(other_sshd, user_key, known_hosts, alias="i-ssh-first")).run("true")
    assert forget_host(known_hosts, "i-ssh-first") == 1 and not pinned_keys(known_hosts, "i-ssh-first")


def test_rsync_argv_pulls_a_directory_from_the_host(host, sshd_host, tmp_path):
    host.run("mkdir -p ~/results/sub && echo 1 > ~/results/a && echo 2 > ~/results/sub/b && echo x > ~/results/c.tmp")
    host.run("true")  # pins the key before rsync's BatchMode ssh
    dest = tmp_path / "pulled"
    argv = rsync_argv(host.target, host.expand("~/results/"), str(dest) + "/", excludes=["*.tmp"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (dest / "a").read_text() == "1\n" and (dest / "sub" / "b").read_text() == "2\n"
    assert not (dest / "c.tmp").exists()


def test_write_ssh_config_lets_plain_ssh_connect_by_name(host, tmp_path):
    host.run("true")
    config = write_ssh_config(tmp_path / "ssh" / "config", [ssh_config_block("web", host.target)])
    done = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "web", "echo named"],
                          capture_output=True, text=True, timeout=20)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "named\n"), done.stderr
    assert oct(config.stat().st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------- failures and waiting


def test_closed_port_raises_remote_error_naming_host_and_port(make_host, user_key, known_hosts):
    port = free_port()
    target = SshTarget("127.0.0.1", port, "ubuntu", user_key, "i-dead", known_hosts, "dead")
    with pytest.raises(RemoteError) as info:
        make_host(target).run("true")
    assert type(info.value) is RemoteError
    assert f"127.0.0.1:{port}" in str(info.value) and "inv start dead" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_wrong_key_raises_remote_error_naming_the_key_file(make_host, sshd_host, known_hosts, tmp_path):
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    with pytest.raises(RemoteError, match="authentication") as info:
        make_host(target_for(sshd_host, other_key, known_hosts)).run("true")
    assert str(other_key) in str(info.value)


def test_missing_key_file_is_named_before_dialing(make_host, sshd_host, known_hosts, tmp_path):
    with pytest.raises(RemoteError, match="does not exist") as info:
        make_host(target_for(sshd_host, tmp_path / "nokey", known_hosts)).run("true")
    assert str(tmp_path / "nokey") in str(info.value)


def test_wait_ssh_succeeds_once_the_host_starts_listening(tmp_path, user_key, known_hosts):
    late = SshdHost(tmp_path / "late", port=free_port(), authorized_keys=[user_key.with_suffix(".pub").read_text()])
    late.write_config()  # host key generation is not part of the wait
    starter = threading.Timer(0.5, late.start)
    starter.start()
    messages: list[str] = []
    try:
        began = time.monotonic()
        wait_ssh(target_for(late, user_key, known_hosts, alias="i-late"), timeout=15, interval=0.2,
                 progress=messages.append)  # fmt: skip
        assert time.monotonic() - began >= 0.4
        assert len(messages) >= 2 and "i-late" in messages[0]
        assert pinned_keys(known_hosts, "i-late")
    finally:
        starter.join()
        late.stop()


def test_wait_ssh_times_out_on_a_closed_port_naming_the_instance(user_key, known_hosts):
    target = SshTarget("127.0.0.1", free_port(), "ubuntu", user_key, "i-never", known_hosts, "never")
    began = time.monotonic()
    with pytest.raises(TimedOut) as info:
        wait_ssh(target, timeout=1.0, interval=0.2)
    assert time.monotonic() - began < 5
    assert "never (i-never)" in str(info.value) and "connection refused" in str(info.value)


def test_wait_ssh_does_not_retry_a_host_key_mismatch(host, other_sshd, user_key, known_hosts):
    host.run("true")
    calls: list[str] = []
    with pytest.raises(HostKeyMismatch):
        wait_ssh(target_for(other_sshd, user_key, known_hosts), timeout=10, progress=calls.append)
    assert len(calls) == 1


def test_wait_ssh_gives_up_on_a_key_the_host_refuses_after_a_few_tries(sshd_host, tmp_path, known_hosts):
    """A .pub that does not belong to the key (or the wrong login user) never starts working: no 300 s wait."""
    from ec2kit.errors import AuthFailed

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    calls: list[str] = []
    with pytest.raises(AuthFailed) as info:
        wait_ssh(
            target_for(sshd_host, stranger, known_hosts, alias="i-stranger"), timeout=120, interval=0.1, progress=calls.append
        )
    assert len(calls) == 3  # AUTH_TRIES: the first seconds after boot may refuse a key cloud-init has not written yet
    assert "authentication" in str(info.value) and str(stranger) in str(info.value)
