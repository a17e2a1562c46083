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
//! counted in `failed_events` when set aside too; status shows both.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Delivery;
use super::backlog;
use crate::fsutil::Owners;
use crate::spool;
use crate::state::DropCount;

/// `failed/` may hold at most `MAX_SPOOL_BYTES / FAILED_SHARE` bytes.
pub const FAILED_SHARE: u64 = 8;

/// One file in `failed/`, for the oldest-first order.
struct SetAside {
    modified: SystemTime,
    name: String,
    size: u64,
}

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

impl Delivery {
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
