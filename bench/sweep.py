#!/usr/bin/env python3
"""Benchmark sweeps on the sandbox: 12 runs of a short script, as a user types them.

Usage (from the repository root):

    python bench/sweep.py                  # writes bench/results/sweep.{md,json} and prints the table
    python bench/sweep.py --runs 6 --seconds 2

Every case is a whole `inv` process timed from outside (wall time, Python start-up included):

1. 12 sequential `inv spot-run`s (the shell loop a sweep replaces);
2. `inv sweep --parallel 4` (instances reused: an instance whose run ended takes the next one);
3. `inv sweep --parallel 4 --fresh` (a new instance for every run);
4. `inv sweep --parallel 12`.

Launches are counted from the sandbox itself: CreateFleet calls (its fleets, tagged with the sweep)
and instances (tagged with the sweep, any state). Memory: the peak RSS (``ru_maxrss`` from wait4) of
the one `inv sweep --parallel 12` process following 12 concurrent runs, beside 12 × the peak of one
`inv spot-run` (what 12 terminals running spot-run would hold).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

SWEEP_TAG = "ec2kit:sweep"


def inv(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int, str]:
    """Run `inv ARGS`; (wall seconds, exit code, peak RSS in KiB, output tail)."""
    argv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]
    out = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    return wall, proc.returncode, int(usage.ru_maxrss), out.read().decode(errors="replace")[-3000:]


def counted(ec2, sweep: str) -> tuple[int, int, list[int]]:
    """(CreateFleet calls, instances launched, capacity asked per call) for ``sweep``, from the sandbox."""
    fleets = [f for f in ec2.describe_fleets()["Fleets"] if {"Key": SWEEP_TAG, "Value": sweep} in (f.get("Tags") or [])]
    found = ec2.describe_instances(Filters=[{"Name": f"tag:{SWEEP_TAG}", "Values": [sweep]}])
    instances = {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}
    asked = [int(f["TargetCapacitySpecification"]["TotalTargetCapacity"]) for f in fleets]
    return len(fleets), len(instances), asked


def render(data: dict) -> list[str]:
    """bench/results/sweep.md's lines from the measurements."""
    n, cases, machine = data["runs"], data["cases"], data["machine"]
    lines = [
        f"# Sweeps on the sandbox: {n} runs of a {data['seconds']:g} s script",
        "",
        f"`python bench/sweep.py` on {data.get('when', '')}, {machine}.",
        "Each case is the whole `inv` command, timed from outside; launches counted from the sandbox (fleets and",
        "instances tagged with the sweep); peak RSS is `ru_maxrss` of the `inv` process (wait4).",
        "",
        "| case | wall | all ok | CreateFleet calls | capacity asked per call | instances | peak RSS |",
        "|---|---:|:---:|---:|---|---:|---:|",
    ]
    for c in cases:
        asked = (
            ", ".join(str(a) for a in c["asked"])
            if len(set(c["asked"])) > 1 or len(c["asked"]) <= 3
            else f"{len(c['asked'])} × {c['asked'][0]}"
        )
        rss = f"{c['peak_rss_kib'] / 1024:.0f} MiB" + (f" (max of {c['processes']} processes)" if c["processes"] > 1 else "")
        ok = "yes" if c["ok"] else "NO"
        lines.append(f"| {c['case']} | {c['wall_s']:.1f} s | {ok} | {c['fleet_calls']} | {asked} | {c['instances']} | {rss} |")
    seq, par = cases[0], cases[-1]
    lines += [
        "",
        f"- {n} concurrent runs are followed by ONE process of {par['peak_rss_kib'] / 1024:.0f} MiB peak; {n} terminals of "
        f"`inv spot-run` would hold about {n} × {seq['peak_rss_kib'] / 1024:.0f} = {n * seq['peak_rss_kib'] / 1024:.0f} MiB.",
        f"- Wall time: sequential {seq['wall_s']:.0f} s; sweep --parallel 4 {cases[1]['wall_s']:.0f} s; "
        f"--parallel {n} {par['wall_s']:.0f} s.",
        f"- Reuse: --parallel 4 launched {cases[1]['instances']} instances for {n} runs "
        f"({cases[1]['fleet_calls']} CreateFleet call(s)); --fresh launched {cases[2]['instances']} "
        f"({cases[2]['fleet_calls']} calls).",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the script works")
    parser.add_argument("--render", action="store_true", help="only rewrite sweep.md from sweep.json")
    args = parser.parse_args()
    if args.render:
        lines = render(json.loads((RESULTS / "sweep.json").read_text()))
        (RESULTS / "sweep.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    n = args.runs

    from ec2kit import sandbox as sb
    from ec2kit.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="ec2kit-bench-sweep-"))
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_SANDBOX="1", EC2KIT_HOME=str(home), PYTHONPATH=str(ROOT), COLUMNS="200")
    script = work / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"sleep {args.seconds}\n"
        'echo "step,loss" > "$EC2KIT_RESULTS/metrics.csv"\n'
        'echo "1,0.${I:-0}" >> "$EC2KIT_RESULTS/metrics.csv"\n'
    )
    settings = Settings(home=home, sandbox=True)
    info = sb.ensure_running(settings)
    ec2 = info.client()
    common = ["--type", "t3.micro"]
    grid = ["--grid", "i=" + ",".join(str(i) for i in range(1, n + 1))]
    cases: list[dict] = []
    try:
        # warm-up: the key pair, security group and first image lookups happen once, in no case's time
        inv(["spot-run", "--script", str(script), "--name", "warm", *common], env, work)

        seq_wall, seq_rss, seq_codes = 0.0, 0, []
        for i in range(1, n + 1):
            wall, code, rss, tail = inv(["spot-run", "--script", str(script), "--name", f"seq-{i:02d}", *common], env, work)
            seq_wall += wall
            seq_rss = max(seq_rss, rss)
            seq_codes.append(code)
            if code:
                print(tail, file=sys.stderr)
        cases.append(
            dict(
                case=f"{n} sequential `inv spot-run`",
                wall_s=seq_wall,
                ok=all(c == 0 for c in seq_codes),
                fleet_calls=n,
                instances=n,
                asked=[1] * n,
                peak_rss_kib=seq_rss,
                processes=n,
            )  # fmt: skip
        )
        for label, name, extra in (
            ("`inv sweep --parallel 4` (reuse)", "b-p4", ["--parallel", "4"]),
            ("`inv sweep --parallel 4 --fresh`", "b-p4-fresh", ["--parallel", "4", "--fresh"]),
            (f"`inv sweep --parallel {n}`", f"b-p{n}", ["--parallel", str(n)]),
        ):
            wall, code, rss, tail = inv(["sweep", "--script", str(script), *grid, *common, "--name", name, *extra], env, work)
            if code:
                print(tail, file=sys.stderr)
            calls, instances, asked = counted(ec2, name)
            cases.append(
                dict(
                    case=label,
                    wall_s=wall,
                    ok=code == 0,
                    fleet_calls=calls,
                    instances=instances,
                    asked=asked,
                    peak_rss_kib=rss,
                    processes=1,
                )  # fmt: skip
            )
    finally:
        sb.down(settings)
    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"
    data = {
        "runs": n,
        "seconds": args.seconds,
        "machine": machine,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cases": cases,
    }
    lines = render(data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "sweep.json").write_text(
        json.dumps({"runs": n, "seconds": args.seconds, "machine": machine, "cases": cases}, indent=2)
    )
    print("\n".join(lines))
    return 0 if all(c["ok"] for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
