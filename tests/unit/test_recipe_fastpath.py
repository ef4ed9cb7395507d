"""The batch script's no-fork fast path, run for real with bash on a scratch home.

A no-op pass decides "already ok" from one ``stat`` of all the batch's paths and bash
builtins; these tests pin that it starts almost no programs, that it is byte-exact about
content and lines, and that it never trusts a probe an earlier step may have made stale.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ec2kit.recipe.kinds import PlanContext, ansi_c
from ec2kit.recipe.plan import plan_step
from ec2kit.recipe.script import COMMAND, build_script, new_nonce, parse_output

TRICKY = "back\\slash 'single' \"double\" $HOME `tick` %25 a:b\r\n\ttab ünïcödé\n\n"


def _logging_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose first directory logs every program the script starts, then runs the real one."""
    bin_dir, log = tmp_path / "bin", tmp_path / "programs.log"
    bin_dir.mkdir()
    for name in (
        "base64",
        "stat",
        "cmp",
        "cat",
        "grep",
        "tail",
        "mktemp",
        "rm",
        "diff",
        "tee",
        "cp",
        "chmod",
        "mkdir",
        "date",
        "sed",
        "awk",
        "find",
        "tar",
        "sha256sum",
        "test",
        "mv",
        "dirname",
    ):
        real = next(p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.exists(p))
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\necho {name} >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin", log


def run_batch(
    tmp_path: Path,
    steps: list[tuple[str, dict]],
    *,
    templates: dict[str, str] | None = None,
    check: bool = False,
    diff: bool = True,
) -> tuple[list, list[str]]:
    """Plan ``(kind, args)`` steps, run them as one batch with ``bash -s``; markers and the programs started."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if (tmp_path / "bin").exists():
        path, log = f"{tmp_path / 'bin'}:/usr/bin:/bin", tmp_path / "programs.log"
        log.unlink(missing_ok=True)
    else:
        path, log = _logging_path(tmp_path)
    planned = []
    for i, (kind, args) in enumerate(steps, 1):
        ctx = PlanContext(kind, f"step {i}", render_template=lambda name: (templates or {})[name], base_dir=tmp_path)
        planned.append(plan_step(i, f"s{i}", kind, {kind: args.get(kind, ""), **args}, ctx))
    nonce = new_nonce()
    script = build_script(planned, check=check, nonce=nonce, diff=diff)
    res = subprocess.run(
        ["bash", "-c", COMMAND],
        input=script.encode(),
        capture_output=True,
        cwd=home,
        env={"HOME": str(home), "PATH": path, "LANG": "C.UTF-8"},
    )
    markers, other = parse_output(res.stdout.decode(errors="replace"), nonce)
    assert len(markers) == len(steps), (other, res.stderr.decode(errors="replace"))
    programs = log.read_text().split() if log.exists() else []
    return markers, programs


def _twenty_like(tmp_path: Path) -> tuple[list[tuple[str, dict]], dict[str, str]]:
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 4)
    steps = [
        ("dir", {"dir": "~/app", "mode": "0750"}),
        ("template", {"template": "t", "dest": "~/app/conf", "mode": "0600"}),
        ("template", {"template": "tricky", "dest": "~/app/tricky"}),
        ("copy", {"copy": "bin.dat", "dest": "~/app/bin.dat", "mode": "0644"}),
        ("line", {"line": 'export PATH="$HOME/bin:$PATH"', "path": "~/.bashrc"}),
        ("line", {"line": "alias ll='ls -la'", "path": "~/.bashrc"}),
        ("run", {"run": "echo made > ~/app/made", "creates": "~/app/made"}),
    ]
    return steps, {"t": "port = 8080\n", "tricky": TRICKY}


def test_a_no_op_pass_starts_only_one_program_stat(tmp_path):
    steps, templates = _twenty_like(tmp_path)
    first, _ = run_batch(tmp_path, steps, templates=templates)
    assert [m.status for m in first] == ["changed"] * 7
    again, programs = run_batch(tmp_path, steps, templates=templates)
    statuses = [(m.status, m.reason) for m in again]
    assert statuses[:3] == [
        ("ok", "~/app already exists"),
        ("ok", "~/app/conf already has this content"),
        ("ok", "~/app/tricky already has this content"),
    ]
    assert statuses[3] == ("ok", "~/app/bin.dat already has this content")  # binary: the cmp path
    assert statuses[4:] == [("ok", "~/.bashrc already has this line")] * 2 + [("skipped", "creates: ~/app/made exists")]
    # one stat for the batch; the binary copy's full step decodes, compares and stats its mode
    assert sorted(programs) == ["base64", "cmp", "mktemp", "rm", "stat", "stat"]
    del steps[3]
    _, programs = run_batch(tmp_path, steps, templates=templates)
    assert programs == ["stat"]  # no scratch directory either


def test_a_first_run_writes_text_files_with_cp_chmod_and_mv_only_and_diffs_only_when_asked(tmp_path):
    steps = [
        ("template", {"template": "t", "dest": "~/app/conf", "mode": "0600"}),
        ("template", {"template": "tricky", "dest": "~/app/tricky"}),
    ]
    templates = {"t": "port = 8080\n", "tricky": TRICKY}
    first, programs = run_batch(tmp_path, steps, templates=templates, diff=False)
    assert [m.status for m in first] == ["changed", "changed"]
    assert [m.diff for m in first] == ["", ""]
    # the scratch dir, then per file: its parent once, copy, mode, rename (no base64, diff, dirname, mktemp)
    # (and stat: the batch's probe, then the second file's again after the first one changed things)
    assert sorted(programs) == sorted(["stat", "mktemp", "mkdir", "cp", "chmod", "mv", "stat", "cp", "chmod", "mv", "rm"])
    home = tmp_path / "home"
    assert (home / "app" / "tricky").read_bytes() == TRICKY.encode()
    assert (home / "app" / "conf").stat().st_mode & 0o777 == 0o600
    assert not [p for p in (home / "app").iterdir() if p.name.startswith(".ec2kit.")]  # no temp file left
    templates["t"] = "port = 9090\n"
    changed, programs = run_batch(tmp_path, steps, templates=templates, diff=True)
    assert changed[0].status == "changed" and "+port = 9090" in changed[0].diff and "diff" in programs


def test_a_first_run_adds_lines_without_cat_grep_or_tail(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export A=1")  # no final newline: one is added before the line
    steps = [
        ("line", {"line": "alias ll='ls -la'", "path": "~/.bashrc"}),
        ("line", {"line": "first", "path": "~/new.txt"}),
        ("line", {"line": "export A=1", "path": "~/.bashrc"}),
    ]
    markers, programs = run_batch(tmp_path, steps, diff=False)
    assert [(m.status, m.reason) for m in markers] == [
        ("changed", "added a line to ~/.bashrc"),
        ("changed", "added a line to ~/new.txt"),
        ("ok", "~/.bashrc already has this line"),
    ]
    assert (home / ".bashrc").read_text() == "export A=1\nalias ll='ls -la'\n"
    assert (home / "new.txt").read_text() == "first\n"
    assert not {"cat", "grep", "tail", "diff"} & set(programs), programs
    assert programs.count("cp") == 2 and programs.count("mv") == 2


def test_text_content_is_compared_byte_for_byte(tmp_path):
    steps = [("template", {"template": "tricky", "dest": "~/f"})]
    run_batch(tmp_path, steps, templates={"tricky": TRICKY})
    assert (tmp_path / "home/f").read_bytes() == TRICKY.encode()
    for changed in (TRICKY.rstrip("\n"), TRICKY + "\n", TRICKY.replace("\r", ""), TRICKY.replace("ü", "u")):
        (tmp_path / "home/f").write_bytes(changed.encode())
        markers, _ = run_batch(tmp_path, steps, templates={"tricky": TRICKY})
        assert (markers[0].status, markers[0].reason) == ("changed", "updated content of ~/f"), repr(changed)
    (tmp_path / "home/f").write_bytes(TRICKY.encode()[:5] + b"\0" + TRICKY.encode()[6:])
    markers, _ = run_batch(tmp_path, steps, templates={"tricky": TRICKY})
    assert markers[0].status == "changed"


def test_mode_and_owner_are_still_enforced_when_content_matches(tmp_path):
    steps = [("template", {"template": "t", "dest": "~/f", "mode": "0600"}), ("dir", {"dir": "~/d", "mode": "0700"})]
    run_batch(tmp_path, steps, templates={"t": "x\n"})
    (tmp_path / "home/f").chmod(0o644)
    (tmp_path / "home/d").chmod(0o755)
    markers, _ = run_batch(tmp_path, steps, templates={"t": "x\n"})
    assert [(m.status, m.reason) for m in markers] == [("changed", "updated mode of ~/f"), ("changed", "fixed mode of ~/d")]
    assert oct((tmp_path / "home/f").stat().st_mode & 0o777) == "0o600"


def test_a_line_must_be_a_whole_line_not_a_substring(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# export EDITOR=vim\nexport EDITOR=vimx")
    markers, _ = run_batch(tmp_path, [("line", {"line": "export EDITOR=vim", "path": "~/.bashrc"})])
    assert markers[0].status == "changed"
    assert (home / ".bashrc").read_text() == "# export EDITOR=vim\nexport EDITOR=vimx\nexport EDITOR=vim\n"
    (home / ".bashrc").write_text("export EDITOR=vim")  # the last line without its newline still counts
    markers, _ = run_batch(tmp_path, [("line", {"line": "export EDITOR=vim", "path": "~/.bashrc"})])
    assert (markers[0].status, markers[0].reason) == ("ok", "~/.bashrc already has this line")


def test_a_probe_is_never_stale_after_an_earlier_step_changed_the_path(tmp_path):
    steps = [("template", {"template": "t", "dest": "~/f"}), ("line", {"line": "keep", "path": "~/l"}), ("dir", {"dir": "~/d"})]
    run_batch(tmp_path, steps, templates={"t": "x\n"})
    # the same paths, but a command earlier in the batch breaks each of them first
    breaking = [("run", {"run": "echo other > ~/f; echo other > ~/l; rmdir ~/d"}), *steps]
    markers, _ = run_batch(tmp_path, breaking, templates={"t": "x\n"})
    assert [m.status for m in markers] == ["changed", "changed", "changed", "changed"]
    assert (tmp_path / "home/f").read_text() == "x\n" and (tmp_path / "home/d").is_dir()
    # a file step that changed its path: the next step on that path sees the new state
    (tmp_path / "home/f").write_text("old\n")
    markers, _ = run_batch(
        tmp_path,
        [("template", {"template": "t", "dest": "~/f"}), ("template", {"template": "u", "dest": "~/f"})],
        templates={"t": "x\n", "u": "x\n"},
    )
    assert [(m.status, m.reason) for m in markers] == [
        ("changed", "updated content of ~/f"),
        ("ok", "~/f already has this content"),
    ]


def test_check_mode_on_a_no_op_reports_ok_and_on_a_change_shows_the_diff(tmp_path):
    steps = [("template", {"template": "t", "dest": "~/f"})]
    run_batch(tmp_path, steps, templates={"t": "x\n"})
    markers, _ = run_batch(tmp_path, steps, templates={"t": "x\n"}, check=True)
    assert markers[0].status == "ok"
    markers, _ = run_batch(tmp_path, steps, templates={"t": "y\n"}, check=True)
    assert (markers[0].status, markers[0].reason) == ("changed", "would update content of ~/f")
    assert "-x\n+y" in markers[0].diff and (tmp_path / "home/f").read_text() == "x\n"


def test_reasons_with_colons_percents_and_newlines_survive_the_marker(tmp_path):
    markers, _ = run_batch(tmp_path, [("dir", {"dir": "~/a:b%25c\nd"})])
    assert markers[0].reason == "created ~/a:b%25c\nd"
    markers, _ = run_batch(tmp_path, [("dir", {"dir": "~/a:b%25c\nd"})])
    assert markers[0].reason == "~/a:b%25c\nd already exists"


@pytest.mark.parametrize("data", [b"", b"plain", b'it\'s \\ "q" $x\n', "é\u2028".encode(), b"\x01\x7f\xff\r\t"])
def test_ansi_c_words_give_bash_the_same_bytes(data):
    out = subprocess.run(["bash", "-c", f"printf %s {ansi_c(data)}"], capture_output=True).stdout
    assert out == data


def test_hosts_share_compiled_values_but_render_with_their_own_vars():
    from concurrent.futures import ThreadPoolExecutor

    from ec2kit.recipe import render
    from ec2kit.recipe.model import Step

    step = Step("run", {"run": "echo {{ name }}-{{ n * 2 }}"}, "r")
    before = len(render._compiled)
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda i: render.render_value(step.args["run"], {"name": f"h{i}", "n": i}, step, "run"), range(8)))
    assert out == [f"echo h{i}-{i * 2}" for i in range(8)]
    assert len(render._compiled) == before + 1


def test_an_owner_that_already_matches_needs_no_program_but_stat(tmp_path):
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    steps = [
        ("dir", {"dir": "~/d", "owner": f"{me}:{me}", "mode": "0700"}),
        ("template", {"template": "t", "dest": "~/d/f", "owner": me}),
    ]
    run_batch(tmp_path, steps, templates={"t": "x\n"})
    markers, programs = run_batch(tmp_path, steps, templates={"t": "x\n"})
    assert [m.status for m in markers] == ["ok", "ok"] and programs == ["stat"]


@pytest.mark.skipif(os.geteuid() != 0, reason="as root a sudo step's quick check is the shell's own (else: test_recipe_sudo)")
def test_as_root_sudo_steps_and_a_regexp_line_start_only_stat_on_a_no_op_pass(tmp_path):
    steps, templates = _twenty_like(tmp_path)
    del steps[3]  # the binary copy: its full step compares
    steps.append(("line", {"line": "HISTSIZE=10000", "path": "~/.bashrc", "regexp": "^HISTSIZE="}))
    steps = [(kind, {**args, "sudo": True}) for kind, args in steps]
    first, _ = run_batch(tmp_path, steps, templates=templates)
    assert [m.status for m in first] == ["changed"] * 7
    (tmp_path / "home/.bashrc").write_text((tmp_path / "home/.bashrc").read_text() + "HISTSIZE=5\n")
    again, _ = run_batch(tmp_path, steps, templates=templates)
    # the exact line is there but a later line matches the regexp (and would win): rewritten (issue 19 item 12)
    assert [m.status for m in again] == ["ok"] * 5 + ["skipped", "changed"]
    assert (tmp_path / "home/.bashrc").read_text().endswith("HISTSIZE=10000\nHISTSIZE=10000\n")
    third, programs = run_batch(tmp_path, steps, templates=templates)
    assert [m.status for m in third] == ["ok"] * 5 + ["skipped", "ok"] and programs == ["stat"]
