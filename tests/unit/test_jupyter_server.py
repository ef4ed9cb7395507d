"""What `inv jupyter` prints: the URL (with its token) and the one line, for JupyterLab, a bare server and a stop."""

from __future__ import annotations

from ec2kit.jupyter import JupyterServer


def test_the_url_points_at_lab_for_jupyterlab_and_at_the_root_for_a_bare_server():
    assert JupyterServer("gpu1", 8888, 41234, "lab", "t0k").url == "http://127.0.0.1:8888/lab?token=t0k"
    assert JupyterServer("gpu1", 8899, 41234, "server", "t0k").url == "http://127.0.0.1:8899/?token=t0k"


def test_the_summary_line_never_holds_the_token_and_says_what_happened():
    started = JupyterServer("gpu1", 8888, 41234, "lab", "s3cret-token", started=True, provisioned=True)
    assert started.line() == "JupyterLab on gpu1 started, after the jupyter recipe; tunnelled from 127.0.0.1:8888."
    assert "s3cret-token" not in started.line() and "s3cret-token" not in repr(JupyterServer("x", 1, stopped=True))
    stopped = JupyterServer("gpu1", 8888, stopped=True)
    assert stopped.url == "" and stopped.line().startswith("Jupyter on gpu1 stopped")
    assert 'href="http://127.0.0.1:8888/lab?token=s3cret-token"' in started._repr_html_()
