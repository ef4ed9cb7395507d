"""Host-free table tests of every step kind's planner (tests/kinds/<kind>/*.toml), like pyinfra's tests/operations.

A case is a one-step recipe in the format users write, plus:
``[state]``  the host's facts: files (path → content), dirs, modes (path → "0644"), fifos, links (link → target),
             made in a scratch home;
``check``    plan (and run) in check mode;
``[expect]`` what the planner gives and what the host then says:
             ``error`` / ``error_contains`` (the message: the step is refused when loaded or planned),
             ``command`` (what a person is shown), ``body`` / ``quick`` (the exact bash lines),
             ``body_contains``, ``probe`` (paths the quick check stats), ``pure``,
             ``status`` / ``reason`` (the step's bash run locally by ``bash`` on the scratch home: no sshd, no moto),
             ``fast`` (decided by the no-fork quick check, without starting a program),
             ``files`` / ``absent`` / ``modes`` / ``fifos`` / ``links`` afterwards, ``stderr_contains``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ec2kit.errors import RecipeError
from ec2kit.recipe import load_recipe
from ec2kit.recipe.executor import HostRun
from ec2kit.recipe.kinds import KINDS, SHELL_KINDS
from ec2kit.recipe.loader import parse_toml
from ec2kit.recipe.script import COMMAND, build_script, new_nonce, parse_output

KIND_CASES = Path(__file__).parent.parent / "kinds"
CASE_FILES = sorted(KIND_CASES.glob("*/*.toml"))
EXTRA_KEYS = ("state", "expect", "check")


def _local(home: Path, path: str) -> Path:
    assert path.startswith("~/"), f"case paths start with ~/: {path}"
    return home / path[2:]


def _prepare(home: Path, state: dict[str, Any]) -> None:
    for d in state.get("dirs", []):
        _local(home, d).mkdir(parents=True, exist_ok=True)
    for f, content in state.get("files", {}).items():
        p = _local(home, f)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for f, mode in state.get("modes", {}).items():
        _local(home, f).chmod(int(mode, 8))
    for f in state.get("fifos", []):  # a canary special file: nothing may write into it or replace it
        p = _local(home, f)
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p)
    for link, to in state.get("links", {}).items():
        os.symlink(_local(home, to), _local(home, link))


def _bin_logging_mktemp(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose ``mktemp`` logs that it ran: the full step starts it, the quick check never does."""
    bin_dir, log = tmp_path / "bin", tmp_path / "full-step.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "mktemp"
    wrapper.write_text(f'#!/bin/sh\necho mktemp >> {log}\nexec {shutil.which("mktemp")} "$@"\n')
    wrapper.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin", log


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CASE_FILES])
def test_kind_case_plans_as_expected(case_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = parse_toml(case_file.read_text(), case_file)
    expect, check = data["expect"], data.get("check", False)
    monkeypatch.chdir(case_file.parent.parent)  # messages show paths relative to tests/kinds
    if "error" in expect or "error_contains" in expect:
        with pytest.raises(RecipeError) as err:
            recipe = load_recipe(str(case_file), extra_keys=EXTRA_KEYS)
            HostRun(recipe.steps, dict(recipe.vars), recipe=recipe, target="case")._plan(recipe.steps[0])
        if "error" in expect:
            assert str(err.value) == expect["error"].strip()
        for text in expect.get("error_contains", []):
            assert text in str(err.value)
        return
    recipe = load_recipe(str(case_file), extra_keys=EXTRA_KEYS)
    [step] = recipe.steps
    planned = HostRun(recipe.steps, dict(recipe.vars), recipe=recipe, target="case")._plan(step)
    if "command" in expect:
        assert planned.command == expect["command"]
    if "body" in expect:
        assert planned.body.splitlines() == expect["body"]
    for snippet in expect.get("body_contains", []):
        assert snippet in planned.body
    if "quick" in expect:
        assert planned.quick.splitlines() == expect["quick"]
    if "probe" in expect:
        assert list(planned.probe) == expect["probe"]
    if "pure" in expect:
        assert planned.pure == expect["pure"]
    if "status" not in expect:
        return

    home = tmp_path / "home"
    home.mkdir()
    _prepare(home, data.get("state", {}))
    path, log = _bin_logging_mktemp(tmp_path)
    nonce = new_nonce()
    res = subprocess.run(
        ["bash", "-c", COMMAND],
        input=build_script([planned], check=check, nonce=nonce).encode(),
        capture_output=True,
        cwd=home,
        env={"HOME": str(home), "PATH": path, "LANG": "C.UTF-8"},
    )
    markers, other = parse_output(res.stdout.decode(errors="replace"), nonce)
    assert len(markers) == 1, (other, res.stderr.decode(errors="replace"))
    [marker] = markers
    assert marker.status == expect["status"], (marker, res.stderr.decode(errors="replace"))
    if "reason" in expect:
        assert marker.reason == expect["reason"]
    if "fast" in expect:
        assert (not log.exists()) == expect["fast"], "decided by the quick check" if expect["fast"] else "ran the full step"
    for text in expect.get("diff_contains", []):
        assert text in marker.diff
    for f, content in expect.get("files", {}).items():
        assert _local(home, f).read_text() == content, f
    for f in expect.get("absent", []):
        assert not _local(home, f).exists(), f
    for f, mode in expect.get("modes", {}).items():
        assert oct(_local(home, f).stat().st_mode & 0o7777) == oct(int(mode, 8)), f
    for f in expect.get("fifos", []):
        assert _local(home, f).is_fifo(), f"{f} is no longer the FIFO it was"
    for f in expect.get("links", []):
        assert _local(home, f).is_symlink(), f"{f} is no longer a link"
    for text in expect.get("stderr_contains", []):
        assert text in res.stderr.decode(errors="replace") + marker.stderr


def test_every_kind_in_the_table_has_planner_cases() -> None:
    kinds = {p.parent.name for p in CASE_FILES}
    assert set(SHELL_KINDS) <= kinds
    assert "task" in KINDS and "task" not in SHELL_KINDS


def test_the_batch_script_carries_only_the_helpers_of_its_kinds(tmp_path: Path) -> None:
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text('[[step]]\nrun = "true"\n[[step]]\ndir = "~/d"\n')
    recipe = load_recipe(str(recipe_file))
    run = HostRun(recipe.steps, {}, recipe=recipe, target="x")
    script = build_script([run._plan(s) for s in recipe.steps], nonce="n")
    assert "__dir() {" in script and "__qdir() {" in script
    assert "__put_file() {" not in script and "__apt() {" not in script and "__line() {" not in script


def test_a_new_kind_is_one_module_and_one_line_in_the_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A kind registered in KINDS is loaded, validated, planned and its helper shipped, with nothing else touched."""
    from ec2kit.recipe.kinds import Kind
    from ec2kit.recipe.kinds.base import q, sh_path

    helper = '__touch() { if [ -e "$1" ]; then __ok "$2 exists"; else : > "$1" && __changed "created $2"; fi; }'
    kind = Kind(
        "touch",
        plan=lambda args, ctx: (f"__touch {sh_path(args['touch'])} {q(args['touch'])}", f"touch {args['touch']}"),
        helpers=(helper,),
        pure=True,
    )
    monkeypatch.setitem(KINDS, "touch", kind)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text('[[step]]\ntouch = "~/flag"\n')
    recipe = load_recipe(str(recipe_file))
    planned = HostRun(recipe.steps, {}, recipe=recipe, target="x")._plan(recipe.steps[0])
    nonce = new_nonce()
    home = tmp_path / "home"
    home.mkdir()
    res = subprocess.run(
        ["bash", "-c", COMMAND],
        input=build_script([planned], nonce=nonce).encode(),
        capture_output=True,
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
    )
    [marker] = parse_output(res.stdout.decode(), nonce)[0]
    assert (marker.status, marker.reason) == ("changed", "created ~/flag")
    assert (home / "flag").exists()
