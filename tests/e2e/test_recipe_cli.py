"""Recipes through the command line on the sandbox: inv recipes, recipe, provision, freeze.

Each `inv` call is its own process, as from a user's shell, against the sandbox's moto
server and the real sshd host behind each instance. The project directory (the cwd)
holds the user's own recipes/ and templates/.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, run_inv

pytestmark = pytest.mark.usefixtures("sandbox")

WEB = """\
description = "A small web host: app dir, config from a template, a profile line, a guarded command"

[vars]
greeting = "hello"
port = 8080

[[step]]
name = "app dir"
dir = "~/app"
mode = "0750"

[[step]]
name = "config"
template = "app.conf.j2"
dest = "~/app/app.conf"
mode = "0640"

[[step]]
name = "profile"
line = "export APP_PORT={{ port }}"
path = "~/.profile"

[[step]]
name = "first boot stamp"
run = "date +%s%N > ~/app/stamp"
creates = "~/app/stamp"
"""


@pytest.fixture
def home(sandbox):
    return sandbox.settings.home


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "recipes" / "web.toml").write_text(WEB)
    (tmp_path / "templates" / "app.conf.j2").write_text("greeting = {{ greeting }}\nhost = {{ name }}\nport = {{ port }}\n")
    return tmp_path


def connections(host_dir: Path) -> int:
    log = host_dir / "sshd.log"
    return sum(1 for line in log.read_text(errors="replace").splitlines() if line.startswith("Accepted publickey"))


def recap(text: str, host: str) -> dict[str, int]:
    m = re.search(rf"^\[{re.escape(host)}\] recap: ok=(\d+) changed=(\d+) skipped=(\d+) failed=(\d+)", text, re.M)
    assert m, text
    return dict(zip(("ok", "changed", "skipped", "failed"), map(int, m.groups())))


def test_recipes_lists_the_projects_and_the_built_in_recipes_with_their_variables(home, project):
    result = run_inv("recipes", "--json", home=home, cwd=project)
    assert result.code == 0, result
    found = {r["name"]: r for r in json.loads(result.out)}
    assert {"web", "base", "freeze", "data-volume"} <= set(found)
    assert found["web"]["vars"] == {"greeting": "hello", "port": 8080}
    assert found["web"]["description"].startswith("A small web host")
    table = run_inv("recipes", home=home, cwd=project)
    assert table.code == 0 and "web" in table.out and "A small web host" in table.out


def test_provision_two_hosts_then_rerun_changes_nothing_and_reuses_the_connections(home, project, launched):
    dirs = launched("rc-web1", "rc-web2")
    first = run_inv("provision", "rc-web1,rc-web2", "--recipe", "web", "--set", "greeting=hi there", home=home, cwd=project)
    assert first.code == 0, first
    for name, d in dirs.items():
        assert recap(first.out, name) == {"ok": 0, "changed": 4, "skipped": 0, "failed": 0}
        app = d / "home" / "app"
        assert (app / "app.conf").read_text() == f"greeting = hi there\nhost = {name}\nport = 8080\n"
        assert oct((app / "app.conf").stat().st_mode & 0o777) == "0o640"
        assert "export APP_PORT=8080\n" in (d / "home" / ".profile").read_text()
    assert "All 2 hosts succeeded" in first.out
    stamp = (dirs["rc-web1"] / "home" / "app" / "stamp").read_text()
    # `inv launch` waited for SSH through the connection `inv provision` then used
    assert {name: connections(d) for name, d in dirs.items()} == {"rc-web1": 1, "rc-web2": 1}

    second = run_inv("provision", "rc-web1,rc-web2", "--recipe", "web", "--set", "greeting=hi there", home=home, cwd=project)
    assert second.code == 0, second
    for name in dirs:
        assert recap(second.out, name) == {"ok": 3, "changed": 0, "skipped": 1, "failed": 0}  # creates= exists
    assert (dirs["rc-web1"] / "home" / "app" / "stamp").read_text() == stamp
    # and so did the second one: three processes, one SSH handshake per host
    assert {name: connections(d) for name, d in dirs.items()} == {"rc-web1": 1, "rc-web2": 1}


def test_recipe_check_mode_shows_the_template_diff_and_changes_nothing(home, project, launched):
    [d] = launched("rc-check").values()
    assert run_inv("recipe", "web", "--on", "rc-check", home=home, cwd=project).code == 0
    before = (d / "home" / "app" / "app.conf").read_text()
    result = run_inv("recipe", "web", "--on", "rc-check", "--set", "port=9090", "--check", home=home, cwd=project)
    assert result.code == 0, result
    assert "-port = 8080" in result.out and "+port = 9090" in result.out
    assert recap(result.out, "rc-check")["changed"] == 2  # the template and the line would change
    assert "check mode: nothing changed" in result.out
    assert (d / "home" / "app" / "app.conf").read_text() == before
    assert "APP_PORT=9090" not in (d / "home" / ".profile").read_text()


def test_provision_by_tag_runs_on_the_matching_instances_only(home, project, launched):
    tagged = launched("rc-tag1", "rc-tag2", tags="role=rc-batch")
    other = launched("rc-untagged")
    result = run_inv("provision", "role=rc-batch", "--recipe", "web", home=home, cwd=project)
    assert result.code == 0, result
    for name, d in tagged.items():
        assert recap(result.out, name)["changed"] == 4 and (d / "home" / "app" / "app.conf").exists()
    assert "[rc-untagged]" not in result.out and not (other["rc-untagged"] / "home" / "app").exists()


def test_a_failing_host_fails_the_command_but_not_the_other_host(home, project, launched):
    dirs = launched("rc-good", "rc-bad")
    (dirs["rc-good"] / "home" / "ready").write_text("")
    (project / "recipes" / "ready.toml").write_text(
        textwrap.dedent("""
        [[step]]
        name = "must be ready"
        run = "test -f ~/ready"
        [[step]]
        name = "after"
        run = "touch ~/after"
    """)
    )
    result = run_inv("provision", "rc-good,rc-bad", "--recipe", "ready", home=home, cwd=project)
    assert result.code == 2, result
    assert "Traceback" not in result.text
    assert "1 of 2 hosts failed: rc-bad." in result.out
    assert "Recipe ready, step 1 'must be ready' failed on rc-bad with exit code 1." in result.text
    assert (dirs["rc-good"] / "home" / "after").exists() and not (dirs["rc-bad"] / "home" / "after").exists()


def test_unknown_recipe_host_and_missing_hosts_are_clean_errors(home, project, launched):
    assert_clean_error(run_inv("recipe", "wbe", "--on", "x", home=home, cwd=project), "wbe", "web")
    launched("rc-known")
    assert_clean_error(run_inv("provision", "rc-knwon", "--recipe", "web", home=home, cwd=project), "rc-knwon", "rc-known")
    assert_clean_error(run_inv("provision", "role=nobody", home=home, cwd=project), "role=nobody", "--tag")
    assert_clean_error(run_inv("launch", "rc-x", "--tag", "Name=other", home=home), "reserved")
    assert_clean_error(run_inv("launch", "rc-x", "--tag", "novalue", home=home), "KEY=VALUE")


def test_freeze_runs_the_freeze_recipe_and_makes_a_named_image(home, project, launched):
    launched("rc-freeze")
    result = run_inv("freeze", "rc-freeze", home=home, cwd=project, timeout=180)
    assert result.code == 0, result
    images = run_inv("images", "--json", home=home)
    assert images.code == 0, images
    assert "rc-freeze" in {i["name"] for i in json.loads(images.out)}


def test_a_recipe_on_many_hosts_looks_them_all_up_with_one_describe_call(sandbox, project, monkeypatch):
    from ec2kit import actions
    from ec2kit.context import Context
    from ec2kit.recipe import CollectingReporter, load_recipe, run_recipe

    monkeypatch.chdir(project)
    ctx = Context(sandbox.settings)
    names = ["rc-one1", "rc-one2", "rc-one3"]
    try:
        for name in names:
            actions.launch(ctx, name, type="t3.micro")
        calls: list = []
        ctx.cloud.ec2.meta.events.register(
            "before-parameter-build.ec2.DescribeInstances", lambda **kw: calls.append(kw["params"])
        )
        report = run_recipe(ctx, load_recipe("web"), hosts=names, reporter=CollectingReporter())
        assert report.ok, report.failed_hosts
        assert len(calls) == 1  # not one per host
    finally:
        for name in names:
            ctx.cloud.terminate(name)
        ctx.close()


FACTS = """\
description = "per-host values, facts about the run's hosts, and vars built from vars"

[vars]
port = 8000
base = "~/svc"
conf = "{{ base }}/{{ name }}.conf"

[hosts.fa1]
port = 8101

[[step]]
name = "config"
template = "svc.conf.j2"
dest = "{{ conf }}"
"""


def test_per_host_values_facts_and_vars_built_from_vars_reach_each_host(home, project, launched):
    homes = launched("fa1", "fa2", tags="role=facts")
    (project / "recipes" / "facts.toml").write_text(FACTS)
    (project / "templates" / "svc.conf.j2").write_text(
        "port={{ port }} role={{ tags.role }} me={{ host.id }}\n"
        "{% for h in hosts %}peer={{ h.name }} {{ h.private_ip }}\n{% endfor %}"
    )
    (project / "hosts.toml").write_text("[fa2]\nport = 8202\n")
    result = run_inv("provision", "role=facts", "--recipe", "facts", "--set", "fa2:port=8303", home=home, cwd=project)
    assert result.code == 0, result
    listed = {i["name"]: i for i in json.loads(run_inv("instances", "--json", home=home).out)}
    for name, port in (("fa1", 8101), ("fa2", 8303)):  # [hosts.NAME] < hosts.toml < --set NAME:KEY
        text = (homes[name] / "home" / "svc" / f"{name}.conf").read_text()
        assert text.startswith(f"port={port} role=facts me={listed[name]['id']}\n"), text
        for peer in ("fa1", "fa2"):
            assert f"peer={peer} {listed[peer]['private_ip']}\n" in text
    check = run_inv("provision", "fa1", "--recipe", "facts", "--check", "--set", "port=9", home=home, cwd=project)
    assert check.code == 0 and "{{" not in check.out, check  # --check never shows an unrendered variable
    assert "+port=9 role=facts" in check.out and "-port=8101 role=facts" in check.out  # a global --set beats [hosts]
    real = run_inv("provision", "fa1", "--recipe", "facts", "--diff", "--set", "port=9", home=home, cwd=project)
    assert real.code == 0 and "+port=9 role=facts" in real.out and "-port=8101 role=facts" in real.out, real


def test_a_per_host_set_for_a_host_not_in_the_run_is_refused(home, project, launched):
    launched("fb1")
    (project / "recipes" / "facts.toml").write_text(FACTS)
    (project / "templates" / "svc.conf.j2").write_text("port={{ port }}\n")
    assert_clean_error(
        run_inv("provision", "fb1", "--recipe", "facts", "--set", "zz9:port=1", home=home, cwd=project), "zz9", "fb1"
    )


def test_recipes_come_from_the_project_then_the_user_then_the_built_ins_and_say_so(tmp_path):
    home, project = tmp_path / "home", tmp_path / "proj"
    (home / "recipes").mkdir(parents=True)
    (project / "recipes").mkdir(parents=True)
    (home / "recipes" / "mine.toml").write_text('description = "from my home"\n[[step]]\nname = "a"\nrun = "true"\n')
    (home / "recipes" / "web.toml").write_text('description = "home web"\n[[step]]\nname = "a"\nrun = "true"\n')
    (project / "recipes" / "web.toml").write_text('description = "project web"\n[[step]]\nname = "a"\nrun = "true"\n')
    (project / "recipes" / "base.toml").write_text('description = "my base"\n[[step]]\nname = "a"\nrun = "true"\n')
    result = run_inv("recipes", "--json", home=home, cwd=project)
    assert result.code == 0, result
    got = {r["name"]: r for r in json.loads(result.out)}
    assert (got["mine"]["source"], got["mine"]["description"]) == ("user", "from my home")
    assert (got["web"]["source"], got["web"]["description"]) == ("project", "project web")  # the project wins
    assert got["base"]["source"] == "project" and got["base"]["overrides_builtin"] is True
    assert got["freeze"]["source"] == "built-in" and got["freeze"]["overrides_builtin"] is False
    table = run_inv("recipes", home=home, cwd=project)
    assert "project (overrides the built-in)" in table.out
