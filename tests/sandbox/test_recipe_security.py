"""Shared recipes cannot run code they do not show: Jinja is sandboxed, env names cannot be shell.

Each test uses a real sshd host and checks that the bad step is a located error (recipe file,
line, step) and that nothing ran: neither on this machine nor on the host.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ec2kit.errors import RecipeError
from ec2kit.recipe import load_recipe, run_steps_on_host
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.target import SshTarget


@pytest.fixture(scope="module")
def shared_host(sshd_factory, user_key, tmp_path_factory):
    sshd = sshd_factory("security")
    target = SshTarget(
        host="127.0.0.1",
        port=sshd.port,
        user=sshd.user,
        key_file=user_key,
        alias="i-security",
        known_hosts=tmp_path_factory.mktemp("kh") / "known_hosts",
        name="security",
    )
    with OpenSshTransport(target) as host:
        yield sshd, host
    host.disconnect()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(project: Path, text: str) -> None:
    (project / "recipes" / "shared.toml").write_text(textwrap.dedent(text).lstrip())


def _clean(home: Path) -> None:
    for name in ("PWNED", "after"):
        (home / name).unlink(missing_ok=True)


ESCAPES = {
    "globals": "cycler.__init__.__globals__.os.system('touch {local}')",
    "subclasses": "''.__class__.__mro__[1].__subclasses__()",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
@pytest.mark.parametrize("where", ["step value", "when", "template file"])
def test_jinja_cannot_reach_python_internals(escape: str, where: str, project: Path, shared_host, tmp_path: Path) -> None:
    sshd, host = shared_host
    _clean(sshd.home)
    local = tmp_path / "PWNED-here"
    expr = ESCAPES[escape].format(local=local)
    if where == "step value":
        step = f'name = "evil"\nrun = "echo {{{{ {expr} }}}} > ~/PWNED"'
        line = 3
    elif where == "when":
        step = f'name = "evil"\nrun = "touch ~/PWNED"\nwhen = "{expr}"'
        line = 4
    else:
        (project / "templates" / "evil.j2").write_text(f"one\n{{{{ {expr} }}}}\n")
        step = 'name = "evil"\ntemplate = "evil.j2"\ndest = "~/PWNED"'
        line = 0
    _write(project, f'[[step]]\n{step}\n[[step]]\nname = "after"\nrun = "touch ~/after"\n')
    recipe = load_recipe("shared")
    for check in (True, False):  # check mode renders too: it must not escape either
        report = run_steps_on_host(host, recipe.steps, recipe.vars, check=check, recipe=recipe)
        assert isinstance(report.error, RecipeError), report.failure
        assert "unsafe" in report.failure
        if line:
            assert report.failure.startswith(f"recipes/shared.toml:{line}: step 1 'evil': access to attribute '__")
        else:
            assert report.failure.startswith("template evil.j2:2: access to attribute '__")
            assert "(recipes/shared.toml:3: step 1 'evil')" in report.failure
        assert report.steps == []
    assert not local.exists()
    assert not (sshd.home / "PWNED").exists() and not (sshd.home / "after").exists()


def test_an_env_name_with_shell_in_it_is_refused_and_nothing_runs(project: Path, shared_host) -> None:
    sshd, host = shared_host
    _clean(sshd.home)
    _write(
        project,
        """
        [[step]]
        name = "build"
        run = "true"
        env = { "A=1; touch ~/PWNED; B" = "x" }
        """,
    )
    with pytest.raises(RecipeError) as err:
        load_recipe("shared")
    assert str(err.value) == (
        "recipes/shared.toml:4: step 1 'build': 'A=1; touch ~/PWNED; B' is not an environment variable name: "
        'names are letters, digits and _ (not first a digit). Write env = { MY_VAR = "value" }.'
    )

    # A step that got past the loader (built in Python) is refused when planned, still before anything runs.
    _write(project, '[[step]]\nname = "build"\nrun = "touch ~/after"\nenv = { OK = "x" }\n')
    recipe = load_recipe("shared")
    recipe.steps[0].args["env"] = {"A=1; touch ~/PWNED; B": "x"}
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert isinstance(report.error, RecipeError)
    assert report.failure.startswith("recipes/shared.toml:4: step 1 'build': 'A=1; touch ~/PWNED; B' is not an environment")
    assert report.steps == []
    assert not (sshd.home / "PWNED").exists() and not (sshd.home / "after").exists()


def test_an_integer_mode_is_refused_before_anything_runs(project: Path, shared_host) -> None:
    sshd, host = shared_host
    _write(
        project,
        """
        [[step]]
        name = "first"
        run = "touch ~/after"
        [[step]]
        name = "bin"
        dir = "~/bin"
        mode = 755
        """,
    )
    with pytest.raises(RecipeError) as err:
        load_recipe("shared")
    assert str(err.value) == (
        "recipes/shared.toml:7: step 2 'bin': mode = 755 is a number (chmod would get mode 1363, not 0755); "
        'a mode is a string. Write mode = "0755".'
    )


def test_rendered_secrets_and_env_values_never_reach_a_process_list(shared_host, project):
    sshd, host = shared_host
    secret = "s3cr3t-9f1c27e0"
    _write(
        project,
        """
        [secrets]
        TOKEN = { env = "EC2KIT_TEST_TOKEN_NEVER_SET" }

        [[step]]
        name = "uses the token"
        run = "sleep 0.2 & T={{ TOKEN }}; ps -eo args > ~/ps.txt; test \\"$T\\" = \\"$API\\" && echo same > ~/same.txt; wait"
        env = { API = "{{ TOKEN }}" }
        """,
    )
    recipe = load_recipe("shared")
    from ec2kit.recipe.loader import resolve_vars

    values, secrets = resolve_vars(recipe, {"secret:TOKEN": secret})
    report = run_steps_on_host(host, recipe.steps, values, recipe=recipe, secrets=secrets)
    assert report.ok, report.failure
    processes = (sshd.home / "ps.txt").read_text()
    assert "ps -eo args" in processes  # the listing was taken while the step ran
    assert secret not in processes
    assert (sshd.home / "same.txt").read_text() == "same\n"  # the command and its env both got the value


def test_a_five_megabyte_command_runs_and_its_failure_message_stays_short(shared_host, project):
    sshd, host = shared_host
    (sshd.home / "big-ran").unlink(missing_ok=True)
    filler = "x" * 5_000_000
    _write(project, f'[[step]]\nname = "big"\nrun = ": {filler}; echo ok > ~/big-ran"\n')
    recipe = load_recipe("shared")
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert report.ok, report.failure[:2000]
    assert (sshd.home / "big-ran").read_text() == "ok\n"
    _write(project, f'[[step]]\nname = "big fail"\nrun = ": {filler}; exit 3"\n')
    recipe = load_recipe("shared")
    report = run_steps_on_host(host, recipe.steps, {}, recipe=recipe)
    assert not report.ok and "exit code 3" in report.failure
    assert len(report.failure) < 2000 and "more characters" in report.failure
