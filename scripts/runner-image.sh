#!/usr/bin/env bash
# Builds the runner's container image without pulling anything: a `FROM scratch` image with the
# release binary, exactly the shared libraries `ldd` says it needs plus the dynamic loader, the
# CA certificates, and /etc/passwd and /etc/group entries for the non-root user (UID 10001).
#
# Usage: scripts/runner-image.sh [TAG]        (default: cairn-runner:latest)
# Environment: CARGO_TARGET_DIR (where cargo builds; default <repo>/target),
#              RUNNER_IMAGE_SKIP_BUILD=1 (use the release binary already built).
# Prints the image id on stdout; progress goes to stderr.
set -euo pipefail

TAG="${1:-cairn-runner:latest}"
RUNNER_UID=10001

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$script_dir")"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release/runner"

if [[ "${RUNNER_IMAGE_SKIP_BUILD:-0}" != "1" ]]; then
    (cd "$repo" && cargo build --release --locked --workspace --bin runner) >&2
fi
[[ -x "$bin" ]] || { echo "runner-image.sh: no binary at $bin" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/runner"
# Smaller image; the symbols are not needed at run time (panics still print their message).
if command -v strip >/dev/null; then
    strip --strip-debug "$root/usr/local/bin/runner"
fi

# Each library at the path the loader will look for it, and the loader at the path the ELF
# header names (for example /lib64/ld-linux-x86-64.so.2). `cp -L` copies the file a symlink
# points to, under the symlink's name.
ldd_out="$(ldd "$bin" 2>&1 || true)"
if grep -q "not found" <<<"$ldd_out"; then
    echo "runner-image.sh: a library the runner needs is missing:" >&2
    echo "$ldd_out" >&2
    exit 1
fi
libs=()
if ! grep -q "not a dynamic executable\|statically linked" <<<"$ldd_out"; then
    while read -r path; do
        libs+=("$path")
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" | sort -u)
    ((${#libs[@]} > 0)) || { echo "runner-image.sh: cannot read ldd's output:" >&2; echo "$ldd_out" >&2; exit 1; }
fi
for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

printf 'root:x:0:0:root:/:/sbin/nologin\nrunner:x:%d:%d:cairn runner:/nonexistent:/sbin/nologin\n' \
    "$RUNNER_UID" "$RUNNER_UID" >"$root/etc/passwd"
printf 'root:x:0:\nrunner:x:%d:\n' "$RUNNER_UID" >"$root/etc/group"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
else
    echo "runner-image.sh: warning: no /etc/ssl/certs/ca-certificates.crt; HTTPS to registries will fail" >&2
fi

cp "$repo/runner/Dockerfile" "$ctx/Dockerfile"
echo "runner-image.sh: building $TAG from $bin with ${#libs[@]} libraries: ${libs[*]}" >&2
version="$(awk -F'"' '/^version = / { print $2; exit }' "$repo/runner/Cargo.toml")"
docker build --quiet \
    --label "org.opencontainers.image.title=cairn-runner" \
    --label "org.opencontainers.image.version=$version" \
    -t "$TAG" "$ctx"
