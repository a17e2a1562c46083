# openvpn-telemetry: the two commands a user needs are `make install` and `make test`.
CARGO  ?= cargo
RUSTC  ?= rustc
TARGET := x86_64-unknown-linux-gnu
OUT    := $(abspath $(or $(CARGO_TARGET_DIR),target))
# `build` is what `make install` installs, `make e2e` tests and `make bench`
# measures: a static-pie release build (no interpreter, no shared libraries),
# the fastest hook exec (docs/benchmarks.md). Static glibc is only unsafe
# when it must load NSS modules, and this binary never does NSS in-process:
# hooks look nothing up, the agent and `check` resolve names with `getent
# ahosts` as a child (src/resolve.rs), the installer reads accounts with
# `getent passwd/group`.
# The getrandom cfg makes uuid call getrandom(2) directly; without it a
# static build opens /dev/random and /dev/urandom on every hook.
# `dist` ships this same static file (below).
STATIC_RUSTFLAGS := -C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"
# The hook's functions side by side (benches/hook-order/: fewer exec page
# faults), when the linker takes an order file: rust-lld, rustc's default
# on x86_64 Linux since 1.90, does; GNU ld does not, and is then left
# without it (the build is the same, a little slower to exec).
ORDER_FILE  := $(CURDIR)/benches/hook-order/hook.order
ORDER_FLAGS := -C link-arg=-Wl,--symbol-ordering-file=$(ORDER_FILE) -C link-arg=-Wl,--no-warn-symbol-ordering
BIN    := $(OUT)/$(TARGET)/release/openvpn-telemetry

.PHONY: build build-static test install bench e2e systemd-e2e deb deb-e2e deb-bullseye dist dist-check lint toolchain setup generated

# The crate needs Rust >= rust-version in Cargo.toml (1.89). Says so, and how
# to get one, when cargo is missing or older: the distributions' packaged
# cargo (apt-get install cargo) is older on Debian 12 and Ubuntu 24.04.
RUST_MIN := $(shell sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
RUSTUP_HOW := install one with rustup (https://rustup.rs, or apt-get install rustup where your distribution \
packages it), then rustup default stable. If rustup installed it for your user, sudo resets PATH: \
sudo env PATH=\"\$$PATH\" make install (or make CARGO=~/.cargo/bin/cargo ...).
toolchain:
	@v=$$($(CARGO) --version 2>/dev/null | awk '{print $$2}'); \
	if [ -z "$$v" ]; then \
		echo "make: '$(CARGO)' not found. This crate needs Rust >= $(RUST_MIN) (rust-version in Cargo.toml):" >&2; \
		echo "  $(RUSTUP_HOW)" >&2; exit 1; fi; \
	low=$$(printf '%s\n' "$$v" "$(RUST_MIN)" | sort -V | head -1); \
	if [ "$$low" != "$(RUST_MIN)" ]; then \
		echo "make: $(CARGO) $$v is too old. This crate needs Rust >= $(RUST_MIN) (rust-version in Cargo.toml;" >&2; \
		echo "  the distributions' packaged cargo is older):" >&2; \
		echo "  $(RUSTUP_HOW)" >&2; exit 1; fi

# Installs (as root, on Debian/Ubuntu) the packages the tests need.
setup:
	tests/setup.sh test

build: toolchain
	@probe=$$(mktemp -d); \
	if echo 'fn main() {}' | $(RUSTC) --edition 2021 $(ORDER_FLAGS) -o $$probe/p - >/dev/null 2>&1; then \
		order='$(ORDER_FLAGS)'; echo "build: static, with the hook's order file"; \
	else order=; echo "build: static; the linker takes no order file, linking without it"; fi; \
	rm -rf $$probe; \
	RUSTFLAGS='$(STATIC_RUSTFLAGS) '"$$order" $(CARGO) build --release --locked --target $(TARGET)

# Old name, kept for scripts: the same static build.
build-static: build

lint: toolchain
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Does its own set-up first (tests/setup.sh: apt packages as root), then
# lint and every test, the root-only ones too: a plain `cargo test` leaves
# out the tests marked #[ignore = "needs root: make test runs it"], this
# runs them (--include-ignored). A test that cannot run fails naming what is
# missing (tests/support/require.rs); none is skipped.
test: toolchain
	tests/setup.sh test
	$(MAKE) --no-print-directory lint
	$(CARGO) test --locked -- --include-ignored

install: build
	$(BIN) install

# Rewrites the files generated from the code: assets/agent.env and
# docs/configuration.md (from the settings table, src/config/table.rs) and
# the man page assets/debian/openvpn-telemetry.8 (from --help's argh
# descriptions and the same table). `make test` fails while a committed
# copy differs from what the code generates.
generated:
	OVT_REGENERATE=1 $(CARGO) test --locked --bin openvpn-telemetry generated

# Speed as ratios against baselines in the same run (benches/bench/main.rs):
# hook latency vs /bin/true and the bash baseline's hook, agent drain and idle
# CPU vs its agent (benches/baseline/). Measures the static binary that `build` made;
# the table is printed and copied to target/bench.md.
BENCH_OUT := $(abspath $(or $(CARGO_TARGET_DIR),target))
bench: build
	tests/setup.sh bench
	@command -v curl >/dev/null || echo "bench: curl not installed; the bash baseline's agent is skipped (apt-get install -y curl)"
	OVT_BENCH_BIN=$(BIN) OVT_BENCH_OUT=$(BENCH_OUT)/bench.md \
		$(CARGO) bench --locked --bench bench

# End-to-end proof with a real OpenVPN 2.6 in network namespaces:
# installs the static build for real, runs >= 20 clients, an outage, agent
# kill -9 and the tunnel set-up cost; always cleans up. Needs root,
# /dev/net/tun and `ip netns`; fails naming what is missing otherwise.
# Summary: target/e2e-summary.md.
e2e: build
	tests/setup.sh e2e
	OVT_BIN=$(BIN) tests/e2e/run.sh

# The release binary in a Debian 12 container booted with systemd as PID 1
# (systemd-nspawn --boot --private-network): install and READY, a hook as
# nobody delivered over HTTPS, a real openvpn-server@server and client,
# restart/stop times, the watchdog while idle, idempotent re-install,
# upgrade over the old spool layout, uninstall --purge. Root only; the
# debootstrapped root is cached in $(OUT)/systemd-e2e. Summary:
# $(OUT)/systemd-e2e-summary.md. Fails naming what is missing where it
# cannot run.
systemd-e2e: build
	OVT_BIN=$(BIN) OVT_OUT=$(OUT) tests/systemd-e2e/run.sh

# --- deb: the Debian package (docs/packaging.md) ----------------------------
# $(DEB_DIR)/openvpn-telemetry_<version>_amd64.deb from the very file `build`
# makes (cargo-deb --no-build --no-strip; checked byte for byte below), with
# the metadata in Cargo.toml ([package.metadata.deb]) and the maintainer
# scripts, unit, copyright, changelog, man page and lintian overrides in
# assets/debian/. cargo-deb $(CARGO_DEB_VERSION) (crates.io) is installed once into
# $(DEB_TOOLS). lintian runs when it is installed (tests/setup.sh deb).
# DEB_REVISION=2 DEB_DIR=... builds the same with another Debian revision
# (the upgrade in deb-e2e).
CARGO_DEB_VERSION := 3.8.0
DEB_TOOLS  := $(OUT)/deb-tools
CARGO_DEB  := $(DEB_TOOLS)/bin/cargo-deb
DEB_DIR    ?= $(OUT)/debian
DEB_REVISION ?=
deb: build
	@[ "$$($(CARGO_DEB) --version 2>/dev/null)" = "cargo-deb $(CARGO_DEB_VERSION)" ] || { \
		echo "deb: installing cargo-deb $(CARGO_DEB_VERSION) into $(DEB_TOOLS) (once)"; \
		$(CARGO) install --locked --quiet cargo-deb --version $(CARGO_DEB_VERSION) --root $(DEB_TOOLS); }
	@mkdir -p $(DEB_DIR) && rm -f $(DEB_DIR)/openvpn-telemetry_*.deb
	@deb=$$($(CARGO_DEB) --no-build --no-strip --target $(TARGET) --output $(DEB_DIR)/ \
		$(if $(DEB_REVISION),--deb-revision $(DEB_REVISION)) | tail -1) && \
	dpkg-deb --fsys-tarfile $$deb | tar -xOf - ./usr/sbin/openvpn-telemetry | cmp -s - $(BIN) \
		|| { echo "deb: FAIL: $$deb does not hold $(BIN) byte for byte"; exit 1; }; \
	echo "$$deb: $$(stat -c %s $$deb) bytes; $$(dpkg-deb -f $$deb Version), Depends: $$(dpkg-deb -f $$deb Depends);" \
		"usr/sbin/openvpn-telemetry = $(BIN) (sha256 $$(sha256sum $(BIN) | cut -c1-12))"; \
	if command -v lintian >/dev/null; then \
		lintian --pedantic --fail-on error,warning,info,pedantic $$deb && echo "lintian: clean (--pedantic; overrides: assets/debian/lintian-overrides)"; \
	else echo "deb: lintian not installed, not checked (tests/setup.sh deb, or apt-get install lintian)"; fi

# The package in the systemd container of systemd-e2e (tests/systemd-e2e/deb.sh):
# apt install (also over a make install layout) -> agent active, a hook as
# nobody delivered; upgrade to revision 2 -> restarted, events and settings
# kept; apt remove -> stopped, spool kept; make install and back; apt purge
# -> nothing left. Root only; fails naming what is missing where it cannot run.
deb-e2e: build
	tests/setup.sh deb
	@# (the revision-2 rebuild first: cargo-deb clears target/debian/ of
	@# other .deb files when it writes the main one)
	$(MAKE) --no-print-directory deb DEB_REVISION=2 DEB_DIR=$(OUT)/debian-upgrade
	$(MAKE) --no-print-directory deb
	OVT_BIN=$(BIN) OVT_OUT=$(OUT) OVT_DEB=$$(ls $(DEB_DIR)/openvpn-telemetry_*_amd64.deb | head -1) \
		OVT_DEB2=$$(ls $(OUT)/debian-upgrade/openvpn-telemetry_*-2_amd64.deb | head -1) tests/systemd-e2e/deb.sh

# The package on the oldest Debian it supports: bullseye (dpkg 1.20, glibc
# 2.31) in a chroot of the root dist-check uses (tests/old-distro/deb.sh):
# dpkg -i, postinst's install --package, a hook as nobody, check, purge.
# Root and debootstrap.
deb-bullseye: deb
	tests/setup.sh deb
	tests/old-distro/deb.sh $(DIST_ROOT) $$(ls $(DEB_DIR)/openvpn-telemetry_*_amd64.deb | head -1)

# --- dist: the one file that goes onto servers -------------------------------
# DIST=static (default): the static-pie file `build` makes: no interpreter,
# no shared library, so no glibc version floor at all (NSS never loads
# in-process: see `build` above), and the fastest hook (make bench: a
# dynamic hook costs ~1.8x /bin/true, this one ~1.0x). ~3.4 MB.
# DIST=zig: cargo-zigbuild (crates.io) + ziglang (PyPI), fetched once into
# $(DIST_TOOLS), linked dynamically against glibc 2.17 (RHEL 7 .. Ubuntu
# 24.04) at opt-level=s: 2.5 MB and glibc's NSS works natively, for a site
# that wants a dynamically linked file; its hook is slower (above).
# Either way `dist` prints size and linkage and fails over 4 MB, when a
# static build links dynamically, or when a dynamic one needs > GLIBC_2.17.
DIST       ?= static
DIST_MAX   := 4194304
DIST_GLIBC := 2.17
DIST_OUT   := $(or $(CARGO_TARGET_DIR),target)
DIST_TOOLS := $(DIST_OUT)/dist-tools
DIST_ROOT  ?= $(DIST_OUT)/dist-check/bullseye
ifeq ($(DIST),zig)
DIST_SRC   := $(DIST_OUT)/zig/$(TARGET)/release/openvpn-telemetry
DIST_BUILD := dist-zig
else
DIST_SRC   := $(BIN)
DIST_BUILD := build
endif

.PHONY: dist-zig
dist-zig:
	@[ -x $(DIST_TOOLS)/bin/cargo-zigbuild ] || $(CARGO) install --locked cargo-zigbuild --root $(DIST_TOOLS)
	@[ -x $(DIST_TOOLS)/venv/bin/python-zig ] || { python3 -m venv $(DIST_TOOLS)/venv && \
		$(DIST_TOOLS)/venv/bin/pip install --quiet ziglang && touch $(DIST_TOOLS)/venv/bin/python-zig; }
	PATH="$(abspath $(DIST_TOOLS))/bin:$(abspath $(DIST_TOOLS))/venv/bin:$$PATH" CARGO_TARGET_DIR=$(DIST_OUT)/zig \
		CARGO_PROFILE_RELEASE_OPT_LEVEL=s $(CARGO) zigbuild --release --locked --target $(TARGET).$(DIST_GLIBC)

dist: $(DIST_BUILD)
	@mkdir -p dist
	cp $(DIST_SRC) dist/openvpn-telemetry
	@f=dist/openvpn-telemetry; size=$$(stat -c %s $$f); \
	echo "$$f ($(DIST)): $$size bytes ($$((size / 1024)) KiB; limit $(DIST_MAX))"; \
	file -b $$f; \
	if [ "$(DIST)" = zig ]; then \
		newest=$$(objdump -T $$f | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1); \
		echo "links: dynamically against glibc; newest symbol $$newest (floor GLIBC_$(DIST_GLIBC))"; \
		[ "$$(printf '%s\n' $$newest GLIBC_$(DIST_GLIBC) | sort -V | tail -1)" = GLIBC_$(DIST_GLIBC) ] \
			|| { echo "dist: FAIL: needs $$newest, newer than GLIBC_$(DIST_GLIBC)"; exit 1; }; \
	else \
		if readelf -d $$f | grep -q '(NEEDED)'; then \
			echo "dist: FAIL: dynamically linked:"; readelf -d $$f | grep '(NEEDED)'; exit 1; fi; \
		if readelf -l $$f | grep -q INTERP; then echo "dist: FAIL: needs a program interpreter"; exit 1; fi; \
		echo "links: static (no NEEDED libraries, no interpreter): no glibc version floor"; \
	fi; \
	if [ $$size -gt $(DIST_MAX) ]; then echo "dist: FAIL: over 4 MB"; exit 1; fi

# Proves dist/openvpn-telemetry runs on an older distro: debootstraps Debian
# bullseye (glibc 2.31) once into $(DIST_ROOT), then in a chroot runs
# --version and a connect hook as nobody, and shows the queued line. The
# mirror is the one apt already uses here (read from the apt sources).
# Needs root and debootstrap; not part of `make test`.
dist-check: dist
	@set -e; root=$(DIST_ROOT); \
	tests/old-distro/root.sh $$root; \
	echo "chroot: $$(chroot $$root sh -c '. /etc/os-release; echo $$PRETTY_NAME'), $$(chroot $$root ldd --version | head -1)"; \
	install -m 0755 dist/openvpn-telemetry $$root/usr/local/sbin/openvpn-telemetry; \
	ln -sf openvpn-telemetry $$root/usr/local/sbin/telemetry-connect.sh; \
	chroot $$root /usr/local/sbin/openvpn-telemetry --version; \
	rm -rf $$root/var/spool/ovt-dist-check; mkdir -p $$root/var/spool/ovt-dist-check/pending; \
	chown -R 65534:65534 $$root/var/spool/ovt-dist-check; chmod 2770 $$root/var/spool/ovt-dist-check; \
	printf 'SPOOL_DIR=/var/spool/ovt-dist-check\n' > $$root/etc/ovt-dist-check.env; \
	chroot --userspec=65534:65534 $$root /usr/bin/env -i OPENVPN_TELEMETRY_CONFIG=/etc/ovt-dist-check.env \
		common_name=dist-check trusted_ip=192.0.2.1 trusted_port=1194 ifconfig_pool_remote_ip=10.8.0.9 \
		/usr/local/sbin/telemetry-connect.sh; \
	echo "hook exit status: $$?; queued line:"; \
	cat $$root/var/spool/ovt-dist-check/queue.log; \
	grep -q '"common_name":"dist-check"' $$root/var/spool/ovt-dist-check/queue.log \
		&& echo "dist-check: OK on bullseye" || { echo "dist-check: FAIL: no event queued"; exit 1; }
