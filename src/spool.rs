//! The spool: the only place hooks write, and the agent's only input.
//!
//! Layout (the seed's, plus `failed/` and a few small files):
//! - `queue.log`: NDJSON appended by hooks under `queue.lock`;
//! - `pending/`: chunks, named `<unix nanos, 20 digits>-<origin>.ndjson` so
//!   that names sort in write order; files starting with `.` are unfinished
//!   and ignored;
//! - `failed/`: lines or batches the server (or the parser) refused;
//! - `seq`: the last sequence number given out, guarded by its own lock;
//! - `dropped`: events refused because the spool was full (see below).
//!
//! Guarantees:
//! - a line is appended with one `write` while `queue.lock` is held, and
//!   rotation takes the same lock, so a line is never torn or split by a
//!   rotation; a short write (disk full) is cut back off before unlocking;
//! - `seq` is taken while `queue.lock` is held, so it increases in queue
//!   order; it comes from the `seq` file under its own lock, so an event
//!   that had to bypass a stuck `queue.lock` still gets a unique number;
//! - a writer never waits longer than the caller's bound: when `queue.lock`
//!   is held too long, the event is written to its own file in `pending/`
//!   (temp name, then rename), which the agent delivers like any chunk;
//! - files are opened with `O_NOFOLLOW` and created mode 0660 (whatever the
//!   umask), taking the spool directory's group (it is setgid);
//! - hooks never fsync: the agent pays for durability when it rotates.

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::Event;

pub const QUEUE: &str = "queue.log";
pub const QUEUE_LOCK: &str = "queue.lock";
pub const SEQ: &str = "seq";
pub const DROPPED: &str = "dropped";
pub const PENDING: &str = "pending";
pub const FAILED: &str = "failed";

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
    pub fn pending(&self) -> PathBuf {
        self.dir.join(PENDING)
    }
    pub fn failed(&self) -> PathBuf {
        self.dir.join(FAILED)
    }

    /// Appends one event, waiting at most `wait` for each lock. Nothing
    /// here blocks without a bound. `max_queue_bytes` caps `queue.log`
    /// (the agent bounds the rest of the spool).
    pub fn append(&self, ev: &Event, wait: Duration, max_queue_bytes: u64) -> Result<Written, SpoolError> {
        let deadline = Instant::now() + wait;
        let lock_path = self.dir.join(QUEUE_LOCK);
        let lock = open_create(&lock_path, false).map_err(io_err(&lock_path))?;
        if !lock_until(&lock, deadline) {
            return self.bypass(ev, deadline + wait);
        }
        let seq = self.next_seq(deadline + wait)?;
        let line = ev.to_line(seq);
        let queue = self.queue();
        let (mut file, len) = open_create_sized(&queue, true).map_err(io_err(&queue))?;
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
    fn bypass(&self, ev: &Event, deadline: Instant) -> Result<Written, SpoolError> {
        let seq = match self.next_seq(deadline) {
            Ok(seq) => seq,
            // Even the seq lock is stuck: 0 means "no number could be given".
            Err(SpoolError::LockTimeout { .. }) => 0,
            Err(e) => return Err(e),
        };
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

    /// Takes the next sequence number from `seq` under that file's lock.
    /// A damaged counter restarts above the current time in microseconds,
    /// which is above any count a real spool reaches, so numbers stay
    /// unique and increasing.
    pub fn next_seq(&self, deadline: Instant) -> Result<u64, SpoolError> {
        let path = self.dir.join(SEQ);
        let file = open_create(&path, false).map_err(io_err(&path))?;
        if !lock_until(&file, deadline) {
            return Err(SpoolError::LockTimeout { path });
        }
        // One pread/pwrite at offset 0 into a fixed buffer: this runs in
        // every hook, and read_to_string would add a statx, two lseeks and
        // a second read. A u64 and its newline fit with room to spare, so
        // a full buffer means a damaged (overlong) file.
        let mut buf = [0u8; 32];
        let n = file.read_at(&mut buf, 0).map_err(io_err(&path))?;
        let last = match std::str::from_utf8(&buf[..n]).map(str::trim) {
            _ if n == buf.len() => unix_nanos() / 1000,
            Ok("") => 0,
            Ok(t) => t.parse::<u64>().unwrap_or_else(|_| unix_nanos() / 1000),
            Err(_) => unix_nanos() / 1000,
        };
        let seq = last + 1;
        let new = format!("{seq}\n");
        file.write_all_at(new.as_bytes(), 0).map_err(io_err(&path))?;
        if new.len() < n {
            file.set_len(new.len() as u64).map_err(io_err(&path))?;
        }
        Ok(seq)
    }

    /// Records one event refused for space: `count first_seq last_seq`.
    /// Called with `queue.lock` held.
    fn count_dropped(&self, seq: u64) -> io::Result<()> {
        let path = self.dir.join(DROPPED);
        let mut file = open_create(&path, false)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let d = Dropped::parse(&text).unwrap_or_default().add(1, seq, seq);
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
        let path = self.dir.join(DROPPED);
        let text = match crate::fsutil::read_capped(&path, 4096, &crate::fsutil::Owners::anyone()) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Dropped::default()),
            // Not a file the hooks wrote (a link, a FIFO, garbage): never
            // read, only removed so the hooks start a fresh count.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                log::warn!("{}; removed", crate::fsutil::printable(&e.to_string()));
                String::new()
            }
            Err(e) => return Err(SpoolError::Io { path, source: e }),
        };
        fs::remove_file(&path).map_err(io_err(&path))?;
        Ok(Dropped::parse(&text).unwrap_or_default())
    }

    /// Moves `queue.log` into `pending/` under the lock, then makes the
    /// chunk and both directory entries durable. Returns the chunk, or
    /// `None` when the queue was empty.
    pub fn rotate(&self, wait: Duration) -> Result<Option<PathBuf>, SpoolError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let lock_path = self.dir.join(QUEUE_LOCK);
        let lock = match open_create(&lock_path, false) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.set_aside(QUEUE_LOCK, &e);
                open_create(&lock_path, false)
            }
            other => other,
        }
        .map_err(io_err(&lock_path))?;
        if !lock_until(&lock, Instant::now() + wait) {
            return Err(SpoolError::LockTimeout { path: lock_path });
        }
        self.heal_seq();
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
        fs::rename(&queue, &chunk).map_err(io_err(&chunk))?;
        drop(lock);
        if regular {
            crate::fsutil::open_read(&chunk, &crate::fsutil::Owners::anyone())
                .and_then(|f| f.sync_all())
                .map_err(io_err(&chunk))?;
        }
        sync_dir(&self.pending())?;
        sync_dir(&self.dir)?;
        Ok(Some(chunk))
    }

    /// Moves a spool file that is not what it must be (planted by the
    /// hooks' user) into `failed/` under a unique name, unread: the agent
    /// owns the directory, so the name is free again for a real file.
    fn set_aside(&self, name: &str, why: &io::Error) {
        let to = self.failed().join(format!("{name}.{}.unreadable", unix_nanos()));
        match fs::rename(self.dir.join(name), &to) {
            Ok(()) => log::error!("{why}: moved to {} unread", to.display()),
            Err(e) => log::error!("{why}: cannot move it to failed/: {e}"),
        }
    }

    /// A `seq` that is a link, FIFO or second name is set aside and the
    /// counter restarted above the current time in microseconds (as for a
    /// damaged one), so numbers stay unique and increasing. Called by the
    /// agent under `queue.lock`.
    fn heal_seq(&self) {
        let path = self.dir.join(SEQ);
        let Ok(m) = fs::symlink_metadata(&path) else { return };
        if let Err(e) = crate::fsutil::check_meta(&path, &m, &crate::fsutil::Owners::anyone()) {
            self.set_aside(SEQ, &e);
            let restart = format!("{}\n", unix_nanos() / 1000);
            if let Err(e) = crate::fsutil::replace_file(&path, restart.as_bytes(), FILE_MODE) {
                log::error!("{}: cannot restart the counter: {e}", path.display());
            }
        }
    }
}

/// Events the spool had to refuse, as kept in the `dropped` file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl Dropped {
    pub fn parse(text: &str) -> Option<Dropped> {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(count)), Some(Ok(first_seq)), Some(Ok(last_seq))) => Some(Dropped { count, first_seq, last_seq }),
            _ => None,
        }
    }
    pub fn add(self, count: u64, first: u64, last: u64) -> Dropped {
        if self.count == 0 {
            return Dropped { count, first_seq: first, last_seq: last };
        }
        Dropped { count: self.count + count, first_seq: self.first_seq.min(first), last_seq: self.last_seq.max(last) }
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} {}", self.count, self.first_seq, self.last_seq)
    }
}

pub use crate::fsutil::fsync_dir;

/// [`fsync_dir`], with the directory named in the error.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    fsync_dir(dir).map_err(io_err(dir))
}

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Polls a non-blocking `flock` until `deadline`. A lock held by a stuck
/// process must cost a hook milliseconds, never the VPN's time.
fn lock_until(file: &File, deadline: Instant) -> bool {
    loop {
        match file.try_lock() {
            Ok(()) => return true,
            Err(_) if Instant::now() >= deadline => return false,
            Err(_) => std::thread::sleep(Duration::from_micros(100)),
        }
    }
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

fn open_new(path: &Path) -> io::Result<File> {
    open_new_with(path, false)
}

fn open_new_with(path: &Path, append: bool) -> io::Result<File> {
    let file = options(append).create_new(true).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use std::os::unix::fs::FileTypeExt;

    fn tmp_spool(name: &str) -> Spool {
        let dir = std::env::temp_dir().join(format!("ovt-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(PENDING)).unwrap();
        Spool::new(dir)
    }

    #[test]
    fn seq_increases_and_survives_damage() {
        let s = tmp_spool("seq");
        let d = Instant::now() + Duration::from_secs(1);
        assert_eq!(s.next_seq(d).unwrap(), 1);
        assert_eq!(s.next_seq(d).unwrap(), 2);
        fs::write(s.dir.join(SEQ), "garbage").unwrap();
        let big = s.next_seq(d).unwrap();
        assert!(big > 1_000_000_000_000_000);
        assert_eq!(s.next_seq(d).unwrap(), big + 1);
        assert_eq!(fs::read_to_string(s.dir.join(SEQ)).unwrap(), format!("{}\n", big + 1));
        // Overlong (more than the read buffer): damaged too, and cut back.
        fs::write(s.dir.join(SEQ), format!("5{}", " ".repeat(100))).unwrap();
        let again = s.next_seq(d).unwrap();
        assert!(again > 1_000_000_000_000_000);
        assert_eq!(fs::read_to_string(s.dir.join(SEQ)).unwrap(), format!("{again}\n"));
        fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn append_rotate_and_bound() {
        let s = tmp_spool("rot");
        let w = Duration::from_millis(20);
        assert_eq!(s.append(&Event::new("A"), w, 1 << 20).unwrap(), Written::Queue { seq: 1 });
        assert_eq!(s.append(&Event::new("B"), w, 1 << 20).unwrap(), Written::Queue { seq: 2 });
        let chunk = s.rotate(w).unwrap().unwrap();
        assert_eq!(fs::read_to_string(&chunk).unwrap().lines().count(), 2);
        assert!(s.rotate(w).unwrap().is_none());
        assert_eq!(s.append(&Event::new("C"), w, 10).unwrap(), Written::Dropped { seq: 3 });
        assert_eq!(s.append(&Event::new("D"), w, 10).unwrap(), Written::Dropped { seq: 4 });
        assert_eq!(s.take_dropped(w).unwrap(), Dropped { count: 2, first_seq: 3, last_seq: 4 });
        assert_eq!(s.take_dropped(w).unwrap(), Dropped::default());
        fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn stuck_lock_bypasses_into_pending() {
        let s = tmp_spool("stuck");
        let holder = open_create(&s.dir.join(QUEUE_LOCK), false).unwrap();
        holder.lock().unwrap();
        let w = s.append(&Event::new("A"), Duration::from_millis(5), 1 << 20).unwrap();
        match w {
            Written::Bypass { seq: 1, chunk } => {
                let line = fs::read_to_string(chunk).unwrap();
                assert!(line.contains("\"seq\":1,") && line.ends_with('\n'));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.rotate(Duration::from_millis(5)), Err(SpoolError::LockTimeout { .. })));
        fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn planted_queue_lock_and_seq_are_set_aside_unread() {
        let s = tmp_spool("planted");
        fs::create_dir_all(s.failed()).unwrap();
        let fifo = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::unistd::mkfifo(&s.queue(), fifo).unwrap();
        nix::unistd::mkfifo(&s.dir.join(QUEUE_LOCK), fifo).unwrap();
        let victim = s.dir.join("victim");
        fs::write(&victim, "7\n").unwrap();
        std::os::unix::fs::symlink(&victim, s.dir.join(SEQ)).unwrap();
        // Returns at once (nothing blocks on the FIFOs) and moves the queue
        // FIFO along as a chunk, which delivery then sets aside.
        let chunk = s.rotate(Duration::from_millis(20)).unwrap().unwrap();
        assert!(fs::symlink_metadata(&chunk).unwrap().file_type().is_fifo());
        let aside: Vec<String> =
            fs::read_dir(s.failed()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(aside.iter().any(|n| n.starts_with("queue.lock.") && n.ends_with(".unreadable")), "{aside:?}");
        assert!(aside.iter().any(|n| n.starts_with("seq.")), "{aside:?}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "7\n", "the link target is untouched");
        // The spool works again: a real lock and a counter above anything.
        let w = Duration::from_millis(20);
        match s.append(&Event::new("A"), w, 1 << 20).unwrap() {
            Written::Queue { seq } => assert!(seq > 1_000_000_000_000_000),
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn symlinked_queue_is_refused() {
        let s = tmp_spool("link");
        let target = s.dir.join("elsewhere");
        std::os::unix::fs::symlink(&target, s.queue()).unwrap();
        assert!(s.append(&Event::new("A"), Duration::from_millis(5), 1 << 20).is_err());
        assert!(!target.exists());
        fs::remove_dir_all(&s.dir).unwrap();
    }
}
