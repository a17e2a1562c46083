#!/usr/bin/env bash
# tests/systemd-e2e/lib.sh: what run.sh (`make systemd-e2e`) and deb.sh
# (`make deb-e2e`) share, sourced by both with E2E set to the test's name:
# the checks that it can run here (else it fails naming what is missing:
# tests/support/require.sh), the
# cached debootstrap of Debian 12, the summary table (row/pass/fail; written
# to $OVT_OUT/$E2E-summary.md), the clean-up trap, the overlay, the
# fixtures (binary and helpers in /srv/ovt, a throwaway PKI, an OpenVPN
# server conf, the operator's .env in $RUN/env), the boot with systemd as
# PID 1 (C runs a command inside), the "before" snapshot of every path and
# of the account files, and the HTTPS receiver (receiver_up, EV). See
# run.sh's header for how the container is made and why.
#
# Env: OVT_BIN (the binary, `make build`'s static release), OVT_OUT (the
# target dir), KEEP=1 keeps the overlay's upper dir for a look afterwards.
E2E=${E2E:-systemd-e2e}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OVT_OUT:-$REPO/target}
BIN=${OVT_BIN:-$OUT/x86_64-unknown-linux-gnu/release/openvpn-telemetry}
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,openvpn,iproute2,ca-certificates,python3,openssl,procps,easy-rsa
# The idle window for the watchdog check, and the WatchdogSec used for it.
# The unit's own WatchdogSec is 120 s: the idle check runs under a drop-in
# with a short one instead (same code path, a smaller number), so that it
# sees several watchdog periods in seconds. OVT_IDLE_WATCHDOG=120
# OVT_IDLE_SECS=150 checks the unit's own value (2.5 more minutes).
IDLE_SECS=${OVT_IDLE_SECS:-20}
IDLE_WATCHDOG=${OVT_IDLE_WATCHDOG:-4}
T_START=$(date +%s%N)
# Which code: the binary's version and the tree it was built from.
if REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
    git -C "$REPO" diff --quiet HEAD -- src assets Cargo.toml Cargo.lock || REV="$REV + uncommitted src changes"
else
    REV="(not a git tree)"
fi
REV=${OVT_REV:-$REV}   # (for a binary built elsewhere)

say() { printf '[%s %s] %s\n' "$E2E" "$(date -u +%H:%M:%S)" "$*" >&2; }
. "$REPO/tests/support/require.sh"
cannot_run() { require_missing "$E2E" "$*"; }

# --- can it run here? --------------------------------------------------------
[ "$(id -u)" = 0 ] || cannot_run "needs root (systemd-nspawn, overlayfs, debootstrap); have uid $(id -u)"
"$REPO/tests/setup.sh" systemd-e2e
command -v systemd-nspawn >/dev/null || cannot_run "no systemd-nspawn (apt-get install systemd-container)"
command -v nsenter >/dev/null || cannot_run "no nsenter (apt-get install util-linux)"
command -v openssl >/dev/null || cannot_run "no openssl (apt-get install openssl)"
[ -x "$BIN" ] || { echo "$E2E: FAIL: no binary at $BIN (make build)" >&2; exit 1; }

KEY=$(printf '%s %s\n' "$SUITE" "$INCLUDE" | sha256sum | cut -c1-10)
CACHE=$OUT/systemd-e2e
ROOT=$CACHE/$SUITE-$KEY
NAME=ovt-sde2e-$$
RUN=$CACHE/run-$$
SUMMARY=$OUT/$E2E-summary.md
mkdir -p "$CACHE"

if [ ! -x "$ROOT/bin/systemctl" ]; then
    command -v debootstrap >/dev/null || cannot_run "no debootstrap (apt-get install debootstrap)"
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || cannot_run "no Debian mirror in the apt sources to debootstrap $SUITE from (and no cached root)"
    say "debootstrap $SUITE from $mirror into $ROOT (once; cached)"
    t0=$(date +%s)
    rm -rf "$ROOT.new"
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT.new" "$mirror" >"$ROOT.log" 2>&1; then
        tail -20 "$ROOT.log" >&2
        echo "$E2E: FAIL: debootstrap failed (log: $ROOT.log)" >&2
        exit 1
    fi
    mv "$ROOT.new" "$ROOT"
    DEBOOTSTRAP="made now in $(($(date +%s) - t0)) s, cached for the next run"
else
    DEBOOTSTRAP="cached (${ROOT#"$OUT"/})"
fi

# --- summary -----------------------------------------------------------------
ROWS=()
FAILS=0
row() { # check result detail
    ROWS+=("| $1 | $2 | $3 |")
    [ "$2" = PASS ] || FAILS=$((FAILS + 1))
    say "$2: $1 - $3"
}
pass() { row "$1" PASS "$2"; }
fail() { row "$1" FAIL "$2"; }
summary() {
    local wall
    wall=$(awk -v a="$T_START" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
    {
        echo "| $E2E (tests/systemd-e2e/$(basename "$0")) | result | measured |"
        echo "|---|---|---|"
        echo "| Run | $(date -u '+%Y-%m-%d %H:%M UTC'), ${REV:-?} | Debian 12 container, systemd ${SYSTEMD_VER:-?} as PID 1, OpenVPN ${OPENVPN_VER:-?}; debootstrap $DEBOOTSTRAP |"
        printf '%s\n' "${ROWS[@]}"
        echo "| $E2E wall time | $([ "$FAILS" = 0 ] && echo PASS || echo "FAIL ($FAILS)") | $wall s |"
    } >"$SUMMARY.tmp"
    mv "$SUMMARY.tmp" "$SUMMARY"
    echo
    cat "$SUMMARY"
}

# --- the container -----------------------------------------------------------
NSPAWN_PID=
LEADER=
cleanup() {
    local rc=$?
    set +e
    trap - ERR
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null    # nspawn powers the container off
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    # The container's PID 1, if it outlived nspawn: killing it ends its
    # whole PID namespace.
    if [ -n "$LEADER" ] && [ "$(cat "/proc/$LEADER/comm" 2>/dev/null)" = systemd ] \
        && [ "$(readlink "/proc/$LEADER/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]; then
        kill -KILL "$LEADER" 2>/dev/null
    fi
    if mountpoint -q "$RUN/merged" 2>/dev/null; then umount "$RUN/merged" 2>/dev/null || umount -l "$RUN/merged"; fi
    if [ -n "${KEEP:-}" ]; then say "kept $RUN"; else rm -rf "$RUN"; fi
    [ "$rc" != 0 ] && [ "$FAILS" = 0 ] && fail "${STEP:-setup}" "stopped before the end (exit $rc)"
    [ "${#ROWS[@]}" -gt 0 ] && summary
    [ "$rc" = 0 ] && [ "$FAILS" != 0 ] && rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'fail "${STEP:-setup}" "command failed (line $LINENO): $BASH_COMMAND"' ERR

die() { fail "${STEP:-setup}" "$*"; exit 1; }

# Leftovers of a crashed earlier run: its container and overlay.
for old in "$CACHE"/run-*; do
    [ -d "$old" ] || continue
    # Another run going on right now (its script still alive): not ours.
    owner=${old##*/run-}
    tr '\0' ' ' <"/proc/$owner/cmdline" 2>/dev/null | grep -qE "systemd-e2e/(run|deb)\.sh" && continue
    pid=$(cat "$old/nspawn.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "systemd-nspawn .*ovt-sde2e-"; then
        kill -TERM "$pid" 2>/dev/null; sleep 3; kill -KILL "$pid" 2>/dev/null || true
    fi
    mountpoint -q "$old/merged" && { umount "$old/merged" 2>/dev/null || umount -l "$old/merged"; }
    rm -rf "$old"
done

mkdir -p "$RUN"/{upper,work,merged,pki}
if mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$RUN/upper,workdir=$RUN/work" "$RUN/merged" 2>/dev/null; then
    LAYER=overlayfs
else
    cp -a "$ROOT/." "$RUN/merged/"
    LAYER=copy
fi
M=$RUN/merged

# Fixtures, before boot: the binary and helpers in /srv/ovt (not under a home
# directory, which the agent's unit hides), a throwaway PKI, the OpenVPN
# server conf the installer patches, the receiver's settings.
STEP=fixtures
. "$REPO/tests/e2e/lib.sh"   # ovt_pki
say() { printf '[%s %s] %s\n' "$E2E" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { fail "${STEP:-setup}" "$*"; exit 1; }
ovt_pki "$RUN/pki" 1
install -d -m 0755 "$M/srv/ovt" "$M/srv/ovt/pki"
install -m 0755 "$BIN" "$M/srv/ovt/openvpn-telemetry"
install -m 0644 "$REPO/tests/support/receiver.py" "$HERE/events.py" "$REPO/tests/e2e/tping.py" "$M/srv/ovt/"
install -m 0644 "$RUN/pki"/*.crt "$M/srv/ovt/pki/"
install -m 0600 "$RUN/pki"/*.key "$M/srv/ovt/pki/"
install -d -m 0755 "$M/etc/openvpn/server"
# No `status` line: the stock openvpn-server@ unit's `--status
# /run/openvpn-server/status-server.log --status-version 2` applies (every
# 60 s, into the 0710 root directory its tmpfiles rule makes). run.sh adds
# an explicit line later for the other variant.
cat >"$M/etc/openvpn/server/server.conf" <<'EOF'
# systemd-e2e test server (throwaway).
proto udp
local 192.0.2.1
port 1194
dev tun
topology subnet
server 10.99.0.0 255.255.255.0
ca /srv/ovt/pki/ca.crt
cert /srv/ovt/pki/server.crt
key /srv/ovt/pki/server.key
dh none
user nobody
group nogroup
persist-key
persist-tun
keepalive 10 60
verb 3
EOF
TOKEN=sde2e-$RANDOM$RANDOM
# The operator's overrides; written in after the "before" snapshot below.
cat >"$RUN/env" <<EOF
TELEMETRY_URL="https://127.0.0.1:8443/api/v1/events"
CA_CERT=/srv/ovt/pki/ca.crt
AUTH_HEADER="Authorization: Bearer $TOKEN"
SERVER_ID=sde2e
OPENVPN_SERVER_CONF=/etc/openvpn/server/server.conf
EASYRSA_INDEX=/etc/openvpn/easy-rsa/pki/index.txt
ROTATE_INTERVAL_SECONDS=1
SNAPSHOT_INTERVAL_SECONDS=10
RETRY_SLEEP_SECONDS=1
SESSION_UPDATE_INTERVAL_SECONDS=2
EOF

# A command inside the container: all its namespaces, its root, a clean env.
C() { nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"; }
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# Boots the container in the background; waits for its systemd to be up.
boot() {
    systemd-nspawn -D "$M" --boot --private-network --register=no --keep-unit -M "$NAME" \
        </dev/null >>"$RUN/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    echo "$NSPAWN_PID" >"$RUN/nspawn.pid"
    LEADER=
    for _ in $(seq 100); do
        LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
        [ -n "$LEADER" ] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$RUN/nspawn.log" >&2; die "systemd-nspawn exited"; }
        sleep 0.1
    done
    [ -n "$LEADER" ] || { tail "$RUN/nspawn.log" >&2; die "no systemd in the container after 10 s"; }
    for _ in $(seq 200); do C test -S /run/systemd/private && break; sleep 0.1; done
    state=$(C timeout 60 systemctl is-system-running --wait 2>&1 || true)
    case $state in running|degraded) ;; *) die "container did not boot: $state" ;; esac
}
STEP=boot
boot
SYSTEMD_VER=$(C systemctl --version | awk 'NR == 1 {print $2}')
OPENVPN_VER=$(C openvpn --version 2>/dev/null | awk 'NR == 1 {print $2}')
pass "Boot: systemd as PID 1 in the container ($LAYER over the cached root)" \
    "is-system-running: $state; $(ms "$T_START" "$(now)") ms since start"

# An Easy-RSA CA as an operator makes one, with the distribution's easyrsa:
# init-pki's pki/ is 0700 root, so EASYRSA_INDEX is read only through the
# unit's capability.
STEP=easy-rsa
easyrsa() { C env EASYRSA_BATCH=1 EASYRSA_PKI=/etc/openvpn/easy-rsa/pki /usr/share/easy-rsa/easyrsa "$@" >/dev/null 2>&1; }
C install -d -m 0755 /etc/openvpn/easy-rsa
easyrsa init-pki || die "easyrsa init-pki failed"
easyrsa --req-cn=sde2e-ca build-ca nopass || die "easyrsa build-ca failed"
easyrsa build-client-full sde2e-alice nopass || die "easyrsa build-client-full failed"
PKI_MODE=$(C stat -c %a /etc/openvpn/easy-rsa/pki)

# What is on the system before anything of ours: every path with type, mode
# and owner (volatile trees left out), and the account files themselves.
snapshot() {
    C sh -c 'find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/systemd \
        -o -path /srv/ovt \) -prune -o -printf "%p %y %m %u:%g\n" | LC_ALL=C sort'
}
snapshot >"$RUN/before.list"
for f in passwd group shadow gshadow; do C cat "/etc/$f" >"$RUN/before.$f"; done
C sha256sum /etc/openvpn/server/server.conf >"$RUN/before.conf.sha"

# The system now against that first look, after an uninstall or purge: sets
# added, removed (paths matching the regex $1 left out of both), unexpected
# (added beyond the documented server.conf.bak-YYYYmmddHHMMSS backups, the
# conf before patching), backups (their count), accounts ("same" or which
# file differs) and conf ("byte for byte" or "DIFFERS").
compare_with_before() {
    local ignore=${1:-^$} f
    snapshot >"$RUN/after.list"
    added=$(LC_ALL=C comm -13 "$RUN/before.list" "$RUN/after.list" | grep -vE "$ignore" || true)
    removed=$(LC_ALL=C comm -23 "$RUN/before.list" "$RUN/after.list" | grep -vE "$ignore" || true)
    unexpected=$(echo "$added" | grep . | grep -vE '^/etc/openvpn/server/server\.conf\.bak-[0-9]{14} f ' || true)
    backups=$(echo "$added" | grep -cE '^/etc/openvpn/server/server\.conf\.bak-' || true)
    accounts=same
    for f in passwd group shadow gshadow; do
        C cat "/etc/$f" | cmp -s - "$RUN/before.$f" || accounts="/etc/$f differs"
    done
    conf=$(C sha256sum /etc/openvpn/server/server.conf | cmp -s - "$RUN/before.conf.sha" && echo "byte for byte" || echo "DIFFERS")
}

C install -d -m 0755 /etc/openvpn-telemetry
C sh -c 'umask 077; cat >/etc/openvpn-telemetry/.env' <"$RUN/env"

# The receiver: receiver.py over HTTPS with a bearer token, as a transient
# unit of the container's systemd.
STEP=receiver
receiver_up() { # (it keeps deduplicating against its store across restarts)
    C rm -f /srv/ovt/rx.port
    C systemd-run --quiet --unit=ovt-e2e-receiver python3 /srv/ovt/receiver.py --listen 127.0.0.1:8443 \
        --ready-file /srv/ovt/rx.port --cert /srv/ovt/pki/receiver.crt --key /srv/ovt/pki/receiver.key \
        --token "$TOKEN" --db /srv/ovt/rx
    for _ in $(seq 100); do C test -s /srv/ovt/rx.port && break; sleep 0.1; done
    C test -s /srv/ovt/rx.port || die "receiver did not start: $(C journalctl -u ovt-e2e-receiver --no-pager | tail -5)"
}
receiver_up
EV() { C python3 /srv/ovt/events.py /srv/ovt/rx "$@"; }
# The capabilities of every thread of process $1 in the container, as
# "comm=CapEff/CapPrm ..." (hex, from /proc/PID/task/*/status).
threads_caps() {
    C sh -c 'for t in /proc/$1/task/*; do
        printf "%s=%s/%s " "$(cat "$t/comm")" "$(sed -n "s/^CapEff:\t//p" "$t/status")" "$(sed -n "s/^CapPrm:\t//p" "$t/status")"
    done' sh "$1"
}
# Whether every thread in threads_caps's output $2 has exactly $1 (EFF/PRM).
all_threads() {
    [ -n "$2" ] && ! tr ' ' '\n' <<<"${2% }" | grep -qvE "^[^=]+=$1\$"
}
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
