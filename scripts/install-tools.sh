#!/usr/bin/env bash
# Installs the developer tools the justfile needs, once: just and cargo-insta (with cargo install).
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
have just || cargo install --locked just
have cargo-insta || cargo install --locked cargo-insta
