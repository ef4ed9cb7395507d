"""`inv runs` shows each run's latest metrics; `inv plot RUN` charts them (terminal, PNG, JSON, --follow).

Each test makes a runs database and a results directory like the one a demo run brings home
(examples/train.py runs locally, no AWS), then drives the command line as a separate process.
Nothing here needs the sandbox: `inv runs` and `inv plot` read only the local database and files.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cli_helpers import ROOT, assert_clean_error, run_inv

from ec2kit.metrics import format_value
from ec2kit.runs import RunRecord, Runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS = ["loss", "weight", "bias", "attempt"]  # the columns examples/train.py writes, after step


def train(results: Path, steps: int = 30) -> list[list[str]]:
    """Run examples/train.py here (it is plain Python) into ``results``; return metrics.csv's rows."""
    env = {**os.environ, "EC2KIT_RESULTS": str(results), "TRAIN_STEPS": str(steps), "TRAIN_STEP_SECONDS": "0"}
    subprocess.run([sys.executable, str(ROOT / "examples" / "train.py")], env=env, check=True, capture_output=True, timeout=60)
    lines = (results / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step," + ",".join(METRICS)
    return [line.split(",") for line in lines[1:]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runs(home: Path) -> Runs:
    return Runs(home / "runs.sqlite")


@pytest.fixture
def demo(tmp_path: Path, runs: Runs) -> tuple[RunRecord, list[list[str]]]:
    """A finished demo-like run whose results hold the metrics.csv of 30 training steps."""
    results = tmp_path / "runs" / "demo-1"
    rows = train(results)
    record = runs.create(RunRecord(name="demo-1", state="succeeded", results_dir=str(results), instance_type="m5.large"))
    return record, rows


# -- inv runs --------------------------------------------------------------------------------------


def test_runs_table_shows_each_metrics_latest_value_and_trend(home, runs, demo, tmp_path):
    _, rows = demo
    runs.create(RunRecord(name="plain-1", state="failed", results_dir=str(tmp_path / "nothing")))
    result = run_inv("runs", home=home)
    assert result.code == 0, result
    assert "metrics" in result.out
    line = next(line for line in result.out.splitlines() if "demo-1" in line)
    assert f"loss {format_value(float(rows[-1][1]))} █" in line  # the loss falls from its highest point
    assert f"weight {format_value(float(rows[-1][2]))} ▁" in line  # the weight rises from its lowest
    assert "+1 more" in line  # attempt: three metrics at most, to keep the table readable
    plain = next(line for line in result.out.splitlines() if "plain-1" in line)
    assert "loss" not in plain


def test_runs_json_has_latest_value_step_and_trend_per_metric(home, runs, demo):
    _, rows = demo
    result = run_inv("runs", "--json", home=home)
    assert result.code == 0, result
    by_name = {r["name"]: r for r in json.loads(result.out)}
    got = by_name["demo-1"]["metrics"]
    assert list(got) == METRICS
    assert got["loss"]["latest"] == pytest.approx(float(rows[-1][1]))
    assert got["loss"]["at"] == 30
    assert got["attempt"] == {"latest": 1, "at": 30, "trend": "▄" * 20}
    assert len(got["loss"]["trend"]) == 20 and got["loss"]["trend"][0] == "█"


def test_runs_json_metrics_is_null_without_a_metrics_file(home, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    runs.create(RunRecord(name="quiet", state="succeeded", results_dir=str(tmp_path / "empty")))
    result = run_inv("runs", "--json", home=home)
    assert result.code == 0, result
    assert json.loads(result.out)[0]["metrics"] is None


# -- inv plot: terminal, JSON, PNG -----------------------------------------------------------------


def test_plot_draws_the_chosen_metric_against_the_step(home, demo):
    _, rows = demo
    result = run_inv("plot", "demo-1", "--metric", "loss", home=home)
    assert result.code == 0, result
    out = result.out
    assert f"loss · latest {format_value(float(rows[-1][1]))} at step 30" in out
    assert "weight" not in out
    assert "┌" in out and "└" in out  # a framed chart
    x_labels = out.strip().splitlines()[-1].split()
    assert x_labels[-1] == "30" and "10" in x_labels  # the x axis runs over the steps, up to step 30
    y_labels = [line.rsplit("│", 1)[1].strip() for line in out.splitlines() if line.count("│") == 2]
    values = [float(v) for v in y_labels if v]
    assert values and max(values) >= 1 and min(values) <= 0.5  # the loss falls from ~2 to ~0
    assert "\x1b[" not in out  # no colours or screen clearing when piped


def test_plot_without_metric_draws_one_chart_per_metric(home, demo):
    result = run_inv("plot", "demo-1", home=home)
    assert result.code == 0, result
    for name in METRICS:
        assert f"{name} · latest" in result.out
    assert result.out.count("┌") == len(METRICS)


def test_plot_json_has_every_point_of_the_chosen_metrics(home, demo):
    _, rows = demo
    result = run_inv("plot", "demo-1", "--metric", "loss,bias", "--json", home=home)
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["run"] == "demo-1" and doc["x"] == "step" and list(doc["metrics"]) == ["loss", "bias"]
    assert doc["metrics"]["loss"]["points"] == [[int(r[0]), pytest.approx(float(r[1]))] for r in rows]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (right after the 8-byte signature)."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, head
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_png_is_written_with_one_row_per_metric(home, demo, tmp_path):
    out_dir = tmp_path / "pictures"
    out_dir.mkdir()
    png = out_dir / "demo.png"
    result = run_inv("plot", "demo-1", "--png", str(png), home=home)
    assert result.code == 0, result
    assert png_size(png) == (1000, 300 * len(METRICS))
    assert f"Wrote {png} (1000×1200 px)" in result.out
    assert [p.name for p in out_dir.iterdir()] == ["demo.png"]  # no temp file left beside it

    one = run_inv("plot", "demo-1", "--png", str(png), "--metric", "loss", home=home)
    assert one.code == 0, one
    assert png_size(png) == (1000, 300)  # replaced whole


def test_png_into_a_missing_directory_is_a_clean_error(home, demo, tmp_path):
    assert_clean_error(run_inv("plot", "demo-1", "--png", str(tmp_path / "no" / "x.png"), home=home), "does not exist")


@pytest.mark.parametrize("module, flags", [("matplotlib", ["--png", "x.png"]), ("uniplot", [])])
def test_a_missing_plotting_library_names_the_extra_to_install(home, demo, tmp_path, module, flags):
    shadow = tmp_path / "shadow"
    (shadow / module).mkdir(parents=True)
    (shadow / module / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}
    result = run_inv("plot", "demo-1", *flags, home=home, env=env, cwd=tmp_path)
    assert_clean_error(result, f"'{module}'", "pip install 'ec2kit[plot]'")
    assert not (tmp_path / "x.png").exists()


# -- clean errors ----------------------------------------------------------------------------------


def test_unknown_run_is_a_clean_error_naming_the_runs_there_are(home, demo):
    assert_clean_error(run_inv("plot", "demo-2", home=home), "No run named 'demo-2'", "demo-1")


def test_unknown_run_with_no_runs_at_all_says_so(home):
    assert_clean_error(run_inv("plot", "nothing", home=home), "No run named 'nothing'", "No runs are recorded")


def test_unknown_metric_is_a_clean_error_naming_the_metrics_there_are(home, demo):
    result = run_inv("plot", "demo-1", "--metric", "lss", home=home)
    assert_clean_error(result, "no metric 'lss'", "did you mean 'loss'", "loss, weight, bias, attempt")


def test_a_run_without_metrics_is_a_clean_error_naming_what_its_results_hold(home, runs, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "model.bin").write_bytes(b"\0")
    runs.create(RunRecord(name="quiet", state="succeeded", results_dir=str(results)))
    assert_clean_error(run_inv("plot", "quiet", home=home), "has no metrics", "metrics.csv", "model.bin")


def test_a_run_whose_results_never_came_home_is_a_clean_error(home, runs, tmp_path):
    runs.create(RunRecord(name="lost-1", state="lost", results_dir=str(tmp_path / "never")))
    assert_clean_error(run_inv("plot", "lost-1", home=home), "does not exist", "inv pull lost-1")


def test_a_metrics_file_without_numbers_is_a_clean_error(home, runs, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "metrics.csv").write_text("step,loss\n")
    runs.create(RunRecord(name="early", state="succeeded", results_dir=str(results)))
    assert_clean_error(run_inv("plot", "early", home=home), "no numeric columns")


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_interval_is_a_clean_error(home, demo, value):
    assert_clean_error(run_inv("plot", "demo-1", "--follow", "--interval", value, home=home), "--interval")


# -- inv plot --follow -----------------------------------------------------------------------------


class Follower:
    """`inv plot ... --follow` in the background; its stdout and stderr lines arrive on queues."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"EC2KIT_SANDBOX": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT), "EC2KIT_HOME": str(home)})
        argv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "plot", *args, "--follow", "--interval", "0.05"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q: queue.Queue[str]) -> None:
        for line in stream:
            q.put(line)

    def wait_for(self, needle: str, q: queue.Queue[str] | None = None, timeout: float = 30) -> str:
        """The first line (from now on) that contains ``needle``; fails after ``timeout`` s or if the process ends."""
        q = self.out if q is None else q
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = q.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and q.empty():
                    raise AssertionError(
                        f"inv plot --follow ended ({self.proc.returncode}) before printing {needle!r}; saw {self.seen[-5:]}"
                    ) from None
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"timed out waiting for {needle!r}; saw {self.seen[-5:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def follower_factory():
    started: list[Follower] = []

    def start(home: Path, *args: str) -> Follower:
        f = Follower(home, *args)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def append_rows(path: Path, first: int, last: int) -> None:
    with path.open("a") as f:
        for step in range(first, last + 1):
            f.write(f"{step},{1 / step:.6f},2.9,0.9,1\n")


def test_follow_redraws_as_rows_are_appended_and_stops_when_the_run_ends(home, runs, tmp_path, follower_factory):
    results = tmp_path / "runs" / "live-1"
    train(results, steps=10)
    runs.create(RunRecord(name="live-1", state="running", results_dir=str(results)))
    follower = follower_factory(home, "live-1", "--metric", "loss")
    follower.wait_for("live-1 (running) · step 10")

    append_rows(results / "metrics.csv", 11, 15)
    follower.wait_for("live-1 (running) · step 15")
    follower.wait_for("loss · latest 0.06667 at step 15")

    with (results / "metrics.csv").open("a") as f:
        f.write("16,0.0")  # a row the script is still writing: redrawn, but not drawn as step 16
    follower.wait_for("live-1 (running) · step 15")
    with (results / "metrics.csv").open("a") as f:
        f.write("31,2.9,0.9,1\n")  # now whole: step 16, loss 0.031
    follower.wait_for("loss · latest 0.031 at step 16")

    record = runs.get("live-1")
    record.state = "succeeded"
    assert runs.save(record)
    follower.wait_for("stopped following", follower.err)
    assert follower.proc.wait(timeout=30) == 0


def test_follow_waits_for_the_first_metrics_of_a_live_run(home, runs, tmp_path, follower_factory):
    results = tmp_path / "runs" / "live-2"
    runs.create(RunRecord(name="live-2", state="running", results_dir=str(results)))
    follower = follower_factory(home, "live-2", "--json")
    follower.wait_for("Waiting for metrics", follower.err)

    results.mkdir(parents=True)
    (results / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    first = json.loads(follower.wait_for('"run": "live-2"'))
    assert first["metrics"]["loss"]["points"] == [[1, 0.5]]

    with (results / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "loss": 0.25}\n')
    second = json.loads(follower.wait_for('"at": 2'))
    assert second["metrics"]["loss"]["latest"] == 0.25

    record = runs.get("live-2")
    record.state = "failed"
    runs.save(record)
    assert follower.proc.wait(timeout=30) == 0


def test_follow_of_a_finished_run_draws_once_and_returns(home, demo):
    result = run_inv("plot", "demo-1", "--metric", "bias", "--follow", home=home)
    assert result.code == 0, result
    assert result.out.count("bias · latest") == 1
    assert "demo-1 is succeeded; stopped following" in result.err


def test_follow_of_a_finished_run_without_metrics_is_a_clean_error(home, runs, tmp_path):
    runs.create(RunRecord(name="done", state="succeeded", results_dir=str(tmp_path / "never")))
    assert_clean_error(run_inv("plot", "done", "--follow", home=home), "inv pull done")
