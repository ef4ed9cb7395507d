"""What one hostile or runaway run's metrics file can do to the laptop reading it: nothing but be read, bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ec2kit.metrics as m


def test_values_near_the_float_limit_are_skipped_and_sparklines_never_overflow():
    metrics = m.parse_csv("step,loss\n1,1e308\n2,-1e308\n3,0.5\n4,1e149\n")
    assert metrics.series["loss"].ys == [0.5, 1e149]
    assert m.sparkline([-1e150, 1e150, 0.0]) == "▁█▅"
    assert m.summary(metrics).startswith("loss 1e+149 ")


def test_a_ten_megabyte_csv_field_is_skipped_and_the_other_rows_read(tmp_path: Path, monkeypatch):
    (tmp_path / "metrics.csv").write_text("step,loss\n1,0.5\n2," + "9" * 10_000_000 + "\n3,0.3\n")
    monkeypatch.setattr(m, "WINDOW_BYTES", 64 * 1024 * 1024)
    metrics = m.load(tmp_path)
    assert metrics is not None and metrics.series["loss"].ys == [0.5, 0.3] and metrics.skipped == 1
    monkeypatch.undo()  # the default window: the header and the last megabyte
    metrics = m.load(tmp_path)
    assert metrics is not None and metrics.series["loss"].ys == [0.3] and metrics.window > 8_000_000


def test_a_quoted_csv_cell_past_the_field_limit_is_one_skipped_row():
    metrics = m.parse_csv('step,loss\n1,0.5\n2,"' + "x" * 200_000 + '"\n3,0.3\n')
    assert metrics.series["loss"].ys == [0.5, 0.3]


def test_a_jsonl_line_nested_100k_deep_is_skipped_not_a_recursion_error():
    deep = "[" * 100_000 + "]" * 100_000
    metrics = m.parse_jsonl('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": ' + deep + "}\n" + '{"step": 3, "loss": 0.3}\n')
    assert metrics.series["loss"].ys == [0.5, 0.3]


def test_metric_names_keep_markup_as_text_but_lose_their_control_characters():
    metrics = m.parse_jsonl('{"step": 1, "[/]loss": 1, "\\u001b]0;pwned\\u0007acc": 2, "' + "n" * 500 + '": 3}\n')
    assert metrics.names == ["[/]loss", "^[]0;pwned^Gacc", "n" * (m.MAX_NAME - 1) + "…"]


def test_a_file_with_thousands_of_columns_keeps_the_first_two_hundred():
    header = ",".join(["step", *(f"m{i}" for i in range(5000))])
    metrics = m.parse_csv(header + "\n" + ",".join(["1", *("1" for _ in range(5000))]) + "\n")
    assert len(metrics.series) == m.MAX_SERIES and metrics.dropped == 5000 - m.MAX_SERIES


def test_a_long_series_is_downsampled_with_its_last_rows_exact():
    text = "step,loss\n" + "".join(f"{i},{i}\n" for i in range(1, 100_001))
    series = m.parse_csv(text).series["loss"]
    assert len(series.xs) <= m.MAX_POINTS + m.TAIL_POINTS
    assert series.xs[-m.TAIL_POINTS :] == [float(i) for i in range(100_001 - m.TAIL_POINTS, 100_001)]
    assert series.xs[0] == 1.0 and series.xs == sorted(series.xs) and series.latest == 100_000


def test_a_60_megabyte_metrics_csv_is_read_in_a_bounded_window(tmp_path: Path):
    row = "".join(f"{i},{i * 0.001:.6f},{i % 7}\n" for i in range(1, 1001))
    with (tmp_path / "metrics.csv").open("w") as f:
        f.write("step,loss,acc\n")
        for _ in range(4000):  # ~60 MB, the same 1000 steps over and over
            f.write(row)
    size = (tmp_path / "metrics.csv").stat().st_size
    assert size > 55_000_000
    code = (
        "import resource, sys, ec2kit.metrics as m\n"
        f"x = m.load({str(tmp_path)!r})\n"
        "print(x.window, x.rows, len(x.series['loss'].xs), x.series['loss'].latest, "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking process (pytest, large) across exec
        "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    window, rows, points, latest, rss_kb = done.stdout.split()
    assert int(window) == size - m.WINDOW_BYTES and float(latest) == 1.0
    assert int(points) <= m.MAX_POINTS + m.TAIL_POINTS and 0 < int(rows) < 4_000_000
    assert int(rss_kb) < 150_000, f"peak RSS {rss_kb} kB reading a {size}-byte file"
