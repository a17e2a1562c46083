//! `openvpn-telemetry`: one binary, many names (like uutils' multicall and
//! rustup's proxies). This file only decides *which* program runs: the
//! OpenVPN hooks by their installed names, everything else by subcommand.
//! Hooks are recognised before any argument parsing, so nothing a hook is
//! given can make it exit non-zero.

// No unsafe code, but for the entry point in src/rt.rs (issue 12: a hook
// skips std's runtime set-up; there it says what and why).
#![deny(unsafe_code)]
#![cfg_attr(not(test), no_main)]

mod agent;
mod check;
mod cli;
mod config;
mod deliver;
mod event;
mod fsutil;
mod hook;
mod http;
mod install;
mod notify;
mod otlp;
mod ovpn_conf;
mod privilege;
mod resolve;
#[cfg(not(test))]
mod rt;
mod sources;
mod spool;
mod state;
mod status;

use std::ffi::OsString;
use std::path::Path;

use hook::Hook;

/// `main`, called by `rt::main` (the exported C entry point).
#[cfg_attr(test, allow(dead_code))]
fn real_main() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let arg0 = args.first().map(|a| Path::new(a).file_name().unwrap_or_default().to_os_string()).unwrap_or_default();
    let code = match arg0.to_str() {
        Some("telemetry-connect.sh") => hook::run(Hook::Connect),
        Some("telemetry-disconnect.sh") => hook::run(Hook::Disconnect),
        Some("openvpn-telemetry-write-event") => hook::run(Hook::WriteEvent(arg_string(args.get(1)))),
        Some("openvpn-telemetry-agent") => {
            args.insert(1, "agent".into());
            cli::run(&args)
        }
        _ => match args.get(1).and_then(|a| a.to_str()) {
            Some("connect") => hook::run(Hook::Connect),
            Some("disconnect") => hook::run(Hook::Disconnect),
            Some("write-event") => hook::run(Hook::WriteEvent(arg_string(args.get(2)))),
            _ => cli::run(&args),
        },
    };
    code.clamp(0, 255)
}

/// A hook argument as text; non-UTF-8 is kept visible (lossily) so the
/// hook can say what was wrong with it instead of failing.
fn arg_string(a: Option<&OsString>) -> Option<String> {
    a.map(|a| a.to_string_lossy().into_owned())
}
