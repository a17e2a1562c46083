//! The operator-facing subcommands (everything but the hooks), parsed with
//! argh and run; each returns an exit code through [`run`], the one place
//! that turns an error into a message and a status.

use std::ffi::OsString;
use std::path::PathBuf;

use argh::FromArgs;

/// Connect/disconnect telemetry for OpenVPN servers that never puts the VPN
/// at risk. OpenVPN runs the hooks as telemetry-connect.sh and
/// telemetry-disconnect.sh (links to this binary).
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
#[allow(dead_code)] // the hook variants' fields: see ConnectArgs
pub enum Command {
    Connect(ConnectArgs),
    Disconnect(DisconnectArgs),
    WriteEvent(WriteEventArgs),
    Agent(AgentArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Status(StatusArgs),
    Check(CheckArgs),
}

/// client-connect hook: append SESSION_CONNECTED (always exits 0)
// Hooks are dispatched in main before any parsing; this struct only
// exists so that --help lists the hook.
#[allow(dead_code)]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "connect")]
pub struct ConnectArgs {
    /// arguments OpenVPN appends (ignored)
    #[argh(positional)]
    pub rest: Vec<String>,
}

/// client-disconnect hook: append SESSION_DISCONNECTED (always exits 0)
// Hooks are dispatched in main before any parsing; this struct only
// exists so that --help lists the hook.
#[allow(dead_code)]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "disconnect")]
pub struct DisconnectArgs {
    /// arguments OpenVPN appends (ignored)
    #[argh(positional)]
    pub rest: Vec<String>,
}

/// append one event of TYPE from OpenVPN's environment to the spool
// Hooks are dispatched in main before any parsing; this struct only
// exists so that --help lists the hook.
#[allow(dead_code)]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "write-event")]
pub struct WriteEventArgs {
    /// event type, e.g. SESSION_CONNECTED
    #[argh(positional)]
    pub kind: Option<String>,
}

/// run the delivery agent in the foreground (as the systemd unit does)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "agent")]
pub struct AgentArgs {
    /// rotate, deliver everything, and exit: 0 when the spool is empty
    #[argh(switch)]
    pub once: bool,
}

/// install or upgrade: binary, links, spool, agent.env, systemd unit, OpenVPN config lines
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "install")]
pub struct InstallArgs {
    /// install below this directory instead of / (packaging, tests)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// print what would change and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// package mode, for the Debian package (implied when run as
    /// /usr/sbin/openvpn-telemetry): dpkg owns the binary and the unit
    #[argh(switch)]
    pub package: bool,
}

/// remove binary, links, unit and the OpenVPN config lines install added
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct UninstallArgs {
    /// uninstall below this directory instead of /
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// also remove the spool and /etc/openvpn-telemetry
    #[argh(switch)]
    pub purge: bool,
    /// print what would change and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// package mode, for the Debian package (implied when run as
    /// /usr/sbin/openvpn-telemetry): leave the binary and the unit to dpkg
    #[argh(switch)]
    pub package: bool,
}

/// show queue, backlog, last delivery and the settings in effect
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// print JSON instead of text
    #[argh(switch)]
    pub json: bool,
}

/// check the installation and the path to the telemetry server
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// check the installation below this directory instead of /
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// internal: only probe the spool as ROLE:UID:GID:GROUPS (hook or agent); check runs it itself
    #[argh(option)]
    pub probe: Option<String>,
}

/// Parses the arguments of a non-hook invocation and runs it.
pub fn run(args: &[OsString]) -> i32 {
    let strings: Result<Vec<String>, _> = args.iter().map(|a| a.clone().into_string()).collect();
    let Ok(strings) = strings else {
        eprintln!("openvpn-telemetry: arguments must be valid UTF-8");
        return 2;
    };
    let name = "openvpn-telemetry";
    let rest: Vec<&str> = strings.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&[name], &rest) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    0
                }
                Err(()) => {
                    eprint!("{}", early.output);
                    eprintln!("Run '{name} --help' for usage.");
                    2
                }
            };
        }
    };
    if cli.version {
        println!("openvpn-telemetry {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let result = match cli.command {
        None => Err("no command given; run 'openvpn-telemetry --help'".to_string()),
        // Hooks are dispatched in main before parsing; these arms only
        // exist so that --help lists them.
        Some(Command::Connect(_) | Command::Disconnect(_) | Command::WriteEvent(_)) => Ok(0),
        Some(Command::Agent(a)) => crate::agent::main(&a),
        Some(Command::Install(a)) => crate::install::install(&a),
        Some(Command::Uninstall(a)) => crate::install::uninstall(&a),
        Some(Command::Status(a)) => crate::status::main(&a),
        Some(Command::Check(a)) => crate::check::main(&a),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("openvpn-telemetry: {msg}");
            1
        }
    }
}
