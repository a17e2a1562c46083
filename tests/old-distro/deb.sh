#!/usr/bin/env bash
# tests/old-distro/deb.sh ROOT DEB (`make deb-bullseye`): the package on the
# oldest Debian it supports, bullseye (dpkg 1.20, glibc 2.31), in a chroot
# (no systemd there: the unit's start is skipped, as dpkg's helpers do in a
# chroot). Proves that dpkg of that age takes the package (format and
# compression), that its postinst's `install --package` sets up the agent's
# user, settings, spool and hook links there, that a hook run as nobody by
# its OpenVPN path queues an event, that `check` finds the layout sound, and
# that `dpkg --purge` leaves nothing of ours. Prints one PASS/FAIL line per
# step; exits 1 on the first failure.
set -euo pipefail
root=${1:?usage: deb.sh ROOT DEB}
deb=${2:?usage: deb.sh ROOT DEB}
[ "$(id -u)" = 0 ] || { echo "deb-bullseye: needs root (chroot)"; exit 1; }
tests/old-distro/root.sh "$root"

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; exit 1; }
in_root() { chroot "$root" "$@"; }

# /proc for the installer (it finds its own file through /proc/self/exe);
# unmounted whatever happens.
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root/tmp/ovt-deb"' EXIT
# A dist-check run leaves a `make install`-like copy in /usr/local/sbin;
# this proof starts from a host without one.
rm -f "$root"/usr/local/sbin/openvpn-telemetry* "$root"/usr/local/sbin/telemetry-*.sh
in_root dpkg --purge openvpn-telemetry >/dev/null 2>&1 || true
before=$(mktemp)
(cd "$root" && find . -xdev -path ./proc -prune -o -path ./tmp -prune -o -path ./var/lib/dpkg -prune \
  -o -path ./var/log -prune -o -path ./var/cache -prune -o -print | sort) > "$before"

echo "chroot: $(in_root sh -c '. /etc/os-release; echo $PRETTY_NAME'), $(in_root dpkg-query -W -f='dpkg ${Version}' dpkg)," \
  "$(in_root ldd --version | head -1)"
mkdir -p "$root/tmp/ovt-deb"
cp "$deb" "$root/tmp/ovt-deb/"
out=$(in_root dpkg -i "/tmp/ovt-deb/$(basename "$deb")" 2>&1) || { echo "$out"; fail "dpkg -i $(basename "$deb")"; }
echo "$out" | sed 's/^/  | /'
pass "dpkg -i on bullseye: $(in_root dpkg-query -W -f='${Package} ${Version} ${Status}' openvpn-telemetry)"

in_root getent passwd openvpn-telemetry >/dev/null || fail "no user openvpn-telemetry"
spool=$(in_root stat -c '%a %U:%G' /var/spool/openvpn-telemetry)
[ "$spool" = "3770 openvpn-telemetry:nogroup" ] || fail "spool is $spool, expected 3770 openvpn-telemetry:nogroup"
for hook in telemetry-connect.sh telemetry-disconnect.sh; do
  [ "$(readlink "$root/etc/openvpn/scripts/$hook")" = /usr/sbin/openvpn-telemetry ] || fail "$hook is not a link to /usr/sbin"
done
[ -f "$root/etc/openvpn-telemetry/agent.env" ] || fail "no agent.env"
pass "postinst: user openvpn-telemetry, spool $spool, hook links to /usr/sbin/openvpn-telemetry, agent.env"

chroot --userspec=65534:65534 "$root" /usr/bin/env -i common_name=deb-bullseye trusted_ip=192.0.2.1 \
  trusted_port=1194 ifconfig_pool_remote_ip=10.8.0.9 /etc/openvpn/scripts/telemetry-connect.sh \
  || fail "hook exit status $?"
grep -q '"common_name":"deb-bullseye"' "$root/var/spool/openvpn-telemetry/queue.log" || fail "no event queued"
pass "hook as nobody through /etc/openvpn/scripts/telemetry-connect.sh: exit 0, event queued"

# check exits 1 here only for what a chroot lacks (no TELEMETRY_URL); the
# layout's lines must be OK.
report=$(in_root /usr/sbin/openvpn-telemetry check || true)
echo "$report" | grep -E '^OK +(/usr/sbin|hooks and helpers|/usr/lib/systemd)' | sed 's/^/  | /' || true
if echo "$report" | grep -E '^FAIL' | grep -v 'TELEMETRY_URL' | grep -q .; then
  echo "$report"
  fail "check reports a failure besides TELEMETRY_URL"
fi
pass "check: binary, links and unit OK"

out=$(in_root dpkg --purge openvpn-telemetry 2>&1) || { echo "$out"; fail "dpkg --purge"; }
after=$(mktemp)
(cd "$root" && find . -xdev -path ./proc -prune -o -path ./tmp -prune -o -path ./var/lib/dpkg -prune \
  -o -path ./var/log -prune -o -path ./var/cache -prune -o -print | sort) > "$after"
left=$(comm -13 "$before" "$after" | grep -v '^\./etc/\(passwd\|group\|shadow\|gshadow\|subuid\|subgid\)-\?$' || true)
if in_root getent passwd openvpn-telemetry >/dev/null; then fail "user openvpn-telemetry still there"; fi
[ -z "$left" ] || { echo "$left"; fail "dpkg --purge left $(echo "$left" | wc -l) path(s)"; }
pass "dpkg --purge: user gone, nothing of ours left ($(wc -l < "$after") paths compared)"
rm -f "$before" "$after"
