//! What the spool holds, seen from outside without taking any lock: the
//! size of what waits to be rotated, the chunks in `pending/`, the time of
//! the oldest undelivered event and the files in `failed/`.
//!
//! Guarantees: read-only and bounded (one directory listing each, and at
//! most the first 1 MiB line of one file); never waits on `queue.lock` or
//! `agent.lock`, so `status --check` answers whatever the spool holds; a
//! link, FIFO or directory planted at a chunk's name is skipped, never
//! opened.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fsutil::{self, Owners};
use crate::spool::{self, Spool};
use crate::state::Progress;

/// The spool's numbers, as the heartbeat, the metrics file and
/// `status --check` report them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SpoolView {
    /// `queue.log` plus the agent's own queue: what waits to be rotated.
    pub queue_bytes: u64,
    pub pending_chunks: u64,
    pub pending_bytes: u64,
    /// `event_time_vpn` of the oldest undelivered event.
    pub oldest_pending: Option<OffsetDateTime>,
    pub failed_files: u64,
}

impl SpoolView {
    /// Looks at the spool in `dir`; `progress` is how far the oldest chunk
    /// was delivered (from the agent's state). `Err` when `pending/` cannot
    /// be listed (missing, or not this user's to read).
    pub fn gather(dir: &Path, progress: Option<&Progress>) -> io::Result<SpoolView> {
        let pending = dir.join(spool::PENDING);
        let chunks = list_chunks(&pending)?;
        let offset_of = |name: &str| progress.filter(|p| p.chunk == name).map_or(0, |p| p.offset);
        // The oldest undelivered event heads the oldest chunk, or, with
        // `pending/` empty, one of the queues.
        let oldest = match chunks.first() {
            Some((name, _)) => first_event_time(&pending.join(name), offset_of(name)),
            None => [spool::QUEUE, spool::AGENT_QUEUE].iter().filter_map(|q| first_event_time(&dir.join(q), 0)).min(),
        };
        Ok(SpoolView {
            queue_bytes: Spool::new(dir).queued_bytes(),
            pending_chunks: chunks.len() as u64,
            pending_bytes: chunks.iter().map(|(_, size)| size).sum(),
            oldest_pending: oldest,
            failed_files: list_files(&dir.join(spool::FAILED)).map_or(0, |f| f.len() as u64),
        })
    }
}

/// A spool directory to list: a symlink in its place (the hooks' user
/// replacing `pending/` in an older layout) is not followed.
pub fn read_dir_here(dir: &Path) -> io::Result<fs::ReadDir> {
    let m = fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a directory", dir.display())));
    }
    fs::read_dir(dir)
}

/// Regular files in `dir` (names and sizes, sorted), dot files left out.
fn list_files(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for e in read_dir_here(dir)?.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Ok(m) = e.path().symlink_metadata()
            && m.is_file()
        {
            out.push((name, m.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Chunk names in `pending/` (sorted, oldest first) and sizes.
pub fn list_chunks(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    list_files(dir)
}

/// `event_time_vpn` of the line at `offset` of `path` (at most 1 MiB read).
pub fn first_event_time(path: &Path, offset: u64) -> Option<OffsetDateTime> {
    let mut f = fsutil::open_read(path, &Owners::anyone()).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut line = Vec::new();
    BufReader::new(f.take(1 << 20)).read_until(b'\n', &mut line).ok()?;
    let v: Value = serde_json::from_slice(crate::deliver::backlog::trim_newline(&line)).ok()?;
    OffsetDateTime::parse(v.get("event_time_vpn")?.as_str()?, &Rfc3339).ok()
}
