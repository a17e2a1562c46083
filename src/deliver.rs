//! Delivery: chunks from `pending/` to the sink, in batches, at least once.
//!
//! A batch is read from the oldest chunk on (it may run into the next
//! chunks) and bounded by `MAX_BATCH_EVENTS` and `MAX_BATCH_BYTES`; only
//! one batch is in memory at a time. Each line must be a UTF-8 JSON object;
//! anything else (a torn tail, garbage, a line larger than a batch) is
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
//!   sends the batch to `failed/` (fsynced) before the position moves on;
//! - retryable failures leave the position where it was: the batch is read
//!   again for the next attempt;
//! - unlinks are made durable by an fsync of `pending/` at most once a
//!   second (and when idle or stopping): a lost unlink only re-sends.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backlog::{self, Backlog, Line, LineReader};
use crate::config::Settings;
use crate::event::{self, Event};
use crate::http::{self, Outcome, Sink};
use crate::spool::{self, Spool, Written};
use crate::state::{AgentState, DropCount, Failure, Progress, Success};

/// How often informational state (last success, counters) is written.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// How long the agent waits for `queue.lock` (hooks hold it for ~µs).
pub const LOCK_WAIT: Duration = Duration::from_millis(200);

/// What one call to [`Delivery::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Something was delivered or moved aside: call again.
    Progress,
    /// `pending/` is empty.
    Idle,
    /// The sink failed; the next attempt is not before `until`.
    Wait { until: Instant, refused: bool, reason: String },
    /// No `TELEMETRY_URL`: events are kept.
    Hold,
}

/// Why a batch could not be read.
enum ReadError {
    /// The front chunk cannot be read.
    Chunk(io::Error),
    /// A malformed line could not be written to `failed/`.
    SetAside(io::Error),
}

/// A failed send that leaves the position where it is.
enum Fail {
    Retry { reason: String, retry_after: Option<Duration> },
    Refused { reason: String },
}

struct Item {
    start: usize,
    end: usize,
    /// Index of the chunk in the backlog at the time the batch was read.
    chunk: usize,
    /// Offset in that chunk just after this line.
    next: u64,
}

#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    items: Vec<Item>,
    /// How many backlog chunks the batch touched (the last maybe partly).
    chunks: usize,
    end_offset: u64,
    end_eof: bool,
}

pub struct Delivery {
    pub spool: Spool,
    settings: Settings,
    sink: Sink,
    server_id: String,
    pub state: AgentState,
    backlog: Backlog,
    /// Offset into the first backlog chunk where reading resumes.
    offset: u64,
    /// Chunks of the current batch already unlinked.
    done: usize,
    /// Per chunk, how far bad lines were already copied to `failed/`.
    quarantined: HashMap<String, u64>,
    /// Lowered after a 413 so later batches fit the server's limit.
    byte_cap: usize,
    pub fails: u32,
    next_attempt: Option<Instant>,
    state_dirty: bool,
    state_saved: Instant,
    dir_dirty: bool,
    dir_synced: Instant,
}

impl Delivery {
    pub fn new(settings: &Settings, sink: Sink, server_id: String) -> Delivery {
        let spool = Spool::new(&settings.spool_dir);
        let mut state = match AgentState::load(&settings.spool_dir) {
            Ok(s) => s,
            Err(e) => {
                log::error!("{e}; starting with an empty state (drop counts before this are lost)");
                AgentState::default()
            }
        };
        state.pid = std::process::id();
        state.started = event::rfc3339(time::OffsetDateTime::now_utc());
        state.sink = sink.describe();
        let byte_cap = settings.max_batch_bytes.min(usize::MAX as u64) as usize;
        let now = Instant::now();
        let mut d = Delivery {
            spool,
            settings: settings.clone(),
            sink,
            server_id,
            state,
            backlog: Backlog::default(),
            offset: 0,
            done: 0,
            quarantined: HashMap::new(),
            byte_cap,
            fails: 0,
            next_attempt: None,
            state_dirty: true,
            state_saved: now,
            dir_dirty: false,
            dir_synced: now,
        };
        d.save_state();
        d
    }

    pub fn holding(&self) -> bool {
        matches!(self.sink, Sink::Hold)
    }

    /// Lists `pending/` again and applies the bounds.
    pub fn refresh(&mut self) {
        let first = self.state.progress.as_ref().map(|p| p.chunk.clone());
        if let Err(e) = self.backlog.refresh(&self.spool, first.as_deref()) {
            log::error!("{}: cannot list: {e}", self.spool.pending().display());
            return;
        }
        self.offset = match (&self.state.progress, self.backlog.chunks.front()) {
            (Some(p), Some(c)) if p.chunk == c.name => p.offset,
            _ => 0,
        };
        self.enforce_bounds();
    }

    pub fn pending_chunks(&self) -> usize {
        self.backlog.chunks.len()
    }

    /// Drops the oldest chunks while the spool is over its bounds.
    fn enforce_bounds(&mut self) {
        let (max_files, max_bytes) = (self.settings.max_pending_files, self.settings.max_spool_bytes);
        let queue_bytes = fs::symlink_metadata(self.spool.queue()).map(|m| m.len()).unwrap_or(0);
        while self.backlog.over(max_files, max_bytes, queue_bytes) {
            let Some(chunk) = self.backlog.chunks.front().cloned() else { break };
            let path = self.spool.pending().join(&chunk.name);
            let lost = match backlog::count_events(&path, self.offset) {
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
        match self.spool.take_dropped(LOCK_WAIT) {
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

    /// Delivers (or moves aside) one batch.
    pub fn step(&mut self) -> Step {
        if self.backlog.chunks.is_empty() {
            self.refresh();
            if self.backlog.chunks.is_empty() {
                self.flush();
                return Step::Idle;
            }
        }
        if self.holding() {
            return Step::Hold;
        }
        if let Some(until) = self.next_attempt
            && Instant::now() < until
        {
            return Step::Wait { until, refused: false, reason: "backing off".into() };
        }
        let batch = match self.read_batch() {
            Ok(b) => b,
            Err(ReadError::Chunk(e)) => return self.unreadable_front(e),
            // failed/ cannot take the bad line now (disk full?): keep it
            // all and try again later rather than lose or skip anything.
            Err(ReadError::SetAside(e)) => {
                let reason = format!("cannot set a malformed line aside in {}: {e}", self.spool.failed().display());
                return self.failed(Fail::Retry { reason, retry_after: None });
            }
        };
        self.done = 0;
        let result = self.send_range(&batch, 0, batch.items.len());
        let step = match result {
            Ok(()) => {
                self.finish_batch(&batch);
                Step::Progress
            }
            Err(fail) => self.failed(fail),
        };
        self.maybe_flush();
        step
    }

    /// A chunk that cannot be read (permissions, I/O error) is moved to
    /// `failed/` whole, so it neither blocks the pipe nor gets lost.
    fn unreadable_front(&mut self, e: io::Error) -> Step {
        let Some(chunk) = self.backlog.chunks.front().cloned() else { return Step::Idle };
        let from = self.spool.pending().join(&chunk.name);
        let to = self.spool.failed().join(format!("{}.unreadable", chunk.name));
        let _ = fs::create_dir_all(self.spool.failed());
        match fs::rename(&from, &to) {
            Ok(()) => log::error!("{}: cannot read ({e}); moved to {}", from.display(), to.display()),
            Err(e2) => log::error!("{}: cannot read ({e}) nor move it to failed/ ({e2}); skipped", from.display()),
        }
        self.backlog.chunks.pop_front();
        self.offset = 0;
        Step::Progress
    }

    fn read_batch(&mut self) -> Result<Batch, ReadError> {
        let budget = self.byte_cap.saturating_sub(http::envelope_overhead(&self.server_id)).max(1024);
        let max_events = self.settings.max_batch_events.min(usize::MAX as u64) as usize;
        let failed_dir = self.spool.failed();
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let mut bad = Vec::new();
        for idx in 0..self.backlog.chunks.len() {
            let name = self.backlog.chunks[idx].name.clone();
            let mut offset = if idx == 0 { self.offset } else { 0 };
            batch.chunks = idx + 1;
            batch.end_offset = offset;
            batch.end_eof = false;
            let path = self.spool.pending().join(&name);
            let mut reader = match LineReader::open(&path, offset, budget) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    batch.end_eof = true;
                    continue;
                }
                Err(e) if idx > 0 => {
                    // Stop before it; as the front chunk it is dealt with then.
                    log::debug!("{}: {e}", path.display());
                    batch.chunks = idx;
                    batch.end_eof = true;
                    return Ok(batch);
                }
                Err(e) => return Err(ReadError::Chunk(e)),
            };
            // Bad lines already set aside by an earlier read of this batch
            // (before a failed attempt) are not written to failed/ again.
            let seen = self.quarantined.get(&name).copied().unwrap_or(0);
            let bad_path = failed_dir.join(format!("{name}.bad"));
            let mut quarantine: Option<File> = None;
            let full = loop {
                let start = batch.buf.len();
                let mut spill_err = None;
                let mut spill_nl = false;
                let fresh = offset >= seen;
                let read = reader
                    .next_into(&mut batch.buf, |piece| {
                        spill_nl = piece.last() == Some(&b'\n');
                        if fresh && spill_err.is_none() {
                            let w = open_quarantine(&mut quarantine, &failed_dir, &bad_path)
                                .and_then(|f| f.write_all(piece));
                            spill_err = w.err();
                        }
                    })
                    .map_err(ReadError::Chunk)?;
                if let Some(e) = spill_err {
                    return Err(ReadError::SetAside(e));
                }
                let (n, too_long) = match read {
                    Line::Eof => {
                        batch.end_eof = true;
                        break false;
                    }
                    Line::Fits(n) => (n, false),
                    Line::TooLong(n) => (n, true),
                };
                let line = backlog::trim_newline(&batch.buf[start..]);
                let verdict = if too_long {
                    Err(format!("line of {n} bytes does not fit in a batch (MAX_BATCH_BYTES)"))
                } else if line.trim_ascii().is_empty() {
                    Ok(false)
                } else {
                    check_line(line).map(|()| true)
                };
                match verdict {
                    Ok(false) => {}
                    Ok(true) => {
                        let len = line.len();
                        if !batch.items.is_empty() && bytes + len + 1 > budget {
                            batch.buf.truncate(start);
                            break true;
                        }
                        bytes += len + 1;
                        batch.items.push(Item { start, end: start + len, chunk: idx, next: offset + n as u64 });
                        offset += n as u64;
                        batch.end_offset = offset;
                        if batch.items.len() >= max_events {
                            batch.end_eof = reader.at_eof().map_err(ReadError::Chunk)?;
                            break true;
                        }
                        continue;
                    }
                    Err(why) => {
                        if fresh {
                            let ends_nl = if too_long { spill_nl } else { batch.buf.last() == Some(&b'\n') };
                            let line = if too_long { &[][..] } else { &batch.buf[start..] };
                            open_quarantine(&mut quarantine, &failed_dir, &bad_path)
                                .and_then(|f| {
                                    f.write_all(line).and_then(|()| f.write_all(if ends_nl { b"" } else { b"\n" }))
                                })
                                .map_err(ReadError::SetAside)?;
                            self.state.failed_events += 1;
                            self.quarantined.insert(name.clone(), offset + n as u64);
                            bad.push((name.clone(), offset, why));
                        }
                    }
                }
                batch.buf.truncate(start);
                offset += n as u64;
                batch.end_offset = offset;
            };
            if let Some(f) = quarantine {
                f.sync_all().map_err(ReadError::SetAside)?;
                spool::sync_dir(&failed_dir).map_err(|e| ReadError::SetAside(io::Error::other(e.to_string())))?;
            }
            if full {
                break;
            }
        }
        if let Some((chunk, offset, why)) = bad.first() {
            log::warn!(
                "{} malformed line(s) moved to failed/{chunk}.bad; first at byte {offset} of chunk {chunk}: {why}",
                bad.len()
            );
        }
        Ok(batch)
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
        match self.sink.send(&self.server_id, &lines) {
            Outcome::Delivered => {
                self.delivered((b - a) as u64);
                // The end of the whole batch is recorded by finish_batch
                // (which saves the position only when it is inside a chunk).
                if b < batch.items.len() {
                    self.advance_to(batch, b - 1);
                }
                Ok(())
            }
            Outcome::TooLarge if b - a > 1 => {
                let size: usize = lines.iter().map(|l| l.len() + 1).sum();
                self.byte_cap = self.byte_cap.min(size / 2).max(1024);
                log::warn!(
                    "HTTP 413 for {} events ({size} bytes): splitting; batches now at most {} bytes",
                    b - a,
                    self.byte_cap
                );
                let mid = a + (b - a) / 2;
                self.send_range(batch, a, mid)?;
                self.send_range(batch, mid, b)
            }
            Outcome::TooLarge => self.reject(batch, a, b, 413, "a single event is too large for the server"),
            Outcome::Rejected { status, body_head } => self.reject(batch, a, b, status, &body_head),
            Outcome::Retry { reason, retry_after } => Err(Fail::Retry { reason, retry_after }),
            Outcome::Refused { reason } => Err(Fail::Refused { reason }),
        }
    }

    /// Moves refused lines to `failed/` durably, then past them. If they
    /// cannot be set aside they are kept (retried) rather than lost.
    fn reject(&mut self, batch: &Batch, a: usize, b: usize, status: u16, body_head: &str) -> Result<(), Fail> {
        let name = format!("{:020}-http{status}.ndjson", spool::unix_nanos());
        let lines = Self::lines(batch, a, b);
        if let Err(e) = backlog::write_failed(&self.spool.failed(), &name, &lines) {
            let reason = format!("server refused {} events with HTTP {status}; cannot write failed/{name}: {e}", b - a);
            return Err(Fail::Retry { reason, retry_after: None });
        }
        log::error!("server refused {} events with HTTP {status} ({body_head}); moved to failed/{name}", b - a);
        self.state.failed_events += (b - a) as u64;
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
        while self.done < upto {
            self.remove_front();
            self.done += 1;
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
        let Some(front) = self.backlog.chunks.front() else { return };
        self.offset = offset;
        self.state.progress = Some(Progress { chunk: front.name.clone(), offset });
        self.state_dirty = true;
        self.save_state();
    }

    fn remove_front(&mut self) {
        let Some(chunk) = self.backlog.chunks.pop_front() else { return };
        let path = self.spool.pending().join(&chunk.name);
        match fs::remove_file(&path) {
            Ok(()) => self.dir_dirty = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("{}: cannot remove delivered chunk: {e}", path.display()),
        }
        self.offset = 0;
        self.quarantined.remove(&chunk.name);
        if self.state.progress.as_ref().is_some_and(|p| p.chunk == chunk.name) {
            self.state.progress = None;
            self.state_dirty = true;
        }
    }

    fn delivered(&mut self, events: u64) {
        if self.fails > 0 {
            log::info!("delivery works again after {} failed attempts", self.fails);
        }
        self.fails = 0;
        self.next_attempt = None;
        self.state.delivered_events += events;
        self.state.last_success = Some(Success { time: event::rfc3339(time::OffsetDateTime::now_utc()), events });
        self.state_dirty = true;
        if self.state.dropped_unreported.count > 0 {
            self.report_drops();
        }
    }

    /// Writes TELEMETRY_EVENTS_DROPPED through the same spool code as the
    /// hooks. Its event_id is derived from the counts, so writing it again
    /// after a crash yields a duplicate the server drops.
    fn report_drops(&mut self) {
        let d = self.state.dropped_unreported;
        let mut ev = Event::new("TELEMETRY_EVENTS_DROPPED");
        let name =
            format!("TELEMETRY_EVENTS_DROPPED\n{}\n{}\n{}\n{}", self.server_id, d.count, d.first_seq, d.last_seq);
        ev.event_id = uuid::Uuid::new_v5(&event::SESSION_NAMESPACE, name.as_bytes());
        ev.push("count", d.count);
        ev.push("first_seq", d.first_seq);
        ev.push("last_seq", d.last_seq);
        match self.spool.append(&ev, LOCK_WAIT, self.settings.max_spool_bytes) {
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

    fn failed(&mut self, fail: Fail) -> Step {
        self.fails += 1;
        let max = Duration::from_secs(self.settings.retry_max_seconds);
        let (reason, delay, refused) = match fail {
            Fail::Retry { reason, retry_after } => {
                let d = backoff(self.settings.retry_sleep_seconds, self.settings.retry_max_seconds, self.fails);
                (reason, d.max(retry_after.unwrap_or_default()).min(max), false)
            }
            Fail::Refused { reason } => (reason, max, true),
        };
        let until = Instant::now() + delay;
        let at = time::OffsetDateTime::now_utc() + delay;
        let next = event::rfc3339(at);
        if refused {
            log::error!(
                "delivery refused (attempt {}): {reason}; events kept; next try in {:.1}s at {next}",
                self.fails,
                delay.as_secs_f64()
            );
        } else {
            log::warn!(
                "delivery failed (attempt {}): {reason}; next try in {:.1}s at {next}",
                self.fails,
                delay.as_secs_f64()
            );
        }
        self.state.last_error = Some(Failure {
            time: event::rfc3339(time::OffsetDateTime::now_utc()),
            message: reason.clone(),
            next_retry: Some(next),
        });
        self.state_dirty = true;
        self.next_attempt = Some(until);
        Step::Wait { until, refused, reason }
    }

    /// Notes a problem that is not a delivery attempt (for `status`).
    pub fn note_error(&mut self, message: String) {
        self.state.last_error =
            Some(Failure { time: event::rfc3339(time::OffsetDateTime::now_utc()), message, next_retry: None });
        self.state_dirty = true;
    }

    fn save_state(&mut self) {
        self.state.updated = event::rfc3339(time::OffsetDateTime::now_utc());
        match self.state.save(&self.settings.spool_dir) {
            Ok(()) => {
                self.state_dirty = false;
                self.state_saved = Instant::now();
            }
            Err(e) => log::error!("cannot save agent state: {e}"),
        }
    }

    fn maybe_flush(&mut self) {
        if self.dir_dirty && self.dir_synced.elapsed() >= STATE_EVERY {
            self.sync_pending();
        }
        if self.state_dirty && self.state_saved.elapsed() >= STATE_EVERY {
            self.save_state();
        }
    }

    fn sync_pending(&mut self) {
        match spool::sync_dir(&self.spool.pending()) {
            Ok(()) => self.dir_dirty = false,
            Err(e) => log::warn!("{e}"),
        }
        self.dir_synced = Instant::now();
    }

    /// Makes everything durable now (idle, stopping).
    pub fn flush(&mut self) {
        if self.dir_dirty {
            self.sync_pending();
        }
        if self.state_dirty {
            self.save_state();
        }
    }
}

/// Opens `failed/<chunk>.bad` on first use.
fn open_quarantine<'a>(slot: &'a mut Option<File>, dir: &Path, path: &Path) -> io::Result<&'a mut File> {
    if slot.is_none() {
        fs::create_dir_all(dir)?;
        *slot = Some(backlog::open_failed(path)?);
    }
    slot.as_mut().ok_or_else(|| io::Error::other("unreachable"))
}

/// Checks that a line is one UTF-8 JSON object, without building it.
fn check_line(line: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(line).is_err() {
        return Err("not valid UTF-8".into());
    }
    if !line.trim_ascii_start().starts_with(b"{") {
        return Err("not a JSON object".into());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(line).map(|_| ()).map_err(|e| format!("invalid JSON: {e}"))
}

/// Exponential backoff from `sleep` to `max` seconds with "equal jitter"
/// (half fixed, half random), so many agents do not retry in step.
pub fn backoff(sleep: u64, max: u64, attempt: u32) -> Duration {
    let base_ms = (sleep * 1000).max(100);
    let max_ms = (max * 1000).max(base_ms);
    let d = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)).min(max_ms);
    let random = (uuid::Uuid::new_v4().as_u128() as u64) % (d / 2 + 1);
    Duration::from_millis(d - d / 2 + random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked() {
        assert!(check_line(br#"{"a":1}"#).is_ok());
        assert!(check_line(br#" {"a":"\u00e9"} "#).is_ok());
        assert!(check_line(br#"{"a":1"#).is_err());
        assert!(check_line(br#"[1]"#).is_err());
        assert!(check_line(br#"{"a":1} x"#).is_err());
        assert!(check_line(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 1..40 {
            let d = backoff(2, 300, attempt).as_millis() as u64;
            let full = (2000u64 << (attempt - 1).min(30)).min(300_000);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d}");
        }
        assert!(backoff(0, 1, 1) >= Duration::from_millis(50));
    }
}
