//! Reading one batch from the backlog: oldest chunk first, streamed line
//! by line with a bounded buffer, each line checked to be one UTF-8 JSON
//! object. Malformed lines go to `failed/<chunk>.bad` (fsynced before the
//! position can move past them) and are logged; a chunk that cannot be
//! read at all is set aside whole in `failed/`.

use std::fs::File;
use std::io::{self, Write};

use super::backlog::{self, Line, LineReader};
use super::failed::open_quarantine;
use super::{Delivery, Fail, Step};
use crate::spool;

/// The longest line taken as an event (when `MAX_BATCH_BYTES` is not
/// larger). A line over the batch budget but under this goes out alone:
/// whether it is too large is the server's call (413), not this file's.
const LINE_CAP: usize = 1 << 20;

/// Why a batch could not be read.
pub(super) enum ReadError {
    /// The front chunk cannot be read.
    Chunk(io::Error),
    /// A malformed line could not be written to `failed/`.
    SetAside(io::Error),
}

pub(super) struct Item {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Index of the chunk in the backlog at the time the batch was read.
    pub(super) chunk: usize,
    /// Offset in that chunk just after this line.
    pub(super) next: u64,
}

#[derive(Default)]
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) items: Vec<Item>,
    /// How many backlog chunks the batch touched (the last maybe partly).
    pub(super) chunks: usize,
    pub(super) end_offset: u64,
    pub(super) end_eof: bool,
}

impl Delivery {
    /// A chunk that can never be read (no permission, not a regular file,
    /// a symlink) is moved to `failed/` whole, so it neither blocks the
    /// pipe nor gets lost. Any other error (EIO, EMFILE...) may pass: the
    /// chunk stays and is retried with backoff.
    pub(super) fn unreadable_front(&mut self, e: io::Error) -> Step {
        let Some(chunk) = self.backlog.chunks.front().cloned() else { return Step::Idle };
        let from = self.spool.pending().join(&chunk.name);
        let permanent = matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidData)
            || e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32);
        if !permanent {
            return self
                .back_off(Fail::Retry { reason: format!("{}: cannot read: {e}", from.display()), retry_after: None });
        }
        self.spool.set_aside_pending(&chunk.name, &e);
        self.backlog.pop_front();
        Step::Progress
    }

    pub(super) fn read_batch(&mut self) -> Result<Batch, ReadError> {
        let budget = self.pace.byte_cap.saturating_sub(self.sink.overhead(&self.server_id)).max(1024);
        let max_events = self.settings.max_batch_events.min(usize::MAX as u64) as usize;
        let failed_dir = self.spool.failed();
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let mut bad = Vec::new();
        for idx in 0..self.backlog.chunks.len() {
            let name = self.backlog.chunks[idx].name.clone();
            let mut offset = if idx == 0 { self.backlog.offset() } else { 0 };
            batch.chunks = idx + 1;
            batch.end_offset = offset;
            batch.end_eof = false;
            let path = self.spool.pending().join(&name);
            let mut reader = match LineReader::open(&path, offset, budget.max(LINE_CAP), &self.settings.owners) {
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
            let seen = self.backlog.quarantined.get(&name).copied().unwrap_or(0);
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
                    Err(Malformed::TooLong(n))
                } else if line.trim_ascii().is_empty() {
                    Ok(false)
                } else {
                    check_line(line).map(|()| true)
                };
                match verdict {
                    Ok(false) => {}
                    Ok(true) => {
                        let len = line.len();
                        let cost = self.sink.cost(line);
                        if !batch.items.is_empty() && bytes + cost > budget {
                            batch.buf.truncate(start);
                            break true;
                        }
                        bytes += cost;
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
                            self.backlog.quarantined.insert(name.clone(), offset + n as u64);
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
                spool::fsync_dir(&failed_dir).map_err(ReadError::SetAside)?;
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
}

/// Why a line in a chunk is not an event (it goes to `failed/`).
#[derive(Debug)]
enum Malformed {
    TooLong(usize),
    NotUtf8,
    NotObject,
    Json(serde_json::Error),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::TooLong(n) => write!(f, "line of {n} bytes is over the {LINE_CAP}-byte limit for one event"),
            Malformed::NotUtf8 => write!(f, "not valid UTF-8"),
            Malformed::NotObject => write!(f, "not a JSON object"),
            Malformed::Json(e) => write!(f, "invalid JSON: {e}"),
        }
    }
}

/// Checks that a line is one UTF-8 JSON object, without building it.
fn check_line(line: &[u8]) -> Result<(), Malformed> {
    if std::str::from_utf8(line).is_err() {
        return Err(Malformed::NotUtf8);
    }
    if !line.trim_ascii_start().starts_with(b"{") {
        return Err(Malformed::NotObject);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(line).map(|_| ()).map_err(Malformed::Json)
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
}
