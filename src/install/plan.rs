//! The installer's plan: a list of changes, each worked out by comparing
//! what is on disk with what should be, and applied only after the whole
//! plan was made (so a refusal changes nothing, and `--dry-run` is the
//! same code without the last step).
//!
//! Guarantees of [`Change::apply`]:
//! - files are written to a temporary name in the same directory, fsynced,
//!   given their mode and owner, then renamed over the old one and the
//!   directory fsynced: a hook that runs mid-upgrade sees the old or the
//!   new binary, never a partial one;
//! - symlinks are replaced the same way (new link, then rename);
//! - nothing that already matches is touched, so mtimes stay put and a
//!   second install plans nothing.

use std::fmt;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::accounts::Accounts;
use crate::fsutil::{PathError, path_error};

/// An owner as planned: a name is resolved when the change is applied,
/// because the agent's user may only be created earlier in the same plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Name(String),
    Id(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: Who,
    pub group: Who,
}

impl Owner {
    pub fn names(user: &str, group: &str) -> Owner {
        Owner { user: Who::Name(user.into()), group: Who::Name(group.into()) }
    }
    pub fn root() -> Owner {
        Owner { user: Who::Id(0), group: Who::Id(0) }
    }
    pub fn ids(&self, accounts: &Accounts) -> Option<(u32, u32)> {
        let uid = match &self.user {
            Who::Id(id) => *id,
            Who::Name(n) => accounts.uid(n)?,
        };
        let gid = match &self.group {
            Who::Id(id) => *id,
            Who::Name(n) => accounts.gid(n)?,
        };
        Some((uid, gid))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |w: &Who| match w {
            Who::Name(n) => n.clone(),
            Who::Id(0) => "root".into(),
            Who::Id(id) => id.to_string(),
        };
        write!(f, "{}:{}", show(&self.user), show(&self.group))
    }
}

/// One thing to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run a tool (useradd, usermod, userdel, systemctl).
    Run(Vec<String>),
    /// Create the directory (parents 0755) or fix its mode and owner.
    Dir {
        path: PathBuf,
        mode: u32,
        owner: Option<Owner>,
    },
    /// Create or fix a spool directory through directory handles, never
    /// following a link: the hooks' user may have write access to the
    /// directory around it (an older layout) and swap names meanwhile.
    SpoolDir {
        path: PathBuf,
        mode: u32,
        owner: Option<Owner>,
    },
    /// Give a file the hooks wrote in an older layout (`dir/name`, owned
    /// by `uid`) the spool's group `gid` and `mode`, through handles: the
    /// file is opened beneath `dir` without following a link or blocking,
    /// and changed only if it is still that user's regular file with one
    /// link.
    SpoolFile {
        dir: PathBuf,
        name: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// Fix the mode and owner of something that exists.
    Meta {
        path: PathBuf,
        mode: u32,
        owner: Option<Owner>,
    },
    /// Write a file atomically, first copying the old one to `backup`.
    File {
        path: PathBuf,
        data: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
        backup: Option<PathBuf>,
    },
    /// Make `path` a symlink to `target` (replacing what is there).
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    Remove(PathBuf),
    RemoveTree(PathBuf),
    /// Remove a directory if it is empty by then (else leave it).
    RemoveEmptyDir(PathBuf),
}

/// A planned action and how it is shown to the operator.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub what: String,
}

/// What can go wrong while applying; names the path and the operation.
#[derive(Debug)]
pub enum ApplyError {
    Io(PathError),
    /// An account or service tool could not be started.
    Spawn {
        prog: String,
        source: io::Error,
    },
    /// It ran and failed.
    Tool {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    Unresolved {
        path: PathBuf,
        owner: String,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io(e) => write!(f, "{e}"),
            ApplyError::Spawn { prog, source } => write!(f, "cannot run {prog}: {source}"),
            ApplyError::Tool { command, status, stderr } => write!(f, "`{command}` failed ({status}): {stderr}"),
            ApplyError::Unresolved { path, owner } => {
                write!(f, "cannot give {} to {owner}: no such user or group", path.display())
            }
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Io(e) => Some(e),
            ApplyError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<PathError> for ApplyError {
    fn from(e: PathError) -> ApplyError {
        ApplyError::Io(e)
    }
}

/// For `map_err` where the error is returned as it is: doing `what` to
/// `path` failed.
fn io_at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    let at = path_error(what, path);
    move |source| ApplyError::Io(at(source))
}

/// What the planner compares against: `None` means "do not care" (not
/// running as root, so ownership cannot be set).
pub fn owner_differs(meta: &fs::Metadata, owner: Option<&Owner>, accounts: &Accounts) -> bool {
    match owner {
        None => false,
        Some(o) => o.ids(accounts) != Some((meta.uid(), meta.gid())),
    }
}

/// Plans a directory with `mode` and `owner`.
pub fn dir(path: &Path, mode: u32, owner: Option<Owner>, accounts: &Accounts) -> Option<Change> {
    let show = |o: &Option<Owner>| o.as_ref().map(|o| format!(" {o}")).unwrap_or_default();
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if m.mode() & 0o7777 == mode && !owner_differs(&m, owner.as_ref(), accounts) {
                return None;
            }
            let what = format!("fix  {} ({:04o} -> {mode:04o}{})", path.display(), m.mode() & 0o7777, show(&owner));
            Some(Change { action: Action::Dir { path: path.into(), mode, owner }, what })
        }
        _ => {
            let what = format!("mkdir {} ({mode:04o}{})", path.display(), show(&owner));
            Some(Change { action: Action::Dir { path: path.into(), mode, owner }, what })
        }
    }
}

/// Plans a spool directory (see [`Action::SpoolDir`]). Refuses, before
/// anything is changed, a name that is not a directory (a symlink planted
/// by the hooks' user would make root chown whatever it points to) or one
/// owned by anyone but root, the hooks' user (older layouts) or the agent.
pub fn spool_dir(
    path: &Path,
    mode: u32,
    owner: Option<Owner>,
    accounts: &Accounts,
    allowed_uids: &[u32],
) -> Result<Option<Change>, super::Error> {
    let show = |o: &Option<Owner>| o.as_ref().map(|o| format!(" {o}")).unwrap_or_default();
    let action = Action::SpoolDir { path: path.into(), mode, owner: owner.clone() };
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => Err(super::Error::Refused(format!(
            "refusing to install, nothing was changed: {} is not a directory ({}); the OpenVPN hooks' user may \
             have put it there. Look at it, move it away, and run install again",
            path.display(),
            if m.file_type().is_symlink() { "a symlink" } else { "a file" }
        ))),
        Ok(m) if m.uid() != 0 && !allowed_uids.contains(&m.uid()) => Err(super::Error::Refused(format!(
            "refusing to install, nothing was changed: {} is owned by uid {}, not by root, the hooks' user or \
             the agent; check SPOOL_DIR, then chown it to root and run install again",
            path.display(),
            m.uid()
        ))),
        Ok(m) => {
            if m.mode() & 0o7777 == mode && !owner_differs(&m, owner.as_ref(), accounts) {
                return Ok(None);
            }
            let what = format!("fix  {} ({:04o} -> {mode:04o}{})", path.display(), m.mode() & 0o7777, show(&owner));
            Ok(Some(Change { action, what }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let what = format!("mkdir {} ({mode:04o}{})", path.display(), show(&owner));
            Ok(Some(Change { action, what }))
        }
        Err(e) => Err(path_error("cannot stat", path)(e).into()),
    }
}

/// Applies [`Action::SpoolDir`]: the parent is opened as a directory, the
/// spool directory created in it if missing and opened with `O_NOFOLLOW`
/// and `O_DIRECTORY` (a symlink swapped in fails here), checked once more
/// on the open handle, then given owner and mode through that handle.
fn apply_spool_dir(path: &Path, mode: u32, owner: Option<&Owner>, accounts: &Accounts) -> Result<(), ApplyError> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, fchmod, mkdirat};
    let sys = |what: &'static str| move |e: nix::Error| io_at(what, path)(e.into());
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or_else(|| sys("cannot open")(nix::Error::EINVAL))?;
    if !parent.is_dir() {
        Change { action: Action::Dir { path: parent.into(), mode: 0o755, owner: None }, what: String::new() }
            .apply(accounts)?;
    }
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let parent_fd = open(parent, dir_flags, Mode::empty()).map_err(sys("cannot open the parent of"))?;
    match mkdirat(&parent_fd, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(e) => return Err(sys("cannot create")(e)),
    }
    let fd = openat(&parent_fd, name, dir_flags, Mode::empty()).map_err(sys("cannot open (not following links)"))?;
    let file = File::from(fd);
    let m = file.metadata().map_err(io_at("cannot stat", path))?;
    if !m.is_dir() {
        return Err(io_at("cannot use", path)(io::Error::other("not a directory")));
    }
    if let Some(o) = owner {
        let (uid, gid) =
            o.ids(accounts).ok_or_else(|| ApplyError::Unresolved { path: path.into(), owner: o.to_string() })?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_at("cannot chown", path))?;
    }
    // After chown, which may clear the setgid bit.
    fchmod(&file, Mode::from_bits_truncate(mode)).map_err(sys("cannot chmod"))?;
    Ok(())
}

/// Applies [`Action::SpoolFile`].
fn apply_spool_file(dir: &Path, name: &str, uid: u32, gid: u32, mode: u32) -> Result<(), ApplyError> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, fchmod};
    let path = dir.join(name);
    let sys = |what: &'static str| {
        let path = path.clone();
        move |e: nix::Error| ApplyError::Io(PathError { what, path, source: e.into() })
    };
    let dir_fd = open(dir, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY, Mode::empty())
        .map_err(sys("cannot open the directory of"))?;
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_RDONLY | OFlag::O_NOCTTY;
    let file = match openat(&dir_fd, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        // Gone (delivered meanwhile) or replaced by a link: nothing to fix.
        Err(nix::Error::ENOENT | nix::Error::ELOOP) => return Ok(()),
        Err(e) => return Err(sys("cannot open")(e)),
    };
    let m = file.metadata().map_err(io_at("cannot stat", &path))?;
    if !m.is_file() || m.nlink() != 1 || m.uid() != uid {
        return Ok(());
    }
    std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(io_at("cannot chown", &path))?;
    fchmod(&file, Mode::from_bits_truncate(mode)).map_err(sys("cannot chmod"))
}

/// Plans a file with exactly `data`, `mode` and `owner`.
pub fn file(
    path: &Path,
    data: Vec<u8>,
    mode: u32,
    owner: Option<Owner>,
    accounts: &Accounts,
    why: &str,
) -> Option<Change> {
    let show = owner.as_ref().map(|o| format!(" {o}")).unwrap_or_default();
    let meta = fs::symlink_metadata(path).ok();
    let same_data = meta.as_ref().is_some_and(|m| m.is_file()) && fs::read(path).is_ok_and(|d| d == data);
    match meta {
        Some(m) if same_data => {
            if m.mode() & 0o7777 == mode && !owner_differs(&m, owner.as_ref(), accounts) {
                return None;
            }
            let what = format!("fix  {} ({:04o} -> {mode:04o}{show})", path.display(), m.mode() & 0o7777);
            Some(Change { action: Action::Meta { path: path.into(), mode, owner }, what })
        }
        Some(_) => {
            let what = format!("update {} ({mode:04o}{show}; {why})", path.display());
            Some(Change { action: Action::File { path: path.into(), data, mode, owner, backup: None }, what })
        }
        None => {
            let what = format!("write {} ({mode:04o}{show}; {why})", path.display());
            Some(Change { action: Action::File { path: path.into(), data, mode, owner, backup: None }, what })
        }
    }
}

/// Plans a symlink `path` -> `target`.
pub fn link(path: &Path, target: &Path) -> Option<Change> {
    if fs::read_link(path).is_ok_and(|t| t == target) {
        return None;
    }
    let verb = if fs::symlink_metadata(path).is_ok() { "relink" } else { "link" };
    let what = format!("{verb} {} -> {}", path.display(), target.display());
    Some(Change { action: Action::Symlink { path: path.into(), target: target.into() }, what })
}

/// A name in the same directory for writing before the rename.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.ovt-tmp-{}", std::process::id()))
}

fn create_dir(path: &Path) -> Result<(), ApplyError> {
    match fs::create_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_at("cannot create", path)(e)),
        _ => Ok(()),
    }
}

fn sync_parent(path: &Path) -> Result<(), ApplyError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at("cannot fsync", dir))
}

fn set_meta(path: &Path, mode: u32, owner: Option<&Owner>, accounts: &Accounts) -> Result<(), ApplyError> {
    if let Some(o) = owner {
        let (uid, gid) =
            o.ids(accounts).ok_or_else(|| ApplyError::Unresolved { path: path.into(), owner: o.to_string() })?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_at("cannot chown", path))?;
    }
    // After chown: chown may clear the setgid bit.
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_at("cannot chmod", path))
}

impl Change {
    pub fn apply(&self, accounts: &Accounts) -> Result<(), ApplyError> {
        match &self.action {
            Action::Run(argv) => run_tool(argv),
            Action::Dir { path, mode, owner } => {
                // Missing parents are made 0755 whatever the umask: the
                // hooks' user must be able to pass through them.
                let mut missing: Vec<&Path> = path.ancestors().skip(1).take_while(|p| !p.is_dir()).collect();
                missing.reverse();
                for p in missing {
                    create_dir(p)?;
                    fs::set_permissions(p, Permissions::from_mode(0o755)).map_err(io_at("cannot chmod", p))?;
                }
                create_dir(path)?;
                set_meta(path, *mode, owner.as_ref(), accounts)
            }
            Action::SpoolDir { path, mode, owner } => apply_spool_dir(path, *mode, owner.as_ref(), accounts),
            Action::SpoolFile { dir, name, uid, gid, mode } => apply_spool_file(dir, name, *uid, *gid, *mode),
            Action::Meta { path, mode, owner } => set_meta(path, *mode, owner.as_ref(), accounts),
            Action::File { path, data, mode, owner, backup } => {
                if let Some(b) = backup {
                    fs::copy(path, b).map_err(io_at("cannot back up to", b))?;
                    let m = fs::metadata(path).map_err(io_at("cannot stat", path))?;
                    let keep = Owner { user: Who::Id(m.uid()), group: Who::Id(m.gid()) };
                    set_meta(b, m.mode() & 0o7777, Some(&keep), accounts)?;
                }
                let ids = match owner {
                    Some(o) => Some(
                        o.ids(accounts)
                            .ok_or_else(|| ApplyError::Unresolved { path: path.clone(), owner: o.to_string() })?,
                    ),
                    None => None,
                };
                crate::fsutil::replace_file_as(path, data, *mode, ids).map_err(io_at("cannot replace", path))
            }
            Action::Symlink { path, target } => {
                let tmp = temp_beside(path);
                let _ = fs::remove_file(&tmp);
                symlink(target, &tmp).map_err(io_at("cannot create link", &tmp))?;
                if let Err(e) = fs::rename(&tmp, path) {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_at("cannot replace", path)(e));
                }
                sync_parent(path)
            }
            Action::Remove(path) => fs::remove_file(path).map_err(io_at("cannot remove", path)),
            Action::RemoveTree(path) => fs::remove_dir_all(path).map_err(io_at("cannot remove", path)),
            Action::RemoveEmptyDir(path) => match fs::remove_dir(path) {
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
                other => other.map_err(io_at("cannot remove", path)),
            },
        }
    }
}

/// Runs an account or service tool, turning failure into a message that
/// names the command.
pub fn run_tool(argv: &[String]) -> Result<(), ApplyError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(ApplyError::Spawn { prog: String::new(), source: std::io::Error::other("empty command") });
    };
    let out =
        Command::new(prog).args(args).output().map_err(|source| ApplyError::Spawn { prog: prog.clone(), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ApplyError::Tool {
            command: argv.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
