"""One host's batch: the shell steps waiting to run in one exec, and turning its markers into results.

:class:`Batch` collects steps (planned ones, and steps decided locally, e.g. ``when`` false,
which keep their place in the order). :class:`BatchRun` runs one batch on a host: markers
streamed back become :class:`StepResult` s, emitted in step order as they arrive; it raises
:class:`StepFailed` for the first failed step or a script that stopped early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RemoteError, StepFailed
from .model import Step, StepResult
from .plan import PlannedStep
from .render import Masker, referenced_names
from .script import COMMAND as SCRIPT_COMMAND
from .script import NOT_CONFIRMED, Identity, Marker, build_script, new_nonce, parse_output, seen_identity

if TYPE_CHECKING:
    from ..ssh import Transport


MAX_SHOWN = 500  # characters of a command or output line shown in a failure message


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass
class Entry:
    """A step waiting in the batch: planned (runs remotely) or already decided locally (``result``)."""

    step: Step
    planned: PlannedStep | None = None
    result: StepResult | None = None
    register: str | None = None


@dataclass
class Batch:
    """Consecutive steps of one host waiting for one exec, and the ``register`` names they will set."""

    entries: list[Entry] = field(default_factory=list)
    registers: set[str] = field(default_factory=set)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if entry.planned is not None and entry.register:
            self.registers.add(entry.register)

    def needs(self, step: Step) -> bool:
        """Whether ``step`` uses a value registered by a step still waiting here (then run those first)."""
        return bool(self.registers) and bool(referenced_names(step) & self.registers)

    def take(self) -> list[Entry]:
        """The waiting entries; the batch is empty afterwards."""
        entries, self.entries, self.registers = self.entries, [], set()
        return entries


class NotConfirmed(Exception):
    """The host is not the instance the host cache said (renamed, replaced): nothing ran on it.

    Not an :class:`~ec2kit.errors.Ec2kitError`: the run catches it, asks AWS and starts over."""

    def __init__(self, identity: Identity, seen: str) -> None:
        super().__init__(f"{identity.name or identity.instance_id}: not confirmed ({seen!r})")
        self.identity, self.seen = identity, seen

    def describe(self) -> str:
        """What the host's metadata said, for the one line the user sees (control characters shown)."""
        from ..untrusted import visible

        lines = self.seen.split("\n")
        pairs = list(zip(lines[0::2], lines[1::2]))  # (value, HTTP status) per value asked
        if not pairs or not all(code.isdigit() for _, code in pairs):
            return "its instance metadata did not answer"
        if any(code != "200" for _, code in pairs[1:]):
            return "its instance metadata shows no tags (enable them: InstanceMetadataTags)"
        said = " named ".join(visible(value, one_line=True)[:100] for value, _ in pairs)
        return f"it is {said}"


def confirm_only(host: Transport, identity: Identity) -> None:
    """Make sure ``host`` is ``identity`` in one exec that runs nothing else; NotConfirmed otherwise."""
    nonce = new_nonce()
    res = host.run(SCRIPT_COMMAND, stdin=build_script([], nonce=nonce, confirm=identity), check=False)
    seen = seen_identity(res.stdout, nonce)
    if res.exit_code == NOT_CONFIRMED and seen is not None:
        raise NotConfirmed(identity, seen)


def register_value(marker: Marker) -> dict[str, Any]:
    """What ``register = "x"`` stores for a shell step."""
    return {
        "stdout": marker.stdout.rstrip("\n"),
        "stderr": marker.stderr.rstrip("\n"),
        "exit_code": marker.exit_code,
        "changed": marker.status == "changed",
        "skipped": marker.status == "skipped",
        "status": marker.status,
    }


class Owner(Protocol):
    """What a batch reports to: the host's run (:class:`ec2kit.recipe.executor.HostRun`)."""

    check: bool
    wants_diff: bool
    label: str
    recipe_name: str
    masker: Masker
    vars: dict[str, Any]

    def emit(self, result: StepResult) -> None: ...
    def result(self, step: Step, status: str, reason: str = "", **kw: Any) -> StepResult: ...


class BatchRun:
    """Runs one batch's entries in one exec on ``host`` and emits every entry's result in order."""

    def __init__(self, owner: Owner, entries: list[Entry], confirm: Identity | None = None) -> None:
        self.owner = owner
        self.entries = entries
        self.confirm = confirm
        self.by_number = {e.step.number: e for e in entries}
        self.position = {e.step.number: i for i, e in enumerate(entries)}
        self.cursor = 0  # entries before it are emitted or planned: each marker resumes here (linear, issue 20)
        self.emitted: set[int] = set()
        self.failure: StepFailed | None = None
        self.nonce = new_nonce()
        self.prefix = f"@@ec2kit:{self.nonce}:"

    def run(self, get_host: Any) -> None:
        """Build the script, run it (markers handled as they stream in), then settle what is left."""
        o, first = self.owner, self.entries[0].step
        planned = [e.planned for e in self.entries if e.planned]
        script = build_script(planned, check=o.check, nonce=self.nonce, diff=o.wants_diff, confirm=self.confirm)
        try:
            host: Transport = get_host()
            res = host.run(SCRIPT_COMMAND, stdin=script, check=False, stream=self.on_line)
        except RemoteError as err:
            o.emit(o.result(first, "failed", "unreachable: " + o.masker(str(err.message))))
            raise StepFailed(
                f"Recipe {o.recipe_name}, {first.label()} could not run on {o.label}: {o.masker(str(err))}"
            ) from None
        seen = seen_identity(res.stdout, self.nonce) if self.confirm is not None else None
        if res.exit_code == NOT_CONFIRMED and seen is not None and self.confirm is not None:
            raise NotConfirmed(self.confirm, seen)
        markers, other = parse_output(res.stdout, self.nonce)
        for m in markers:  # anything the stream did not deliver
            self.finish(m)
        if self.failure is not None:
            raise self.failure
        missing = [e for e in self.entries if e.step.number not in self.emitted and e.planned is not None]
        if missing:
            step = missing[0].step
            tail = "\n".join((other + "\n" + res.stderr).strip().splitlines()[-20:])
            o.emit(o.result(step, "failed", "the batch script stopped early", exit_code=res.exit_code))
            raise StepFailed(
                o.masker(
                    f"Recipe {o.recipe_name}, {step.label()} on {o.label}: the batch script stopped before this step "
                    f"(exit code {res.exit_code}).\n--- last lines of output ---\n{tail}"
                )
            )
        self.emit_decided(until=None)

    def on_line(self, line: str) -> None:
        if line.startswith(self.prefix):
            for m in parse_output(line, self.nonce)[0]:
                self.finish(m)

    def emit_decided(self, until: int | None) -> None:
        """Emit the locally decided entries before step ``until`` (all of them when None)."""
        stop = len(self.entries) if until is None else self.position.get(until, len(self.entries))
        while self.cursor < stop:
            e = self.entries[self.cursor]
            self.cursor += 1
            if e.result is not None and e.step.number not in self.emitted:
                self.emitted.add(e.step.number)
                self.owner.emit(e.result)

    def finish(self, marker: Marker) -> None:
        """One step's marker: emit what precedes it, then its result; keep its register and failure."""
        entry = self.by_number.get(marker.number)
        if entry is None or entry.planned is None or marker.number in self.emitted:
            return
        self.emit_decided(until=marker.number)
        self.emitted.add(marker.number)
        result = self.from_marker(entry.planned, marker)
        self.owner.emit(result)
        if entry.register:
            self.owner.vars[entry.register] = register_value(marker)
        if marker.status == "failed" and self.failure is None:
            self.failure = self.step_failed(entry.step, result)

    def from_marker(self, p: PlannedStep, m: Marker) -> StepResult:
        mask, check = self.owner.masker, self.owner.check
        return StepResult(
            m.number,
            p.name,
            p.kind,
            m.status,
            mask(m.reason),
            m.ms / 1000,
            m.exit_code,
            mask(m.stdout),
            mask(m.stderr),
            mask(m.diff),
            mask(p.command),
            check,
        )

    def step_failed(self, step: Step, result: StepResult) -> StepFailed:
        """The located failure message; a long command or output line is cut (a 5 MB ``run`` is not repeated)."""
        tail = "\n".join(line[:MAX_SHOWN] for line in result.output.splitlines()[-20:])
        msg = (
            f"Recipe {self.owner.recipe_name}, step {step.number} '{result.name}' failed on {self.owner.label} "
            f"with exit code {result.exit_code}.\n"
            f"Command: {shorten(result.command)}"
        )
        if tail:
            msg += f"\n--- last lines of output ---\n{tail}"
        return StepFailed(msg)
