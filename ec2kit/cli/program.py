"""The ``ec2kit`` program: Invoke's Program with ec2kit's help, usage errors and completion.

``ec2kit`` / ``ec2kit --help`` lists ec2kit's commands by group, one line each; Invoke's own
options are under ``--help-all``. ``-h``/``--help`` anywhere on a command line shows that
command's help and runs nothing. A missing argument prints the command's usage line. ``inv`` in a
checkout (or a project made by ``ec2kit init``) loads the same tasks through ``tasks.py``.
"""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from typing import Any

from invoke import Program
from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument

from ..ui import name_program

GROUPS: list[tuple[str, list[str]]] = [
    (
        "Machines",
        [
            "launch",
            "instances",
            "autostop",
            "start",
            "stop",
            "terminate",
            "change-type",
            "connect",
            "jupyter",
            "sync",
            "ssh-config",
            "access",
            "forget-host",
        ],
    ),
    ("Set-up", ["provision", "recipe", "recipes", "freeze", "init", "config"]),
    (
        "Storage",
        [
            "volumes",
            "make-volume",
            "mount-volume",
            "detach-volume",
            "delete-volume",
            "snapshot",
            "snapshots",
            "delete-snapshot",
            "images",
            "delete-image",
        ],
    ),
    ("Spot runs", ["spot-run", "exec", "runs", "logs", "plot", "pull", "attach", "stop-run", "cleanup"]),
    ("Sweeps", ["sweep", "sweeps", "sweep-status"]),
    ("Prices and regions", ["costs", "prices", "gpus", "region"]),
    ("Try it locally", ["demo", "sandbox.up", "sandbox.down", "sandbox.status", "sandbox.interrupt", "repl"]),
]
KEEP_SHORT = {"help": "h", "version": "V"}  # Invoke's core options that keep a letter under `ec2kit`


class Ec2kitProgram(Program):
    """``ec2kit``: ec2kit's tasks first, Invoke's machinery out of the way."""

    def core_args(self) -> list[Argument]:
        """Invoke's core options with no letters but -h and -V, plus --help-all."""
        args = super().core_args()
        for arg in args:
            letter = KEEP_SHORT.get(arg.name or "")
            arg.names = (arg.names[0], letter) if letter else tuple(n for n in arg.names if len(n) > 1)
        args.append(Argument(names=("help-all",), kind=bool, default=False, help="Show Invoke's own core options too."))
        return args

    def normalize_argv(self, argv: Any) -> None:
        """``-h``/``--help`` anywhere before ``--`` means the help of the command given (never a run)."""
        super().normalize_argv(argv)
        words = self.argv[1:]
        if words[:1] == ["--print-completion-script"] or words[:1] == ["--print-completion-script=bash"]:
            from .completion import BASH_SCRIPT

            print(BASH_SCRIPT.format(binary=self.binary, func=self.binary.replace("-", "_")), end="")
            raise Exit
        head = words[: words.index("--")] if "--" in words else words
        if not {"-h", "--help"} & set(head):
            return
        from .registry import namespace

        ns = namespace()

        named = [w for w in head if w in ns.task_names or any(w in aliases for aliases in ns.task_names.values())]
        self.argv = [self.argv[0], "--help", *named[:1]]

    def parse_tasks(self) -> None:
        """Invoke's parse, with the command's usage line added to an argument error."""
        try:
            super().parse_tasks()
        except ParseError as err:
            context = getattr(err, "context", None)
            if context is None or not context.name:
                raise Exit(name_program(f"ec2kit: {err} `inv --help` lists the commands."), code=2) from None
            missing = [a.name for a in context.missing_positional_args]
            what = f"{context.name} needs {' '.join(n.upper() for n in missing)}." if missing else f"{err}"
            raise Exit(
                name_program(f"ec2kit: {what} `inv {context.name} --help` shows every option.\n") + self.usage_line(context.name),
                code=2,
            ) from None

    def parse_cleanup(self) -> None:
        """``--help-all`` prints Invoke's own help too; otherwise as Invoke does."""
        if self.args["help-all"].value:
            super().print_help()
            raise Exit
        if self.args.complete.value:
            self.complete()
        super().parse_cleanup()

    def complete(self) -> None:
        """``--complete -- WORDS``: one candidate per line (commands, options, or names this machine knows)."""
        from ..settings import Settings
        from .completion import candidates

        contexts = {c.name: c for c in self._make_parser().contexts.values() if c.name}
        core = sorted(self.initial_context.flag_names())
        home = Settings.from_env().home
        for word in candidates(self.core.remainder, contexts, core, home):
            print(word)
        raise Exit

    def usage_line(self, name: str) -> str:
        """``Usage: ec2kit launch [options] NAME``."""
        ctx = self._make_parser().contexts[name]
        positional = " ".join(a.name.upper() for a in ctx.positional_args if a.name)
        options = " [options]" if ctx.flags else ""
        return f"Usage: {self.binary} {name}{options}{' ' + positional if positional else ''}"

    def print_task_help(self, name: str) -> None:
        """Invoke's task help, with ec2kit's usage line and hints naming this program."""
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            super().print_task_help(name)
        lines = [line for line in buffer.getvalue().splitlines()[1:] if line != "Docstring:"]
        print(name_program("\n".join([self.usage_line(name), *lines])))

    def print_help(self) -> None:
        """The commands by group, one line each; then the short flags and where the rest is."""
        from .registry import namespace

        ns = namespace()
        from .flags import short_flag_rows

        width = shutil.get_terminal_size((100, 24)).columns
        print(f"Usage: {self.binary} COMMAND [options] [ARGS]    ({self.binary} COMMAND --help: one command's options)")
        listed = set()
        rows: list[tuple[str, list[str]]] = [(title, [n for n in names if n in ns.task_names]) for title, names in GROUPS]
        for _title, names in rows:
            listed.update(names)
        rest = sorted(n for n in ns.task_names if n not in listed)
        if rest:
            rows.append(("More", rest))
        pad = max(len(n) for n in ns.task_names) + 2
        for title, names in rows:
            if not names:
                continue
            print(f"\n{title}:")
            for n in names:
                print(_cut(f"  {n.ljust(pad)}{first_line(ns[n].__doc__ or '')}", width))
        line = "\nShort flags (one meaning in every command):"
        for short, long in short_flag_rows():  # wrapped between flags, never inside "-r --region"
            item = f" {short} {long},"
            if len(line.rsplit("\n", 1)[-1]) + len(item) > max(40, width):
                line += "\n" + " " * 1
            line += item
        print(line.rstrip(","))
        print(f"Invoke's own options: {self.binary} --help-all")
        print(f'Tab completion: eval "$({self.binary} --print-completion-script bash)"')

    def print_columns(self, tuples: Any) -> None:
        """Invoke's option columns, with hints naming this program."""
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            super().print_columns(tuples)
        print(name_program(buffer.getvalue()), end="")


def first_line(doc: str) -> str:
    """A docstring's first line (its summary)."""
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    return name_program(line.split(" Example: ")[0])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
