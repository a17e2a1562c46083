//! The installer's changes to accounts: the `useradd`, `usermod` and
//! `userdel` command lines for the agent's system user, pointed at the
//! same account files [`Accounts`] reads (a staging root's own, or the
//! host's).

use crate::accounts::{AGENT_USER, Accounts};

impl Accounts {
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
