//! Host names in TELEMETRY_URL (src/resolve.rs): the agent resolves them by
//! running `getent ahosts` as a child, never through glibc's NSS in its own
//! process (a static build aborts when NSS must dlopen a module). Runs the
//! real binary against the loopback receiver; `localhost` comes from
//! /etc/hosts, so no query leaves the machine.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use std::collections::HashSet;
use std::fs;
use std::process::Command;

use site::{BIN, Receiver, Site};

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_host_name_in_the_url_is_resolved_and_delivered() {
    let site = Site::new("by-name");
    let rx = Receiver::start(&site, &[]);
    site.config(&format!("TELEMETRY_URL=http://localhost:{}/api/v1/events\n", rx.port));
    site.hook_events(3);
    let written = site.spooled_ids();
    assert_eq!(written.len(), 3);
    let out = site.once();
    assert!(out.status.success(), "agent --once failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sorted(rx.ids()), sorted(written));
    assert!(site.spooled_ids().is_empty());
}

/// strace -f: nsswitch.conf and NSS modules may be opened only by the
/// getent child, never by the agent's own process (the bug this guards
/// against aborted a static build right there).
#[test]
fn only_the_getent_child_touches_nss() {
    require::program("strace", "-V", "strace");
    let site = Site::new("nss-child");
    let rx = Receiver::start(&site, &[]);
    site.config(&format!("TELEMETRY_URL=http://localhost:{}/api/v1/events\n", rx.port));
    site.hook_events(1);
    let trace = site.root.join("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,open,execve", "-o"])
        .arg(&trace)
        .arg(BIN)
        .args(["agent", "--once"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "agent --once failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rx.ids().len(), 1);

    let calls = fs::read_to_string(&trace).unwrap();
    let pid = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let getent: HashSet<String> =
        calls.lines().filter(|l| l.contains("execve(\"") && l.contains("/getent\"")).map(pid).collect();
    assert!(!getent.is_empty(), "the agent ran no getent: {calls}");
    let nss: Vec<&str> = calls.lines().filter(|l| l.contains("nsswitch.conf") || l.contains("libnss_")).collect();
    assert!(!nss.is_empty(), "getent read no nsswitch.conf? {calls}");
    let in_agent: Vec<&&str> = nss.iter().filter(|l| !getent.contains(&pid(l))).collect();
    assert!(in_agent.is_empty(), "NSS used inside the agent process: {in_agent:?}");
}
