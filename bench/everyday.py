"""Measure the everyday numbers: CLI start-up, EC2 calls per listing, sandbox start-up.

    .venv/bin/python bench/everyday.py

Prints a small table; nothing here is a test. Uses a throwaway EC2KIT_HOME.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(argv: list[str], env: dict[str, str], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="ec2kit-everyday-"))
    env = {**os.environ, "EC2KIT_HOME": str(home), "EC2KIT_SANDBOX": "1"}
    inv = str(Path(sys.executable).with_name("inv"))
    rows = []
    rows.append(("python -c pass (floor)", f"{timed([sys.executable, '-c', 'pass'], env, 10):.3f} s"))
    rows.append(
        ("python -c 'import invoke' (Invoke's floor)", f"{timed([sys.executable, '-c', 'import invoke'], env, 10):.3f} s")
    )
    rows.append(("inv --list", f"{timed([inv, '--list'], env, 10):.3f} s"))

    from ec2kit import sandbox
    from ec2kit.context import Context
    from ec2kit.settings import Settings

    settings = Settings.from_env()
    t0 = time.perf_counter()
    sandbox.up(settings)
    rows.append(("sandbox up (cold: moto import + servers)", f"{time.perf_counter() - t0:.2f} s"))
    try:
        ctx = Context(replace(settings, sandbox=True), quiet=True)
        calls: list[str] = []
        ctx.cloud.ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
        starts = []
        from ec2kit import actions

        for i in range(3):
            t0 = time.perf_counter()
            inst = ctx.cloud.launch(f"m{i}", type="t3.micro")
            t_running = time.perf_counter()
            actions.wait_ssh(ctx, inst, timeout=60)
            starts.append((t_running - t0, time.perf_counter() - t_running))
        rows.append(("launch → running (EC2 API, median of 3)", f"{statistics.median(s[0] for s in starts):.2f} s"))
        rows.append(
            ("running → SSH answers (sandbox sshd start, median of 3)", f"{statistics.median(s[1] for s in starts):.2f} s")
        )
        calls.clear()
        ctx.cloud.instances()
        rows.append(("EC2 API calls made by `inv instances`", f"{len(calls)} ({', '.join(calls)})"))
        rows.append(("inv instances (whole process, 3 instances)", f"{timed([inv, 'instances'], env, 5):.3f} s"))
        ctx.close()
    finally:
        sandbox.down(settings)
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
