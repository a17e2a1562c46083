//! Drop accounting: the spool bounds (`MAX_PENDING_FILES`,
//! `MAX_SPOOL_BYTES`), the hooks' own drop count,
//! and the `TELEMETRY_EVENTS_DROPPED` report once delivery works.
//!
//! Every loss is counted (with its `seq` range) and made durable in the
//! state file before the data is unlinked: a crash can over-count a loss,
//! never hide one. (`failed/` has a bound of its own: see [`super::failed`].)

use std::fs;

use super::backlog;
use super::{AGENT_LOCK_WAIT, Delivery};
use crate::event::{self, Event};
use crate::spool::Written;
use crate::state::DropCount;

impl Delivery {
    /// Drops the oldest chunks while the spool is over its bounds.
    pub(super) fn enforce_bounds(&mut self) {
        let (max_files, max_bytes) = (self.settings.max_pending_files, self.settings.max_spool_bytes);
        let queue_bytes = fs::symlink_metadata(self.spool.queue()).map(|m| m.len()).unwrap_or(0);
        while self.backlog.over(max_files, max_bytes, queue_bytes) {
            let Some(chunk) = self.backlog.chunks.front().cloned() else { break };
            let path = self.spool.pending().join(&chunk.name);
            let lost = match backlog::count_events(&path, self.backlog.offset(), &self.owners) {
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
                self.record_drops(d);
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
        match self.spool.append_agent(&ev, self.settings.max_spool_bytes) {
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
