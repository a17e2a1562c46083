//! Drop accounting: the spool bounds (`MAX_PENDING_FILES`,
//! `MAX_SPOOL_BYTES`), the hooks' own drop count,
//! and the `TELEMETRY_EVENTS_DROPPED` report once delivery works.
//!
//! Every loss is counted (with its `seq` range) and made durable in the
//! state file before the data is unlinked: a crash can over-count a loss,
//! never hide one. `failed/` has a bound of its own, kept here too (its
//! share: see [`super::failed`]).
//!
//! Reports never beget reports, so no answer makes this loop:
//! - at most one report is outstanding (written to the spool, not yet
//!   answered) at a time; losses meanwhile wait for the next one, and each
//!   report carries the running totals as well as what is new;
//! - a report the receiver rejects (OTLP `partialSuccess`, or a 4xx) is
//!   counted in `dropped` but not in `dropped_unreported`: the next report's
//!   totals include it. When a receiver rejects some records of a batch
//!   without saying which, the rejections are put on the batch's reports
//!   first, the side on which work stays bounded.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use super::backlog;
use super::failed::FAILED_SHARE;
use super::{AGENT_LOCK_WAIT, Delivery};
use crate::event::{self, Event};
use crate::spool::Written;
use crate::state::DropCount;

/// The event type of the agent's drop report.
const REPORT: &str = "TELEMETRY_EVENTS_DROPPED";

/// The fields of an event line that drop accounting looks at; anything
/// else in the line, or a field of another type, is ignored.
#[derive(Deserialize, Default)]
struct Head {
    seq: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    event_id: Option<Value>,
}

fn head(line: &[u8]) -> Head {
    serde_json::from_slice(line).unwrap_or_default()
}

/// Whether a line is a drop report.
pub(super) fn is_report(line: &[u8]) -> bool {
    head(line).kind.as_ref().and_then(Value::as_str) == Some(REPORT)
}

/// What drop accounting needs to know about a range of lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// The lowest and highest `seq` (0, 0 when no line has one).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Drop reports among the lines.
    pub reports: u64,
    /// Whether the outstanding report (`id`) is among them.
    pub outstanding: bool,
}

pub(super) fn scan(lines: &[&[u8]], id: Option<&str>) -> Scan {
    let mut seqs: Option<(u64, u64)> = None;
    let mut out = Scan::default();
    for line in lines {
        let h = head(line);
        if let Some(s) = h.seq.as_ref().and_then(Value::as_u64) {
            seqs = Some(seqs.map_or((s, s), |(lo, hi)| (lo.min(s), hi.max(s))));
        }
        if h.kind.as_ref().and_then(Value::as_str) == Some(REPORT) {
            out.reports += 1;
            out.outstanding |= id.is_some() && h.event_id.as_ref().and_then(Value::as_str) == id;
        }
    }
    (out.first_seq, out.last_seq) = seqs.unwrap_or((0, 0));
    out
}

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
            let lost = match backlog::count_events(&path, self.backlog.offset(), &self.settings.owners) {
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

    /// Accounts for `lines` that have their answer (taken, partly
    /// rejected, or set aside), `rejected` of them lost (at most all of
    /// them, whatever the receiver claims): losses are counted, rejected
    /// reports without begetting another, and the outstanding report is
    /// settled when it is among the lines. Returns what was lost.
    pub(super) fn answered(&mut self, lines: &[&[u8]], rejected: u64) -> DropCount {
        let id = self.state.drop_report.clone();
        if rejected == 0 && id.is_none() {
            return DropCount::default();
        }
        let scan = scan(lines, id.as_deref());
        if scan.outstanding {
            self.state.drop_report = None;
            self.durable.state_dirty = true;
        }
        let rejected = rejected.min(lines.len() as u64);
        let on_reports = rejected.min(scan.reports);
        let range = |count| DropCount { count, first_seq: scan.first_seq, last_seq: scan.last_seq };
        self.record_drops(range(rejected - on_reports));
        if on_reports > 0 {
            log::warn!(
                "{on_reports} drop report(s) rejected: counted as dropped (the totals of the next report \
                 include them), not reported again"
            );
            self.state.dropped.add(range(on_reports));
            self.durable.state_dirty = true;
            self.save_state();
        }
        range(rejected)
    }

    /// Counts lost events durably (before the data goes away).
    pub fn record_drops(&mut self, lost: DropCount) {
        if lost.count == 0 {
            return;
        }
        self.state.dropped.add(lost);
        self.state.dropped_unreported.add(lost);
        self.durable.state_dirty = true;
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
                self.record_drops(d);
            }
            Ok(_) => {}
            Err(e) => log::debug!("hook drop count not read now: {e}"),
        }
    }

    /// Writes TELEMETRY_EVENTS_DROPPED through the same spool code as the
    /// hooks, unless one is outstanding: `count`, `first_seq`, `last_seq`
    /// for what is new, `total_*` for every loss so far. Its event_id is
    /// derived from the counts, so writing it again after a crash yields a
    /// duplicate the server drops.
    pub(super) fn report_drops(&mut self) {
        if self.state.drop_report.is_some() {
            return;
        }
        let (d, t) = (self.state.dropped_unreported, self.state.dropped);
        let mut ev = Event::new(REPORT);
        let name = format!(
            "{REPORT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.server_id, d.count, d.first_seq, d.last_seq, t.count, t.first_seq, t.last_seq
        );
        ev.event_id = uuid::Uuid::new_v5(&event::SESSION_NAMESPACE, name.as_bytes());
        ev.push("count", d.count);
        ev.push("first_seq", d.first_seq);
        ev.push("last_seq", d.last_seq);
        ev.push("total_count", t.count);
        ev.push("total_first_seq", t.first_seq);
        ev.push("total_last_seq", t.last_seq);
        match self.spool.append_agent(&ev, self.settings.max_spool_bytes) {
            Ok(Written::Queue { .. } | Written::Bypass { .. }) => {
                log::warn!(
                    "reporting {} dropped events (seq {}..{}; {} in all) as {REPORT}",
                    d.count,
                    d.first_seq,
                    d.last_seq,
                    t.count
                );
                self.state.dropped_unreported = DropCount::default();
                self.state.drop_report = Some(ev.event_id.to_string());
                self.durable.state_dirty = true;
                self.save_state();
            }
            Ok(Written::Dropped { .. }) => log::warn!("spool full; drop report postponed"),
            Err(e) => log::error!("cannot write the drop report: {e}; will try again"),
        }
    }

    /// The outstanding report can no longer be in the spool (nothing is
    /// left to deliver: it was dropped with a chunk, or moved aside
    /// unread): the next loss may be reported.
    pub(super) fn forget_lost_report(&mut self) {
        if self.state.drop_report.is_none() {
            return;
        }
        // The report is written to the agent's own queue; the hooks' queue
        // may hold a forged one, which is treated the same.
        let queue_bytes = self.spool.queued_bytes();
        if queue_bytes == 0 && self.backlog.chunks.is_empty() {
            log::debug!("the outstanding drop report is no longer in the spool");
            self.state.drop_report = None;
            self.durable.state_dirty = true;
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
                    // What it takes on disk: a sparse file planted in the
                    // spool and set aside here takes nothing, and must not
                    // push the operator's real ones out.
                    size: meta.len().min(std::os::unix::fs::MetadataExt::blocks(&meta).saturating_mul(512)),
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
            let lost = match backlog::count_events(&path, 0, &self.settings.owners) {
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
}
