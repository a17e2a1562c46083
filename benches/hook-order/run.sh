#!/bin/sh
# Regenerates benches/hook-order/hook.order: the functions a hook runs, in
# the order it first runs them (connect, then disconnect, then write-event,
# glibc's start-up included). The release link can take it as
#   -C link-arg=-Wl,--symbol-ordering-file=benches/hook-order/hook.order
#   -C link-arg=-Wl,--no-warn-symbol-ordering
# (rustc links with rust-lld), which puts that code side by side, so a hook
# faults in a few 64 KiB windows of the file instead of ~26 spread over
# 2.3 MB (docs/benchmarks.md). Names missing from a build are skipped, so a
# stale file costs speed, never correctness; symbol names stay the same
# across edits of the code (their hashes come from the crate's metadata),
# so rerun this after a toolchain or dependency update: make bench shows
# when it is due.
#
# Needs cc and nm (build-essential). Builds an unstripped release binary
# into $CARGO_TARGET_DIR/hook-order (or target/hook-order) with $RUSTFLAGS.
set -eu
cd "$(dirname "$0")/../.."
out=${CARGO_TARGET_DIR:-target}/hook-order
mkdir -p "$out"
out=$(cd "$out" && pwd)
CARGO_TARGET_DIR=$out CARGO_PROFILE_RELEASE_STRIP=false \
	${CARGO:-cargo} build --release --locked --target x86_64-unknown-linux-gnu
bin=$out/x86_64-unknown-linux-gnu/release/openvpn-telemetry
cc -O2 -o "$out/trace" benches/hook-order/trace.c
nm -n --defined-only "$bin" > "$out/symbols"

site=$out/site
rm -rf "$site"
mkdir -p "$site/spool/pending"
printf 'SPOOL_DIR=%s/spool\n' "$site" > "$site/agent.env"
for name in telemetry-connect.sh telemetry-disconnect.sh openvpn-telemetry-write-event; do
	ln -s "$bin" "$site/$name"
done
: > "$out/order"
# The variables OpenVPN 2.6 gives a client-connect / client-disconnect script.
vpn_env() {
	script_type=$1
	shift
	env -i OPENVPN_TELEMETRY_CONFIG="$site/agent.env" script_type="$script_type" \
		common_name=client-0042 trusted_ip=203.0.113.7 trusted_port=51234 \
		ifconfig_pool_remote_ip=10.8.0.6 time_unix=1764000000 IV_VER=2.6.8 IV_PLAT=linux \
		tls_serial_hex_0=97:9d:c8:e6 tls_digest_sha256_0=1f:6e:9b:42 \
		config=/etc/openvpn/server/server.conf dev=tun0 \
		bytes_received=1000 bytes_sent=2000 time_duration=61 \
		"$out/trace" "$out/symbols" "$out/order" "$@"
}
# Twice each: the first run also makes seq.counter and queue.log.
for i in 1 2; do
	vpn_env client-connect "$site/telemetry-connect.sh" "$site/cc.tmp"
	vpn_env client-disconnect "$site/telemetry-disconnect.sh"
	vpn_env client-connect "$site/openvpn-telemetry-write-event" VPN_NOTE
done
# First occurrence of each name, in order.
awk '!seen[$0]++' "$out/order" > benches/hook-order/hook.order
echo "benches/hook-order/hook.order: $(wc -l < benches/hook-order/hook.order) functions"
