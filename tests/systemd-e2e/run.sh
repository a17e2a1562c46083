#!/usr/bin/env bash
# tests/systemd-e2e/run.sh (`make systemd-e2e`): the release binary on a
# real systemd host, i.e. a Debian 12 container booted with systemd as PID 1.
# Proves, with what an operator runs:
#   install -> unit active and READY (Type=notify); a hook as nobody
#   delivered to an HTTPS receiver in the container; the stock
#   openvpn-server@server unit with the patched conf (no status line, so the
#   unit's --status into the 0710 /run/openvpn-server applies) and a real
#   client (connect, SESSION_UPDATE and SESSION_SNAPSHOT from that status
#   file, disconnect with bytes), CERT_ISSUED from a 0700 easyrsa pki/, the
#   read capability effective on no agent thread (CapEff of each), check
#   OK on every source; the variant with an explicit status line; a unit
#   that denies capset makes the agent say so and read no source;
#   METRICS_TEXTFILE in node_exporter's directory under the unit's sandbox;
#   restart/stop times; the watchdog quiet while idle and firing for a hung
#   agent; a second install says "nothing to change"; PSEUDONYMIZE under the
#   unit (the key 0640 root:agent, read by the agent, refused to nobody, the
#   name never delivered); an upgrade over the
#   previous release's spool layout keeps pending events; uninstall --purge
#   leaves nothing but the documented conf backups.
#
# How: debootstrap (minbase + systemd, openvpn, python3, ...) once into
# $OVT_OUT/systemd-e2e/<suite>-<key>/ (cached between runs; the mirror is the
# one apt uses here), an overlayfs over it per run (a copy where overlayfs
# cannot be mounted), `systemd-nspawn --boot --private-network --keep-unit
# --register=no` in the background, and every command inside through
# `nsenter -t <container PID 1> -a` (the host has no system bus, so no
# machinectl). --private-network: the container has only its own loopback
# (plus a veth pair to a network namespace of its own for the VPN client,
# TEST-NET 192.0.2.0/24), so no packet of this test leaves it.
#
# Needs root. Fails naming what is missing where it cannot run (not root,
# no systemd-nspawn, no Debian mirror and no cached root).
# Exits 1 when a check fails. Always removes the container and its overlay.
# Summary (markdown): stdout and $OVT_OUT/systemd-e2e-summary.md.
#
# The container, fixtures, receiver and summary are in lib.sh (shared with
# deb.sh, the Debian package's proof).
#
# Env: OVT_BIN (the binary, `make build`'s static release), OVT_OUT (the
# target dir), KEEP=1 keeps the overlay's upper dir for a look afterwards.
set -euo pipefail
E2E=systemd-e2e
. "$(dirname "$0")/lib.sh"

# --- install -> active, READY ------------------------------------------------
STEP="install -> unit active and READY (Type=notify)"
t0=$(now)
C /srv/ovt/openvpn-telemetry install >"$RUN/install1.out" 2>&1 || { cat "$RUN/install1.out" >&2; die "install failed"; }
t1=$(now)
show() { C systemctl show openvpn-telemetry-agent -p "$1" --value; }
active=$(C systemctl is-active openvpn-telemetry-agent || true)
enabled=$(C systemctl is-enabled openvpn-telemetry-agent || true)
type=$(show Type)
main_start=$(show ExecMainStartTimestampMonotonic)
active_enter=$(show ActiveEnterTimestampMonotonic)
if [ "$active" = active ] && [ "$type" = notify ] && [ "$enabled" = enabled ]; then
    pass "$STEP" "install $(ms "$t0" "$t1") ms; $active, $enabled, Type=$type; READY=1 $(( (active_enter - main_start) / 1000 )) ms after exec"
else
    fail "$STEP" "active=$active enabled=$enabled Type=$type"
fi
# The hardened unit as the running systemd rates it (the tests rate it offline).
exposure=$(C systemd-analyze security openvpn-telemetry-agent --no-pager 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9.]*\).*/\1/p' | tail -1 || true)
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN {exit !(e <= 2.0)}'; then
    pass "hardened unit, rated by the running systemd" "systemd-analyze security: exposure $exposure (limit 2.0)"
else
    fail "hardened unit, rated by the running systemd" "exposure ${exposure:-unknown} (limit 2.0)"
fi
if C /usr/local/sbin/openvpn-telemetry check >"$RUN/check.out" 2>&1; then
    pass "openvpn-telemetry check on the installed system" "exit 0"
else
    fail "openvpn-telemetry check on the installed system" "exit non-zero: $(grep -iv ' ok' "$RUN/check.out" | head -3 | tr '\n' ' ')"
fi

# --- a hook as nobody, delivered over HTTPS ----------------------------------
STEP="hook as nobody -> HTTPS receiver"
t0=$(now)
C setpriv --reuid=nobody --regid=nogroup --clear-groups env -i common_name=sde2e-hook trusted_ip=192.0.2.77 \
    trusted_port=40000 ifconfig_pool_remote_ip=10.99.0.77 /etc/openvpn/scripts/telemetry-connect.sh \
    >"$RUN/hook.out" 2>&1 || true
if got=$(EV --type SESSION_CONNECTED --cn sde2e-hook --timeout 20); then
    pass "$STEP" "delivered $(ms "$t0" "$(now)") ms after the hook ran (TLS with CA_CERT, bearer token)"
else
    fail "$STEP" "not delivered in 20 s: $got; hook said: $(head -c 300 "$RUN/hook.out")"
fi

# --- a real OpenVPN server unit and client ------------------------------------
STEP="openvpn-server@server + client: connect"
grep -q telemetry-connect "$M/etc/openvpn/server/server.conf" \
    || fail "installer patched server.conf" "no client-connect line"
C sh -c 'ip netns add ovt-cli && ip link add ovt-s type veth peer name ovt-c netns ovt-cli &&
    ip addr add 192.0.2.1/24 dev ovt-s && ip link set ovt-s up &&
    ip -n ovt-cli addr add 192.0.2.2/24 dev ovt-c && ip -n ovt-cli link set ovt-c up &&
    ip -n ovt-cli link set lo up' || die "cannot set up the client's network namespace"
C systemctl start openvpn-server@server \
    || die "openvpn-server@server did not start: $(C journalctl -u openvpn-server@server --no-pager | tail -5)"
# A client in its namespace, as a transient unit $1, logging to /srv/ovt/$1.log.
client_up() {
    C systemd-run --quiet --unit="$1" ip netns exec ovt-cli openvpn --client --dev tun --proto udp \
        --remote 192.0.2.1 1194 --nobind --remote-cert-tls server --ca /srv/ovt/pki/ca.crt \
        --cert /srv/ovt/pki/client01.crt --key /srv/ovt/pki/client01.key --explicit-exit-notify 1 \
        --connect-retry 1 --resolv-retry 0 --verb 3 --log "/srv/ovt/$1.log"
    for _ in $(seq 200); do grep -q "Initialization Sequence Completed" "$M/srv/ovt/$1.log" 2>/dev/null && break; sleep 0.1; done
    grep -q "Initialization Sequence Completed" "$M/srv/ovt/$1.log" 2>/dev/null \
        || die "client got no tunnel: $(tail -3 "$M/srv/ovt/$1.log" 2>/dev/null)"
}
t0=$(now)
client_up ovt-e2e-client
t_tunnel=$(now)
C ip netns exec ovt-cli python3 /srv/ovt/tping.py tun0 10.99.0.1 5 1000 >/dev/null \
    && ping_ok="5 pings through the tunnel" || ping_ok="ping through the tunnel FAILED"
if got=$(EV --type SESSION_CONNECTED --cn ovt-client-01 --timeout 20); then
    SID=$(jget "$got" 'd["last"]["session_id"]')
    VIP=$(jget "$got" 'd["last"]["virtual_ip"]')
    pass "$STEP" "tunnel $(ms "$t0" "$t_tunnel") ms; SESSION_CONNECTED delivered $(ms "$t0" "$(now)") ms after start; virtual_ip $VIP; $ping_ok"
else
    SID=none
    fail "$STEP" "no SESSION_CONNECTED for ovt-client-01: $got"
fi
# The stock layout: server.conf has no status line, so the agent reads the
# file the stock unit names on its command line, which OpenVPN rewrites
# every 60 s: root 0600 in /run/openvpn-server, 0710 root.
run_dir=$(C stat -c '%a %U:%G' /run/openvpn-server)
status_mode=$(C stat -c '%a %U:%G' /run/openvpn-server/status-server.log 2>/dev/null || echo missing)
unit_status=$(C systemctl show openvpn-server@server -p ExecStart --value | grep -o -- '--status [^ ]* --status-version [0-9]' || echo "?")
STEP="SESSION_UPDATE from the stock unit's status file (no status line; $unit_status; /run/openvpn-server $run_dir, file $status_mode)"
if got=$(EV --type SESSION_UPDATE --cn ovt-client-01 --eq "session_id=$SID" --positive bytes_received --timeout 100); then
    pass "$STEP" "$(jget "$got" 'd["matched"]') update(s) $(ms "$t0" "$(now)") ms after the client started (OpenVPN writes it every 60 s), session_id = the connect's, bytes_received $(jget "$got" 'd["last"]["bytes_received"]')"
else
    fail "$STEP" "none with the connect's session_id and bytes: $got"
fi
STEP="SESSION_SNAPSHOT from the stock unit's status file"
if got=$(EV --type SESSION_SNAPSHOT --positive session_count --timeout 60); then
    pass "$STEP" "$(jget "$got" 'd["matched"]') snapshot(s) with sessions; last: session_count $(jget "$got" 'd["last"]["session_count"]'), $(jget "$got" '[s["common_name"] for s in d["last"]["sessions"]]')"
else
    fail "$STEP" "none with a session: $got"
fi
STEP="CERT_ISSUED from Easy-RSA's index.txt (pki/ $PKI_MODE from easyrsa init-pki)"
if got=$(EV --type CERT_ISSUED --cn sde2e-alice --timeout 30); then
    pass "$STEP" "sde2e-alice: serial $(jget "$got" 'd["last"]["cert_serial_hex"]'), inventory $(jget "$got" 'd["last"].get("inventory")')"
else
    fail "$STEP" "$got"
fi

# CAP_DAC_READ_SEARCH under the unit as shipped: permitted (the unit grants
# it) and effective on no thread while the agent idles; it is raised only on
# the sources' thread for the instant of a read.
STEP="CAP_DAC_READ_SEARCH confined under the unit: CapEff of every agent thread while idle"
apid=$(show MainPID)
samples=0; clean=0; seen=
for _ in 1 2 3 4 5; do
    seen=$(threads_caps "$apid")
    samples=$((samples + 1))
    # Every thread: CapEff 0, CapPrm exactly CAP_DAC_READ_SEARCH (bit 2).
    all_threads 0000000000000000/0000000000000004 "$seen" && clean=$((clean + 1))
    sleep 0.5
done
confine_log=$(C journalctl -u openvpn-telemetry-agent --no-pager -o cat | grep -c "cannot be confined" || true)
if [ "$clean" = "$samples" ] && [ "$confine_log" = 0 ]; then
    pass "$STEP" "$samples samples of $(wc -w <<<"$seen") threads (PID $apid), every one CapEff=0 CapPrm=0x4: ${seen% }"
else
    fail "$STEP" "$clean of $samples samples clean; last: ${seen% }; 'cannot be confined' in the log: $confine_log"
fi
STEP="check with OpenVPN running: every source OK through the unit's privileges, capability confined"
C /usr/local/sbin/openvpn-telemetry check >"$RUN/check2.out" 2>&1 || true
src_ok=$(grep -cE '^OK +agent can read (OPENVPN_SERVER_CONF|the status file of|EASYRSA_INDEX) .*CAP_DAC_READ_SEARCH' "$RUN/check2.out" || true)
conf_ok=$(grep -cE '^OK +CAP_DAC_READ_SEARCH is confined' "$RUN/check2.out" || true)
if [ "$src_ok" = 3 ] && [ "$conf_ok" = 1 ] && ! grep -q '^FAIL' "$RUN/check2.out"; then
    pass "$STEP" "$(grep -E '^OK +(agent can read the status file|CAP_DAC)' "$RUN/check2.out" | sed 's/^OK *//; s/|/\\|/g' | tr '\n' ';')"
else
    fail "$STEP" "$(grep -E 'agent can|CAP_DAC|^FAIL' "$RUN/check2.out" | head -5 | sed 's/|/\\|/g' | tr '\n' ';')"
fi

STEP="client disconnects -> SESSION_DISCONNECTED with bytes"
t0=$(now)
C systemctl stop ovt-e2e-client
t_stopped=$(now)
if got=$(EV --type SESSION_DISCONNECTED --cn ovt-client-01 --eq "session_id=$SID" --positive bytes_received \
    --positive bytes_sent --timeout 30); then
    pass "$STEP" "client stop (explicit-exit-notify) $(ms "$t0" "$t_stopped") ms, delivered $(ms "$t0" "$(now)") ms after the stop began; bytes_received $(jget "$got" 'd["last"]["bytes_received"]'), bytes_sent $(jget "$got" 'd["last"]["bytes_sent"]'), duration $(jget "$got" 'd["last"].get("duration_seconds")') s"
else
    fail "$STEP" "$got"
fi
C systemctl stop openvpn-server@server

# The other variant: an explicit status line in the conf (every second),
# which wins over the unit's --status. Taken out again afterwards, so that
# uninstall restores the conf byte for byte.
STEP="SESSION_UPDATE with an explicit status line in server.conf"
C sh -c 'printf "status /run/openvpn-server/status-server.log 1\nstatus-version 2\n" >>/etc/openvpn/server/server.conf'
C systemctl start openvpn-server@server \
    || die "openvpn-server@server did not start: $(C journalctl -u openvpn-server@server --no-pager | tail -5)"
t0=$(now)
client_up ovt-e2e-client2
C ip netns exec ovt-cli python3 /srv/ovt/tping.py tun0 10.99.0.1 3 1000 >/dev/null || true
SID2=none
got=$(EV --type SESSION_CONNECTED --cn ovt-client-01 --min 2 --timeout 20) && SID2=$(jget "$got" 'd["last"]["session_id"]')
if [ "$SID2" != none ] && got=$(EV --type SESSION_UPDATE --cn ovt-client-01 --eq "session_id=$SID2" --positive bytes_received --timeout 20); then
    pass "$STEP" "update $(ms "$t0" "$(now)") ms after the client started; session_id = the second connect's; bytes_received $(jget "$got" 'd["last"]["bytes_received"]')"
else
    fail "$STEP" "second session ${SID2}: $got"
fi
C systemctl stop ovt-e2e-client2
hookmsgs=$(C journalctl -u openvpn-server@server --no-pager -o cat | grep -ciE "telemetry|script.*fail" || true)
C systemctl stop openvpn-server@server
C sed -i '/^status \/run\/openvpn-server\/status-server.log 1$/d; /^status-version 2$/d' /etc/openvpn/server/server.conf
[ "$hookmsgs" = 0 ] && pass "OpenVPN's log: hook messages / script failures" "0" \
    || fail "OpenVPN's log: hook messages / script failures" "$hookmsgs: $(C journalctl -u openvpn-server@server --no-pager -o cat | grep -iE 'telemetry|script.*fail' | head -2 | tr '\n' ' ')"

# Failing loudly: a unit whose filter denies capset (as the unit before this
# one did). The agent cannot confine the capability: it says so and starts
# itself again without it (same PID), instead of reading everything with it.
STEP="a unit that denies capset: the agent says so and gives the capability up on every thread"
DENY=/run/systemd/system/openvpn-telemetry-agent.service.d
C mkdir -p "$DENY"
printf '[Service]\nSystemCallFilter=~capset\n' | C sh -c "cat >$DENY/ovt-e2e-deny-capset.conf"
C systemctl daemon-reload
since=$(C date +%s)
C systemctl restart openvpn-telemetry-agent
said=
for _ in $(seq 50); do
    said=$(C journalctl -u openvpn-telemetry-agent --since "@$since" --no-pager -o cat | grep -m1 "started again without it" || true)
    [ -n "$said" ] && break
    sleep 0.2
done
denied_pid=$(show MainPID)
denied_caps=$(threads_caps "$denied_pid")
denied_active=$(C systemctl is-active openvpn-telemetry-agent || true)
C rm -rf "$DENY"
C systemctl daemon-reload
C systemctl restart openvpn-telemetry-agent
if [ -n "$said" ] && grep -q "capset" <<<"$said" && [ "$denied_active" = active ] \
    && all_threads 0000000000000000/0000000000000000 "$denied_caps"; then
    pass "$STEP" "$denied_active; threads of PID $denied_pid (CapEff/CapPrm): ${denied_caps% }; log: $(sed 's/.*capset failure: //' <<<"$said" | cut -c1-200 | sed 's/|/\\|/g')"
else
    fail "$STEP" "$denied_active; log: ${said:-no 'started again without it' line}; threads: ${denied_caps% }"
fi

# --- restart / stop ----------------------------------------------------------
STEP="systemctl restart / stop / start"
t0=$(now); C systemctl restart openvpn-telemetry-agent; t1=$(now)
C systemctl stop openvpn-telemetry-agent; t2=$(now)
stopped=$(C systemctl is-active openvpn-telemetry-agent || true)
C systemctl start openvpn-telemetry-agent; t3=$(now)
result=$(show Result)
R_MS=$(ms "$t0" "$t1"); S_MS=$(ms "$t1" "$t2")
if [ "$stopped" = inactive ] && [ "$result" = success ] && [ "$S_MS" -lt 3000 ]; then
    pass "$STEP" "restart (until READY) $R_MS ms; stop $S_MS ms (limit 2 s grace); start $(ms "$t2" "$t3") ms; Result=$result"
else
    fail "$STEP" "restart $R_MS ms, stop $S_MS ms, after stop: $stopped, Result=$result"
fi

# --- the watchdog -------------------------------------------------------------
STEP="watchdog quiet while idle"
UNIT_WD=$(show WatchdogUSec)
DROPIN=/run/systemd/system/openvpn-telemetry-agent.service.d
C mkdir -p "$DROPIN"
printf '[Service]\nWatchdogSec=%s\n' "$IDLE_WATCHDOG" | C sh -c "cat >$DROPIN/ovt-e2e-watchdog.conf"
C systemctl daemon-reload
C systemctl restart openvpn-telemetry-agent
pid0=$(show MainPID); nr0=$(show NRestarts); wd0=$(show WatchdogTimestampMonotonic)
since=$(C date +%s)
sleep "$IDLE_SECS"
pid1=$(show MainPID); nr1=$(show NRestarts); wd1=$(show WatchdogTimestampMonotonic)
timeouts=$(C journalctl -u openvpn-telemetry-agent --since "@$since" --no-pager -o cat | grep -c "Watchdog timeout" || true)
if [ "$pid0" = "$pid1" ] && [ "$nr0" = "$nr1" ] && [ "$timeouts" = 0 ] && [ "$wd1" -gt "$wd0" ]; then
    pass "$STEP" "unit WatchdogSec=$UNIT_WD; idle ${IDLE_SECS} s under WatchdogSec=${IDLE_WATCHDOG}s (drop-in, $((IDLE_SECS / IDLE_WATCHDOG)) periods): same PID, 0 restarts, 0 timeouts, last ping $(( (wd1 - wd0) / 1000000 )) s after the first"
else
    fail "$STEP" "PID $pid0 -> $pid1, NRestarts $nr0 -> $nr1, timeouts $timeouts, ping ts $wd0 -> $wd1"
fi
STEP="watchdog fires for a hung agent (SIGSTOP)"
t0=$(now)
C kill -STOP "$pid1"
fired=
for _ in $(seq $(( (IDLE_WATCHDOG + 10) * 10 ))); do
    if C journalctl -u openvpn-telemetry-agent --since "@$since" --no-pager -o cat | grep -q "Watchdog timeout"; then
        fired=$(now); break
    fi
    sleep 0.1
done
C kill -CONT "$pid1" 2>/dev/null || true
back=
for _ in $(seq 200); do
    p=$(show MainPID)
    if [ "$p" != 0 ] && [ "$p" != "$pid1" ] && [ "$(C systemctl is-active openvpn-telemetry-agent)" = active ]; then back=$(now); break; fi
    sleep 0.1
done
if [ -n "$fired" ] && [ -n "$back" ]; then
    pass "$STEP" "timeout after $(ms "$t0" "$fired") ms (limit ${IDLE_WATCHDOG} s), active again $(ms "$t0" "$back") ms after (RestartSec=5)"
else
    fail "$STEP" "fired: ${fired:-no}; back: ${back:-no}"
fi
C rm -rf "$DROPIN"
C systemctl daemon-reload
C systemctl reset-failed openvpn-telemetry-agent 2>/dev/null || true
C systemctl restart openvpn-telemetry-agent

# --- Prometheus: METRICS_TEXTFILE in node_exporter's textfile directory -------
# The directory as Debian's prometheus-node-exporter ships it, root:root 0755
# (the package itself is not in this container). install opens it in the
# unit's sandbox (ReadWritePaths=); as shipped, the agent may not write in it
# and says so; with the one ACL entry docs/operations.md gives (set from the
# host on the container's tree: the container has no setfacl) it writes the
# file, 0644, and replaces it by rename. Undone afterwards (settings, unit,
# directory), so the later steps see the system as before.
STEP="METRICS_TEXTFILE in node_exporter's textfile directory under the unit's sandbox"
NE=/var/lib/prometheus/node-exporter
C install -d -m 0755 -o root -g root /var/lib/prometheus "$NE"
C cp -p /etc/openvpn-telemetry/.env /srv/ovt/env.before-metrics
C sh -c "echo METRICS_TEXTFILE=$NE/openvpn-telemetry.prom >>/etc/openvpn-telemetry/.env"
since=$(C date +%s)
C /srv/ovt/openvpn-telemetry install >"$RUN/install-metrics.out" 2>&1 || fail "$STEP" "install: $(tail -3 "$RUN/install-metrics.out" | tr '\n' ' ')"
rwp=$(show ReadWritePaths)
denied=
for _ in $(seq 150); do
    denied=$(C journalctl -u openvpn-telemetry-agent --since "@$since" --no-pager -o cat | grep -m1 "cannot write the metrics file" || true)
    [ -n "$denied" ] && break
    sleep 0.1
done
acl=ok
setfacl -m "u:$(C id -u openvpn-telemetry):rwx" "$M$NE" 2>"$RUN/setfacl.err" || acl="setfacl on the host failed: $(head -c 200 "$RUN/setfacl.err")"
C systemctl restart openvpn-telemetry-agent
first=; second=
for _ in $(seq 150); do
    first=$(C stat -c %i "$NE/openvpn-telemetry.prom" 2>/dev/null || true)
    [ -n "$first" ] && break
    sleep 0.1
done
# The first heartbeat (5 s after the start) changes the queue: rewritten.
for _ in $(seq 300); do
    second=$(C stat -c %i "$NE/openvpn-telemetry.prom" 2>/dev/null || true)
    [ -n "$second" ] && [ "$second" != "$first" ] && break
    sleep 0.1
done
fmode=$(C stat -c '%a %U' "$NE/openvpn-telemetry.prom" 2>/dev/null || echo missing)
downer=$(C stat -c '%U:%G' "$NE")
families=$(C grep -c '^# TYPE openvpn' "$NE/openvpn-telemetry.prom" 2>/dev/null || echo 0)
left=$(C ls -A "$NE" | tr '\n' ' ')
C rm -rf /var/lib/prometheus
C cp -p /srv/ovt/env.before-metrics /etc/openvpn-telemetry/.env
C rm -f /srv/ovt/env.before-metrics
C /srv/ovt/openvpn-telemetry install >"$RUN/install-metrics2.out" 2>&1 || fail "$STEP" "install after: $(tail -3 "$RUN/install-metrics2.out" | tr '\n' ' ')"
if grep -q -- "$NE" <<<"$rwp" && [ -n "$denied" ] && [ "$acl" = ok ] && [ -n "$first" ] && [ -n "$second" ] \
    && [ "$second" != "$first" ] && [ "${fmode%% *}" = 644 ] && [ "$downer" = root:root ] && [ "$families" -ge 10 ] \
    && [ "$left" = "openvpn-telemetry.prom " ]; then
    pass "$STEP" "ReadWritePaths=$rwp; as shipped (root:root 0755): \"$(cut -c1-160 <<<"$denied" | sed 's/|/\\|/g')\"; with the ACL entry: written ($fmode, $families families), replaced by rename (inode $first -> $second), directory still $downer, nothing else in it"
else
    fail "$STEP" "ReadWritePaths=$rwp; refused as shipped: ${denied:-no log line}; acl: $acl; inode ${first:-none} -> ${second:-none}; file $fmode; dir $downer; families $families; in the directory: $left"
fi

# --- a second install after the agent ran -------------------------------------
STEP="second install after the agent ran says \"nothing to change\""
C /srv/ovt/openvpn-telemetry install >"$RUN/install2.out" 2>&1 || true
if grep -q "nothing to change" "$RUN/install2.out"; then
    pass "$STEP" "$(grep -m1 'nothing to change' "$RUN/install2.out")"
else
    fail "$STEP" "$(grep -E '^ *(fix|add|change|update|write|done)|change\(s\)' "$RUN/install2.out" | head -4 | sed 's/^ *//'  | tr '\n' ';' | sed 's/|/\\|/g')"
    sed 's/^/  install2: /' "$RUN/install2.out" >&2
fi

# --- pseudonyms under the shipped unit ----------------------------------------
# The key install made: 0640 root:openvpn-telemetry, refused to nobody; with
# PSEUDONYMIZE=common_name the sandboxed agent reads it (the event arrives
# with the name's pseudonym, computed here from the key) and the name itself
# never reaches the receiver. Then back to names in clear.
STEP="PSEUDONYMIZE under the shipped unit: the agent reads the key, nobody cannot, the name never leaves"
KEY=/etc/openvpn-telemetry/pseudonym.key
key_meta=$(C stat -c '%a %U:%G' "$KEY" 2>&1 || true)
nobody_reads=$(C setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$KEY" >/dev/null 2>&1 && echo yes || echo no)
set_env() { C sh -c "umask 077; echo '$1' >>/etc/openvpn-telemetry/.env"; C /srv/ovt/openvpn-telemetry install >"$RUN/install-$2.out" 2>&1; }
set_env PSEUDONYMIZE=common_name private || cat "$RUN/install-private.out" >&2
want=$(C cat "$KEY" | python3 -c 'import hashlib, hmac, sys
print("pn_" + hmac.new(sys.stdin.buffer.read(), b"common_name\x1fsde2e-private", hashlib.sha256).hexdigest()[:16])')
C setpriv --reuid=nobody --regid=nogroup --clear-groups env -i common_name=sde2e-private trusted_ip=192.0.2.77 \
    trusted_port=40077 ifconfig_pool_remote_ip=10.99.0.77 /etc/openvpn/scripts/telemetry-connect.sh >/dev/null 2>&1 || true
if [ "$key_meta" = "640 root:openvpn-telemetry" ] && [ "$nobody_reads" = no ] \
    && got=$(EV --cn "$want" --timeout 30) && ! C grep -q sde2e-private /srv/ovt/rx/events.ndjson; then
    pass "$STEP" "key $key_meta, nobody: read refused; SESSION_CONNECTED arrived as common_name $want, the name in no stored event"
else
    fail "$STEP" "key: $key_meta; nobody reads it: $nobody_reads; pseudonym $want: ${got:-not arrived}; agent $(C systemctl is-active openvpn-telemetry-agent): $(C journalctl -u openvpn-telemetry-agent --no-pager -o cat | grep -i pseudonym | tail -2 | tr '\n' ' ')"
fi
set_env PSEUDONYMIZE= clear || cat "$RUN/install-clear.out" >&2

# --- upgrade over the previous release's spool layout -------------------------
# The previous release: spool, pending/ and failed/ 2770 nobody:nogroup,
# hook files nobody:nogroup 0660, the agent's own files in the nogroup
# group. Events wait in queue.log and in a chunk in pending/.
STEP="upgrade over the previous release's spool layout keeps pending events"
SP=/var/spool/openvpn-telemetry
C systemctl stop openvpn-telemetry-agent
C /usr/local/sbin/openvpn-telemetry status >"$RUN/status-before-upgrade.out" 2>&1 || true
hook() { C setpriv --reuid=nobody --regid=nogroup --clear-groups env -i common_name="$1" trusted_ip=192.0.2.88 \
    trusted_port=4000"$2" ifconfig_pool_remote_ip=10.99.0.88 /etc/openvpn/scripts/telemetry-connect.sh >/dev/null 2>&1 || true; }
for i in 1 2 3; do hook sde2e-old-chunk "$i"; done
C sh -c "mv $SP/queue.log $SP/pending/$(date +%s%N)-q1.ndjson" || true
for i in 4 5; do hook sde2e-old-queue "$i"; done
C sh -c "chgrp -R nogroup $SP && chown nobody $SP $SP/pending $SP/failed $SP/pending/* $SP/queue.log $SP/seq $SP/queue.lock 2>/dev/null;
    find $SP -type d -exec chmod 2770 {} + && find $SP -type f -exec chmod 0660 {} +" || true
old_layout=$(C stat -c '%n %a %U:%G' "$SP" "$SP/pending" | tr '\n' ';')
ids=$(C sh -c "cat $SP/queue.log $SP/pending/*.ndjson 2>/dev/null" | grep '"common_name":"sde2e-old-' \
    | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 | grep . || true)
C ls -lan "$SP" "$SP/pending" >&2 || true
n_ids=$(echo "$ids" | grep -c . || true)
C /srv/ovt/openvpn-telemetry install >"$RUN/install3.out" 2>&1 || { cat "$RUN/install3.out" >&2; fail "$STEP" "install failed"; }
args=(); for id in $ids; do args+=(--id "$id"); done
if [ "$n_ids" = 5 ] && got=$(EV "${args[@]}" --timeout 30); then
    pass "$STEP" "$n_ids of 5 pending events (3 in a chunk, 2 in queue.log, old layout: $old_layout) delivered after install; agent $(C systemctl is-active openvpn-telemetry-agent)"
else
    fail "$STEP" "events spooled: $n_ids of 5; delivered: ${got:-none}"
fi
# Nothing left behind: the delivered chunks are gone too (status counts).
spool_empty() {
    local st
    for _ in $(seq 100); do
        st=$(C /usr/local/sbin/openvpn-telemetry status 2>&1 || true)
        if grep -qE '^pending +0 chunks' <<<"$st" && grep -qE '^queue.log +0 events' <<<"$st"; then return 0; fi
        sleep 0.1
    done
    grep -E '^(queue.log|pending|failed)' <<<"$st" | tr '\n' ';' >&2
    return 1
}
spool_empty && pass "after the upgrade: spool empty (status)" "queue.log 0 events, pending 0 chunks" \
    || fail "after the upgrade: spool empty (status)" "events left in the spool 10 s after delivery"

# --- reboot -------------------------------------------------------------------
# Enabled at boot, and what hooks spooled while it was down goes out after.
STEP="reboot: the agent starts at boot and delivers what was spooled"
C systemctl stop openvpn-telemetry-agent
for i in 1 2; do hook sde2e-reboot "$i"; done
ids=$(C cat "$SP/queue.log" | grep '"common_name":"sde2e-reboot"' | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 || true)
t0=$(now)
C systemctl reboot 2>/dev/null || true   # (its bus connection drops as PID 1 goes down)
rc=0
wait "$NSPAWN_PID" || rc=$?
NSPAWN_PID=
boot
t_boot=$(now)
active=$(C systemctl is-active openvpn-telemetry-agent || true)
receiver_up
args=(); for id in $ids; do args+=(--id "$id"); done
if [ "$active" = active ] && [ "${#args[@]}" = 4 ] && got=$(EV "${args[@]}" --timeout 30); then
    pass "$STEP" "nspawn exit $rc (reboot), up again $(ms "$t0" "$t_boot") ms after systemctl reboot; agent $active at boot; 2 of 2 events delivered $(ms "$t0" "$(now)") ms after the reboot"
else
    fail "$STEP" "agent at boot: $active; events spooled: $(( ${#args[@]} / 2 )) of 2; delivered: ${got:-none}"
fi

# --- uninstall --purge --------------------------------------------------------
STEP="uninstall --purge leaves only the documented conf backups"
C systemctl stop ovt-e2e-receiver 2>/dev/null || true
C ip netns del ovt-cli 2>/dev/null || true
C /usr/local/sbin/openvpn-telemetry uninstall --purge >"$RUN/uninstall.out" 2>&1 \
    || { cat "$RUN/uninstall.out" >&2; fail "$STEP" "uninstall --purge failed"; }
compare_with_before
if [ -z "$unexpected" ] && [ -z "$removed" ] && [ "$accounts" = same ] && [ "$conf" = "byte for byte" ]; then
    pass "$STEP" "$(wc -l <"$RUN/before.list") paths compared: only $backups server.conf.bak-* added, none removed or changed; passwd/group/shadow/gshadow identical; server.conf restored $conf"
else
    fail "$STEP" "added: $(echo "$unexpected" | grep . | head -5 | tr '\n' ';'); removed/changed: $(echo "$removed" | grep . | head -5 | tr '\n' ';'); accounts: $accounts; conf $conf"
    { echo "added:"; echo "$added"; echo "removed/changed:"; echo "$removed"; } | sed 's/^/  purge: /' >&2
fi
