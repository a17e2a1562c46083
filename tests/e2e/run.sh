#!/usr/bin/env bash
# tests/e2e/run.sh: the end-to-end proof. A real OpenVPN 2.6 server
# runs the hooks that `openvpn-telemetry install` installed, as nobody:nogroup;
# real clients connect from another network namespace; the agent runs as the
# unit's user and delivers over mTLS + bearer token to a local HTTPS receiver.
#
# Phases: main (>= 20 clients, traffic, explicit-exit-notify disconnects),
# crl (a CRL that expires during the test: OpenVPN refuses the next client,
# the agent sent CRL_EXPIRING before and CRL_EXPIRED then; tests/e2e/crl.sh),
# outage (receiver down: tunnels still work, events arrive after it returns),
# crash (kill -9 the agent mid-delivery: nothing lost), cost (time to set up
# N tunnels with hooks vs the same config without, interleaved rounds).
#
# Guarantees: fails naming what is missing where it cannot run, and where a
# real installation would be touched (tests/support/require.sh); all traffic stays in its namespaces or
# on 127.0.0.1; an EXIT trap always ends its processes, deletes its
# namespaces, runs `uninstall --purge` and removes its temp dir, also when an
# assertion fails. Exit 1 on any failed assertion. Summary table on stdout and
# in target/e2e-summary.md (override with E2E_SUMMARY).
#
# Environment: OVT_BIN (binary to install; default the `make build` output),
# E2E_CLIENTS (default 20), E2E_COST_CLIENTS / E2E_COST_ROUNDS /
# E2E_COST_SINGLES (10 / 6 / 30), E2E_RTT_MS (round-trip time of the second
# cost pass, default 20; 0 skips it),
# KEEP=1 keeps the temp dir for debugging.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
. "$HERE/crl.sh"
. "$REPO/tests/support/require.sh"

why=$(ovt_gate)
[ -z "$why" ] || require_missing e2e "$why"

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${OVT_BIN:-$TARGET_DIR/x86_64-unknown-linux-gnu/release/openvpn-telemetry}
[ -x "$BIN" ] || die "no binary at $BIN (run 'make build' or set OVT_BIN)"
N=${E2E_CLIENTS:-20}
COST_N=${E2E_COST_CLIENTS:-10}
COST_R=${E2E_COST_ROUNDS:-6}
SUMMARY=${E2E_SUMMARY:-$REPO/target/e2e-summary.md}
ETC=/etc/openvpn-telemetry
SCRIPTS=/etc/openvpn/scripts
SBIN=/usr/local/sbin/openvpn-telemetry
SPOOL=/var/spool/openvpn-telemetry
MARK=$ETC/.ovt-e2e   # says: this installation was made by the e2e, remove freely
TOKEN=e2e-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

# Never overwrite a real installation; remove a leftover one of ours.
if [ -e "$MARK" ]; then
    say "removing leftovers of an earlier e2e run"
    ovt_cleanup_procs
    "$SBIN" uninstall --purge >/dev/null 2>&1 || "$BIN" uninstall --purge >/dev/null 2>&1 || true
    rm -rf "$ETC"
elif [ -e "$ETC" ] || [ -e "$SBIN" ] || [ -e "$SPOOL" ]; then
    require_missing e2e "openvpn-telemetry is installed on this host ($ETC, $SBIN or $SPOOL exists); the e2e installs for real and would replace it: remove it first (openvpn-telemetry uninstall --purge)"
fi
ovt_cleanup_procs
ovt_net_down
ovt_need_openvpn
[ -e "$SCRIPTS" ] && SCRIPTS_EXISTED=1 || SCRIPTS_EXISTED=0

T0=$(date +%s.%N)
WORK=$(mktemp -d /tmp/ovt-e2e.XXXXXX)
chmod 755 "$WORK" # OpenVPN drops to nobody; its config dir must stay reachable
LEDGER=$WORK/ledger
: >"$LEDGER"
RDB=$WORK/receiver-db
DUPS=0 # duplicates counted by receiver instances that were since stopped
FAILED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    say "cleaning up"
    ovt_cleanup_procs
    ovt_net_down
    if [ -e "$MARK" ]; then
        "$SBIN" uninstall --purge >"$WORK/uninstall.log" 2>&1 \
            || { say "uninstall --purge failed:"; cat "$WORK/uninstall.log" >&2; rc=1; }
        rm -rf "$ETC" # the marker, and whatever purge left
        [ "$SCRIPTS_EXISTED" = 1 ] || rmdir "$SCRIPTS" 2>/dev/null || true
    fi
    if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- pieces ---------------------------------------------------------------

receiver_start() { # [port]
    rm -f "$WORK/receiver.port"
    python3 "$REPO/tests/support/receiver.py" --listen "127.0.0.1:${1:-0}" --ready-file "$WORK/receiver.port" \
        --cert "$WORK/pki/receiver.crt" --key "$WORK/pki/receiver.key" --client-ca "$WORK/pki/ca.crt" \
        --token "$TOKEN" --db "$RDB" >>"$WORK/receiver.log" 2>&1 &
    RECEIVER_PID=$!
    ovt_track "$RECEIVER_PID"
    local t=0
    while [ ! -s "$WORK/receiver.port" ]; do
        sleep 0.05
        t=$((t + 1))
        [ "$t" -lt 200 ] || die "receiver did not start: $(cat "$WORK/receiver.log")"
    done
    PORT=$(cat "$WORK/receiver.port")
}

stats() { python3 "$HERE/check.py" stats "https://127.0.0.1:$PORT" "$WORK/pki/agent.crt" "$WORK/pki/agent.key" "$WORK/pki/ca.crt"; }
stat_field() { stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

receiver_stop() {
    DUPS=$((DUPS + $(stat_field duplicates)))
    ovt_stop "$RECEIVER_PID"
}

# The agent as the unit runs it: its User=, Group=, SupplementaryGroups=,
# UMask=, NoNewPrivileges= and capabilities (CapabilityBoundingSet= and
# AmbientCapabilities=: the installer grants CAP_DAC_READ_SEARCH when the
# agent must read OpenVPN's 0600 status file).
agent_cmd() {
    local unit=/etc/systemd/system/openvpn-telemetry-agent.service
    local user group sgroups umask bound ambient gids caps=()
    _unit() { sed -n "s/^$1=//p" "$unit" 2>/dev/null | tail -n1; }
    user=$(_unit User)
    group=$(_unit Group)
    sgroups=$(_unit SupplementaryGroups)
    umask=$(_unit UMask)
    user=${user:-openvpn-telemetry}
    group=${group:-$user}
    sgroups=${sgroups:-nogroup}
    gids=$(for g in $sgroups; do getent group "$g" | cut -d: -f3; done | paste -sd,)
    # CAP_DAC_READ_SEARCH -> +dac_read_search, for setpriv
    _caps() { local c out=""; for c in $1; do c=${c#CAP_}; out+=",+${c,,}"; done; echo "$out"; }
    bound=$(_caps "$(_unit CapabilityBoundingSet)")
    ambient=$(_caps "$(_unit AmbientCapabilities)")
    caps=(--bounding-set="-all$bound" --inh-caps="-all$ambient")
    [ -n "$ambient" ] && caps+=(--ambient-caps="${ambient#,}")
    [ "$(_unit NoNewPrivileges)" = yes ] && caps+=(--no-new-privs)
    AGENT_CMD=(sh -c 'umask "$0" && exec "$@"' "${umask:-0022}"
        setpriv --reuid="$user" --regid="$group" --groups="$gids" "${caps[@]}" "$SBIN" agent)
}

agent_start() {
    agent_cmd
    "${AGENT_CMD[@]}" >>"$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    ovt_track "$AGENT_PID"
}

agent_stop() { ovt_stop "$AGENT_PID"; }

# Starts clients (by number) on the hooks server, waits for every tunnel,
# pings the server through each, and records the sessions in the ledger.
# Args: phase first last
clients_up() {
    local phase=$1 i pid
    CLIENT_PIDS=()
    for i in $(seq -f %02g "$2" "$3"); do
        rm -f "$WORK/client$i-1194.log"
        CLIENT_PIDS+=("$(ovt_client "$WORK" "$WORK/pki" "$i" 1194)")
    done
    for i in $(seq -f %02g "$2" "$3"); do
        ovt_wait_log "$WORK/client$i-1194.log" "Initialization Sequence Completed" 30 \
            || die "$phase: client $i got no tunnel (see $WORK/client$i-1194.log)"
    done
    for i in $(seq -f %02g "$2" "$3"); do
        ovt_ping "ovtc$i-1194" 10.99.0.1 4 1000 || die "$phase: client $i: no ping through its tunnel"
        echo "$phase ovt-client-$i" >>"$LEDGER"
    done
}

# SIGTERM every client started by clients_up and wait: one signal only, so
# each sends its exit notice (explicit-exit-notify) before it goes.
clients_down() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${CLIENT_PIDS[@]}"; do ovt_reap "$pid" 10; done
}

verify() { # wait_seconds [extra args]
    local w=$1
    shift
    python3 "$HERE/check.py" verify "$RDB" "$LEDGER" --wait "$w" "$@"
}

check() { # phase: fail the run (after all phases' evidence is printed) when verify fails
    if ! verify "$2" "${@:3}" >"$WORK/verify-$1.json"; then
        say "FAIL: $1: events missing or malformed (above)"
        FAILED=1
    fi
    say "$1: $(cat "$WORK/verify-$1.json")"
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.1f}')"; }

# --- set-up ---------------------------------------------------------------

say "PKI ($N clients), namespaces, receiver"
POOL=$((N > 30 ? N : 30)) # certificates; the cost phase rotates through 30
ovt_pki "$WORK/pki" "$POOL"
chmod -R a+rX "$WORK/pki"
ovt_net_up
receiver_start
say "receiver on 127.0.0.1:$PORT (mTLS + bearer)"

# The test server's config, before the installer patches it; a copy on
# another port and subnet stays unpatched for the cost comparison.
ovt_server_conf "$WORK/server-hooks.conf" "$WORK/pki" 1194 10.99.0 ovts-hooks "$WORK/status-hooks.log" 2
ovt_server_conf "$WORK/server-plain.conf" "$WORK/pki" 1195 10.99.1 ovts-plain "$WORK/status-plain.log" 2
# Yardstick for the cost: the cheapest possible script hook.
ovt_server_conf "$WORK/server-true.conf" "$WORK/pki" 1196 10.99.2 ovts-true "$WORK/status-true.log" 2 \
    "client-connect /bin/true" "client-disconnect /bin/true"
# PKI health: a fourth server whose crl-verify names a CRL made later.
crl_conf

mkdir -p "$ETC"
touch "$MARK"
install -m 0644 "$WORK/pki/agent.crt" "$ETC/client.crt"
install -m 0600 "$WORK/pki/agent.key" "$ETC/client.key"
install -m 0644 "$WORK/pki/ca.crt" "$ETC/ca.crt"
cat >"$ETC/.env" <<EOF
TELEMETRY_URL="https://127.0.0.1:$PORT/api/v1/events"
SERVER_ID="ovt-e2e"
OPENVPN_SERVER_CONF="$WORK/server-hooks.conf $WORK/server-crl.conf"
OPENVPN_SCRIPT_USER="nobody"
OPENVPN_SCRIPT_GROUP="nogroup"
ROTATE_INTERVAL_SECONDS=1
RETRY_SLEEP_SECONDS=1
RETRY_MAX_SECONDS=2
MAX_BATCH_EVENTS=50
SESSION_UPDATE_INTERVAL_SECONDS=1
AUTH_HEADER="Authorization: Bearer $TOKEN"
MTLS_ENABLED=1
CLIENT_CERT="$ETC/client.crt"
CLIENT_KEY="$ETC/client.key"
CA_CERT="$ETC/ca.crt"
EOF

say "openvpn-telemetry install (for real)"
"$BIN" install >"$WORK/install.log" 2>&1 || {
    cat "$WORK/install.log" >&2
    die "openvpn-telemetry install failed"
}
grep -q "telemetry-connect" "$WORK/server-hooks.conf" || die "install did not patch $WORK/server-hooks.conf"
AGENT_USER=$(sed -n 's/^User=//p' /etc/systemd/system/openvpn-telemetry-agent.service 2>/dev/null | tail -n1)
chgrp "${AGENT_USER:-openvpn-telemetry}" "$ETC/client.key" && chmod 0640 "$ETC/client.key"

ovt_openvpn "$OVT_SRV_NS" "$WORK/server-hooks.conf" "$WORK/server-hooks.log" >/dev/null
ovt_openvpn "$OVT_SRV_NS" "$WORK/server-plain.conf" "$WORK/server-plain.log" >/dev/null
ovt_openvpn "$OVT_SRV_NS" "$WORK/server-true.conf" "$WORK/server-true.log" >/dev/null
for s in hooks plain true; do
    ovt_wait_log "$WORK/server-$s.log" "Initialization Sequence Completed" 10 || die "$s server did not start"
done
# OpenVPN writes its status file 0600 root: the agent reads it only through
# the capability the installed unit grants (see agent_cmd).
agent_start
say "agent as the unit runs it: ${AGENT_CMD[*]:4}"

# --- main: N clients, several at once ------------------------------------

say "main: $N clients connect at once, ping, disconnect"
clients_up main 1 "$N"
# More traffic while the status file (rewritten every second) and
# SESSION_UPDATE (every second here) watch: byte counters must grow.
sleep 1.5
for i in 01 02 03; do ovt_ping "ovtc$i-1194" 10.99.0.1 20 1200 || die "main: client $i: traffic failed"; done
sleep 2.5
clients_down
check main 30 --updates 1

# The operator's tools on the live installation: `check` (the doctor) must
# pass; `status --json` must say the spool is drained.
"$SBIN" check >"$WORK/check.log" 2>&1
CHECK_RC=$?
"$SBIN" status --json >"$WORK/status.json" 2>"$WORK/status.err"
STATUS_RC=$?
say "openvpn-telemetry check: exit $CHECK_RC; status --json: exit $STATUS_RC"
if [ "$CHECK_RC" != 0 ]; then
    cat "$WORK/check.log" >&2
    say "FAIL: openvpn-telemetry check failed on the live installation"
    FAILED=1
fi

# --- crl: the CRL expires; OpenVPN refuses clients, the agent said so -------

crl_phase
check crl 30

# --- outage: receiver down, tunnels must not care ----------------------------

say "outage: receiver stopped; 8 clients connect, ping, disconnect"
receiver_stop
clients_up outage 1 8
clients_down
BACKLOG=$(python3 "$HERE/check.py" ids "$SPOOL" | wc -l)
say "outage: $BACKLOG events waiting in the spool; receiver back"
OUT_T=$(now)
receiver_start "$PORT"
check outage 60
OUTAGE_RECOVERY=$(elapsed "$OUT_T")

# --- crash: kill -9 the agent during delivery --------------------------------

say "crash: agent stopped; backlog of real sessions + 1000 write-event runs"
agent_stop
clients_up crash 9 16
clients_down
python3 "$HERE/check.py" bulk "$SBIN" 1000 bulk
sleep 0.2
python3 "$HERE/check.py" ids "$SPOOL" >"$WORK/crash-ids"
agent_cmd
CRASH_IDS=$(wc -l <"$WORK/crash-ids")
python3 "$HERE/check.py" crash "https://127.0.0.1:$PORT" "$WORK/pki/agent.crt" "$WORK/pki/agent.key" \
    "$WORK/pki/ca.crt" "$OVT_PIDFILE" "$WORK/agent.log" 3 -- "${AGENT_CMD[@]}" >"$WORK/crash.json" \
    || die "crash: the kill -9 helper failed"
say "crash: $(cat "$WORK/crash.json") (of $CRASH_IDS spooled)"
KILLS=$(python3 -c "import json; d=json.load(open('$WORK/crash.json')); print(d['kills'], 'at', d['events_at_kill'])")
agent_start
check crash 60 --ids "$WORK/crash-ids"

# --- cost: tunnels with hooks vs without, interleaved ------------------------

# The cost is measured with the agent at its default intervals (rotation
# every 5 s, SESSION_UPDATE every 60 s), not the test's 1 s ones: the upgrade
# path, `install` again with a changed .env while OpenVPN runs, then the
# agent restarted as systemd would.
say "cost: re-install with the default intervals, restart the agent"
sed -i 's/^ROTATE_INTERVAL_SECONDS=.*/ROTATE_INTERVAL_SECONDS=5/; s/^SESSION_UPDATE_INTERVAL_SECONDS=.*/SESSION_UPDATE_INTERVAL_SECONDS=60/' "$ETC/.env"
agent_stop
"$BIN" install >"$WORK/reinstall.log" 2>&1 || { cat "$WORK/reinstall.log" >&2; die "re-install failed"; }
grep -q "^ROTATE_INTERVAL_SECONDS=5" "$ETC/agent.env" || die "re-install did not apply ROTATE_INTERVAL_SECONDS=5 from .env"
agent_start

say "cost: $COST_R rounds x $COST_N clients on each of: hooks, plain, /bin/true hooks"
python3 "$HERE/cost.py" --pki "$WORK/pki" --ns "$OVT_CLI_NS" --remote "$OVT_SRV_ADDR" \
    --server "hooks:1194:$WORK/server-hooks.log" --server "plain:1195:$WORK/server-plain.log" \
    --server "true:1196:$WORK/server-true.log" \
    --clients "$COST_N" --rounds "$COST_R" --singles "${E2E_COST_SINGLES:-30}" --pool "$POOL" --pidfile "$OVT_PIDFILE" --ledger "$LEDGER" \
    --out "$WORK/cost.json" >/dev/null || die "cost: tunnels failed"

# The same on a link with a round-trip time: a userspace relay in the client
# namespace delays every datagram by E2E_RTT_MS/2 each way (netem is not
# always available). Tunnels then take what they take on a real network.
RTT_MS=${E2E_RTT_MS:-20}
if [ "$RTT_MS" != 0 ]; then
    for s in hooks:1194 plain:1195 true:1196; do
        port=${s#*:}
        ip netns exec "$OVT_CLI_NS" python3 "$HERE/relay.py" --listen "127.0.0.1:$((port + 1000))" \
            --to "$OVT_SRV_ADDR:$port" --bind "$OVT_CLI_ADDR" --delay-ms "$(python3 -c "print($RTT_MS / 2)")" \
            --ready-file "$WORK/relay-$port.ready" >>"$WORK/relay.log" 2>&1 &
        ovt_track $!
    done
    for port in 1194 1195 1196; do
        ovt_wait_log "$WORK/relay-$port.ready" ready 10 || die "relay for port $port did not start"
    done
    say "cost: same at $RTT_MS ms RTT: $((COST_R > 4 ? 4 : COST_R)) rounds x $COST_N, ${E2E_COST_SINGLES:-30} single"
    python3 "$HERE/cost.py" --pki "$WORK/pki" --ns "$OVT_CLI_NS" --remote 127.0.0.1 \
        --server "hooks:2194:$WORK/server-hooks.log" --server "plain:2195:$WORK/server-plain.log" \
        --server "true:2196:$WORK/server-true.log" \
        --clients "$COST_N" --rounds "$((COST_R > 4 ? 4 : COST_R))" --singles "${E2E_COST_SINGLES:-30}" --pool "$POOL" \
        --pidfile "$OVT_PIDFILE" --ledger "$LEDGER" --out "$WORK/cost-rtt.json" >/dev/null || die "cost at $RTT_MS ms RTT: tunnels failed"
fi
check final 30

# The agent's own account agrees: nothing dropped, nothing set aside, and
# (once the last status-file updates are through) nothing left to send.
for t in $(seq 1 30); do
    "$SBIN" status --json >"$WORK/status-final.json" 2>&1 || say "FAIL: status --json failed"
    LOSS=$(python3 -c "
import json; s = json.load(open('$WORK/status-final.json'))
print(s['dropped']['count'], s['failed']['lines'], s['queue']['events'] + s['pending']['events'])
" 2>&1)
    [ "$LOSS" = "0 0 0" ] && break
    sleep 0.5
done
say "agent status: dropped / failed lines / undelivered: $LOSS"
[ "$LOSS" = "0 0 0" ] || { say "FAIL: agent status reports loss or backlog: $LOSS"; FAILED=1; }

# The hooks never complained to OpenVPN and OpenVPN never saw a hook fail;
# the agent logged no error.
HOOK_MSGS=$(grep -c "openvpn-telemetry:" "$WORK/server-hooks.log")
SCRIPT_FAILS=$(grep -ciE "client-(connect|disconnect).*(fail|error)|Failed running command" "$WORK/server-hooks.log")
AGENT_ERRORS=$(grep -c " ERROR " "$WORK/agent.log")
say "OpenVPN log: $HOOK_MSGS hook messages, $SCRIPT_FAILS script failures; agent log: $AGENT_ERRORS errors"
if [ "$HOOK_MSGS" != 0 ] || [ "$SCRIPT_FAILS" != 0 ] || [ "$AGENT_ERRORS" != 0 ]; then
    grep -E "openvpn-telemetry:|Failed running command" "$WORK/server-hooks.log" | head -5 >&2
    grep " ERROR " "$WORK/agent.log" | head -5 >&2
    say "FAIL: hooks or agent reported problems (above)"
    FAILED=1
fi

# --- summary ------------------------------------------------------------

DUPS=$((DUPS + $(stat_field duplicates)))
E2E_CRL=${CRL_SUMMARY:-} E2E_RTT_MS=$RTT_MS E2E_LOSS=$LOSS E2E_CHECK=$CHECK_RC E2E_LOGS="$HOOK_MSGS / $SCRIPT_FAILS; $AGENT_ERRORS" python3 - "$WORK" "$N" "$DUPS" "$OUTAGE_RECOVERY" "$CRASH_IDS" "$KILLS" "$(elapsed "$T0")" "$SUMMARY" <<'PY'
import json, os, sys, datetime
work, n, dups, rec, crash_ids, kills, total, out = sys.argv[1:]
v = json.load(open(f"{work}/verify-final.json")) if os.path.exists(f"{work}/verify-final.json") else {}
c = json.load(open(f"{work}/cost.json"))
r = json.load(open(f"{work}/cost-rtt.json")) if os.path.exists(f"{work}/cost-rtt.json") else None
rtt = os.environ.get("E2E_RTT_MS", "20")
sessions = v.get("sessions", 0)
by = v.get("by_type", {})
expected = 2 * sessions
received = by.get("SESSION_CONNECTED", 0) + by.get("SESSION_DISCONNECTED", 0) - v.get("foreign", 0)
rows = [
    ("Measured", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + f", OpenVPN {os.popen('openvpn --version').readline().split()[1]}"),
    ("Clients (certs) / real sessions", f"{n} / {sessions}"),
    ("Session events expected / received", f"{expected} / {received}"),
    ("Other events received", ", ".join(f"{k} {v}" for k, v in sorted(by.items()) if k not in ("SESSION_CONNECTED", "SESSION_DISCONNECTED")) or "none"),
    ("Duplicates (dropped by event_id at receiver)", dups),
] + ([("Foreign session events (other processes on this host wrote to the same spool)", v["foreign"])] if v.get("foreign") else []) + [
    ("connect/disconnect paired by session_id", f"{v.get('session_ids', 0) - v.get('unpaired', 0)} of {sessions} sessions"),
    ("PKI health: CRL_EXPIRING written / nextUpdate / CRL_EXPIRED written (a client refused with 'CRL has expired' after it)",
     (lambda d: f"{d['expiring_at']} / {d['next_update']} / {d['expired_at']} (+{d['expired_lag_s']} s; refused +{d['refused_lag_s']} s)" + ("" if not d["problems"] else f"; problems: {d['problems']}"))(json.loads(os.environ["E2E_CRL"])) if os.environ.get("E2E_CRL") else "see the log"),
    ("Outage: time until every event arrived after the receiver returned", f"{rec} s"),
    ("Crash: agent kill -9 during delivery / spooled events lost", f"kill -9 x {kills} / 0 of {crash_ids} lost" if v.get("problems") == 0 else f"kill -9 x {kills} / see problems"),
    ("No added latency: time to set up {} tunnels at once, median of {} rounds: hooks / no scripts / /bin/true scripts".format(c["clients"], c["rounds"]),
     " / ".join(f"{c['median_s'][k] * 1000:.0f} ms" for k in ("hooks", "plain", "true"))),
    ("No added latency: tunnel set-up ratio hooks vs no scripts (target <= 1.05)", f"{c['ratio']:.3f}"),
    ("No added latency: ratio hooks vs /bin/true scripts (our code's own share)", f"{c['ratio_vs_true']:.3f}"),
    ("No added latency: one tunnel at a time, median of {} each: hooks / no scripts / /bin/true scripts".format(c["singles"]),
     " / ".join(f"{c['median_single_s'][k] * 1000:.0f} ms" for k in ("hooks", "plain", "true"))),
    ("No added latency: one tunnel at a time, ratio hooks vs no scripts / vs /bin/true", f"{c['ratio_single']:.3f} / {c['ratio_single_vs_true']:.3f}"),
    ("Time the hooks add to one tunnel's set-up (median, hooks minus no scripts)", f"{(c['median_single_s']['hooks'] - c['median_single_s']['plain']) * 1000:.1f} ms"),
] + ([
    (f"At {rtt} ms RTT, {r['clients']} tunnels at once, median of {r['rounds']}: hooks / no scripts / /bin/true; ratio vs no scripts",
     " / ".join(f"{r['median_s'][k] * 1000:.0f} ms" for k in ("hooks", "plain", "true")) + f"; {r['ratio']:.3f}"),
    (f"At {rtt} ms RTT, one tunnel, median of {r['singles']}: hooks / no scripts / /bin/true; ratio vs no scripts / vs /bin/true",
     " / ".join(f"{r['median_single_s'][k] * 1000:.0f} ms" for k in ("hooks", "plain", "true")) + f"; {r['ratio_single']:.3f} / {r['ratio_single_vs_true']:.3f}"),
] if r else []) + [
    ("Live usage (SESSION_UPDATE): sessions with updates / whose bytes grew; session_id = the connect hook's", f"{v.get('update_sessions', 0)} / {v.get('update_sessions_grown', 0)}; yes" if v.get("problems") == 0 else "see problems"),
    ("Hook messages / script failures in OpenVPN's log; errors in the agent's log", os.environ.get("E2E_LOGS", "?")),
    ("`openvpn-telemetry check` on the live installation (exit status)", os.environ.get("E2E_CHECK", "?")),
    ("Agent status at the end: dropped / failed lines / undelivered events", os.environ.get("E2E_LOSS", "?").replace(" ", " / ")),
    ("e2e wall time", f"{total} s"),
]
text = "| e2e (tests/e2e/run.sh) | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
os.makedirs(os.path.dirname(out), exist_ok=True)
open(out, "w").write(text)
print(text)
PY
[ "$FAILED" = 0 ] || die "some assertions failed (see above)"
say "e2e passed"
