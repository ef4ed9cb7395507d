"""Fault injection on the sandbox: N trials per fault, and what ec2kit's spot runs made of each.

    .venv/bin/python bench/faults.py [--trials 1] [--only outage,wrapper,...]

Faults (each injected for real: moto + one sshd per instance, tmux, rsync):
  crash     kill -9 the `inv spot-run` process group right after its instance runs; then `inv runs` + `inv cleanup`
  wrapper   kill the instance's tmux server mid-run (--retries 1): the run must resume on a new instance
  outage    SIGSTOP the instance's sshd processes for 45 s mid-run, then SIGCONT (recover: thaw → contact back)
  rsync     kill rsync's ssh (a dropped link) mid-pull of a rewritten 256 MiB checkpoint: the local copy must stay the old one
  follower  kill -9 `inv spot-run` while the script runs; the script ends; `inv pull` later
  detached  interrupt a detached run (stop), capacity returns: it must resume and finish; `inv pull`
  throttle, diskfull, torn, sigterm, sighup, pulls: see bench/faults_runs.py (issue 19's classes)

Reports per trial: recovered, results complete (checksums of what the script wrote), checkpoints
lost (a step the script had checkpointed missing from what came home), orphans left (instances,
requests, volumes tagged with the run once all is over), time to recover (fault → running again /
results home). Writes bench/results/faults.{json,md}. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

FAST = dict(pull_interval=0.5, poll_interval=0.3, notice_poll=0.5, pull_wait=15)
STEPS = 20


def wait(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise TimeoutError(what)


class Bench:
    def __init__(self, home: Path) -> None:
        from ec2kit import sandbox as sb
        from ec2kit.context import Context
        from ec2kit.settings import Settings

        self.home = home
        self.settings = Settings(home=home, sandbox=True)
        self.info = sb.ensure_running(self.settings)
        self.ec2 = self.info.client()
        self.ctx = Context(self.settings, quiet=True)

    def orphans(self, run: str) -> int:
        from test_spotrun_sandbox import run_resources

        class S:  # what run_resources needs of the test fixture
            ec2 = self.ec2

        return sum(len(v) for v in run_resources(S, run).values())

    def record(self, run: str):
        from ec2kit.runs import Runs

        return Runs(self.settings.runs_db).find(run)

    def inv(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "EC2KIT_SANDBOX": "1", "EC2KIT_HOME": str(self.home), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
        argv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def step_script(d: Path, steps: int = STEPS, secs: float = 0.5) -> Path:
    """Writes results/step-N (content 'step N') each step, resuming after the last one written."""
    path = d / "job.sh"
    path.write_text(
        textwrap.dedent(f"""\
        #!/bin/bash
        i=$(ls "$EC2KIT_RESULTS" | grep -c '^step-')
        while [ $i -lt {steps} ]; do i=$((i+1)); sleep {secs}; printf 'step %s\\n' $i > "$EC2KIT_RESULTS/.s" && mv "$EC2KIT_RESULTS/.s" "$EC2KIT_RESULTS/step-$i"; done
    """)
    )
    return path


def complete(results: Path, steps: int = STEPS) -> tuple[bool, int]:
    """(every step file home with the right checksum, how many are missing)."""
    want = {f"step-{i}": hashlib.sha256(f"step {i}\n".encode()).hexdigest() for i in range(1, steps + 1)}
    have = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in results.glob("step-*")} if results.exists() else {}
    missing = [k for k, v in want.items() if have.get(k) != v]
    return not missing, len(missing)


def options(d: Path, run: str, **kw):
    from ec2kit.spotrun import SpotRunOptions

    events: list[tuple[float, str]] = []
    o = SpotRunOptions(script=str(step_script(d)), name=run, type="t3.micro", results=str(d / "results"),
                       out=lambda _l: None, say=lambda m: events.append((time.monotonic(), m)), **{**FAST, **kw})  # fmt: skip
    return o, events


def spot_run_process(b: Bench, d: Path, run: str, script: Path | None = None, **kw) -> subprocess.Popen:
    extra = ", ".join(f"{k}={v!r}" for k, v in {**FAST, **kw}.items())
    code = textwrap.dedent(f"""
        from pathlib import Path
        from ec2kit.context import Context
        from ec2kit.settings import Settings
        from ec2kit.spotrun import SpotRunOptions, spot_run
        ctx = Context(Settings(home=Path({str(b.home)!r}), sandbox=True), quiet=True)
        rec = spot_run(ctx, SpotRunOptions(script={str(script or step_script(d))!r}, name={run!r}, type="t3.micro",
                       results={str(d / "results")!r}, say=print, {extra}))
        print("final state", rec.state, flush=True)
    """)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


# --------------------------------------------------------------------------- faults


def fault_crash(b: Bench, d: Path, run: str) -> dict:
    proc = spot_run_process(b, d, run)
    wait(lambda: (r := b.record(run)) and r.instance_id, 120, "instance")
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shown = b.inv("runs")
    cleaned = b.inv("cleanup", "--yes")
    return dict(recovered=cleaned.returncode == 0 and "died" in shown.stdout, complete=None, lost=0,
                recover_s=time.monotonic() - t0)  # fmt: skip


def fault_wrapper(b: Bench, d: Path, run: str) -> dict:
    from ec2kit.spotrun import spot_run
    from ec2kit.spotrun.commands import tmux

    o, events = options(d, run, retries=1)
    at: dict = {}

    def inject() -> None:
        wait(lambda: (d / "results" / "step-5").exists(), 120, "step 5")
        at["t"] = time.monotonic()
        b.ctx.connect(b.record(run).instance_id).run(f"{tmux(run)} kill-server", check=False)

    threading.Thread(target=inject, daemon=True).start()
    rec = spot_run(b.ctx, o)
    ok, missing = complete(d / "results")
    again = [t for t, m in events if "script started" in m and t > at.get("t", 0)]
    return dict(recovered=rec.state == "succeeded" and rec.attempt == 2, complete=ok, lost=missing,
                recover_s=again[0] - at["t"] if again and "t" in at else None)  # fmt: skip


def fault_outage(b: Bench, d: Path, run: str, freeze: float = 45.0) -> dict:
    from test_spotrun_faults import sshd_processes

    from ec2kit.spotrun import spot_run

    o, events = options(d, run)
    at: dict = {}
    frozen: list[int] = []

    class S:
        settings = b.settings

    def inject() -> None:
        wait(lambda: (d / "results" / "step-3").exists(), 120, "step 3")
        frozen.extend(sshd_processes(S, b.record(run).instance_id))
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        at["t"] = time.monotonic()
        time.sleep(freeze)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        at["thaw"] = time.monotonic()
        wait(lambda: any("is back" in m for _, m in events), 120, "contact")
        at["resumed"] = time.monotonic()

    threading.Thread(target=inject, daemon=True).start()
    rec = spot_run(b.ctx, o)
    ok, missing = complete(d / "results")
    return dict(recovered=rec.state == "succeeded", complete=ok, lost=missing, recover_s=at.get("resumed", 0) - at.get("thaw", 0))


def fault_rsync(b: Bench, d: Path, run: str) -> dict:
    from ec2kit import actions
    from ec2kit.spotrun.follower import PARTIAL_DIR, Follower

    inst = b.ctx.cloud.launch(run, type="t3.micro")
    try:
        actions.wait_ssh(b.ctx, inst)
        host = b.ctx.connect(inst)
        host.run(f"mkdir -p ~/ec2kit/{run}/results && head -c 4M /dev/urandom > ~/ec2kit/{run}/results/model.ckpt")
        f = Follower(host, run, d / "results", out=lambda _l: None)
        f.pull()
        local = d / "results" / "model.ckpt"
        good = hashlib.sha256(local.read_bytes()).hexdigest()
        host.run(
            f"head -c 256M /dev/urandom > ~/ec2kit/{run}/results/model.ckpt.new && mv ~/ec2kit/{run}/results/model.ckpt.new ~/ec2kit/{run}/results/model.ckpt"
        )
        proc = subprocess.Popen(f.pull_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        partial = d / "results" / PARTIAL_DIR
        wait(lambda: any(p.name.startswith("model.ckpt.") for p in partial.rglob("*")) or proc.poll() is not None, 60, "midway")
        if proc.poll() is not None:
            raise RuntimeError("the pull ended before it could be cut")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for c in children:  # the link drops: rsync's ssh dies, rsync sees it and ends
            if Path(f"/proc/{c}/comm").read_text().strip() == "ssh":
                os.kill(int(c), signal.SIGKILL)
        proc.wait()
        kept = hashlib.sha256(local.read_bytes()).hexdigest() == good
        t0 = time.monotonic()
        ok = f.pull()
        remote = host.run(f"sha256sum ~/ec2kit/{run}/results/model.ckpt").stdout.split()[0]
        ok = ok and hashlib.sha256(local.read_bytes()).hexdigest() == remote and local.stat().st_size == 256 << 20
        return dict(recovered=kept and ok, complete=ok, lost=0 if kept else 1, recover_s=time.monotonic() - t0)
    finally:
        b.ctx.forget_host(inst.id)
        b.ctx.cloud.terminate(inst.id)


def fault_follower(b: Bench, d: Path, run: str) -> dict:
    proc = spot_run_process(b, d, run, pull_wait=5)
    wait(lambda: (d / "results" / "step-3").exists(), 120, "step 3")
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    iid = b.record(run).instance_id
    wait(lambda: "succeeded" in b.ctx.connect(iid).run(f"cat ~/ec2kit/{run}/status", check=False).stdout, 120, "end")
    time.sleep(FAST["pull_wait"] + 2)  # past the attached wait: the results must still be there
    shown = b.inv("runs")
    pulled = b.inv("pull", run)
    ok, missing = complete(d / "results")
    b.ctx.forget_host(iid)
    wait(lambda: b.orphans(run) == 0, 60, "power-off")
    return dict(recovered=pulled.returncode == 0 and "waiting for" in shown.stdout, complete=ok, lost=missing,
                recover_s=time.monotonic() - t0)  # fmt: skip


def fault_detached(b: Bench, d: Path, run: str) -> dict:
    from ec2kit import sandbox as sb
    from ec2kit.spotrun import list_runs, pull, refresh, spot_run

    o, _ = options(d, run, detach=True)
    rec = spot_run(b.ctx, o)
    iid = rec.instance_id
    host = b.ctx.connect(iid)
    wait(lambda: int(host.run(f"ls ~/ec2kit/{run}/results | grep -c step-", check=False).stdout.strip() or 0) >= 5, 120, "step 5")
    sb.interrupt(b.settings, iid, delay=3)
    t0 = time.monotonic()
    b.ctx.forget_host(iid)
    wait(lambda: b.ctx.cloud.instance(iid).state == "stopped", 60, "stopped")
    sb.capacity_returns(b.settings, iid)
    wait(lambda: refresh(b.ctx, list_runs(b.ctx)).get(run, "").startswith("waiting for"), 180, "end")
    took = time.monotonic() - t0
    pull(b.ctx, run)
    ok, missing = complete(d / "results")
    return dict(recovered=b.record(run).attempt == 2, complete=ok, lost=missing, recover_s=took)


FAULTS = {"crash": fault_crash, "wrapper": fault_wrapper, "outage": fault_outage, "rsync": fault_rsync,
          "follower": fault_follower, "detached": fault_detached}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1)
    import faults_runs

    FAULTS.update(faults_runs.FAULTS)
    parser.add_argument("--only", default=",".join(FAULTS))
    parser.add_argument("--throttle", type=float, default=75.0, help="seconds of EC2 throttling (the throttle fault)")
    args = parser.parse_args()
    faults_runs.THROTTLE["seconds"] = args.throttle
    rows = []
    with tempfile.TemporaryDirectory(prefix="ec2kit-faults-") as tmp:
        b = Bench(Path(tmp) / "home")
        try:
            for name in args.only.split(","):
                for trial in range(args.trials):
                    d = Path(tmp) / f"{name}-{trial}"
                    d.mkdir()
                    run = f"fault-{name}-{trial}"
                    t0 = time.monotonic()
                    try:
                        got = FAULTS[name](b, d, run)
                        error = ""
                    except Exception as err:  # noqa: BLE001 - a failed trial is a row, not the end
                        got, error = (
                            dict(recovered=False, complete=None, lost=None, recover_s=None),
                            f"{type(err).__name__}: {err}",
                        )
                    try:
                        from ec2kit.spotrun import stop_run

                        stop_run(b.ctx, run) if b.record(run) and b.record(run).live else None
                    except Exception:  # noqa: BLE001
                        pass
                    row = dict(fault=name, trial=trial, **got, orphans=b.orphans(run), total_s=time.monotonic() - t0, error=error)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            from ec2kit import sandbox as sb

            b.ctx.close()
            sb.down(b.settings)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    ran = {r["fault"] for r in rows}
    try:  # the faults not run this time keep their last rows
        kept = [r for r in json.loads((out / "faults.json").read_text()) if r["fault"] not in ran]
    except (OSError, ValueError, TypeError, KeyError):
        kept = []
    rows = sorted(kept + rows, key=lambda r: (list(FAULTS).index(r["fault"]) if r["fault"] in FAULTS else 99, r["trial"]))
    (out / "faults.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| fault | trial | recovered | results complete | checkpoints lost | orphans left | time to recover (s) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        rec = "" if r["recover_s"] is None else f"{r['recover_s']:.1f}"
        lines.append(f"| {r['fault']} | {r['trial']} | {r['recovered']} | {r['complete']} | {r['lost']} | {r['orphans']} | {rec} |"
                     + (f" {r['error'][:80]}" if r["error"] else ""))  # fmt: skip
    (out / "faults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
