"""Jupyter on an instance (``inv jupyter NAME``): a server under tmux, bound to the instance's localhost,
reached through an SSH tunnel.

The server is JupyterLab (``jupyter-lab``) from the venv the ``jupyter`` recipe makes, or a bare
``jupyter-server`` when that is all the venv holds. Its token is made here and travels in a 0600
config file (``~/.ec2kit/jupyter/config.json``), never in a command line on either machine; the
server's log beside it is 0600 too. The tunnel is ``ssh -O forward`` on a master of its own
(``Transport.tunnel``), ended by ``--stop`` with ``-O cancel``.
"""

from __future__ import annotations

import json
import secrets
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RemoteError

if TYPE_CHECKING:
    from .ssh.transport import Transport

SESSION = "jupyter"  # the tmux session the server runs in, on a tmux server of its own (tmux())
STATE = ".ec2kit/jupyter"  # under the remote home: config.json (port, token), log
START_TIMEOUT = 120.0  # seconds for a fresh server to answer (a first JupyterLab start builds its settings)


@dataclass
class JupyterServer:
    """A Jupyter server on an instance and the local end of its tunnel (``url`` holds the token)."""

    name: str
    local_port: int
    remote_port: int = 0
    app: str = "lab"  # "lab" (JupyterLab) or "server" (a bare Jupyter server)
    token: str = ""
    started: bool = False  # this call started it (False: it was running already)
    provisioned: bool = False  # this call ran the jupyter recipe first
    stopped: bool = False  # the result of a stop

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/lab?token=…`` (empty once stopped)."""
        if self.stopped:
            return ""
        return f"http://127.0.0.1:{self.local_port}/{'lab' if self.app == 'lab' else ''}?token={self.token}"

    def line(self) -> str:
        """What happened, in one line (the token left out: the URL is printed on its own)."""
        if self.stopped:
            return f"Jupyter on {self.name} stopped; its tunnel from local port {self.local_port} is closed."
        how = "started" if self.started else "already running"
        setup = ", after the jupyter recipe" if self.provisioned else ""
        kind = "JupyterLab" if self.app == "lab" else "Jupyter server"
        return f"{kind} on {self.name} {how}{setup}; tunnelled from 127.0.0.1:{self.local_port}."

    def __repr__(self) -> str:
        return f"<JupyterServer {self.name} {'stopped' if self.stopped else self.url}>"

    def _repr_html_(self) -> str:
        """In a notebook: a link that opens the server in a new tab."""
        import html

        if self.stopped:
            return html.escape(self.line())
        return f'<a href="{html.escape(self.url)}" target="_blank">{html.escape(self.line())}</a>'


@dataclass
class Found:
    """What one probe of the instance found."""

    app: str | None  # "lab", "server" or None (not installed)
    running: bool
    remote_port: int = 0
    token: str = ""


def tmux(transport: Transport) -> str:
    """``tmux -L ec2kit-jupyter-HASH``: the server's own tmux server, one per home directory (sandbox instances
    share a machine, and a socket under a deep home would pass the 108-byte limit). Attach with it to watch."""
    import hashlib

    return f"tmux -L ec2kit-jupyter-{hashlib.sha256(transport.home.encode()).hexdigest()[:8]}"


def probe(transport: Transport, venv: str) -> Found:
    """One round trip: which Jupyter the venv has, whether its tmux session runs, and its port and token."""
    v = shlex.quote(transport.expand(venv))
    config = shlex.quote(transport.expand(f"~/{STATE}/config.json"))
    script = (
        f"if [ -x {v}/bin/jupyter-lab ]; then echo app=lab; elif [ -x {v}/bin/jupyter-server ]; then echo app=server; fi\n"
        f"if {tmux(transport)} has-session -t {SESSION} 2>/dev/null; then echo running=1; cat {config} 2>/dev/null; fi\n"
    )
    out = transport.run(script, check=False).stdout
    lines = out.splitlines()
    app = next((line[4:] for line in lines if line.startswith("app=")), None)
    running = "running=1" in lines
    found = Found(app, running)
    if running:
        text = out[out.index("running=1") + len("running=1") :].strip()
        try:
            doc = json.loads(text)
            found.remote_port = int(doc["ServerApp"]["port"])
            found.token = str(doc["IdentityProvider"]["token"])
        except (ValueError, KeyError, TypeError):
            found.running = False  # a session we cannot read back: start afresh
    return found


def start(transport: Transport, venv: str, app: str) -> tuple[int, str]:
    """Start the server under tmux on a free port of the instance's localhost; returns (port, token)
    once it answers HTTP, or raises RemoteError with the end of its log."""
    v = transport.expand(venv)
    state = transport.expand(f"~/{STATE}")
    picked = transport.run(
        f"mkdir -p -m 700 {shlex.quote(state)} && chmod 700 {shlex.quote(state)} && "
        f'{shlex.quote(v)}/bin/python -c \'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); '
        "print(s.getsockname()[1])'",
    )
    port = int(picked.stdout.strip())
    token = secrets.token_urlsafe(32)
    config = {
        "ServerApp": {
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "root_dir": transport.home,
            "allow_root": True,
        },  # a root login (some images; the sandbox on a root machine): localhost + token
        "IdentityProvider": {"token": token},
    }
    transport.put_bytes(json.dumps(config, indent=1).encode(), f"{state}/config.json", mode=0o600)
    program = f"{v}/bin/jupyter-lab" if app == "lab" else f"{v}/bin/jupyter-server"
    inner = (
        f"umask 077; cd {shlex.quote(transport.home)} && exec {shlex.quote(program)} "
        f"--config={shlex.quote(state + '/config.json')} >>{shlex.quote(state + '/log')} 2>&1"
    )
    waiter = (
        "import sys, time, subprocess, urllib.request\n"
        f"deadline = time.time() + {START_TIMEOUT}\n"
        "while time.time() < deadline:\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://127.0.0.1:{port}/api', timeout=2).read()\n"
        "        sys.exit(0)\n"
        "    except Exception:\n"
        f"        if subprocess.run({shlex.split(tmux(transport))!r} + ['has-session', '-t', '{SESSION}'], capture_output=True).returncode:\n"
        "            sys.exit(3)\n"
        "        time.sleep(0.3)\n"
        "sys.exit(4)\n"
    )
    script = (
        f"{tmux(transport)} new-session -d -s {SESSION} {shlex.quote(inner)} || exit 5\n"
        f"{shlex.quote(v)}/bin/python - <<'EC2KIT_WAIT'\n{waiter}EC2KIT_WAIT\n"
        "code=$?\n"
        f"if [ $code -ne 0 ]; then tail -n 15 {shlex.quote(state + '/log')} >&2; fi\n"
        "exit $code\n"
    )
    done = transport.run(script, check=False, timeout=START_TIMEOUT + 30)
    if done.exit_code != 0:
        why = {3: "it exited", 4: f"it did not answer within {START_TIMEOUT:.0f} s", 5: "tmux could not start it"}
        stop(transport)
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise RemoteError(
            f"Jupyter did not start on {transport.name}: {why.get(done.exit_code, f'exit {done.exit_code}')}."
            + (f" Its log ends:\n{tail}\n" if tail else ""),
            hint=f"See ~/{STATE}/log there; re-run the jupyter recipe to repair the venv (inv recipe jupyter --on NAME).",
        )
    return port, token


def stop(transport: Transport) -> bool:
    """End the server (SIGTERM, so kernels are shut down; SIGKILL after 10 s) and its tmux session.
    False when none was running."""
    script = (
        f"pid=$({tmux(transport)} display-message -p -t {SESSION} '#{{pane_pid}}' 2>/dev/null) || {{ echo none; exit 0; }}\n"
        'kill -TERM "$pid" 2>/dev/null\n'
        'for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done\n'
        'kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"\n'
        f"{tmux(transport)} kill-session -t {SESSION} 2>/dev/null\n"
        "echo stopped\n"
    )
    return transport.run(script, check=False, timeout=60).stdout.strip().endswith("stopped")
