//! Drop accounting: the spool bounds (`MAX_PENDING_FILES`,
//! `MAX_SPOOL_BYTES`), the bound on `failed/`, the hooks' own drop count,
//! and the `TELEMETRY_EVENTS_DROPPED` report once delivery works.
//!
//! Every loss is counted (with its `seq` range) and made durable in the
//! state file before the data is unlinked: a crash can over-count a loss,
//! never hide one.
//!
//! `failed/` (batches the server refused, malformed lines, unreadable
//! chunks) has a share of its own: at most `MAX_SPOOL_BYTES / 8`
//! ([`FAILED_SHARE`]). It is not taken out of `pending/`'s budget, so a
//! server that refuses a burst of bad data can never push good events out
//! of the backlog; the whole spool stays below 9/8 of `MAX_SPOOL_BYTES`
//! (plus one `queue.log` rotation). When `failed/` is over its share, its
//! oldest files (by mtime, then name) are deleted until it fits, each one
//! logged and its lines counted as dropped. That is right for the
//! at-least-once promise: those events were never delivered (refused or
//! unparseable), and once the copy kept for the operator is gone they are
//! lost for good, so `TELEMETRY_EVENTS_DROPPED` must say so. (They were
//! counted in `failed_events` when set aside too; status shows both.)

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{AGENT_LOCK_WAIT, Delivery};
use crate::backlog;
use crate::event::{self, Event};
use crate::spool::Written;
use crate::state::DropCount;

/// `failed/` may hold at most `MAX_SPOOL_BYTES / FAILED_SHARE` bytes.
pub const FAILED_SHARE: u64 = 8;

/// One file in `failed/`, for the oldest-first order.
struct SetAside {
    modified: SystemTime,
    name: String,
    size: u64,
}

impl Delivery {
    /// Drops the oldest chunks while the spool is over its bounds.
    pub(super) fn enforce_bounds(&mut self) {
        let (max_files, max_bytes) = (self.settings.max_pending_files, self.settings.max_spool_bytes);
        let queue_bytes = fs::symlink_metadata(self.spool.queue()).map(|m| m.len()).unwrap_or(0);
        while self.backlog.over(max_files, max_bytes, queue_bytes) {
            let Some(chunk) = self.backlog.chunks.front().cloned() else { break };
            let path = self.spool.pending().join(&chunk.name);
            let lost = match backlog::count_events(&path, self.offset, &self.owners) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("{}: cannot count before dropping ({e}); counted as 1", path.display());
                    DropCount { count: 1, ..Default::default() }
                }
            };
            self.record_drops(lost);
            log::warn!(
                "spool over its bounds (MAX_PENDING_FILES={max_files}, MAX_SPOOL_BYTES={max_bytes}): dropped \
                 chunk {} with {} events (seq {}..{})",
                chunk.name,
                lost.count,
                lost.first_seq,
                lost.last_seq
            );
            self.remove_front();
        }
    }

    /// Deletes the oldest files in `failed/` while it is over its share of
    /// `MAX_SPOOL_BYTES`, counting their lines as dropped first.
    pub(super) fn enforce_failed_bound(&mut self) {
        let max = self.settings.max_spool_bytes / FAILED_SHARE;
        let dir = self.spool.failed();
        let Ok(entries) = fs::read_dir(&dir) else { return };
        let mut files: Vec<SetAside> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.path().symlink_metadata().ok()?;
                // Only regular files take space worth bounding; anything
                // else is not ours to follow or delete.
                meta.is_file().then(|| SetAside {
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    name: e.file_name().to_string_lossy().into_owned(),
                    size: meta.len(),
                })
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        if total <= max {
            return;
        }
        files.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
        for f in files {
            if total <= max {
                break;
            }
            let path: PathBuf = dir.join(&f.name);
            let lost = match backlog::count_events(&path, 0, &self.owners) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("{}: cannot count before deleting ({e}); counted as 1", path.display());
                    DropCount { count: 1, ..Default::default() }
                }
            };
            self.record_drops(lost);
            match fs::remove_file(&path) {
                Ok(()) => {
                    total -= f.size;
                    log::warn!(
                        "failed/ over its share (MAX_SPOOL_BYTES/{FAILED_SHARE} = {max} bytes): deleted failed/{} \
                         with {} events (seq {}..{}), counted as dropped",
                        f.name,
                        lost.count,
                        lost.first_seq,
                        lost.last_seq
                    );
                }
                // Counted but still there (read-only fs, I/O error): a
                // later pass counts it again. Over-counting is the safe
                // side of the promise; stop for now rather than go on.
                Err(e) => {
                    log::error!("{}: cannot delete: {e}; failed/ stays over its share", path.display());
                    break;
                }
            }
        }
    }

    /// Counts lost events durably (before the data goes away).
    pub fn record_drops(&mut self, lost: DropCount) {
        if lost.count == 0 {
            return;
        }
        self.state.dropped.add(lost);
        self.state.dropped_unreported.add(lost);
        self.state_dirty = true;
        self.save_state();
    }

    /// Takes the hooks' own drop count (events refused for a full queue).
    pub fn collect_hook_drops(&mut self) {
        match self.spool.take_dropped(AGENT_LOCK_WAIT) {
            Ok(d) if d.count > 0 => {
                log::warn!(
                    "hooks dropped {} events (seq {}..{}): queue.log was at MAX_SPOOL_BYTES",
                    d.count,
                    d.first_seq,
                    d.last_seq
                );
                self.record_drops(DropCount { count: d.count, first_seq: d.first_seq, last_seq: d.last_seq });
            }
            Ok(_) => {}
            Err(e) => log::debug!("hook drop count not read now: {e}"),
        }
    }

    /// Writes TELEMETRY_EVENTS_DROPPED through the same spool code as the
    /// hooks. Its event_id is derived from the counts, so writing it again
    /// after a crash yields a duplicate the server drops.
    pub(super) fn report_drops(&mut self) {
        let d = self.state.dropped_unreported;
        let mut ev = Event::new("TELEMETRY_EVENTS_DROPPED");
        let name =
            format!("TELEMETRY_EVENTS_DROPPED\n{}\n{}\n{}\n{}", self.server_id, d.count, d.first_seq, d.last_seq);
        ev.event_id = uuid::Uuid::new_v5(&event::SESSION_NAMESPACE, name.as_bytes());
        ev.push("count", d.count);
        ev.push("first_seq", d.first_seq);
        ev.push("last_seq", d.last_seq);
        match self.spool.append(&ev, AGENT_LOCK_WAIT, self.settings.max_spool_bytes) {
            Ok(Written::Queue { .. } | Written::Bypass { .. }) => {
                log::warn!(
                    "reporting {} dropped events (seq {}..{}) as TELEMETRY_EVENTS_DROPPED",
                    d.count,
                    d.first_seq,
                    d.last_seq
                );
                self.state.dropped_unreported = DropCount::default();
                self.state_dirty = true;
                self.save_state();
            }
            Ok(Written::Dropped { .. }) => log::warn!("spool full; drop report postponed"),
            Err(e) => log::error!("cannot write the drop report: {e}; will try again"),
        }
    }
}
