"""End-to-end recipe runs on real sshd hosts: idempotency, check mode, channels, many hosts, tasks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ec2kit.errors import RemoteError
from ec2kit.recipe import CollectingReporter, load_recipe, register_task, run_recipe, run_steps_on_host
from ec2kit.ssh.fabric import FabricTransport
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.target import SshTarget

TWENTY_STEPS = """
description = "twenty idempotent steps of every kind"
[vars]
who = "world"
packages = ["tmux", "rsync"]
[secrets]
TOKEN = { env = "EC2KIT_TEST_TOKEN", required = false }

[[step]]
name = "packages"
apt = "{{ packages }}"
[[step]]
name = "config dir"
dir = "~/.config/app"
mode = "0700"
[[step]]
name = "greeting"
template = "greeting.j2"
dest = "~/.config/app/greeting"
[[step]]
name = "settings"
template = "settings.j2"
dest = "~/.config/app/settings.ini"
mode = "0600"
[[step]]
name = "motd"
template = "greeting.j2"
dest = "~/motd"
[[step]]
name = "editor"
line = "export EDITOR=vim"
path = "~/.bashrc"
[[step]]
name = "pager"
line = "export PAGER=less"
path = "~/.bashrc"
[[step]]
name = "history"
line = "HISTSIZE=10000"
path = "~/.bashrc"
regexp = "^HISTSIZE="
[[step]]
name = "alias"
line = "alias ll='ls -l'"
path = "~/.bash_aliases"
[[step]]
name = "data dir"
dir = "~/data"
[[step]]
name = "raw dir"
dir = "~/data/raw"
[[step]]
name = "out dir"
dir = "~/out"
mode = "0755"
[[step]]
name = "note"
copy = "files/note.txt"
dest = "~/note.txt"
[[step]]
name = "site"
copy = "files/site"
dest = "~/www"
[[step]]
name = "build"
run = "echo built > ~/out/build.txt"
creates = "~/out/build.txt"
[[step]]
name = "index"
script = '''
ls ~/data > ~/out/index.txt
echo indexed
'''
creates = "~/out/index.txt"
[[step]]
name = "probe"
run = "cat ~/out/build.txt"
register = "probe"
unless = "true"
[[step]]
name = "stamp"
run = "date > ~/out/stamp"
unless = "test -f ~/out/stamp"
[[step]]
name = "optional"
run = "echo never > ~/never"
when = "who == 'nobody'"
[[step]]
name = "last"
run = "touch ~/out/done"
creates = "~/out/done"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with recipes/, templates/ and files/ like a user's checkout."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "files" / "site" / "sub").mkdir(parents=True)
    (tmp_path / "recipes" / "twenty.toml").write_text(TWENTY_STEPS)
    (tmp_path / "templates" / "greeting.j2").write_text("hello {{ who }}\n")
    (tmp_path / "templates" / "settings.j2").write_text("[app]\nname = {{ name }}\nuser = {{ host.user }}\n")
    (tmp_path / "files" / "note.txt").write_text("a note\n")
    (tmp_path / "files" / "site" / "index.html").write_text("<h1>hi</h1>\n")
    (tmp_path / "files" / "site" / "sub" / "page.txt").write_text("page\n")
    return tmp_path


_count = iter(range(1000))


@pytest.fixture
def make_host(sshd_factory, user_key, tmp_path):
    """``sshd, host = make_host("web1")``: a fresh sshd with a clean home and the host object recipes use
    (the OpenSSH transport, as Context.connect gives; ``client="paramiko"`` for the Fabric fallback)."""
    opened: list = []

    def make(name: str, client: str = "openssh"):
        sshd = sshd_factory(f"{name}-{next(_count)}")
        target = SshTarget(
            host="127.0.0.1",
            port=sshd.port,
            user=sshd.user,
            key_file=user_key,
            alias=f"i-{name}-{sshd.port}",
            known_hosts=tmp_path / "known_hosts",
            name=name,
        )
        host = OpenSshTransport(target) if client == "openssh" else FabricTransport(target)
        opened.append(host)
        return sshd, host

    yield make
    for h in opened:
        h.disconnect()


class LoopbackHosts:
    """The part of ec2kit.context.Context that run_recipe uses: ``connect(name)`` → a real transport."""

    def __init__(self, hosts: dict) -> None:
        self.hosts = hosts

    def connect(self, name: str):
        return self.hosts[name]


def _mtimes(home: Path) -> dict[str, float]:
    return {str(p.relative_to(home)): p.stat().st_mtime_ns for p in home.rglob("*")}


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_second_run_of_twenty_steps_changes_nothing_with_two_exec_channels(project, make_host, client):
    sshd, host = make_host("web1", client)
    recipe = load_recipe(str(project / "recipes" / "twenty.toml"))
    assert len(recipe.steps) == 20

    first = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe)
    assert first.ok, first.failure
    assert first.recap == {"ok": 1, "changed": 17, "skipped": 2, "failed": 0}
    channels_first = sshd.exec_channels()
    assert channels_first <= 2
    assert (sshd.home / ".config/app/settings.ini").read_text() == f"[app]\nname = web1\nuser = {sshd.user}\n"
    assert (sshd.home / "www/sub/page.txt").read_text() == "page\n"
    before = _mtimes(sshd.home)

    reporter = CollectingReporter()
    second = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe, reporter=reporter)
    assert second.ok, second.failure
    assert second.recap["changed"] == 0 and second.recap["failed"] == 0
    assert {s.status for s in second.steps} <= {"ok", "skipped"}
    assert _mtimes(sshd.home) == before
    assert sshd.exec_channels() - channels_first <= 2
    assert "[web1] ok            3 greeting: ~/.config/app/greeting already has this content" in reporter.text
    assert "[web1] skipped      15 build: creates: ~/out/build.txt exists" in reporter.text
    assert "[web1] recap: ok=14 changed=0 skipped=6 failed=0" in reporter.text


def test_check_mode_changes_nothing_and_shows_diffs_and_commands(project, make_host):
    sshd, host = make_host("web1")
    recipe = load_recipe(str(project / "recipes" / "twenty.toml"))
    reporter = CollectingReporter()
    report = run_steps_on_host(host, recipe.steps, recipe.vars, check=True, recipe=recipe, reporter=reporter)
    assert report.ok, report.failure
    assert list(sshd.home.iterdir()) == []
    assert sshd.exec_channels() <= 2
    text = reporter.text
    assert "[web1] would change  3 greeting: would update content of ~/.config/app/greeting" in text
    assert "    +hello world" in text
    assert "    +export EDITOR=vim" in text
    assert "    $ echo built > ~/out/build.txt" in text
    assert "(check mode: nothing changed)" in text


def test_a_when_on_a_result_registered_in_the_same_batch_splits_the_batch(make_host, tmp_path):
    sshd, host = make_host("web1")
    (tmp_path / "r.toml").write_text(
        textwrap.dedent("""
        [[step]]
        run = "echo yes"
        register = "answer"
        [[step]]
        name = "when yes"
        run = "echo {{ answer.stdout }} > ~/answer"
        when = "answer.stdout == 'yes'"
        [[step]]
        name = "when no"
        run = "touch ~/wrong"
        when = "answer.exit_code != 0"
    """)
    )
    recipe = load_recipe(str(tmp_path / "r.toml"))
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert [s.status for s in report.steps] == ["changed", "changed", "skipped"]
    assert report.steps[2].reason == "when: answer.exit_code != 0 is false"
    assert (sshd.home / "answer").read_text() == "yes\n"
    assert not (sshd.home / "wrong").exists()
    assert sshd.exec_channels() == 2


def test_a_failing_step_stops_the_host_and_later_steps_do_not_run(make_host, tmp_path):
    sshd, host = make_host("web1")
    (tmp_path / "fail.toml").write_text(
        textwrap.dedent("""
        [[step]]
        name = "fine"
        run = "touch ~/first"
        [[step]]
        name = "compile"
        run = "for i in $(seq 30); do echo line $i; done; exit 3"
        [[step]]
        name = "never"
        run = "touch ~/third"
    """)
    )
    recipe = load_recipe(str(tmp_path / "fail.toml"))
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert not report.ok
    assert [s.status for s in report.steps] == ["changed", "failed"]
    assert not (sshd.home / "third").exists()
    lines = report.failure.splitlines()
    assert lines[0] == "Recipe fail, step 2 'compile' failed on web1 with exit code 3."
    assert lines[1] == "Command: for i in $(seq 30); do echo line $i; done; exit 3"
    assert lines[2] == "--- last lines of output ---"
    assert lines[3:] == [f"line {i}" for i in range(11, 31)]


def test_many_hosts_run_in_parallel_and_one_failure_does_not_stop_the_others(make_host, tmp_path):
    hosts = {}
    for name in ("web1", "web2", "web3"):
        sshd, host = make_host(name)
        hosts[name] = host
        if name != "web3":
            (sshd.home / "ready").write_text("")
    dead_sshd, dead = make_host("web4")
    dead_sshd.stop()
    hosts["web4"] = dead
    (tmp_path / "many.toml").write_text(
        textwrap.dedent("""
        [[step]]
        name = "ready"
        run = "test -f ~/ready"
        [[step]]
        name = "hello"
        template = "hello.j2"
        dest = "~/hello"
    """)
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.j2").write_text("hello {{ name }}\n")
    recipe = load_recipe(str(tmp_path / "many.toml"))
    reporter = CollectingReporter()
    report = run_recipe(LoopbackHosts(hosts), recipe, hosts=list(hosts), reporter=reporter)
    assert not report.ok
    assert sorted(report.failed_hosts) == ["web3", "web4"]
    assert report.hosts["web1"].recap == {"ok": 0, "changed": 2, "skipped": 0, "failed": 0}
    assert report.hosts["web3"].failure.startswith("Recipe many, step 1 'ready' failed on web3 with exit code 1.")
    assert report.hosts["web4"].failure.startswith("Recipe many, step 1 'ready' could not run on web4: Cannot connect to web4")
    assert "connection refused" in report.hosts["web4"].failure
    assert "2 of 4 hosts failed: web3, web4." in reporter.text
    for name in ("web1", "web2", "web3", "web4"):
        assert f"[{name}] recap:" in reporter.text


def test_secrets_are_masked_in_reports_and_failures(make_host, tmp_path, monkeypatch):
    sshd, host = make_host("web1")
    (tmp_path / "s.toml").write_text(
        textwrap.dedent("""
        [secrets]
        HF_TOKEN = { env = "EC2KIT_TEST_HF" }
        API_KEY = { env = "EC2KIT_TEST_UNSET_API_KEY" }
        [[step]]
        name = "login"
        run = "echo token={{ HF_TOKEN }} key={{ API_KEY }}; exit 2"
    """)
    )
    monkeypatch.setenv("EC2KIT_TEST_HF", "hf_sekrit123")
    recipe = load_recipe(str(tmp_path / "s.toml"))
    reporter = CollectingReporter()
    report = run_recipe(
        LoopbackHosts({"web1": host}), recipe, hosts=["web1"], reporter=reporter, vars={"secret:API_KEY": "key-0987"}
    )
    assert "Command: echo token=*** key=***; exit 2" in report.hosts["web1"].failure
    assert "token=*** key=***" in report.hosts["web1"].failure
    for text in (reporter.text, report.hosts["web1"].failure, repr(report.hosts["web1"].steps)):
        assert "hf_sekrit123" not in text and "key-0987" not in text


def test_a_missing_secret_says_how_to_provide_it(tmp_path):
    from ec2kit.errors import RecipeError

    (tmp_path / "s.toml").write_text(
        '[secrets]\nHF_TOKEN = { env = "EC2KIT_TEST_NEVER_SET" }\n[[step]]\nname = "use it"\nrun = "true"\n'
    )
    with pytest.raises(RecipeError) as err:
        run_recipe(None, load_recipe(str(tmp_path / "s.toml")), reporter=CollectingReporter())
    assert str(err.value) == (
        "Recipe 's' needs the secret 'HF_TOKEN': set the environment variable "
        "EC2KIT_TEST_NEVER_SET or pass --set secret:HF_TOKEN=VALUE."
    )


def test_python_tasks_run_locally_and_their_results_become_vars(make_host, tmp_path):
    sshd, host = make_host("web1")
    calls = []

    @register_task("test_pick_color")
    def pick_color(tc, favourite: str, shade: str = "light"):
        calls.append((favourite, shade, tc.check))
        tc.report(f"picked {shade} {favourite}")
        return {"color": f"{shade}-{favourite}"}

    (tmp_path / "t.toml").write_text(
        textwrap.dedent("""
        [vars]
        fav = "blue"
        [[step]]
        run = "touch ~/before"
        [[step]]
        name = "pick"
        task = "test_pick_color"
        favourite = "{{ fav }}"
        [[step]]
        run = "echo {{ color }} > ~/color"
    """)
    )
    recipe = load_recipe(str(tmp_path / "t.toml"))
    reporter = CollectingReporter()
    report = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe, reporter=reporter)
    assert report.ok, report.failure
    assert calls == [("blue", "light", False)]
    assert (sshd.home / "color").read_text() == "light-blue\n"
    assert "[web1]     picked light blue" in reporter.text
    assert sshd.exec_channels() == 2  # the task splits the shell steps into two batches


def test_a_task_with_a_wrong_argument_names_the_step_and_the_accepted_arguments(make_host, tmp_path):
    sshd, host = make_host("web1")
    (tmp_path / "t.toml").write_text('[[step]]\nname = "freeze it"\ntask = "freeze"\nimagename = "x"\n')
    recipe = load_recipe(str(tmp_path / "t.toml"))
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert report.failure == (
        f"{tmp_path / 't.toml'}:1: step 1 'freeze it' (task freeze): unknown argument 'imagename'. "
        "Did you mean 'image'? It takes: image, instance, wait."
    )


def test_base_recipe_is_idempotent_on_a_fresh_host(make_host):
    sshd, host = make_host("base1")
    (sshd.home / "env" / "bin").mkdir(parents=True)
    (sshd.home / "env" / "bin" / "python").write_text("")  # a venv takes seconds: pretend it exists
    recipe = load_recipe("base")
    first = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe)
    assert [s.status for s in first.steps] == ["ok", "changed", "changed", "skipped"], first.failure
    assert "set -g history-limit 50000" in (sshd.home / ".tmux.conf").read_text()
    second = run_steps_on_host(host, recipe.steps, recipe.vars, recipe=recipe)
    assert [s.status for s in second.steps] == ["ok", "ok", "ok", "skipped"]
    assert second.steps[3].reason == "creates: ~/env/bin/python exists"


def test_vars_nearer_recipe_wins_and_set_overrides_all(tmp_path):
    from ec2kit.recipe.loader import parse_overrides, resolve_vars

    (tmp_path / "base.toml").write_text('[vars]\na = 1\nb = 1\nc = 1\n[[step]]\nrun = "true"\n')
    (tmp_path / "mid.toml").write_text('uses = ["base"]\n[vars]\nb = 2\nc = 2\n')
    (tmp_path / "top.toml").write_text('uses = ["mid"]\n[vars]\nc = 3\nd = 3\n')
    recipe = load_recipe("top", search_path=[tmp_path])
    assert recipe.vars == {"a": 1, "b": 2, "c": 3, "d": 3}
    values, _ = resolve_vars(recipe, parse_overrides(["d=4", "e=[1, 2]", "f=hello world", "g=true"]))
    assert values == {"a": 1, "b": 2, "c": 3, "d": 4, "e": [1, 2], "f": "hello world", "g": True}
    assert [s.recipe for s in recipe.steps] == ["base"]


def test_tags_skip_tags_and_start_at_select_steps(tmp_path):
    from ec2kit.recipe import select_steps

    (tmp_path / "t.toml").write_text(
        textwrap.dedent("""
        [[step]]
        name = "one"
        run = "true"
        tags = ["setup"]
        [[step]]
        name = "two"
        run = "true"
        tags = ["setup", "slow"]
        [[step]]
        name = "three"
        run = "true"
    """)
    )
    steps = load_recipe(str(tmp_path / "t.toml")).steps
    assert [s.name for s in select_steps(steps, tags=("setup",))] == ["one", "two"]
    assert [s.name for s in select_steps(steps, skip_tags=("slow",))] == ["one", "three"]
    assert [s.name for s in select_steps(steps, start_at="two")] == ["two", "three"]
    assert [s.name for s in select_steps(steps, start_at=3)] == ["three"]


def test_unreachable_host_error_passes_through_with_the_step(make_host, tmp_path):
    sshd, host = make_host("gone")
    sshd.stop()
    (tmp_path / "u.toml").write_text('[[step]]\nname = "hello"\nrun = "true"\n')
    recipe = load_recipe(str(tmp_path / "u.toml"))
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert report.failure.startswith(
        f"Recipe u, step 1 'hello' could not run on gone: Cannot connect to gone "
        f"({sshd.user}@127.0.0.1:{sshd.port}): connection refused"
    )
    assert report.recap["failed"] == 1 and report.steps[0].reason.startswith("unreachable: Cannot connect to gone")
    assert isinstance(report.error, Exception) and not isinstance(report.error, RemoteError)


def test_step_lines_stream_as_steps_complete_within_one_batch(make_host, tmp_path):
    import time

    sshd, host = make_host("web1")
    (tmp_path / "slow.toml").write_text('[[step]]\nname = "quick"\nrun = "true"\n[[step]]\nname = "slow"\nrun = "sleep 1"\n')
    seen: list[tuple[str, float]] = []

    class Timing(CollectingReporter):
        def step(self, host_name, result):
            seen.append((result.name, time.monotonic()))
            super().step(host_name, result)

    recipe = load_recipe(str(tmp_path / "slow.toml"))
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe, reporter=Timing())
    assert report.ok and [n for n, _ in seen] == ["quick", "slow"]
    assert seen[1][1] - seen[0][1] >= 0.8  # "quick" was reported while "slow" still ran
    assert sshd.exec_channels() == 1
