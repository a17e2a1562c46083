//! Users and groups as the installed system will see them.
//!
//! Names are looked up in `<root>/etc/passwd` and `<root>/etc/group`, so a
//! staging root (`--root`) that carries its own account files is resolved
//! against those, never against the build host. Without such files (a bare
//! staging root) the host's accounts are used, as `install` says. The
//! files are parsed directly, and names only NSS knows (LDAP, sssd) are
//! asked of `getent` in a child process: glibc's NSS inside the static
//! release binary would `dlopen` the distro's modules and can crash.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::plan::ApplyError;

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
            None if self.host => getent(db, name),
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

    /// `useradd` for the agent's system user: no home, no shell, its own
    /// group, and a member of the hooks' group so it can read and remove
    /// what they write.
    pub fn useradd(&self, script_group: &str) -> Vec<String> {
        let mut argv = vec!["useradd".to_string()];
        argv.extend(self.tool_prefix());
        argv.extend(
            [
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--comment",
                "openvpn-telemetry agent",
                "--groups",
                script_group,
                AGENT_USER,
            ]
            .map(String::from),
        );
        argv
    }

    pub fn usermod_append(&self, group: &str) -> Vec<String> {
        let mut argv = vec!["usermod".to_string()];
        argv.extend(self.tool_prefix());
        argv.extend(["--append", "--groups", group, AGENT_USER].map(String::from));
        argv
    }

    pub fn userdel(&self) -> Vec<String> {
        let mut argv = vec!["userdel".to_string()];
        argv.extend(self.tool_prefix());
        argv.push(AGENT_USER.into());
        argv
    }
}

/// One NSS record (LDAP, sssd, ...) for a name the files do not have, from
/// `getent DB NAME` in a child process: the release binary is static, and
/// glibc's NSS inside a static binary dlopens the distro's libc and crashes
/// (SIGSEGV, found by the e2e). `None` when getent is missing or says no.
fn getent(db: &str, name: &str) -> Option<Vec<String>> {
    let out = Command::new("getent").args([db, name]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next().filter(|_| out.status.success())?;
    Some(line.split(':').map(str::to_string).collect())
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
