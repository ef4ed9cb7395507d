#!/usr/bin/env bash
# Set up a fresh machine for ec2kit: the system tools the sandbox uses, and a venv.
#   - openssh-server, tmux, rsync, sudo, curl (apt-get, when root or with sudo)
#   - .venv with ec2kit installed in editable mode with its sandbox and test extras
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in sshd:openssh-server tmux:tmux rsync:rsync sudo:sudo curl:curl; do
  bin=${tool%%:*}; pkg=${tool##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "ec2kit needs these packages: ${need[*]}; install them (as root) and rerun." >&2; exit 1; fi
  echo "Installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "ec2kit needs Python 3.10 or newer ($PY is older)." >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "ec2kit is set up: .venv/bin/inv --list"
