//! Every name this one binary answers to, in one table (as uutils' util
//! map is for its multicall binary): the program name OpenVPN or systemd
//! calls it by, the subcommand that does the same, the one-line help, and
//! where `install` puts the link. `main` dispatches on it, `--help` lists
//! the hooks from it, and the installer makes (and `check` verifies, and
//! `uninstall` removes) exactly its links, so a new name is one new row.
//! It is data only and imports nothing, so every layer may read it.

/// What a name runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Connect,
    Disconnect,
    /// `write-event TYPE`.
    WriteEvent,
    /// The delivery agent (the only role that is not a hook).
    Agent,
}

/// One row of [`ROLES`].
#[derive(Debug)]
pub struct Name {
    pub role: Role,
    /// The subcommand: `openvpn-telemetry connect`.
    pub subcommand: &'static str,
    /// The program name (`argv[0]`'s file name) that runs the role.
    pub program: &'static str,
    /// The installed link with that name (always to the installed binary).
    pub link: &'static str,
    /// `--help`'s line for the subcommand.
    pub about: &'static str,
}

pub const ROLES: [Name; 4] = [
    Name {
        role: Role::Connect,
        subcommand: "connect",
        program: "telemetry-connect.sh",
        link: "/etc/openvpn/scripts/telemetry-connect.sh",
        about: "client-connect hook: append SESSION_CONNECTED (always exits 0)",
    },
    Name {
        role: Role::Disconnect,
        subcommand: "disconnect",
        program: "telemetry-disconnect.sh",
        link: "/etc/openvpn/scripts/telemetry-disconnect.sh",
        about: "client-disconnect hook: append SESSION_DISCONNECTED (always exits 0)",
    },
    Name {
        role: Role::WriteEvent,
        subcommand: "write-event",
        program: "openvpn-telemetry-write-event",
        link: "/usr/local/sbin/openvpn-telemetry-write-event",
        about: "append one event of TYPE from OpenVPN's environment to the spool (always exits 0)",
    },
    Name {
        role: Role::Agent,
        subcommand: "agent",
        program: "openvpn-telemetry-agent",
        link: "/usr/local/sbin/openvpn-telemetry-agent",
        about: "run the delivery agent in the foreground (as the systemd unit does)",
    },
];

/// The installed link of a role.
pub const fn link(role: Role) -> &'static str {
    let mut i = 0;
    while i < ROLES.len() {
        if ROLES[i].role as u8 == role as u8 {
            return ROLES[i].link;
        }
        i += 1;
    }
    ""
}

/// Every link `install` makes, besides the binary itself.
pub const fn links() -> [&'static str; ROLES.len()] {
    let mut out = [""; ROLES.len()];
    let mut i = 0;
    while i < ROLES.len() {
        out[i] = ROLES[i].link;
        i += 1;
    }
    out
}

/// The role a program name runs, if it is one of ours.
pub fn by_program(program: &str) -> Option<Role> {
    ROLES.iter().find(|n| n.program == program).map(|n| n.role)
}

/// The hook a subcommand runs (the agent's subcommand is parsed by argh,
/// with its options, so it is not a hook here).
pub fn hook_by_subcommand(subcommand: &str) -> Option<Role> {
    ROLES.iter().find(|n| n.subcommand == subcommand && n.role != Role::Agent).map(|n| n.role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_every_link_ends_in_its_program_name() {
        for (i, a) in ROLES.iter().enumerate() {
            assert!(a.link.ends_with(&format!("/{}", a.program)), "{a:?}");
            for b in &ROLES[i + 1..] {
                assert!(a.role != b.role && a.subcommand != b.subcommand && a.program != b.program, "{a:?} {b:?}");
            }
        }
        assert_eq!(by_program("telemetry-connect.sh"), Some(Role::Connect));
        assert_eq!(by_program("openvpn-telemetry"), None);
        assert_eq!(hook_by_subcommand("write-event"), Some(Role::WriteEvent));
        assert_eq!(hook_by_subcommand("agent"), None);
        assert_eq!(link(Role::Disconnect), "/etc/openvpn/scripts/telemetry-disconnect.sh");
    }
}
