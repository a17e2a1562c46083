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
//!
//! Files of other programs that the agent may open with its read capability
//! (OpenVPN's status file, Easy-RSA's index.txt) are opened through
//! [`open_beneath`] (`fsutil/beneath.rs`): no symlink anywhere on the path,
//! only directories only root can change.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

mod beneath;
pub use beneath::{Stamp, open_beneath, read_beneath, stat_beneath};

/// An I/O error with what was being done and to which file, as a
/// sysadmin reads it: `{what} {path}: {error}` ("cannot read
/// /etc/openvpn/server.conf: Permission denied"). The commands' and the
/// installer's error types carry it for every file they touch.
#[derive(Debug)]
pub struct PathError {
    /// How the message starts: "cannot read", "cannot stat".
    pub what: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.what, self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// For `map_err`: the error of doing `what` to `path`.
pub fn path_error<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> PathError + 'p {
    move |source| PathError { what, path: path.to_path_buf(), source }
}

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

/// Writes a state file as JSON with a final newline,
/// atomically and durably, 0600 for the agent alone ([`replace_file`]): the
/// twin of [`load_json`] for every state the agent keeps.
pub fn save_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut body = serde_json::to_vec(value).map_err(io::Error::other)?;
    body.push(b'\n');
    replace_file(path, &body, 0o600)
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

    /// A scratch directory; removed when the guard drops.
    fn tmp(name: &str) -> (std::path::PathBuf, crate::testkit::Scratch) {
        let site = crate::testkit::Scratch::new("fsutil", name);
        (site.root.clone(), site)
    }

    #[test]
    fn only_plain_files_are_opened() {
        let (d, _site) = tmp("open");
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
    }

    #[test]
    fn replace_does_not_follow_a_planted_temp_or_target() {
        let (d, _site) = tmp("replace");
        let victim = d.join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.join(".state.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, d.join("state")).unwrap();
        replace_file(&d.join("state"), b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(d.join("state")).unwrap(), "new");
        let m = fs::symlink_metadata(d.join("state")).unwrap();
        assert!(m.is_file() && m.mode() & 0o777 == 0o600);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text: ok"), "plain text: ok");
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\u{a}c");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("Jürgen"), "Jürgen");
    }
}
