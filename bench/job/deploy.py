"""The benchmark job for pyinfra: the same 20 steps as recipe.toml.

Run from bench/job/ by bench/run.py: `pyinfra INVENTORY deploy.py -y`. The job's
variables come from the JSON file named by $BENCH_VARS (written from recipe.toml's
[vars]); each host's absolute home is its `home` host variable.
"""

import json
import os

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server

V = json.load(open(os.environ["BENCH_VARS"]))
HOME = host.data.home

# --- 4 directories
files.directory(name="app dir", path=f"{HOME}/app", mode="0755")
files.directory(name="config dir", path=f"{HOME}/app/config", mode="0750")
files.directory(name="logs dir", path=f"{HOME}/app/logs", mode="0700")
files.directory(name="bin dir", path=f"{HOME}/app/bin", mode="0755")

# --- 4 templates
files.template(name="app config", src="templates/app.toml.j2", dest=f"{HOME}/app/config/app.toml", mode="0640", **V)
files.template(name="app env", src="templates/app.env.j2", dest=f"{HOME}/app/config/app.env", mode="0600", **V)
files.template(name="app unit", src="templates/app.service.j2", dest=f"{HOME}/app/config/benchapp.service", mode="0644", **V)
files.template(name="tmux config", src="templates/tmux.conf.j2", dest=f"{HOME}/.tmux.conf", mode="0644", **V)

# --- 4 lines (literal lines, appended when missing)
files.line(name="path in bashrc", path=f"{HOME}/.bashrc", line='export PATH="$HOME/app/bin:$PATH"', escape_regex_characters=True)
files.line(name="alias in bashrc", path=f"{HOME}/.bashrc", line="alias ll='ls -la'", escape_regex_characters=True)
files.line(name="env in profile", path=f"{HOME}/.profile", line="export APP_ENV=bench", escape_regex_characters=True)
files.line(name="allow loopback", path=f"{HOME}/app/allowlist", line="allow 127.0.0.1", escape_regex_characters=True)

# --- 4 guarded commands (pyinfra's idiom for `creates=`: a File fact)
GUARDED = [
    ("seed data", f"printf 'seed\\n' > {HOME}/app/data.txt", f"{HOME}/app/data.txt"),
    (
        "keep original config",
        f"cp {HOME}/app/config/app.toml {HOME}/app/config/app.toml.orig",
        f"{HOME}/app/config/app.toml.orig",
    ),
    ("numbers", f"seq 1 500 > {HOME}/app/logs/numbers.txt", f"{HOME}/app/logs/numbers.txt"),
    ("checksums", f"cd {HOME}/app/config && sha256sum app.toml app.env > {HOME}/app/checksums.txt", f"{HOME}/app/checksums.txt"),
]
for name, command, creates in GUARDED:
    if not host.get_fact(File, path=creates):
        server.shell(name=name, commands=[command])

# --- 4 copies with modes
files.put(name="entry point", src="files/hello.sh", dest=f"{HOME}/app/bin/hello", mode="0755")
files.put(name="motd", src="files/motd.txt", dest=f"{HOME}/app/motd.txt", mode="0644")
files.put(name="gitignore", src="files/gitignore", dest=f"{HOME}/app/.gitignore", mode="0644")
files.put(name="logrotate", src="files/logrotate.conf", dest=f"{HOME}/app/config/logrotate.conf", mode="0600")
