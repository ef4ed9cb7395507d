"""One domain, two faces: every command-line task has its ``EC2`` method, with the same options.

The tasks are read from Invoke's ``ns`` collection, the methods from ``ec2kit.api.EC2`` by
introspection; nothing runs. A new task, or a flag added to one face only, fails here until the
other face has it too (or the tables below say why not).
"""

from __future__ import annotations

import inspect

import pytest

from ec2kit.api import EC2, Recipe
from ec2kit.cli import ns

# Every task's method is EC2.<task name with - as _> unless named here (with the reason).
METHOD = {
    "make-volume": ("create_volume", "the Python verb reads as English: ec2.create_volume(inst, 20)"),
    "connect": ("ssh_command", "Python cannot hand its terminal to ssh: it gets the ssh argv to run"),
    "attach": ("attach_command", "as connect: the ssh argv that attaches to the run's tmux session"),
    "recipe": ("recipe", "ec2.recipe(NAME) loads it; its options are Recipe.run's (checked below)"),
}

# Tasks with no EC2 method, each for a reason.
NO_METHOD = {
    "repl": "it starts IPython with an EC2 in it: the Python face itself",
    "region": "EC2(region='Ohio') takes a region's name directly (ec2kit.aws.regions.find_region)",
    "sandbox.up": "the local cloud's daemon, not EC2: ec2kit.sandbox.up(settings)",
    "sandbox.down": "the local cloud's daemon, not EC2: ec2kit.sandbox.down(settings)",
    "sandbox.status": "the local cloud's daemon, not EC2: ec2kit.sandbox.status(settings)",
    "sandbox.interrupt": "a sandbox knob, not EC2: ec2kit.sandbox.interrupt(settings, instance_id)",
}

# Flags every task may have that are not options of the domain: where to connect, how to print.
EVERY_TASK = {
    "profile": "EC2(profile=...)",
    "region": "EC2(region=...)",
    "json": "Python returns objects, not JSON text",
    "wide": "how wide a terminal table is printed; Python returns the objects",
}

# (task, flag) → the API's keyword for it (None: the command line's only), with the reason.
RENAMED: dict[tuple[str, str], tuple[str | None, str]] = {
    ("launch", "tag"): ("tags", "--tag KEY=VALUE (repeatable) is parsed into the tags dict"),
    ("launch", "no_wait"): ("wait", "a flag can only turn a default off: --no-wait is wait=False"),
    ("start", "no_wait"): ("wait", "a flag can only turn a default off: --no-wait is wait=False"),
    ("launch", "security_group"): ("security_groups", "--security-group is repeatable; Python takes a list"),
    ("spot-run", "security_group"): ("security_groups", "--security-group is repeatable; Python takes a list"),
    ("sweep", "security_group"): ("security_groups", "--security-group is repeatable; Python takes a list"),
    ("spot-run", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("exec", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("sweep", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("recipe", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("provision", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("cleanup", "yes"): ("dry_run", "the command lists, then asks (or --yes) before cleanup(dry_run=False)"),
    ("delete-volume", "yes"): ("dry_run", "the command checks (dry_run=True), asks (or --yes), then deletes"),
    ("delete-snapshot", "yes"): ("dry_run", "the command checks (dry_run=True), asks (or --yes), then deletes"),
    ("delete-image", "yes"): ("dry_run", "the command checks (dry_run=True), asks (or --yes), then deletes"),
    ("terminate", "yes"): (None, "the command asks before touching a live run's instance; Python code means it"),
    ("stop", "yes"): (None, "the command asks before touching a live run's instance; Python code means it"),
    ("change-type", "yes"): (None, "the command asks before touching a live run's instance; Python code means it"),
    ("sync", "dir"): ("directory", "--dir is short to type; Python spells the word (dir is a builtin)"),
    ("jupyter", "set"): ("vars", "--set KEY=VALUE (repeatable) is parsed into the vars dict"),
    ("jupyter", "no_browser"): (None, "opening a browser is the terminal's; Python gets the URL"),
    ("plot", "follow"): (None, "redrawing a terminal as metrics grow; Python re-calls run.plot()"),
    ("plot", "interval"): (None, "how often --follow redraws"),
}


def tasks() -> dict[str, object]:
    """Every task of ``ns`` by its command-line name (``sandbox.up`` for sub-collections)."""
    found = {}

    def walk(collection, prefix: str = "") -> None:  # noqa: ANN001
        for name, task in collection.tasks.items():
            found[prefix + name] = task
        for name, sub in collection.collections.items():
            walk(sub, f"{prefix}{name}.")

    walk(ns)
    return found


def api_callable(task_name: str):  # noqa: ANN201
    """The EC2 method (or Recipe.run) a task calls."""
    if task_name == "recipe":
        return Recipe.run
    method = METHOD.get(task_name, (task_name.replace("-", "_"), ""))[0]
    return getattr(EC2, method, None)


def parameters(fn) -> tuple[list[str], dict[str, inspect.Parameter]]:  # noqa: ANN001
    """(required positional parameter names, every parameter) of an API method, without self."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
    return positional, {p.name: p for p in params}


ALL = sorted(tasks())


def test_the_tables_name_only_tasks_and_flags_that_exist():
    found = tasks()
    assert set(METHOD) <= set(found) and set(NO_METHOD) <= set(found)
    for task, flag in RENAMED:
        assert flag in {a.name for a in found[task].get_arguments()}, (task, flag)
    for reason in [*NO_METHOD.values(), *(r for _, r in METHOD.values()), *(r for _, r in RENAMED.values())]:
        assert reason.strip(), "every deliberate difference says why"


@pytest.mark.parametrize("name", ALL)
def test_every_task_has_an_api_method_with_the_same_options(name):
    if name in NO_METHOD:
        pytest.skip(NO_METHOD[name])
    task = tasks()[name]
    fn = api_callable(name)
    assert fn is not None, f"task {name} has no EC2 method: add EC2.{name.replace('-', '_')} (or say why in NO_METHOD)"
    positional, params = parameters(fn)
    arguments = [a for a in task.get_arguments() if a.name not in EVERY_TASK]
    task_positional = [a.name for a in arguments if a.positional]
    if name == "recipe":  # ec2.recipe(NAME) takes the name; Recipe.run takes --on
        task_positional, positional = task_positional[1:], []
    assert len(task_positional) == len(positional), f"{name}: positional {task_positional} vs the API's {positional}"
    missing, differ = [], []
    for arg in arguments:
        if arg.positional:
            continue
        keyword, _ = RENAMED.get((name, arg.name), (arg.name, ""))
        if keyword is None:
            continue
        if keyword not in params:
            missing.append(arg.name)
            continue
        default = params[keyword].default
        same_name = keyword == arg.name
        if same_name and arg.default not in (None, "", False, []) and default != arg.default:
            differ.append(f"{arg.name}: --{arg.name.replace('_', '-')} defaults to {arg.default!r}, the API to {default!r}")
    assert not missing, f"{name}: the API lacks {missing} (add them to {fn.__qualname__}, or say why in RENAMED)"
    assert not differ, f"{name}: {differ}"


def test_a_task_flag_missing_from_the_api_is_caught():
    """The check above can fail: a flag only the command line has is reported by name."""
    from invoke import Argument

    task = tasks()["stop"]
    extra = Argument(name="force", kind=bool, default=False)
    _, params = parameters(api_callable("stop"))
    options = [a.name for a in [*task.get_arguments(), extra] if not a.positional and a.name not in EVERY_TASK]
    renamed = {o: RENAMED.get(("stop", o), (o, ""))[0] for o in options}
    assert [o for o, keyword in renamed.items() if keyword is not None and keyword not in params] == ["force"]


def test_the_builtin_defaults_are_written_once():
    """t3.medium (launch), m5.large (spot-run, sweep) and /mnt/data live in ec2kit/defaults.py; no other module
    uses them as a default (``= "m5.large"``, ``or "m5.large"``)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "ec2kit"
    default = re.compile(r'(=|\bor)\s*"(t3\.medium|m5\.large|/mnt/data)"')
    spelled = {
        str(p.relative_to(root)): default.findall(p.read_text())
        for p in root.rglob("*.py")
        if p.name != "defaults.py" and "sandbox" not in p.parts
    }
    assert {k: v for k, v in spelled.items() if v} == {}
