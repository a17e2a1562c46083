//! The agent's health, in the three forms operators consume it: the
//! `AGENT_HEARTBEAT` event ([`heartbeat`]), the one-line verdict of
//! `status --check` ([`check`]) and the Prometheus textfile for
//! node_exporter ([`metrics`]).
//!
//! The agent's two working threads each know half of it: delivery knows
//! the spool and the counters ([`Vitals`]), the sources thread what the
//! status files said ([`InstanceView`]). Both hand their half to one
//! [`Board`], which keeps the latest of each and rewrites the metrics
//! file from them.
//!
//! Guarantees: the board's lock is held only to swap in a half and write
//! the file (never across a read of the spool or a status file); a failed
//! write is logged once per kind of failure, never fatal: metrics are a
//! view, and delivery goes on without them.

pub mod check;
pub mod heartbeat;
pub mod metrics;
mod own;
mod rows;
mod view;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use rows::{ClientRow, InstanceView, RouteRow};
pub use view::{SpoolView, first_event_time, list_chunks, read_dir_here};

use crate::config::HealthSection;
use crate::state::{AgentState, Posts};

/// Longest `last_error` the heartbeat carries, in characters.
pub const LAST_ERROR_CAP: usize = 200;

/// The agent's own numbers: the spool as it is, and the delivery counters
/// its state keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vitals {
    pub started_at: Option<OffsetDateTime>,
    pub spool: SpoolView,
    pub delivered_events_total: u64,
    pub dropped_events_total: u64,
    pub posts: Posts,
    pub last_success_at: Option<OffsetDateTime>,
    pub consecutive_failures: u64,
    /// Short and escaped ([`scrub`]).
    pub last_error: Option<String>,
}

impl Vitals {
    /// From the agent's state and a look at the spool. `secrets` are the
    /// values that must never appear in `last_error` (the URL, the
    /// header's value).
    pub fn of(state: &AgentState, spool: SpoolView, secrets: &[&str]) -> Vitals {
        let time = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
        Vitals {
            started_at: time(&state.started),
            spool,
            delivered_events_total: state.delivered_events,
            dropped_events_total: state.dropped.count,
            posts: state.posts,
            last_success_at: state.last_success.as_ref().and_then(|s| time(&s.time)),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.as_ref().map(|e| scrub(&e.message, secrets)),
        }
    }
}

/// A message fit to leave the host: every secret replaced by `***`, URLs
/// without user info and query, control characters escaped, and at most
/// [`LAST_ERROR_CAP`] characters (a hostile server's text is capped
/// before it gets here, but not this short).
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut text = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(s, "***");
    }
    let masked: Vec<String> = text
        .split(' ')
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                crate::url::mask_url(w)
            } else {
                w.to_string()
            }
        })
        .collect();
    let text = masked.join(" ");
    let printable = crate::fsutil::printable(&text);
    let mut out: String = printable.chars().take(LAST_ERROR_CAP).collect();
    if printable.chars().count() > LAST_ERROR_CAP {
        out.push('…');
    }
    out
}

/// Where the agent's threads leave their half of the health, and the
/// metrics file made of both.
pub struct Board {
    textfile: Option<PathBuf>,
    per_client: bool,
    /// Whether a sources thread will publish status files: until it has
    /// (or [`SOURCES_GRACE`] passed), the file is not written, so that a
    /// restart does not replace a file with clients by one without them.
    wait_for_sources: bool,
    created: Instant,
    inner: Mutex<Halves>,
}

/// How long a new board waits for the sources' first round.
const SOURCES_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Halves {
    instances: Vec<InstanceView>,
    /// The sources have published at least once.
    instances_seen: bool,
    /// The OpenVPN families, rendered once per status round.
    openvpn_text: String,
    vitals: Option<Vitals>,
    /// The last write's error, logged once until it changes.
    write_error: Option<String>,
}

impl Board {
    /// `status_rounds`: whether the sources will read status files (an
    /// update or snapshot interval is set).
    pub fn new(health: &HealthSection, status_rounds: bool) -> Board {
        if let Some(p) = &health.metrics_textfile
            && p.extension().is_none_or(|e| e != "prom")
        {
            log::warn!("METRICS_TEXTFILE={}: node_exporter reads only names ending in .prom", p.display());
        }
        Board {
            textfile: health.metrics_textfile.clone(),
            per_client: health.metrics_per_client,
            wait_for_sources: status_rounds,
            created: Instant::now(),
            inner: Mutex::new(Halves::default()),
        }
    }

    /// The sources' half: every status file of this round.
    pub fn publish_instances(&self, instances: Vec<InstanceView>) {
        let text =
            if self.textfile.is_some() { metrics::render_openvpn(&instances, self.per_client) } else { String::new() };
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        h.instances = instances;
        h.instances_seen = true;
        h.openvpn_text = text;
        self.write(&mut h);
    }

    /// Delivery's half.
    pub fn publish_vitals(&self, vitals: Vitals) {
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        h.vitals = Some(vitals);
        self.write(&mut h);
    }

    /// The status files as last read, for the heartbeat.
    pub fn instances(&self) -> Vec<InstanceView> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).instances.clone()
    }

    fn write(&self, h: &mut Halves) {
        let Some(path) = &self.textfile else { return };
        if self.wait_for_sources && !h.instances_seen && self.created.elapsed() < SOURCES_GRACE {
            return;
        }
        let mut text = own::render(h.vitals.as_ref());
        text.push_str(&h.openvpn_text);
        match metrics::write_atomically(path, text.as_bytes()) {
            Ok(()) => {
                if h.write_error.take().is_some() {
                    log::info!("{}: written again", path.display());
                }
            }
            Err(e) => {
                let msg = format!("{}: cannot write the metrics file: {e}", path.display());
                if h.write_error.as_deref() != Some(msg.as_str()) {
                    log::warn!("{msg}");
                    h.write_error = Some(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_secrets_urls_and_controls_and_caps() {
        let secrets = ["https://u:pw@t.example/api?key=SECRETKEY", "Bearer TOKEN123"];
        let msg = "https://u:pw@t.example/api?key=SECRETKEY: refused; header Bearer TOKEN123; \
                   see http://other.example/x?sig=ABCDEF\u{1b}[31m";
        let s = scrub(msg, &secrets);
        assert!(!s.contains("SECRETKEY") && !s.contains("TOKEN123") && !s.contains("ABCDEF"), "{s}");
        assert!(!s.contains('\u{1b}'), "{s}");
        assert!(s.contains("other.example"), "{s}");
        let long = "x".repeat(1000);
        assert_eq!(scrub(&long, &[]).chars().count(), LAST_ERROR_CAP + 1);
    }
}
