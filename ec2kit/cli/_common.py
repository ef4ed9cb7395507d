"""The one decorator every ec2kit task goes through.

``@command(...)`` turns ``def fn(ctx: Context, ...)`` into an Invoke task that
takes the same arguments plus ``--profile`` and ``--region``, builds the
:class:`~ec2kit.context.Context`, and turns every expected failure into a
one-paragraph message and a non-zero exit — never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from invoke import task
from invoke.exceptions import Exit

from ..errors import Ec2kitError

AWS_HELP = {
    "profile": "AWS profile from ~/.aws/config (default: the standard credential chain)",
    "region": "AWS region code, or part of its name: 'Ohio' → us-east-2",
}


WIDE_HELP = "show every column whole (the table is cut to the terminal's width otherwise)"


def shown(text: object) -> str:
    """A line built from names and tags, safe to hand to rich (``[/]h3`` is text, control characters shown)."""
    from ..untrusted import markup_safe

    return markup_safe(text, one_line=True)


def fail(message: str, code: int = 1) -> Exit:
    """An Invoke Exit that prints ``message`` (one paragraph, naming the program the user ran) on stderr."""
    from ..ui import name_program

    return Exit(message=name_program(f"ec2kit: {message}"), code=code)


def confirm(question: str, *, yes: bool, refusal: str) -> bool:
    """Whether to go on with something destructive: ``--yes``, or y at the ``question [y/N]`` prompt.

    With no terminal to ask on and no ``--yes`` it raises ``fail(refusal)`` (exit 1): nothing is done.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        raise fail(refusal)
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # Ctrl-D is a no
        print()
        return False


def translate(err: BaseException) -> Exit | None:
    """Map an exception to a user-facing Exit, or None to let it propagate."""
    if isinstance(err, Exit):
        return err
    if isinstance(err, Ec2kitError):
        return fail(str(err), err.exit_code)
    if isinstance(err, KeyboardInterrupt):
        return fail("interrupted.", 130)
    if isinstance(err, BrokenPipeError):  # `inv runs --json | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit(code=141)
    bex = sys.modules.get("botocore.exceptions")  # loaded only if an AWS call was made
    if bex is not None and isinstance(err, (bex.ClientError, bex.BotoCoreError)):
        from ..aws.errors import translate_client_error

        translated = translate_client_error(err, action="the last AWS call")
        if translated is not None:
            return fail(str(translated))
    from ..settings import debug_enabled

    if debug_enabled():
        return None
    if isinstance(err, (MemoryError, RecursionError)):
        return fail(too_big(err))
    return fail(
        f"unexpected {type(err).__name__}: {err}. This is a bug in ec2kit; "
        "run again with EC2KIT_DEBUG=1 to see the traceback and please report it."
    )


def too_big(err: MemoryError | RecursionError) -> str:
    """What ran out of memory or nested too deeply, by the file being read when it happened (the innermost frame
    holding a ``path``/``file``-like local that names an existing file) and the ec2kit line running."""
    import os
    import traceback

    what = "needed more memory than this machine has" if isinstance(err, MemoryError) else "nested too deeply"
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frames = traceback.extract_tb(err.__traceback__) if err.__traceback__ else []
    ours = [f for f in frames if os.path.abspath(f.filename).startswith(package)]
    where = f" (in {os.path.relpath(ours[-1].filename, package)}:{ours[-1].lineno})" if ours else ""
    reading = None
    tb = err.__traceback__
    while tb is not None:
        for key in ("path", "file", "source", "filename"):
            value = tb.tb_frame.f_locals.get(key)
            if isinstance(value, (str, os.PathLike)) and str(value) and os.path.isfile(value):
                reading = os.fspath(value)
        tb = tb.tb_next
    if reading:
        return (
            f"reading {reading} {what}{where}. The file is larger or more deeply nested than ec2kit can take: "
            "make it smaller or flatter (split it, or keep what the command needs)."
        )
    return (
        f"the command {what}{where}: an input (a file, a tag, a listing) is too large or too deeply nested. "
        "Make it smaller or flatter; EC2KIT_DEBUG=1 shows the traceback."
    )


def command(*, help: dict[str, str] | None = None, aws: bool = True, rest: str | None = None, **task_kwargs: Any) -> Callable:
    """Declare an ec2kit task. The body receives an ec2kit Context instead of Invoke's.

    Short flags come from :data:`ec2kit.cli.flags.SHORT_FLAGS` only (never Invoke's automatic
    letters); ``-h`` is help. Words after a bare ``--`` go to the parameter named by ``rest``
    (``connect NAME -- CMD``); a command without one refuses them rather than ignore them.
    """
    from .flags import with_table_flags

    def decorate(body: Callable) -> Any:
        sig = inspect.signature(body)
        params = list(sig.parameters.values())[1:]
        extra = []
        if aws:
            extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in ("profile", "region")]
        invoke_sig = sig.replace(parameters=[inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params, *extra])

        @functools.wraps(body)
        def wrapper(c: Any, *args: Any, profile: str | None = None, region: str | None = None, **kwargs: Any) -> Any:
            ctx = None
            if any(v in HELP_WORDS for v in (*args, *kwargs.values()) if isinstance(v, str)):
                return show_help(full_name(made))  # Invoke gave `--help` to a positional argument (`inv launch --help`)
            try:
                kwargs = take_rest(made.name, rest, kwargs)
                kwargs = coerce_numbers(body, kwargs)
                ctx = make_context(profile, region)
                return body(ctx, *args, **kwargs)
            except BaseException as err:  # noqa: BLE001 - the one place errors become messages
                if isinstance(err, SystemExit):
                    raise
                exit_ = translate(err)
                if exit_ is None:
                    raise
                raise exit_ from None
            finally:
                if ctx is not None:
                    ctx.close()
                from .fastexit import arm

                arm()

        wrapper.__signature__ = invoke_sig  # type: ignore[attr-defined]
        del wrapper.__wrapped__  # Invoke must see the new signature, not the body's
        all_help = {**(AWS_HELP if aws else {}), **(help or {})}
        made = task(help=all_help, **{**task_kwargs, "auto_shortflags": False})(wrapper)
        made.get_arguments = with_table_flags(made)
        return made

    return decorate


HELP_WORDS = ("--help", "-h")


def full_name(made: Any) -> str:
    """The name a task is called by, with its collection (``sandbox.interrupt``, not ``interrupt``)."""
    from .registry import namespace

    ns = namespace()
    return next((name for name in ns.task_names if ns[name] is made), made.name)


def show_help(task_name: str) -> None:
    """Print a task's help as `ec2kit TASK --help` does (for `inv TASK --help`, which Invoke parses as a value)."""
    from ..ui import program
    from .program import Ec2kitProgram

    name = program()
    Ec2kitProgram(name=name, binary=name).run([name, "--help", task_name], exit=False)


def words_after_dashes() -> list[str] | None:
    """The words after a bare ``--`` on this process's command line (None without one, or outside the CLI)."""
    from .fastexit import is_cli

    argv = sys.argv
    if not is_cli() or "--" not in argv[1:]:
        return None
    return argv[argv.index("--", 1) + 1 :]


def take_rest(task_name: str, rest: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Hand the words after ``--`` to the ``rest`` parameter, or refuse them (``launch odf -- --spot``)."""
    from ..errors import ConfigError
    from ..ui import program

    words = words_after_dashes()
    if not words:
        return kwargs
    shown = " ".join(words)
    if rest is None:
        raise ConfigError(
            f"{task_name} takes nothing after `--`, but got {shown!r}: it would be ignored.",
            hint=f"Put options before `--` (e.g. `{program()} {task_name} ... {words[0]}`), or drop `--`.",
        )
    if kwargs.get(rest):
        flag = "--" + rest.replace("_", "-")
        raise ConfigError(f"{task_name}: give the command either with {flag} or after `--`, not both (got {shown!r}).")
    return {**kwargs, rest: shown}


def coerce_numbers(body: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Invoke passes optional numeric flags as text: convert them by the body's annotations."""
    from ..errors import ConfigError

    annotations = getattr(body, "__annotations__", {})
    out = dict(kwargs)
    for key, value in kwargs.items():
        hint = str(annotations.get(key, ""))
        if not isinstance(value, str) or not value:
            continue
        for name, convert in (("int", int), ("float", float)):
            if hint.startswith(name):
                try:
                    out[key] = convert(value)
                except ValueError:
                    flag = "--" + key.replace("_", "-")
                    raise ConfigError(f"{flag} expects a number, got {value!r}.") from None
                break
    return out


def make_context(profile: str | None, region: str | None):
    """Build the Context for one command from the environment and the global flags."""
    from ..context import Context
    from ..settings import Settings

    if region:
        from ..aws.regions import find_region

        region = find_region(region)
    return Context(Settings.from_env(profile=profile, region=region))


GPU_HELP = {
    "gpus": "MODEL[,MODEL…][:COUNT], e.g. A10G, L4:1, A10G,L4, A100:8: launch the cheapest type with exactly COUNT "
    "(default 1) of those GPUs (with spot: every type that fits is a pool); instead of --type; `inv gpus` lists them",
    "gpu_memory": "at least this much memory per GPU, e.g. 24GB (GB as AWS sizes GPUs; also GiB, MB); alone it picks "
    "among 1-GPU types",
}

NETWORK_HELP = {
    "subnet": "subnet id or Name tag to launch into (default: `subnet` in ec2kit.toml, else the default VPC); "
    "ec2kit's security group is made in its VPC",
    "security_group": "extra security group, id or name (repeatable or comma-separated; default: `security_groups` in ec2kit.toml)",
    "instance_profile": "IAM instance profile NAME for the instance (default: `instance_profile` in ec2kit.toml)",
    "open_ssh": "allow SSH from anywhere (0.0.0.0/0) instead of only your public IP (prints a warning)",
}


def split_list(value: str | None) -> list[str]:
    """'a,b, c' → ['a', 'b', 'c']."""
    from ..api.options import split_list as split

    return split(value)


def split_pair(pair: str, flag: str, example: str) -> tuple[str, str]:
    """``'k=v'`` → ``('k', 'v')``, or a ConfigError naming ``flag`` with an ``example``."""
    from ..errors import ConfigError

    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag} {pair!r} is not KEY=VALUE.", hint=f"Example: {example}.")
    return key.strip(), value


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    """['role=web', 'team=ml'] → {'role': 'web', 'team': 'ml'} (reserved keys are refused by the launch itself)."""
    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, value = split_pair(pair, "--tag", "--tag role=web (repeat --tag for more)")
        tags[key] = value.strip()
    return tags


def domain(ctx: Any) -> Any:
    """The one domain layer (:class:`ec2kit.api.EC2`) over this command's Context; errors name --flags."""
    from ..api import EC2

    return EC2(context=ctx, cli=True)
