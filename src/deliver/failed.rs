//! `failed/`: everything delivery sets aside, and its bound. It is the
//! agent's alone (0700): what lands here may be anything that was once in
//! `pending/`, so its files are created 0600 and only ever appended to when
//! they are the agent's own regular files.
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
//! counted in `failed_events` when set aside too; status shows both.) The
//! bound is kept with the others, in [`super::drops`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::fsutil::Owners;
use crate::spool;

/// `failed/` may hold at most `MAX_SPOOL_BYTES / FAILED_SHARE` bytes.
pub const FAILED_SHARE: u64 = 8;

/// Appends to a file in `failed/` (created 0600 if missing: only the
/// agent reads it). An existing one must be the agent's own regular file.
pub fn open_failed(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(crate::fsutil::guarded_flags())
        .open(path)
        .map_err(|e| crate::fsutil::loop_is_link(path, e))?;
    crate::fsutil::check_file(path, &file, &Owners::me())?;
    Ok(file)
}

/// Writes a whole set of refused lines to a new file in `failed/`, durably.
pub fn write_failed(dir: &Path, name: &str, lines: &[&[u8]]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut file = open_failed(&dir.join(name))?;
    let mut buf = Vec::new();
    for l in lines {
        buf.extend_from_slice(l);
        buf.push(b'\n');
    }
    file.write_all(&buf)?;
    file.sync_all()?;
    spool::fsync_dir(dir)
}

/// Opens `failed/<chunk>.bad` on first use; when that name is taken by
/// something that is not the agent's own file (left by an older layout),
/// a fresh name beside it.
pub(super) fn open_quarantine<'a>(slot: &'a mut Option<File>, dir: &Path, path: &Path) -> io::Result<&'a mut File> {
    if slot.is_none() {
        fs::create_dir_all(dir)?;
        let file = match open_failed(path) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                open_failed(&path.with_extension(format!("{}.bad", spool::unix_nanos())))?
            }
            other => other?,
        };
        *slot = Some(file);
    }
    slot.as_mut().ok_or_else(|| io::Error::other("unreachable"))
}
