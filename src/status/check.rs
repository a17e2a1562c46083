//! `status --check`: gathers the [`Facts`] the verdict is made of
//! ([`crate::health::check`]) and prints its one line.
//!
//! Guarantees: never waits: no lock is taken (not `queue.lock`, not
//! `agent.lock`), every file is opened non-blocking and without following
//! links, and only small files and one line of one chunk are read; a
//! settings file that does not load, or a spool this user may not read,
//! is UNKNOWN with the reason, never a hang or a panic.

use std::io;
use std::path::Path;

use crate::config::Settings;
use crate::fsutil::{self, Owners};
use crate::health::SpoolView;
use crate::health::check::{self, Facts, Verdict};
use crate::spool::{self, Dropped};
use crate::state::AgentState;

/// OpenVPN rewrites its status file every 60 s unless its `status`
/// line says otherwise (the stock unit's `--status` does not).
const STATUS_INTERVAL: i64 = 60;
/// A status file is stale after this many of its intervals.
const STALE_INTERVALS: i64 = 3;
/// The agent rewrites its metrics file at least once a minute; a file
/// older than this (or none, this long after the agent started) means it
/// cannot (the directory not writable for it, most likely: see its log).
const METRICS_STALE_SECONDS: i64 = 300;

/// The verdict for the settings in `settings` (or the error loading them).
pub fn verdict(settings: Result<Settings, String>) -> Verdict {
    match settings {
        Ok(s) => check::evaluate(&facts(&s)),
        Err(e) => check::evaluate(&Facts { cannot_tell: Some(e), agent_running: true, ..Facts::default() }),
    }
}

/// The unknown verdict's exit code is 3 even when the facts are partial.
pub fn exit_code(v: &Verdict) -> u8 {
    v.code as u8
}

fn facts(s: &Settings) -> Facts {
    let dir = &s.spool.spool_dir;
    let now = crate::event::now().unix_timestamp();
    let mut f = Facts {
        warn_seconds: s.health.stall_warn_seconds,
        crit_seconds: s.health.stall_crit_seconds,
        ..Facts::default()
    };
    // The agent's own files only (root's or the agent's): the hooks'
    // group may create names in the spool. `dropped` is the hooks' to write.
    let trusted = super::agent_owners(s);
    let state = match AgentState::load(dir, &trusted) {
        Ok(st) => {
            f.agent_running = super::agent_running(st.pid);
            st
        }
        Err(e) => {
            // Whether the agent runs is not known either: UNKNOWN says
            // why, rather than a CRITICAL "not running" that may be false.
            f.cannot_tell = Some(format!("agent state: {e} (run as root or the agent's user)"));
            f.agent_running = true;
            AgentState::default()
        }
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            f.spool_refused = Some(format!("{} does not exist (run 'openvpn-telemetry install')", dir.display()));
        }
        Ok(m) if !m.is_dir() => f.spool_refused = Some(format!("{} is not a directory", dir.display())),
        _ => {}
    }
    if f.spool_refused.is_none() {
        match SpoolView::gather(dir, state.progress.as_ref()) {
            Ok(view) => {
                f.queue_bytes = view.queue_bytes;
                f.pending_chunks = view.pending_chunks;
                f.pending_bytes = view.pending_bytes;
                f.failed_files = view.failed_files;
                f.oldest_age = view.oldest_pending.map(|t| now - t.unix_timestamp());
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                f.cannot_tell = Some(format!("{}: {e} (run as root or the agent's user)", dir.display()));
            }
            Err(e) => f.spool_refused = Some(format!("{}: {e}", dir.join(spool::PENDING).display())),
        }
    }
    // Drops the hooks and the agent counted that the agent has not taken
    // into its state yet are not reported either.
    let counted = |name: &str| {
        fsutil::read_capped(&dir.join(name), 4096, &Owners::anyone())
            .ok()
            .and_then(|t| Dropped::parse(&String::from_utf8_lossy(&t)))
            .unwrap_or_default()
    };
    let mut unreported = state.dropped_unreported;
    let mut total = state.dropped;
    for extra in [counted(spool::DROPPED), counted(spool::AGENT_DROPPED)] {
        unreported.add(extra);
        total.add(extra);
    }
    f.unreported_drops = unreported.count;
    f.dropped_total = total.count;
    f.consecutive_failures = state.consecutive_failures;
    f.pki = pki_due(s, now, &trusted, &mut f.cannot_tell);
    if let Some(file) = &s.health.metrics_textfile
        && f.agent_running
        && f.cannot_tell.is_none()
    {
        f.metrics_stale = metrics_stale(file, &state, now);
    }
    if s.sources.session_update_interval_seconds > 0 {
        let slack = STATUS_INTERVAL * STALE_INTERVALS + s.sources.session_update_interval_seconds as i64;
        let configured = crate::sources::configured_status_paths(&crate::sources::SourceSettings::new(s));
        f.stale_status = stale_status_files(dir, now, slack, &trusted, &mut f.cannot_tell)
            .into_iter()
            .filter(|(path, _)| configured.as_ref().is_none_or(|c| c.contains(path)))
            .collect();
    }
    f
}

/// `METRICS_TEXTFILE` missing or old while an agent that started more than
/// [`METRICS_STALE_SECONDS`] ago runs.
fn metrics_stale(file: &Path, state: &AgentState, now: i64) -> Option<(String, Option<i64>)> {
    use time::format_description::well_known::Rfc3339;
    let started = time::OffsetDateTime::parse(&state.started, &Rfc3339).ok()?.unix_timestamp();
    if now - started <= METRICS_STALE_SECONDS {
        return None;
    }
    let shown = file.display().to_string();
    match std::fs::metadata(file) {
        Err(_) => Some((shown, None)),
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            let age = now - m.mtime();
            (age > METRICS_STALE_SECONDS).then_some((shown, Some(age)))
        }
    }
}

/// The CAs, server certificates and CRLs the agent last read (its
/// `pki.state`) that are within the first (largest) `EXPIRY_WARN_DAYS`
/// threshold, or expired.
fn pki_due(s: &Settings, now: i64, trusted: &Owners, cannot_tell: &mut Option<String>) -> Vec<(String, i64)> {
    let first = s.sources.expiry_warn_days.iter().max().copied().unwrap_or(30);
    let report = crate::sources::pki_report(&s.spool.spool_dir, now, first, trusted);
    if let Some(why) = report["error"].as_str() {
        cannot_tell.get_or_insert_with(|| format!("PKI state: {why}"));
    }
    let mut due = Vec::new();
    for (instance, items) in report["instances"].as_object().into_iter().flatten() {
        for what in ["ca", "server", "crl"] {
            // From the end itself, not the rounded days: under a day
            // left is a warning, not "expired".
            if let Some(expires) = items[what]["expires"].as_i64()
                && expires - now <= i64::from(first) * 86_400
            {
                let name = match what {
                    "ca" => "CA",
                    "server" => "server certificate",
                    _ => "CRL",
                };
                due.push((format!("PKI {instance}: {name}"), expires - now));
            }
        }
    }
    due
}

/// Status files whose own timestamp, as the agent's last update round
/// read it (`sessions.state`), is older than `slack` seconds. The caller
/// keeps those still configured (a removed one would warn for ever).
fn stale_status_files(
    dir: &Path,
    now: i64,
    slack: i64,
    trusted: &Owners,
    cannot_tell: &mut Option<String>,
) -> Vec<(String, i64)> {
    let path = dir.join(crate::sources::SESSIONS_STATE);
    let v = match fsutil::load_json::<serde_json::Value>(&path, crate::sources::READ_CAP, trusted) {
        Ok(Some(v)) => v,
        Ok(None) => return Vec::new(),
        Err(e) => {
            cannot_tell.get_or_insert_with(|| format!("sessions state: {e}"));
            return Vec::new();
        }
    };
    let Some(map) = v["last_update"].as_object() else { return Vec::new() };
    map.iter()
        .filter_map(|(file, t)| t.as_i64().map(|t| (file.clone(), now - t)))
        .filter(|(_, age)| *age > slack)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::check::Code;

    /// `status`'s PKI line says "expired" only once the end has passed:
    /// an hour left is 0 whole days, not expired.
    #[test]
    fn the_pki_report_says_expired_only_after_the_end() {
        let site = crate::testkit::Scratch::new("status-check", "pki-hours");
        let now = 1_796_159_242;
        let book = serde_json::json!({"seen": [
            {"what": "ca", "label": "/p/ca.crt", "instance": "server", "expires": now + 3600},
            {"what": "crl", "label": "/p/crl.pem", "instance": "server", "expires": now - 1},
        ]});
        std::fs::write(site.root.join("pki.state"), book.to_string()).unwrap();
        let report = crate::sources::pki_report(&site.root, now, 30, &Owners::me());
        assert_eq!(report["instances"]["server"]["ca"]["expires"], now + 3600);
        let lines = crate::sources::pki_report_lines(&report);
        assert_eq!(lines[0].1, "CA 0 d, server cert -, CRL expired", "{lines:?}");
    }

    #[test]
    fn settings_that_do_not_load_are_unknown() {
        let v = verdict(Err("agent.env:3: bad".into()));
        assert_eq!(v.code, Code::Unknown);
        assert_eq!(exit_code(&v), 3);
        assert!(v.line.contains("agent.env:3: bad"), "{}", v.line);
    }
}
