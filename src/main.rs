//! `openvpn-telemetry`: one binary, many names (like uutils' multicall and
//! rustup's proxies). This file only decides *which* program runs: the
//! OpenVPN hooks by their installed names, everything else by subcommand.
//! Hooks are recognised before any argument parsing, so nothing a hook is
//! given can make it exit non-zero.

// No unsafe code (Cargo.toml, [lints]), but for the entry point in src/rt.rs
// (a hook skips std's runtime set-up; there it says what and why).
#![cfg_attr(not(test), no_main)]

mod accounts;
mod agent;
mod check;
mod cli;
mod config;
mod deliver;
mod event;
mod exit;
mod fsutil;
mod getent;
mod health;
mod hook;
mod install;
mod notify;
mod ovpn_conf;
mod privacy;
mod privilege;
mod real_address;
mod resolve;
mod roles;
#[cfg(not(test))]
mod rt;
mod sink;
mod sources;
mod spool;
mod state;
mod status;
#[cfg(test)]
mod testkit;
mod url;

use std::ffi::OsString;
use std::path::Path;

/// `main`, called by `rt::main` (the exported C entry point): the program
/// name first (how OpenVPN and systemd call it), then the subcommand, both
/// looked up in [`roles::ROLES`].
#[cfg_attr(test, allow(dead_code))]
fn real_main() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let program = args.first().map(|a| Path::new(a).file_name().unwrap_or_default().to_os_string());
    let (role, argument) = match program.as_ref().and_then(|p| roles::by_program(p.to_str()?)) {
        Some(role) => (Some(role), 1),
        None => (args.get(1).and_then(|a| roles::hook_by_subcommand(a.to_str()?)), 2),
    };
    let code = match role.map(|r| (r, hook::Hook::for_role(r, arg_string(args.get(argument))))) {
        Some((_, Some(hook))) => hook::run(hook),
        Some((_, None)) => {
            // The agent by its program name: `openvpn-telemetry-agent [--once]`.
            args.insert(1, "agent".into());
            cli::run(&args)
        }
        None => cli::run(&args),
    };
    code.clamp(0, 255)
}

/// A hook argument as text; non-UTF-8 is kept visible (lossily) so the
/// hook can say what was wrong with it instead of failing.
fn arg_string(a: Option<&OsString>) -> Option<String> {
    a.map(|a| a.to_string_lossy().into_owned())
}
