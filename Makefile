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
