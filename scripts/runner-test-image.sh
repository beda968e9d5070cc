#!/usr/bin/env bash
# Builds the tiny local image the runner's tests use, `cairn-runner-test:busybox`, without
# pulling anything: a rootfs of Debian's static busybox and a few applet links, imported
# with `docker import`. Idempotent: does nothing when the image already exists.
#
# Usage: scripts/runner-test-image.sh [--force]
set -euo pipefail

IMAGE="cairn-runner-test:busybox"
APPLETS=(sh echo cat sleep env yes head dd true false printf wget ls pwd id)

if [[ "${1:-}" != "--force" ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi

busybox_bin() {
    for candidate in /bin/busybox /usr/bin/busybox; do
        # Only a static busybox works in an otherwise empty rootfs.
        if [[ -x "$candidate" ]] && ! ldd "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! busybox_bin >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
    if ! $SUDO apt-get install -y busybox-static >/dev/null; then
        $SUDO apt-get update >/dev/null
        $SUDO apt-get install -y busybox-static >/dev/null
    fi
fi
BUSYBOX="$(busybox_bin)" || { echo "no static busybox found after installing busybox-static" >&2; exit 1; }

ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
mkdir -p "$ROOTFS/bin" "$ROOTFS/tmp" "$ROOTFS/dev" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/etc"
chmod 1777 "$ROOTFS/tmp"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in "${APPLETS[@]}"; do
    ln -sf busybox "$ROOTFS/bin/$applet"
done
# `id` and `user` options resolve names through these.
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"

tar -C "$ROOTFS" -c . | docker import --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
