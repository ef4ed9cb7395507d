#!/usr/bin/env python3
"""Benchmark ec2kit's recipe engine against pyinfra and Ansible on the same 20-step job.

Usage (from the repository root; run `bash bench/setup.sh` once first):

    python bench/run.py                     # 1 and 8 hosts, writes bench/results/latest.{md,json}
    python bench/run.py --hosts 1 --reps 3  # quicker
    python bench/run.py --tools pyinfra,ansible

For each host count and tool: fresh sshd hosts (ec2kit.sandbox.sshd.SshdHost) → one first
run → N no-op reruns on the same hosts. Every run is a whole process, timed from outside
(subprocess), and each host's sshd log (LogLevel VERBOSE) tells how many exec channels,
SFTP sessions and connections the run cost. After the first run each host's home tree
(paths, modes, contents) must be identical across hosts and tools; after the reruns no file
may have been touched (ctime unchanged) — otherwise the result says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
JOB = BENCH / "job"
PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

from ec2kit.sandbox.sshd import SshdHost  # noqa: E402

#: What the tools may leave in a home besides the job's files (excluded from the tree check).
TOOL_DROPPINGS = {".ansible", ".cache", ".ssh", ".pyinfra"}


# --------------------------------------------------------------------------- hosts


@dataclass
class Hosts:
    """N fresh sshd hosts authorized for one key."""

    servers: list[SshdHost]
    key: Path

    def as_json(self) -> list[dict]:
        """The hosts as the inventories and the ec2kit adapter read them."""
        return [
            {"name": f"h{i}", "host": "127.0.0.1", "port": s.port, "user": s.user, "home": str(s.home), "key": str(self.key)}
            for i, s in enumerate(self.servers)
        ]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def start_hosts(workdir: Path, tag: str, n: int, key: Path) -> Hosts:
    """Start n fresh sshd hosts under workdir/tag."""
    pub = key.with_suffix(".pub").read_text()
    servers = []
    for i in range(n):
        s = SshdHost(workdir / tag / f"h{i}", authorized_keys=[pub])
        s.start()
        servers.append(s)
    return Hosts(servers, key)


def session_counts(server: SshdHost) -> dict[str, int]:
    """Cumulative exec channels, SFTP sessions and authenticated connections in a host's sshd log."""
    text = server.log_file.read_text(errors="replace") if server.log_file.exists() else ""
    counts = {"exec": 0, "sftp": 0, "conns": 0}
    for line in text.splitlines():
        if "Starting session: command" in line or "Starting session: shell" in line:
            counts["exec"] += 1
        elif "Starting session: subsystem" in line:
            counts["sftp"] += 1
        elif line.startswith("Accepted publickey"):
            counts["conns"] += 1
    return counts


def counts_now(hosts: Hosts) -> list[dict[str, int]]:
    time.sleep(0.05)  # let sshd flush the last session's log line
    return [session_counts(s) for s in hosts.servers]


def per_host_delta(before: list[dict[str, int]], after: list[dict[str, int]]) -> dict[str, float]:
    """Mean per host of each count between two snapshots (and the max exec channels of any host)."""
    n = len(before)
    out = {k: sum(a[k] - b[k] for a, b in zip(after, before)) / n for k in before[0]}
    out["exec_max"] = max(a["exec"] - b["exec"] for a, b in zip(after, before))
    return out


# --------------------------------------------------------------------------- tree checks


def manifest(home: Path) -> dict[str, str]:
    """path → 'kind mode sha256' for everything under home except tool droppings."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(home):
        rel_dir = Path(dirpath).relative_to(home)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in TOOL_DROPPINGS]
            filenames = [f for f in filenames if f not in TOOL_DROPPINGS]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            mode = oct(st.st_mode & 0o7777)
            if p.is_symlink():
                out[str(rel_dir / name)] = f"link {mode} {os.readlink(p)}"
            elif p.is_dir():
                out[str(rel_dir / name)] = f"dir {mode}"
            else:
                out[str(rel_dir / name)] = f"file {mode} {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"
    return out


def digest(m: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(m.items())).encode()).hexdigest()[:12]


def ctimes(home: Path) -> dict[str, int]:
    """Regular files' ctimes: a no-op run must not change any (a write or chmod would)."""
    return {str(p.relative_to(home)): p.stat().st_ctime_ns for p in home.rglob("*") if p.is_file() and not p.is_symlink()}


def manifest_diff(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Human lines: what differs between two manifests."""
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"{k}: {a.get(k, 'missing')} vs {b.get(k, 'missing')}")
    return lines


# --------------------------------------------------------------------------- tools


@dataclass
class Invocation:
    """How to run a tool once: argv, extra env, cwd."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = JOB


def prepare_ec2kit(workdir: Path, hosts: Hosts, job_vars: Path, variant: str = "ec2kit", env: dict | None = None) -> Invocation:
    """ADAPTER (ec2kit): run bench/ec2kit_job.py, a whole process driving the recipe engine.

    ``env`` picks the SSH path: the default is what `inv provision` does (the OpenSSH client,
    connections shared for 60 s); EC2KIT_SSH_PERSIST=0 opens a new connection per run;
    EC2KIT_SSH=paramiko is the fallback used when no ssh client is installed.
    """
    hosts_file = workdir / f"{variant}-{len(hosts.servers)}-hosts.json"
    hosts_file.write_text(json.dumps(hosts.as_json()))
    argv = [
        sys.executable,
        str(BENCH / "ec2kit_job.py"),
        str(JOB / "recipe.toml"),
        str(hosts_file),
        "--known-hosts",
        str(workdir / f"known_hosts_{variant}"),
    ]
    return Invocation(argv, {"PYTHONPATH": str(ROOT), "EC2KIT_SSH": "openssh", "EC2KIT_SSH_PERSIST": "60", **(env or {})}, ROOT)


def prepare_pyinfra(workdir: Path, hosts: Hosts, job_vars: Path) -> Invocation:
    """pyinfra: a generated inventory.py (ssh_key/ssh_port/ssh_user per host) and bench/job/deploy.py."""
    known = workdir / "known_hosts_pyinfra"
    entries = []
    for h in hosts.as_json():
        data = {
            "ssh_hostname": h["host"],
            "ssh_port": h["port"],
            "ssh_user": h["user"],
            "ssh_key": h["key"],
            "ssh_known_hosts_file": str(known),
            "ssh_strict_host_key_checking": "accept-new",
            "home": h["home"],
        }
        entries.append((h["name"], data))
    inventory = workdir / "pyinfra_inventory.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    argv = [str(PEERS / "bin" / "pyinfra"), str(inventory), "deploy.py", "-y"]
    return Invocation(argv, {"BENCH_VARS": str(job_vars)})


def prepare_ansible(workdir: Path, hosts: Hosts, job_vars: Path, pipelining: bool) -> Invocation:
    """Ansible: a generated inventory and ansible.cfg (forks=8, no host key checking), playbook.yml."""
    tag = "on" if pipelining else "off"
    inventory = workdir / f"ansible_inventory_{tag}.ini"
    inventory.write_text(
        "[all]\n"
        + "".join(
            f"{h['name']} ansible_host={h['host']} ansible_port={h['port']} ansible_user={h['user']} "
            f"ansible_ssh_private_key_file={h['key']} home={h['home']}\n"
            for h in hosts.as_json()
        )
    )
    cfg = workdir / f"ansible_{tag}.cfg"
    cfg.write_text(
        "[defaults]\n"
        "forks = 8\n"
        "host_key_checking = False\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        f"local_tmp = {workdir / 'ansible-local'}\n"
        "remote_tmp = /tmp/.ansible-bench-remote\n"  # keeps the hosts' homes clean for the tree check
        "[ssh_connection]\n"
        f"pipelining = {pipelining}\n"
        # Ansible's default ssh_args (ControlPersist) plus a throwaway known_hosts.
        "ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null\n"
        f"control_path_dir = {workdir / 'ansible-cp'}\n"
    )
    argv = [str(PEERS / "bin" / "ansible-playbook"), "-i", str(inventory), "-e", f"@{job_vars}", "playbook.yml"]
    env = {"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOST_KEY_CHECKING": "False", "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}
    return Invocation(argv, env)


TOOLS = {
    "ec2kit": prepare_ec2kit,
    "ec2kit-fresh": lambda w, h, v: prepare_ec2kit(w, h, v, "ec2kit-fresh", {"EC2KIT_SSH_PERSIST": "0"}),
    "ec2kit-paramiko": lambda w, h, v: prepare_ec2kit(w, h, v, "ec2kit-paramiko", {"EC2KIT_SSH": "paramiko"}),
    "pyinfra": prepare_pyinfra,
    "ansible": lambda w, h, v: prepare_ansible(w, h, v, pipelining=True),
    "ansible-nopipe": lambda w, h, v: prepare_ansible(w, h, v, pipelining=False),
}
LABELS = {
    "ec2kit": "ec2kit",
    "ec2kit-fresh": "ec2kit, new connection per run",
    "ec2kit-paramiko": "ec2kit over paramiko",
    "pyinfra": "pyinfra",
    "ansible": "Ansible (pipelining on)",
    "ansible-nopipe": "Ansible (pipelining off)",
}


class RunFailed(Exception):
    pass


def run_once(inv: Invocation, log: Path) -> float:
    """Run one whole process; return its wall time in seconds (raise RunFailed with its output tail)."""
    env = {**os.environ, **inv.env}
    start = time.perf_counter()
    proc = subprocess.run(inv.argv, cwd=inv.cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    with log.open("a") as f:
        f.write(f"$ {' '.join(inv.argv)}\n# exit {proc.returncode}, {elapsed:.3f}s\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RunFailed(f"exit {proc.returncode}:\n{tail}")
    return elapsed


# --------------------------------------------------------------------------- measurements


@dataclass
class Result:
    """One tool on one host count: the first run and the no-op reruns."""

    tool: str
    hosts: int
    first_s: float | None = None
    first_sessions: dict[str, float] = field(default_factory=dict)
    noop_s: list[float] = field(default_factory=list)
    noop_sessions: dict[str, float] = field(default_factory=dict)
    tree: str = ""  # digest of the hosts' home tree after the first run
    tree_same_on_all_hosts: bool = False
    files_touched_by_noop: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def noop_median(self) -> float | None:
        return statistics.median(self.noop_s) if self.noop_s else None


@dataclass
class Trial:
    """One tool's live hosts and invocation while its host count is being measured."""

    result: Result
    hosts: Hosts
    inv: Invocation | None = None
    log: Path | None = None
    stamps: list[dict[str, int]] = field(default_factory=list)
    before: list[dict[str, int]] = field(default_factory=list)
    reps: int = 0
    manifest: dict[str, str] = field(default_factory=dict)


def guarded(trial: Trial, fn) -> None:
    """Run one phase of a trial; a failure is recorded in its result instead of stopping the benchmark."""
    if trial.result.error:
        return
    try:
        fn()
    except RunFailed as e:
        trial.result.error = str(e)
    except Exception as e:  # an adapter or environment problem: report it, keep benchmarking the others
        trial.result.error = f"{type(e).__name__}: {e}"


def first_run(trial: Trial, tool: str, workdir: Path, job_vars: Path) -> None:
    """The first run on fresh hosts, then the tree check and the ctimes the reruns must keep."""
    res, hosts = trial.result, trial.hosts
    trial.inv = TOOLS[tool](workdir, hosts, job_vars)
    before = counts_now(hosts)
    res.first_s = run_once(trial.inv, trial.log)
    res.first_sessions = per_host_delta(before, counts_now(hosts))
    manifests = [manifest(s.home) for s in hosts.servers]
    trial.manifest = manifests[0]
    res.tree = digest(manifests[0])
    res.tree_same_on_all_hosts = all(digest(m) == res.tree for m in manifests)
    trial.stamps = [ctimes(s.home) for s in hosts.servers]
    trial.before = counts_now(hosts)


def finish(trial: Trial) -> None:
    """Per-run session counts of the reruns, and which files they touched."""
    res, hosts = trial.result, trial.hosts
    if res.noop_s:
        res.noop_sessions = {k: v / len(res.noop_s) for k, v in per_host_delta(trial.before, counts_now(hosts)).items()}
    touched: set[str] = set()
    for s, old in zip(hosts.servers, trial.stamps):
        new = ctimes(s.home)
        touched |= {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    res.files_touched_by_noop = sorted(touched)


def measure_host_count(n: int, reps: dict[str, int], workdir: Path, key: Path, job_vars: Path, say) -> list[Trial]:
    """Every tool on n fresh hosts: first runs, then no-op reruns interleaved round-robin across tools.

    Interleaving keeps a load spike from other work on the machine from landing on one tool only.
    """
    trials: dict[str, Trial] = {}
    try:
        for tool, k in reps.items():
            trial = Trial(Result(tool, n), start_hosts(workdir, f"{tool}-{n}", n, key), log=workdir / f"{tool}-{n}.log", reps=k)
            trials[tool] = trial
            guarded(trial, lambda: first_run(trial, tool, workdir, job_vars))
            say(
                f"{LABELS[tool]} on {n} host(s): first run "
                + (f"{trial.result.first_s:.2f}s" if not trial.result.error else "FAILED")
            )
        for r in range(max(reps.values(), default=0)):
            order = list(trials.items())
            order = order[r % len(order) :] + order[: r % len(order)]  # rotate who goes first each round
            for tool, trial in order:
                if r < trial.reps:
                    guarded(trial, lambda: trial.result.noop_s.append(run_once(trial.inv, trial.log)))
            say(
                f"{n} host(s): no-op round {r + 1}: "
                + ", ".join(f"{t} {tr.result.noop_s[-1]:.2f}s" for t, tr in trials.items() if len(tr.result.noop_s) > r)
            )
        for trial in trials.values():
            guarded(trial, lambda: finish(trial))
    finally:
        close_ssh_masters(workdir)
        for trial in trials.values():
            trial.hosts.stop()
    return list(trials.values())


def close_ssh_masters(workdir: Path) -> None:
    """Close the ControlPersist masters Ansible left (they would outlive the hosts by 60 s)."""
    for sock in (workdir / "ansible-cp").glob("*") if (workdir / "ansible-cp").is_dir() else []:
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "bench"], capture_output=True, stdin=subprocess.DEVNULL)


def cli_startup(runs: int = 10) -> dict:
    """Median wall time of `inv --list` in the repository (and of a bare `python -c pass`)."""
    out: dict = {}
    for label, argv in (
        ("inv --list", [str(Path(sys.executable).with_name("inv")), "--list"]),
        ("python -c pass", [sys.executable, "-c", "pass"]),
    ):
        if not shutil.which(argv[0]):
            out[label] = {"error": f"{argv[0]} not found"}
            continue
        times, rc, err = [], 0, ""
        for _ in range(runs):
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
            rc, err = proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-1:] if proc.returncode else ""
        out[label] = {"median_s": statistics.median(times), "min_s": min(times), "exit": rc, "error": err[0] if err else ""}
    return out


def machine_info() -> dict:
    """Where the numbers come from."""
    cpu = next(
        (l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
        platform.processor(),
    )
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")

    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "openssh": version(["ssh", "-V"]),
        "pyinfra": version([str(PEERS / "bin" / "pyinfra"), "--version"]),
        "ansible": version([str(PEERS / "bin" / "ansible-playbook"), "--version"]),
        "ec2kit_commit": commit,
        "load_average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


# --------------------------------------------------------------------------- report


def fmt_s(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def n_(x: float) -> str:
    """A per-run count: whole numbers as such, averages to two decimals."""
    return f"{round(x, 2):g}"


def ratio(x: float | None, ref: float | None) -> str:
    return "—" if x is None or not ref else f"{x / ref:.1f}×"


def render(results: list[Result], reps: dict[str, dict[int, int]], startup: dict, info: dict, tree_check: list[str]) -> str:
    """The markdown report."""
    lines = ["# ec2kit vs pyinfra vs Ansible: the 20-step job", ""]
    lines.append(
        "Whole-process wall time (s) on fresh loopback sshd hosts; *first* = one run on fresh hosts, "
        "*no-op* = median of reruns on the same hosts (n in brackets), interleaved round-robin across tools. Channels are per host per run, "
        "from each sshd's VERBOSE log: exec = `Starting session: command`, sftp = subsystem sessions, "
        "conns = authenticated connections. Ratio = tool time / ec2kit time."
    )
    lines += [
        "",
        "| tool | hosts | run | median s | vs ec2kit | exec ch/host (max) | sftp/host | conns/host | tree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ref = {(r.hosts, "first"): r.first_s for r in results if r.tool == "ec2kit" and not r.error}
    ref.update({(r.hosts, "noop"): r.noop_median for r in results if r.tool == "ec2kit" and not r.error})
    for r in sorted(results, key=lambda r: (r.hosts, list(TOOLS).index(r.tool))):
        if r.error:
            lines.append(f"| {LABELS[r.tool]} | {r.hosts} | — | failed | — | — | — | — | {r.error.splitlines()[0][:80]} |")
            continue
        tree = ("ok" if r.tree_same_on_all_hosts else "DIFFERS across hosts") + f" `{r.tree}`"
        for phase, t, ses, n in (
            ("first", r.first_s, r.first_sessions, 1),
            ("no-op", r.noop_median, r.noop_sessions, len(r.noop_s)),
        ):
            if phase == "first":
                state = tree
            elif r.files_touched_by_noop:
                state = f"NOT a no-op: touched {len(r.files_touched_by_noop)} files ({', '.join(r.files_touched_by_noop[:3])})"
            else:
                state = "no file touched"
            ref_t = ref.get((r.hosts, "first" if phase == "first" else "noop"))
            lines.append(
                f"| {LABELS[r.tool]} | {r.hosts} | {phase} | {fmt_s(t)} ({n}) | {ratio(t, ref_t)} "
                f"| {n_(ses.get('exec', 0))} ({n_(ses.get('exec_max', 0))}) | {n_(ses.get('sftp', 0))} | {n_(ses.get('conns', 0))} | {state} |"
            )
    lines += ["", "## Goals (8 hosts)", ""]
    ec = next((r for r in results if r.tool == "ec2kit" and r.hosts == 8 and not r.error), None)
    for tool, goal in (("pyinfra", 5), ("ansible", 50)):
        peer = next((r for r in results if r.tool == tool and r.hosts == 8 and not r.error), None)
        if ec and peer and ec.noop_median:
            x = peer.noop_median / ec.noop_median
            lines.append(f"- no-op rerun ≥ {goal}× faster than {LABELS[tool]}: {x:.1f}× — {'PASS' if x >= goal else 'FAIL'}")
        else:
            lines.append(f"- no-op rerun ≥ {goal}× faster than {LABELS[tool]}: not measured")
        for variant in ("ec2kit-fresh", "ec2kit-paramiko"):
            other = next((r for r in results if r.tool == variant and r.hosts == 8 and not r.error), None)
            if other and peer and other.noop_median:
                lines.append(f"  - {LABELS[variant]}: {peer.noop_median / other.noop_median:.1f}× (for comparison)")
    ec_all = [r for r in results if r.tool.startswith("ec2kit") and not r.error]
    if ec_all:
        worst = max(max(r.first_sessions.get("exec_max", 0), r.noop_sessions.get("exec_max", 0)) for r in ec_all)
        lines.append(
            f"- ≤ 2 exec channels per host for the whole recipe (any host count, first or no-op): max {worst:g} — {'PASS' if worst <= 2 else 'FAIL'}"
        )
    else:
        lines.append("- ≤ 2 exec channels per host: not measured (ec2kit did not run)")
    lines += ["", "## Same result on every host and tool", ""]
    lines += tree_check or ["- every tool produced the same home tree (paths, modes, contents) on every host"]
    lines += ["", "## CLI start-up", "", "| command | median s | min s | note |", "|---|---|---|---|"]
    for label, v in startup.items():
        note = v.get("error") or ("" if v.get("exit", 0) == 0 else f"exit {v['exit']}")
        lines.append(f"| `{label}` | {fmt_s(v.get('median_s'))} | {fmt_s(v.get('min_s'))} | {note} |")
    lines += ["", "## Repetitions", ""]
    lines += [
        f"- {LABELS[t]}: " + ", ".join(f"{n} host(s): {k} no-op reruns" for n, k in sorted(d.items())) for t, d in reps.items()
    ]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in info.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def job_vars_file(workdir: Path) -> Path:
    """recipe.toml's [vars] as JSON: the peers' copy of the job's variables."""
    data = tomllib.loads((JOB / "recipe.toml").read_text())
    path = workdir / "vars.json"
    path.write_text(json.dumps(data["vars"], indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,8", help="host counts, comma-separated (default 1,8)")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"tools, comma-separated (default {','.join(TOOLS)})")
    ap.add_argument("--reps", type=int, default=5, help="no-op reruns for ec2kit (each variant) and pyinfra (default 5)")
    ap.add_argument("--ansible-reps", type=int, default=1, help="no-op reruns for Ansible (default 1: 10-100 s each here)")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest", help="report path without suffix (.md and .json are written)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, hosts) for inspection")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        ap.error(f"unknown tool(s) {unknown}; choose from {list(TOOLS)}")
    if any(not t.startswith("ec2kit") for t in tools) and not (PEERS / "bin" / "pyinfra").exists():
        print("bench/.peers/ is missing: run `bash bench/setup.sh` first.", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="ec2kit-bench-"))
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    job_vars = job_vars_file(workdir)
    results: list[Result] = []
    reps: dict[str, dict[int, int]] = {}
    trees: dict[tuple[str, int], dict[str, str]] = {}
    started = time.perf_counter()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        say = lambda msg: print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)  # noqa: E731
        for n in (int(x) for x in args.hosts.split(",")):
            per_tool = {t: (args.ansible_reps if t.startswith("ansible") else args.reps) for t in tools}
            for tool, k in per_tool.items():
                reps.setdefault(tool, {})[n] = k
            for trial in measure_host_count(n, per_tool, workdir, key, job_vars, say):
                res = trial.result
                if res.error:
                    say(f"{LABELS[res.tool]} on {n} host(s) FAILED: {res.error}")
                else:
                    trees[(res.tool, n)] = trial.manifest
                results.append(res)
        tree_check = []
        if trees:
            (ref_tool, ref_n), ref_m = next(iter(trees.items()))
            for (tool, n), m in trees.items():
                diff = manifest_diff(ref_m, m)
                if diff:
                    tree_check.append(f"- {LABELS[tool]} on {n} host(s) differs from {LABELS[ref_tool]} on {ref_n}:")
                    tree_check += [f"  - `{d}`" for d in diff[:12]]
        startup = cli_startup()
        info = machine_info()
        info["load_average"] = (
            f"{load_before} at start, {info['load_average']} at end (1/5/15 min; other work shares these 2 cores)"
        )
        info["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
        report = render(results, reps, startup, info, tree_check)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(report)
        payload = {
            "results": [asdict(r) | {"noop_median": r.noop_median} for r in results],
            "reps": reps,
            "startup": startup,
            "machine": info,
            "tree_check": tree_check,
            "reference_tree": next(iter(trees.values()), {}),
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
        print()
        print(report)
        return 0 if all(not r.error for r in results) else 1
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
