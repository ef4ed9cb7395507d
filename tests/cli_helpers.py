"""Run ec2kit's command line as a user would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    argv: list[str]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"CliResult(argv={self.argv}, code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def run_inv(
    *args: str,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> CliResult:
    """``inv ARGS`` in the checkout, with ec2kit's state under ``home`` and the sandbox forced on."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full_env.update({"EC2KIT_SANDBOX": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT)})
    if home is not None:
        full_env["EC2KIT_HOME"] = str(home)
    full_env.update(env or {})
    argv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout, input=stdin)
    return CliResult(argv[3:], proc.returncode, proc.stdout, proc.stderr)


def instance_dir(home: Path, name: str) -> Path:
    """The sandbox host directory of running instance NAME (its sshd log, and its home under home/);
    its name is the instance id."""
    import json

    result = run_inv("instances", "--json", home=home)
    assert result.code == 0, result
    [inst] = [i for i in json.loads(result.out) if i["name"] == name and i["state"] == "running"]
    return home / "sandbox" / "hosts" / inst["id"]


def assert_clean_error(result: CliResult, *needles: str) -> None:
    """A failed command printed a message (containing ``needles``) and no traceback."""
    assert result.code != 0, result
    assert "Traceback" not in result.text, result
    for needle in needles:
        assert needle.lower() in result.text.lower(), (needle, result)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def interruptible() -> None:
    """``preexec_fn`` for a process a test will Ctrl-C: SIGINT at its default and unblocked in it, whatever
    the harness runs with (a job started by a non-interactive shell or a service may ignore or block it),
    so the process meets Ctrl-C as it does in a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
