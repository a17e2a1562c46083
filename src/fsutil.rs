//! Opening files across a trust boundary.
//!
//! The spool's directories belong to the agent, but the files in them come
//! from the hooks' user (`nobody`, which a compromised OpenVPN controls),
//! and that user may put a symlink, a FIFO, a hard link or a device name
//! where a file is expected. Root (`install`, `status`, `check`) and the
//! agent therefore open every such file through this module:
//!
//! - never following a final symlink (`O_NOFOLLOW`) and never blocking on a
//!   FIFO or device (`O_NONBLOCK`), so an open returns at once;
//! - then checking the open file (`fstat`, so there is no race between the
//!   check and the use): a regular file with exactly one link (a second
//!   link is a file someone else named), owned by an expected user;
//! - reading at most a bound, so `/dev/zero` or a huge file costs nothing.
//!
//! Anything else is an `io::Error` of kind `InvalidData` saying what was
//! found, and is never read, copied or sent.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

/// `open(2)` flags for anything another user may have placed.
pub fn guarded_flags() -> i32 {
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

/// Who may own a file that is read. Root is always accepted (OpenVPN may
/// run its hooks as root; root can do anything anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// Anyone (root's read-only reports, where the other checks already
    /// keep it from blocking or following).
    Anyone,
    /// Root and these users.
    Only(Vec<u32>),
    /// Anyone but these users (sources: never a file the hooks' user owns).
    Not(Vec<u32>),
}

impl Owners {
    pub fn anyone() -> Owners {
        Owners::Anyone
    }
    /// Root and the running process: for a program's own state files.
    pub fn me() -> Owners {
        Owners::Only(vec![0, nix::unistd::geteuid().as_raw()])
    }
    /// Root, the running process and `others` (the hooks' user).
    pub fn me_and(others: impl IntoIterator<Item = u32>) -> Owners {
        let mut uids = vec![0, nix::unistd::geteuid().as_raw()];
        uids.extend(others);
        Owners::Only(uids)
    }
    pub fn allows(&self, uid: u32) -> bool {
        match self {
            Owners::Anyone => true,
            Owners::Only(uids) => uid == 0 || uids.contains(&uid),
            Owners::Not(uids) => uid == 0 || !uids.contains(&uid),
        }
    }
}

fn invalid(path: &Path, what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}; not opened as a file", path.display()))
}

/// What a non-regular file is, for messages.
fn kind(m: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Checks an open file: regular, one link, owned as expected.
pub fn check_file(path: &Path, file: &File, owners: &Owners) -> io::Result<Metadata> {
    let m = file.metadata()?;
    check_meta(path, &m, owners)?;
    Ok(m)
}

/// The same checks on metadata (from `fstat`, or `lstat` for a listing).
pub fn check_meta(path: &Path, m: &Metadata, owners: &Owners) -> io::Result<()> {
    if !m.is_file() {
        return Err(invalid(path, kind(m).into()));
    }
    if m.nlink() != 1 {
        return Err(invalid(path, format!("{} hard links (another name for someone else's file?)", m.nlink())));
    }
    if !owners.allows(m.uid()) {
        return Err(invalid(path, format!("owned by uid {}, who may not give the agent this file", m.uid())));
    }
    Ok(())
}

/// Opens an existing file for reading as described in the module docs.
pub fn open_read(path: &Path, owners: &Owners) -> io::Result<File> {
    let file =
        OpenOptions::new().read(true).custom_flags(guarded_flags()).open(path).map_err(|e| loop_is_link(path, e))?;
    check_file(path, &file, owners)?;
    Ok(file)
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP`; say what it means.
pub fn loop_is_link(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) { invalid(path, "a symlink".into()) } else { e }
}

/// Reads a whole small file opened with [`open_read`]; more than `cap`
/// bytes is `InvalidData` (nothing past the cap is read).
pub fn read_capped(path: &Path, cap: u64, owners: &Owners) -> io::Result<Vec<u8>> {
    let file = open_read(path, owners)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(invalid(path, format!("over {cap} bytes")));
    }
    Ok(bytes)
}

/// When a file was last changed, for telling a rewrite mid-read: inode,
/// size and mtime (s, ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

impl Stamp {
    pub fn of(m: &Metadata) -> Stamp {
        Stamp { ino: m.ino(), size: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() }
    }
    fn of_stat(st: &FileStat) -> Stamp {
        Stamp { ino: st.st_ino, size: st.st_size as u64, mtime: st.st_mtime, mtime_nsec: st.st_mtime_nsec }
    }
}

/// A file opened by [`open_beneath`], with the directory it was found in,
/// so that a second look ([`Beneath::restat`]) sees the same name in the
/// same directory, not whatever the path leads to by then.
pub struct Beneath {
    pub file: File,
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
}

impl Beneath {
    /// `lstat` of the name in its directory now.
    pub fn restat(&self) -> io::Result<Stamp> {
        fstatat(&self.dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|st| Stamp::of_stat(&st))
            .map_err(|e| walk_error(&self.path, &self.path, e))
    }
}

/// Opens a file someone else writes (OpenVPN's status file, a server conf,
/// Easy-RSA's index.txt) for reading, possibly with `CAP_DAC_READ_SEARCH`:
/// from `/` one directory at a time (`openat`, `O_PATH | O_NOFOLLOW |
/// O_DIRECTORY`), so no symlink is followed anywhere on the way; every
/// directory is [`trusted_dir`] (or the open is refused, naming it, before
/// anything below it is looked at); the file itself as [`open_read`] opens
/// one. Errors name the path and the component at fault; missing is
/// `NotFound`, a refused component `InvalidData`, a directory that cannot be
/// searched `PermissionDenied`.
pub fn open_beneath(path: &Path, owners: &Owners) -> io::Result<Beneath> {
    let (dir, name, at, st) = parent_beneath(path)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        // The directory (O_PATH needed no search of it), or the file?
        Err(Errno::EACCES) => match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::EACCES) => return Err(not_searchable(path, &at, &st)),
            Ok(f) => return Err(not_searchable(path, path, &f)),
            Err(e) => return Err(walk_error(path, path, e)),
        },
        Err(e) => return Err(loop_is_link(path, walk_error(path, path, e))),
    };
    let file = File::from(fd);
    check_file(path, &file, owners)?;
    Ok(Beneath { file, dir, name, path: path.to_path_buf() })
}

/// The same walk as [`open_beneath`], then `lstat` of the file: for a cheap
/// "has it changed?" look. A symlink there is refused.
pub fn stat_beneath(path: &Path) -> io::Result<Stamp> {
    let (dir, name, at, parent) = parent_beneath(path)?;
    let st = match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::EACCES) => return Err(not_searchable(path, &at, &parent)),
        Err(e) => return Err(walk_error(path, path, e)),
    };
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK {
        return Err(invalid(path, "a symlink".into()));
    }
    Ok(Stamp::of_stat(&st))
}

/// Reads a whole small file through [`open_beneath`]; more than `cap`
/// bytes is `InvalidData`.
pub fn read_beneath(path: &Path, cap: u64, owners: &Owners) -> io::Result<Vec<u8>> {
    let file = open_beneath(path, owners)?.file;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(invalid(path, format!("over {cap} bytes")));
    }
    Ok(bytes)
}

/// Walks to the directory `path` is in: that directory's `O_PATH` fd, the
/// file's name, the directory's path and its `fstat`.
fn parent_beneath(path: &Path) -> io::Result<(OwnedFd, OsString, PathBuf, FileStat)> {
    use std::path::Component;
    let refuse = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {what}", path.display()));
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => names.push(n),
            Component::ParentDir | Component::Prefix(_) => return Err(refuse("`..` in the path; give it without")),
        }
    }
    if !path.is_absolute() {
        return Err(refuse("not an absolute path"));
    }
    let Some((name, dirs)) = names.split_last() else { return Err(refuse("names no file")) };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut at = PathBuf::from("/");
    let mut dir = nix::fcntl::open("/", flags, Mode::empty()).map_err(|e| walk_error(path, &at, e))?;
    let mut st = fstat(&dir).map_err(|e| walk_error(path, &at, e))?;
    trusted_dir(path, &at, &st)?;
    for name in dirs {
        let next = at.join(name);
        let fd = match openat(&dir, *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let link = fstatat(&dir, *name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK);
                let what = if link { "a symlink" } else { "not a directory" };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {} is {what}; sources are opened only through real directories, never through a link",
                        path.display(),
                        next.display()
                    ),
                ));
            }
            Err(Errno::EACCES) => return Err(not_searchable(path, &at, &st)),
            Err(e) => return Err(walk_error(path, &next, e)),
        };
        st = fstat(&fd).map_err(|e| walk_error(path, &next, e))?;
        trusted_dir(path, &next, &st)?;
        (dir, at) = (fd, next);
    }
    Ok((dir, name.to_os_string(), at, st))
}

/// `EACCES` on the way: the directory (or file) `at` that stops the agent's
/// user, with its mode and owner.
fn not_searchable(path: &Path, at: &Path, st: &FileStat) -> io::Error {
    let dir = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    let (what, how) = if dir { (at.display().to_string(), "searched") } else { ("the file".to_string(), "read") };
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{}: {what} (mode {:04o}, uid {}, gid {}) cannot be {how}: Permission denied",
            path.display(),
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid
        ),
    )
}

/// A directory a source may be below: owned by root (or by the running
/// user itself), and writable by nobody else, unless sticky (then others
/// may only add names; what they add is refused by the next step). In any
/// other directory another user could rename a directory away and put a
/// link or a tree of their choosing in its place between two looks.
pub fn trusted_dir(path: &Path, dir: &Path, st: &FileStat) -> io::Result<()> {
    let mode = st.st_mode;
    let sticky = mode & 0o1000 != 0;
    let me = nix::unistd::geteuid().as_raw();
    let what = if SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
        "not a directory".to_string()
    } else if st.st_uid != 0 && st.st_uid != me {
        format!("owned by uid {}", st.st_uid)
    } else if !sticky && mode & 0o002 != 0 {
        "writable by everyone".to_string()
    } else if !sticky && mode & 0o020 != 0 && st.st_gid != 0 {
        format!("writable by group gid {}", st.st_gid)
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: directory {} is {what} (mode {:04o}): someone other than root could swap what is below it; \
             sources are read only below directories only root can change (chown root and chmod go-w it, \
             or move the file)",
            path.display(),
            dir.display(),
            mode & 0o7777
        ),
    ))
}

/// An errno from the walk as an `io::Error` of the same kind, naming the
/// path and the component.
fn walk_error(path: &Path, at: &Path, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    let msg = if at == path {
        format!("{}: {e}", path.display())
    } else {
        format!("{}: {}: {e}", path.display(), at.display())
    };
    io::Error::new(e.kind(), msg)
}

/// fsync of a directory, so that renames and unlinks in it survive a
/// power cut (fsync of the file alone does not cover its name).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces a small file so that a reader or a crash sees the old content
/// or the new, never a mix, and the new one survives a power cut once this
/// returns: temp file (`.NAME.tmp`, which listings skip) created anew with
/// `O_EXCL` (so nothing planted under that name is followed), given `mode`
/// whatever the umask, fsynced, renamed over the old name (a planted file
/// or link there is replaced, not followed), then the directory fsynced.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace_file_as(path, bytes, mode, None)
}

/// [`replace_file`], the new file given `owner` (uid, gid) before its mode
/// (chown clears set-id bits) and before it gets its name: the installer
/// writes the binary, settings and unit this way, so a hook starting
/// mid-upgrade runs the old binary or the new one, never half of one.
pub fn replace_file_as(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(guarded_flags()).open(&tmp)?;
    let result = (|| {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// Reads a JSON state file (the agent's and the sources'): the agent reads
/// only its own (`Owners::me()`: one planted before the first save is
/// refused), root's `status` anyone's. `Ok(None)` when there is none; a
/// damaged one is `InvalidData`.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path, cap: u64, owners: &Owners) -> io::Result<Option<T>> {
    let bytes = match read_capped(path, cap, owners) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: damaged ({e})", path.display())))
}

/// Text from the network or from files someone else wrote, made safe for
/// a terminal and the journal: control characters (ESC, CR, backspace, a
/// newline that would forge a second log line...) and Unicode bidi or
/// other format controls become `\u{..}` escapes; everything else is kept.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ovt-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_plain_files_are_opened() {
        let d = tmp("open");
        let f = d.join("f");
        fs::write(&f, "x").unwrap();
        assert_eq!(read_capped(&f, 10, &Owners::me()).unwrap(), b"x");
        std::os::unix::fs::symlink(&f, d.join("link")).unwrap();
        let e = open_read(&d.join("link"), &Owners::anyone()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        fs::hard_link(&f, d.join("hard")).unwrap();
        assert!(open_read(&d.join("hard"), &Owners::anyone()).unwrap_err().to_string().contains("2 hard links"));
        fs::remove_file(d.join("hard")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Returns at once (O_NONBLOCK) and refuses.
        assert!(open_read(&d.join("fifo"), &Owners::anyone()).unwrap_err().to_string().contains("a FIFO"));
        assert!(read_capped(Path::new("/dev/zero"), 10, &Owners::anyone()).unwrap_err().to_string().contains("device"));
        assert!(read_capped(&f, 0, &Owners::anyone()).unwrap_err().to_string().contains("over 0 bytes"));
        let me = nix::unistd::geteuid().as_raw();
        if me != 0 {
            assert!(open_read(&f, &Owners::Only(vec![12345])).unwrap_err().to_string().contains("owned by uid"));
            assert!(open_read(&f, &Owners::Not(vec![me])).is_err());
        }
        assert!(Owners::Not(vec![65534]).allows(0) && !Owners::Not(vec![65534]).allows(65534));
        assert!(Owners::Only(vec![7]).allows(0) && !Owners::Only(vec![7]).allows(8));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_does_not_follow_a_planted_temp_or_target() {
        let d = tmp("replace");
        let victim = d.join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.join(".state.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, d.join("state")).unwrap();
        replace_file(&d.join("state"), b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(d.join("state")).unwrap(), "new");
        let m = fs::symlink_metadata(d.join("state")).unwrap();
        assert!(m.is_file() && m.mode() & 0o777 == 0o600);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text: ok"), "plain text: ok");
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\u{a}c");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("Jürgen"), "Jürgen");
    }
}
