//! Users and groups as the installed system will see them.
//!
//! Names are looked up in `<root>/etc/passwd` and `<root>/etc/group`, so a
//! staging root (`--root`) that carries its own account files is resolved
//! against those, never against the build host. Without such files (a bare
//! staging root) the host's accounts are used, as `install` says. The
//! files are parsed directly, and names only NSS knows (LDAP, sssd) are
//! asked of `getent` in a child process (src/getent.rs): glibc's NSS
//! inside the static release binary would `dlopen` the distro's modules
//! and can crash. The agent (whose files the hooks' user owns), `check`
//! and the installer all resolve names here; the installer's account
//! changes (useradd, usermod, userdel) live in src/install/accounts.rs.

use std::path::{Path, PathBuf};

use crate::getent;

/// The agent's dedicated system user and its own group.
pub const AGENT_USER: &str = "openvpn-telemetry";

/// Where account names are resolved.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// The root whose `etc/passwd` and `etc/group` are read.
    etc: PathBuf,
    /// Whether these are the host's accounts (names may also come from NSS,
    /// asked through `getent`).
    host: bool,
}

impl Accounts {
    /// Accounts of `root`: its own files when it has an `etc/passwd`, else
    /// the host's.
    pub fn for_root(root: &Path) -> Accounts {
        let host = root == Path::new("/");
        if !host && root.join("etc/passwd").is_file() {
            Accounts { etc: root.join("etc"), host: false }
        } else {
            Accounts { etc: PathBuf::from("/etc"), host: true }
        }
    }

    /// Whether `useradd`/`usermod`/`userdel` may be pointed at these
    /// accounts: always for the host when installing to `/`, and for a
    /// staging root only when it has its own account files.
    pub fn manageable(&self, root: &Path) -> bool {
        root == Path::new("/") || !self.host
    }

    /// The `--root DIR` arguments for the shadow tools, if any.
    pub fn tool_prefix(&self) -> Vec<String> {
        if self.host {
            Vec::new()
        } else {
            let root = self.etc.parent().unwrap_or(Path::new("/"));
            vec!["--root".into(), root.display().to_string()]
        }
    }

    fn records(&self, file: &str) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.etc.join(file)).unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    }

    /// The record of `name` in `db` (passwd or group): the files first,
    /// then, for the host only, NSS through `getent`.
    fn record(&self, db: &str, name: &str) -> Option<Vec<String>> {
        let found = self.records(db).into_iter().find(|r| r.first().map(String::as_str) == Some(name));
        match found {
            Some(r) => Some(r),
            None if self.host => getent::record(db, name),
            None => None,
        }
    }

    fn field(&self, db: &str, name: &str, idx: usize) -> Option<u32> {
        self.record(db, name).and_then(|r| r.get(idx).and_then(|v| v.parse().ok()))
    }

    pub fn uid(&self, user: &str) -> Option<u32> {
        self.field("passwd", user, 2)
    }

    pub fn gid(&self, group: &str) -> Option<u32> {
        self.field("group", group, 2)
    }

    /// The user's primary group id.
    pub fn primary_gid(&self, user: &str) -> Option<u32> {
        self.field("passwd", user, 3)
    }

    /// Whether `user` is a member of `group` (primary or supplementary).
    pub fn is_member(&self, user: &str, group: &str) -> bool {
        let Some(gid) = self.gid(group) else { return false };
        if self.primary_gid(user) == Some(gid) {
            return true;
        }
        self.record("group", group)
            .and_then(|r| r.get(3).cloned())
            .is_some_and(|m| m.split(',').any(|m| m.trim() == user))
    }

    /// OpenVPN's script group when none is configured: `nogroup` (Debian,
    /// Ubuntu), else `nobody` (RHEL and friends).
    pub fn default_script_group(&self) -> String {
        if self.gid("nogroup").is_some() { "nogroup".into() } else { "nobody".into() }
    }
}
