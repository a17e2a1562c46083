#!/usr/bin/env bash
# tests/setup.sh [test|e2e|bench|systemd-e2e|deb ...]: installs, on a Debian or
# Ubuntu machine as root, the packages the named test targets need
# (default: test, i.e. `make test`). `make test`, `make e2e`, `make bench`,
# `make systemd-e2e` and `make deb-e2e` call it first, so each does its own set-up on a
# fresh machine and `.ci/run` needs no list of its own.
#
# Not root, or not Debian/Ubuntu: prints what is missing and how to get it,
# and exits 0; the tests that need a missing thing then FAIL naming it
# (tests/support/require.rs), they never pass silently.
set -euo pipefail

# What each target needs, and why (docs/testing.md, "Which tests need what").
#   build-essential  a C compiler: ring (rustls' crypto) builds C
#   openssl, python3, ca-certificates  throwaway CAs and the TLS receiver
#                    (tests/support/receiver.py)
#   strace           no network / no fork from a hook; NSS only in getent
#   util-linux       setpriv (run as nobody), unshare, mount
#   systemd          systemd-analyze security/verify of the unit
#   openvpn, easy-rsa, iproute2  the live OpenVPN status-file test in
#                    network namespaces, real Easy-RSA issue/revoke/expire
#   procps, acl      ps/pgrep; getfacl/setfacl for the spool's permissions
#   man-db           man finds and renders the installed man page
#   curl             the bash baseline agent in `make bench`
#   iputils-ping     `make e2e`
#   debootstrap, systemd-container  `make systemd-e2e` (a Debian 12 root
#                    booted with systemd-nspawn)
#   lintian          `make deb` checks the package with it (`make deb-e2e`,
#                    which also needs systemd-e2e's packages)
#   prometheus-node-exporter, prometheus  tests/metrics.rs: node_exporter's
#                    textfile collector scrapes the agent's metrics file on
#                    loopback, promtool (in prometheus) lints it
#   python3-pip      the opentelemetry-proto package (PyPI) that strictly
#                    parses every OTLP body in tests/agent.rs, installed
#                    into $CARGO_TARGET_DIR/otlp-py (not system-wide), and
#                    the jsonschema package that validates every body
#                    against docs/schema/ in tests/schema.rs, into
#                    $CARGO_TARGET_DIR/schema-py
pkgs_test=(build-essential openssl python3 python3-pip ca-certificates strace util-linux systemd
           openvpn easy-rsa iproute2 procps acl man-db prometheus-node-exporter prometheus)
pkgs_e2e=("${pkgs_test[@]}" iputils-ping curl)
pkgs_bench=(build-essential curl procps)
pkgs_systemd_e2e=(openssl python3 ca-certificates util-linux debootstrap systemd-container)
pkgs_deb=(lintian "${pkgs_systemd_e2e[@]}")

[ $# -gt 0 ] || set -- test
want=()
for t in "$@"; do
    case $t in
        test) want+=("${pkgs_test[@]}") ;;
        e2e) want+=("${pkgs_e2e[@]}") ;;
        bench) want+=("${pkgs_bench[@]}") ;;
        systemd-e2e) want+=("${pkgs_systemd_e2e[@]}") ;;
        deb) want+=("${pkgs_deb[@]}") ;;
        *) echo "setup: unknown target $t (test, e2e, bench, systemd-e2e, deb)" >&2; exit 2 ;;
    esac
done

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "setup: not a Debian/Ubuntu machine (no dpkg/apt-get): install the equivalents of" \
         "$(printf '%s\n' "${want[@]}" | sort -u | tr '\n' ' ')yourself; tests that need a missing one fail naming it" >&2
    exit 0
fi

missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages: ${missing[*]}; install them as root" \
             "(sudo apt-get install --no-install-recommends ${missing[*]}) or run make as root;" \
             "tests that need them fail naming what is missing" >&2
    else
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # A test machine gets the programs, not their services: without this,
        # prometheus, node_exporter and openvpn would start and listen on the
        # host. policy-rc.d's exit 101 means "not allowed"; it stays only
        # for this install (a policy the machine already has is left alone).
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

if [ "$(id -u)" != 0 ] && [[ " $* " == *" test "* ]]; then
    echo "setup: not root: make test runs the tests that need root (install, security, mounts, hooks as nobody," \
         "live OpenVPN), which will FAIL saying so; run make test as root (a plain cargo test leaves them out)" >&2
fi

# Python packages from PyPI, pinned, beside the build (never into the
# system): the strict OTLP parser for the receiver's --otlp mode
# (tests/support/receiver.py looks in otlp-py) and the JSON Schema validator
# of tests/schema.rs (tests/support/schema_check.py looks in schema-py).
pip_into() { # DIR IMPORT PACKAGE==VERSION
    # Installed there, not merely importable from a system-wide copy.
    if ! PYTHONPATH="$1" python3 -c "import os, sys, $2 as m
sys.exit(not os.path.realpath(m.__file__).startswith(os.path.realpath(sys.argv[1])))" "$1" 2>/dev/null; then
        echo "setup: installing $3 into $1"
        mkdir -p "$1"
        # --target installs beside the build, never into the system; older
        # Debian pips still want the PEP 668 flag for it.
        pip=(python3 -m pip install --quiet --disable-pip-version-check --target "$1" "$3")
        "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages \
            || echo "setup: could not install $3; the tests that need it will fail saying so" >&2
    fi
}
if [[ " $* " == *" test "* ]]; then
    target="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}"
    pip_into "$target/otlp-py" opentelemetry.proto.collector.logs.v1.logs_service_pb2 'opentelemetry-proto==1.45.2'
    pip_into "$target/schema-py" jsonschema 'jsonschema==4.23.0'
fi

# clippy and rustfmt for `make lint`, where the toolchain is rustup's.
if command -v rustup >/dev/null; then
    installed=$(rustup component list --installed 2>/dev/null || true)
    for c in clippy rustfmt; do
        grep -q "^$c" <<<"$installed" || rustup component add "$c" >/dev/null 2>&1 \
            || echo "setup: could not add the rustup component $c" >&2
    done
fi
exit 0
