//! Event sources the agent reads besides the hooks: OpenVPN's
//! status file (`SESSION_UPDATE`, `SESSION_SNAPSHOT`) and Easy-RSA's
//! `index.txt` (`CERT_*`), and the PKI's certificate and CRL files
//! (`CERT_EXPIRING`, `CRL_EXPIRING`, `CRL_EXPIRED`).
//!
//! Guarantees:
//! - events go through [`Spool::append`], the hooks' code path, so they get
//!   `seq` and the same delivery, bounds and drop accounting;
//! - a file that is missing, huge (over [`READ_CAP`]), mid-rewrite or
//!   garbage costs a skipped round, never a panic or a wrong event; a round
//!   is retried after [`RETRY`]. Each problem is logged once as a warning
//!   when it starts (again at debug level while it lasts) and once when it
//!   is over, so a permanent one does not flood the journal;
//! - state (`sessions.state`, `certs.state` in the spool) is written with
//!   tmp + fsync + rename, and only after the events it covers were stored;
//! - [`run`] runs on a thread of its own and notices `stop` within 250 ms.

mod certs;
mod conf;
mod files;
mod pki;
mod sessions;
mod status_file;
mod status_round;
mod views;
mod x509;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Settings, SourcesSection, SpoolSection};
use crate::event::{self, Event};
use crate::health::Board;
use crate::spool::{Spool, SpoolError, Written};
pub use files::probe;
use files::{Got, load_state, read_stable, read_stable_capped, read_stable_head, save_state};

/// Largest status file or index read; beyond it the round is skipped so a
/// runaway file cannot exhaust the agent's memory.
pub const READ_CAP: u64 = 64 * 1024 * 1024;
/// How soon a skipped or failed round is tried again.
pub const RETRY: Duration = Duration::from_secs(10);
/// How often `index.txt` is looked at (a `stat` unless it changed or a
/// certificate expires).
pub const CERT_INTERVAL: Duration = Duration::from_secs(10);
pub const SESSIONS_STATE: &str = "sessions.state";
pub const CERTS_STATE: &str = "certs.state";
/// A status file OpenVPN has not rewritten for this long (its default
/// interval is 60 s) describes a server that is not running: no snapshot
/// is made from it, so that the server is never told that ghosts are
/// connected (e.g. an old file read at boot before OpenVPN started).
pub const STALE_STATUS_SECONDS: i64 = 900;

/// The part of the settings the sources use, and nothing else (no URL, no
/// token): their own section, the spool they write to, the OpenVPN
/// configs whose `status` lines name the status files (and whose `ca`,
/// `cert` and `crl-verify` PKI health watches), and the hooks' uid,
/// whose files they refuse to read.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub sources: SourcesSection,
    pub spool: SpoolSection,
    pub server_confs: Vec<PathBuf>,
    pub hooks_uid: Option<u32>,
}

impl SourceSettings {
    pub fn new(settings: &Settings) -> SourceSettings {
        SourceSettings {
            sources: settings.sources.clone(),
            spool: settings.spool.clone(),
            server_confs: settings.installer.openvpn_server_conf.clone(),
            hooks_uid: settings.hooks_uid(),
        }
    }
}

/// Where source events go: the spool, like every hook event.
pub struct EventWriter {
    spool: Spool,
    max_bytes: u64,
}

/// What an operator must fix for a source to work: skipped rounds (a file
/// missing or being rewritten) are logged, not errors.
#[derive(Debug)]
pub enum Error {
    /// A status file or index.txt the agent cannot read, or refused to
    /// (`source` says which: a link, a FIFO, the hooks' user's file).
    Read { path: PathBuf, source: io::Error },
    /// The spool did not take an event read from `file`.
    Spool { file: PathBuf, source: SpoolError },
    /// A state file (`sessions.state`, `certs.state`) was not written.
    State { path: PathBuf, source: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { source, .. } if source.kind() == io::ErrorKind::InvalidData => write!(f, "{source}"),
            // The walk's errors name the path and the component already.
            Error::Read { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot open: {source} (the agent needs CAP_DAC_READ_SEARCH from its unit, or read access to \
                 the file and its directories)"
            ),
            // (The walk's messages begin with the path.)
            Error::Read { path, source } if source.to_string().starts_with(&format!("{}: ", path.display())) => {
                write!(f, "cannot read {source}")
            }
            Error::Read { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            Error::Spool { file, source } => write!(f, "{}: spool: {source}", file.display()),
            Error::State { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } | Error::State { source, .. } => Some(source),
            Error::Spool { source, .. } => Some(source),
        }
    }
}

/// Every error of a round, as one log line.
fn joined(errors: &[Error]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Whether the spool kept an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Yes,
    /// Refused for space and counted in `dropped`.
    Dropped,
}

impl EventWriter {
    /// From the Spool section alone: where events go and the spool's bound.
    pub fn new(spool: &SpoolSection) -> EventWriter {
        EventWriter { spool: Spool::new(&spool.spool_dir), max_bytes: spool.max_spool_bytes }
    }

    pub fn append(&self, ev: &Event) -> Result<Stored, SpoolError> {
        match self.spool.append_agent(ev, self.max_bytes)? {
            Written::Queue { .. } | Written::Bypass { .. } => Ok(Stored::Yes),
            Written::Dropped { .. } => Ok(Stored::Dropped),
        }
    }
}

/// Runs the sources until `stop` is set: a snapshot at start and every
/// `SNAPSHOT_INTERVAL_SECONDS`, updates every
/// `SESSION_UPDATE_INTERVAL_SECONDS`, certificates every [`CERT_INTERVAL`]
/// (an interval of 0 turns that source off).
pub fn run(settings: &SourceSettings, stop: &AtomicBool, board: &Board) {
    if refused() {
        return;
    }
    said_restarted();
    let mut sources = Sources::new(settings, Some(board));
    let every = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let snapshot_every = every(settings.sources.snapshot_interval_seconds);
    let update_every = every(settings.sources.session_update_interval_seconds);
    let certs_every = pki::round::enabled(settings).then_some(CERT_INTERVAL);
    let start = Instant::now();
    let (mut next_snapshot, mut next_update, mut next_certs) =
        (snapshot_every.map(|_| start), update_every.map(|_| start), certs_every.map(|_| start));
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let (snap, upd) = (due(next_snapshot), due(next_update));
        if snap || upd {
            let ok = match sources.status_round(snap, upd, unix_now()) {
                Ok(ok) => {
                    sources.noise.over("sessions");
                    ok
                }
                Err(errors) => {
                    sources.noise.warn("sessions", format!("sessions: {}", joined(&errors)));
                    false
                }
            };
            let after = |every: Option<Duration>| every.map(|d| Instant::now() + if ok { d } else { RETRY.min(d) });
            if snap {
                next_snapshot = after(snapshot_every);
            }
            if upd {
                next_update = after(update_every);
            }
        }
        if due(next_certs) {
            match sources.certs_round(unix_now()) {
                Ok(()) => sources.noise.over("certificates"),
                Err(e) => sources.noise.warn("certificates", format!("certificates: {e}")),
            }
            match sources.pki_round(unix_now()).as_slice() {
                [] => sources.noise.over("pki"),
                errors => sources.noise.warn("pki", format!("PKI health: {}", joined(errors))),
            }
            next_certs = certs_every.map(|d| Instant::now() + d);
        }
        if refused() {
            return;
        }
        let wake = [next_snapshot, next_update, next_certs].into_iter().flatten().min();
        sleep_until(wake, stop);
    }
}

/// Sleeps until `wake` (or forever) in steps of at most 250 ms, returning
/// early when `stop` is set.
fn sleep_until(wake: Option<Instant>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let left = wake.map_or(Duration::from_millis(250), |w| w.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
}

/// One round of every enabled source (snapshot + update + certificates),
/// for `agent --once` and tests. Skipped rounds (file missing or being
/// rewritten) are logged, not errors; the errors returned are what an
/// operator must fix (unreadable file, spool or state not writable).
pub fn run_once(settings: &SourceSettings, board: &Board) -> Vec<Error> {
    if refused() {
        return Vec::new();
    }
    said_restarted();
    let mut sources = Sources::new(settings, Some(board));
    let snap = settings.sources.snapshot_interval_seconds > 0;
    let upd = settings.sources.session_update_interval_seconds > 0;
    let mut errors = Vec::new();
    if (snap || upd)
        && let Err(e) = sources.status_round(snap, upd, unix_now())
    {
        errors.extend(e);
    }
    if settings.sources.easyrsa_index.is_some()
        && let Err(e) = sources.certs_round(unix_now())
    {
        errors.push(e);
    }
    if pki::round::enabled(settings) {
        errors.extend(sources.pki_round(unix_now()));
    }
    errors
}

/// Whether the sources must not run because the read capability could not
/// be confined (or dropped again): says so in one error line (which the
/// journal keeps), so that no source is ever read with it effective on
/// every thread.
fn refused() -> bool {
    let Some(why) = crate::privilege::refused() else { return false };
    log::error!("event sources off (no SESSION_UPDATE, SESSION_SNAPSHOT or CERT_*): {why}");
    true
}

/// The agent started itself again without the capability it could not
/// confine: one error line, then the sources read what they can without it.
fn said_restarted() {
    if let Some(why) = crate::privilege::restarted_without() {
        log::error!(
            "{}; the agent started again without it: sources it cannot read with its own rights are not read",
            crate::fsutil::printable(&why)
        );
    }
}

/// Wall-clock now (or `OPENVPN_TELEMETRY_NOW`), unix seconds.
fn unix_now() -> i64 {
    event::now().unix_timestamp()
}

/// Problems being reported, by what they are about: a warning when one
/// starts or changes, debug while it lasts, info when it is over.
#[derive(Default)]
struct Noise(HashMap<String, String>);

impl Noise {
    fn warn(&mut self, key: &str, msg: String) {
        if self.0.get(key) == Some(&msg) {
            log::debug!("{msg} (still)");
        } else {
            log::warn!("{msg}");
            self.0.insert(key.to_string(), msg);
        }
    }
    fn over(&mut self, key: &str) {
        if let Some(msg) = self.0.remove(key) {
            log::info!("resolved: {msg}");
        }
    }
}

/// The sources' memory between rounds.
struct Sources<'a> {
    settings: &'a SourceSettings,
    /// Where each round's view of the status files goes (the metrics
    /// file, the heartbeat).
    board: Option<&'a Board>,
    sink: EventWriter,
    noise: Noise,
    sessions: sessions::SessionBook,
    certs: Option<certs::CertBook>,
    /// What the PKI health warnings have said, and the readings for
    /// `status`.
    pki: pki::PkiBook,
    /// The valid certificates of the last read `index.txt`.
    index_valid: Vec<x509::CertInfo>,
    /// Files that would not parse, and the version (size, mtime) last
    /// warned about: one warning per version of a bad file.
    pki_bad: HashMap<String, (usize, Option<i64>)>,
    /// `index.txt` identity (inode, size, mtime) at the last full read.
    index_seen: Option<crate::fsutil::Stamp>,
    /// Who may own a status file or index.txt: anyone but the hooks' user
    /// (the agent may hold CAP_DAC_READ_SEARCH while opening them).
    source_owners: crate::fsutil::Owners,
}

impl<'a> Sources<'a> {
    fn new(settings: &'a SourceSettings, board: Option<&'a Board>) -> Sources<'a> {
        let sessions = load_state(&settings.spool.spool_dir.join(SESSIONS_STATE)).unwrap_or_default();
        let certs = load_state(&settings.spool.spool_dir.join(CERTS_STATE));
        Sources {
            settings,
            board,
            sink: EventWriter::new(&settings.spool),
            noise: Noise::default(),
            sessions,
            certs,
            pki: load_state(&settings.spool.spool_dir.join(pki::PKI_STATE)).unwrap_or_default(),
            index_valid: Vec::new(),
            pki_bad: HashMap::new(),
            index_seen: None,
            source_owners: crate::fsutil::Owners::Not(settings.hooks_uid.into_iter().collect()),
        }
    }

    /// Looks at `index.txt` and writes what changed; a cheap `stat` when
    /// the file is as last read and no known certificate has expired.
    fn certs_round(&mut self, now: i64) -> Result<(), Error> {
        let Some(index) = &self.settings.sources.easyrsa_index else { return Ok(()) };
        let key = index.display().to_string();
        let seen = match crate::privilege::for_sources(|| crate::fsutil::stat_beneath(index)) {
            Ok(stamp) => Some(stamp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.noise.warn(&key, format!("{key}: not found; certificate round skipped"));
                return Ok(());
            }
            Err(source) => return Err(Error::Read { path: index.clone(), source }),
        };
        let expiry_due = self.certs.as_ref().and_then(certs::CertBook::next_expiry).is_some_and(|t| t <= now);
        if self.certs.is_some() && seen == self.index_seen && !expiry_due {
            return Ok(());
        }
        let bytes = match read_stable(index, &self.source_owners)? {
            Got::Data(bytes, _) => bytes,
            Got::Skip(why) => {
                self.noise.warn(&key, format!("{key}: {why}; certificate round skipped"));
                return Ok(());
            }
        };
        let (entries, bad) = certs::parse_index(&bytes);
        self.index_valid = entries
            .iter()
            .filter(|e| e.status == certs::CertStatus::Valid)
            .map(|e| x509::CertInfo {
                subject: e.subject.clone(),
                common_name: e.common_name.clone(),
                serial_hex: e.serial.clone(),
                not_after: e.expires,
            })
            .collect();
        if bad.is_empty() {
            self.noise.over(&key);
        } else {
            self.noise.warn(&key, format!("{key}: unreadable lines {bad:?} skipped"));
        }
        let inventory = self.certs.is_none();
        let book = self.certs.get_or_insert_with(certs::CertBook::default);
        book.unreadable_lines = bad.len();
        let result = book.check(&entries, &self.sink, now, inventory);
        save_state(&self.settings.spool.spool_dir.join(CERTS_STATE), book)?;
        let done = result.map_err(|source| Error::Spool { file: index.clone(), source })?;
        if done.spool_full {
            log::warn!("{}: spool full; remaining certificate events wait for the next round", index.display());
        } else {
            self.index_seen = seen;
        }
        if done.written > 0 {
            log::info!("{}: {} certificate events written", index.display(), done.written);
        }
        Ok(())
    }
}

/// Rows and lines the sources left out as unreadable in the files they
/// last read, from their state files, for `status`: `{"status_files":
/// {path: rows}, "index_lines": n}`. Read like anything in the spool:
/// regular files only, never through a link, never blocking, bounded,
/// and only when `owners` (root or the agent) owns them.
pub fn unreadable_report(spool_dir: &Path, owners: &crate::fsutil::Owners) -> serde_json::Value {
    let read = |path: &Path| -> Option<serde_json::Value> {
        let bytes = crate::fsutil::read_capped(path, READ_CAP, owners).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let rows = read(&spool_dir.join(SESSIONS_STATE)).map(|v| v["unreadable"].clone());
    let lines = read(&spool_dir.join(CERTS_STATE)).map(|v| v["unreadable_lines"].clone());
    serde_json::json!({
        "status_files": rows.filter(|v| v.is_object()).unwrap_or_else(|| serde_json::json!({})),
        "index_lines": lines.and_then(|v| v.as_u64()).unwrap_or(0),
    })
}

/// The status files the settings name now (as the keys of
/// `sessions.state`), for `status --check`; `None` when a server config
/// could not be read, so the set is not known.
pub fn configured_status_paths(settings: &SourceSettings) -> Option<std::collections::BTreeSet<String>> {
    let (found, problems) = conf::status_sources(settings);
    problems.is_empty().then(|| found.iter().map(|s| s.path.display().to_string()).collect())
}

pub use pki::check::{Level as PkiLevel, findings as pki_findings};
pub use pki::{report as pki_report, report_lines as pki_report_lines};

/// `status`'s one line for [`unreadable_report`].
pub fn unreadable_text(report: &serde_json::Value) -> String {
    let rows: u64 = report["status_files"].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    format!("{rows} in status files, {} in index.txt (left out; see the agent's log)", report["index_lines"])
}

/// The status file a server conf names, or the stock unit for it passes
/// on its command line (for `check`, which reads the conf itself).
pub fn conf_status_file(conf: &Path, text: &str) -> Option<PathBuf> {
    conf::status_directive(conf, text).or_else(|| conf::unit_default(conf))
}

#[cfg(test)]
mod tests;
