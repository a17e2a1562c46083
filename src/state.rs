//! The agent's own small state file, `SPOOL_DIR/agent-state.json`: what
//! `status` shows (last success, last error, counters), the drop count
//! (which must survive restarts until it has been reported), and delivery
//! progress inside a chunk.
//!
//! Guarantees: the file is replaced atomically (temporary file, fsync,
//! rename), so a reader or a crash sees the old or the new state, never a
//! mix. Only the agent writes it; a damaged file is reported and replaced.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "agent-state.json";

/// The drop count lives with the events it counts; the agent's state
/// keeps one and names it here for the delivery code.
pub use crate::event::DropCount;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    pub time: String,
    /// Events in the batch that succeeded.
    pub events: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub time: String,
    pub message: String,
    /// When the agent tries again (RFC 3339), if it will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry: Option<String>,
}

/// Batches sent, by what the answer meant; kept across restarts, so they
/// are the totals `posts_total` in the metrics file counts. A 2xx that
/// rejected some records (OTLP `partialSuccess`) is a 2xx.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Posts {
    /// 2xx (or written to the file sink).
    pub ok: u64,
    /// No answer, a timeout, 408, 429 or 5xx: kept and tried again.
    pub retry: u64,
    /// 401, 403 or a redirect: kept until the operator fixes the settings.
    pub misconfigured: u64,
    /// 413: split into halves (or, for a single event, set aside).
    pub too_large: u64,
    /// Any other 4xx: moved to `failed/`.
    pub set_aside: u64,
}

/// How far the oldest chunk has been delivered: its name and the byte
/// offset of the first line not yet acknowledged.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub chunk: String,
    pub offset: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentState {
    pub pid: u32,
    pub started: String,
    pub updated: String,
    /// Where events go (URL without secrets, file, or none).
    pub sink: String,
    pub last_success: Option<Success>,
    pub last_error: Option<Failure>,
    /// Events acknowledged (or written to the file sink) since this file
    /// was created.
    pub delivered_events: u64,
    /// Lines moved to `failed/` (malformed, or refused by the server).
    pub failed_events: u64,
    /// Every event ever lost to the bounds (hooks' and agent's drops).
    pub dropped: DropCount,
    /// The part of `dropped` not yet reported as TELEMETRY_EVENTS_DROPPED.
    pub dropped_unreported: DropCount,
    /// The `event_id` of the TELEMETRY_EVENTS_DROPPED written to the spool
    /// and not yet answered: no other is written meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_report: Option<String>,
    pub progress: Option<Progress>,
    /// Every batch sent since this file was created, by outcome.
    pub posts: Posts,
    /// Failed attempts since the last success, across restarts (an agent
    /// restarted during an outage does not start again from zero).
    pub consecutive_failures: u64,
}

#[derive(Debug)]
pub enum StateError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// Names the file and what is wrong with it.
    Damaged(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            // `what` names the file already (fsutil's messages do).
            StateError::Damaged(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::Damaged(_) => None,
        }
    }
}

/// The state is a few hundred bytes; anything near this is not ours.
const STATE_CAP: u64 = 1 << 20;

pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(STATE_FILE)
}

impl AgentState {
    /// Reads the state; a missing file is the empty state. The agent reads
    /// only its own (`Owners::me`); root's `status` any owner's, since it
    /// only shows it.
    pub fn load(spool_dir: &Path, owners: &crate::fsutil::Owners) -> Result<AgentState, StateError> {
        let path = path(spool_dir);
        match crate::fsutil::load_json(&path, STATE_CAP, owners) {
            Ok(state) => Ok(state.unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(StateError::Damaged(e.to_string())),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Replaces the file atomically and durably, 0600 for the agent alone
    /// ([`crate::fsutil::replace_file`]):
    /// the drop count it carries must not be lost while the chunk deletes it
    /// accounts for persist.
    pub fn save(&self, spool_dir: &Path) -> Result<(), StateError> {
        let path = path(spool_dir);
        crate::fsutil::save_json(&path, self).map_err(|source| StateError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn round_trip_and_drop_merge() {
        let site = crate::testkit::Scratch::new("state", "round-trip");
        let dir = site.spool();
        assert_eq!(AgentState::load(&dir, &crate::fsutil::Owners::me()).unwrap(), AgentState::default());
        let mut s = AgentState { pid: 7, ..Default::default() };
        s.dropped.add(DropCount { count: 2, first_seq: 5, last_seq: 6 });
        s.dropped.add(DropCount { count: 1, first_seq: 3, last_seq: 3 });
        assert_eq!(s.dropped, DropCount { count: 3, first_seq: 3, last_seq: 6 });
        s.progress = Some(Progress { chunk: "c".into(), offset: 9 });
        s.save(&dir).unwrap();
        assert_eq!(AgentState::load(&dir, &crate::fsutil::Owners::me()).unwrap(), s);
        fs::write(path(&dir), "{").unwrap();
        assert!(matches!(AgentState::load(&dir, &crate::fsutil::Owners::me()), Err(StateError::Damaged(_))));
    }
}
