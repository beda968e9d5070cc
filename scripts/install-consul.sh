#!/usr/bin/env bash
# Install a Consul binary into <repo>/.tools/consul/usr/bin/consul and print its path.
#
# There is no current Consul package in Debian; the Debian bullseye `consul`
# package (1.8.x) still works on newer systems because the binary only needs
# libc. We fetch it with a private apt configuration (nothing under /etc/apt is
# touched and nothing is installed system-wide), then unpack it with `dpkg -x`.
#
# Idempotent: if the binary is already present and runs, it just prints its path.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$script_dir")"
tools="$repo_root/.tools"
dest="$tools/consul"
bin="$dest/usr/bin/consul"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

# Use the Debian archive this machine's apt is configured with, whatever its host.
# Both one-line (.list) and deb822 (.sources) formats.
mirror=""
shopt -s nullglob
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    while IFS= read -r line; do
        # one-line: deb [opts] URI suite comps ; deb822: URIs: URI...
        uri=""
        if [[ "$line" =~ ^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+) ]]; then
            uri="${BASH_REMATCH[2]}"
        elif [[ "$line" =~ ^[[:space:]]*URIs:[[:space:]]*(.*)$ ]]; then
            for u in ${BASH_REMATCH[1]}; do
                uri="$u"
                break
            done
        fi
        # Only the main Debian archive (not debian-security, not third parties).
        if [[ "$uri" =~ ^(https?://[^/]+(/[^[:space:]]*)?/debian)/?$ ]]; then
            mirror="${BASH_REMATCH[1]}"
            break 2
        fi
    done <"$f"
done
shopt -u nullglob
if [[ -z "$mirror" ]]; then
    echo "install-consul: no Debian archive found in /etc/apt/sources.list{,.d/*}; configure apt first" >&2
    exit 1
fi

apt_dir="$tools/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
sources="$apt_dir/sources.list"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [[ -r "$keyring" ]]; then
    echo "deb [signed-by=$keyring] $mirror bullseye main" >"$sources"
else
    echo "deb $mirror bullseye main" >"$sources"
fi

apt_opts=(
    -o "Dir::Etc::SourceList=$sources"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
)
# As root, apt downloads as the unprivileged _apt user, which cannot write
# into the repository; download as root instead (avoids a warning).
if [[ $EUID -eq 0 ]]; then
    apt_opts+=(-o "APT::Sandbox::User=root")
fi

echo "install-consul: fetching consul from $mirror (bullseye)" >&2
apt-get "${apt_opts[@]}" -qq update >&2

rm -f "$apt_dir"/consul_*.deb
(cd "$apt_dir" && apt-get "${apt_opts[@]}" -qq download consul >&2)

debs=("$apt_dir"/consul_*.deb)
if [[ ! -f "${debs[0]}" ]]; then
    echo "install-consul: apt-get download produced no consul_*.deb" >&2
    exit 1
fi
dpkg -x "${debs[0]}" "$dest"

if ! "$bin" version >&2; then
    echo "install-consul: $bin does not run" >&2
    exit 1
fi
echo "$bin"
