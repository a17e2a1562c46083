//! The spool: the only place hooks write, and the agent's only input.
//!
//! Layout (the seed's, plus `failed/` and a few small files):
//! - `queue.log`: NDJSON appended by hooks under `queue.lock`;
//! - `pending/`: chunks, named `<unix nanos, 20 digits>-<origin>.ndjson` so
//!   that names sort in write order; files starting with `.` are unfinished
//!   and ignored;
//! - `failed/`: lines or batches the server (or the parser) refused;
//! - `seq.counter`: the sequence counter, whose *size* is the number (see
//!   [`Counter`]); `seq`: the text counter of earlier versions, read once
//!   when `seq.counter` is made and then marked as moved;
//! - `dropped`: events refused because the spool was full (see below);
//! - the agent's own files, 0600 in its own group, which the hooks' user
//!   can neither open nor replace: `agent-queue.log` and `agent-dropped`
//!   (the events the agent makes itself, see [`agent_queue`]),
//!   `seq.floor` and `agent.lock` (see [`health`]).
//!
//! Guarantees:
//! - a line is appended with one `write` while `queue.lock` is held, and
//!   rotation takes the same lock, so a line is never torn or split by a
//!   rotation; a short write (disk full) is cut back off before unlocking;
//! - `seq` is taken while `queue.lock` is held, so it increases in queue
//!   order; it needs no lock of its own (one 1-byte `O_APPEND` write, whose
//!   new offset is the number), so an event that had to bypass a stuck
//!   `queue.lock` still gets a unique, non-zero number;
//! - a writer waits for `queue.lock` only while the lock makes progress
//!   (`queue.log` grows or is rotated), sleeping with exponential backoff,
//!   and never longer than the caller's cap: when the holder is stuck the
//!   event is written to its own file in `pending/` (temp name, then
//!   rename), which the agent delivers like any chunk;
//! - files are opened with `O_NOFOLLOW` and created mode 0660 (whatever the
//!   umask), taking the spool directory's group (it is setgid);
//! - hooks never fsync: the agent pays for durability when it rotates;
//! - a hook whose `queue.lock`, `queue.log` or counter cannot be used (the
//!   hooks' user damaged it) still stores its event: through the bypass,
//!   with a seq above the time when the counter gives none;
//! - every rename the agent makes onto a name in the spool refuses to
//!   replace ([`rename_noreplace`]) unless replacing is the point (a new
//!   counter or lock in place of a damaged one);
//! - a rotated `queue.log` of the agent's leaves the hooks' group (0600).

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::Event;
use crate::fsutil::{self, Owners};

mod agent_queue;
mod health;
mod seq;

pub use agent_queue::{AGENT_DROPPED, AGENT_QUEUE};
pub use health::{AGENT_LOCK, control_file_problems, damaged};
use seq::Counter;
pub use seq::counter_header;

/// How long `queue.lock` may show no progress before a waiter calls it
/// stuck. A holder that is merely preempted (300 hooks on 2 cores) gets the
/// CPU back well within this. Every wait is also capped by the caller's
/// ceiling, and a hook's (`hook::LOCK_WAIT`, 40 ms) is lower: for hooks
/// that ceiling is what bounds a stopped holder's cost, and this one
/// matters for the agent's rotation (200 ms).
pub const STALL: Duration = Duration::from_millis(100);

/// The same, once a hook has already found the lock stuck and nothing was
/// appended since: a stopped holder costs the first hooks their ceiling,
/// the ones after this.
pub const KNOWN_STALL: Duration = Duration::from_millis(20);

/// The counter file's header: the base, in decimal, padded with spaces to
/// `HEADER - 1` bytes and a newline. The number given out is
/// `base + (file size - HEADER)` after the writer's own 1-byte append.
const HEADER: usize = 32;

/// Bases at or above this are damage (the old text counter held `u64::MAX`
/// once): a real spool never counts that far, and base + any file size
/// stays far from overflowing.
const SANE: u64 = 1 << 62;

/// What `seq` says once its number has moved into `seq.counter`: an older
/// binary reading it restarts above the time in microseconds (its rule for
/// a damaged counter), so it cannot reuse a number either.
const MOVED: &[u8] = b"moved to seq.counter\n";

/// How long making `seq.counter` waits for the old `seq` lock (only older
/// binaries still take it). Past it the counter starts above the time.
const LEGACY_WAIT: Duration = Duration::from_millis(5);
/// How long a hook that could not take the old `seq` lock waits for the
/// holder's `seq.counter` to appear, before starting one above the time.
const MIGRATION_WAIT: Duration = Duration::from_millis(200);

pub const QUEUE: &str = "queue.log";
pub const QUEUE_LOCK: &str = "queue.lock";
pub const SEQ: &str = "seq";
pub const COUNTER: &str = "seq.counter";
pub const DROPPED: &str = "dropped";
pub const PENDING: &str = "pending";
pub const FAILED: &str = "failed";
/// `failed/`'s mode: the agent's alone (the hooks' user must not read or
/// rename what was set aside).
pub const FAILED_MODE: u32 = 0o700;

/// Mode of every file the spool creates: owner and the spool's group.
const FILE_MODE: u32 = 0o660;

/// What went wrong while writing to the spool.
#[derive(Debug)]
pub enum SpoolError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// `queue.lock` could not be taken in time (and, for `append`, the
    /// bypass into `pending/` failed too: see `source`).
    LockTimeout {
        path: PathBuf,
    },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SpoolError::LockTimeout { path } => write!(f, "{}: lock held by another process", path.display()),
        }
    }
}

impl std::error::Error for SpoolError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// Where an event ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Queue {
        seq: u64,
    },
    /// `queue.lock` was busy: the event has its own chunk in `pending/`.
    Bypass {
        seq: u64,
        chunk: PathBuf,
    },
    /// The spool is at `MAX_SPOOL_BYTES`: the event was counted in
    /// `dropped`, not stored.
    Dropped {
        seq: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Spool {
    pub dir: PathBuf,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }
    pub fn queue(&self) -> PathBuf {
        self.dir.join(QUEUE)
    }
    /// Bytes waiting to be rotated: the hooks' `queue.log` and the agent's
    /// own queue together (each by its apparent size, 0 when missing).
    pub fn queued_bytes(&self) -> u64 {
        let size = |name: &str| fs::symlink_metadata(self.dir.join(name)).map(|m| m.len()).unwrap_or(0);
        size(QUEUE).saturating_add(size(AGENT_QUEUE))
    }
    pub fn pending(&self) -> PathBuf {
        self.dir.join(PENDING)
    }
    pub fn failed(&self) -> PathBuf {
        self.dir.join(FAILED)
    }

    /// Appends one event. `wait` caps the wait for `queue.lock`; before
    /// that, a lock that shows no progress for [`STALL`] counts as stuck.
    /// Nothing here blocks without a bound. `max_queue_bytes` caps
    /// `queue.log` (the agent bounds the rest of the spool).
    pub fn append(&self, ev: &Event, wait: Duration, max_queue_bytes: u64) -> Result<Written, SpoolError> {
        let lock_path = self.dir.join(QUEUE_LOCK);
        let counter = self.open_counter();
        // A lock that cannot be opened (made a directory, mode 000 by the
        // hooks' user that made it) is a stuck lock: the bypass, until the
        // agent sets it aside.
        let lock = match open_create(&lock_path, false) {
            Ok(lock) => lock,
            // If the bypass fails too, the lock's error says more.
            Err(e) => return self.bypass(ev, counter).map_err(|_| SpoolError::Io { path: lock_path, source: e }),
        };
        let queue = self.queue();
        if !lock_while_progress(&lock, &queue, STALL.min(wait), KNOWN_STALL.min(wait), wait) {
            mark_stuck(&lock);
            return self.bypass(ev, counter);
        }
        let counter = match counter {
            Ok(c) => Ok(c),
            Err(e) => self.recover_counter(e, true).map_err(|e| io::Error::other(e.to_string())),
        };
        // A counter that cannot give a number (damaged where the hooks may
        // not replace it) costs the number's order, never the event.
        let seq = counter.and_then(|c| c.take()).unwrap_or_else(|_| (unix_nanos() / 1000).max(1));
        let line = ev.to_line(seq);
        let (mut file, len) = match open_create_sized(&queue, true) {
            Ok(opened) => opened,
            Err(e) => {
                drop(lock);
                return self.write_own_chunk(ev, seq).map_err(|_| SpoolError::Io { path: queue, source: e });
            }
        };
        if len + line.len() as u64 > max_queue_bytes {
            self.count_dropped(seq).map_err(io_err(&self.dir.join(DROPPED)))?;
            return Ok(Written::Dropped { seq });
        }
        if let Err(e) = file.write_all(&line) {
            // Never leave half a line behind (disk full): cut it off again.
            let _ = file.set_len(len);
            return Err(SpoolError::Io { path: queue, source: e });
        }
        drop(lock);
        Ok(Written::Queue { seq })
    }

    /// The slow path when `queue.lock` is stuck: the event becomes a chunk
    /// of its own, written under a temporary name and renamed into place.
    /// Its seq comes from the same counter, without any lock.
    fn bypass(&self, ev: &Event, counter: io::Result<Counter>) -> Result<Written, SpoolError> {
        let seq = self.seq_unlocked(counter)?;
        self.write_own_chunk(ev, seq)
    }

    /// Writes one event as a chunk of its own in `pending/`.
    fn write_own_chunk(&self, ev: &Event, seq: u64) -> Result<Written, SpoolError> {
        let pending = self.pending();
        let name =
            format!("{:020}-h{}-{}.ndjson", unix_nanos(), std::process::id(), &ev.event_id.simple().to_string()[..8]);
        let tmp = pending.join(format!(".{name}.tmp"));
        let chunk = pending.join(&name);
        let mut file = open_new(&tmp).map_err(io_err(&tmp))?;
        if let Err(e) = file.write_all(&ev.to_line(seq)) {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::Io { path: tmp, source: e });
        }
        fs::rename(&tmp, &chunk).map_err(io_err(&chunk))?;
        Ok(Written::Bypass { seq, chunk })
    }

    /// Records one event refused for space: `count first_seq last_seq`.
    /// Called with `queue.lock` held.
    fn count_dropped(&self, seq: u64) -> io::Result<()> {
        let path = self.dir.join(DROPPED);
        let mut file = open_create(&path, false)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut d = Dropped::parse(&text).unwrap_or_default();
        d.add(Dropped { count: 1, first_seq: seq, last_seq: seq });
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(d.to_string().as_bytes())
    }

    /// Takes (and clears) the hooks' drop count; the agent reports it.
    pub fn take_dropped(&self, wait: Duration) -> Result<Dropped, SpoolError> {
        let lock_path = self.dir.join(QUEUE_LOCK);
        let lock = open_create(&lock_path, false).map_err(io_err(&lock_path))?;
        if !lock_until(&lock, Instant::now() + wait) {
            return Err(SpoolError::LockTimeout { path: lock_path });
        }
        let mut d = match self.take_agent_dropped() {
            Ok(d) => d,
            Err(e) => {
                log::error!("{}: {e}; counted as 1 lost event", self.dir.join(AGENT_DROPPED).display());
                Dropped { count: 1, ..Default::default() }
            }
        };
        let path = self.dir.join(DROPPED);
        match crate::fsutil::read_capped(&path, 4096, &crate::fsutil::Owners::anyone()) {
            Ok(t) => {
                fs::remove_file(&path).map_err(io_err(&path))?;
                d.add(Dropped::parse(&String::from_utf8_lossy(&t)).unwrap_or_default());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Not a file the hooks wrote (a link, a FIFO, a directory, too
            // big, unreadable): never read, set aside so the hooks start a
            // fresh count; what it held is counted as one lost event.
            Err(e) => {
                self.set_aside(DROPPED, &e);
                d.count += 1;
            }
        }
        Ok(d)
    }

    /// Moves `queue.log` into `pending/` under the lock, then makes the
    /// chunk and both directory entries durable. Returns the chunk, or
    /// `None` when the queue was empty.
    pub fn rotate(&self, wait: Duration) -> Result<Option<PathBuf>, SpoolError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // The agent's own queue first: no lock the hooks' user can hold.
        if let Err(e) = self.rotate_agent() {
            log::error!("cannot rotate the agent's queue: {e}");
        }
        let lock_path = self.dir.join(QUEUE_LOCK);
        self.heal_queue_lock();
        let lock = open_create(&lock_path, false).map_err(io_err(&lock_path))?;
        if !lock_until(&lock, Instant::now() + wait) {
            return Err(SpoolError::LockTimeout { path: lock_path });
        }
        self.heal_seq();
        self.heal_counter();
        let queue = self.queue();
        let regular = match fs::symlink_metadata(&queue) {
            Ok(m) if m.is_file() && m.len() > 0 => true,
            // A link or FIFO in the queue's place is moved along like a
            // queue, never opened here: delivery sets it aside unread, and
            // the hooks start a new queue.log.
            Ok(m) if !m.is_file() => false,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpoolError::Io { path: queue, source: e }),
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let chunk = self.pending().join(format!("{:020}-q{n}.ndjson", unix_nanos()));
        rename_noreplace(&queue, &chunk).map_err(io_err(&chunk))?;
        // The next hook finds a queue.log of the agent's (0660, the hooks'
        // group), so the one after this rotation is the agent's to re-own.
        if let Err(e) = open_new_with(&queue, true) {
            log::debug!("{}: not made ahead of the hooks: {e}", queue.display());
        }
        drop(lock);
        if regular {
            crate::fsutil::open_read(&chunk, &crate::fsutil::Owners::anyone())
                .and_then(|f| {
                    take_from_hooks(&chunk, &f)?;
                    f.sync_all()
                })
                .map_err(io_err(&chunk))?;
        }
        let pending = self.pending();
        fsync_dir(&pending).map_err(io_err(&pending))?;
        fsync_dir(&self.dir).map_err(io_err(&self.dir))?;
        Ok(Some(chunk))
    }

    /// Moves a spool file that is not what it must be (planted by the
    /// hooks' user) into `failed/`, unread, and counts it as damage: the
    /// agent owns the directory, so the name is free again for a real file.
    pub(crate) fn set_aside(&self, name: &str, why: &io::Error) {
        health::count_damage();
        self.move_to_failed(&self.dir, name, why);
    }

    /// Moves an entry of `pending/` that must not be read (a link, a FIFO,
    /// a file with two names or a stranger's) into `failed/`, unread. It no
    /// longer blocks delivery, and stays there for the operator to look at.
    pub(crate) fn set_aside_pending(&self, name: &str, why: &io::Error) {
        self.move_to_failed(&self.pending(), name, why);
    }

    /// `from/name` becomes `failed/NAME.unreadable` (stamped when that is
    /// taken: both are kept) without being opened: a rename moves the
    /// name, never what a link points to. Gone already is not an error.
    fn move_to_failed(&self, from: &Path, name: &str, why: &io::Error) {
        let mut to = self.failed().join(format!("{name}.unreadable"));
        if fs::symlink_metadata(&to).is_ok() {
            to = self.failed().join(format!("{name}.{}.unreadable", unix_nanos()));
        }
        match rename_noreplace(&from.join(name), &to) {
            Ok(()) => log::error!("{why}: moved to {} unread", to.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("{why}: cannot move it to failed/ ({e}); skipped"),
        }
    }
}

/// Events the spool had to refuse, as kept in the `dropped` file: the
/// same drop count type the agent keeps, so the two never drift apart.
pub use crate::event::DropCount as Dropped;

pub use crate::fsutil::fsync_dir;

/// Whether a file is mostly holes: over 64 MiB with less than 1/64 of it
/// on disk. No writer of lines makes one, but `truncate -s 16T` does, and
/// reading it would take days. (The ratio leaves room for file systems
/// that compress, or that count blocks only once data is synced.)
pub fn is_sparse(m: &fs::Metadata) -> bool {
    m.is_file() && m.len() > 64 << 20 && m.blocks().saturating_mul(512) < m.len() / 64
}

/// Renames `from` to `to` only when `to` does not exist: every rename the
/// agent makes onto a name in the spool, where the hooks' user may have
/// put a file first. `AlreadyExists` when it had.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE).map_err(io::Error::from)
}

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Shortest and longest sleep between two tries of a busy lock.
const NAP_MIN: Duration = Duration::from_micros(50);
const NAP_MAX: Duration = Duration::from_millis(1);

/// Polls a non-blocking `flock` until `deadline`, sleeping 50 µs doubling
/// to 1 ms in between. A lock held by a stuck process must cost a hook
/// milliseconds, never the VPN's time.
fn lock_until(file: &File, deadline: Instant) -> bool {
    let mut nap = NAP_MIN;
    loop {
        match file.try_lock() {
            Ok(()) => return true,
            Err(_) if Instant::now() >= deadline => return false,
            Err(_) => std::thread::sleep(nap),
        }
        nap = (nap * 2).min(NAP_MAX);
    }
}

/// Takes `queue.lock` (`lock`), waiting while it makes progress:
/// `queue` (the path) changing size or being rotated away. Gives up when
/// it has not moved for `stall` (or `known` when an earlier hook already
/// found the lock stuck, see [`mark_stuck`]), or after `cap` in all.
/// Waiters sleep with exponential backoff (50 µs doubling to 1 ms), so a
/// burst of hundreds of hooks leaves the CPUs to whoever holds the lock.
/// `stall` must be long: a holder preempted inside its few microseconds
/// under the lock, among 300 starting processes on 2 cores, waits tens to
/// hundreds of ms for a CPU (docs/benchmarks.md, for the numbers).
fn lock_while_progress(lock: &File, queue: &Path, stall: Duration, known: Duration, cap: Duration) -> bool {
    if lock.try_lock().is_ok() {
        return true;
    }
    let look = || fs::symlink_metadata(queue).ok();
    let start = Instant::now();
    let first = look();
    let stall = if known_stuck(lock, first.as_ref()) { known } else { stall };
    let (mut seen, mut since) = (first.map(|m| (m.ino(), m.len())), start);
    let mut nap = NAP_MIN;
    loop {
        std::thread::sleep(nap);
        nap = (nap * 2).min(NAP_MAX);
        if lock.try_lock().is_ok() {
            return true;
        }
        let now = Instant::now();
        let state = look().map(|m| (m.ino(), m.len()));
        if state != seen {
            (seen, since) = (state, now);
        }
        if now - since >= stall || now - start >= cap {
            return false;
        }
    }
}

/// A hook that gave up on `queue.lock` stamps its mtime: "stuck as of now".
fn mark_stuck(lock: &File) {
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    let _ = nix::sys::stat::futimens(lock, &now, &now);
}

/// Whether a hook gave up on the lock after `queue.log` last changed (no
/// line was appended since): then the lock is stuck as far as anyone knows,
/// and waiting the whole stall again would only make each hook slow.
fn known_stuck(lock: &File, queue: Option<&fs::Metadata>) -> bool {
    let Ok(l) = lock.metadata() else { return false };
    let stamp = |m: &fs::Metadata| (m.mtime(), m.mtime_nsec());
    // Rotated away and nothing appended since: no evidence either way.
    queue.is_some_and(|q| stamp(&l) > stamp(q))
}

fn options(append: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(!append).write(!append).append(append).custom_flags(crate::fsutil::guarded_flags()).mode(FILE_MODE);
    o
}

/// Opens a spool file, creating it 0660 if missing. `fchmod` after
/// creating, because OpenVPN's umask may have taken the group bits away.
/// Never follows a link nor blocks on a FIFO, and refuses anything but a
/// regular file with one link: the hooks' user may have replaced the name.
/// Opening without `O_CREAT` first also keeps `fs.protected_regular` from
/// refusing a file someone else created in the sticky spool.
pub fn open_create(path: &Path, append: bool) -> io::Result<File> {
    open_create_sized(path, append).map(|(file, _)| file)
}

/// [`open_create`], with the file's length from the same `fstat`.
pub fn open_create_sized(path: &Path, append: bool) -> io::Result<(File, u64)> {
    let file = match options(append).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open_new_with(path, append) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options(append).open(path),
            other => other,
        },
        other => other,
    }
    .map_err(|e| crate::fsutil::loop_is_link(path, e))?;
    let len = crate::fsutil::check_file(path, &file, &crate::fsutil::Owners::anyone())?.len();
    Ok((file, len))
}

/// A rotated queue the agent owns leaves the hooks' group's reach: mode
/// 0600, so the hooks' user cannot open it again (what it still holds open
/// it wrote itself). The group stays the spool's (setgid): with no group
/// bits it grants nothing, and the unit's seccomp filter forbids chown
/// (`~@privileged`). One the hooks' user made itself (before the agent made
/// queue.log for it) stays its own file.
fn take_from_hooks(path: &Path, file: &File) -> io::Result<()> {
    let m = file.metadata()?;
    if m.uid() != nix::unistd::geteuid().as_raw() {
        log::debug!("{}: made by uid {}; left as it is", path.display(), m.uid());
        return Ok(());
    }
    file.set_permissions(Permissions::from_mode(0o600))
}

fn open_new(path: &Path) -> io::Result<File> {
    open_new_with(path, false)
}

fn open_new_with(path: &Path, append: bool) -> io::Result<File> {
    let file = options(append).create_new(true).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

#[cfg(test)]
mod tests;
