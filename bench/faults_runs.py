"""The fault classes of issue 19 for bench/faults.py: throttling, a full instance disk, torn checkpoints,
SIGTERM / SIGHUP to `inv spot-run`, and pulls of one run at once. Each is injected for real on the sandbox.

  throttle  EC2 answers 503 RequestLimitExceeded for 75 s (--throttle) mid-run and through the release
  diskfull  the instance's results filesystem (a 1 MiB tmpfs) fills up mid-run: the run must end and say so
  torn      a checkpoint rewritten in place while pulls run, then a no-notice interruption (--retries 1):
            no torn copy at home ("checkpoints lost" counts torn looks), the replacement resumes from a whole one
  sigterm   SIGTERM to `inv spot-run` mid-run: final pull and cleanup, as Ctrl-C
  sighup    SIGHUP to `inv spot-run` (its terminal closed): a detached run; `inv pull` once the script ended
  pulls     two `inv pull` of a detached run at once, round after round until the final pull: all succeed, no rsync noise
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import faults as F

THROTTLE = {"seconds": 75.0}


def fault_throttle(b: Any, d: Path, run: str) -> dict:
    from ec2kit.sandbox import knobs
    from ec2kit.spotrun import spot_run

    seconds = THROTTLE["seconds"]
    o, events = F.options(d, run)
    o.script = str(F.step_script(d, secs=seconds / 16))  # runs through the throttle and past it
    at: dict = {}

    def inject() -> None:
        F.wait(lambda: (d / "results" / "step-2").exists(), 120, "step 2")
        knobs.throttle(b.settings, seconds)
        at["end"] = time.monotonic() + seconds

    threading.Thread(target=inject, daemon=True).start()
    try:
        rec = spot_run(b.ctx, o)
    finally:
        refused = knobs.throttled(b.settings)["refused"]
        knobs.throttle(b.settings, 0)
    ok, missing = F.complete(d / "results")
    back = [t for t, m in events if "EC2 answers again" in m]
    return dict(
        recovered=rec.state == "succeeded" and bool(refused) and not rec.options.get("leftovers"),
        complete=ok,
        lost=missing,
        recover_s=back[0] - at["end"] if back and "end" in at else None,
    )


DISKFULL_JOB = """#!/bin/bash
mount -t tmpfs -o size=1m ec2kit-small "$EC2KIT_RESULTS" || exit 99
for i in $(seq 1 5); do sleep 0.3; printf 'step %s\\n' $i > "$EC2KIT_RESULTS/step-$i"; done
i=0; while :; do i=$((i+1)); head -c 65536 /dev/zero > "$EC2KIT_RESULTS/fill-$i" 2>/dev/null; sleep 0.05; done
"""


def fault_diskfull(b: Any, d: Path, run: str) -> dict:
    from ec2kit.spotrun import spot_run

    o, events = F.options(d, run, max_hours=0.05)
    (d / "job.sh").write_text(DISKFULL_JOB)
    o.script = str(d / "job.sh")
    rec = spot_run(b.ctx, o)
    ended = time.monotonic()
    ok, missing = F.complete(d / "results", steps=5)
    full = [t for t, m in events if "disk is full" in m]
    said = "disk is full" in (rec.options.get("note") or "")
    return dict(recovered=rec.state == "failed" and said, complete=ok, lost=missing, recover_s=ended - full[0] if full else None)


TORN_JOB = """#!/bin/bash
exec python3 - <<'PYEOF'
import os, time
R = os.environ["EC2KIT_RESULTS"]; p = os.path.join(R, "model.ckpt"); start = 0
try:
    data = open(p, "rb").read(); head = data.split(b"\\n", 1)[0]
    if head.startswith(b"BEGIN ") and data.endswith(b"END " + head[6:] + b"\\n"): start = int(head[6:])
except OSError:
    pass
open(os.path.join(R, "resumed-%s" % os.environ["EC2KIT_ATTEMPT"]), "w").write(str(start))
for step in range(start + 1, 16):
    with open(p, "wb") as f:  # in place, as torch.save(path) writes
        f.write(b"BEGIN %d\\n" % step)
        for _ in range(16):
            f.write(b"x" * 65536); f.flush(); time.sleep(0.02)
        f.write(b"END %d\\n" % step)
    time.sleep(1.5)  # a checkpoint every ~1.8 s, written for 0.3 s of it
PYEOF
"""


def whole(data: bytes) -> bool:
    """One complete checkpoint of TORN_JOB's."""
    head = data.split(b"\n", 1)[0]
    return head.startswith(b"BEGIN ") and data.endswith(b"END " + head[6:] + b"\n") and len(data) == 2 * len(head) + (1 << 20)


def step_of(path: Path) -> int:
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    return int(data.split(b"\n", 1)[0][6:]) if whole(data) else 0


def fault_torn(b: Any, d: Path, run: str) -> dict:
    from ec2kit import sandbox as sb
    from ec2kit.spotrun import spot_run

    o, events = F.options(d, run, retries=1)
    (d / "job.sh").write_text(TORN_JOB)
    o.script = str(d / "job.sh")
    local = d / "results" / "model.ckpt"
    seen = {"torn": 0, "looks": 0}
    done = threading.Event()
    at: dict = {}

    def watch_home() -> None:  # the home copy, as often as it can be read (each pull replaces it whole)
        while not done.is_set():
            try:
                data = local.read_bytes()
            except OSError:
                data = b""
            if data:
                seen["looks"] += 1
                seen["torn"] += not whole(data)
            time.sleep(0.01)

    def interrupt() -> None:
        F.wait(lambda: step_of(local) >= 5, 120, "step 5 at home")
        at["t"] = time.monotonic()
        sb.interrupt(b.settings, b.record(run).instance_id, delay=0)  # no notice: what is home is what the next one gets

    threading.Thread(target=watch_home, daemon=True).start()
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        rec = spot_run(b.ctx, o)
    finally:
        done.set()
    resumed_file = d / "results" / "resumed-2"
    resumed = int(resumed_file.read_text() or 0) if resumed_file.exists() else 0
    again = [t for t, m in events if "script started" in m and t > at.get("t", float("inf"))]
    return dict(
        recovered=rec.state == "succeeded" and rec.attempt == 2 and resumed > 0,
        complete=step_of(local) == 15,
        lost=seen["torn"],
        recover_s=again[0] - at["t"] if again and "t" in at else None,
    )


def signalled(b: Any, d: Path, run: str, signum: int) -> tuple[subprocess.Popen, float]:
    proc = F.spot_run_process(b, d, run)
    F.wait(lambda: (d / "results" / "step-3").exists(), 120, "step 3")
    os.kill(proc.pid, signum)
    return proc, time.monotonic()


def fault_sigterm(b: Any, d: Path, run: str) -> dict:
    proc, t0 = signalled(b, d, run, signal.SIGTERM)
    code = proc.wait(120)
    rec = b.record(run)
    have = len(list((d / "results").glob("step-*")))
    return dict(
        recovered=code == 0 and rec.state == "cancelled" and b.orphans(run) == 0,
        complete=have >= 3,
        lost=0,
        recover_s=time.monotonic() - t0,
    )


def fault_sighup(b: Any, d: Path, run: str) -> dict:
    proc, t0 = signalled(b, d, run, signal.SIGHUP)
    code = proc.wait(120)
    rec = b.record(run)
    detached = code == 0 and rec.live and bool(rec.options.get("detach"))
    iid = rec.instance_id
    F.wait(lambda: "succeeded" in b.ctx.connect(iid).run(f"cat ~/ec2kit/{run}/status", check=False).stdout, 120, "end")
    pulled = b.inv("pull", run)
    ok, missing = F.complete(d / "results")
    b.ctx.forget_host(iid)
    F.wait(lambda: b.orphans(run) == 0, 60, "release")
    return dict(recovered=detached and pulled.returncode == 0, complete=ok, lost=missing, recover_s=time.monotonic() - t0)


def fault_pulls(b: Any, d: Path, run: str) -> dict:
    from ec2kit.spotrun import spot_run

    o, _ = F.options(d, run, detach=True)
    o.script = str(F.step_script(d, secs=1.0))
    spot_run(b.ctx, o)
    t0 = time.monotonic()
    codes, noisy = [], 0
    env = {**os.environ, "EC2KIT_SANDBOX": "1", "EC2KIT_HOME": str(b.home), "PYTHONPATH": str(F.ROOT), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "invoke", "--search-root", str(F.ROOT), "pull", run]
    for _ in range(10):  # rounds of two at once, until one of them made the final pull (the run had ended)
        if (b.record(run).options or {}).get("pulled"):
            break
        two = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=F.ROOT)
            for _ in range(2)
        ]
        for p in two:
            out = p.communicate(timeout=300)[0]
            codes.append(p.returncode)
            noisy += sum(1 for line in out.splitlines() if "rsync" in line)
    ok, missing = F.complete(d / "results")
    return dict(recovered=all(c == 0 for c in codes) and noisy == 0, complete=ok, lost=missing, recover_s=time.monotonic() - t0)


FAULTS = {
    "throttle": fault_throttle,
    "diskfull": fault_diskfull,
    "torn": fault_torn,
    "sigterm": fault_sigterm,
    "sighup": fault_sighup,
    "pulls": fault_pulls,
}
