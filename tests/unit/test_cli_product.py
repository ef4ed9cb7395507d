"""The command line as a product: short flags, help, usage errors, `--`, hints and completion.

Every test runs the command line as a separate process: `inv` in this checkout (run_inv) or the
`ec2kit` console script installed in this venv. None of them starts the sandbox: each asserts
that nothing ran by checking that no sandbox state directory appeared under EC2KIT_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error, run_inv

from ec2kit.cli import ns
from ec2kit.cli.flags import SHORT_FLAGS

EC2KIT = Path(sys.executable).parent / "ec2kit"


def run_ec2kit(
    *args: str, home: Path, cwd: Path | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """The installed `ec2kit` console script, outside the checkout (cwd), on the sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2KIT_", "COLUMNS"))}
    env.update(EC2KIT_HOME=str(home), EC2KIT_SANDBOX="1")
    argv = [sys.executable, *python_flags, str(EC2KIT), *args] if python_flags else [str(EC2KIT), *args]
    return subprocess.run(argv, env=env, cwd=cwd or home, capture_output=True, text=True, timeout=60)


def nothing_ran(home: Path) -> bool:
    """No command touched a cloud: the sandbox was never started under ``home``."""
    return not (home / "sandbox").exists()


def every_argument():
    for name in ns.task_names:
        for argument in ns[name].get_arguments():
            yield name, argument


def test_every_short_flag_comes_from_the_table_and_means_one_option_everywhere():
    seen: dict[str, str] = {}
    for task, argument in every_argument():
        shorts = [n for n in argument.names if len(n) == 1]
        for letter in shorts:
            assert SHORT_FLAGS.get(argument.name) == letter, (task, argument.names)
            assert seen.setdefault(letter, argument.name) == argument.name, (task, letter)
        assert "h" not in argument.names, task
        assert "-" not in argument.names, (task, argument.names)  # Invoke's "--" short flag for on-demand-fallback


def test_the_table_gives_its_letters_to_the_common_options():
    flags = {a.name: a.names for t, a in every_argument() if t == "launch"}
    assert flags["region"] == ("region", "r") and flags["profile"] == ("profile", "p") and flags["json"] == ("json", "j")
    assert flags["type"] == ("type", "t") and flags["on_demand_fallback"] == ("on-demand-fallback",)


def test_help_lists_no_stray_double_dash_flag(tmp_path):
    result = run_inv("--help", "launch", home=tmp_path)
    assert result.code == 0, result
    assert "--, " not in result.out and "--on-demand-fallback" in result.out
    assert "-h STRING" not in result.out and "--hosts" not in result.out


@pytest.mark.parametrize("program", ["ec2kit", "inv"])
def test_dash_h_after_a_command_shows_help_and_runs_nothing(tmp_path, program):
    if program == "ec2kit":
        done = run_ec2kit("provision", "box1", "-h", home=tmp_path)
        code, out = done.returncode, done.stdout
        assert out.startswith("Usage: ec2kit provision [options] HOSTS"), out
    else:
        result = run_inv("provision", "box1", "-h", home=tmp_path)
        code, out = result.code, result.out
        assert "Usage:" in out
    assert code == 0
    assert nothing_ran(tmp_path)


def test_a_missing_argument_prints_the_usage_line_and_fails(tmp_path):
    done = run_ec2kit("connect", home=tmp_path)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "ec2kit: connect needs NAME. `ec2kit connect --help` shows every option.",
        "Usage: ec2kit connect [options] NAME",
    ]
    assert nothing_ran(tmp_path)


@pytest.mark.parametrize("argv", [["launch", "odf", "--", "--spot"], ["instances", "--", "--all"]])
def test_words_after_dashes_are_refused_where_a_command_takes_none(tmp_path, argv):
    result = run_inv(*argv, home=tmp_path)
    assert_clean_error(result, f"{argv[0]} takes nothing after `--`", repr(argv[-1]))
    assert nothing_ran(tmp_path)


def test_connect_refuses_a_command_given_twice(tmp_path):
    result = run_inv("connect", "box1", "--command", "ls", "--", "echo", "hi", home=tmp_path)
    assert_clean_error(result, "either with --command or after `--`", "'echo hi'")
    assert nothing_ran(tmp_path)


def test_ec2kit_help_lists_its_commands_first_and_invokes_options_only_under_help_all(tmp_path):
    for argv in ([], ["--help"], ["-h"]):
        done = run_ec2kit(*argv, home=tmp_path)
        assert done.returncode == 0, done
        lines = done.stdout.splitlines()
        assert lines[0].startswith("Usage: ec2kit COMMAND"), lines[:3]
        assert lines[2] == "Machines:" and lines[3].split()[0] == "launch"
        assert "--prompt-for-sudo-password" not in done.stdout and "--write-pyc" not in done.stdout
        assert "ec2kit --help-all" in done.stdout and "-r --region" in done.stdout
        assert "inv " not in done.stdout
    every = run_ec2kit("--help-all", home=tmp_path)
    assert every.returncode == 0 and "--write-pyc" in every.stdout and "--prompt-for-sudo-password" in every.stdout
    listed = {ln.split()[0] for ln in run_ec2kit(home=tmp_path).stdout.splitlines() if ln.startswith("  ") and ln[2] != "-"}
    assert listed == set(ns.task_names)


def test_hints_name_the_program_the_user_ran(tmp_path):
    ours = run_ec2kit("runs", home=tmp_path)
    assert ours.returncode == 0, ours
    assert "Start one with `ec2kit spot-run --script train.sh`" in ours.stdout
    theirs = run_inv("runs", home=tmp_path)
    assert "Start one with `inv spot-run --script train.sh`" in theirs.out
    helped = run_ec2kit("launch", "--help", home=tmp_path)
    assert "`ec2kit provision role=web`" in helped.stdout and "inv " not in helped.stdout
    failed = run_ec2kit("plot", "no-such-run", home=tmp_path)
    assert failed.returncode != 0 and "inv " not in failed.stderr, failed.stderr


def test_ec2kit_outside_a_checkout_does_not_load_a_local_tasks_file(tmp_path):
    (tmp_path / "tasks.py").write_text("raise SystemExit('tasks.py was imported')\n")
    done = run_ec2kit("region", "Ohio", home=tmp_path, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "us-east-2\n", done


@pytest.fixture
def known(tmp_path):
    """An EC2KIT_HOME that knows two instances (host cache), a run, a sweep; a project with its own recipe."""
    import json

    from ec2kit.runs import RunRecord, Runs
    from ec2kit.settings import Settings
    from ec2kit.sweep.records import SweepRecord, Sweeps

    home = tmp_path / "home"
    home.mkdir()
    entries = {
        f"i-{n}": {"id": f"i-{n}", "name": name, "state": state, "seen": 0, "record": {}}
        for n, (name, state) in enumerate([("web1", "running"), ("gpu-box", "stopped"), ("old", "terminated")])
    }
    (home / "hosts.json").write_text(json.dumps({"version": 1, "scopes": {"sandbox": {"instances": entries}}}))
    Runs(Settings.from_env(home=home).runs_db).create(RunRecord(name="train-0101", state="succeeded"))
    Sweeps(home).create(SweepRecord(name="lr-sweep", state="succeeded"))
    gpus = [
        {"type": "g5.xlarge", "model": "A10G"},
        {"type": "g7.2xlarge", "model": "RTX PRO 4500"},
        {"type": "g6.xlarge", "model": "L4"},
    ]
    (home / "gpu-types.json").write_text(json.dumps({"version": 1, "scopes": {"sandbox:us-east-1": {"at": 0, "types": gpus}}}))
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "recipes" / "gpu-drivers.toml").write_text('description = "mine"\n')
    return home, project


def complete(known, *words: str) -> tuple[list[str], str]:
    """(candidates, import log): `ec2kit --complete -- ec2kit WORDS` under `python -X importtime`."""
    home, project = known
    done = run_ec2kit("--complete", "--", "ec2kit", *words, home=home, cwd=project, python_flags=("-X", "importtime"))
    assert done.returncode == 0, done
    return done.stdout.split(), done.stderr


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["connect", ""], ["gpu-box", "web1"]),
        (["provision", "w"], ["gpu-box", "web1"]),
        (["logs", ""], ["train-0101"]),
        (["pull", ""], ["train-0101", "lr-sweep"]),
        (["sweep-status", ""], ["lr-sweep"]),
        (["provision", "web1", "--recipe", ""], None),
        (["launch", ""], []),
        (["launch", "g1", "--gpus", ""], ["A10G", "L4", "RTX-PRO-4500"]),
        (["gpus", "--model", ""], ["A10G", "L4", "RTX-PRO-4500"]),
    ],
)
def test_completion_offers_names_this_machine_knows_without_importing_boto3(known, words, expected):
    found, imports = complete(known, *words)
    if expected is None:
        assert "gpu-drivers" in found and "base" in found, found
    else:
        assert found == expected
    imported = {line.split("|")[-1].strip() for line in imports.splitlines() if "|" in line}
    assert "ec2kit.cli.completion" in imported
    assert not {m for m in imported if m.split(".")[0] in ("boto3", "botocore", "fabric", "paramiko")}


def test_completion_offers_commands_and_a_commands_options(known):
    found, _ = complete(known, "sweep-st")
    assert "sweep-status" in found and "launch" in found
    flags, _ = complete(known, "runs", "--")
    assert {"--json", "--wide", "--all", "-j", "-w", "--help"} <= set(flags)


def test_bash_completes_an_instance_name_through_the_printed_script(known):
    home, project = known
    script = run_ec2kit("--print-completion-script", "bash", home=home).stdout
    assert "complete -F _complete_ec2kit" in script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2KIT_"))}
    env.update(EC2KIT_HOME=str(home), PATH=f"{EC2KIT.parent}:{env['PATH']}")
    shell = (
        script
        + '\nCOMP_WORDS=(ec2kit connect gp); COMP_CWORD=2; _complete_ec2kit ec2kit gp connect; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "--norc", "-c", shell], env=env, cwd=project, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["gpu-box"], done


def test_the_readme_documents_the_short_flag_table():
    from ec2kit.cli.flags import short_flag_rows

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [
        (line.split("|")[1].strip(" `"), line.split("|")[2].strip(" `"))
        for line in readme.splitlines()
        if line.startswith("  | `-")
    ]
    assert rows == short_flag_rows()


def test_dash_h_shows_help_and_runs_nothing_for_every_command(tmp_path):
    """One process walks every command (`ec2kit TASK WORD -h`), as main() would for each."""
    driver = (
        "import contextlib, io, json, sys\n"
        "from ec2kit.cli import ns\n"
        "from ec2kit.cli.program import Ec2kitProgram\n"
        "from ec2kit.ui import set_program\n"
        "set_program('ec2kit')\n"
        "seen = {}\n"
        "for name in ns.task_names:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        Ec2kitProgram(namespace=ns, name='ec2kit', binary='ec2kit').run(['ec2kit', name, 'box1', '-h'], exit=False)\n"
        "    seen[name] = out.getvalue().splitlines()[0]\n"
        "print(json.dumps(seen))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2KIT_"))}
    env.update(EC2KIT_HOME=str(tmp_path), EC2KIT_SANDBOX="1")
    done = subprocess.run([sys.executable, "-c", driver], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout)
    assert set(seen) == set(ns.task_names)
    assert {n: line for n, line in seen.items() if not line.startswith(f"Usage: ec2kit {n}")} == {}
    assert nothing_ran(tmp_path) and not (tmp_path / "runs.sqlite").exists()


def test_inv_help_given_as_a_value_shows_a_namespaced_commands_own_usage(tmp_path):
    """`inv sandbox.interrupt --help`: Invoke hands --help to INSTANCE; the usage shown is the task's, by its full name."""
    result = run_inv("sandbox.interrupt", "--help", home=tmp_path)
    assert result.code == 0, result
    assert result.out.startswith("Usage: inv sandbox.interrupt [options] INSTANCE"), result.out
    assert nothing_ran(tmp_path)


@pytest.mark.parametrize(("argv0", "expected"), [("inv", [20_000, 20, 20]), ("pytest", None)])
def test_the_command_line_programs_collect_garbage_less_often_and_a_library_user_keeps_pythons_default(argv0, expected):
    import json

    code = (
        f"import gc, json, sys; default = gc.get_threshold(); sys.argv = [{argv0!r}]; import ec2kit.cli; "
        "print(json.dumps([default, gc.get_threshold()]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    default, now = json.loads(done.stdout)
    assert now == (expected or default)
