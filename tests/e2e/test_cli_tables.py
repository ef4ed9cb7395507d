"""Every listing fits the terminal: run through a real pseudo-terminal at 80, 120 and 200 columns.

The window size is set on the pty (TIOCSWINSZ) and COLUMNS is unset, so the program measures the
terminal itself. The account holds an instance whose Name tag is long and holds rich markup
(``[/]``), a volume, a snapshot and an image with long names, runs with four metrics and a sweep:
each table must keep its priority columns, cut long values with …, and never collapse to ``┃┃┃``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cli_helpers import ROOT, run_inv
from pty_helpers import inv_argv, run_on_terminal
from rich.cells import cell_len

pytestmark = pytest.mark.timeout(600)

HOSTILE = "tables-[/]h3-" + "a-long-instance-name-" * 3
LONG = "data-volume-with-a-name-longer-than-any-terminal-column-" * 2
WIDTHS = (80, 120, 200)


@pytest.fixture(scope="module")
def account(sandbox, tmp_path_factory):
    """The sandbox account filled with one of each thing a listing shows (names long on purpose)."""
    from ec2kit.runs import RunRecord, Runs
    from ec2kit.sweep.records import SweepRecord, Sweeps

    home = sandbox.settings.home
    made = run_inv("launch", HOSTILE, "--no-wait", home=home)
    assert made.code == 0, made
    web = run_inv("launch", "tables-web", home=home)  # waits for SSH: recipe and connect tests use it
    assert web.code == 0, web
    ec2 = sandbox.ec2
    [inst] = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [HOSTILE]}])["Reservations"]
        for i in r["Instances"]
    ]
    tags = [{"Key": "Name", "Value": LONG}, {"Key": "ec2kit:managed", "Value": "1"}]
    vol = ec2.create_volume(
        Size=1,
        AvailabilityZone=inst["Placement"]["AvailabilityZone"],
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )
    ec2.create_snapshot(VolumeId=vol["VolumeId"], TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
    ec2.create_image(InstanceId=inst["InstanceId"], Name="image-" + LONG)
    results = tmp_path_factory.mktemp("results")
    (results / "metrics.csv").write_text(
        "step,loss,accuracy,learning_rate,grad_norm\n" + "".join(f"{s},{1 / s},{s / 30},{0.1 / s},{s}\n" for s in range(1, 31))
    )
    runs = Runs(sandbox.settings.runs_db)
    now = time.time()
    sweep_runs = []
    for n in range(3):
        name = f"tables-sweep-run-{n:02d}"
        runs.create(
            RunRecord(
                name=name,
                state="succeeded" if n else "failed",
                exit_code=0 if n else 3,
                instance_type="g5.12xlarge",
                instance_id=f"i-0123456789abcdef{n}",
                attempt=1,
                created_at=now - 600,
                started_at=now - 500,
                ended_at=now - 100,
                hourly_price=5.672,
                instance_hours=0.11,
                results_dir=str(results),
                options={"sweep": "tables-sweep"},
            )
        )
        sweep_runs.append({"name": name, "settings": {"lr": f"{10**-n:g}", "seed": n}, "outcome": "succeeded" if n else "failed"})
    Sweeps(home).create(
        SweepRecord(
            name="tables-sweep",
            state="succeeded",
            runs=sweep_runs,
            results_dir=str(results),
            spent=1.25,
            fleet_calls=1,
            launched=3,
        )
    )
    yield home
    run_inv("terminate", HOSTILE, home=home)
    run_inv("terminate", "tables-web", home=home)


def show(home: Path, argv: list[str], columns: int) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(EC2KIT_HOME=str(home), EC2KIT_SANDBOX="1", PYTHONPATH=str(ROOT))
    code, lines = run_on_terminal(inv_argv(*argv), columns=columns, env=env)
    assert code == 0, "\n".join(lines)
    return lines


def table_header(lines: list[str], first: str) -> list[str]:
    """The header line's column names (split on runs of two spaces)."""
    [header] = [line for line in lines if line.startswith(first + " ")]
    return [c.strip() for c in header.split("  ") if c.strip()]


COMMANDS = [
    (["instances"], "name", ["name", "state", "type"]),
    (["runs"], "name", ["name", "state", "exit", "cost", "metrics"]),
    (["sweeps"], "name", ["name", "state", "succeeded", "cost"]),
    (["sweep-status", "tables-sweep"], "run", ["run", "state", "cost"]),
    (["volumes"], "name", ["name", "state", "size"]),
    (["images"], "name", ["name", "state"]),
    (["snapshots"], "name", ["name", "state", "size"]),
    (["prices", "m5"], "type", ["type", "on-demand"]),
    (["gpus"], "type", ["type", "gpus", "gpu mem", "on-demand", "spot"]),
    (["costs"], "kind", ["kind", "name", "$/h", "$/month"]),
]


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize(("argv", "first", "must"), COMMANDS, ids=[c[0][0] for c in COMMANDS])
def test_every_listing_fits_the_terminal_with_its_priority_columns(account, argv, first, must, columns):
    lines = show(account, argv, columns)
    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, too_long
    assert not any("┃┃" in line or "││" in line for line in lines), lines
    header = table_header(lines, first)
    assert [c for c in must if c not in header] == [], header


def test_runs_at_80_columns_show_state_exit_code_cost_and_a_cut_metrics_column(account):
    lines = show(account, ["runs"], 80)
    assert table_header(lines, "name")[:1] == ["name"]
    [failed] = [line for line in lines if line.startswith("tables-sweep-run-00")]
    assert " failed " in failed and " 3 " in failed and "$0.6" in failed
    assert failed.rstrip().endswith("…") and "loss" in failed
    assert any(line.startswith("3 more column(s) with --wide") or "more column(s) with --wide" in line for line in lines)


def test_wide_shows_every_column_whole(account):
    lines = show(account, ["volumes", "--wide"], 80)
    assert table_header(lines, "name") == ["name", "id", "size", "state", "zone", "attached to", "from snapshot"]
    assert any(LONG in line for line in lines)


def test_a_name_tag_holding_markup_is_shown_as_text(account):
    lines = show(account, ["instances"], 200)
    assert any(line.startswith(HOSTILE[:20]) for line in lines), lines


def test_logs_json_prints_one_object_per_line_and_plain_logs_show_control_characters(account):
    log = account / "runs" / "tables-sweep-run-01" / "log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("step 1 loss 0.5\n\x1b]0;owned\x07[/]bold\n")
    as_json = run_inv("logs", "tables-sweep-run-01", "--json", home=account)
    assert as_json.code == 0, as_json
    assert as_json.out.splitlines() == [
        '{"run": "tables-sweep-run-01", "line": "step 1 loss 0.5"}',
        '{"run": "tables-sweep-run-01", "line": "\\u001b]0;owned\\u0007[/]bold"}',
    ]
    plain = run_inv("logs", "tables-sweep-run-01", home=account)
    assert plain.out.splitlines() == ["step 1 loss 0.5", "^[]0;owned^G[/]bold"]


def test_recipe_and_provision_json_report_each_hosts_counts_and_step_statuses(account, tmp_path):
    import json

    recipe = tmp_path / "hello.toml"
    recipe.write_text(
        'description = "json report"\n'
        '[[step]]\nname = "say hello"\nrun = "echo hello > ~/hello.txt"\n'
        '[[step]]\nname = "never twice"\nrun = "true"\ncreates = "~/hello.txt"\n'
    )
    result = run_inv("recipe", str(recipe), "--on", "tables-web", "--json", home=account)
    assert result.code == 0, result
    report = json.loads(result.out)  # stdout is the JSON document alone; progress went to stderr
    assert "[tables-web] changed" in result.err
    [host] = report["hosts"]
    assert (report["succeeded"], host["host"], host["succeeded"]) == (True, "tables-web", True)
    assert (host["ok"], host["changed"], host["skipped"], host["failed"]) == (0, 1, 1, 0)
    assert [(s["name"], s["status"]) for s in host["steps"]] == [("say hello", "changed"), ("never twice", "skipped")]
    again = run_inv("provision", "tables-web", "--recipe", str(recipe), "--json", home=account)
    assert again.code == 0, again
    [host] = json.loads(again.out)["hosts"]
    assert (host["host"], host["changed"], host["skipped"]) == ("tables-web", 1, 1)


def test_connect_runs_the_command_given_after_dashes_on_the_instance(account):
    result = run_inv("connect", "tables-web", "--", "echo", "ran-on", "$(hostname)-x", home=account)
    assert result.code == 0, result
    [line] = [ln for ln in result.out.splitlines() if ln.startswith("ran-on ")]
    assert line.endswith("-x") and "$(" not in line  # the words reached the instance's shell as one command
