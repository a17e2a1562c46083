#!/usr/bin/env bash
# tests/old-distro/root.sh ROOT: a Debian bullseye (glibc 2.31, dpkg 1.20)
# minbase root at ROOT, debootstrapped once from the Debian mirror apt
# already uses here (read from the apt sources) and reused afterwards.
# For `make dist-check` and `make deb-bullseye`. Needs root and debootstrap.
set -euo pipefail
root=${1:?usage: root.sh ROOT}
[ -x "$root/bin/sh" ] && exit 0
. "$(dirname "$0")/../support/require.sh"
mirror=$(debian_mirror)
[ -n "$mirror" ] || { echo "old-distro: no Debian mirror in the apt sources" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "old-distro: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
echo "debootstrap bullseye from $mirror into $root (once)"
rm -rf "$root"
mkdir -p "$root"
debootstrap --variant=minbase bullseye "$root" "$mirror" > "$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
