//! Opening another program's file from `/` down, one directory at a time:
//! OpenVPN's status file, a server conf, Easy-RSA's index.txt, which the
//! agent may open with `CAP_DAC_READ_SEARCH`.
//!
//! Guarantees:
//! - no symlink is followed anywhere on the path (each directory is opened
//!   with `O_PATH | O_NOFOLLOW | O_DIRECTORY` relative to the one before,
//!   the file with `O_NOFOLLOW`), so swapping a directory for a link cannot
//!   send the capability elsewhere;
//! - every directory on the way is checked on the open descriptor
//!   ([`trusted_dir`]) before anything below it is looked at: a parent that
//!   someone other than root may change is refused, naming it;
//! - the file passes [`super::check_file`] (regular, one link, owner), and a
//!   second look ([`Beneath::restat`]) uses the same directory descriptor;
//! - every error names the path and the component at fault, with the kind
//!   the callers rely on (`NotFound`, `PermissionDenied`, `InvalidData`).
//!
//! An equivalent of `openat2(RESOLVE_NO_SYMLINKS)` that also checks each
//! directory's owner and mode, and works on kernels and seccomp filters
//! without `openat2`.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use super::{Owners, check_file, invalid, loop_is_link};

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
        Err(Errno::ELOOP) => return Err(loop_is_link(path, io::Error::from(Errno::ELOOP))),
        Err(e) => return Err(walk_error(path, path, e)),
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

/// Groups below this are the system's own (Debian policy 9.2.2: 0-999),
/// made by packages for daemons, never for a login or the VPN's users.
const FIRST_USER_GID: u32 = 1000;

/// A directory a source may be below: owned by root (or by the running
/// user itself), and writable by nobody else, unless sticky (then others
/// may only add names; what they add is refused by the next step). In any
/// other directory another user could rename a directory away and put a
/// link or a tree of their choosing in its place between two looks.
///
/// Group write is allowed for a system group that this process is not in
/// ([`group_may_write`]): Ubuntu's `/var/log` is 0775 root:syslog, and
/// `status /var/log/openvpn/openvpn-status.log` is Ubuntu's sample conf.
/// The hooks' group is never such a group: the agent is a member of it
/// (the unit's `SupplementaryGroups=`), and `nogroup` is not a system gid.
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
    } else if !sticky && mode & 0o020 != 0 && !group_may_write(st.st_gid) {
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

/// Whether a directory writable by group `gid` is still one only trusted
/// parties can change: root's group, or a system group (a daemon's, such as
/// `syslog`) that this process does not belong to. Every group the agent is
/// in is refused, since the hooks' group is one of them.
fn group_may_write(gid: u32) -> bool {
    if gid == 0 {
        return true;
    }
    if gid >= FIRST_USER_GID || gid == nix::unistd::getegid().as_raw() {
        return false;
    }
    match nix::unistd::getgroups() {
        Ok(groups) => !groups.iter().any(|g| g.as_raw() == gid),
        // Not knowing our own groups, trust none.
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Scratch;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch site holding `a/b/f`; removed when the guard drops.
    fn tmp(name: &str) -> (PathBuf, Scratch) {
        let site = Scratch::new("beneath", name);
        let d = site.root.clone();
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::write(d.join("a/b/f"), "x").unwrap();
        (d, site)
    }

    #[test]
    fn links_and_dot_dot_anywhere_on_the_path_are_refused() {
        let (d, _site) = tmp("links");
        let f = d.join("a/b/f");
        assert_eq!(read_beneath(&f, 10, &Owners::anyone()).unwrap(), b"x");
        let stamp = stat_beneath(&f).unwrap();
        assert_eq!(stamp, Stamp::of(&fs::metadata(&f).unwrap()));
        std::os::unix::fs::symlink(d.join("a"), d.join("l")).unwrap();
        let e = open_beneath(&d.join("l/b/f"), &Owners::anyone()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(&format!("{} is a symlink", d.join("l").display())), "{e}");
        std::os::unix::fs::symlink(&f, d.join("a/b/g")).unwrap();
        assert_eq!(open_beneath(&d.join("a/b/g"), &Owners::anyone()).err().unwrap().kind(), io::ErrorKind::InvalidData);
        assert!(stat_beneath(&d.join("a/b/g")).unwrap_err().to_string().contains("a symlink"));
        assert!(open_beneath(&d.join("a/../a/b/f"), &Owners::anyone()).is_err());
        assert!(open_beneath(Path::new("a/b/f"), &Owners::anyone()).is_err());
        let e = open_beneath(&d.join("a/b/missing"), &Owners::anyone()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn a_parent_others_may_write_is_refused_unless_sticky() {
        let (d, _site) = tmp("modes");
        let f = d.join("a/b/f");
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_beneath(&f, &Owners::anyone()).err().unwrap();
        let says = format!("directory {} is writable by everyone", d.join("a").display());
        assert!(e.kind() == io::ErrorKind::InvalidData && e.to_string().contains(&says), "{e}");
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(open_beneath(&f, &Owners::anyone()).is_ok(), "sticky, like /tmp");
    }

    /// Ubuntu's `/var/log` (0775 root:syslog) is trusted; a group-writable
    /// parent whose group is a user group, or one this process is in (the
    /// hooks' group is), is not.
    #[test]
    fn group_write_is_trusted_only_for_a_system_group_we_are_not_in() {
        assert!(group_may_write(0));
        assert!(!group_may_write(65534), "nogroup is not a system gid");
        assert!(!group_may_write(1000));
        let egid = nix::unistd::getegid().as_raw();
        if egid != 0 {
            assert!(!group_may_write(egid), "our own group");
        }
        let mine = nix::unistd::getgroups().unwrap();
        for g in mine.iter().map(|g| g.as_raw()).filter(|&g| g != 0) {
            assert!(!group_may_write(g), "a group this process is in: {g}");
        }
        let stranger = (1..FIRST_USER_GID).find(|g| !mine.iter().any(|m| m.as_raw() == *g)).unwrap();
        assert!(group_may_write(stranger));
        if !nix::unistd::geteuid().is_root() {
            return; // chown to another group needs root
        }
        let (d, _site) = tmp("groups");
        let f = d.join("a/b/f");
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o775)).unwrap();
        let chgrp = |gid: u32| nix::unistd::chown(&d.join("a"), None, Some(nix::unistd::Gid::from_raw(gid))).unwrap();
        chgrp(stranger);
        assert!(open_beneath(&f, &Owners::anyone()).is_ok(), "like Ubuntu's /var/log, root:syslog 0775");
        chgrp(65534);
        let e = open_beneath(&f, &Owners::anyone()).err().unwrap();
        assert!(e.to_string().contains("writable by group gid 65534"), "{e}");
    }
}
