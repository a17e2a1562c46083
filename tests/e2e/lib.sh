# tests/e2e/lib.sh: building blocks for the end-to-end proof with a real
# OpenVPN 2.6 in network namespaces (sourced by run.sh and fixtures.sh).
#
# Guarantees: every network object it makes is named ovt-* and lives only in
# the namespaces ovt-srv / ovt-cli (TEST-NET 192.0.2.0/24 on a veth pair,
# tunnels in 10.99.x.0/24); the host's interfaces and routes are never
# touched. Every process it starts is tracked by PID (ovt_track) so that
# ovt_cleanup can end exactly those, and it removes its own leftovers from
# an earlier run before starting.

OVT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OVT_SRV_NS=ovt-srv
OVT_CLI_NS=ovt-cli
OVT_SRV_ADDR=192.0.2.1
OVT_CLI_ADDR=192.0.2.2
# Every PID this harness starts, one a line (survives subshells, and a
# crashed run: the next run ends what is listed here before starting).
OVT_PIDFILE=${OVT_PIDFILE:-/run/ovt-e2e.pids}

say() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# Remembers a PID for cleanup.
ovt_track() { echo "$1" >>"$OVT_PIDFILE"; }

# Why the e2e cannot run here, or nothing when it can.
ovt_gate() {
    [ "$(id -u)" = 0 ] || { echo "needs root; have uid $(id -u)"; return; }
    [ -c /dev/net/tun ] || { echo "no /dev/net/tun (modprobe tun)"; return; }
    command -v ip >/dev/null || { echo "no ip(8) (apt-get install iproute2)"; return; }
    ip netns list >/dev/null 2>&1 || { echo "ip netns not usable"; return; }
    if ! ip netns add ovt-gate-probe 2>/dev/null; then echo "cannot create network namespaces"; return; fi
    ip netns del ovt-gate-probe 2>/dev/null
    command -v openssl >/dev/null || { echo "no openssl (apt-get install openssl)"; return; }
    command -v python3 >/dev/null || { echo "no python3 (apt-get install python3)"; return; }
}

# Debian's openvpn, installed when missing.
ovt_need_openvpn() {
    command -v openvpn >/dev/null && return 0
    say "installing Debian's openvpn"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openvpn >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openvpn >/dev/null; } \
        || die "cannot install openvpn with apt-get"
}

# Removes namespaces and veths of an earlier (crashed) run.
ovt_net_down() {
    ip netns del "$OVT_SRV_NS" 2>/dev/null || true
    ip netns del "$OVT_CLI_NS" 2>/dev/null || true
    ip link del ovt-veth-s 2>/dev/null || true
}

# Two namespaces joined by a veth pair; addresses only inside them.
ovt_net_up() {
    ovt_net_down
    ip netns add "$OVT_SRV_NS" && ip netns add "$OVT_CLI_NS" || die "ip netns add failed"
    ip link add ovt-veth-s netns "$OVT_SRV_NS" type veth peer name ovt-veth-c netns "$OVT_CLI_NS" \
        || die "cannot create the veth pair"
    ip -n "$OVT_SRV_NS" addr add "$OVT_SRV_ADDR/24" dev ovt-veth-s
    ip -n "$OVT_CLI_NS" addr add "$OVT_CLI_ADDR/24" dev ovt-veth-c
    local ns
    for ns in "$OVT_SRV_NS" "$OVT_CLI_NS"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    ip -n "$OVT_SRV_NS" link set ovt-veth-s up
    ip -n "$OVT_CLI_NS" link set ovt-veth-c up
}

# A throwaway PKI in $1 (tests/support/pki.sh): ca, server, ovt-client-01..N,
# plus a TLS server cert for the receiver on 127.0.0.1 and an mTLS client
# cert for the agent.
. "$(dirname "${BASH_SOURCE[0]}")/../support/pki.sh"
ovt_pki() {
    local dir=$1 n=$2 i
    pki_ca "$dir" ca ovt-e2e-ca || die "openssl: CA"
    pki_cert "$dir" server ovt-server server ca || die "openssl: cert server"
    pki_cert "$dir" receiver 127.0.0.1 server ca || die "openssl: cert receiver"
    pki_cert "$dir" agent ovt-agent client ca || die "openssl: cert agent"
    for i in $(seq -f %02g 1 "$n"); do
        pki_cert "$dir" "client$i" "ovt-client-$i" client ca &
        (( 10#$i % 8 == 0 )) && wait
    done
    wait
    for i in $(seq -f %02g 1 "$n"); do [ -s "$dir/client$i.crt" ] || die "openssl: client$i missing"; done
}

# Writes an OpenVPN server config to $1. Args: conf pki port subnet(10.99.N) dev status version [extra lines]
ovt_server_conf() {
    local conf=$1 pki=$2 port=$3 net=$4 dev=$5 status=$6 version=$7
    shift 7
    cat >"$conf" <<EOF
# ovt e2e test server (throwaway)
proto udp
local $OVT_SRV_ADDR
port $port
dev $dev
dev-type tun
topology subnet
server $net.0 255.255.255.0
ca $pki/ca.crt
cert $pki/server.crt
key $pki/server.key
dh none
user nobody
group nogroup
persist-key
persist-tun
keepalive 10 60
max-clients 200
status $status 1
status-version $version
script-security 2
verb 3
EOF
    local line
    for line in "$@"; do echo "$line" >>"$conf"; done
}

# Starts openvpn in a namespace in the foreground (tracked by PID).
# Args: ns conf log pidvar
ovt_openvpn() {
    local ns=$1 conf=$2 log=$3
    ip netns exec "$ns" openvpn --config "$conf" --log "$log" >/dev/null 2>&1 &
    local pid=$!
    ovt_track "$pid"
    echo "$pid"
}

# Waits until $1 contains $2 (grep -F) or $3 seconds pass.
ovt_wait_log() {
    local file=$1 text=$2 secs=${3:-20} t=0
    while ! grep -qF -- "$text" "$file" 2>/dev/null; do
        sleep 0.05
        t=$((t + 1))
        [ "$t" -ge $((secs * 20)) ] && return 1
    done
    return 0
}

# Starts client $i (01..) against port $2 in the client namespace; prints its PID.
# Args: dir pki i port
ovt_client() {
    local dir=$1 pki=$2 i=$3 port=$4
    ip netns exec "$OVT_CLI_NS" openvpn --client --dev "ovtc$i-$port" --dev-type tun --proto udp \
        --remote "$OVT_SRV_ADDR" "$port" --nobind --remote-cert-tls server \
        --ca "$pki/ca.crt" --cert "$pki/client$i.crt" --key "$pki/client$i.key" \
        --explicit-exit-notify 1 --connect-retry 1 --connect-retry-max 30 --resolv-retry 0 \
        --verb 3 --log "$dir/client$i-$port.log" >/dev/null 2>&1 &
    local pid=$!
    ovt_track "$pid"
    echo "$pid"
}

# The tunnel address a client got (from its log), e.g. 10.99.0.2.
ovt_client_vip() {
    sed -n 's/.*net_addr_v4_add: \([0-9.]*\)\/.*/\1/p' "$1" | tail -n1
}

# Pings the server's tunnel address through client $i's tun device.
ovt_ping() { # dev server_vip count
    ip netns exec "$OVT_CLI_NS" python3 "$OVT_LIB_DIR/tping.py" "$1" "$2" "${3:-2}" "${4:-56}"
}

# Waits (up to $2 s, default 5) for PID to exit, then kills it.
ovt_reap() {
    local pid=$1 t=0
    while kill -0 "$pid" 2>/dev/null && [ "$t" -lt $((${2:-5} * 20)) ]; do sleep 0.05; t=$((t + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Ends a tracked process with SIGTERM and waits (up to 5 s) for it.
ovt_stop() {
    kill -TERM "$1" 2>/dev/null || return 0
    ovt_reap "$1" 5
}

# True when PID still runs one of the programs this harness starts (so a
# recycled PID of someone else's process is never signalled).
_ovt_ours() {
    local cmd
    [ -e "/proc/$1/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    case $cmd in *openvpn*|*receiver.py*|*cost.py*|*check.py*|*relay.py*) return 0 ;; *) return 1 ;; esac
}

# Ends every tracked process (KILL after a grace period).
ovt_cleanup_procs() {
    [ -f "$OVT_PIDFILE" ] || return 0
    local pid pids=() t=0 alive
    while read -r pid; do
        [ -n "$pid" ] && _ovt_ours "$pid" && pids+=("$pid")
    done <"$OVT_PIDFILE"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    while [ "$t" -lt 40 ]; do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.05
        t=$((t + 1))
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -f "$OVT_PIDFILE"
}
