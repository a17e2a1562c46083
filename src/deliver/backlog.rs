//! The chunks waiting in `pending/`, oldest first, and the spool bounds.
//!
//! Guarantees:
//! - only regular files whose names do not start with `.` are chunks, and
//!   a chunk is read only through [`open_chunk`]: no symlink followed, no
//!   FIFO waited on, one link, owned by the hooks' user, the agent or root
//!   (see [`crate::fsutil`]); anything else is set aside unread, since the
//!   hooks' user could otherwise make the agent send any file it can read;
//! - a hook's temporary bypass file (`.NAME.tmp`) older than an hour was
//!   left by a killed hook: it is adopted as chunk `NAME`, never deleted
//!   (its line may be complete; a torn one goes to `failed/` like any);
//! - when `pending/` holds more than `MAX_PENDING_FILES` chunks or the spool
//!   (`pending/` + `queue.log`) more than `MAX_SPOOL_BYTES`, the oldest
//!   chunks are dropped; every dropped event is counted with its `seq`
//!   range, and the count is made durable *before* the chunk is unlinked,
//!   so a crash can over-count a loss but never hide one.
//! - chunks a hook wrote itself are fsynced when first listed;
//! - reading is streamed with a bounded line buffer: a giant line costs at
//!   most [`LineReader`]'s cap in memory, whatever the file holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::fsutil::Owners;
use crate::spool::{self, Spool};
use crate::state::{DropCount, Progress};

/// The most [`count_events`] reads: a legitimate chunk is at most one
/// `queue.log`, which the hooks keep under `MAX_SPOOL_BYTES` (512 MiB by
/// default); a bigger one is counted as one lost event, unread, so the
/// agent's step stays far inside its watchdog period.
const COUNT_CAP: u64 = 1 << 30;

/// A hook's temporary file older than this belongs to a dead hook.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub name: String,
    pub size: u64,
}

/// The sorted list of chunks, refreshed from the directory when needed,
/// and the one record of how far delivery got: the position inside the
/// front chunk (what `agent-state.json` saves as `progress`).
#[derive(Debug, Default)]
pub struct Backlog {
    pub chunks: VecDeque<Chunk>,
    position: Option<Progress>,
    /// Chunks of the current batch already unlinked.
    pub done: usize,
    /// Per chunk, how far bad lines were already copied to `failed/`.
    pub quarantined: HashMap<String, u64>,
    /// Delivered chunks that could not be unlinked: never sent again by
    /// this process (a restart sends them once more; the server dedups).
    pub undeletable: HashSet<String>,
}

impl Backlog {
    /// Starts where a previous run stopped (`progress` from the state).
    pub fn resume(position: Option<Progress>) -> Backlog {
        Backlog { position, ..Backlog::default() }
    }

    /// The position to save: inside which chunk, at which byte.
    pub fn position(&self) -> Option<&Progress> {
        self.position.as_ref()
    }

    /// Where reading resumes in the front chunk (0: at its start).
    pub fn offset(&self) -> u64 {
        match (&self.position, self.chunks.front()) {
            (Some(p), Some(c)) if p.chunk == c.name => p.offset,
            _ => 0,
        }
    }

    /// Records that everything before `offset` in the front chunk is done.
    pub fn set_offset(&mut self, offset: u64) {
        if let Some(front) = self.chunks.front() {
            self.position = Some(Progress { chunk: front.name.clone(), offset });
        }
    }

    /// Takes the front chunk off the list (delivered, dropped or set
    /// aside); its position goes with it.
    pub fn pop_front(&mut self) -> Option<Chunk> {
        let chunk = self.chunks.pop_front()?;
        if self.position.as_ref().is_some_and(|p| p.chunk == chunk.name) {
            self.position = None;
        }
        Some(chunk)
    }

    /// Lists `pending/` again. The chunk delivery is inside of is kept at
    /// the front even if an older name appeared meanwhile, so the recorded
    /// offset always belongs to the chunk read first.
    pub fn refresh(&mut self, spool: &Spool, owners: &Owners) -> io::Result<()> {
        let first = self.position.as_ref().map(|p| p.chunk.clone());
        let first = first.as_deref();
        let dir = spool.pending();
        let mut chunks = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if name.starts_with('.') {
                adopt_stale_tmp(spool, &name, &meta);
                continue;
            }
            let path = dir.join(&name);
            if let Err(e) = crate::fsutil::check_meta(&path, &meta, owners).and_then(|()| not_sparse(&path, &meta)) {
                spool.set_aside_pending(&name, &e);
                continue;
            }
            chunks.push(Chunk { name, size: meta.len() });
        }
        chunks.sort_by(|a, b| a.name.cmp(&b.name));
        self.make_hook_chunks_durable(&dir, &chunks, owners);
        if let Some(first) = first
            && let Some(i) = chunks.iter().position(|c| c.name == first)
        {
            let c = chunks.remove(i);
            chunks.insert(0, c);
        }
        self.chunks = chunks.into();
        if !self.undeletable.is_empty() {
            self.chunks.retain(|c| !self.undeletable.contains(&c.name));
        }
        Ok(())
    }

    /// Hooks never fsync (they must stay fast); a chunk a hook wrote itself
    /// (`-h` in its name, written when `queue.lock` was stuck) is fsynced
    /// here the first time it is seen, as rotation does for `queue.log`.
    fn make_hook_chunks_durable(&self, dir: &Path, chunks: &[Chunk], owners: &Owners) {
        let mut synced = false;
        for c in chunks.iter().filter(|c| c.name.contains("-h")) {
            if self.chunks.iter().any(|old| old.name == c.name) {
                continue;
            }
            if let Ok(f) = open_chunk(&dir.join(&c.name), owners) {
                synced |= f.sync_all().is_ok();
            }
        }
        if synced {
            let _ = spool::fsync_dir(dir);
        }
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.size).sum()
    }

    /// Whether the bounds are exceeded with `queue_bytes` in `queue.log`.
    pub fn over(&self, max_files: u64, max_bytes: u64, queue_bytes: u64) -> bool {
        !self.chunks.is_empty() && (self.chunks.len() as u64 > max_files || self.bytes() + queue_bytes > max_bytes)
    }
}

/// A sparse chunk (see [`spool::is_sparse`]) is never read or counted.
fn not_sparse(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if spool::is_sparse(meta) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {} bytes, almost all holes; not read", path.display(), meta.len()),
        ));
    }
    Ok(())
}

/// Renames `.NAME.tmp` to `NAME` when a hook died before doing it, never
/// over an existing `NAME` (a temporary file planted with an old mtime must
/// not replace a real chunk): then the temporary file is set aside instead,
/// and nothing is lost.
fn adopt_stale_tmp(spool: &Spool, name: &str, meta: &fs::Metadata) {
    let dir = spool.pending();
    let Some(target) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return };
    let old =
        meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|a| a > STALE_TMP);
    if !old || !meta.is_file() || !target.ends_with(".ndjson") || target.starts_with('.') {
        return;
    }
    match spool::rename_noreplace(&dir.join(name), &dir.join(target)) {
        Ok(()) => log::warn!("{}: left by a killed hook; delivered as chunk {target}", dir.join(name).display()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let why = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: chunk {target} exists already; not adopted over it", dir.join(name).display()),
            );
            spool.set_aside_pending(name, &why);
        }
        Err(e) => log::warn!("{}: cannot adopt stale temporary file: {e}", dir.join(name).display()),
    }
}

/// Opens a chunk for reading as [`crate::fsutil::open_read`] does.
pub fn open_chunk(path: &Path, owners: &Owners) -> io::Result<File> {
    crate::fsutil::open_read(path, owners)
}

/// One line as read: complete (or a final line without `\n`), or longer
/// than the cap (its bytes beyond the cap were handed to `spill`).
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Eof,
    /// `n` bytes consumed; the line (with its `\n`, if any) is in the buffer.
    Fits(usize),
    /// `n` bytes consumed; the buffer holds only the first `cap + 1`.
    TooLong(usize),
}

/// Streams lines from a chunk with a bounded buffer.
pub struct LineReader {
    inner: BufReader<File>,
    cap: usize,
}

impl LineReader {
    pub fn open(path: &Path, offset: u64, cap: usize, owners: &Owners) -> io::Result<LineReader> {
        let mut file = open_chunk(path, owners)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(LineReader { inner: BufReader::with_capacity(64 * 1024, file), cap })
    }

    /// Whether everything has been read (so a full batch that ends exactly
    /// at the end of a chunk can finish the chunk without another pass).
    pub fn at_eof(&mut self) -> io::Result<bool> {
        Ok(self.inner.fill_buf()?.is_empty())
    }

    /// Appends the next line to `out`. For a line over the cap, the rest is
    /// passed to `spill` piece by piece (so it can be kept in `failed/`)
    /// and skipped.
    pub fn next_into(&mut self, out: &mut Vec<u8>, mut spill: impl FnMut(&[u8])) -> io::Result<Line> {
        let start = out.len();
        let n = Read::take(&mut self.inner, self.cap as u64 + 1).read_until(b'\n', out)?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if out.last() == Some(&b'\n') || n <= self.cap {
            return Ok(Line::Fits(n));
        }
        spill(&out[start..]);
        let mut total = n;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(Line::TooLong(total));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            spill(&buf[..take]);
            self.inner.consume(take);
            total += take;
            if done {
                return Ok(Line::TooLong(total));
            }
        }
    }
}

/// The line without its `\n` (and a `\r` before it).
pub fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Counts the events in a chunk from `offset` on and their `seq` range
/// (lines without a readable `seq` still count). A sparse chunk or one
/// over [`COUNT_CAP`] is `InvalidData`, never read: the caller counts it
/// as one lost event.
pub fn count_events(path: &Path, offset: u64, owners: &Owners) -> io::Result<DropCount> {
    #[derive(Deserialize)]
    struct Seq {
        seq: Option<u64>,
    }
    let mut reader = LineReader::open(path, offset, 1 << 20, owners)?;
    let meta = reader.inner.get_ref().metadata()?;
    not_sparse(path, &meta)?;
    if meta.len().saturating_sub(offset) > COUNT_CAP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: over {COUNT_CAP} bytes; not counted", path.display()),
        ));
    }
    // Stops at the cap even if the file grows meanwhile (a writer still
    // holding it open).
    let mut read = 0u64;
    let mut count = DropCount::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if read > COUNT_CAP {
            count.count += 1;
            return Ok(count);
        }
        match reader.next_into(&mut buf, |_| {})? {
            Line::Eof => return Ok(count),
            Line::TooLong(n) => {
                read += n as u64;
                count.count += 1;
            }
            Line::Fits(n) => {
                read += n as u64;
                let line = trim_newline(&buf);
                if line.trim_ascii().is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Seq>(line).ok().and_then(|s| s.seq) {
                    Some(seq) => count.add(DropCount { count: 1, first_seq: seq, last_seq: seq }),
                    None => count.count += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_spilled_not_held() {
        let site = crate::testkit::Scratch::new("backlog", "spill");
        let dir = site.root.clone();
        let path = dir.join("c.ndjson");
        let long = "x".repeat(1000);
        fs::write(&path, format!("{{\"seq\":1}}\n{long}\n{{\"seq\":3}}\ntail")).unwrap();
        let any = Owners::anyone();
        let mut r = LineReader::open(&path, 0, 100, &any).unwrap();
        let mut buf = Vec::new();
        assert_eq!(r.next_into(&mut buf, |_| panic!()).unwrap(), Line::Fits(10));
        let mut spilled = 0;
        buf.clear();
        assert_eq!(r.next_into(&mut buf, |b| spilled += b.len()).unwrap(), Line::TooLong(1001));
        assert_eq!(spilled, 1001);
        buf.clear();
        assert_eq!(r.next_into(&mut buf, |_| panic!()).unwrap(), Line::Fits(10));
        buf.clear();
        assert_eq!(r.next_into(&mut buf, |_| panic!()).unwrap(), Line::Fits(4));
        assert_eq!(r.next_into(&mut buf, |_| panic!()).unwrap(), Line::Eof);
        let c = count_events(&path, 0, &any).unwrap();
        assert_eq!((c.count, c.first_seq, c.last_seq), (4, 1, 3));
        assert_eq!(count_events(&path, 10, &any).unwrap().count, 3);
    }
}
