//! What an integration test needs from the machine, checked up front.
//!
//! One policy for a missing prerequisite: the test FAILS naming what is
//! missing and how to get it; nothing prints "skipped" and passes (cargo's
//! output capture would hide such a line behind a green "ok").
//!
//! Tests that need root are marked `#[ignore = "needs root: make test runs
//! it"]`, so a plain `cargo test` as a normal user runs everything else and
//! is green; `make test` runs as root after `tests/setup.sh` installed every
//! package, with `--include-ignored`. Such a test still calls [`root`] first,
//! so running it without root fails saying so rather than half-running.
//!
//! Use: `require::root("mount a tmpfs");` at the top of the test.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// The ignore reason every root-only test carries (kept in step by hand:
/// `#[ignore]` takes a literal).
pub const NEEDS_ROOT: &str = "needs root: make test runs it";

const HOW: &str = "`make test` as root installs every package the tests need (tests/setup.sh) and runs them all";

/// Fails the test (panics) naming `what`.
pub fn missing(what: &str) -> ! {
    panic!("cannot run this test: {what}.\n{HOW}.");
}

/// Returns when running as root; else fails naming `why`.
pub fn root(why: &str) {
    if !nix::unistd::geteuid().is_root() {
        missing(&format!("needs root ({why}); run it as root"))
    }
}

/// Returns when `program` runs (`program arg` exits at all); else fails
/// naming the Debian package that has it.
pub fn program(program: &str, arg: &str, package: &str) {
    let runs = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !runs {
        missing(&format!("`{program}` is not installed (apt-get install {package})"))
    }
}

/// Returns when `path` exists; else fails naming the package.
pub fn file(path: &str, package: &str) {
    if !std::path::Path::new(path).exists() {
        missing(&format!("{path} is missing (apt-get install {package})"))
    }
}
