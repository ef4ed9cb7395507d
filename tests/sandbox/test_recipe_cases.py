"""Data-driven step cases (tests/cases/<kind>/*.toml), each run for real on an sshd host.

A case is a one-step recipe in the format users write, plus:
``[state]``  files (path → content), dirs, modes (path → "0644") created in the host's home first;
``check``    run in check mode;
``[expect]`` status, reason, exit_code, body_contains (the generated shell), diff_contains,
             output_contains, files (path → content after), modes, absent (paths that must not exist),
             failure_contains (the host failed before the step: e.g. variables in a cycle).
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from ec2kit.recipe import load_recipe, run_steps_on_host
from ec2kit.recipe.executor import HostRun
from ec2kit.recipe.loader import parse_toml
from ec2kit.ssh.openssh import OpenSshTransport
from ec2kit.ssh.target import SshTarget

CASES = Path(__file__).parent.parent / "cases"
CASE_FILES = sorted(p for p in CASES.glob("*/*.toml"))


@pytest.fixture(scope="module")
def case_host(sshd_factory, user_key, tmp_path_factory):
    sshd = sshd_factory("cases")
    target = SshTarget(
        host="127.0.0.1",
        port=sshd.port,
        user=sshd.user,
        key_file=user_key,
        alias="i-cases",
        known_hosts=tmp_path_factory.mktemp("kh") / "known_hosts",
        name="cases",
    )
    with OpenSshTransport(target) as host:  # what recipes use (Context.connect)
        yield sshd, host
    host.disconnect()


def _local(home: Path, path: str) -> Path:
    assert path.startswith("~/"), f"case paths start with ~/: {path}"
    return home / path[2:]


def _prepare(home: Path, state: dict) -> None:
    for child in home.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for d in state.get("dirs", []):
        _local(home, d).mkdir(parents=True, exist_ok=True)
    for f, content in state.get("files", {}).items():
        p = _local(home, f)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for f, mode in state.get("modes", {}).items():
        _local(home, f).chmod(int(mode, 8))


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CASE_FILES])
def test_step_case_behaves_as_expected(case_file: Path, case_host):
    sshd, host = case_host
    data = parse_toml(case_file.read_text(), case_file)
    expect, check = data["expect"], data.get("check", False)
    recipe = load_recipe(str(case_file), extra_keys=("state", "expect", "check"))
    assert len(recipe.steps) == 1, "a case has exactly one step"
    _prepare(sshd.home, data.get("state", {}))

    if "body_contains" in expect:
        planned = HostRun(recipe.steps, dict(recipe.vars), recipe=recipe, host=host)._plan(recipe.steps[0])
        for snippet in expect["body_contains"]:
            assert snippet in planned.body

    report = run_steps_on_host(host, recipe.steps, dict(recipe.vars), check=check, recipe=recipe)
    if "failure_contains" in expect:  # refused before the step ran
        assert report.steps == [] and all(t in report.failure for t in expect["failure_contains"]), report.failure
        return
    [result] = report.steps
    assert result.status == expect["status"], (result, report.failure)
    if "reason" in expect:
        assert result.reason == expect["reason"]
    if "exit_code" in expect:
        assert result.exit_code == expect["exit_code"]
    for text in expect.get("output_contains", []):
        assert text in result.output
    for text in expect.get("diff_contains", []):
        assert text in result.diff
    for f, content in expect.get("files", {}).items():
        assert _local(sshd.home, f).read_text() == content, f
    for f, mode in expect.get("modes", {}).items():
        assert stat.S_IMODE(_local(sshd.home, f).stat().st_mode) == int(mode, 8), f
    for f in expect.get("absent", []):
        assert not _local(sshd.home, f).exists(), f
    assert report.ok == (expect["status"] != "failed")


def test_every_step_kind_has_cases():
    kinds = {p.parent.name for p in CASE_FILES}
    assert {"run", "script", "template", "copy", "line", "dir", "apt"} <= kinds
