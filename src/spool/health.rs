//! The spool's control files (`queue.lock`, `seq.counter`, `agent.lock`)
//! kept healthy: the hooks' user can write to some of them and may have
//! made others, so each one is either what it must be or set aside into
//! `failed/` and made anew, with one log line and a count the agent
//! reports ([`damaged`]).
//!
//! What `seq` promises (the counter, see [`super::Counter`]):
//! - a number the agent has seen is never given out again: the agent keeps
//!   the highest it saw in `seq.floor` (its own, 0600), and a counter found
//!   below it (truncated), oversized, or not a regular file of the agent's
//!   or the hooks' is replaced by one that starts at that floor or the
//!   time in microseconds, whichever is higher (a hook that finds the
//!   counter damaged restarts above the time too, so later numbers stay
//!   higher);
//! - the counter's size is bounded: over [`REBASE_AT`] numbers past its
//!   header the agent starts a new one where it stands (plus [`GAP`], so a
//!   hook still holding the old one open cannot repeat a number), and one
//!   over [`COUNTER_MAX`] is damage the hooks route around;
//! - it promises neither the absence of gaps nor, between the hooks' user
//!   tampering with the counter and the agent's next rotation, that two
//!   events never share a number: `event_id` is the unique key.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{COUNTER, FILE_MODE, HEADER, QUEUE_LOCK, Spool, open_new, unix_nanos};
use crate::fsutil;

/// The agent's record of the highest seq it has seen (decimal).
pub const SEQ_FLOOR: &str = "seq.floor";
/// The agent's lock (one agent per spool).
pub const AGENT_LOCK: &str = "agent.lock";

/// Numbers past the header after which the agent starts a new counter.
pub const REBASE_AT: u64 = 1 << 20;
/// How far above the old counter's last number a new one starts.
pub const GAP: u64 = 1 << 20;
/// A counter longer than its header plus this is damage.
pub const COUNTER_MAX: u64 = 1 << 30;

/// Control files set aside since the agent started.
static DAMAGED: AtomicU64 = AtomicU64::new(0);

/// How many control files were found damaged and set aside so far.
pub fn damaged() -> u64 {
    DAMAGED.load(Ordering::Relaxed)
}

pub(super) fn count_damage() {
    DAMAGED.fetch_add(1, Ordering::Relaxed);
}

impl Spool {
    /// `queue.lock` must be a regular file of the agent's (or root's), mode
    /// 0660: one the hooks' user made could be made a directory, a FIFO or
    /// mode 000 by it, and every hook would then bypass. Called by the
    /// agent before it takes the lock.
    pub(super) fn heal_queue_lock(&self) {
        let path = self.dir.join(QUEUE_LOCK);
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.make_queue_lock(),
            Err(e) => return log::error!("{}: {e}", path.display()),
        };
        if hooks_made(&m) {
            // Made by a hook (an older version, or before install made it):
            // replaced by the agent's own, quietly; it holds nothing.
            log::info!("{}: made by uid {}; replaced by the agent's own", path.display(), m.uid());
            return self.replace_with_own(QUEUE_LOCK, b"");
        }
        if let Some(why) = unhealthy(&m, FILE_MODE) {
            let e = io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
            self.set_aside(QUEUE_LOCK, &e);
            self.make_queue_lock();
        }
    }

    /// Puts a new file of the agent's (0660, the spool's group) with
    /// `content` in place of `name`: replacing is the point here.
    fn replace_with_own(&self, name: &str, content: &[u8]) {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.agent.tmp"));
        let _ = fs::remove_file(&tmp);
        let made = open_new(&tmp).and_then(|mut f| f.write_all(content)).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            log::error!("{}: cannot replace it with the agent's own: {e}", path.display());
        }
    }

    fn make_queue_lock(&self) {
        let path = self.dir.join(QUEUE_LOCK);
        match open_new(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => log::error!("{}: cannot make it: {e}", path.display()),
        }
    }

    /// Checks `seq.counter` under `queue.lock` (see the module docs): set
    /// aside and restarted above the floor when damaged, reset or oversized;
    /// started anew where it stands when long; else its blocks behind the
    /// last one freed.
    pub(super) fn heal_counter(&self) {
        let path = self.dir.join(COUNTER);
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Made by the next hook (continuing `seq`, or above the time).
            Err(_) => return,
        };
        let floor = self.read_floor();
        let current = match self.open_counter() {
            Ok(c) => c.current().ok(),
            Err(_) => None,
        };
        let why = match (current, unhealthy(&m, FILE_MODE)) {
            // The hooks' own counter (made where none was) or a changed
            // mode: taken over where it stands.
            (Some(cur), Some(why)) if cur >= floor && m.is_file() && m.nlink() == 1 => {
                if hooks_made(&m) {
                    log::info!("{}: made by uid {}; the agent's own continues above {cur}", path.display(), m.uid());
                } else {
                    log::warn!("{}: {why}; the agent's own counter continues above {cur}", path.display());
                    count_damage();
                }
                self.write_floor(cur.saturating_add(GAP));
                return self.restart_counter(cur.saturating_add(GAP));
            }
            (_, Some(why)) => why,
            (None, None) => "damaged header, unopenable or oversized".into(),
            (Some(cur), None) if cur < floor => format!("at {cur}, below {floor} already given out (reset?)"),
            (Some(cur), None) => {
                self.write_floor(cur);
                if m.len() - HEADER as u64 >= REBASE_AT {
                    self.write_floor(cur.saturating_add(GAP));
                    return self.restart_counter(cur.saturating_add(GAP));
                }
                return punch_holes(&path, &m);
            }
        };
        let e = io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
        self.set_aside(COUNTER, &e);
        // Above everything seen and above the time, but not above what a
        // hook that finds a damaged counter restarts at (the time, later):
        // numbers keep increasing across the two kinds of restart.
        let base = floor.max(unix_nanos() / 1000);
        self.write_floor(base);
        self.restart_counter(base);
    }

    /// Puts a new counter with `base` in place of whatever is there.
    fn restart_counter(&self, base: u64) {
        let path = self.dir.join(COUNTER);
        let tmp = self.dir.join(format!(".{COUNTER}.agent.tmp"));
        let _ = fs::remove_file(&tmp);
        let made = open_new(&tmp)
            .and_then(|mut f| f.write_all(format!("{base:<width$}\n", width = HEADER - 1).as_bytes()))
            // Replacing is the point here: under queue.lock, by the agent.
            .and_then(|()| fs::rename(&tmp, &path));
        match made {
            Ok(()) => log::info!("{}: started at {base}", path.display()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                log::error!("{}: cannot start a new counter: {e}", path.display());
            }
        }
    }

    fn read_floor(&self) -> u64 {
        let Ok((mut f, _)) = self.open_agent_file(SEQ_FLOOR, false) else { return 0 };
        let mut text = String::new();
        let _ = (&mut f).take(32).read_to_string(&mut text);
        text.trim().parse().unwrap_or(0)
    }

    fn write_floor(&self, seq: u64) {
        let result = self.open_agent_file(SEQ_FLOOR, false).and_then(|(mut f, _)| {
            f.seek(SeekFrom::Start(0))?;
            f.set_len(0)?;
            f.write_all(format!("{seq}\n").as_bytes())
        });
        if let Err(e) = result {
            log::error!("{}: {e}", self.dir.join(SEQ_FLOOR).display());
        }
    }
}

/// Why a control file is not what it must be: a regular file with one
/// link, owned by the agent or root (one the hooks' user made, where an
/// older version left the name free, it can chmod or replace at will),
/// mode `mode`, not sparse nor oversized. `None` when healthy.
pub fn unhealthy(m: &fs::Metadata, mode: u32) -> Option<String> {
    let me = nix::unistd::geteuid().as_raw();
    if let Err(e) = fsutil::check_meta(Path::new(""), m, &fsutil::Owners::anyone()) {
        let text = e.to_string();
        return Some(text.trim_start_matches(": ").to_string());
    }
    if m.uid() != me && m.uid() != 0 {
        return Some(format!("owned by uid {}, not the agent", m.uid()));
    }
    if m.mode() & 0o7777 != mode {
        return Some(format!("mode {:04o}, not {mode:04o}", m.mode() & 0o7777));
    }
    if super::is_sparse(m) || m.len() > HEADER as u64 + COUNTER_MAX {
        return Some(format!("{} bytes", m.len()));
    }
    None
}

/// A file a hook made where none was (an older version, or before
/// `install` made the agent's): the hooks' user's, otherwise as it must
/// be (regular, one link, 0660, not sparse). Taken over quietly.
fn hooks_made(m: &fs::Metadata) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    m.uid() != me
        && m.uid() != 0
        && m.is_file()
        && m.nlink() == 1
        && m.mode() & 0o7777 == FILE_MODE
        && !super::is_sparse(m)
        && m.len() <= HEADER as u64 + COUNTER_MAX
}

/// Frees the counter's blocks behind its last one: its size is the
/// number, its content nothing (1 byte per event where the file system
/// cannot punch holes).
fn punch_holes(path: &Path, m: &fs::Metadata) {
    const BLOCK: u64 = 4096;
    let end = m.len() / BLOCK * BLOCK;
    if end <= BLOCK || m.blocks() <= 16 {
        return;
    }
    let Ok(file) = fs::OpenOptions::new().write(true).custom_flags(fsutil::guarded_flags()).open(path) else {
        return;
    };
    let punch = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if let Err(e) = nix::fcntl::fallocate(&file, punch, BLOCK as i64, (end - BLOCK) as i64) {
        log::debug!("{}: cannot punch holes ({e}); it grows 1 byte per event", path.display());
    }
}

/// What `check` says about the control files: one line for each that is
/// not right (the agent sets those aside and makes them anew when it
/// next rotates or starts). Read-only; `lstat` only.
pub fn control_file_problems(dir: &Path, agent_uid: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, mode) in [(QUEUE_LOCK, FILE_MODE), (COUNTER, FILE_MODE), (AGENT_LOCK, 0o600)] {
        let path = dir.join(name);
        let Ok(m) = fs::symlink_metadata(&path) else { continue };
        // The counter the hooks made (an upgraded spool) is the agent's to
        // take over at its next rotation, not a fault.
        let owner_ok = name == COUNTER || agent_uid.is_none_or(|u| m.uid() == u || m.uid() == 0);
        let why = match fsutil::check_meta(&path, &m, &fsutil::Owners::anyone()) {
            Err(e) => Some(e.to_string()),
            Ok(()) if !owner_ok => Some(format!("{}: owned by uid {}, not the agent", path.display(), m.uid())),
            Ok(()) if m.mode() & 0o7777 != mode => {
                Some(format!("{}: mode {:04o}, not {mode:04o}", path.display(), m.mode() & 0o7777))
            }
            Ok(()) if super::is_sparse(&m) || m.len() > HEADER as u64 + COUNTER_MAX => {
                Some(format!("{}: {} bytes (sparse or oversized)", path.display(), m.len()))
            }
            Ok(()) => None,
        };
        out.extend(why);
    }
    out
}
