"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel against the sandbox.

The kernel is this venv's Python (a kernelspec written for the test), runs ec2kit from this
checkout, starts in an empty temporary directory (so the notebook cannot lean on the repo being
the cwd) and keeps ec2kit's state in the session sandbox's temporary EC2KIT_HOME.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_the_notebook_in_the_repo_has_no_stored_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the quickstart has code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_the_notebook_ships_with_the_package():
    from ec2kit.api import examples_dir

    assert (examples_dir() / "quickstart.ipynb").read_bytes() == NOTEBOOK.read_bytes()


def _cell(nb, needle: str):
    found = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, f"one code cell contains {needle!r}"
    return found[0]


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _result(cell, mime: str = "text/plain") -> str:
    for o in cell.outputs:
        if o.output_type == "execute_result" and mime in o.data:
            return str(o.data[mime])
    raise AssertionError(f"no {mime} result in {cell.source!r}: {cell.outputs}")


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernelspec for this venv's Python (not whatever 'python3' kernel the machine has)."""
    spec = tmp_path / "jupyter" / "kernels" / "ec2kit-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "ec2kit test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "ec2kit-test"


def test_quickstart_runs_top_to_bottom_on_the_sandbox(sandbox, kernel, tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("EC2KIT_HOME", str(sandbox.settings.home))
    monkeypatch.setenv("EC2KIT_SANDBOX", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(
        0, nbformat.v4.new_code_cell("import ec2kit, os\nprint('EC2KIT_FILE', ec2kit.__file__)\nprint('CWD', os.getcwd())")
    )
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(work)}}, allow_errors=False
    )
    client.execute()

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    where = _stdout(nb.cells[0])
    assert f"EC2KIT_FILE {ROOT / 'ec2kit'}" in where and f"CWD {work}" in where

    assert "sandbox" in _result(_cell(nb, "ec2 = EC2()"))
    launched = _cell(nb, 'ec2.launch("quickstart"')
    assert "quickstart" in _result(launched, "text/html") and "running" in _result(launched, "text/html")
    assert "hello from" in _stdout(_cell(nb, "echo hello from"))
    assert "and back: a file from the notebook" in _stdout(_cell(nb, "box.put("))
    volume = _stdout(_cell(nb, "ec2.create_volume("))
    if os.geteuid() == 0:
        assert "quickstart-data" in volume and "/mnt/data" in volume
    else:
        assert "Skipping the volume" in volume

    assert _result(_cell(nb, "ec2.spot_run(")) == "'succeeded'"
    shown = _result(_cell(nb, "run  # its record"), "text/html")
    assert "succeeded" in shown and "loss" in shown
    assert "loss " in _stdout(_cell(nb, 'run.metrics()["loss"]'))
    plotted = _cell(nb, "run.plot(")
    assert any("image/png" in o.get("data", {}) for o in plotted.outputs)
    assert _result(_cell(nb, "box.terminate()")) in ("'shutting-down'", "'terminated'")

    assert (work / "hello-back.txt").read_text() == "a file from the notebook\n"
    results = list((work / "runs").glob("train-*/metrics.csv"))
    assert results, "the run's results came home under the notebook's directory"
    from ec2kit.api import EC2

    ec2 = EC2(home=sandbox.settings.home, sandbox=True, quiet=True)
    assert "quickstart" not in ec2
    assert not [v for v in ec2.volumes() if v.name == "quickstart-data"]
