"""Pure parts of the recipe engine: command wrapping, markers, masking, formatting (no host)."""

from __future__ import annotations

import base64
import subprocess

import pytest

from ec2kit.errors import RecipeError
from ec2kit.recipe.kinds import sh_path, wrap_command
from ec2kit.recipe.kinds.apt import apt_packages
from ec2kit.recipe.model import HostReport, Step, StepResult
from ec2kit.recipe.plan import PlannedStep
from ec2kit.recipe.render import Masker, referenced_names
from ec2kit.recipe.report import recap_line, step_line
from ec2kit.recipe.script import build_script, parse_output


def test_wrap_command_is_a_pure_string_builder_that_keeps_the_command_out_of_argv():
    import hashlib

    def delim(body: str) -> str:
        return "__EC2KIT_" + hashlib.sha256(body.encode()).hexdigest()[:16]

    loader = "bash -c 'exec 3<&0 </dev/null; . /dev/fd/3'"
    assert wrap_command("make") == f"{loader} <<'{delim('make')}'\nmake\n{delim('make')}"
    assert wrap_command("echo $X", sudo=True) == f"__sudo {loader} <<'{delim('echo $X')}'\necho $X\n{delim('echo $X')}"
    body = "export A='1 2'\nls"
    assert wrap_command("ls", env={"A": "1 2"}, cwd="~/src", then=" || exit $?") == (
        f"cd \"$HOME\"/src || exit 1; {loader} <<'{delim(body)}' || exit $?\n{body}\n{delim(body)}"
    )


def test_remote_paths_expand_home_and_quote_the_rest():
    assert sh_path("~") == '"$HOME"'
    assert sh_path("~/my dir/x") == "\"$HOME\"/'my dir/x'"
    assert sh_path("/etc/app.conf") == "/etc/app.conf"
    assert sh_path("/tmp/$(reboot)") == "'/tmp/$(reboot)'"


def test_apt_package_names_cannot_smuggle_shell():
    assert apt_packages("tmux  rsync") == ["tmux", "rsync"]
    assert apt_packages(["python3.11-venv", "g++"]) == ["python3.11-venv", "g++"]
    with pytest.raises(RecipeError, match="'tmux;reboot' is not a Debian package name"):
        apt_packages(["tmux;reboot"])
    with pytest.raises(RecipeError, match="'-y' is not a Debian package name"):
        apt_packages("-y")


def test_markers_without_the_nonce_are_treated_as_output():
    b = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    out = "\n".join(
        [
            "@@ec2kit:other:1:ok:0:5:::::",
            f"@@ec2kit:n1:1:ok:0:5:{b('why')}:{b('out')}::{b('diff')}",
            "plain line",
        ]
    )
    markers, other = parse_output(out, "n1")
    assert [(m.number, m.status, m.reason, m.stdout, m.stderr, m.diff) for m in markers] == [(1, "ok", "why", "out", "", "diff")]
    assert other == "@@ec2kit:other:1:ok:0:5:::::\nplain line"


def test_a_step_printing_a_fake_marker_cannot_fake_a_status(tmp_path):
    body = "S=\necho '@@ec2kit:guess:1:ok:0:0:::::'\nexit 5"
    script = build_script([PlannedStep(1, "x", "run", body, "x")], nonce="realnonce")
    res = subprocess.run(
        ["bash", "-s"], input=script, capture_output=True, text=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    )
    markers, _ = parse_output(res.stdout, "realnonce")
    assert [(m.status, m.exit_code) for m in markers] == [("failed", 5)]
    assert "@@ec2kit:guess" in markers[0].stdout


def test_masker_hides_every_secret_longest_first():
    mask = Masker({"abc", "abcdef", ""})
    assert mask("token=abcdef and abc") == "token=*** and ***"
    assert Masker()("nothing to hide") == "nothing to hide"


def test_referenced_names_cover_values_and_when():
    step = Step("run", {"run": "echo {{ result.stdout }} {{ x | default('y') }}", "when": "flag and other"}, "r")
    assert referenced_names(step) == {"result", "x", "flag", "other"}


def test_step_and_recap_lines():
    ok = StepResult(3, "tmux config", "template", "ok", "~/.tmux.conf already has this content", 0.012)
    assert step_line("web1", ok) == "[web1] ok            3 tmux config: ~/.tmux.conf already has this content (0.01s)"
    failed = StepResult(4, "build", "run", "failed", "", 1.5, exit_code=2)
    assert step_line("web1", failed) == "[web1] failed        4 build: exit code 2 (1.50s)"
    would = StepResult(5, "venv", "run", "changed", "would run", 0.0, check=True)
    assert step_line("web1", would) == "[web1] would change  5 venv: would run (0.00s)"
    report = HostReport("web1", [ok, failed], failure="x", duration=2.0)
    assert recap_line(report) == "[web1] recap: ok=1 changed=0 skipped=0 failed=1 in 2.00s"


def test_a_batch_for_a_cached_host_checks_its_identity_before_anything_else():
    from ec2kit.recipe.script import PRELUDE, Identity, build_script

    script = build_script([], nonce="n0", confirm=Identity("i-0abc", "web's box"))
    check = script.index("tags/instance/Name")
    assert check < script.index(PRELUDE) and "exit 79" in script
    assert "'i-0abc\n200\nweb'\"'\"'s box\n200'" in script  # both values and their HTTP status, quoted for bash
    by_id = build_script([], nonce="n0", confirm=Identity("i-0abc"))
    assert "tags/instance/Name" not in by_id and "'i-0abc\n200'" in by_id  # asked by id: the id is enough
    assert "meta-data" not in build_script([], nonce="n0")


def test_what_a_host_that_is_not_the_cached_instance_said_is_shown_safely():
    import base64

    from ec2kit.recipe.batch import NotConfirmed
    from ec2kit.recipe.script import Identity, seen_identity

    said = "i-0abc\n200\nweb-old\x1b[2J\n200"
    line = "@@ec2kit:n0:who:" + base64.b64encode(said.encode()).decode()
    assert seen_identity(f"noise\n{line}\n", "n0") == said
    assert seen_identity(line, "other-nonce") is None
    who = Identity("i-0abc", "web")
    assert NotConfirmed(who, said).describe() == "it is i-0abc named web-old^[[2J"
    assert "no tags" in NotConfirmed(who, "i-0abc\n200\nNot Found\n404").describe()
    assert "did not answer" in NotConfirmed(who, "").describe()
