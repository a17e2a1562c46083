#!/usr/bin/env bash
# tests/e2e/fixtures.sh: captures real OpenVPN 2.6 artefacts into
# tests/fixtures/ for the parsers' tests:
#   status-v1.log, status-v2.log, status-v3.log  (>= 2 clients, after traffic)
#   status-v2-midwrite.log   (v2 cut inside CLIENT_LIST, no END: a file caught
#                             while OpenVPN rewrites it)
#   openvpn-env-connect.txt / openvpn-env-disconnect.txt  (the exact script
#                             environment OpenVPN gives client-connect/-disconnect)
# Runs as root in throwaway namespaces (see lib.sh); cleans up on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"

why=$(ovt_gate)
. "$REPO/tests/support/require.sh"
[ -z "$why" ] || require_missing fixtures "$why"
ovt_need_openvpn

OUT=${FIXTURES_OUT:-$REPO/tests/fixtures}
WORK=$(mktemp -d /tmp/ovt-fixtures.XXXXXX)
trap 'ovt_cleanup_procs; ovt_net_down; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
chmod 755 "$WORK"   # scripts run as nobody and must reach their files
mkdir -p "$OUT" "$WORK/envdump"
chmod 1777 "$WORK/envdump"

cat >"$WORK/envdump.sh" <<'SH'
#!/bin/sh
# Throwaway client-connect/-disconnect hook: records the environment.
env | sort >"$(dirname "$0")/envdump/$script_type-$common_name.txt"
exit 0
SH
chmod 755 "$WORK/envdump.sh"

ovt_net_up
ovt_pki "$WORK/pki" 3
chmod -R a+rX "$WORK/pki"

for v in 1 2 3; do
    say "status-version $v"
    conf=$WORK/server-v$v.conf
    status=$WORK/status-v$v.log
    ovt_server_conf "$conf" "$WORK/pki" 1194 10.99.0 ovts-fix "$status" "$v" \
        "client-connect $WORK/envdump.sh" "client-disconnect $WORK/envdump.sh"
    spid=$(ovt_openvpn "$OVT_SRV_NS" "$conf" "$WORK/server-v$v.log")
    ovt_wait_log "$WORK/server-v$v.log" "Initialization Sequence Completed" 10 || die "server v$v did not start"
    cpids=()
    for i in 01 02 03; do cpids+=("$(ovt_client "$WORK" "$WORK/pki" "$i" 1194)"); done
    for i in 01 02 03; do
        ovt_wait_log "$WORK/client$i-1194.log" "Initialization Sequence Completed" 20 || die "client $i (v$v) no tunnel"
        ovt_ping "ovtc$i-1194" 10.99.0.1 3 || die "client $i (v$v): no ping through the tunnel"
    done
    sleep 2.5   # status is rewritten every second: let it see the traffic
    cp "$status" "$OUT/status-v$v.log"
    grep -q '^END' "$OUT/status-v$v.log" || die "status-v$v.log has no END"
    for p in "${cpids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${cpids[@]}"; do ovt_reap "$p" 10; done
    for i in 01 02 03; do
        ovt_wait_log "$WORK/envdump/client-disconnect-ovt-client-$i.txt" "script_type" 10 || die "no disconnect env for $i"
    done
    ovt_stop "$spid"
    if [ "$v" = 2 ]; then
        cp "$WORK/envdump/client-connect-ovt-client-01.txt" "$OUT/openvpn-env-connect.txt"
        cp "$WORK/envdump/client-disconnect-ovt-client-01.txt" "$OUT/openvpn-env-disconnect.txt"
    fi
    rm -f "$WORK"/envdump/* "$WORK"/client*.log
done

# Cut inside the second CLIENT_LIST line: what a reader sees mid-rewrite.
python3 - "$OUT/status-v2.log" "$OUT/status-v2-midwrite.log" <<'PY'
import sys
text = open(sys.argv[1]).read()
rows = [i for i, l in enumerate(text.splitlines(keepends=True)) if l.startswith("CLIENT_LIST,")]
assert len(rows) >= 2, "need >= 2 CLIENT_LIST rows"
lines = text.splitlines(keepends=True)
cut = "".join(lines[: rows[1]]) + lines[rows[1]][: len(lines[rows[1]]) // 2]
assert "END" not in cut.splitlines()[-1]
open(sys.argv[2], "w").write(cut)
PY
chmod 644 "$OUT"/status-v*.log "$OUT"/openvpn-env-*.txt
say "fixtures written to $OUT"
ls -l "$OUT" >&2
