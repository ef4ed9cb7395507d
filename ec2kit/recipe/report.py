"""Showing a recipe run: one line per step as it completes, then a recap per host.

Formatting is pure (``step_line``, ``recap_line``); reporters only decide where
lines go. ``TextReporter`` prints plain text (thread-safe, many hosts at once);
``CollectingReporter`` keeps lines in memory (tests, spot-run).
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol, TextIO

from .kinds import KINDS
from .model import HostReport, RunReport, StepResult


def status_word(result: StepResult) -> str:
    """``ok``, ``changed`` (``would change`` in check mode), ``skipped``, ``failed``."""
    if result.status == "changed" and result.check:
        return "would change"
    return result.status


def step_line(host: str, result: StepResult) -> str:
    """``[web1] ok       3 tmux config: ~/.tmux.conf already has this content (0.01s)``."""
    text = f"[{host}] {status_word(result):<12} {result.number:>2} {result.name}"
    reason = result.reason
    if result.status == "failed":
        reason = f"exit code {result.exit_code}" if result.exit_code is not None else reason or "failed"
    if reason:
        text += f": {reason}"
    return text + f" ({result.duration:.2f}s)"


def detail_lines(result: StepResult, *, diff: bool = False) -> list[str]:
    """What goes under a step line: in check mode the command that would run and the diff; with
    ``diff`` (``--diff``) also the diff of what a real run changed."""
    lines: list[str] = []
    if diff and not result.check and result.status == "changed" and result.diff:
        return ["    " + ln for ln in result.diff.rstrip("\n").splitlines()]
    if result.check and result.status == "changed":
        kind = KINDS.get(result.kind)
        if kind is not None and kind.shows_command and result.command:
            lines += [f"    $ {ln}" for ln in result.command.splitlines()]
        if result.diff:
            lines += ["    " + ln for ln in result.diff.rstrip("\n").splitlines()]
    return lines


def recap_line(report: HostReport) -> str:
    """``[web1] recap: ok=18 changed=2 skipped=0 failed=0 in 1.23s``."""
    counts = " ".join(f"{k}={v}" for k, v in report.recap.items())
    return f"[{report.name}] recap: {counts} in {report.duration:.2f}s" + (
        " (check mode: nothing changed)" if report.check else ""
    )


class Reporter(Protocol):
    """Receives a run's events (possibly from several host threads at once)."""

    def step(self, host: str, result: StepResult) -> None: ...
    def message(self, host: str, text: str) -> None: ...
    def recap(self, report: HostReport) -> None: ...
    def done(self, report: RunReport) -> None: ...


class TextReporter:
    """Plain text to a stream; failures' messages are printed with the recap."""

    def __init__(self, stream: TextIO | None = None, *, show_diff: bool = True, diff: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.show_diff = show_diff
        self.diff = diff  # --diff: show what a real run changed, as check mode shows what it would
        self.wants_diff = diff  # whether hosts compute the diffs of a real run (check mode always does)
        self.lock = threading.Lock()

    def _write(self, lines: list[str]) -> None:
        from ..untrusted import visible

        text = visible("".join(ln + "\n" for ln in lines))  # output and diffs come from the host: never obeyed
        with self.lock:
            self.stream.write(text)
            self.stream.flush()

    def step(self, host: str, result: StepResult) -> None:
        self._write([step_line(host, result), *(detail_lines(result, diff=self.diff) if self.show_diff else [])])

    def message(self, host: str, text: str) -> None:
        self._write([f"[{host}]     {text}"])

    def recap(self, report: HostReport) -> None:
        lines = [recap_line(report)]
        if report.failure:
            lines.append("    " + report.failure.replace("\n", "\n    "))
        self._write(lines)

    def done(self, report: RunReport) -> None:
        self._write([report.summary])


class CollectingReporter(TextReporter):
    """Keeps every line in ``.lines`` (and ``.results`` per host) instead of printing."""

    def __init__(self) -> None:
        import io

        self.buffer = io.StringIO()
        super().__init__(self.buffer)
        self.wants_diff = True  # results keep each change's diff for whoever reads them
        self.results: dict[str, list[StepResult]] = {}

    def step(self, host: str, result: StepResult) -> None:
        with self.lock:
            self.results.setdefault(host, []).append(result)
        super().step(host, result)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()
