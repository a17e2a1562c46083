//! `check`'s lines about the event sources: can the agent read each file
//! it would read (STATUS_LOG, each OPENVPN_SERVER_CONF and its status
//! file, EASYRSA_INDEX), and is its read capability confined?
//!
//! Guarantees:
//! - the answer is the kernel's: a probe (`check --probe read[cap]:...`)
//!   becomes the agent's user with exactly the capability the installed
//!   unit grants (permitted, not effective) and opens each file through the
//!   agent's own code ([`crate::sources::probe`]); a FAIL names the path
//!   component that blocks it;
//! - "confined" means the unit lets the agent call `capset` and a running
//!   agent has the capability effective on none of its threads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{AGENT_USER, Error, REINSTALL, Report, installed_unit};
use crate::accounts::Accounts;
use crate::config::Settings;
use crate::exit::ExitCode;
use crate::install::{self, Layout, unit};

/// "agent can read ...": each source file the agent would read (STATUS_LOG,
/// or each OPENVPN_SERVER_CONF and the status file it names or its stock
/// unit passes; EASYRSA_INDEX), opened for real by a probe running as the
/// agent's user with exactly the privileges the installed unit gives it
/// (`CAP_DAC_READ_SEARCH` permitted, raised the way the agent raises it),
/// through the agent's own walk: OK, or the path component that blocks it.
/// Then whether that capability is confined (see [`check_confinement`]).
pub(super) fn check_sources(r: &mut Report, layout: &Layout, s: &Settings, accounts: &Accounts) {
    let mut named: Vec<(String, PathBuf)> = Vec::new();
    if let Some(p) = &s.sources.status_log {
        named.push(("STATUS_LOG".into(), p.clone()));
    }
    for c in &s.installer.openvpn_server_conf {
        named.push(("OPENVPN_SERVER_CONF".into(), c.clone()));
        if s.sources.status_log.is_none()
            && let Ok(text) = fs::read_to_string(layout.at(c))
            && let Some(status) = crate::sources::conf_status_file(c, &text)
        {
            named.push((format!("the status file of {}", c.display()), status));
        }
    }
    if let Some(p) = &s.sources.easyrsa_index {
        named.push(("EASYRSA_INDEX".into(), p.clone()));
    }
    let unit_text = installed_unit(layout);
    let grant = format!("AmbientCapabilities={}", unit::READ_CAPABILITY);
    let grants = unit_text.lines().any(|l| l == grant);
    let mut files = Vec::new();
    for (key, path) in named {
        let at = layout.at(&path);
        if fs::symlink_metadata(&at).is_ok() {
            files.push((key, at));
        } else {
            r.warn(format!("{key} {} does not exist (yet); the agent reads it once it does", at.display()));
        }
    }
    // A unit that keeps the agent from confining the capability makes it
    // start again without: probe as it will run then.
    let grants = grants && check_confinement(r, layout, &unit_text);
    if files.is_empty() {
        return;
    }
    let (Some(uid), Some(gid)) = (accounts.uid(AGENT_USER), accounts.primary_gid(AGENT_USER)) else {
        return r.fail(format!("agent cannot read its sources: user {AGENT_USER} does not exist"), REINSTALL);
    };
    if !nix::unistd::geteuid().is_root() {
        return r.warn("not root: cannot test whether the agent can read its sources (run check with sudo)");
    }
    let group = s.installer.openvpn_script_group.clone().unwrap_or_else(|| accounts.default_script_group());
    let groups = accounts.gid(&group).map_or(gid.to_string(), |sgid| format!("{gid},{sgid}"));
    let paths = files.iter().map(|(_, p)| p.display().to_string()).collect::<Vec<_>>().join("\n");
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return r.fail(format!("cannot find this program to run the probe: {e}"), "run check by its path"),
    };
    let role = if grants { "readcap" } else { "read" };
    let mut cmd = Command::new(exe);
    cmd.args(["check", "--probe", &format!("{role}:{uid}:{gid}:{groups}:{paths}")]);
    if layout.staged() {
        cmd.arg("--root").arg(&layout.root);
    }
    let out = match cmd.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return r.fail(
                format!("cannot probe the sources as {AGENT_USER}: {}", String::from_utf8_lossy(&out.stderr).trim()),
                "run check as root",
            );
        }
        Err(e) => return r.fail(format!("cannot run the probe: {e}"), "run check by its path"),
    };
    let how = if grants {
        format!("as {AGENT_USER} with its unit's {}, read-only", unit::READ_CAPABILITY)
    } else {
        format!("as {AGENT_USER}, without capabilities")
    };
    let mut answers = out.lines();
    for (key, path) in &files {
        let answer = answers.next().unwrap_or("ERR the probe said nothing about it");
        let Some(why) = answer.strip_prefix("ERR ") else {
            r.ok(format!("agent can read {key} {} ({how})", path.display()));
            continue;
        };
        // The walk's message begins with the path, already on the line.
        let why = why.strip_prefix(&format!("{}: ", path.display())).unwrap_or(why);
        let fix = if why.ends_with("Permission denied") && !grants {
            format!("{REINSTALL} (it grants the agent {} when sources are set)", unit::READ_CAPABILITY)
        } else if why.contains("directory") || why.contains("symlink") {
            "make every directory above it root's and writable by no one else (or move the file), or correct the \
             path in .env"
                .to_string()
        } else {
            "correct the file's owner or mode, or the path in .env".to_string()
        };
        r.fail(format!("agent cannot read {key} {} ({how}): {why}", path.display()), fix);
    }
}

/// Whether the read capability is confined: the unit must let the agent
/// call `capset` (or the agent gives the capability up and reads only what
/// its own rights allow; false then), and a running agent must hold it
/// effective on none of its threads.
fn check_confinement(r: &mut Report, layout: &Layout, unit_text: &str) -> bool {
    let filters: Vec<&str> = unit_text.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")).collect();
    let denied = filters.iter().any(|f| f.split_whitespace().any(|w| w == "~@privileged" || w == "~capset"));
    let allowed = filters.iter().rposition(|f| f.split_whitespace().any(|w| w == "capset"));
    let last_deny = filters.iter().rposition(|f| f.split_whitespace().any(|w| w == "~@privileged" || w == "~capset"));
    if denied && allowed.zip(last_deny).is_none_or(|(a, d)| a < d) {
        r.fail(
            format!(
                "the agent's unit grants {} but its SystemCallFilter denies capset: the agent cannot confine it, \
                 so it gives it up and reads only what its own user may",
                unit::READ_CAPABILITY
            ),
            REINSTALL,
        );
        return false;
    }
    if !layout.systemd_running() {
        return true;
    }
    let pid = Command::new("systemctl")
        .args(["show", "-p", "MainPID", "--value", unit::UNIT_NAME])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok())
        .filter(|p| *p != 0);
    let Some(pid) = pid else { return true };
    // The sources' thread holds it for the instant of a read: look again
    // before calling it a failure.
    let mut last = (0, 0);
    for _ in 0..5 {
        last = effective_threads(pid);
        if last.0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match last {
        (_, 0) => r.warn(format!("cannot read the threads of the agent (PID {pid}) in /proc")),
        (0, n) => r.ok(format!(
            "{} is confined: effective on 0 of the agent's {n} threads (PID {pid}), raised only to read a source",
            unit::READ_CAPABILITY
        )),
        (k, n) => r.fail(
            format!("{} is effective on {k} of the agent's {n} threads (PID {pid})", unit::READ_CAPABILITY),
            format!("{REINSTALL}, then systemctl restart {}", unit::UNIT_NAME),
        ),
    }
    true
}

/// (threads with CAP_DAC_READ_SEARCH effective, threads) of process `pid`.
fn effective_threads(pid: u32) -> (usize, usize) {
    let bit = crate::privilege::READ.bitmask();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return (0, 0) };
    let (mut on, mut all) = (0, 0);
    for task in tasks.flatten() {
        let Ok(text) = fs::read_to_string(task.path().join("status")) else { continue };
        let Some(eff) = text.lines().find_map(|l| l.strip_prefix("CapEff:")) else { continue };
        all += 1;
        if u64::from_str_radix(eff.trim(), 16).map_or(true, |v| v & bit != 0) {
            on += 1;
        }
    }
    (on, all)
}

/// The child side of [`check_sources`], already running as the agent's
/// user (with the capability permitted when the unit grants it): opens and reads
/// each file (one per line of `files`) the way the agent does, and prints
/// `OK` or `ERR why` for each, in order.
pub(super) fn probe_read(layout: &Layout, files: &str) -> Result<ExitCode, Error> {
    let hooks = Settings::load(&layout.at(install::AGENT_ENV)).ok().and_then(|s| s.hooks_uid());
    let owners = crate::fsutil::Owners::Not(hooks.into_iter().collect());
    for path in files.lines() {
        match crate::sources::probe(Path::new(path), &owners) {
            Ok(()) => println!("OK"),
            Err(e) => println!("ERR {}", e.to_string().replace('\n', " ")),
        }
    }
    Ok(ExitCode::SUCCESS)
}
