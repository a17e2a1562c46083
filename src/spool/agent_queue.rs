//! The agent's own queue: the events the agent makes itself (session
//! updates and snapshots, certificate events, drop reports) and its own
//! drop count never pass through a file the hooks' user can open.
//!
//! Guarantees:
//! - `agent-queue.log` and `agent-dropped` are the agent's regular files,
//!   mode 0600 and the agent's own group (not the hooks', which the setgid
//!   spool would give them), so the hooks' user can neither read what the
//!   agent read with its capability nor rewrite what it will send;
//! - a name the hooks' user planted there first (its own file, a link, a
//!   FIFO, a directory) is set aside into `failed/` unread, and a new file
//!   made in its place;
//! - appends take no lock the hooks' user can hold: one process-wide mutex
//!   orders the agent's threads (one agent per spool: `agent.lock`), so a
//!   stuck `queue.lock` never stalls the agent's events;
//! - rotation moves the queue into `pending/` under a fresh name that it
//!   never replaces (`RENAME_NOREPLACE`); the chunk keeps its 0600 mode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Dropped, Spool, SpoolError, Written, io_err, rename_noreplace, unix_nanos};
use crate::event::Event;
use crate::fsutil;

pub const AGENT_QUEUE: &str = "agent-queue.log";
pub const AGENT_DROPPED: &str = "agent-dropped";

/// Orders the agent's threads (delivery and the sources) on its files.
static LOCK: Mutex<()> = Mutex::new(());

impl Spool {
    /// Appends one event the agent made to its own queue. The seq comes
    /// from the shared counter, without `queue.lock`; over `max_bytes` the
    /// event is counted in the agent's own drop count instead.
    pub fn append_agent(&self, ev: &Event, max_bytes: u64) -> Result<Written, SpoolError> {
        let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = self.seq_unlocked(self.open_counter())?;
        let path = self.dir.join(AGENT_QUEUE);
        let (mut file, len) = self.open_agent_file(AGENT_QUEUE, true).map_err(io_err(&path))?;
        let line = ev.to_line(seq);
        if len + line.len() as u64 > max_bytes {
            let dropped = self.dir.join(AGENT_DROPPED);
            self.count_agent_dropped(seq).map_err(io_err(&dropped))?;
            return Ok(Written::Dropped { seq });
        }
        if let Err(e) = file.write_all(&line) {
            let _ = file.set_len(len);
            return Err(SpoolError::Io { path, source: e });
        }
        Ok(Written::Queue { seq })
    }

    /// Opens (creating it if missing) one of the agent's own files in the
    /// spool, returning it and its length. Whatever else is at the name is
    /// set aside unread and the file made anew.
    pub(crate) fn open_agent_file(&self, name: &str, append: bool) -> io::Result<(File, u64)> {
        let path = self.dir.join(name);
        let open = || -> io::Result<(File, u64)> {
            let file = OpenOptions::new()
                .read(!append)
                .write(!append)
                .append(append)
                .create(true)
                .mode(0o600)
                .custom_flags(fsutil::guarded_flags())
                .open(&path)
                .map_err(|e| fsutil::loop_is_link(&path, e))?;
            let m = agent_own(&path, &file)?;
            Ok((file, m.len()))
        };
        match open() {
            Ok(got) => Ok(got),
            Err(e) if fs::symlink_metadata(&path).is_ok() => {
                self.set_aside(name, &e);
                open()
            }
            Err(e) => Err(e),
        }
    }

    /// Records one of the agent's events refused for space.
    fn count_agent_dropped(&self, seq: u64) -> io::Result<()> {
        let (mut file, _) = self.open_agent_file(AGENT_DROPPED, false)?;
        let mut text = String::new();
        (&mut file).take(4096).read_to_string(&mut text)?;
        let mut d = Dropped::parse(&text).unwrap_or_default();
        d.add(Dropped { count: 1, first_seq: seq, last_seq: seq });
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(d.to_string().as_bytes())
    }

    /// Takes (and clears) the agent's own drop count.
    pub(crate) fn take_agent_dropped(&self) -> io::Result<Dropped> {
        let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.dir.join(AGENT_DROPPED);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(Dropped::default());
        }
        let (file, _) = self.open_agent_file(AGENT_DROPPED, false)?;
        let mut text = String::new();
        file.take(4096).read_to_string(&mut text)?;
        fs::remove_file(&path)?;
        Ok(Dropped::parse(&text).unwrap_or_default())
    }

    /// Moves the agent's queue into `pending/` (never over an existing
    /// name) and makes it durable. `None` when it is empty or missing; a
    /// name that is not the agent's own file is left for the next append
    /// to set aside, never moved into `pending/` as the agent's.
    pub(crate) fn rotate_agent(&self) -> Result<Option<PathBuf>, SpoolError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.dir.join(AGENT_QUEUE);
        let me = nix::unistd::geteuid().as_raw();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.uid() == me && m.nlink() == 1 && m.len() > 0 => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpoolError::Io { path, source: e }),
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let chunk = self.pending().join(format!("{:020}-a{n}.ndjson", unix_nanos()));
        rename_noreplace(&path, &chunk).map_err(io_err(&chunk))?;
        fsutil::open_read(&chunk, &fsutil::Owners::me()).and_then(|f| f.sync_all()).map_err(io_err(&chunk))?;
        let pending = self.pending();
        super::fsync_dir(&pending).map_err(io_err(&pending))?;
        super::fsync_dir(&self.dir).map_err(io_err(&self.dir))?;
        Ok(Some(chunk))
    }
}

/// Checks that an open file is the agent's own: regular, one link, owned by
/// the running user, no access for group or others; one the agent just
/// created gets its own group and 0600 here (whatever umask and setgid
/// directory gave it). Not so is `InvalidData`.
pub(crate) fn agent_own(path: &std::path::Path, file: &File) -> io::Result<fs::Metadata> {
    let me = nix::unistd::geteuid().as_raw();
    let m = fsutil::check_file(path, file, &fsutil::Owners::Only(vec![me]))?;
    if m.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: owned by uid {}, not the agent's own file", path.display(), m.uid()),
        ));
    }
    // Private by mode alone: the group is the spool's (setgid), which a
    // 0600 file grants nothing, and the unit's seccomp filter forbids chown.
    if m.mode() & 0o7077 != 0 {
        if m.len() > 0 {
            // Group or other bits on a file with content: it may have been
            // read or written through them; never trusted.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: mode {:04o}, not the agent's alone", path.display(), m.mode() & 0o7777),
            ));
        }
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    Ok(m)
}
