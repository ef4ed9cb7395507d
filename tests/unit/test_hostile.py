"""Host-free checks of what a tag, a project file or a runaway value can make ec2kit do (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ec2kit import config
from ec2kit.errors import ConfigError, RecipeError
from ec2kit.recipe.model import HostReport
from ec2kit.runs import Runs
from ec2kit.ssh.target import SshTarget, rsync_argv, ssh_argv, ssh_config_blocks

TARGET = SshTarget("10.0.0.5", 22, "ubuntu", Path("/k/ec2kit"), "i-0123", Path("/h/known_hosts"), "web")


@pytest.mark.parametrize(
    "name",
    ["*", "web\n    ProxyCommand touch /tmp/pwned", 'x"\nMatch exec "touch /tmp/pwned"', "a b", "!web", "web,*", "%h", "-oX", ""],
)
def test_a_name_tag_unsafe_as_a_host_pattern_gets_no_block_and_a_warning_naming_the_instance(name):
    blocks, skipped = ssh_config_blocks([(name, TARGET), ("web-2.a_b", TARGET)])
    assert [b.splitlines()[0] for b in blocks] == ["Host web-2.a_b"]
    assert len(skipped) == 1 and "i-0123" in skipped[0] and "\n" not in skipped[0]


def test_a_name_tag_with_terminal_escapes_is_shown_with_them_visible():
    _, [warning] = ssh_config_blocks([("\x1b]0;pwned\x07\x1b[2Jweb", TARGET)])
    assert "^[]0;pwned^G^[[2Jweb" in warning and "\x1b" not in warning and "\x07" not in warning


def test_ssh_config_values_are_quoted_and_percent_in_paths_doubled():
    target = SshTarget("10.0.0.5", 22, "ubuntu", Path("/my keys/%h"), "i-0123", Path("/h/known_hosts"), "web")
    [block], _ = ssh_config_blocks([("web", target)])
    assert '    IdentityFile "/my keys/%%h"\n' in block and '    User "ubuntu"\n' in block


def test_a_newline_in_a_value_is_refused_rather_than_written():
    target = SshTarget("10.0.0.5\nProxyCommand x", 22, "ubuntu", Path("/k"), "i-0123", Path("/h"), "web")
    with pytest.raises(ConfigError, match="control character"):
        ssh_config_blocks([("web", target)])


@pytest.mark.parametrize("user", ["-oProxyCommand=touch /tmp/X #", "root@evil", "a b", "-l", "", "ü"])
def test_a_login_user_that_is_not_a_user_name_never_reaches_an_argv(user):
    target = SshTarget("10.0.0.5", 22, user, Path("/k"), "i-0123", Path("/h"), "web")
    with pytest.raises(ConfigError, match="not a user name"):
        ssh_argv(target)
    with pytest.raises(ConfigError, match="not a user name"):
        rsync_argv(target, "/a", "b")


def test_ssh_argv_ends_options_before_the_host():
    assert ssh_argv(TARGET, command="uptime")[-5:] == ["-l", "ubuntu", "--", "10.0.0.5", "uptime"]


@pytest.mark.parametrize(
    "text, needles",
    [
        ('login_user = "-oProxyCommand=touch /tmp/X #"\n', ["ec2kit.toml:1", "not a user name"]),
        ('region = "../../etc/passwd"\n', ["ec2kit.toml:1", "region = '../../etc/passwd'", "us-east-2"]),
        ("disk = 99999\n", ["ec2kit.toml:1", "disk = 99999", "1 to 16384"]),
        ('max_price = "inf"\n', ["ec2kit.toml:1", "max_price = 'inf'"]),
        ('max_price = "nan"\n', ["ec2kit.toml:1", "max_price = 'nan'"]),
        ("max_price = 1e9\n", ["ec2kit.toml:1", "at most 1000"]),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", ["ec2kit.toml:1", "nested too deeply"]),
    ],
)
def test_a_hostile_value_in_a_project_file_is_a_located_error(tmp_path, text, needles):
    (tmp_path / "ec2kit.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path / "home", tmp_path, environ={})
    for needle in needles:
        assert needle in str(err.value)


def test_a_key_name_from_a_user_file_must_be_a_name(tmp_path):
    (tmp_path / "config.toml").write_text('key_name = "../../../tmp/x"\n')
    with pytest.raises(ConfigError, match=r"config.toml:1: key_name: '\.\./\.\./\.\./tmp/x' is not a key pair name"):
        config.load(tmp_path, tmp_path / "nowhere", environ={})


def test_key_name_and_login_user_from_the_environment_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="environment EC2KIT_KEY_NAME"):
        config.load(tmp_path, tmp_path, environ={"EC2KIT_KEY_NAME": "../x"})


@pytest.mark.parametrize(
    "key, value",
    [
        ("ssh_cidr", '"0.0.0.0/0"'),
        ("checkip_url", '"http://evil.example/ip"'),
        ("security_groups", '["sg-0open"]'),
        ("instance_profile", '"admin"'),
        ("profile", '"prod"'),
        ("key_name", '"theirs"'),
        ("trust_projects", '["."]'),
    ],
)
def test_a_project_file_cannot_set_a_user_key_and_says_so_with_file_and_line(tmp_path, key, value):
    project = tmp_path / "project"
    project.mkdir()
    (project / "ec2kit.toml").write_text(f'type = "t3.small"\n{key} = {value}\n')
    cfg = config.load(tmp_path / "home", project, environ={})
    assert cfg.values[key] == config.KEYS[key].default and cfg.sources[key] == "built-in"
    assert cfg.values["type"] == "t3.small"
    [warning] = cfg.warnings
    assert f"{project / 'ec2kit.toml'}:2: {key} = " in warning and "ignored" in warning


def test_a_trusted_project_may_set_user_keys(tmp_path):
    home, project = tmp_path / "home", tmp_path / "mine"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text(f"trust_projects = [{str(project)!r}]\n")
    (project / "ec2kit.toml").write_text('ssh_cidr = "10.1.0.0/16"\n')
    cfg = config.load(home, project, environ={})
    assert cfg.values["ssh_cidr"] == "10.1.0.0/16" and cfg.warnings == ()


def test_a_template_error_counts_as_failed_and_an_unreachable_host_as_unreachable():
    planned = HostReport("web", failure="template x.j2:3: 'y' is undefined", error=RecipeError("x"))
    gone = HostReport("web", failure="Cannot connect", error=ConnectionError("x"))
    assert planned.recap == {"ok": 0, "changed": 0, "skipped": 0, "failed": 1}
    assert gone.recap["unreachable"] == 1 and gone.recap["failed"] == 0


def test_a_locked_runs_database_is_busy_and_names_the_process_holding_it(tmp_path):
    path = tmp_path / "runs.sqlite"
    Runs(path).all()
    code = (
        "import sqlite3, sys, time\n"
        f"con = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "con.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        runs = Runs(path)
        runs.busy_timeout = 0.2
        with pytest.raises(ConfigError) as err:
            runs.all()
        assert "is busy" in str(err.value) and f"pid {holder.pid}" in str(err.value) and "Move it aside" not in str(err.value)
    finally:
        holder.communicate("")


def test_a_step_s_output_from_the_host_reaches_the_terminal_with_escapes_visible():
    import io

    from ec2kit.recipe.model import StepResult
    from ec2kit.recipe.report import TextReporter

    out = io.StringIO()
    reason = "done \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b[8mhidden"
    TextReporter(out).step("web", StepResult(number=1, name="a", kind="run", status="changed", reason=reason))
    assert "^[]52;c;cm0gLXJmIH4=^G^[[2J^[[8mhidden" in out.getvalue() and "\x1b" not in out.getvalue()


def test_jinja_cannot_compute_a_runaway_power_or_repeat_and_returns_at_once():
    from jinja2.exceptions import SecurityError

    from ec2kit.recipe.render import environment, render_bounded

    env = environment()
    for source in ("{{ 9 ** (9 ** 10) }}", "{{ 'ab' * 10 ** 10 }}", "{{ 10.0 ** 400 }}"):
        with pytest.raises(SecurityError):
            render_bounded(env.from_string(source), {})
    assert render_bounded(env.from_string("{{ 2 ** 64 }} {{ 'ab' * 2 }}"), {}) == "18446744073709551616 abab"


def test_a_relative_copy_source_must_stay_in_the_project_but_an_absolute_one_is_shown(tmp_path):
    from ec2kit.recipe.kinds import KINDS, PlanContext

    (tmp_path / "outside.txt").write_text("secret\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.txt").symlink_to(tmp_path / "outside.txt")
    ctx = PlanContext("copy", "recipes/r.toml:1: step 1", lambda name: "", base_dir=project)
    plan = KINDS["copy"].plan
    assert plan is not None
    for source in ("../outside.txt", "link.txt"):
        with pytest.raises(RecipeError, match="outside the project"):
            plan({"copy": source, "dest": "~/x"}, ctx)
    _, command = plan({"copy": str(tmp_path / "outside.txt"), "dest": "~/x"}, ctx)
    assert command == f"copy {tmp_path / 'outside.txt'} (outside the project) to ~/x"


def test_a_recipe_over_the_step_limit_is_refused_naming_the_count(tmp_path):
    from ec2kit.recipe import load_recipe
    from ec2kit.recipe.loader import MAX_STEPS

    path = tmp_path / "big.toml"
    path.write_text("".join(f'[[step]]\nname = "s{i}"\nrun = "true"\n' for i in range(MAX_STEPS + 1)))
    with pytest.raises(RecipeError, match=f"{MAX_STEPS + 1} steps"):
        load_recipe(str(path))


def test_a_recipe_nested_thousands_deep_is_a_located_error(tmp_path):
    from ec2kit.recipe import load_recipe

    path = tmp_path / "deep.toml"
    path.write_text('description = "x"\n[vars]\nx = ' + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RecipeError, match=r"deep.toml:3: arrays or tables are nested too deeply"):
        load_recipe(str(path))


# --- out of memory or nested too deeply where no reader caught it (issue 20 #12) ---------------------------
def _read_json(path):
    import json

    return json.loads(path.read_text())


def test_a_recursion_error_names_the_file_being_read_and_never_calls_itself_a_bug(tmp_path):
    from ec2kit.cli._common import translate

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(RecursionError) as caught:
        _read_json(deep)
    message = translate(caught.value).message
    assert str(deep) in message and "nested too deeply" in message
    assert "test_hostile.py" not in message and "bug" not in message


def test_a_memory_error_says_what_ran_out_and_where_in_ec2kit(tmp_path):
    from ec2kit.cli._common import translate
    from ec2kit.fsutil import atomic_write

    class Huge(str):
        def encode(self, *args, **kwargs):
            return b"x" * (1 << 50)  # a petabyte: this machine cannot hold it

    with pytest.raises(MemoryError) as caught:
        atomic_write(tmp_path / "out.bin", Huge("data"))
    message = translate(caught.value).message
    assert "needed more memory than this machine has" in message and "(in fsutil.py:" in message
    assert "bug" not in message
