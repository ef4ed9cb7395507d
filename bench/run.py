#!/usr/bin/env python3
"""Benchmark ec2kit's CLI (`inv provision`, `inv recipe`) against pyinfra and Ansible on the same 20-step job.

Usage (from the repository root, with the venv's Python; run `bash bench/setup.sh` once first):

    .venv/bin/python bench/run.py                 # 1, 8 and 16 hosts, every default tool
    .venv/bin/python bench/run.py --quick         # 1 and 8 hosts, 3 reps: a ~3-5 minute check
    .venv/bin/python bench/run.py --hosts 8 --tools ec2kit,pyinfra --reps 3

The hosts are instances of ec2kit's sandbox (moto's EC2 server plus a real sshd per instance)
launched for the run in a private EC2KIT_HOME with EC2KIT_SANDBOX=1, named h0..h15 and tagged
role=bench. ec2kit's headline rows are `inv provision h0,…,hN-1 --recipe PATH` run as a user
runs it: the venv's `inv` as a subprocess, cwd a temporary project directory (its tasks.py is
`from ec2kit.cli import ns`), against the sandbox's EC2 endpoint: a warm run finds the hosts in
ec2kit's host cache (no AWS call) and confirms each one's identity in its first batch; a cold one
asks AWS when a cached address does not answer. pyinfra and Ansible reach the very same sshd,
home and user with ec2kit's own private key.

For each host count: each tool's *first run* on wiped homes, then at least 5 rounds of *no-op
reruns*, Ansible included: in each round every tool runs once (who goes first rotates), so each
round gives a ratio between tools measured under the same load; the report gives medians of the
runs and of the per-round ratios, and the 1-minute load average at each run. Every run is a whole process timed from outside; each sshd's log
(LogLevel VERBOSE) tells its exec channels, SFTP sessions and new connections. After each
first run the homes' trees (paths, modes, contents) must be identical across hosts and tools;
no rerun may change a file's ctime — the report says which run did.
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
from report import LABELS, MIN_REPS, Result, Run, goal_lines, load1, render, summary  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
JOB = BENCH / "job"
PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent  # run.py runs from the venv: its `inv` is the user's
sys.path.insert(0, str(ROOT))

#: What the tools may leave in a home besides the job's files (excluded from the tree check).
TOOL_DROPPINGS = {".ansible", ".cache", ".ssh", ".pyinfra", ".ec2kit"}


# --------------------------------------------------------------------------- hosts


@dataclass
class Host:
    """One sandbox instance and the sshd that serves it (found through the sandbox's Resolver)."""

    name: str
    id: str
    host: str
    port: int
    user: str
    home: Path
    log_file: Path


@dataclass
class Sandbox:
    """The bench's private ec2kit state: EC2KIT_HOME, a project directory, the launched hosts."""

    home: Path  # EC2KIT_HOME
    project: Path  # cwd of every `inv` run
    hosts: list[Host]

    @property
    def key(self) -> Path:
        return self.home / "keys" / "ec2kit"

    def env(self) -> dict[str, str]:
        return {"EC2KIT_HOME": str(self.home), "EC2KIT_SANDBOX": "1"}

    def as_json(self, n: int) -> list[dict]:
        """The first n hosts as the peers' inventories and the library adapter read them."""
        return [
            {"name": h.name, "host": h.host, "port": h.port, "user": h.user, "home": str(h.home), "key": str(self.key)}
            for h in self.hosts[:n]
        ]

    def stop(self) -> None:
        from ec2kit import sandbox
        from ec2kit.settings import Settings

        sandbox.down(Settings.from_env(home=self.home))


def launch_hosts(workdir: Path, n: int, say) -> Sandbox:
    """Launch n sandbox instances h0..hn-1 (tag role=bench) in a fresh EC2KIT_HOME under workdir."""
    home = workdir / "ec2kit-home"
    project = workdir / "project"
    project.mkdir(parents=True)
    (project / "tasks.py").write_text("from ec2kit.cli import ns  # noqa: F401\n")
    os.environ.update({"EC2KIT_HOME": str(home), "EC2KIT_SANDBOX": "1"})
    from ec2kit.actions import launch
    from ec2kit.context import Context
    from ec2kit.sandbox import Resolver
    from ec2kit.settings import Settings

    with Context(Settings.from_env(), quiet=True) as ctx:
        ctx.cloud  # noqa: B018 - starts the sandbox
        resolver = Resolver(ctx.sandbox)
        hosts = []
        for i in range(n):
            inst = launch(ctx, f"h{i}", wait=True, type="t3.micro", tags={"role": "bench"})
            addr = resolver.address(inst.id)
            if not addr or addr.get("filtered"):
                raise RuntimeError(f"sandbox instance h{i} ({inst.id}) has no reachable sshd: {addr}")
            root = ctx.sandbox.dir / "hosts" / inst.id  # the sandbox's SshdHost root: home/ and sshd.log
            hosts.append(Host(f"h{i}", inst.id, addr["host"], int(addr["port"]), addr["user"], root / "home", root / "sshd.log"))
        say(f"launched {n} sandbox instance(s) in {home}")
    return Sandbox(home, project, hosts)


def wipe(hosts: list[Host]) -> None:
    """Empty the homes (they start empty in the sandbox): the next tool's first run starts fresh."""
    for h in hosts:
        for p in h.home.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def session_counts(log_file: Path) -> dict[str, int]:
    """Cumulative exec channels, SFTP sessions and authenticated connections in a host's sshd log."""
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    counts = {"exec": 0, "sftp": 0, "conns": 0}
    for line in text.splitlines():
        if "Starting session: command" in line or "Starting session: shell" in line:
            counts["exec"] += 1
        elif "Starting session: subsystem" in line:
            counts["sftp"] += 1
        elif line.startswith("Accepted publickey"):
            counts["conns"] += 1
    return counts


def counts_now(hosts: list[Host]) -> list[dict[str, int]]:
    time.sleep(0.05)  # let sshd flush the last session's log line
    return [session_counts(h.log_file) for h in hosts]


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


@dataclass
class Setup:
    """What every adapter needs: the sandbox, a scratch directory, the job's variables, the sudo job."""

    sandbox: Sandbox
    workdir: Path
    job_vars: Path
    sudo_recipe: Path


def inv_provision(setup: Setup, n: int, *, sudo: bool = False, cold: bool = False) -> Invocation:
    """HEADLINE: `inv provision h0,…,hN-1 --recipe PATH`, the venv's inv in a project directory.

    Warm (default settings): the ControlPersist masters the previous run left (60 s) are reused.
    Cold: EC2KIT_SSH_PERSIST=0, a new SSH handshake per host per run.
    """
    recipe = setup.sudo_recipe if sudo else JOB / "recipe.toml"
    names = ",".join(h.name for h in setup.sandbox.hosts[:n])
    env = setup.sandbox.env() | ({"EC2KIT_SSH_PERSIST": "0"} if cold else {})
    return Invocation([str(VENV_BIN / "inv"), "provision", names, "--recipe", str(recipe)], env, setup.sandbox.project)


def inv_recipe(setup: Setup, n: int) -> Invocation:
    """`inv recipe PATH --on h0,…,hN-1` (warm): the same engine behind the other command."""
    names = ",".join(h.name for h in setup.sandbox.hosts[:n])
    return Invocation(
        [str(VENV_BIN / "inv"), "recipe", str(JOB / "recipe.toml"), "--on", names], setup.sandbox.env(), setup.sandbox.project
    )


def library_call(setup: Setup, n: int) -> Invocation:
    """EXTRA, not a user command: bench/ec2kit_job.py calls run_steps_on_host per host (no inv, no boto3,
    no resolver), with the addresses the resolver gave; its own known_hosts and connection aliases."""
    hosts_file = setup.workdir / f"library-{n}-hosts.json"
    hosts_file.write_text(json.dumps(setup.sandbox.as_json(n)))
    argv = [
        sys.executable,
        str(BENCH / "ec2kit_job.py"),
        str(JOB / "recipe.toml"),
        str(hosts_file),
        "--known-hosts",
        str(setup.workdir / "known_hosts_library"),
    ]
    return Invocation(argv, {"PYTHONPATH": str(ROOT), "EC2KIT_SSH": "openssh"}, ROOT)


def prepare_pyinfra(setup: Setup, n: int) -> Invocation:
    """pyinfra: a generated inventory.py (ssh_key/ssh_port/ssh_user per host) and bench/job/deploy.py."""
    known = setup.workdir / "known_hosts_pyinfra"
    entries = []
    for h in setup.sandbox.as_json(n):
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
    inventory = setup.workdir / f"pyinfra_inventory_{n}.py"
    inventory.write_text(f"hosts = {entries!r}\n")
    argv = [str(PEERS / "bin" / "pyinfra"), str(inventory), "deploy.py", "-y"]
    return Invocation(argv, {"BENCH_VARS": str(setup.job_vars)})


def prepare_ansible(setup: Setup, n: int, pipelining: bool) -> Invocation:
    """Ansible: a generated inventory and ansible.cfg (forks=8, no host key checking), playbook.yml."""
    tag = "on" if pipelining else "off"
    workdir = setup.workdir
    inventory = workdir / f"ansible_inventory_{tag}_{n}.ini"
    inventory.write_text(
        "[all]\n"
        + "".join(
            f"{h['name']} ansible_host={h['host']} ansible_port={h['port']} ansible_user={h['user']} "
            f"ansible_ssh_private_key_file={h['key']} home={h['home']}\n"
            for h in setup.sandbox.as_json(n)
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
    argv = [str(PEERS / "bin" / "ansible-playbook"), "-i", str(inventory), "-e", f"@{setup.job_vars}", "playbook.yml"]
    env = {"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOST_KEY_CHECKING": "False", "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}
    return Invocation(argv, env)


#: tool key → adapter. The first five are `inv` commands (the headline); the order is the table's.
TOOLS = {
    "ec2kit": inv_provision,
    "ec2kit-cold": lambda s, n: inv_provision(s, n, cold=True),
    "ec2kit-sudo": lambda s, n: inv_provision(s, n, sudo=True),
    "ec2kit-sudo-cold": lambda s, n: inv_provision(s, n, sudo=True, cold=True),
    "ec2kit-recipe": inv_recipe,
    "ec2kit-library": library_call,
    "ec2kit-paramiko": lambda s, n: Invocation(
        inv_provision(s, n).argv, s.sandbox.env() | {"EC2KIT_SSH": "paramiko"}, s.sandbox.project
    ),
    "pyinfra": prepare_pyinfra,
    "ansible": lambda s, n: prepare_ansible(s, n, pipelining=True),
    "ansible-nopipe": lambda s, n: prepare_ansible(s, n, pipelining=False),
}
DEFAULT_TOOLS = [t for t in TOOLS if t not in ("ansible-nopipe", "ec2kit-paramiko")]
#: First runs go in this order (slow peers first, so the warm ec2kit rows start their no-op rounds
#: with the masters their first runs left, not ones a minute-long Ansible run let expire).
FIRST_RUN_ORDER = ["ansible-nopipe", "ansible", "pyinfra", "ec2kit-cold", "ec2kit-sudo-cold", "ec2kit-paramiko", "ec2kit-library"]
#: Warm rows whose first run is preceded by an untimed `inv recipe` of one `true` step: the masters it
#: leaves stand for the ones `inv launch` leaves (it waits for SSH through a shared connection), so
#: a *warm first run* is what a user gets running `inv provision` right after `inv launch`.
WARM_FIRST = ("ec2kit", "ec2kit-sudo", "ec2kit-recipe")
#: A warm row whose last run is older than this (an Ansible run took a minute) gets an untimed
#: warm-up first: "warm" is a user rerunning within the minute the shared connections linger.
REWARM_AFTER = 50.0


def warm_up(setup: Setup, n: int, log: Path) -> None:
    """Open the shared connections to h0..hN-1 (untimed), as `inv launch` leaves them."""
    recipe = setup.workdir / "warm-up.toml"
    if not recipe.exists():
        recipe.write_text('description = "open the connections"\n\n[[step]]\nname = "hello"\nrun = "true"\n')
    names = ",".join(h.name for h in setup.sandbox.hosts[:n])
    run_once(
        Invocation([str(VENV_BIN / "inv"), "recipe", str(recipe), "--on", names], setup.sandbox.env(), setup.sandbox.project), log
    )


def sudo_job(workdir: Path) -> Path:
    """A copy of the job with `sudo = true` on every step (templates/ and files/ copied: ec2kit refuses a
    template reached through a symlink out of the project)."""
    out = workdir / "job-sudo"
    out.mkdir()
    text = (JOB / "recipe.toml").read_text()
    marked = text.replace("\n[[step]]\n", "\n[[step]]\nsudo = true\n")
    if marked.count("sudo = true") != text.count("\n[[step]]\n"):
        raise RuntimeError("could not mark every step of bench/job/recipe.toml with sudo = true")
    (out / "recipe.toml").write_text(marked.replace('description = "', 'description = "(every step with sudo) ', 1))
    for sub in ("templates", "files"):
        shutil.copytree(JOB / sub, out / sub, symlinks=False)
    return out / "recipe.toml"


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


def all_ctimes(hosts: list[Host]) -> list[dict[str, int]]:
    return [ctimes(h.home) for h in hosts]


def timed_run(inv: Invocation, hosts: list[Host], log: Path, stamps: list[dict[str, int]] | None) -> tuple[Run, list]:
    """Run once; count each sshd's sessions around it; with ``stamps`` (ctimes before), list what it touched."""
    before, load = counts_now(hosts), load1()
    s = run_once(inv, log)
    d = per_host_delta(before, counts_now(hosts))
    run = Run(s, d["exec"], int(d["exec_max"]), d["sftp"], d["conns"], load=load)
    now = all_ctimes(hosts)
    if stamps is not None:
        for h, old, new in zip(hosts, stamps, now):
            run.touched += sorted(f"{h.name}:{k}" for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return run, now


def measure_host_count(n: int, reps: dict[str, int], setup: Setup, say) -> tuple[list[Result], dict]:
    """Every tool on the same n hosts: first runs on wiped homes, then no-op rounds, interleaved round-robin.

    All tools share the hosts: each first run starts from empty homes (wiped), and since every
    tool leaves the identical tree (checked), every tool's no-op reruns run on that tree; each run's
    ctime check says which run touched a file. Ansible's reruns come in the last rounds so that its
    minute-long runs do not outlast the 60 s the warm rows' masters linger between their reruns.
    """
    hosts = setup.sandbox.hosts[:n]
    results = {t: Result(t, n) for t in reps}
    invs = {t: TOOLS[t](setup, n) for t in reps}
    logs = {t: setup.workdir / f"{t}-{n}.log" for t in reps}
    manifests: dict[str, dict[str, str]] = {}
    order = [t for t in FIRST_RUN_ORDER if t in reps] + [t for t in reps if t not in FIRST_RUN_ORDER]
    stamps: list[dict[str, int]] = []
    rewarmed: dict[str, int] = {}
    for tool in order:
        res = results[tool]
        try:
            wipe(hosts)
            if tool in WARM_FIRST:
                warm_up(setup, n, logs[tool])
            res.first, stamps = timed_run(invs[tool], hosts, logs[tool], None)
            ms = [manifest(h.home) for h in hosts]
            manifests[tool] = ms[0]
            res.tree = digest(ms[0])
            res.tree_same_on_all_hosts = all(digest(m) == res.tree for m in ms)
            say(f"{n} host(s): {LABELS[tool]}: first run {res.first.s:.2f}s (conns/host {res.first.conns:g})")
        except (RunFailed, OSError, RuntimeError) as e:
            res.error = str(e)
            say(f"{n} host(s): {LABELS[tool]}: first run FAILED: {e}")
    rounds = max(reps.values(), default=0)
    last = {t: time.monotonic() for t in order}  # when each tool last ran (its masters linger 60 s)
    for r in range(rounds):
        live = [t for t in order if not results[t].error]
        live = live[r % len(live) :] + live[: r % len(live)] if live else []  # rotate who goes first
        done = []
        for tool in live:
            if r < rounds - reps[tool]:  # fewer reps asked for a tool: in the last rounds
                continue
            try:
                if tool in WARM_FIRST and time.monotonic() - last[tool] > REWARM_AFTER:
                    warm_up(setup, n, logs[tool])  # a minute-long Ansible run let its masters expire
                    rewarmed[tool] = rewarmed.get(tool, 0) + 1
                run, stamps = timed_run(invs[tool], hosts, logs[tool], stamps)
                last[tool] = time.monotonic()
                run.round = r
                results[tool].noop.append(run)
                done.append(f"{tool} {run.s:.2f}s")
            except (RunFailed, OSError) as e:
                results[tool].error = str(e)
                stamps = all_ctimes(hosts)
        say(f"{n} host(s): no-op round {r + 1}/{rounds}: " + ", ".join(done))
    close_ansible_masters(setup.workdir)
    if rewarmed:
        say(f"{n} host(s): warm rows re-warmed (untimed) after a gap over {REWARM_AFTER:.0f}s: {rewarmed}")
    return list(results.values()), manifests


def close_ansible_masters(workdir: Path) -> None:
    """Close the ControlPersist masters Ansible left (they would outlive the hosts by 60 s)."""
    cp = workdir / "ansible-cp"
    for sock in cp.glob("*") if cp.is_dir() else []:
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "bench"], capture_output=True, stdin=subprocess.DEVNULL)


def cli_startup(setup: Setup, rounds: int = 7) -> dict:
    """`inv --list`, `inv instances`, a warm 1-host no-op `inv provision` and `python -c pass`, one of
    each per round (interleaved, so each round's ratios share one load): every time, and the load."""
    provision = TOOLS["ec2kit"](setup, 1)
    commands = {
        "inv --list": Invocation([str(VENV_BIN / "inv"), "--list"], setup.sandbox.env(), setup.sandbox.project),
        "inv instances": Invocation([str(VENV_BIN / "inv"), "instances"], setup.sandbox.env(), setup.sandbox.project),
        "inv provision h0 (warm no-op)": provision,
        "python -c pass": Invocation([sys.executable, "-c", "pass"], {}, setup.sandbox.project),
    }
    log = setup.workdir / "startup.log"
    run_once(provision, log)  # untimed: the shared connection a warm run finds
    out: dict = {label: {"times": [], "loads": [], "exit": 0, "error": ""} for label in commands}
    for _ in range(rounds):
        for label, inv in commands.items():
            load = load1()
            try:
                t = run_once(inv, log)
            except RunFailed as e:
                out[label]["exit"], out[label]["error"] = 1, str(e).splitlines()[-1][:100]
                continue
            out[label]["times"].append(t)
            out[label]["loads"].append(load)
    for v in out.values():
        v["median_s"] = statistics.median(v["times"]) if v["times"] else None
        v["min_s"] = min(v["times"]) if v["times"] else None
    return out


def dirty() -> str:
    """' (+ uncommitted changes under ec2kit/)' when the measured code is not exactly the commit."""
    p = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ec2kit"], capture_output=True, text=True)
    return " (+ uncommitted changes under ec2kit/)" if p.stdout.strip() else ""


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

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "user": f"uid {os.getuid()}" + (" (root: sudo steps change no privilege)" if os.getuid() == 0 else ""),
        "openssh": version(["ssh", "-V"]),
        "pyinfra": version([str(PEERS / "bin" / "pyinfra"), "--version"]),
        "ansible": version([str(PEERS / "bin" / "ansible-playbook"), "--version"]),
        "ec2kit_commit": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) + dirty(),
        "load_average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


# --------------------------------------------------------------------------- main


def job_vars_file(workdir: Path) -> Path:
    """recipe.toml's [vars] as JSON: the peers' copy of the job's variables."""
    data = tomllib.loads((JOB / "recipe.toml").read_text())
    path = workdir / "vars.json"
    path.write_text(json.dumps(data["vars"], indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,8,16", help="host counts, comma-separated (default 1,8,16)")
    ap.add_argument(
        "--tools",
        default=",".join(DEFAULT_TOOLS),
        help=f"comma-separated (default {','.join(DEFAULT_TOOLS)}; also ansible-nopipe, ec2kit-paramiko)",
    )
    ap.add_argument("--reps", type=int, default=MIN_REPS, help=f"no-op reruns per tool (default {MIN_REPS})")
    ap.add_argument(
        "--ansible-reps", type=int, default=None, help="no-op reruns for Ansible (default: --reps; 10-120 s each here)"
    )
    ap.add_argument("--quick", action="store_true", help=f"1 and 8 hosts, {MIN_REPS} reps for every tool")
    ap.add_argument("--note", default="", help="a line printed at the top of the report (e.g. which code it measured)")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest", help="report path without suffix (.md and .json are written)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, sandbox) for inspection")
    args = ap.parse_args(argv)
    if args.quick:
        args.hosts, args.reps = "1,8", MIN_REPS
    if args.ansible_reps is None:
        args.ansible_reps = args.reps
    tools = [t for t in args.tools.split(",") if t]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        ap.error(f"unknown tool(s) {unknown}; choose from {list(TOOLS)}")
    if any(not t.startswith("ec2kit") for t in tools) and not (PEERS / "bin" / "pyinfra").exists():
        print("bench/.peers/ is missing: run `bash bench/setup.sh` first.", file=sys.stderr)
        return 2
    if not (VENV_BIN / "inv").exists():
        print(f"{VENV_BIN / 'inv'} is missing: run bench/run.py with the venv's Python (.venv/bin/python).", file=sys.stderr)
        return 2
    for var in ("EC2KIT_SSH", "EC2KIT_SSH_PERSIST", "EC2KIT_SSH_ADDRESS", "AWS_PROFILE", "PYTHONDONTWRITEBYTECODE"):
        os.environ.pop(var, None)  # warm rows measure the default settings; every tool may use its .pyc files
    counts = sorted({int(x) for x in args.hosts.split(",")})

    workdir = Path(tempfile.mkdtemp(prefix="ec2kit-bench-"))
    started = time.perf_counter()
    say = lambda msg: print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)  # noqa: E731
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    sandbox = None
    try:
        sandbox = launch_hosts(workdir, max(counts), say)
        setup = Setup(sandbox, workdir, job_vars_file(workdir), sudo_job(workdir))
        results: list[Result] = []
        reps: dict[str, dict[int, int]] = {}
        trees: dict[tuple[str, int], dict[str, str]] = {}
        for n in counts:
            per_tool = {t: (args.ansible_reps if t.startswith("ansible") else args.reps) for t in tools}
            for tool, k in per_tool.items():
                reps.setdefault(tool, {})[n] = k
            res, manifests = measure_host_count(n, per_tool, setup, say)
            results += res
            trees.update({(t, n): m for t, m in manifests.items()})
        tree_check = []
        if trees:
            (ref_tool, ref_n), ref_m = next(iter(trees.items()))
            for (tool, n), m in trees.items():
                diff = manifest_diff(ref_m, m)
                if diff:
                    tree_check.append(f"- {LABELS[tool]} on {n} host(s) differs from {LABELS[ref_tool]} on {ref_n}:")
                    tree_check += [f"  - `{d}`" for d in diff[:12]]
        startup = cli_startup(setup)
        info = machine_info()
        info["load_average"] = (
            f"{load_before} at start, {info['load_average']} at end (1/5/15 min; other work shares these cores)"
        )
        info["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
        report = render(results, reps, startup, info, tree_check, args.note, list(TOOLS))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(report)
        payload = {
            "note": args.note,
            "results": [asdict(r) | {"noop_median": r.noop_median} for r in results],
            "reps": reps,
            "startup": startup,
            "machine": info,
            "tree_check": tree_check,
            "reference_tree": next(iter(trees.values()), {}),
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
        print()
        print(summary(results))
        print("\n".join(goal_lines(results, startup)))
        print(f"\nreport: {args.out.with_suffix('.md')}")
        return 0 if all(not r.error for r in results) else 1
    finally:
        if sandbox is not None:
            sandbox.stop()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
