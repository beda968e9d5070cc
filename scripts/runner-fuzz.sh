#!/usr/bin/env bash
# Fuzzes the runner's HTTP API with schemathesis (PyPI), driven by the OpenAPI document the
# runner serves (/v1.1/openapi.json). Fails when schemathesis finds a problem: a 5xx other
# than the documented Docker and capacity failures (runner/fuzz/runner_hooks.py), a response
# that does not match its schema, an undocumented status code or content type, or invalid
# data accepted.
#
# Usage: scripts/runner-fuzz.sh [extra schemathesis args...]   (e.g. --max-examples 200)
# Environment: CARGO_TARGET_DIR; RUNNER_FUZZ_MAX_EXAMPLES (default 100 per operation).
# Installs schemathesis into <repo>/.tools/schemathesis (a venv) on first use.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$repo/.tools/schemathesis"

installed() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true
}
if [[ "$(installed)" != "$SCHEMATHESIS_VERSION" ]]; then
    mkdir -p "$(dirname "$venv")"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi

(cd "$repo" && cargo build --locked --workspace --bin runner) >&2
bash "$repo/scripts/runner-test-image.sh"

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="fuzz-$$-$RANDOM$RANDOM"
instance="fuzz-$$"
cat >"$work/runner.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
instance = "$instance"
shutdown_grace_ms = 2000
[auth]
bearer_tokens = ["$token"]
[limits]
max_concurrent_tasks = 4
max_queued_tasks = 64
rate_limit_per_second = 100000.0
rate_limit_burst = 100000
[tasks]
max_timeout_ms = 5000
default_timeout_ms = 2000
max_memory_bytes = 67108864
default_memory_bytes = 33554432
[images]
# Random image names must not reach a registry: absent images are a quick 404.
pull_policy = "never"
TOML
RUNNER_LOG=warn "$target/debug/runner" --config "$work/runner.toml" >"$work/runner.log" 2>&1 &
runner_pid=$!
cleanup() {
    kill "$runner_pid" 2>/dev/null && wait "$runner_pid" 2>/dev/null || true
    docker ps -aq --filter "label=cairn.runner.instance=$instance" | xargs -r docker rm -f >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

status=0
# From the scratch directory: schemathesis keeps its caches in the working directory.
cd "$work"
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$repo/runner/fuzz" SCHEMATHESIS_HOOKS=runner_hooks "$venv/bin/schemathesis" run \
    "http://127.0.0.1:$port/v1.1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --exclude-checks not_a_server_error,positive_data_acceptance \
    --max-examples "${RUNNER_FUZZ_MAX_EXAMPLES:-100}" \
    --request-timeout 30 \
    --workers 2 \
    "$@" || status=$?

left="$(docker ps -aq --filter "label=cairn.runner.instance=$instance" | wc -l)"
if ((status == 0)) && kill -0 "$runner_pid" 2>/dev/null; then
    # The runner must have survived, and its containers must all be gone once removals finish.
    sleep 2
    left="$(docker ps -aq --filter "label=cairn.runner.instance=$instance" | wc -l)"
fi
echo "runner-fuzz: schemathesis exit $status; labelled containers left: $left" >&2
if ! kill -0 "$runner_pid" 2>/dev/null; then
    echo "runner-fuzz: the runner died:" >&2
    tail -20 "$work/runner.log" >&2
    exit 1
fi
((left == 0)) || exit 1
exit "$status"
