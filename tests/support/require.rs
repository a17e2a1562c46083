//! What an integration test needs from the machine, checked up front.
//!
//! A test that cannot run must never look like one that passed: cargo's
//! output capture hides a "skipped" line printed before returning, so a missing
//! package used to turn into a green "ok" in a few milliseconds. Here a
//! missing prerequisite FAILS the test with what is missing and how to get
//! it. `make test` (run as root) installs every package the tests need
//! first (`tests/setup.sh`), so on a Debian/Ubuntu machine nothing is
//! missing.
//!
//! The one way out is explicit: `OVT_TEST_ALLOW_MISSING=1 cargo test` (for a
//! developer without root, say). The test then prints `SKIPPED: …` and
//! returns, which the caller chose knowingly.
//!
//! Use: `if !require::root("mount a tmpfs") { return; }`.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// The opt-out variable.
pub const ALLOW: &str = "OVT_TEST_ALLOW_MISSING";

const HOW: &str = "`make test` as root installs every package the tests need (tests/setup.sh) and runs them all";

/// Fails the test (panics) with `what`, or with the opt-out set prints
/// SKIPPED and returns false.
pub fn missing(what: &str) -> bool {
    let allowed = std::env::var(ALLOW).is_ok_and(|v| !v.is_empty() && v != "0");
    if allowed {
        eprintln!("SKIPPED ({ALLOW} is set): {what}");
        return false;
    }
    panic!("cannot run this test: {what}.\n{HOW}; to skip such tests on purpose set {ALLOW}=1.");
}

/// True when running as root; else see [`missing`].
pub fn root(why: &str) -> bool {
    nix::unistd::geteuid().is_root() || missing(&format!("needs root ({why}); run it as root"))
}

/// True when `program` runs (`program arg` exits at all); else see
/// [`missing`], naming the Debian package that has it.
pub fn program(program: &str, arg: &str, package: &str) -> bool {
    let runs = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    runs || missing(&format!("`{program}` is not installed (apt-get install {package})"))
}

/// True when `path` exists; else see [`missing`], naming the package.
pub fn file(path: &str, package: &str) -> bool {
    std::path::Path::new(path).exists() || missing(&format!("{path} is missing (apt-get install {package})"))
}
