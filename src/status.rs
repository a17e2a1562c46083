//! `openvpn-telemetry status [--json | --check]`: what the spool holds and
//! how delivery is going, for an operator (text), a program (JSON) or a
//! monitoring system (`--check`: one line and a Monitoring Plugins exit
//! code, see `check`).
//!
//! Guarantees: read-only (it never rotates, adopts or deletes anything, so
//! it is safe next to a running agent); secrets are masked (`AUTH_HEADER`
//! shows only its header name, URLs lose user info and query string; key
//! files are shown by path, never by content); a reader that goes away
//! early (`status --json | head -1`) is a normal end, not an error.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::{Value, json};

use argh::{ArgsInfo, FromArgs};

use crate::config::{self, Settings};
use crate::exit::ExitCode;
use crate::fsutil::{self, Owners};
use crate::health;
use crate::spool::{self, Dropped};
use crate::state::AgentState;

/// show queue, backlog, last delivery and the settings in effect
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// print JSON instead of text
    #[argh(switch)]
    pub json: bool,
    /// one line and the Monitoring Plugins exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) with performance data, for Nagios, Icinga, Zabbix or Sensu
    #[argh(switch)]
    pub check: bool,
}

mod check;

/// Why `status` could not report.
#[derive(Debug)]
pub enum Error {
    Settings(config::ConfigError),
    Stdout(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Settings(e) => write!(f, "{e}"),
            Error::Stdout(e) => write!(f, "cannot write the status to stdout: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Settings(e) => Some(e),
            Error::Stdout(e) => Some(e),
        }
    }
}

pub fn main(args: &StatusArgs) -> Result<ExitCode, Error> {
    let path = config::config_path();
    if args.check {
        let v = check::verdict(Settings::load(&path).map_err(|e| e.to_string()));
        let mut out = io::stdout().lock();
        // A monitoring system that stopped reading still gets the code.
        let _ = writeln!(out, "{}", v.line).and_then(|()| out.flush());
        return Ok(ExitCode(check::exit_code(&v)));
    }
    let settings = Settings::load(&path).map_err(Error::Settings)?;
    let report = gather(&settings);
    let mut out = io::stdout().lock();
    let written = if args.json { writeln!(out, "{}", json_text(&report)) } else { write!(out, "{}", text(&report)) };
    // println! panics on a closed pipe; the reader having seen enough is
    // what `| head` means, so EPIPE ends quietly with status 0.
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Error::Stdout(e)),
    }
}

/// The report as pretty JSON with every control character escaped: serde
/// escapes C0 (below U+0020) but writes C1 (U+0080-U+009F) as is, and a
/// terminal takes some of those as commands. They can occur only inside
/// strings (file names, server answers), where `\u00XX` means the same.
fn json_text(report: &Value) -> String {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    if !text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return text;
    }
    text.chars()
        .map(|c| if ('\u{80}'..='\u{9f}').contains(&c) { format!("\\u{:04x}", c as u32) } else { c.to_string() })
        .collect()
}

/// Everything `status` reports, as JSON (the text form is made from it).
pub fn gather(s: &Settings) -> Value {
    let trusted = agent_owners(s);
    let (agent_state, state_error) = match AgentState::load(&s.spool.spool_dir, &trusted) {
        Ok(st) => (st, None),
        Err(e) => (AgentState::default(), Some(e.to_string())),
    };
    let budget = Budget::new();
    let queue_bytes = spool::Spool::new(&s.spool.spool_dir).queued_bytes();
    let chunks = health::list_chunks(&s.spool.spool_dir.join(spool::PENDING)).unwrap_or_default();
    let progress = agent_state.progress.clone();
    let offset_of = |name: &str| progress.as_ref().filter(|p| p.chunk == name).map_or(0, |p| p.offset);
    let mut events = 0u64;
    let mut bytes = 0u64;
    for (name, size) in &chunks {
        bytes += size;
        events +=
            count_lines(&s.spool.spool_dir.join(spool::PENDING).join(name), offset_of(name), &budget).unwrap_or(0);
    }
    // The oldest undelivered event is at the head of the oldest chunk, or
    // of queue.log when pending/ is empty.
    let queue = s.spool.spool_dir.join(spool::QUEUE);
    let oldest = match chunks.first() {
        Some((name, _)) => {
            health::first_event_time(&s.spool.spool_dir.join(spool::PENDING).join(name), offset_of(name))
        }
        None => health::first_event_time(&queue, 0),
    };
    let queue_events = count_lines(&queue, 0, &budget).unwrap_or(0)
        + count_lines(&s.spool.spool_dir.join(spool::AGENT_QUEUE), 0, &budget).unwrap_or(0);
    let now = crate::event::now();
    let (failed_files, failed_lines) = failed_counts(&s.spool.spool_dir.join(spool::FAILED), &budget);
    // Drops the hooks recorded that the agent has not collected yet.
    let hook_drops = fsutil::read_capped(&s.spool.spool_dir.join(spool::DROPPED), 4096, &Owners::anyone())
        .ok()
        .and_then(|t| Dropped::parse(&String::from_utf8_lossy(&t)))
        .unwrap_or_default();
    let mut dropped = agent_state.dropped;
    let mut unreported = agent_state.dropped_unreported;
    let extra = hook_drops;
    dropped.add(extra);
    unreported.add(extra);
    let running = agent_running(agent_state.pid);
    json!({
        "config": s.path,
        "spool_dir": s.spool.spool_dir,
        "delivery": delivery(s),
        "agent": {
            "pid": (agent_state.pid != 0).then_some(agent_state.pid),
            "running": running,
            "started": non_empty(&agent_state.started),
            "state_updated": non_empty(&agent_state.updated),
            "state_error": state_error,
        },
        "queue": { "bytes": queue_bytes, "events": queue_events },
        "counts_partial": budget.partial.get(),
        "pending": {
            "chunks": chunks.len(),
            "events": events,
            "bytes": bytes,
            "oldest_event_time": oldest.map(crate::event::rfc3339),
            "oldest_event_age_seconds": oldest.map(|t| (now - t).whole_seconds().max(0)),
        },
        "failed": { "files": failed_files, "lines": failed_lines },
        "last_success": agent_state.last_success,
        "last_error": agent_state.last_error,
        "delivered_events": agent_state.delivered_events,
        "failed_events": agent_state.failed_events,
        "posts": agent_state.posts,
        "consecutive_failures": agent_state.consecutive_failures,
        "dropped": {
            "count": dropped.count,
            "first_seq": dropped.first_seq,
            "last_seq": dropped.last_seq,
            "unreported": unreported.count,
        },
        "unreadable_rows": crate::sources::unreadable_report(&s.spool.spool_dir, &trusted),
        "pki": crate::sources::pki_report(
            &s.spool.spool_dir,
            now.unix_timestamp(),
            s.sources.expiry_warn_days.first().copied().unwrap_or(30),
            &trusted,
        ),
        "personal_fields": s.privacy.report(),
        "settings": settings_masked(s),
    })
}

/// Who may own the state files the agent writes into its spool (its
/// state, `pki.state`, `sessions.state`, `certs.state`): root, the spool
/// directory's owner and the shipped unit's user (the agent runs as one of
/// them), never the hooks' user. Not anyone: the spool is writable by the
/// hooks' group, whose user could plant a state that says all is well (or
/// that all is lost). Not the caller either: a check run as the hooks'
/// user would believe its own files.
pub(crate) fn agent_owners(s: &Settings) -> Owners {
    use std::os::unix::fs::MetadataExt;
    let mut uids = vec![0];
    uids.extend(std::fs::symlink_metadata(&s.spool.spool_dir).map(|m| m.uid()));
    uids.extend(crate::accounts::Accounts::for_root(std::path::Path::new("/")).uid(crate::accounts::AGENT_USER));
    // A legacy spool may belong to the hooks' user: never its files.
    let hooks = s.hooks_uid();
    uids.retain(|&u| u == 0 || Some(u) != hooks);
    Owners::Only(uids)
}

/// Whether the agent whose pid the state names is alive (a process we may
/// not signal is alive too).
fn agent_running(pid: u32) -> bool {
    pid != 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// What leaves the host how, from `personal_fields`.
fn personal_text(p: &Value) -> String {
    let list = |k: &str| p[k].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    let mut parts = Vec::new();
    for (key, label) in [
        ("pseudonymized", "pseudonymized"),
        ("dropped", "dropped"),
        ("network_part", "network part only"),
        ("in_clear", "in clear"),
    ] {
        if let Some(names) = list(key).filter(|n| !n.is_empty()) {
            parts.push(format!("{label}: {names}"));
        }
    }
    if let Some(prefix) = p["real_ip_prefix"].as_str() {
        parts.push(format!("REAL_IP_PREFIX={prefix}"));
    }
    parts.join("; ")
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn delivery(s: &Settings) -> String {
    match s.delivery.telemetry_url.as_deref() {
        None => "no TELEMETRY_URL: holding events".into(),
        Some(url) => crate::url::mask_url(url),
    }
}

/// Every setting in effect, in the table's order (config::SETTINGS),
/// secrets masked: a URL keeps scheme, host and path but loses user info
/// and query, a header keeps its name, any other secret is `***`. Numbers
/// and switches are JSON numbers and booleans; an empty value is null but
/// for `SERVER_ID`, shown as the host name it stands for.
pub fn settings_masked(s: &Settings) -> Value {
    use crate::config::table::Kind;
    let mut out = serde_json::Map::new();
    for row in config::SETTINGS {
        let v = (row.get)(s);
        let shown = match row.kind {
            _ if v.is_empty() && row.key == "SERVER_ID" => json!(format!("{} (host name)", config::host_name())),
            _ if v.is_empty() => Value::Null,
            Kind::Url if row.secret => json!(crate::url::mask_url(&v)),
            Kind::Header if row.secret => json!(format!("{}: ***", v.split(':').next().unwrap_or("").trim())),
            _ if row.secret => json!("***"),
            Kind::Switch => json!(v == "1"),
            k if k.is_number() => v.parse::<u64>().map_or(json!(v), |n| json!(n)),
            _ => json!(v),
        };
        out.insert(row.key.to_string(), shown);
    }
    Value::Object(out)
}

/// The most `status` reads, over all files it counts lines in: the hooks'
/// user can make `queue.log` or a chunk as big (or as sparse) as it likes,
/// and `status` must still answer at once.
const READ_BUDGET: u64 = 64 * 1024 * 1024;

/// What is left of [`READ_BUDGET`], and whether some file was not counted.
struct Budget {
    left: std::cell::Cell<u64>,
    partial: std::cell::Cell<bool>,
}

impl Budget {
    fn new() -> Budget {
        Budget { left: std::cell::Cell::new(READ_BUDGET), partial: std::cell::Cell::new(false) }
    }
}

/// Lines from `offset` on (a last line without `\n` counts). A file that
/// is sparse (holes: not something a writer of lines made) or larger than
/// what is left of `budget` is not read, and the counts say they are
/// partial.
fn count_lines(path: &Path, offset: u64, budget: &Budget) -> io::Result<u64> {
    let mut f = fsutil::open_read(path, &Owners::anyone())?;
    let m = f.metadata()?;
    let size = m.len().saturating_sub(offset);
    if crate::spool::is_sparse(&m) || size > budget.left.get() {
        budget.partial.set(true);
        return Ok(0);
    }
    budget.left.set(budget.left.get() - size);
    f.seek(SeekFrom::Start(offset))?;
    let mut f = f.take(size);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(lines + u64::from(last != b'\n'));
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
}

fn failed_counts(dir: &Path, budget: &Budget) -> (u64, u64) {
    let (mut files, mut lines) = (0, 0);
    if let Ok(rd) = health::read_dir_here(dir) {
        for e in rd.flatten() {
            if e.path().symlink_metadata().is_ok_and(|m| m.is_file()) {
                files += 1;
                lines += count_lines(&e.path(), 0, budget).unwrap_or(0);
            }
        }
    }
    (files, lines)
}

fn text(r: &Value) -> String {
    // Strings may come from the server (errors) or the hooks' user (file
    // names): escaped before they reach a terminal.
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => fsutil::printable(s).into_owned(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<22} {v}\n"));
    line("config", s(&r["config"]));
    line("spool", s(&r["spool_dir"]));
    line("delivery", s(&r["delivery"]));
    let agent = &r["agent"];
    let running = if agent["running"] == true { "running" } else { "not running" };
    line("agent", format!("{running} (pid {}, state updated {})", s(&agent["pid"]), s(&agent["state_updated"])));
    if !agent["state_error"].is_null() {
        line("agent state", s(&agent["state_error"]));
    }
    line("queue.log", format!("{} events, {} bytes", r["queue"]["events"], r["queue"]["bytes"]));
    let p = &r["pending"];
    line("pending", format!("{} chunks, {} events, {} bytes", p["chunks"], p["events"], p["bytes"]));
    if r["counts_partial"] == Value::Bool(true) {
        line("counts", "partial: sparse files or files over the read budget were not counted".into());
    }
    if !p["oldest_event_time"].is_null() {
        line("oldest undelivered", format!("{} ({} s ago)", s(&p["oldest_event_time"]), p["oldest_event_age_seconds"]));
    }
    line("failed/", format!("{} files, {} lines", r["failed"]["files"], r["failed"]["lines"]));
    let ls = &r["last_success"];
    line(
        "last success",
        if ls.is_null() { "-".into() } else { format!("{} ({} events)", s(&ls["time"]), ls["events"]) },
    );
    let le = &r["last_error"];
    line(
        "last error",
        if le.is_null() {
            "-".into()
        } else {
            let next =
                if le["next_retry"].is_null() { String::new() } else { format!("; next try {}", s(&le["next_retry"])) };
            format!("{}: {}{next}", s(&le["time"]), s(&le["message"]))
        },
    );
    line("delivered events", s(&r["delivered_events"]));
    let p = &r["posts"];
    line(
        "batches sent",
        format!(
            "{} 2xx, {} retried, {} misconfigured, {} too large, {} set aside; {} failed in a row",
            p["ok"], p["retry"], p["misconfigured"], p["too_large"], p["set_aside"], r["consecutive_failures"]
        ),
    );
    let d = &r["dropped"];
    line(
        "dropped events",
        format!("{} (seq {}..{}; {} not yet reported)", d["count"], d["first_seq"], d["last_seq"], d["unreported"]),
    );
    line("unreadable rows", crate::sources::unreadable_text(&r["unreadable_rows"]));
    for (k, v) in crate::sources::pki_report_lines(&r["pki"]) {
        line(&fsutil::printable(&k), fsutil::printable(&v).into_owned());
    }
    line("personal fields", personal_text(&r["personal_fields"]));
    out.push_str("settings:\n");
    if let Some(map) = r["settings"].as_object() {
        for (k, v) in map {
            out.push_str(&format!("  {k}={}\n", s(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_escapes_c1_characters_and_stays_the_same_json() {
        let v = json!({"file": "a\u{9b}31mb\u{85}", "name": "é\u{1b}"});
        let t = json_text(&v);
        assert!(!t.contains('\u{9b}') && !t.contains('\u{85}'), "{t}");
        assert!(t.contains("\\u009b") && t.contains("\\u001b") && t.contains('é'), "{t}");
        assert_eq!(serde_json::from_str::<Value>(&t).ok(), Some(v));
    }

    /// Every setting of the table is shown, and no secret in full.
    #[test]
    fn settings_lists_every_key_and_masks_secrets() {
        let text = "TELEMETRY_URL=https://user:pw-SECRET@t.example/api?key=SECRET\n\
                    AUTH_HEADER=\"Authorization: Bearer SECRET\"\nMTLS_ENABLED=1\nCLIENT_CERT=/c.pem\n\
                    CLIENT_KEY=/k.pem\nMAX_SPOOL_BYTES=4096\n";
        let s = Settings::from_text(Path::new("/x/agent.env"), text).unwrap();
        let shown = settings_masked(&s);
        let keys: Vec<&str> = shown.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, config::SETTINGS.iter().map(|r| r.key).collect::<Vec<_>>());
        let all = shown.to_string();
        assert!(!all.contains("SECRET"), "{all}");
        assert_eq!(shown["TELEMETRY_URL"], "https://***@t.example/api?***");
        assert_eq!(shown["AUTH_HEADER"], "Authorization: ***");
        assert_eq!((shown["MTLS_ENABLED"].clone(), shown["MAX_SPOOL_BYTES"].clone()), (json!(true), json!(4096)));
        assert_eq!((shown["CLIENT_KEY"].clone(), shown["CA_CERT"].clone()), (json!("/k.pem"), Value::Null));
        assert_eq!(shown["TELEMETRY_FORMAT"], "json");
    }

    #[test]
    fn personal_fields_say_what_leaves_how() {
        let text = "PSEUDONYMIZE=common_name,username\nDROP_FIELDS=client_platform\nREAL_IP_PREFIX=24,48\n";
        let s = Settings::from_text(Path::new("/x/agent.env"), text).unwrap();
        let r = s.privacy.report();
        assert_eq!(r["pseudonymized"], json!(["common_name", "username", "subject", "session_id"]));
        assert_eq!(r["dropped"], json!(["client_platform"]));
        assert_eq!(r["network_part"], json!(["real_ip"]));
        let line = personal_text(&r);
        assert!(line.starts_with("pseudonymized: common_name, username, subject, session_id; dropped: client_platform; network part only: real_ip; in clear: real_port,"), "{line}");
        assert!(line.ends_with("REAL_IP_PREFIX=24,48"), "{line}");
        let none = Settings::from_text(Path::new("/x/agent.env"), "").unwrap();
        assert!(personal_text(&none.privacy.report()).starts_with("in clear: common_name, username,"));
    }
}
