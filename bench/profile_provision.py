#!/usr/bin/env python3
"""Where a 1-host warm no-op `inv provision` spends its time.

    .venv/bin/python bench/profile_provision.py [--runs 5]      # writes bench/results/profile.{md,json}

One sandbox instance h0 (as bench/run.py makes them); a first run, then warm no-op runs of
`inv provision h0 --recipe bench/job/recipe.toml` from a project directory. Measured:

1. the whole process from outside (median of --runs), `python -c pass` and `inv --list`;
2. a timeline (median of --runs) through bench/_timed_inv.py, which runs invoke's program as
   the `inv` script does with wall timers on a few functions, installed when their module is
   first imported: interpreter start-up (launch → first line), main, interpreter shutdown
   (main's end → the process is reaped), and inside main: recipe loading, the sandbox check,
   boto3 session/client creation, each EC2 API call, resolver look-ups, the SSH exec;
3. imports, from `python -X importtime` (median of 3): total and the biggest top-level packages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

TIMED = Path(__file__).resolve().parent / "_timed_inv.py"


def wall(argv: list[str], cwd: Path, env: dict, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        out.append(time.perf_counter() - start)
        if p.returncode:
            raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return out


def timeline(args: list[str], cwd: Path, env: dict, out: Path) -> dict:
    """One run through _timed_inv.py: launch→t0 (start-up), t0→t1 (main), t1→reaped (shutdown)."""
    launched = time.time()
    p = subprocess.run(
        [sys.executable, str(TIMED), *args],
        cwd=cwd,
        env={**env, "PROFILE_OUT": str(out)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    reaped = time.time()
    if p.returncode:
        raise SystemExit(f"timed run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    data = json.loads(out.read_text())
    data["startup"] = data["t0"] - launched
    data["main"] = data["t1"] - data["t0"]
    data["atexit"] = data["t2"] - data["t1"]
    data["shutdown"] = reaped - data["t2"]
    data["total"] = reaped - launched
    return data


def importtime(args: list[str], cwd: Path, env: dict) -> dict[str, float]:
    """Top-level imports of one `inv` run (cumulative seconds per top-level module; key '' = total)."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", str(bench.VENV_BIN / "inv"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    per: dict[str, float] = {}
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _self, cum, name = line.split(":", 1)[1].split("|")
        if name[1:].startswith(" "):  # nested (indented): counted in its top-level importer
            continue
        top = name.strip()
        per[top] = per.get(top, 0) + int(cum) / 1e6
    per[""] = sum(per.values())
    return per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=bench.RESULTS / "profile")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    for var in ("EC2KIT_SSH", "EC2KIT_SSH_PERSIST", "EC2KIT_SSH_ADDRESS", "AWS_PROFILE"):
        os.environ.pop(var, None)
    workdir = Path(tempfile.mkdtemp(prefix="ec2kit-profile-"))
    say = lambda m: print(m, flush=True)  # noqa: E731
    sandbox = None
    try:
        sandbox = bench.launch_hosts(workdir, 1, say)
        env = {**os.environ, **sandbox.env()}
        args = ["provision", "h0", "--recipe", str(bench.JOB / "recipe.toml")]
        inv = [str(bench.VENV_BIN / "inv"), *args]
        proj = sandbox.project
        first = wall(inv, proj, env, 1)[0]
        outside = wall(inv, proj, env, a.runs)
        py = wall([sys.executable, "-c", "pass"], proj, env, a.runs)
        invlist = wall([str(bench.VENV_BIN / "inv"), "--list"], proj, env, a.runs)
        lines_ = [timeline(args, proj, env, workdir / f"t{i}.json") for i in range(a.runs)]
        imports = [importtime(args, proj, env) for _ in range(3)]
    finally:
        if sandbox is not None:
            sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    med = statistics.median
    phases = {k: med(t[k] for t in lines_) for k in ("startup", "main", "atexit", "shutdown", "total")}
    labels = sorted({k for t in lines_ for k in t["stats"]})
    funcs = {
        k: {
            "calls": med(len(t["stats"].get(k, [])) for t in lines_),
            "s": med(sum(t["stats"].get(k, [])) for t in lines_),
        }
        for k in labels
    }
    api: dict[str, list[float]] = {}
    for t in lines_:
        per: dict[str, float] = {}
        for op, s in t["api"]:
            per[op] = per.get(op, 0) + s
        for op, s in per.items():
            api.setdefault(op, []).append(s)
    api_med = {op: med(v) for op, v in api.items()}
    tops = sorted({k for d in imports for k in d}, key=lambda k: -med(d.get(k, 0) for d in imports))
    import_med = {k: med(d.get(k, 0) for d in imports) for k in tops}

    md = ["# Where a 1-host warm no-op `inv provision` spends its time", ""]
    if a.note:
        md += [f"**{a.note}**", ""]
    md += [
        f"`inv provision h0 --recipe bench/job/recipe.toml` on one sandbox instance, a warm ControlPersist master, "
        f"the job already applied (first run {first:.2f} s). Medians of {a.runs} runs unless said.",
        "",
        "| what | s |",
        "|---|---|",
        f"| whole process, timed from outside (`inv`) | {med(outside):.3f} |",
        f"| `python -c pass` | {med(py):.3f} |",
        f"| `inv --list` (invoke + ec2kit.cli start-up) | {med(invlist):.3f} |",
        "",
        "Timeline through bench/_timed_inv.py (invoke's program as the `inv` script runs it, with timers):",
        "",
        "| phase | s |",
        "|---|---|",
        f"| interpreter start-up (launch → first line of the script) | {phases['startup']:.3f} |",
        f"| main: invoke parses, ec2kit imports and runs `provision` | {phases['main']:.3f} |",
        f"| atexit handlers ({lines_[0]['atexit_handlers']} registered) | {phases['atexit']:.3f} |",
        f"| interpreter shutdown after them: thread joins, module teardown (→ process reaped) | {phases['shutdown']:.3f} |",
        f"| total | {phases['total']:.3f} |",
        "",
        f"Threads alive when main returned: {', '.join(lines_[0]['threads']) or 'none'}.",
        "",
        "Inside main (wall time, cumulative: nested calls are inside their callers; imports a call triggers count in it):",
        "",
        "| function | calls | s |",
        "|---|---|---|",
    ]
    md += [f"| `{k}` | {v['calls']:g} | {v['s']:.3f} |" for k, v in sorted(funcs.items(), key=lambda kv: -kv[1]["s"])]
    md += ["", "EC2 API calls (botocore `_make_api_call`, per run):", ""]
    md += [f"- {op}: {s:.3f} s" for op, s in sorted(api_med.items(), key=lambda kv: -kv[1])] or ["- none"]
    md += [
        "",
        f"Imports (`python -X importtime`, median of 3; these runs are slower than untraced ones): "
        f"{import_med.get('', 0):.3f} s in all; the biggest top-level modules:",
        "",
        "| module | cumulative s |",
        "|---|---|",
    ]
    md += [f"| `{k}` | {import_med[k]:.3f} |" for k in tops if k][:15]
    md += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in bench.machine_info().items()]
    text = "\n".join(md) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text(text)
    a.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "outside_s": outside,
                "python_c_pass_s": py,
                "inv_list_s": invlist,
                "first_s": first,
                "phases": phases,
                "functions": funcs,
                "api": api_med,
                "imports": import_med,
                "runs": lines_,
            },
            indent=1,
        )
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
