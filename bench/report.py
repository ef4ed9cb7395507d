"""bench/run.py's measurements and its report: runs, results, ratios within rounds, goals, markdown.

Pure: what run.py measured in, text out (no process is started here).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

LABELS = {
    "ec2kit": "`inv provision`, warm",
    "ec2kit-cold": "`inv provision`, cold (EC2KIT_SSH_PERSIST=0)",
    "ec2kit-sudo": "`inv provision`, sudo, warm",
    "ec2kit-sudo-cold": "`inv provision`, sudo, cold",
    "ec2kit-recipe": "`inv recipe --on`, warm",
    "ec2kit-library": "ec2kit library call, not a user command",
    "ec2kit-paramiko": "`inv provision` over paramiko (EC2KIT_SSH=paramiko)",
    "pyinfra": "pyinfra",
    "ansible": "Ansible (pipelining on)",
    "ansible-nopipe": "Ansible (pipelining off)",
}

#: No-op reruns per tool and host count, every tool (Ansible too): the report's medians need 5.
MIN_REPS = 5


# --------------------------------------------------------------------------- measurements


@dataclass
class Run:
    """One whole-process run: wall time, per-host SSH work (from the sshd logs), files it touched."""

    s: float
    exec: float = 0  # exec channels per host (mean)
    exec_max: int = 0
    sftp: float = 0
    conns: float = 0  # new authenticated connections per host (0: a warm master served it)
    touched: list[str] = field(default_factory=list)
    load: float = 0  # 1-minute load average when the run started (other work shares the cores)
    round: int = -1  # which no-op round (-1: the first run)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Result:
    """One tool on one host count: the first run and the no-op reruns."""

    tool: str
    hosts: int
    first: Run | None = None
    noop: list[Run] = field(default_factory=list)
    tree: str = ""  # digest of the hosts' home tree after the first run
    tree_same_on_all_hosts: bool = False
    error: str = ""

    @property
    def first_s(self) -> float | None:
        return self.first.s if self.first else None

    @property
    def noop_median(self) -> float | None:
        return statistics.median(r.s for r in self.noop) if self.noop else None

    @property
    def load_median(self) -> float | None:
        loads = [r.load for r in ([self.first] if self.first else []) + self.noop]
        return statistics.median(loads) if loads else None

    def in_round(self, r: int) -> Run | None:
        """This tool's no-op run in round ``r`` (None if it did not run then)."""
        return next((x for x in self.noop if x.round == r), None)

    def noop_mean(self, key: str) -> float:
        return sum(getattr(r, key) for r in self.noop) / len(self.noop) if self.noop else 0

    @property
    def touched(self) -> list[str]:
        return sorted({f for r in self.noop for f in r.touched})


def startup_ratio(startup: dict, label: str, base: str = "inv --list") -> tuple[float, float, float] | None:
    """(median, lowest, highest) of ``label``'s time / ``base``'s time within each round."""
    a, b = startup.get(label, {}).get("times", []), startup.get(base, {}).get("times", [])
    ratios = [x / y for x, y in zip(a, b) if y] if len(a) == len(b) else []
    return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None


# --------------------------------------------------------------------------- report


def fmt_s(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def n_(x: float) -> str:
    """A per-run count: whole numbers as such, averages to two decimals."""
    return f"{round(x, 2):g}"


def ratio(peer: float | None, mine: float | None) -> str:
    return "—" if peer is None or not mine else f"{peer / mine:.1f}×"


def round_ratios(results: list[Result], peer: str, mine: str, n: int) -> tuple[float, float, float, int] | None:
    """(median, lowest, highest, rounds) of peer time / this tool's time within each no-op round."""
    a = next((r for r in results if r.tool == peer and r.hosts == n and not r.error), None)
    b = next((r for r in results if r.tool == mine and r.hosts == n and not r.error), None)
    if a is None or b is None:
        return None
    ratios = [pa.s / pb.s for pb in b.noop if (pa := a.in_round(pb.round)) is not None and pb.s]
    return (statistics.median(ratios), min(ratios), max(ratios), len(ratios)) if ratios else None


def ratio_lines(results: list[Result]) -> list[str]:
    """Per host count and ec2kit row: the peers' time / its time within each round (same load)."""
    lines = [
        "| tool | hosts | pyinfra / it, per round: median (min–max, rounds) | Ansible / it, per round |",
        "|---|---|---|---|",
    ]
    for n in sorted({r.hosts for r in results}):
        for r in results:
            if r.hosts != n or r.error or not r.tool.startswith("ec2kit") or not r.noop:
                continue
            cells = []
            for peer in ("pyinfra", "ansible"):
                x = round_ratios(results, peer, r.tool, n)
                cells.append(f"{x[0]:.1f}× ({x[1]:.1f}–{x[2]:.1f}, {x[3]})" if x else "—")
            lines.append(f"| {LABELS[r.tool]} | {n} | {cells[0]} | {cells[1]} |")
    return lines


def goal_lines(results: list[Result], startup: dict | None = None) -> list[str]:
    """Issue 19's targets: the headline row (`inv provision`, warm) against the peers within each
    round, and the everyday commands against `inv --list` within each round."""

    def get(tool: str, n: int) -> Result | None:
        return next((r for r in results if r.tool == tool and r.hosts == n and not r.error), None)

    lines = []
    for peer, goal, label in (("pyinfra", 8, "pyinfra"), ("ansible", 60, "Ansible")):
        x = round_ratios(results, peer, "ec2kit", 8)
        if x:
            lines.append(
                f"- 8 hosts, no-op, `inv provision` ≥ {goal}× faster than {label}: {x[0]:.1f}× (median of {x[3]} rounds, "
                f"{x[1]:.1f}–{x[2]:.1f}) — {'PASS' if x[0] >= goal else 'FAIL'}"
            )
        else:
            lines.append(f"- 8 hosts, no-op, `inv provision` ≥ {goal}× faster than {label}: not measured")
    for label, goal in (("inv provision h0 (warm no-op)", 1.5), ("inv instances", 2.0)):
        x = startup_ratio(startup or {}, label)
        if x:
            lines.append(
                f"- `{label}` ≤ {goal}× `inv --list`: {x[0]:.2f}× (median of rounds, {x[1]:.2f}–{x[2]:.2f}) — "
                f"{'PASS' if x[0] <= goal else 'FAIL'}"
            )
        else:
            lines.append(f"- `{label}` ≤ {goal}× `inv --list`: not measured")
    for n in sorted({r.hosts for r in results}):
        e, p = get("ec2kit", n), get("pyinfra", n)
        if e and p and e.first_s and p.first_s:
            x = p.first_s / e.first_s
            c = get("ec2kit-cold", n)
            cold = f" (with a new SSH handshake per host, the cold row: {p.first_s / c.first_s:.1f}×)" if c and c.first_s else ""
            lines.append(
                f"- {n} host(s), first run, `inv provision` ≥ 3× faster than pyinfra (one run each): {x:.1f}× — {'PASS' if x >= 3 else 'FAIL'}{cold}"
            )
    return lines


def render(
    results: list[Result], reps: dict, startup: dict, info: dict, tree_check: list[str], note: str, order: list[str]
) -> str:
    """The markdown report (``order``: the tools in table order)."""
    lines = ["# ec2kit's CLI vs pyinfra vs Ansible: the 20-step job on sandbox instances", ""]
    if note:
        lines += [f"**{note}**", ""]
    lines.append(
        "Whole-process wall time (s), timed from outside, on ec2kit sandbox instances (moto EC2 + one real sshd each). "
        "*first* = one run on emptied homes; *no-op* = median of reruns (n in brackets), interleaved round-robin across tools. "
        "*warm* = default settings: the ControlPersist masters (60 s) an earlier run left are reused (a warm *first* run "
        "follows an untimed one-step `inv recipe` that opens them, as `inv launch` leaves them open); *cold* = "
        "`EC2KIT_SSH_PERSIST=0`, a new SSH handshake per host per run. warm `inv` rows find the hosts in ec2kit's "
        "host cache (no AWS call) and confirm each one in its first batch (instance metadata: id and Name tag). Per host per run from each sshd's VERBOSE log: exec "
        "channels (max over hosts), SFTP sessions, new connections. `×pyinfra` / `×Ansible` = their time / this row's "
        "(same host count and phase, medians; >1 means this row is faster). *min s*: the fastest rerun, less exposed "
        "to load spikes from other work on the machine than the median."
    )
    lines += [
        "",
        "| tool | hosts | run | median s (n) | min s | ×pyinfra | ×Ansible | exec/host (max) | sftp/host | conns/host | load | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    peer = {}
    for r in results:
        if r.tool in ("pyinfra", "ansible") and not r.error:
            peer[(r.tool, r.hosts, "first")] = r.first_s
            peer[(r.tool, r.hosts, "noop")] = r.noop_median
    for r in sorted(results, key=lambda r: (r.hosts, order.index(r.tool) if r.tool in order else len(order))):
        if r.error:
            err = r.error.strip().splitlines()[-1][:100].replace("|", "/") if r.error.strip() else "?"
            lines.append(f"| {LABELS[r.tool]} | {r.hosts} | — | failed | — | — | — | — | — | — | — | {err} |")
            if not r.first:
                continue
        tree = ("tree ok" if r.tree_same_on_all_hosts else "tree DIFFERS across hosts") + f" `{r.tree}`"
        rows = []
        if r.first:
            f = r.first
            rows.append(("first", f.s, f.s, 1, f.exec, f.exec_max, f.sftp, f.conns, tree, f.load))
        if r.noop:
            t = r.touched
            state = f"NOT a no-op: touched {len(t)} files ({', '.join(t[:3])})" if t else "no file touched"
            rows.append(
                (
                    "no-op",
                    r.noop_median,
                    min(x.s for x in r.noop),
                    len(r.noop),
                    r.noop_mean("exec"),
                    max(x.exec_max for x in r.noop),
                    r.noop_mean("sftp"),
                    r.noop_mean("conns"),
                    state + ("" if len(r.noop) >= MIN_REPS else f"; only {len(r.noop)} reruns, not a median of {MIN_REPS}"),
                    statistics.median(x.load for x in r.noop),
                )
            )
        for phase, t, fastest, k, ex, exm, sftp, conns, state, load in rows:
            key = "first" if phase == "first" else "noop"
            xp = ratio(peer.get(("pyinfra", r.hosts, key)), t) if r.tool != "pyinfra" else "1×"
            xa = ratio(peer.get(("ansible", r.hosts, key)), t) if r.tool != "ansible" else "1×"
            lines.append(
                f"| {LABELS[r.tool]} | {r.hosts} | {phase} | {fmt_s(t)} ({k}) | {fmt_s(fastest)} | {xp} | {xa} "
                f"| {n_(ex)} ({exm}) | {n_(sftp)} | {n_(conns)} | {load:.1f} | {state} |"
            )
    loads = [x.load for r in results for x in ([r.first] if r.first else []) + r.noop]
    if loads:
        lines += [
            "",
            f"1-minute load average when the runs started: {min(loads):.1f} to {max(loads):.1f} (median {statistics.median(loads):.1f}) on {os.cpu_count()} cores; per run in the JSON.",
        ]
    lines += ["", "## Ratios within each round (the same load for both)", ""] + ratio_lines(results)
    lines += ["", "## Goals (issue 19: headline row `inv provision`, warm; ratios within rounds)", ""]
    lines += goal_lines(results, startup)
    lines += ["", "## Same result on every host and tool", ""]
    lines += tree_check or ["- every tool produced the same home tree (paths, modes, contents) on every host"]
    lines += [
        "",
        "## Everyday commands (interleaved rounds, one of each per round)",
        "",
        "| command | median s (n) | min s | ÷ `inv --list` per round: median (min–max) | load median | note |",
        "|---|---|---|---|---|---|",
    ]
    for label, v in startup.items():
        note_ = v.get("error") or ("" if v.get("exit", 0) == 0 else f"exit {v['exit']}")
        x = startup_ratio(startup, label)
        xs = f"{x[0]:.2f}× ({x[1]:.2f}–{x[2]:.2f})" if x else "—"
        load = f"{statistics.median(v['loads']):.1f}" if v.get("loads") else "—"
        lines.append(
            f"| `{label}` | {fmt_s(v.get('median_s'))} ({len(v.get('times', []))}) | {fmt_s(v.get('min_s'))} | {xs} | {load} | {note_} |"
        )
    lines += ["", "## Repetitions", ""]
    lines += [
        f"- {LABELS[t]}: " + ", ".join(f"{n} host(s): {k} no-op reruns" for n, k in sorted(d.items())) for t, d in reps.items()
    ]
    lines += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in info.items()]
    return "\n".join(lines) + "\n"


def summary(results: list[Result]) -> str:
    """A few lines for the terminal."""
    out = []
    for n in sorted({r.hosts for r in results}):
        parts = []
        for r in (r for r in results if r.hosts == n):
            if r.error:
                parts.append(f"{r.tool} FAILED")
            else:
                parts.append(f"{r.tool} {fmt_s(r.first_s)}/{fmt_s(r.noop_median)}")
        out.append(f"{n} host(s), first/no-op s: " + ", ".join(parts))
    return "\n".join(out)
