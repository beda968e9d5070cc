#!/usr/bin/env bash
# Install moto's standalone server (a local AWS API emulator, used by the tests of
# providers/aws) into a virtualenv at <repo>/.tools/moto and print the path of `moto_server`.
#
# Only moto is pinned; its own dependencies come as moto's metadata allows.
# Idempotent: if that exact moto version is already installed, it just prints the path.
set -euo pipefail

MOTO_VERSION="5.2.5"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$script_dir")"
venv="$repo_root/.tools/moto"
bin="$venv/bin/moto_server"

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true
}

if [[ -x "$bin" && "$(installed_version)" == "$MOTO_VERSION" ]]; then
    echo "$bin"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2

if [[ ! -x "$bin" || "$(installed_version)" != "$MOTO_VERSION" ]]; then
    echo "install-moto.sh: moto $MOTO_VERSION did not install $bin" >&2
    exit 1
fi
echo "$bin"
