#!/usr/bin/env python3
"""ADAPTER: run the benchmark recipe with ec2kit's recipe engine, as one whole process.

    python bench/ec2kit_job.py bench/job/recipe.toml HOSTS.json --known-hosts FILE

HOSTS.json is bench/run.py's list of {name, host, port, user, home, key}. Every host gets
its own transport (what Context.connect gives) and the recipe's steps run on all hosts at
once, one thread per host, like `inv provision` does on several instances. The shell
batches go through the OpenSSH client with shared connections, as `inv provision` does
(EC2KIT_SSH=fabric runs them over paramiko instead; EC2KIT_SSH_PERSIST=0 turns sharing off). Exits 1 when a
host failed, printing its failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# ec2kit runs from the source tree, not from an install: let Python keep its bytecode in
# __pycache__ (PYTHONDONTWRITEBYTECODE may be set), as pip's install-time compile does for
# the peers' packages. Otherwise every run recompiles ec2kit's modules (~50 ms).
sys.dont_write_bytecode = False


def run_on(entry: dict, recipe, variables: dict, known_hosts: Path):
    """One host: connect, run every step, close; returns the engine's report for that host."""
    from ec2kit.recipe import run_steps_on_host
    from ec2kit.ssh import SshTarget, connect

    target = SshTarget(
        host=entry["host"],
        port=entry["port"],
        user=entry["user"],
        key_file=Path(entry["key"]),
        alias=f"bench-{entry['name']}-{entry['port']}",
        known_hosts=known_hosts,
        name=entry["name"],
    )
    with connect(target) as host:
        return run_steps_on_host(host, recipe.steps, variables, recipe=recipe)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("hosts", type=Path)
    ap.add_argument("--known-hosts", type=Path, required=True)
    args = ap.parse_args()

    from ec2kit.recipe import load_recipe
    from ec2kit.recipe.loader import resolve_vars

    recipe = load_recipe(str(args.recipe.resolve()), search_path=[args.recipe.resolve().parent])
    variables, _secret_names = resolve_vars(recipe, {}, {})
    entries = json.loads(args.hosts.read_text())
    with ThreadPoolExecutor(max_workers=len(entries)) as pool:
        reports = list(pool.map(lambda e: run_on(e, recipe, variables, args.known_hosts), entries))
    failed = 0
    for entry, report in zip(entries, reports):
        print(f"{entry['name']}: {report.recap}")
        if not report.ok:
            failed += 1
            print(f"{entry['name']} FAILED: {report.failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
