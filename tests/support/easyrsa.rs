//! Real Easy-RSA 3, as the tests that read an `index.txt` run it: batch
//! mode, the PKI in `DIR/pki`, EC keys (fast; the agent reads only the
//! index, whatever the algorithm). One runner for every test file.

use std::path::Path;
use std::process::Command;

/// Debian's and Ubuntu's `easy-rsa` package puts it here.
pub const EASYRSA: &str = "/usr/share/easy-rsa/easyrsa";

/// Runs `easyrsa ARGS` with the PKI in `dir/pki`; panics with its stderr
/// when it fails.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    let out = Command::new(EASYRSA)
        .args(args)
        .current_dir(dir)
        .env("EASYRSA_BATCH", "1")
        .env("EASYRSA_PKI", dir.join("pki"))
        .env("EASYRSA_ALGO", "ec")
        .env("EASYRSA_CURVE", "prime256v1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "easyrsa {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
