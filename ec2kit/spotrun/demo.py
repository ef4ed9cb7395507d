"""``inv demo``: the main job on the local sandbox, with the headline feature shown: a spot interruption survived.

examples/train.sh runs on a spot instance; once a few checkpointed steps are home the sandbox interrupts
the instance (with a short notice, as AWS gives two minutes); a replacement resumes from the checkpoint
and the run ends with every step once. The demo then says what is still running and what to try next.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..defaults import RUN_TYPE
from ..errors import Ec2kitError

if TYPE_CHECKING:
    from ..runs import RunRecord
    from ..settings import Settings

INTERRUPT_AT_STEP = 8  # of train.py's 30 steps: late enough for a checkpoint, early enough to resume
NOTICE = 2.0  # seconds of notice before the sandbox reclaims the instance (AWS: 120)
STEP_SECONDS = "0.4"  # train.py's pace here: the 22 steps after the interrupt outlast a pull's lag plus the notice
PULL_INTERVAL = 1.0  # s: the demo sees the checkpoint that triggers the interruption soon after it is written


@dataclass
class DemoReport:
    """What the demo showed: the record, the interruption (step, instance) and where the run resumed."""

    record: RunRecord
    interrupted: dict = field(default_factory=dict)  # step, instance
    resumed_from: int | None = None
    steps: list[int] = field(default_factory=list)


def run_demo(settings: Settings, examples: Path, *, retries: int = 1, say: Callable[[str], None] = print) -> DemoReport:
    """Spot-run examples/train.sh on the sandbox with ``retries``, interrupting it once mid-run (when retries > 0)."""
    from .. import sandbox as sb
    from ..context import Context
    from ..runs import Runs
    from .lifecycle import SpotRunOptions, spot_run

    sandbox_settings = replace(settings, sandbox=True)
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    results = Path("runs") / name
    report: dict = {}

    def interrupt_once() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            step = _checkpoint_step(results)
            rec = Runs(sandbox_settings.runs_db).find(name)
            if rec is not None and not rec.live:
                return
            if step >= INTERRUPT_AT_STEP and rec is not None and rec.instance_id:
                say(f"{name}: the demo interrupts {rec.instance_id} at step {step} (a spot interruption, {NOTICE:.0f} s notice)")
                report.update(step=step, instance=rec.instance_id)
                try:
                    sb.interrupt(sandbox_settings, rec.instance_id, delay=NOTICE)
                except Ec2kitError as err:
                    say(f"{name}: could not interrupt it ({err}); the run goes on uninterrupted")
                return
            time.sleep(0.2)

    options = SpotRunOptions(
        script=str(examples / "train.sh"),
        files=str(examples / "train.py"),
        name=name,
        results=str(results),
        type=RUN_TYPE,
        retries=retries,
        say=say,
        env={"TRAIN_STEP_SECONDS": STEP_SECONDS},
        pull_interval=PULL_INTERVAL,
    )
    with Context(sandbox_settings) as ctx:
        if retries > 0:
            threading.Thread(target=interrupt_once, name="demo-interrupt", daemon=True).start()
        record = spot_run(ctx, options)
    resumed = None
    log = sandbox_settings.home / "runs" / name / "log"
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("resuming from step "):
                try:
                    resumed = int(line.split()[3])
                except (IndexError, ValueError):
                    pass
    return DemoReport(record, report, resumed, _metric_steps(Path(record.results_dir)))


def demo_lines(report: DemoReport, sandbox_pid: int | None) -> list[str]:
    """What the demo says at its end: the interruption survived, what still runs, the next three commands."""
    rec = report.record
    lines: list[str] = []
    if report.interrupted and rec.attempt > 1:
        where = f"resumed from the checkpoint at step {report.resumed_from}" if report.resumed_from is not None else "resumed"
        once = "every step exactly once" if report.steps == sorted(set(report.steps)) and report.steps else "see metrics.csv"
        lines.append(
            f"Interruption survived: {report.interrupted['instance']} was reclaimed at step {report.interrupted['step']}; "
            f"the replacement {rec.instance_id} {where} (metrics.csv: {once}, {len(report.steps)} steps)."
        )
    elif report.interrupted:
        lines.append(f"The interruption at step {report.interrupted['step']} came too late to need a replacement.")
    running = f"the local sandbox (pid {sandbox_pid})" if sandbox_pid else "the local sandbox"
    lines.append(f"Still running: {running}, no instance. `inv sandbox.down` stops it.")
    lines.append(
        f"Next: `inv runs` (this run, its cost)  ·  `inv plot {rec.name}` (its loss curve)  ·  "
        f"`inv spot-run --script YOURS.sh --retries 1` (your own script, here or on AWS)"
    )
    return lines


def sandbox_pid(settings: Settings) -> int | None:
    """The sandbox daemon's pid when it runs (it stays up after the demo)."""
    from .. import sandbox as sb

    try:
        return int(sb.ensure_running(replace(settings, sandbox=True)).pid)
    except (Ec2kitError, AttributeError, TypeError, ValueError):
        return None


def _checkpoint_step(results: Path) -> int:
    try:
        return int(json.loads((results / "checkpoint.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _metric_steps(results: Path) -> list[int]:
    try:
        rows = (results / "metrics.csv").read_text().splitlines()[1:]
        return [int(r.split(",")[0]) for r in rows if r]
    except (OSError, ValueError):
        return []
