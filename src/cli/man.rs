//! The man page `openvpn-telemetry(8)`, generated (as uutils generates its
//! man pages) from what `--help` prints — argh's descriptions of the
//! commands and options ([`argh::ArgsInfo`]) and the role table — and from
//! the settings table ([`crate::config::SETTINGS`]). It is made by a test
//! and committed as `assets/debian/openvpn-telemetry.8`, which the Debian
//! package ships and `install` writes ([`crate::install`] embeds it); the
//! test fails when the committed page drifts from these sources.

use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfoKind};

use super::Cli;
use crate::config::docs::{REGENERATE, check_generated, man_settings};
use crate::roles::{self, Role};

/// Where the page is committed (and what the package ships).
pub const PATH: &str = "assets/debian/openvpn-telemetry.8";

/// Text for roff: backslashes and hyphens escaped, a leading dot or quote
/// made literal.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// `[--flag]` / `[--option VALUE]` for the synopsis.
fn usage(cmd: &CommandInfoWithArgs) -> String {
    let mut out = String::new();
    for f in cmd.flags.iter().filter(|f| !f.hidden && f.long != "--help") {
        match f.kind {
            FlagInfoKind::Switch => out.push_str(&format!(" [\\fB{}\\fR]", roff(f.long))),
            FlagInfoKind::Option { arg_name } => {
                out.push_str(&format!(" [\\fB{}\\fR \\fI{}\\fR]", roff(f.long), roff(&arg_name.to_uppercase())))
            }
        }
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
    let s = format!("{first}{}", c.as_str());
    if s.ends_with('.') { s } else { format!("{s}.") }
}

/// The whole page.
pub fn page() -> String {
    let cli = Cli::get_args_info();
    let name = roff("openvpn-telemetry");
    let program = |role: Role| roles::ROLES.iter().find(|n| n.role == role).map_or("", |n| n.program);
    let mut out = format!(
        ".\\\" Generated from src/cli.rs (argh: what --help prints), src/roles.rs and\n\
         .\\\" src/config/table.rs by `{REGENERATE}`.\n\
         .\\\" Do not edit by hand.\n\
         .TH OPENVPN\\-TELEMETRY 8 \"\" \"{name} {}\" \"System Administration\"\n",
        env!("CARGO_PKG_VERSION")
    );
    let about = cli.description.split(". ").next().unwrap_or(cli.description).trim_end_matches('.');
    out.push_str(&format!(
        ".SH NAME\n{name}, {}, {} \\- {}\n",
        roff(program(Role::Agent)),
        roff(program(Role::WriteEvent)),
        roff(&lower_first(about))
    ));

    out.push_str(".SH SYNOPSIS\n");
    for sub in &cli.commands {
        let hook = roles::hook_by_subcommand(sub.name).is_some();
        let args = if sub.name == "write-event" { " \\fITYPE\\fR".to_string() } else { usage(&sub.command) };
        if !hook {
            out.push_str(&format!("\\fB{name} {}\\fR{args}\n.br\n", roff(sub.name)));
        }
    }
    out.push_str(&format!("\\fB{name}\\fR \\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR\n.br\n"));
    let agent = cli.commands.iter().find(|c| c.name == "agent").map(|c| usage(&c.command)).unwrap_or_default();
    out.push_str(&format!("\\fB{}\\fR{agent}\n.br\n", roff(program(Role::Agent))));
    out.push_str(&format!("\\fB{}\\fR \\fITYPE\\fR\n.br\n", roff(program(Role::WriteEvent))));
    for role in [Role::Connect, Role::Disconnect] {
        out.push_str(&format!("\\fB{}\\fR\n.br\n", roff(roles::link(role))));
    }

    out.push_str(&format!(
        ".SH DESCRIPTION\n{}\n.PP\n\
         One binary that picks its role from the name it is called by. The OpenVPN hooks \
         (client\\-connect, client\\-disconnect) append one line to the spool and always exit 0: \
         they never reject a client and never touch the network. The agent, the systemd service \
         \\fBopenvpn\\-telemetry\\-agent.service\\fR, delivers the spool over HTTPS at least once, \
         with live session usage from OpenVPN's status file, certificate status from Easy\\-RSA's \
         index.txt and snapshots of the connected sessions.\n",
        roff(&cli.description.split_whitespace().collect::<Vec<_>>().join(" "))
    ));

    out.push_str(".SH COMMANDS\n");
    for sub in &cli.commands {
        out.push_str(&format!(".TP\n.B {}\n{}\n", roff(sub.name), roff(&sentence(sub.command.description))));
        let flags: Vec<_> = sub.command.flags.iter().filter(|f| !f.hidden && f.long != "--help").collect();
        if !flags.is_empty() {
            out.push_str(".RS\n");
            for f in flags {
                let value = match f.kind {
                    FlagInfoKind::Switch => String::new(),
                    FlagInfoKind::Option { arg_name } => format!(" \\fI{}\\fR", roff(&arg_name.to_uppercase())),
                };
                out.push_str(&format!(
                    ".TP\n\\fB{}\\fR{value}\n{}\n",
                    roff(f.long),
                    roff(&sentence(&f.description.split_whitespace().collect::<Vec<_>>().join(" ")))
                ));
            }
            out.push_str(".RE\n");
        }
    }

    out.push_str(
        ".SH SETTINGS\n\
         Every setting is a line \\fIKEY\\fR=\\fIvalue\\fR (shell syntax) in \
         \\fI/etc/openvpn\\-telemetry/agent.env\\fR. Put your own values into \
         \\fI/etc/openvpn\\-telemetry/.env\\fR and run \\fBopenvpn\\-telemetry install\\fR, which renders \
         agent.env from the defaults, the values already in it, and .env (which wins). An empty value \
         means the default. A bad value stops every command with \\fIfile\\fR:\\fIline\\fR: \\fIKEY\\fR: \
         what is wrong; a hook warns in OpenVPN's log and uses the default.\n",
    );
    out.push_str(&man_settings());

    out.push_str(&format!(
        ".SH ENVIRONMENT\n\
         .TP\n.B OPENVPN_TELEMETRY_CONFIG\n\
         Another settings file instead of \\fI{}\\fR (tests, or several OpenVPN instances on one host \
         through OpenVPN's \\fBsetenv\\fR).\n\
         .TP\n.B RUST_LOG\n\
         When set, the agent's log filter instead of \\fBLOG_LEVEL\\fR.\n",
        roff(crate::config::DEFAULT_CONFIG)
    ));
    out.push_str(&format!(
        ".SH FILES\n\
         .TP\n.I /etc/openvpn\\-telemetry/.env\n\
         Your settings (mode 0600: it may hold \\fBAUTH_HEADER\\fR).\n\
         .TP\n.I {}\n\
         Every setting (mode 0640: it may hold a token).\n\
         .TP\n.I /etc/openvpn\\-telemetry/agent.hook.env\n\
         The settings the hooks need, world\\-readable.\n\
         .TP\n.I {}\n\
         The spool: queue.log (the hooks append), pending/ (chunks awaiting delivery), failed/ \
         (batches the server refused).\n",
        roff(crate::config::DEFAULT_CONFIG),
        roff(crate::config::DEFAULT_SPOOL_DIR)
    ));
    out.push_str(
        ".SH EXIT STATUS\n\
         0 on success; 1 when a command failed or \\fBcheck\\fR found a problem; 2 for wrong arguments. \
         The hooks always exit 0.\n\
         .SH SEE ALSO\n\
         .BR openvpn (8),\n\
         .BR systemctl (1),\n\
         .BR journalctl (1),\n\
         and \\fI/usr/share/doc/openvpn\\-telemetry/README.md\\fR.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_man_page_is_the_help_and_the_settings() {
        let page = page();
        for row in crate::config::SETTINGS {
            assert!(page.contains(&format!(".B {}\n", row.key)), "{} is in the man page", row.key);
        }
        for sub in ["install", "uninstall", "status", "check", "agent", "connect", "write-event"] {
            assert!(page.contains(&format!(".B {}\n", roff(sub))), "{sub}");
        }
        assert!(!page.contains("probe"), "internal options stay out");
        if check_generated(PATH, &page) {
            assert_eq!(crate::install::manpage::PAGE, page, "install writes the generated page");
        }
    }
}
