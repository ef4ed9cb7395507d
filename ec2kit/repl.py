"""``inv repl``: IPython with ``ec2`` ready, instance names tab-completed, ec2kit errors shown as one paragraph.

IPython is the optional extra ``ec2kit[repl]``. In a notebook, ``%load_ext ec2kit.repl`` gives the
same short error messages (no traceback for an ec2kit error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, Ec2kitError

if TYPE_CHECKING:
    from .api import EC2

INSTALL = "pip install 'ec2kit[repl]'"


def require_ipython() -> Any:
    """The IPython package, or a ConfigError that says how to install it."""
    try:
        import IPython
    except ImportError:
        raise ConfigError(
            "The ec2kit REPL runs in IPython, which is not installed in this environment "
            f"(Python at {_python()}). Install it with {INSTALL} (or pip install ipython), then run `ec2kit repl` "
            "(`inv repl` in a checkout) again; `from ec2kit import EC2` works in any Python shell without it."
        ) from None
    return IPython


def _python() -> str:
    import sys

    return sys.executable


def banner(ec2: EC2) -> str:
    """What the REPL says first: where it points and what to type."""
    return (
        f"ec2kit REPL: `ec2` is {ec2!r}.\n"
        "  ec2.instances()   ec2.i.<TAB> / ec2['<TAB>   ec2.launch('gpu1', type='g5.xlarge', spot=True)\n"
        "  inst.ssh().run('nvidia-smi')   ec2.spot_run('train.sh')   ec2.runs()   help(ec2)\n"
    )


def show_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
    """IPython custom-exception handler: an ec2kit error as one paragraph, no traceback (EC2KIT_DEBUG=1 shows it)."""
    from .settings import debug_enabled

    if debug_enabled():
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return
    print(f"ec2kit: {value}")


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext ec2kit.repl``: show ec2kit errors as one paragraph instead of a traceback."""
    shell.set_custom_exc((Ec2kitError,), show_error)


def start(ec2: EC2, *, argv: list[str] | None = None) -> None:
    """Start an IPython shell with ``ec2`` (and ``EC2``) in its namespace; returns when it exits."""
    ipython = require_ipython()
    from traitlets.config import Config

    from .api import EC2

    config = Config()
    config.TerminalInteractiveShell.banner2 = banner(ec2)
    config.InteractiveShellApp.extensions = ["ec2kit.repl"]
    ipython.start_ipython(argv=list(argv or []), user_ns={"ec2": ec2, "EC2": EC2}, config=config)
