"""Run ec2kit's command line on a real pseudo-terminal of a given size (no COLUMNS override)."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_on_terminal(
    argv: list[str], *, columns: int, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> tuple[int, list[str]]:
    """Run ``argv`` with stdin/stdout/stderr on a pty ``columns`` wide; (exit code, lines without ANSI codes)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    clean = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=clean, cwd=cwd or ROOT, start_new_session=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=timeout)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, [line.rstrip("\r") for line in text.split("\n")]


def inv_argv(*args: str) -> list[str]:
    """``inv ARGS`` in this checkout, as tests/cli_helpers.run_inv runs it."""
    return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]


def answer_on_terminal(
    argv: list[str], *, prompt: str, answer: str, env: dict[str, str], columns: int = 120, timeout: float = 120
) -> tuple[int, list[str], bool]:
    """Run ``argv`` on a pty; when ``prompt`` appears, type ``answer`` and Enter.

    Returns (exit code, lines without ANSI codes, whether the prompt was seen).
    """
    import select
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    clean = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=clean, cwd=ROOT, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    asked = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        if not asked and prompt in ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")):
            os.write(master, answer.encode() + b"\n")
            asked = True
    os.close(master)
    code = proc.wait(timeout=30)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, [line.rstrip("\r") for line in text.split("\n")], asked
