# tests/support/require.sh: sourced by the shell proofs (tests/e2e,
# tests/systemd-e2e, tests/old-distro). The same policy as
# tests/support/require.rs: a proof that cannot run here FAILS (exit 1)
# naming what is missing and how to get it; it never prints "skipped" and
# exits 0. `make` runs each after its own set-up (tests/setup.sh), as root.

# require_missing WHO WHAT: fails the proof WHO, naming WHAT.
require_missing() {
    echo "$1: FAIL: cannot run: $2. Run it as root through make (its tests/setup.sh set-up installs the packages)" >&2
    exit 1
}

# debian_mirror: the first Debian mirror in this machine's apt sources (the
# one debootstrap is pointed at), or nothing. Shared by tests/systemd-e2e
# and tests/old-distro, which both debootstrap a root once and cache it.
debian_mirror() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
        | grep -E '/debian/?$' | head -1 || true
}
