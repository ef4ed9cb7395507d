"""``sudo = true`` steps keep the no-op fast path, on real sshd hosts.

As root a sudo step's quick check is the shell's own; as a user with passwordless sudo it reads
root's view of the batch's sudo-step paths from ONE ``sudo -n`` process; a user sudo refuses gets
the full steps, which report sudo's error. Each host's PATH starts with wrappers logging the
programs that tell the paths apart: ``mktemp`` (the full step makes a scratch directory: a
no-op pass decided by quick checks never does) and ``sudo``. The non-root hosts need root here
(``useradd``, a sudoers file, sshd logging in another user): skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ec2kit.recipe import load_recipe, run_steps_on_host
from ec2kit.sandbox.daemon.sshd import SshdHost
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.target import SshTarget

LOGGED = ("mktemp", "sudo")


def _logging_bin(root: Path) -> tuple[str, Path]:
    """A bin directory whose mktemp and sudo log their start, then run the real one: (PATH, log)."""
    bin_dir, log_dir = root / "bin", root / "log"
    bin_dir.mkdir(parents=True)
    log_dir.mkdir()
    log_dir.chmod(0o777)  # the host's user, whoever it is, writes the log
    log = log_dir / "programs.log"
    for name in LOGGED:
        real = shutil.which(name)
        if real:
            argv_log = f'printf "%s\\n" "$*" >> {log_dir / (name + ".argv")}\n' if name == "sudo" else ""
            (bin_dir / name).write_text(f'#!/bin/sh\necho {name} >> {log}\n{argv_log}exec {real} "$@"\n')
            (bin_dir / name).chmod(0o755)
    root.chmod(0o755)
    return f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", log


def _programs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _project(tmp_path: Path, base: str) -> Path:
    """A recipe whose steps, all under ``base`` and all with sudo, cover every kind with a quick check."""
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "templates").mkdir()
    (project / "files").mkdir()
    # multibyte text, a colon, CR and trailing newlines: compared byte for byte, whatever the locale
    (project / "templates" / "conf.j2").write_text("port = {{ port }}\nsecret = s3cr3t\nnäme: ünïcödé\r\n\n\n")
    (project / "files" / "note.txt").write_text("a note\n")
    (project / "recipes" / "sudo.toml").write_text(
        f"""
[vars]
port = 8080
[[step]]
name = "app dir"
dir = "{base}/app"
mode = "0700"
sudo = true
[[step]]
name = "root-only config"
template = "conf.j2"
dest = "{base}/app/conf"
mode = "0600"
sudo = true
[[step]]
name = "note"
copy = "files/note.txt"
dest = "{base}/app/note.txt"
mode = "0644"
sudo = true
[[step]]
name = "editor"
line = "export EDITOR=vim"
path = "{base}/app/rc"
sudo = true
[[step]]
name = "history"
line = "HISTSIZE=10000"
path = "{base}/app/rc"
regexp = "^HISTSIZE="
sudo = true
[[step]]
name = "secret file"
file = "{base}/app/secret"
state = "touch"
mode = "0600"
sudo = true
[[step]]
name = "seed"
run = "echo seeded > {base}/app/seed"
creates = "{base}/app/seed"
sudo = true
"""
    )
    return project


QUICK_REASONS = [
    ("ok", "{base}/app already exists"),
    ("ok", "{base}/app/conf already has this content"),
    ("ok", "{base}/app/note.txt already has this content"),
    ("ok", "{base}/app/rc already has this line"),
    ("ok", "{base}/app/rc already has this line"),
    ("ok", "{base}/app/secret already has this mode and owner"),
    ("skipped", "creates: {base}/app/seed exists"),
]


def _run(host, project: Path):
    recipe = load_recipe(str(project / "recipes" / "sudo.toml"))
    return run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe)


def _outcomes(report) -> list[tuple[str, str]]:
    return [(s.status, s.reason) for s in report.steps]


# -- the login user is root --------------------------------------------------------------------


@pytest.fixture
def root_host(sshd_factory, user_key, tmp_path) -> Iterator[tuple[SshdHost, OpenSshTransport, Path]]:
    if os.geteuid() != 0:
        pytest.skip("the sshd hosts log in their own user: root only when the tests run as root")
    path, log = _logging_bin(tmp_path / "logging")
    sshd = sshd_factory(f"sudo-root-{uuid.uuid4().hex[:6]}", env={"PATH": path})
    target = SshTarget(
        host="127.0.0.1",
        port=sshd.port,
        user=sshd.user,
        key_file=user_key,
        alias=f"i-sudo-{sshd.port}",
        known_hosts=tmp_path / "known_hosts",
        name="root",
    )
    host = OpenSshTransport(target)
    yield sshd, host, log
    host.disconnect()


def test_as_root_a_no_op_rerun_of_sudo_steps_takes_the_quick_path_for_every_step(root_host, tmp_path):
    sshd, host, log = root_host
    base = str(sshd.home)
    project = _project(tmp_path, base)
    first = _run(host, project)
    assert first.ok, first.failure
    assert [s.status for s in first.steps] == ["changed"] * 7
    log.unlink()
    again = _run(host, project)
    assert _outcomes(again) == [(st, why.format(base=base)) for st, why in QUICK_REASONS]
    assert _programs(log) == []  # no full step (no scratch directory), and as root no sudo at all


def test_as_root_a_changed_file_under_sudo_is_detected_and_fixed_and_a_regexp_line_replaced(root_host, tmp_path):
    sshd, host, log = root_host
    base = str(sshd.home)
    project = _project(tmp_path, base)
    assert _run(host, project).ok
    app = sshd.home / "app"
    good = (app / "conf").read_bytes()
    (app / "conf").write_text("port = 1\nsecret = s3cr3t\n")
    (app / "secret").chmod(0o644)
    (app / "rc").write_text("export EDITOR=vim\nHISTSIZE=5\n")  # a line matching only the regexp
    again = _run(host, project)
    assert again.ok, again.failure
    assert [s.status for s in again.steps] == ["ok", "changed", "ok", "ok", "changed", "changed", "skipped"]
    assert again.steps[4].reason == f"replaced the line matching ^HISTSIZE= in {base}/app/rc"
    assert (app / "conf").read_bytes() == good
    assert (app / "rc").read_text() == "export EDITOR=vim\nHISTSIZE=10000\n"
    assert oct((app / "secret").stat().st_mode & 0o777) == "0o600"


# -- the login user is not root: passwordless sudo, or none ------------------------------------


class LocalUser:
    """A throwaway local user whose own sshd host (under its home) logs it in with the test key."""

    def __init__(self, name: str, user_key: Path, sudo: bool) -> None:
        self.name, self.user_key = name, user_key
        self.home = Path("/home") / name
        subprocess.run(["useradd", "-m", "-d", str(self.home), "-s", "/bin/bash", "-p", "*", name], check=True)
        self.sudoers = Path("/etc/sudoers.d") / name
        if sudo:
            self.sudoers.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
            self.sudoers.chmod(0o440)
        self.home.chmod(0o755)  # sshd reads the host's authorized keys as this user
        root = self.home / "host"
        path, self.log = _logging_bin(root)
        self.sshd = SshdHost(
            root, authorized_keys=[user_key.with_suffix(".pub").read_text()], env={"PATH": path, "LANG": "C.UTF-8"}
        )
        self.sshd.write_config()
        shutil.chown(self.sshd.home, name, name)
        self.sshd.start()

    def connect(self, known_hosts: Path) -> OpenSshTransport:
        target = SshTarget(
            host="127.0.0.1",
            port=self.sshd.port,
            user=self.name,
            key_file=self.user_key,
            alias=f"i-{self.name}-{self.sshd.port}",
            known_hosts=known_hosts,
            name=self.name,
        )
        return OpenSshTransport(target)

    def remove(self) -> None:
        self.sshd.stop()
        self.sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True)


def _can_add_users() -> bool:
    return os.geteuid() == 0 and all(shutil.which(p) for p in ("useradd", "userdel", "sudo")) and Path("/etc/sudoers.d").is_dir()


@pytest.fixture
def local_user(user_key, tmp_path) -> Iterator:
    """``make(sudo=True)`` → (LocalUser, transport), removed with its host and files afterwards."""
    if not _can_add_users():
        pytest.skip("needs root, useradd and sudo (/etc/sudoers.d) to make a throwaway user")
    made: list[tuple[LocalUser, OpenSshTransport]] = []

    def make(sudo: bool) -> tuple[LocalUser, OpenSshTransport]:
        user = LocalUser(f"ec2kit-t{uuid.uuid4().hex[:8]}", user_key, sudo)
        made.append((user, user.connect(tmp_path / "known_hosts")))
        return made[-1]

    yield make
    for user, host in made:
        host.disconnect()
        user.remove()


@pytest.fixture
def root_only_base() -> Iterator[Path]:
    """A directory only root can enter: what the user sees without sudo is nothing at all."""
    base = Path("/srv") / f"ec2kit-sudo-{uuid.uuid4().hex[:8]}"
    base.mkdir(mode=0o700, parents=True)
    base.chmod(0o700)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_as_a_sudoer_a_no_op_rerun_reads_root_only_files_through_one_privileged_check(local_user, root_only_base, tmp_path):
    user, host = local_user(sudo=True)
    base = str(root_only_base)
    project = _project(tmp_path, base)
    first = _run(host, project)
    assert first.ok, first.failure
    assert [s.status for s in first.steps] == ["changed"] * 7
    conf = root_only_base / "app" / "conf"
    assert conf.stat().st_uid == 0 and oct(conf.stat().st_mode & 0o777) == "0o600"
    user.log.unlink()
    again = _run(host, project)
    assert _outcomes(again) == [(st, why.format(base=base)) for st, why in QUICK_REASONS]
    assert _programs(user.log) == ["sudo"]  # one privileged check for the batch, and no full step
    sudo_argv = (user.log.parent / "sudo.argv").read_text()
    assert f"{base}/app/conf" in sudo_argv and "s3cr3t" not in sudo_argv  # paths in its arguments, contents on its pipe


def test_as_a_sudoer_a_changed_root_only_file_is_fixed_and_a_step_changing_it_empties_the_privileged_cache(
    local_user, root_only_base, tmp_path
):
    user, host = local_user(sudo=True)
    base = str(root_only_base)
    project = _project(tmp_path, base)
    assert _run(host, project).ok
    conf = root_only_base / "app" / "conf"
    good = conf.read_bytes()
    conf.write_text("port = 1\nsecret = s3cr3t\n")
    user.log.unlink()
    again = _run(host, project)
    assert again.ok, again.failure
    assert [s.status for s in again.steps] == ["ok", "changed", "ok", "ok", "ok", "ok", "skipped"]
    assert conf.read_bytes() == good
    # the one probe, the template's full step (its scratch directory), then one probe again after it
    assert _programs(user.log)[:2] == ["sudo", "mktemp"] and _programs(user.log).count("mktemp") == 1
    # a sudo command earlier in the batch breaks the file: the template after it must not trust the first probe
    recipe_file = project / "recipes" / "sudo.toml"
    text = recipe_file.read_text()
    breaking = text.replace(
        '[[step]]\nname = "root-only config"',
        f'[[step]]\nname = "break"\nrun = "echo broken > {base}/app/conf"\nsudo = true\n[[step]]\nname = "root-only config"',
    )
    recipe_file.write_text(breaking)
    broken = _run(host, project)
    assert broken.ok, broken.failure
    assert [s.status for s in broken.steps][:3] == ["ok", "changed", "changed"]
    assert conf.read_bytes() == good


def test_a_user_sudo_refuses_gets_the_full_step_and_sudos_error(local_user, tmp_path):
    user, host = local_user(sudo=False)
    # a directory the user can see, already as the step wants it: only root's view may say "ok"
    seen = user.home / "seen"
    seen.mkdir(mode=0o700)
    seen.chmod(0o700)
    shutil.chown(seen, user.name, user.name)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(f'[[step]]\ndir = "{seen}"\nmode = "0700"\nsudo = true\n[[step]]\nrun = "true"\n')
    recipe = load_recipe(str(recipe_file))
    report = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe)
    assert not report.ok
    assert [s.status for s in report.steps] == ["failed"]
    assert "password is required" in report.steps[0].stderr
    assert "mktemp" in _programs(user.log)  # the full step ran
