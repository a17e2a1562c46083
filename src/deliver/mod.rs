//! Delivery: chunks from `pending/` to the sink, in batches, at least once.
//!
//! A batch is read from the oldest chunk on (it may run into the next
//! chunks) and bounded by `MAX_BATCH_EVENTS` and `MAX_BATCH_BYTES`; only
//! one batch is in memory at a time. Each line must be a UTF-8 JSON object;
//! anything else (a torn tail, garbage, a line over 1 MiB) is
//! appended to `failed/<chunk>.bad`, fsynced, logged, and skipped.
//!
//! Progress, and why nothing is lost or re-sent:
//! - chunks are immutable once in `pending/`, so a position in the backlog
//!   is simply (chunk name, byte offset);
//! - after a 2xx the position moves past the acknowledged lines: chunks
//!   read to the end are unlinked; if the position is inside a chunk, it is
//!   recorded as `progress` in `agent-state.json` (fsynced) before anything
//!   else is sent. After a crash or restart, reading resumes there, so only
//!   the batch that was in flight can be sent twice (the server dedups by
//!   `event_id`);
//! - 413 splits the batch in halves, each acknowledged half advances the
//!   position, a single event still refused goes to `failed/`; any other 4xx
//!   sends the batch to `failed/` (fsynced) before the position moves on
//!   (a refused drop report is counted as dropped instead: see [`drops`]);
//! - a 2xx whose answer says some records were rejected (OTLP
//!   `partialSuccess`) advances the position like any 2xx; the rejected
//!   count, capped at the batch's size, is counted as dropped;
//! - retryable failures leave the position where it was: the batch is read
//!   again for the next attempt;
//! - unlinks are made durable by an fsync of `pending/` at most once a
//!   second (and when idle or stopping): a lost unlink only re-sends;
//! - `failed/` is bounded too (see [`drops`]): past its share of
//!   `MAX_SPOOL_BYTES` its oldest files are deleted and counted as dropped.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub mod backlog;
mod drops;
mod failed;
mod pace;
mod read;
#[cfg(test)]
mod tests;

use pace::{Fail, Pace};
use read::{Batch, ReadError};

use crate::config::{DeliverySection, SpoolSection};
use crate::event;
use crate::fsutil::Owners;
use crate::sink::{Deliver, Outcome};
use crate::spool::{self, Spool};
use crate::state::{AgentState, Failure, Success};
use backlog::Backlog;

/// How often informational state (last success, counters) is written.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// How long the agent waits for `queue.lock` (hooks hold it for ~µs).
pub const AGENT_LOCK_WAIT: Duration = Duration::from_millis(200);

/// What one call to [`Delivery::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Something was delivered or moved aside: call again.
    Progress,
    /// `pending/` is empty.
    Idle,
    /// The sink failed; the next attempt is not before `until`.
    Wait { until: Instant, misconfigured: bool, reason: String },
    /// No `TELEMETRY_URL`: events are kept.
    Hold,
}

/// The part of the settings delivery uses, and nothing else (no URL, no
/// token, no sources): built once from the Spool and Delivery sections of
/// [`Settings`](crate::config::Settings) and the hooks' uid.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub spool_dir: PathBuf,
    /// Who may own a chunk: the hooks' user, the agent, root.
    pub owners: Owners,
    pub max_pending_files: u64,
    pub max_spool_bytes: u64,
    pub max_batch_events: u64,
    pub max_batch_bytes: u64,
    pub retry_sleep_seconds: u64,
    pub retry_max_seconds: u64,
}

impl DeliverySettings {
    /// The owners are the agent, root and the hooks' user
    /// (`OPENVPN_SCRIPT_USER`'s uid, when it could be resolved).
    pub fn new(spool: &SpoolSection, delivery: &DeliverySection, hooks_uid: Option<u32>) -> DeliverySettings {
        DeliverySettings {
            spool_dir: spool.spool_dir.clone(),
            owners: Owners::me_and(hooks_uid),
            max_pending_files: spool.max_pending_files,
            max_spool_bytes: spool.max_spool_bytes,
            max_batch_events: delivery.max_batch_events,
            max_batch_bytes: delivery.max_batch_bytes,
            retry_sleep_seconds: delivery.retry_sleep_seconds,
            retry_max_seconds: delivery.retry_max_seconds,
        }
    }
}

/// The coordinator: takes a batch from the backlog, hands it to the sink,
/// and moves the position, the state and the pace by what the sink says.
pub struct Delivery {
    pub spool: Spool,
    settings: DeliverySettings,
    sink: Box<dyn Deliver>,
    server_id: String,
    pub state: AgentState,
    backlog: Backlog,
    /// How hard delivery may push the server.
    pace: Pace,
    durable: Durable,
}

/// What is not yet durable, and when it last was: state and `pending/`
/// are written and fsynced at most once per [`STATE_EVERY`].
struct Durable {
    state_dirty: bool,
    state_saved: Instant,
    dir_dirty: bool,
    dir_synced: Instant,
}

impl Delivery {
    pub fn new(settings: DeliverySettings, sink: Box<dyn Deliver>, server_id: String) -> Delivery {
        let spool = Spool::new(&settings.spool_dir);
        let mut state = match AgentState::load(&settings.spool_dir, &Owners::me()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{e}; starting with an empty state (drop counts before this are lost)");
                AgentState::default()
            }
        };
        state.pid = std::process::id();
        state.started = event::rfc3339(event::now());
        state.sink = sink.describe();
        let backlog = Backlog::resume(state.progress.clone());
        let pace = Pace::new(settings.max_batch_bytes, settings.retry_sleep_seconds, settings.retry_max_seconds);
        let now = Instant::now();
        let mut d = Delivery {
            spool,
            settings,
            sink,
            server_id,
            state,
            backlog,
            pace,
            durable: Durable { state_dirty: true, state_saved: now, dir_dirty: false, dir_synced: now },
        };
        d.save_state();
        d
    }

    /// Failed attempts in a row.
    pub fn fails(&self) -> u32 {
        self.pace.fails
    }

    pub fn holding(&self) -> bool {
        self.sink.holds()
    }

    /// Lists `pending/` again and applies the bounds.
    pub fn refresh(&mut self) {
        if let Err(e) = self.backlog.refresh(&self.spool, &self.settings.owners) {
            log::error!("{}: cannot list: {e}", self.spool.pending().display());
            return;
        }
        self.enforce_bounds();
        self.enforce_failed_bound();
    }

    pub fn pending_chunks(&self) -> usize {
        self.backlog.chunks.len()
    }

    /// The chunks to deliver, as last listed.
    pub fn chunk_names(&self) -> HashSet<String> {
        self.backlog.chunks.iter().map(|c| c.name.clone()).collect()
    }

    /// Whether any of `names` is still to be delivered.
    pub fn holds_any(&self, names: &HashSet<String>) -> bool {
        self.backlog.chunks.iter().any(|c| names.contains(&c.name))
    }

    /// Delivers (or moves aside) one batch.
    pub fn step(&mut self) -> Step {
        if self.backlog.chunks.is_empty() {
            self.refresh();
            if self.backlog.chunks.is_empty() {
                self.forget_lost_report();
                self.flush();
                return Step::Idle;
            }
        }
        if self.holding() {
            return Step::Hold;
        }
        if let Some(until) = self.pace.waiting(Instant::now()) {
            return Step::Wait { until, misconfigured: false, reason: "backing off".into() };
        }
        let batch = match self.read_batch() {
            Ok(b) => b,
            Err(ReadError::Chunk(e)) => return self.unreadable_front(e),
            // failed/ cannot take the bad line now (disk full?): keep it
            // all and try again later rather than lose or skip anything.
            Err(ReadError::SetAside(e)) => {
                let reason = format!("cannot set a malformed line aside in {}: {e}", self.spool.failed().display());
                return self.back_off(Fail::Retry { reason, retry_after: None });
            }
        };
        self.backlog.done = 0;
        let result = self.send_range(&batch, 0, batch.items.len());
        let step = match result {
            Ok(()) => {
                self.finish_batch(&batch);
                Step::Progress
            }
            Err(fail) => self.back_off(fail),
        };
        self.maybe_flush();
        step
    }

    fn lines(batch: &Batch, a: usize, b: usize) -> Vec<&[u8]> {
        batch.items[a..b].iter().map(|it| &batch.buf[it.start..it.end]).collect()
    }

    /// Sends items `a..b`, splitting on 413; every acknowledged or refused
    /// part advances the position.
    fn send_range(&mut self, batch: &Batch, a: usize, b: usize) -> Result<(), Fail> {
        if a == b {
            return Ok(());
        }
        let lines = Self::lines(batch, a, b);
        let outcome = self.sink.send(&self.server_id, &lines);
        self.count_post(&outcome);
        match outcome {
            Outcome::Delivered => {
                self.answered(&lines, 0);
                self.delivered((b - a) as u64);
                // The end of the whole batch is recorded by finish_batch
                // (which saves the position only when it is inside a chunk).
                if b < batch.items.len() {
                    self.advance_to(batch, b - 1);
                }
                Ok(())
            }
            Outcome::PartlyRejected { rejected, message } => {
                // Delivered as far as the position goes; the receiver said
                // how many it threw away (capped at the batch), not which:
                // they are counted as dropped with the batch's seq range.
                let lost = self.answered(&lines, rejected);
                log::warn!(
                    "the receiver took {} events but rejected {} (seq within {}..{}): {message}; counted as dropped",
                    b - a,
                    lost.count,
                    lost.first_seq,
                    lost.last_seq
                );
                self.delivered((b - a) as u64 - lost.count);
                if b < batch.items.len() {
                    self.advance_to(batch, b - 1);
                }
                Ok(())
            }
            Outcome::TooLarge if b - a > 1 => {
                let size: usize = lines.iter().map(|l| l.len() + 1).sum();
                let cap = self.pace.shrink(size);
                log::warn!("HTTP 413 for {} events ({size} bytes): splitting; batches now at most {cap} bytes", b - a);
                let mid = a + (b - a) / 2;
                self.send_range(batch, a, mid)?;
                self.send_range(batch, mid, b)
            }
            Outcome::TooLarge => self.reject(batch, a, b, 413, "a single event is too large for the server"),
            Outcome::SetAside { status, body_head } => self.reject(batch, a, b, status, &body_head),
            Outcome::Retry { reason, retry_after } => Err(Fail::Retry { reason, retry_after }),
            Outcome::Misconfigured { reason } => Err(Fail::Misconfigured { reason }),
        }
    }

    /// Counts one answer in the state's `posts` (the metrics file's
    /// `posts_total`).
    fn count_post(&mut self, outcome: &Outcome) {
        let posts = &mut self.state.posts;
        match outcome {
            Outcome::Delivered | Outcome::PartlyRejected { .. } => posts.ok += 1,
            Outcome::Retry { .. } => posts.retry += 1,
            Outcome::Misconfigured { .. } => posts.misconfigured += 1,
            Outcome::TooLarge => posts.too_large += 1,
            Outcome::SetAside { .. } => posts.set_aside += 1,
        }
        self.durable.state_dirty = true;
    }

    /// Moves refused lines to `failed/` durably, then past them. If they
    /// cannot be set aside they are kept (retried) rather than lost. A
    /// refused drop report is counted as dropped instead (see [`drops`]):
    /// kept in `failed/`, its deletion there would be a loss to report.
    fn reject(&mut self, batch: &Batch, a: usize, b: usize, status: u16, body_head: &str) -> Result<(), Fail> {
        let name = format!("{:020}-http{status}.ndjson", spool::unix_nanos());
        let (reports, lines): (Vec<&[u8]>, Vec<&[u8]>) =
            Self::lines(batch, a, b).into_iter().partition(|l| drops::is_report(l));
        if !lines.is_empty() {
            if let Err(e) = failed::write_failed(&self.spool.failed(), &name, &lines) {
                let reason =
                    format!("server refused {} events with HTTP {status}; cannot write failed/{name}: {e}", b - a);
                return Err(Fail::Retry { reason, retry_after: None });
            }
            log::error!(
                "server refused {} events with HTTP {status} ({body_head}); moved to failed/{name}",
                lines.len()
            );
        }
        if !reports.is_empty() {
            log::error!("server refused {} drop report(s) with HTTP {status} ({body_head})", reports.len());
            self.answered(&reports, reports.len() as u64);
        }
        self.state.failed_events += lines.len() as u64;
        // A server refusing everything fills failed/ fastest: keep it
        // within its share right away, not only at the next listing.
        self.enforce_failed_bound();
        if b < batch.items.len() {
            self.advance_to(batch, b - 1);
        }
        Ok(())
    }

    /// Moves the position to just after item `i`.
    fn advance_to(&mut self, batch: &Batch, i: usize) {
        let item = &batch.items[i];
        self.unlink_done(item.chunk);
        self.set_offset(item.next);
    }

    /// Unlinks the batch's chunks before index `upto` (not yet unlinked).
    fn unlink_done(&mut self, upto: usize) {
        while self.backlog.done < upto {
            self.remove_front();
            self.backlog.done += 1;
        }
    }

    fn finish_batch(&mut self, batch: &Batch) {
        if batch.chunks == 0 {
            return;
        }
        self.unlink_done(batch.chunks - 1);
        if batch.end_eof {
            self.unlink_done(batch.chunks);
        } else {
            self.set_offset(batch.end_offset);
        }
    }

    /// Records the position inside the front chunk; fsynced when it is
    /// inside a chunk, because that is what saves re-sending after a crash.
    fn set_offset(&mut self, offset: u64) {
        if self.backlog.chunks.is_empty() {
            return;
        }
        self.backlog.set_offset(offset);
        self.durable.state_dirty = true;
        self.save_state();
    }

    fn remove_front(&mut self) {
        let had_position = self.backlog.position().is_some();
        let Some(chunk) = self.backlog.pop_front() else { return };
        if had_position && self.backlog.position().is_none() {
            self.durable.state_dirty = true;
        }
        let path = self.spool.pending().join(&chunk.name);
        match fs::remove_file(&path) {
            Ok(()) => self.durable.dir_dirty = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Delivered but still there: never re-sent by this process
            // (that would loop on it), and delivery slows to the backoff
            // so a pending/ the agent cannot write is not hammered.
            Err(e) => {
                log::error!(
                    "{}: cannot remove delivered chunk: {e}; not sent again until the agent restarts",
                    path.display()
                );
                self.backlog.undeletable.insert(chunk.name.clone());
                self.pace.slow_down();
            }
        }
        self.backlog.quarantined.remove(&chunk.name);
    }

    fn delivered(&mut self, events: u64) {
        let fails = self.pace.succeeded();
        if fails > 0 {
            log::info!("delivery works again after {fails} failed attempts");
        }
        self.state.consecutive_failures = 0;
        self.state.delivered_events += events;
        self.state.last_success = Some(Success { time: event::rfc3339(event::now()), events });
        self.durable.state_dirty = true;
        if self.state.dropped_unreported.count > 0 {
            self.report_drops();
        }
    }

    fn back_off(&mut self, fail: Fail) -> Step {
        let pace::Wait { until, delay, reason, misconfigured } = self.pace.failed(fail);
        self.state.consecutive_failures += 1;
        let next = event::rfc3339(event::now() + delay);
        let attempt = self.pace.fails;
        if misconfigured {
            log::error!(
                "delivery refused (attempt {attempt}): {reason}; events kept; next try in {:.1}s at {next}",
                delay.as_secs_f64()
            );
        } else {
            log::warn!(
                "delivery failed (attempt {attempt}): {reason}; next try in {:.1}s at {next}",
                delay.as_secs_f64()
            );
        }
        self.state.last_error =
            Some(Failure { time: event::rfc3339(event::now()), message: reason.clone(), next_retry: Some(next) });
        self.durable.state_dirty = true;
        Step::Wait { until, misconfigured, reason }
    }

    /// Notes a problem that is not a delivery attempt (for `status`).
    pub fn note_error(&mut self, message: String) {
        self.state.last_error = Some(Failure { time: event::rfc3339(event::now()), message, next_retry: None });
        self.durable.state_dirty = true;
    }

    fn save_state(&mut self) {
        self.state.progress = self.backlog.position().cloned();
        self.state.updated = event::rfc3339(event::now());
        match self.state.save(&self.settings.spool_dir) {
            Ok(()) => {
                self.durable.state_dirty = false;
                self.durable.state_saved = Instant::now();
            }
            Err(e) => log::error!("cannot save agent state: {e}"),
        }
    }

    fn maybe_flush(&mut self) {
        if self.durable.dir_dirty && self.durable.dir_synced.elapsed() >= STATE_EVERY {
            self.sync_pending();
        }
        if self.durable.state_dirty && self.durable.state_saved.elapsed() >= STATE_EVERY {
            self.save_state();
        }
    }

    fn sync_pending(&mut self) {
        let pending = self.spool.pending();
        match spool::fsync_dir(&pending) {
            Ok(()) => self.durable.dir_dirty = false,
            Err(e) => log::warn!("{}: {e}", pending.display()),
        }
        self.durable.dir_synced = Instant::now();
    }

    /// Makes everything durable now (idle, stopping).
    pub fn flush(&mut self) {
        if self.durable.dir_dirty {
            self.sync_pending();
        }
        if self.durable.state_dirty {
            self.save_state();
        }
    }
}
