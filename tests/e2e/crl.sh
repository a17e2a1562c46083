# tests/e2e/crl.sh: the PKI health phase of the end-to-end proof (sourced
# by run.sh, which provides WORK, RDB, LEDGER, FAILED and lib.sh).
#
# Why it matters: when the CRL named by `crl-verify` passes its nextUpdate,
# OpenSSL fails every verification with "CRL has expired" and OpenVPN
# refuses every client. This phase shows it with a real OpenVPN 2.6 and a
# CRL made by `openssl ca -gencrl -crlsec` that lives seconds: a client
# gets its tunnel before nextUpdate and is refused after it, and the agent
# had delivered CRL_EXPIRING before nextUpdate and CRL_EXPIRED once it
# passed (within its 10 s round plus delivery).
#
# crl_conf (before install, which patches it like the main server's) writes
# a fourth server config on port 1197 whose crl-verify names that CRL;
# crl_phase makes the CRL, starts that server and runs the clients.

CRL_LIFE=${E2E_CRL_SECONDS:-50}

crl_conf() {
    mkdir -p "$WORK/crl"
    chmod 755 "$WORK/crl" # OpenVPN re-reads the CRL as nobody
    ovt_server_conf "$WORK/server-crl.conf" "$WORK/pki" 1197 10.99.3 ovts-crl "$WORK/status-crl.log" 2 \
        "crl-verify $WORK/crl/crl.pem"
}

# The first event of TYPE the receiver stored (JSON), waiting up to $2 s.
crl_event() { # type secs
    python3 - "$RDB/events.ndjson" "$1" "$2" <<'PY'
import json, sys, time
path, kind, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + secs
while True:
    try:
        for line in open(path):
            e = json.loads(line)
            if e.get("type") == kind and e.get("path", "").endswith("/crl/crl.pem"):
                print(json.dumps(e))
                sys.exit(0)
    except FileNotFoundError:
        pass
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.2)
PY
}

crl_phase() {
    local dir=$WORK/crl next next_unix c1 c2 expiring expired refused_at
    touch "$dir/index.txt"
    echo 01 >"$dir/crlnumber"
    printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\n' \
        "$dir/index.txt" "$dir/crlnumber" >"$dir/ca.cnf"
    openssl ca -batch -config "$dir/ca.cnf" -gencrl -crlsec "$CRL_LIFE" -keyfile "$WORK/pki/ca.key" \
        -cert "$WORK/pki/ca.crt" -out "$dir/crl.pem" 2>"$dir/gencrl.log" \
        || die "crl: openssl ca -gencrl: $(cat "$dir/gencrl.log")"
    chmod 644 "$dir/crl.pem"
    next=$(openssl crl -in "$dir/crl.pem" -noout -nextupdate | cut -d= -f2-)
    next_unix=$(date -u -d "$next" +%s)
    say "crl: CRL of $CRL_LIFE s, nextUpdate $next; server on 1197 with crl-verify"
    ovt_openvpn "$OVT_SRV_NS" "$WORK/server-crl.conf" "$WORK/server-crl.log" >/dev/null
    ovt_wait_log "$WORK/server-crl.log" "Initialization Sequence Completed" 10 || die "crl: server did not start"

    # Before nextUpdate: the agent warns, and a client gets its tunnel.
    expiring=$(crl_event CRL_EXPIRING 25) || { say "FAIL: crl: no CRL_EXPIRING arrived"; FAILED=1; }
    c1=$(ovt_client "$WORK" "$WORK/pki" 21 1197)
    ovt_wait_log "$WORK/client21-1197.log" "Initialization Sequence Completed" 20 \
        || die "crl: client 21 got no tunnel before nextUpdate (see $WORK/client21-1197.log)"
    ovt_ping "ovtc21-1197" 10.99.3.1 4 1000 || die "crl: client 21: no ping through its tunnel"
    echo "crl ovt-client-21" >>"$LEDGER"
    kill -TERM "$c1" 2>/dev/null
    ovt_reap "$c1" 10
    [ "$(date +%s)" -lt "$next_unix" ] || die "crl: the tunnel came after nextUpdate; raise E2E_CRL_SECONDS"

    # After nextUpdate: the same CA's next client is refused, and the agent
    # says CRL_EXPIRED.
    while [ "$(date +%s)" -le "$next_unix" ]; do sleep 0.2; done
    c2=$(ovt_client "$WORK" "$WORK/pki" 22 1197)
    if ovt_wait_log "$WORK/server-crl.log" "CRL has expired" 30; then
        refused_at=$(date +%s)
        say "crl: client 22 refused after nextUpdate: $(grep -m1 "CRL has expired" "$WORK/server-crl.log")"
    else
        say "FAIL: crl: OpenVPN did not refuse client 22 with 'CRL has expired'"
        FAILED=1
    fi
    grep -q "Initialization Sequence Completed" "$WORK/client22-1197.log" \
        && { say "FAIL: crl: client 22 got a tunnel after nextUpdate"; FAILED=1; }
    kill -TERM "$c2" 2>/dev/null
    ovt_reap "$c2" 10
    expired=$(crl_event CRL_EXPIRED 30) || { say "FAIL: crl: no CRL_EXPIRED arrived"; FAILED=1; }

    # The times: the warning was written before nextUpdate, the expiry at
    # or after it and within one agent round (10 s) plus a second.
    if [ -n "${expiring:-}" ] && [ -n "${expired:-}" ]; then
        local verdict
        verdict=$(python3 - "$expiring" "$expired" "$next_unix" "${refused_at:-0}" <<'PY'
import calendar, json, sys, time
expiring, expired, next_unix, refused = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = lambda s: calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
problems = []
if t(expiring["event_time_vpn"]) >= next_unix:
    problems.append(f"CRL_EXPIRING written at {expiring['event_time_vpn']}, not before nextUpdate")
if t(expiring["next_update"]) != next_unix or t(expired["next_update"]) != next_unix:
    problems.append("next_update is not the CRL's nextUpdate")
if (expiring["threshold_days"], expiring["days_left"]) != (1, 0):
    problems.append(f"CRL_EXPIRING threshold/days_left {expiring['threshold_days']}/{expiring['days_left']}, want 1/0")
lag = t(expired["event_time_vpn"]) - next_unix
if not 0 <= lag <= 11:
    problems.append(f"CRL_EXPIRED written {lag} s after nextUpdate (want 0..11)")
if expired.get("instance") != "server-crl" or expired.get("issuer") != "/CN=ovt-e2e-ca":
    problems.append(f"CRL_EXPIRED instance/issuer: {expired.get('instance')} {expired.get('issuer')}")
print(json.dumps({"problems": problems, "expiring_at": expiring["event_time_vpn"], "next_update": expired["next_update"],
                  "expired_at": expired["event_time_vpn"], "expired_lag_s": lag, "refused_lag_s": refused - next_unix if refused else None}))
PY
        )
        say "crl: $verdict"
        CRL_SUMMARY=$verdict
        case $verdict in *'"problems": []'*) ;; *) say "FAIL: crl: events wrong (above)"; FAILED=1 ;; esac
    fi
}
