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
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::accounts::{Accounts, run_tool};

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
    Io { op: &'static str, path: PathBuf, source: io::Error },
    Tool(String),
    Unresolved { path: PathBuf, owner: String },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io { op, path, source } => write!(f, "cannot {op} {}: {source}", path.display()),
            ApplyError::Tool(msg) => f.write_str(msg),
            ApplyError::Unresolved { path, owner } => {
                write!(f, "cannot give {} to {owner}: no such user or group", path.display())
            }
        }
    }
}

fn io_at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io { op, path: path.to_path_buf(), source }
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
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_at("create", path)(e)),
        _ => Ok(()),
    }
}

fn sync_parent(path: &Path) -> Result<(), ApplyError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at("fsync", dir))
}

fn set_meta(path: &Path, mode: u32, owner: Option<&Owner>, accounts: &Accounts) -> Result<(), ApplyError> {
    if let Some(o) = owner {
        let (uid, gid) =
            o.ids(accounts).ok_or_else(|| ApplyError::Unresolved { path: path.into(), owner: o.to_string() })?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_at("chown", path))?;
    }
    // After chown: chown may clear the setgid bit.
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_at("chmod", path))
}

impl Change {
    pub fn apply(&self, accounts: &Accounts) -> Result<(), ApplyError> {
        match &self.action {
            Action::Run(argv) => run_tool(argv).map_err(ApplyError::Tool),
            Action::Dir { path, mode, owner } => {
                // Missing parents are made 0755 whatever the umask: the
                // hooks' user must be able to pass through them.
                let mut missing: Vec<&Path> = path.ancestors().skip(1).take_while(|p| !p.is_dir()).collect();
                missing.reverse();
                for p in missing {
                    create_dir(p)?;
                    fs::set_permissions(p, Permissions::from_mode(0o755)).map_err(io_at("chmod", p))?;
                }
                create_dir(path)?;
                set_meta(path, *mode, owner.as_ref(), accounts)
            }
            Action::Meta { path, mode, owner } => set_meta(path, *mode, owner.as_ref(), accounts),
            Action::File { path, data, mode, owner, backup } => {
                if let Some(b) = backup {
                    fs::copy(path, b).map_err(io_at("back up to", b))?;
                    let m = fs::metadata(path).map_err(io_at("stat", path))?;
                    let keep = Owner { user: Who::Id(m.uid()), group: Who::Id(m.gid()) };
                    set_meta(b, m.mode() & 0o7777, Some(&keep), accounts)?;
                }
                let tmp = temp_beside(path);
                let _ = fs::remove_file(&tmp);
                let result = (|| {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)
                        .map_err(io_at("create", &tmp))?;
                    f.write_all(data).map_err(io_at("write", &tmp))?;
                    set_meta(&tmp, *mode, owner.as_ref(), accounts)?;
                    f.sync_all().map_err(io_at("fsync", &tmp))?;
                    fs::rename(&tmp, path).map_err(io_at("rename into", path))
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result?;
                sync_parent(path)
            }
            Action::Symlink { path, target } => {
                let tmp = temp_beside(path);
                let _ = fs::remove_file(&tmp);
                symlink(target, &tmp).map_err(io_at("create link", &tmp))?;
                if let Err(e) = fs::rename(&tmp, path) {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_at("replace", path)(e));
                }
                sync_parent(path)
            }
            Action::Remove(path) => fs::remove_file(path).map_err(io_at("remove", path)),
            Action::RemoveTree(path) => fs::remove_dir_all(path).map_err(io_at("remove", path)),
            Action::RemoveEmptyDir(path) => match fs::remove_dir(path) {
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
                other => other.map_err(io_at("remove", path)),
            },
        }
    }
}
