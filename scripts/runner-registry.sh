#!/usr/bin/env bash
# A private Docker registry with basic auth on 127.0.0.1, for the runner's private-image tests
# (runner/tests/registry.rs). Docker treats 127.0.0.0/8 registries as insecure (plain HTTP)
# by default, so no TLS or daemon configuration is needed.
#
#   scripts/runner-registry.sh install
#       Installs Debian's docker-registry and apache2-utils (htpasswd) if missing
#       (apt-get update only when the install fails).
#   scripts/runner-registry.sh start DIR PORT USER PASSWORD
#       Writes DIR/config.yml and DIR/htpasswd (bcrypt), stores images in DIR/data, starts the
#       registry in the background on 127.0.0.1:PORT, waits until it answers and prints its
#       PID. Stop it with `kill PID`.
set -euo pipefail

install() {
    if command -v docker-registry >/dev/null && command -v htpasswd >/dev/null; then
        return 0
    fi
    # Tests start registries concurrently: one install at a time (apt holds dpkg's lock, and a
    # second apt-get would fail on it rather than wait).
    exec 9>"${TMPDIR:-/tmp}/cairn-runner-registry-install.lock"
    flock 9
    if command -v docker-registry >/dev/null && command -v htpasswd >/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    local sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    if ! $sudo apt-get install -y docker-registry apache2-utils >/dev/null 2>&1; then
        $sudo apt-get update >/dev/null
        $sudo apt-get install -y docker-registry apache2-utils >/dev/null
    fi
    command -v docker-registry >/dev/null && command -v htpasswd >/dev/null
}

start() {
    local dir="$1" port="$2" user="$3" password="$4"
    install
    mkdir -p "$dir/data"
    htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd:
    realm: runner-test
    path: $dir/htpasswd
EOF
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "runner-registry.sh: docker-registry exited:" >&2
            cat "$dir/registry.log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    echo "runner-registry.sh: docker-registry did not listen on 127.0.0.1:$port" >&2
    cat "$dir/registry.log" >&2
    exit 1
}

case "${1:-}" in
    install) install ;;
    start)
        [[ $# -eq 5 ]] || { echo "usage: $0 start DIR PORT USER PASSWORD" >&2; exit 2; }
        start "$2" "$3" "$4" "$5"
        ;;
    *) echo "usage: $0 install | start DIR PORT USER PASSWORD" >&2; exit 2 ;;
esac
