"""`inv jupyter NAME`: the jupyter recipe, a real Jupyter server under tmux on the instance, a tunnel with its token."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import subprocess
import urllib.error
import urllib.request

from cli_helpers import assert_clean_error, run_inv

# The recipe as shipped installs JupyterLab from the package index (about 20 s with pip's cache warm); the second
# test installs jupyter_server alone, which `inv jupyter` serves at /?token= instead of /lab?token=.
PACKAGES = "jupyter_packages=jupyter_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /api HTTP/1.0\r\n\r\n")
            return bool(s.recv(16))
        except OSError:
            return False


def test_jupyter_answers_through_its_tunnel_with_its_token_and_stop_ends_server_and_tunnel(sandbox, launched):
    home = sandbox.settings.home
    dirs = launched("jup")
    port = _free_port()
    first = run_inv("jupyter", "jup", "--port", str(port), "--no-browser", "--json", home=home, timeout=600)
    assert first.code == 0, first
    server = json.loads(first.out)
    assert server["provisioned"] and server["started"] and server["app"] == "lab"
    token = server["url"].rsplit("token=", 1)[1]
    assert server["url"] == f"http://127.0.0.1:{port}/lab?token={token}" and len(token) >= 32
    with urllib.request.urlopen(server["url"], timeout=20) as page:  # JupyterLab's own page, through the tunnel
        assert page.status == 200 and b"JupyterLab" in page.read()
    assert server["remote_port"] != port
    # the tunnel reaches the real server: the token opens its API, no token is refused
    base = f"http://127.0.0.1:{port}"
    assert _get(f"{base}/api/status", token) == 200
    assert _get(f"{base}/api/status") == 403
    assert _get(server["url"].replace("/lab?", "/api/status?")) == 200
    # the token is in a 0600 file on the instance, never in a process's command line
    config = dirs["jup"] / "home" / ".ec2kit" / "jupyter" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["IdentityProvider"]["token"] == token
    assert token not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    # again: the same server, the tunnel re-opened, nothing installed or started
    again = run_inv("jupyter", "jup", "--port", str(port), "--no-browser", home=home, timeout=120)
    assert again.code == 0, again
    assert again.out.strip() == server["url"]
    assert "already running" in again.err
    # a local port another program holds: a clear error naming it; the server keeps running for another --port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = run_inv("jupyter", "jup", "--port", str(taken), "--no-browser", home=home, timeout=120)
    assert_clean_error(refused, f"local port {taken}", "pick another")
    assert _get(f"{base}/api/status", token) == 200
    # the server runs in session "jupyter" of its own tmux server (one per home: sandbox hosts share this machine)
    own_tmux = ["tmux", "-L", "ec2kit-jupyter-" + hashlib.sha256(str(dirs["jup"] / "home").encode()).hexdigest()[:8]]
    assert subprocess.run([*own_tmux, "has-session", "-t", "jupyter"], capture_output=True).returncode == 0
    # --stop: the port no longer answers, the tmux session is gone, the server process too
    stopped = run_inv("jupyter", "jup", "--port", str(port), "--stop", home=home, timeout=120)
    assert stopped.code == 0, stopped
    assert "stopped" in stopped.text
    assert not _answers(port)
    assert not _answers(server["remote_port"])
    assert subprocess.run([*own_tmux, "has-session", "-t", "jupyter"], capture_output=True).returncode != 0
    listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(dirs["jup"]) + "/home/jupyter/bin/python" not in listed


def test_a_venv_with_jupyter_server_alone_is_served_at_its_root_and_stops(sandbox, launched):
    home = sandbox.settings.home
    launched("jup-srv")
    port = _free_port()
    opened = run_inv("jupyter", "jup-srv", "--port", str(port), "--set", PACKAGES, "--no-browser", home=home, timeout=400)
    assert opened.code == 0, opened
    url = opened.out.strip()
    token = url.rsplit("token=", 1)[1]
    assert url == f"http://127.0.0.1:{port}/?token={token}"
    assert _get(f"http://127.0.0.1:{port}/api/kernelspecs", token) == 200
    assert run_inv("jupyter", "jup-srv", "--port", str(port), "--stop", home=home, timeout=120).code == 0
    assert not _answers(port)


def test_jupyter_on_a_stopped_instance_says_to_start_it(sandbox, launched):
    home = sandbox.settings.home
    launched("jup-off")
    assert run_inv("stop", "jup-off", home=home, timeout=120).code == 0
    result = run_inv("jupyter", "jup-off", "--no-browser", home=home)
    assert_clean_error(result, "jup-off", "stopped", "inv start jup-off")


def test_jupyter_refuses_a_port_that_is_not_a_tcp_port(sandbox):
    result = run_inv("jupyter", "any", "--port", "70000", home=sandbox.settings.home)
    assert_clean_error(result, "--port 70000", "not a TCP port")
