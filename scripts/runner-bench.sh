#!/usr/bin/env bash
# The runner's benchmarks: builds the release binaries and runs `bench-runner`, which prints
# `BENCH <name> <value>` lines on stdout (progress and wrk's report on stderr).
#
# Usage: scripts/runner-bench.sh [bench-runner args...]
#   e.g. scripts/runner-bench.sh --only overhead,noop --samples 30 --noop-seconds 10
#        scripts/runner-bench.sh --only soak --soak-tasks 5000
# Needs a running Docker engine; installs wrk from Debian if it is missing.
set -euo pipefail
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build --release --locked --workspace --bins) >&2
exec "$target/release/bench-runner" "$@"
