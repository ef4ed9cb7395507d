"""ec2kit.metrics: reading metrics.csv / metrics.jsonl (also while a run writes them), latest values, sparklines."""

from __future__ import annotations

import math

import pytest

from ec2kit import metrics as m


def points(result: m.Metrics) -> dict[str, list[tuple[float, float]]]:
    return {name: list(zip(s.xs, s.ys)) for name, s in result.series.items()}


CSV_CASES = [
    pytest.param("step,loss\n1,0.5\n2,0.25\n", "step", {"loss": [(1, 0.5), (2, 0.25)]}, id="step column is the x axis"),
    pytest.param("epoch,acc\n1,0.5\n2,0.7\n", "epoch", {"acc": [(1, 0.5), (2, 0.7)]}, id="epoch column is the x axis"),
    pytest.param(
        "epoch,step,loss\n1,10,0.5\n1,20,0.4\n",
        "step",
        {"epoch": [(10, 1), (20, 1)], "loss": [(10, 0.5), (20, 0.4)]},
        id="step wins over epoch",
    ),
    pytest.param("Step,Loss\n3,1\n", "Step", {"Loss": [(3, 1)]}, id="x column found whatever its case"),
    pytest.param(
        "loss,acc\n0.9,0.1\n0.8,0.2\n",
        "row",
        {"loss": [(1, 0.9), (2, 0.8)], "acc": [(1, 0.1), (2, 0.2)]},
        id="no step: row numbers",
    ),
    pytest.param("step,loss\n\n1,0.5\n   \n2,0.4\n\n", "step", {"loss": [(1, 0.5), (2, 0.4)]}, id="blank lines skipped"),
    pytest.param(
        "step,loss,phase\n1,0.5,train\n2,nan,eval\n3,,train\n4,oops,x\n5,0.1,y\n",
        "step",
        {"loss": [(1, 0.5), (5, 0.1)]},
        id="non-numeric, empty and NaN cells skipped, text columns dropped",
    ),
    pytest.param(
        "step,loss\n1,0.5\nfoo,0.4\n3,0.3\n", "step", {"loss": [(1, 0.5), (3, 0.3)]}, id="row without a readable step skipped"
    ),
    pytest.param(
        "step,loss,acc\n1,0.5,0.1\n2,0.4", "step", {"loss": [(1, 0.5)], "acc": [(1, 0.1)]}, id="half-written last line dropped"
    ),
    pytest.param(
        "step,loss,acc\n1,0.5,0.1\n2,0.4,",
        "step",
        {"loss": [(1, 0.5)], "acc": [(1, 0.1)]},
        id="last line cut after a comma dropped",
    ),
    pytest.param(
        "step,loss\n1,0.5\n2,0.4", "step", {"loss": [(1, 0.5), (2, 0.4)]}, id="unterminated last line with every cell kept"
    ),
    pytest.param("step,loss\r\n1,0.5\r\n2,0.4\r\n", "step", {"loss": [(1, 0.5), (2, 0.4)]}, id="CRLF line endings"),
    pytest.param("step,loss\n1,0.5,extra\n2\n", "step", {"loss": [(1, 0.5)]}, id="ragged rows use the cells they have"),
    pytest.param("step,loss\n", "step", {}, id="header only: no series"),
    pytest.param("step,lo", "row", {}, id="half-written header: nothing yet"),
    pytest.param("", "row", {}, id="empty file"),
    pytest.param("step,loss\n1,inf\n2,-inf\n", "step", {}, id="infinities skipped"),
]


@pytest.mark.parametrize("text, x, expected", CSV_CASES)
def test_csv_is_read_into_one_series_per_metric(text, x, expected):
    result = m.parse_csv(text)
    assert result.x == x
    assert points(result) == expected


JSONL_CASES = [
    pytest.param('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n', "step", {"loss": [(1, 0.5), (2, 0.4)]}, id="step key"),
    pytest.param('{"loss": 0.5}\n{"loss": 0.4}\n', "row", {"loss": [(1, 0.5), (2, 0.4)]}, id="no step: row numbers"),
    pytest.param('{"step": 1, "loss": 0.5}\n{"step": 2, "lo', "step", {"loss": [(1, 0.5)]}, id="half-written last line skipped"),
    pytest.param(
        '{"step": 1, "loss": 0.5}\n\nnot json\n[1, 2]\n{"step": 2, "loss": 0.4}\n',
        "step",
        {"loss": [(1, 0.5), (2, 0.4)]},
        id="blank, non-JSON and non-object lines skipped",
    ),
    pytest.param(
        '{"step": 1, "loss": 0.5, "done": true, "tag": "a", "nested": {"x": 1}, "n": null}\n',
        "step",
        {"loss": [(1, 0.5)]},
        id="booleans, text, objects and nulls are not metrics",
    ),
    pytest.param(
        '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4, "val_loss": 0.6}\n',
        "step",
        {"loss": [(1, 0.5), (2, 0.4)], "val_loss": [(2, 0.6)]},
        id="a metric that appears later",
    ),
    pytest.param('{"epoch": 1, "acc": "0.5"}\n', "epoch", {"acc": [(1, 0.5)]}, id="numbers written as text are read"),
    pytest.param(
        '{"step": 1, "loss": 0.5}\n{"loss": 0.1}\n', "step", {"loss": [(1, 0.5)]}, id="a line without the step is skipped"
    ),
]


@pytest.mark.parametrize("text, x, expected", JSONL_CASES)
def test_jsonl_is_read_into_one_series_per_metric(text, x, expected):
    result = m.parse_jsonl(text)
    assert result.x == x
    assert points(result) == expected


SPARK_CASES = [
    pytest.param([], 20, "", id="no values"),
    pytest.param([1, 2, 3, 4, 5, 6, 7, 8], 20, "▁▂▃▄▅▆▇█", id="rising"),
    pytest.param([8, 7, 6, 5, 4, 3, 2, 1], 20, "█▇▆▅▄▃▂▁", id="falling"),
    pytest.param([2.0, 2.0, 2.0], 20, "▄▄▄", id="flat"),
    pytest.param([0, 10], 20, "▁█", id="two points"),
    pytest.param(list(range(100)), 5, "▁▃▅▆█", id="only the last width points"),
    pytest.param([1, math.nan, 2, math.inf], 20, "▁█", id="non-finite values ignored"),
    pytest.param([5.0], 20, "▄", id="one point"),
    pytest.param([1, 2], 0, "", id="zero width"),
]


@pytest.mark.parametrize("values, width, expected", SPARK_CASES)
def test_sparkline_shows_the_trend_of_the_last_points(values, width, expected):
    assert m.sparkline(values, width) == expected


def test_sparkline_defaults_to_the_last_twenty_points():
    assert len(m.sparkline(list(range(50)))) == 20


@pytest.mark.parametrize(
    "value, expected",
    [(30.0, "30"), (0.2314159, "0.2314"), (7e-06, "7e-06"), (1234567.5, "1.235e+06"), (-0.5, "-0.5"), (0.0, "0")],
)
def test_values_are_shown_short(value, expected):
    assert m.format_value(value) == expected


def test_latest_is_the_last_value_of_each_metric():
    result = m.parse_csv("step,loss,acc\n1,0.5,0.1\n2,0.4,\n3,0.3,x\n")
    assert result.latest() == {"loss": 0.3, "acc": 0.1}
    assert result.last_x() == 3
    assert result.series["loss"].latest == 0.3


def test_summary_is_one_line_with_value_and_trend_per_metric():
    result = m.parse_csv("step,loss,acc\n1,0.9,0.1\n2,0.5,0.5\n3,0.1,0.9\n")
    assert m.summary(result) == "loss 0.1 █▅▁  acc 0.9 ▁▅█"


def test_summary_names_how_many_metrics_it_left_out():
    result = m.parse_csv("step,a,b,c,d,e\n1,1,2,3,4,5\n")
    line = m.summary(result, limit=2)
    assert line.startswith("a 1 ▄  b 2 ▄")
    assert line.endswith("+3 more")
    assert "c 3" not in line


def test_json_view_has_latest_step_and_trend_and_whole_numbers_as_ints():
    result = m.parse_csv("step,loss,attempt\n1,0.5,1\n2,0.25,1\n")
    view = m.as_json(result, points=True)
    assert view["loss"] == {"latest": 0.25, "at": 2, "trend": "█▁", "points": [[1, 0.5], [2, 0.25]]}
    assert view["attempt"]["latest"] == 1 and isinstance(view["attempt"]["latest"], int)
    assert "points" not in m.as_json(result)["loss"]
    assert list(m.as_json(result, names=["attempt"])) == ["attempt"]


def test_load_prefers_metrics_csv_and_remembers_the_file(tmp_path):
    assert m.load(tmp_path) is None
    assert m.load(tmp_path / "missing") is None
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "acc": 0.5}\n')
    from_jsonl = m.load(tmp_path)
    assert from_jsonl is not None and from_jsonl.names == ["acc"]
    (tmp_path / "metrics.csv").write_text("step,loss\n1,0.5\n")
    from_csv = m.load(tmp_path)
    assert from_csv is not None and from_csv.names == ["loss"]
    assert from_csv.source == str(tmp_path / "metrics.csv")


def test_load_tolerates_bytes_that_are_not_utf8(tmp_path):
    (tmp_path / "metrics.csv").write_bytes(b"step,loss\n1,0.5\n2,\xff\xfe\n3,0.1\n")
    result = m.load(tmp_path)
    assert result is not None and points(result) == {"loss": [(1, 0.5), (3, 0.1)]}
