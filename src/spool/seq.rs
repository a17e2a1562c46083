//! The sequence counter, `seq.counter`: where every event's `seq` comes
//! from, how a damaged, reset or grown counter is replaced (never below
//! what the agent has seen), and the older `seq` file it continues.
//!
//! Guarantees: taking a number is one append, with no lock and no
//! read-modify-write; a counter that cannot be used never loses an event
//! (the number then comes from the time in microseconds).

use super::*;

impl Spool {
    /// A seq taken without `queue.lock` (the bypass, the agent's own
    /// queue): from the counter when it is usable, else above the time in
    /// microseconds (a damaged counter is replaced only under the lock).
    pub(super) fn seq_unlocked(&self, counter: io::Result<Counter>) -> Result<u64, SpoolError> {
        let counter = match counter {
            Ok(c) => Ok(c),
            Err(e) => self.recover_counter(e, false),
        };
        // Whatever is wrong with the counter (damaged, oversized, made
        // unreadable), the event is kept: above the time in microseconds.
        Ok(counter.and_then(|c| c.take().map_err(io_err(&self.dir.join(COUNTER)))).unwrap_or_else(|e| {
            log::debug!("{e}; seq above the time");
            (unix_nanos() / 1000).max(1)
        }))
    }

    /// Opens `seq.counter` as it is: `NotFound` when it was never made,
    /// `InvalidData` when it is not a regular file with one link or its
    /// header is damaged.
    pub(super) fn open_counter(&self) -> io::Result<Counter> {
        let path = self.dir.join(COUNTER);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(fsutil::guarded_flags())
            .open(&path)
            .map_err(|e| fsutil::loop_is_link(&path, e))?;
        let m = fsutil::check_file(&path, &file, &Owners::anyone())?;
        if m.len() > HEADER as u64 + health::COUNTER_MAX || is_sparse(&m) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: {} bytes", path.display(), m.len())));
        }
        let mut buf = [0u8; HEADER];
        let n = file.read_at(&mut buf, 0)?;
        match parse_header(&buf[..n]) {
            Some(base) => Ok(Counter { file, base }),
            None => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: damaged header", path.display()))),
        }
    }

    /// Makes `seq.counter` when it is missing, or (`replace`, only under
    /// `queue.lock`) damaged, and opens it. The first one continues the old
    /// `seq` (read under its lock, then marked as moved), so an upgrade
    /// leaves no gap; any later one (the counter was removed or damaged)
    /// starts above the time in microseconds, like the old rule for damage.
    /// Written under a temporary name and renamed into place, so no one
    /// ever sees it without its header; when two hooks race, the first
    /// rename wins (`RENAME_NOREPLACE`) and both use that one.
    pub(super) fn recover_counter(&self, why: io::Error, in_queue: bool) -> Result<Counter, SpoolError> {
        let path = self.dir.join(COUNTER);
        let replace = match why.kind() {
            io::ErrorKind::NotFound => false,
            io::ErrorKind::InvalidData if in_queue => true,
            _ => return Err(SpoolError::Io { path, source: why }),
        };
        let after_time = || (unix_nanos() / 1000).max(1);
        let legacy_path = self.dir.join(SEQ);
        let legacy = open_create(&legacy_path, false).ok();
        let locked = legacy.as_ref().filter(|f| lock_until(f, Instant::now() + LEGACY_WAIT));
        let base = match locked {
            Some(f) if !replace => {
                let mut buf = [0u8; 32];
                let n = f.read_at(&mut buf, 0).map_err(io_err(&legacy_path))?;
                let last = match std::str::from_utf8(&buf[..n]).map(str::trim) {
                    _ if n == buf.len() => None,
                    Ok("") => Some(0),
                    Ok(t) => t.parse::<u64>().ok().filter(|&n| n < SANE),
                    Err(_) => None,
                };
                last.unwrap_or_else(after_time)
            }
            // Another process holds the old lock: most likely a hook of this
            // version moving it into seq.counter this very moment (an
            // upgrade met by a burst of hooks). Its counter is the one to
            // use; starting one above the time would be a gap of 10^15 the
            // server sees, and could win the rename race against it.
            None if !replace && legacy.is_some() => {
                let deadline = Instant::now() + MIGRATION_WAIT;
                let mut nap = NAP_MIN;
                loop {
                    match self.open_counter() {
                        Ok(c) => return Ok(c),
                        Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < deadline => {
                            std::thread::sleep(nap);
                            nap = (nap * 2).min(NAP_MAX);
                        }
                        Err(_) => break after_time(),
                    }
                }
            }
            _ => after_time(),
        };
        if let Some(f) = locked {
            // Marked before the counter exists: a crash in between costs a
            // gap, never a number given out twice.
            f.write_all_at(MOVED, 0).and_then(|()| f.set_len(MOVED.len() as u64)).map_err(io_err(&legacy_path))?;
        }
        let tmp = self.dir.join(format!(".{COUNTER}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let made = open_new(&tmp)
            .and_then(|mut f| f.write_all(format!("{base:<width$}\n", width = HEADER - 1).as_bytes()))
            .and_then(|()| {
                if replace {
                    fs::rename(&tmp, &path)
                } else {
                    nix::fcntl::renameat2(
                        nix::fcntl::AT_FDCWD,
                        &tmp,
                        nix::fcntl::AT_FDCWD,
                        &path,
                        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
                    )
                    .map_err(io::Error::from)
                }
            });
        match made {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(SpoolError::Io { path: tmp, source: e });
            }
        }
        drop(legacy);
        self.open_counter().map_err(io_err(&path))
    }

    /// Takes the next sequence number, making the counter if needed (for
    /// tests; hooks go through [`Spool::append`]).
    #[cfg(test)]
    pub(super) fn next_seq(&self) -> Result<u64, SpoolError> {
        let counter = match self.open_counter() {
            Ok(c) => c,
            Err(e) => self.recover_counter(e, true)?,
        };
        counter.take().map_err(io_err(&self.dir.join(COUNTER)))
    }

    /// A `seq` that is a link, FIFO or second name is set aside and the
    /// counter restarted above the current time in microseconds (as for a
    /// damaged one), so numbers stay unique and increasing. Called by the
    /// agent under `queue.lock`.
    pub(super) fn heal_seq(&self) {
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

/// The sequence counter: `seq.counter` opened `O_APPEND`. One 1-byte
/// `write` appends at the end under the kernel's inode lock and leaves this
/// process's offset just past it, so `lseek(fd, 0, SEEK_CUR)` afterwards is
/// a size no other writer got: unique and increasing, with no lock and no
/// read-modify-write. (The offset is this open file's own; nobody else
/// shares it.)
pub(super) struct Counter {
    file: File,
    base: u64,
}

impl Counter {
    /// The last number given out, without taking one.
    pub(super) fn current(&self) -> io::Result<u64> {
        let len = self.file.metadata()?.len();
        Ok(self.base.saturating_add(len.saturating_sub(HEADER as u64)))
    }

    pub(super) fn take(&self) -> io::Result<u64> {
        let mut f = &self.file;
        if f.write(b"\n")? != 1 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "counter not extended"));
        }
        let end = f.stream_position()?;
        end.checked_sub(HEADER as u64)
            .filter(|&k| k > 0)
            .and_then(|k| self.base.checked_add(k))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "counter shorter than its header"))
    }
}

/// A new counter's content: its header, with `base`.
pub fn counter_header(base: u64) -> Vec<u8> {
    format!("{base:<width$}\n", width = HEADER - 1).into_bytes()
}

/// The base in a counter's header, or `None` when it is damaged.
pub(super) fn parse_header(h: &[u8]) -> Option<u64> {
    if h.len() != HEADER || h[HEADER - 1] != b'\n' {
        return None;
    }
    std::str::from_utf8(&h[..HEADER - 1]).ok()?.trim_end_matches(' ').parse::<u64>().ok().filter(|&b| b < SANE)
}
