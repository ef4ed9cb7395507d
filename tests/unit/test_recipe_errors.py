"""Every malformed recipe gives one located, actionable message (exact text asserted)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ec2kit.errors import NotFound, RecipeError
from ec2kit.recipe import load_recipe
from ec2kit.recipe.executor import HostRun


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """An empty project directory (the cwd) with recipes/ and templates/."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(project: Path, name: str, text: str) -> None:
    (project / "recipes" / f"{name}.toml").write_text(textwrap.dedent(text).lstrip())


def load_error(name: str) -> str:
    with pytest.raises(RecipeError) as err:
        load_recipe(name)
    return str(err.value)


def run_error(name: str, **vars) -> str:
    """Load, then run without a host (no shell step gets that far): the host's failure message."""
    recipe = load_recipe(name)
    report = HostRun(recipe.steps, {**recipe.vars, **vars}, recipe=recipe, target="web1").run()
    assert isinstance(report.error, RecipeError)
    return report.failure


def test_toml_syntax_error_names_file_line_column_and_shows_the_line(project):
    write(
        project,
        "bad",
        """
        description = "bad"
        [[step]]
        run = echo hi
    """,
    )
    assert load_error("bad") == (
        "recipes/bad.toml:3:7: invalid TOML: Invalid value.\n"
        "    run = echo hi\n"
        "          ^\n"
        "Fix the syntax (strings need quotes, one key = value per line) and run again."
    )


def test_unknown_step_key_lists_the_valid_keys_for_that_kind(project):
    write(
        project,
        "bad",
        """
        [[step]]
        name = "cfg"
        template = "x.j2"
        dst = "~/x"
    """,
    )
    assert load_error("bad") == (
        "recipes/bad.toml:4: step 1 'cfg': unknown key 'dst' for a template step. Did you mean 'dest'? "
        "Valid keys for a template step: template, dest, mode, owner, name, sudo, when, creates, unless, "
        "register, retries, delay, tags, env, cwd."
    )


def test_a_step_with_no_kind_suggests_the_close_kind(project):
    write(
        project,
        "bad",
        """
        [[step]]
        name = "oops"
        templat = "x.j2"
    """,
    )
    assert load_error("bad") == (
        "recipes/bad.toml:1: step 1 'oops' has no kind (unknown key 'templat'): give exactly one of "
        "run, script, template, copy, line, dir, file, apt, task. Did you mean 'template'?"
    )


def test_a_step_with_two_kinds_says_to_split_it(project):
    write(
        project,
        "bad",
        """
        [[step]]
        name = "ok"
        run = "true"

        [[step]]
        name = "both"
        run = "true"
        script = "true"
    """,
    )
    assert load_error("bad") == (
        "recipes/bad.toml:5: step 2 'both' has 2 kinds (run and script); a step does exactly one thing. "
        "Split it into one step per kind."
    )


def test_unknown_task_suggests_close_names(project):
    write(
        project,
        "bad",
        """
        [[step]]
        name = "img"
        task = "freze"
    """,
    )
    message = load_error("bad")
    assert message.startswith("recipes/bad.toml:1: step 1 'img': unknown task 'freze'. Did you mean 'freeze'? Known tasks: ")
    known = message.split("Known tasks: ", 1)[1].split(". Register", 1)[0].split(", ")
    assert known == sorted(known)  # other tests of this session may have registered tasks of their own
    assert {"attach_volume", "detach_volume", "freeze", "launch", "make_volume"} <= set(known)
    assert message.endswith('Register your own with @register_task("name") in tasks.py.')


def test_undefined_variable_in_a_step_names_file_line_step_key_and_context(project):
    write(
        project,
        "bad",
        """
        description = "x"
        [vars]
        packages = ["tmux"]

        [[step]]
        name = "packages"
        apt = "{{ packagez }}"
        sudo = true
    """,
    )
    assert run_error("bad") == (
        "recipes/bad.toml:7: step 1 'packages': 'packagez' is undefined (in 'apt').\n"
        "     5 | [[step]]\n"
        '     6 | name = "packages"\n'
        '>    7 | apt = "{{ packagez }}"\n'
        "     8 | sudo = true\n"
        "Define it under [vars] or pass --set packagez=VALUE."
    )


def test_undefined_variable_in_when_names_the_when_line(project):
    write(
        project,
        "bad",
        """
        [[step]]
        name = "gpu only"
        run = "nvidia-smi"
        when = "has_gpu"
    """,
    )
    assert run_error("bad").startswith("recipes/bad.toml:4: step 1 'gpu only': 'has_gpu' is undefined (in 'when').")


def test_undefined_variable_in_a_template_names_template_line_and_neighbours(project):
    (project / "templates" / "app.j2").write_text("line one\nname = {{ name }}\nport = {{ port }}\nline four\n")
    write(
        project,
        "bad",
        """
        [[step]]
        name = "cfg"
        template = "app.j2"
        dest = "~/app"
    """,
    )
    assert run_error("bad") == (
        "template app.j2:3: 'port' is undefined (recipes/bad.toml:3: step 1 'cfg').\n"
        "     1 | line one\n"
        "     2 | name = {{ name }}\n"
        ">    3 | port = {{ port }}\n"
        "     4 | line four\n"
        "Define it under [vars] or pass --set port=VALUE."
    )


def test_a_missing_template_lists_what_is_there(project):
    (project / "templates" / "tmux.conf.j2").write_text("x\n")
    write(
        project,
        "bad",
        """
        [[step]]
        name = "cfg"
        template = "tmux.conf"
        dest = "~/app"
    """,
    )
    message = run_error("bad")
    assert message.startswith("recipes/bad.toml:3: step 1 'cfg': no template 'tmux.conf' in ")
    assert "Did you mean 'tmux.conf.j2'?" in message


def test_a_cycle_in_uses_shows_the_cycle(project):
    write(project, "a", 'uses = ["b"]\n')
    write(project, "b", 'uses = ["c"]\n')
    write(project, "c", 'uses = ["a"]\n')
    assert load_error("a") == "recipes/c.toml: recipes use each other in a cycle: a → b → c → a. Remove one of the 'uses'."


def test_a_missing_used_recipe_suggests_close_names(project):
    write(project, "base", '[[step]]\nrun = "true"\n')
    write(project, "top", 'uses = ["bsae"]\n')
    message = load_error("top")
    assert message.startswith("recipes/top.toml: uses 'bsae': No recipe named 'bsae'. Did you mean 'base'? ")


def test_an_unknown_recipe_name_suggests_close_names(project):
    write(project, "base", '[[step]]\nrun = "true"\n')
    with pytest.raises(NotFound) as err:
        load_recipe("bsae", search_path=[project / "recipes"])
    assert str(err.value).startswith("No recipe named 'bsae'. Did you mean 'base'?")


def test_a_secret_written_in_the_recipe_is_refused(project):
    write(project, "bad", '[secrets]\nHF_TOKEN = "hf_abc"\n')
    assert load_error("bad") == (
        "recipes/bad.toml: secret 'HF_TOKEN' must look like HF_TOKEN = { env = \"ENV_VAR\" }; never write a "
        "secret's value in a recipe (pass it with --set secret:HF_TOKEN=VALUE)."
    )


def test_unknown_top_level_key_suggests_the_right_one(project):
    write(project, "bad", "[var]\nx = 1\n")
    assert load_error("bad") == (
        "recipes/bad.toml: unknown top-level key 'var'. Did you mean 'vars'? "
        "A recipe has: description, uses, vars, secrets, hosts, step (steps are [[step]] tables)."
    )


def test_builtin_recipes_load_and_are_listed():
    from ec2kit.recipe import list_recipes

    names = {r.name for r in list_recipes()}
    assert {"base", "freeze", "data-volume"} <= names
    for name in ("base", "freeze", "data-volume"):
        assert load_recipe(name).steps
