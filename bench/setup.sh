#!/usr/bin/env bash
# Create bench/.peers/: a private venv holding the peer tools (pyinfra, ansible-core).
# Idempotent: re-running only installs what is missing. Never a dependency of ec2kit itself.
set -euo pipefail

PYINFRA_VERSION="3.10.0"
ANSIBLE_CORE_VERSION="2.19.14"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi

want() {  # want PKG VERSION: true when PKG==VERSION is not installed in the venv
    [ "$("$venv/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" != "$2" ]
}

if want pyinfra "$PYINFRA_VERSION" || want ansible-core "$ANSIBLE_CORE_VERSION"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pyinfra==$PYINFRA_VERSION" "ansible-core==$ANSIBLE_CORE_VERSION"
fi

"$venv/bin/pyinfra" --version
"$venv/bin/ansible-playbook" --version | head -1
