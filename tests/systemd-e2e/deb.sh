#!/usr/bin/env bash
# tests/systemd-e2e/deb.sh (`make deb-e2e`): the Debian package
# in the same Debian 12 container with systemd as PID 1 that run.sh boots
# (lib.sh). Proves, with what an operator runs:
#   a `make install` layout with pending events -> `apt install ./….deb`
#   takes over (its unit and /usr/local/sbin copy gone, the package's unit
#   active and enabled, the binary /usr/sbin's) and delivers them; a hook as
#   nobody delivered over HTTPS; upgrade to revision 2 -> agent restarted,
#   pending events delivered, agent.env and .env as the operator left them;
#   `apt remove` -> agent stopped, spool with its pending events kept,
#   hooks and conf lines gone; `make install` again ("and back") delivers
#   them; the package once more; `apt purge` -> nothing left but the
#   documented conf backups (every path compared, as run.sh does).
#
# Needs root; fails naming what is missing where it cannot run.
# Env: OVT_DEB and OVT_DEB2 (the package and its revision-2 rebuild, `make
# deb-e2e` makes both), OVT_BIN, OVT_OUT, KEEP as for run.sh.
# Summary: stdout and $OVT_OUT/deb-e2e-summary.md.
set -euo pipefail
E2E=deb-e2e
DEB=${OVT_DEB:-}
DEB2=${OVT_DEB2:-}
[ -f "$DEB" ] && [ -f "$DEB2" ] || { echo "deb-e2e: FAIL: OVT_DEB/OVT_DEB2 not set to two .deb files (make deb-e2e)" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"

install -m 0644 "$DEB" "$M/srv/ovt/v1.deb"
install -m 0644 "$DEB2" "$M/srv/ovt/v2.deb"
V1=$(dpkg-deb -f "$DEB" Version)
V2=$(dpkg-deb -f "$DEB2" Version)
SP=/var/spool/openvpn-telemetry
UNIT=openvpn-telemetry-agent
show() { C systemctl show "$UNIT" -p "$1" --value; }
apt_() { C env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" </dev/null >>"$RUN/apt.out" 2>&1; }
hook() { # CN N: a connect hook as nobody
    C setpriv --reuid=nobody --regid=nogroup --clear-groups env -i common_name="$1" trusted_ip=192.0.2.88 \
        trusted_port=4000"$2" ifconfig_pool_remote_ip=10.99.0.88 /etc/openvpn/scripts/telemetry-connect.sh \
        >/dev/null 2>&1 || true
}
spooled() { # CN: the event ids of CN still in the spool
    C sh -c "cat $SP/queue.log $SP/pending/*.ndjson 2>/dev/null" | grep "\"common_name\":\"$1\"" \
        | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 || true
}
delivered() { # IDS...: waits until the receiver has every one
    local args=()
    for id in "$@"; do args+=(--id "$id"); done
    [ "${#args[@]}" -gt 0 ] && EV "${args[@]}" --timeout 30 >/dev/null
}
pkg_state() { C dpkg-query -W -f='${db:Status-Abbrev}${Version}' openvpn-telemetry 2>/dev/null | tr -s ' ' || true; }
agent_exe() { local p; p=$(show MainPID); [ "$p" != 0 ] && C readlink "/proc/$p/exe" || echo none; }
local_left() { # what of a make install layout is there
    C sh -c 'for p in /usr/local/sbin/openvpn-telemetry /usr/local/sbin/openvpn-telemetry-agent \
        /usr/local/sbin/openvpn-telemetry-write-event /etc/systemd/system/openvpn-telemetry-agent.service; do
        [ -e "$p" ] || [ -L "$p" ] && printf "%s " "$p"; done; true'
}

# --- a make install layout with pending events ---------------------------------
STEP="make install layout with 3 pending events"
C /srv/ovt/openvpn-telemetry install >"$RUN/install-local1.out" 2>&1 \
    || { cat "$RUN/install-local1.out" >&2; die "make install layout: install failed"; }
C systemctl stop "$UNIT"
for i in 1 2 3; do hook deb-e2e-local 1$i; done
mapfile -t IDS < <(spooled deb-e2e-local)
[ "${#IDS[@]}" = 3 ] || die "3 hook events expected in the spool, found ${#IDS[@]}"
pass "$STEP" "install from /srv/ovt (binary in /usr/local/sbin, unit in /etc/systemd/system); agent stopped; 3 events spooled by hooks as nobody"

# --- apt install over it -----------------------------------------------------
STEP="apt install ./….deb over the make install layout -> package's agent active, pending events delivered"
t0=$(now)
apt_ install /srv/ovt/v1.deb || { tail -30 "$RUN/apt.out" >&2; die "apt-get install ./v1.deb failed"; }
t1=$(now)
active=$(C systemctl is-active "$UNIT" || true)
enabled=$(C systemctl is-enabled "$UNIT" || true)
frag=$(show FragmentPath)
exe=$(agent_exe)
left=$(local_left)
hooks=$(C readlink /etc/openvpn/scripts/telemetry-connect.sh /etc/openvpn/scripts/telemetry-disconnect.sh | sort -u | tr '\n' ' ')
# (/lib is /usr/lib on merged-/usr Debian 12; systemd names it by /lib)
if [ "$active" = active ] && [ "$enabled" = enabled ] && [ "${frag#/usr}" = /lib/systemd/system/$UNIT.service ] \
    && [ "$exe" = /usr/sbin/openvpn-telemetry ] && [ -z "$left" ] && [ "$hooks" = "/usr/sbin/openvpn-telemetry " ] \
    && delivered "${IDS[@]}"; then
    pass "$STEP" "apt-get install $(ms "$t0" "$t1") ms ($(pkg_state)); $active, $enabled, unit $frag, agent $exe; make install's copy, links and unit gone; hooks -> $hooks; 3 of 3 pending events delivered $(ms "$t0" "$(now)") ms after apt started"
else
    fail "$STEP" "active=$active enabled=$enabled unit=$frag exe=$exe left=[${left}] hooks=[$hooks]"
    tail -20 "$RUN/apt.out" >&2
fi
# The package's agent with the drop-in's capability: confined to the
# sources' thread, effective on no thread while idle.
caps_seen=$(threads_caps "$(show MainPID)")
if all_threads 0000000000000000/0000000000000004 "$caps_seen"; then
    pass "package's agent: CAP_DAC_READ_SEARCH permitted, effective on no thread" "${caps_seen% } (comm=CapEff/CapPrm)"
else
    fail "package's agent: CAP_DAC_READ_SEARCH permitted, effective on no thread" "${caps_seen% }"
fi
dropin=$(C cat /etc/systemd/system/$UNIT.service.d/10-install.conf 2>/dev/null | grep -c '^[A-Z]' || true)
ambient=$(show AmbientCapabilities)
exposure=$(C systemd-analyze security "$UNIT" --no-pager 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9.]*\).*/\1/p' | tail -1 || true)
if [ "$ambient" = cap_dac_read_search ] && [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN {exit !(e <= 2.0)}'; then
    pass "the package's unit + the settings' drop-in, rated by the running systemd" \
        "drop-in 10-install.conf: $dropin lines (OPENVPN_SERVER_CONF is set: CAP_DAC_READ_SEARCH); exposure $exposure (limit 2.0)"
else
    fail "the package's unit + the settings' drop-in, rated by the running systemd" "AmbientCapabilities=$ambient exposure=${exposure:-?}"
fi

STEP="hook as nobody -> HTTPS receiver (package)"
t0=$(now)
hook deb-e2e-pkg 1
if got=$(EV --type SESSION_CONNECTED --cn deb-e2e-pkg --timeout 20); then
    pass "$STEP" "delivered $(ms "$t0" "$(now)") ms after the hook ran"
else
    fail "$STEP" "not delivered in 20 s: $got"
fi
C /usr/sbin/openvpn-telemetry install >"$RUN/install-pkg2.out" 2>&1 || true
if grep -q "install --package.*nothing to change" "$RUN/install-pkg2.out"; then
    pass "openvpn-telemetry install as /usr/sbin's: package mode, nothing to change" "$(head -1 "$RUN/install-pkg2.out")"
else
    fail "openvpn-telemetry install as /usr/sbin's: package mode, nothing to change" "$(tr '\n' ';' <"$RUN/install-pkg2.out" | head -c 300)"
fi

# --- upgrade -------------------------------------------------------------------
STEP="upgrade $V1 -> $V2: agent restarted, pending events delivered, settings as the operator left them"
C sed -i 's/^LOG_LEVEL=.*/LOG_LEVEL=debug/' /etc/openvpn-telemetry/agent.env
env_sum=$(C sha256sum /etc/openvpn-telemetry/.env)
C systemctl stop ovt-e2e-receiver
for i in 1 2; do hook deb-e2e-upgrade "$i"; done
pid0=$(show MainPID)
t0=$(now)
apt_ install /srv/ovt/v2.deb || { tail -30 "$RUN/apt.out" >&2; die "apt-get install ./v2.deb failed"; }
t1=$(now)
pid1=$(show MainPID)
active=$(C systemctl is-active "$UNIT" || true)
state=$(pkg_state)
loglevel=$(C grep '^LOG_LEVEL=' /etc/openvpn-telemetry/agent.env || true)
env_same=$([ "$(C sha256sum /etc/openvpn-telemetry/.env)" = "$env_sum" ] && echo "byte for byte" || echo CHANGED)
prompts=$(grep -ciE "conffile|\*\*\* .* \(Y/I/N/O/D/Z\)" "$RUN/apt.out" || true)
mapfile -t IDS < <(spooled deb-e2e-upgrade)
n_spooled=${#IDS[@]}
receiver_up
if [ "$active" = active ] && [ "$pid1" != "$pid0" ] && [ "$state" = "ii $V2" ] && [ "$loglevel" = LOG_LEVEL=debug ] \
    && [ "$env_same" = "byte for byte" ] && [ "$prompts" = 0 ] && [ "$n_spooled" = 2 ] && delivered "${IDS[@]}"; then
    pass "$STEP" "apt-get install $(ms "$t0" "$t1") ms; MainPID $pid0 -> $pid1, $active; $state; agent.env's edit kept ($loglevel), .env $env_same, $prompts prompts; 2 of 2 events spooled during the upgrade delivered"
else
    fail "$STEP" "active=$active pid $pid0 -> $pid1 state=$state $loglevel .env $env_same prompts=$prompts spooled=$n_spooled"
fi

# --- apt remove ----------------------------------------------------------------
STEP="apt remove: agent stopped, spool and its pending events kept"
C systemctl stop ovt-e2e-receiver
for i in 1 2; do hook deb-e2e-remove "$i"; done
t0=$(now)
apt_ remove openvpn-telemetry || { tail -30 "$RUN/apt.out" >&2; die "apt-get remove failed"; }
t1=$(now)
active=$(C systemctl is-active "$UNIT" || true)
procs=$(C pgrep -c -f 'openvpn-telemetry agent' || true)
mapfile -t IDS < <(spooled deb-e2e-remove)
kept=$(C sh -c 'for p in /etc/openvpn-telemetry/.env /etc/openvpn-telemetry/agent.env /var/spool/openvpn-telemetry; do
    [ -e "$p" ] && printf "%s " "$p"; done; true')
gone=$(C sh -c 'for p in /etc/openvpn/scripts/telemetry-connect.sh /usr/sbin/openvpn-telemetry; do
    [ -e "$p" ] || [ -L "$p" ] || printf "%s " "$p"; done; true')
conf_lines=$(C grep -c telemetry-connect /etc/openvpn/server/server.conf || true)
state=$(pkg_state)
if [ "$active" != active ] && [ "$procs" = 0 ] && [ "${#IDS[@]}" = 2 ] && [ "$conf_lines" = 0 ] && [ "${state%% *}" = rc ] \
    && [ "$gone" = "/etc/openvpn/scripts/telemetry-connect.sh /usr/sbin/openvpn-telemetry " ]; then
    pass "$STEP" "apt-get remove $(ms "$t0" "$t1") ms; agent $active, 0 agent processes; 2 of 2 pending events still in the spool; kept: $kept; gone: $gone; server.conf's lines removed; dpkg: $state"
else
    fail "$STEP" "agent $active, $procs processes, ${#IDS[@]} events in the spool, kept [$kept], gone [$gone], conf lines $conf_lines, dpkg $state"
fi

# --- and back: make install ----------------------------------------------------
STEP="back to make install: pending events delivered"
receiver_up
t0=$(now)
C /srv/ovt/openvpn-telemetry install >"$RUN/install-local2.out" 2>&1 \
    || { cat "$RUN/install-local2.out" >&2; die "make install after apt remove failed"; }
exe=$(agent_exe)
if [ "$exe" = /usr/local/sbin/openvpn-telemetry ] && delivered "${IDS[@]}"; then
    pass "$STEP" "install $(ms "$t0" "$(now)") ms until both events were delivered; agent $exe"
else
    fail "$STEP" "agent $exe; events: $(delivered "${IDS[@]}" 2>&1 || echo 'not delivered')"
fi
C /srv/ovt/openvpn-telemetry install --dry-run >/dev/null 2>&1 || true

# --- the package once more, then apt purge --------------------------------------
STEP="apt install over make install again, then apt purge leaves only the documented conf backups"
C systemctl stop ovt-e2e-receiver
hook deb-e2e-again 1
apt_ install /srv/ovt/v2.deb || { tail -30 "$RUN/apt.out" >&2; die "apt-get install ./v2.deb (again) failed"; }
mapfile -t IDS < <(spooled deb-e2e-again)
receiver_up
if [ "$(agent_exe)" = /usr/sbin/openvpn-telemetry ] && [ -z "$(local_left)" ] && delivered "${IDS[@]}"; then
    pass "package again over make install" "took over again; 1 of 1 pending event delivered"
else
    fail "package again over make install" "agent $(agent_exe); left [$(local_left)]"
fi
C systemctl stop ovt-e2e-receiver
t0=$(now)
apt_ purge openvpn-telemetry || { tail -30 "$RUN/apt.out" >&2; die "apt-get purge failed"; }
t1=$(now)
# dpkg's and apt's own bookkeeping (status-old, extended_states) is theirs.
compare_with_before '^/var/lib/(dpkg|apt)/'
state=$(pkg_state)
if [ -z "$unexpected" ] && [ -z "$removed" ] && [ "$accounts" = same ] && [ "$conf" = "byte for byte" ] && [ -z "$state" ]; then
    pass "$STEP" "apt-get purge $(ms "$t0" "$t1") ms; $(wc -l <"$RUN/before.list") paths compared (dpkg's and apt's own state left out): only $backups server.conf.bak-* added, none removed or changed; passwd/group/shadow/gshadow identical; server.conf restored $conf; dpkg knows no openvpn-telemetry"
else
    fail "$STEP" "added: $(echo "$unexpected" | grep . | head -5 | tr '\n' ';'); removed/changed: $(echo "$removed" | grep . | head -5 | tr '\n' ';'); accounts: $accounts; conf $conf; dpkg: $state"
    { echo "added:"; echo "$added"; echo "removed/changed:"; echo "$removed"; } | sed 's/^/  purge: /' >&2
fi
