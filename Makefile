# openvpn-telemetry: the two commands a user needs are `make install` and `make test`.
CARGO  ?= cargo
TARGET := x86_64-unknown-linux-gnu
# A static (static-pie) glibc build: runs on every glibc distro, and is the
# fastest hook to exec (no dynamic loader). See README, "Building".
STATIC := RUSTFLAGS="-C target-feature=+crt-static"
BIN    := target/$(TARGET)/release/openvpn-telemetry

.PHONY: build test install bench e2e dist dist-check lint

build:
	$(STATIC) $(CARGO) build --release --locked --target $(TARGET)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --locked

install: build
	$(BIN) install

# Speed as ratios against baselines in the same run (see benches/bench.rs):
# hook latency vs /bin/true and the seed's shell hook, agent drain and idle
# CPU vs the seed's shell agent. Measures the static binary that `build` made.
bench: build
	@command -v curl >/dev/null || echo "bench: curl not installed; the seed agent baseline is skipped (apt-get install -y curl)"
	OVT_BENCH_BIN=$(CURDIR)/$(BIN) OVT_BENCH_OUT=$(CURDIR)/target/bench.md $(CARGO) bench --locked --bench bench
