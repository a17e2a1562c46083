//! The operator-facing subcommands (everything but the hooks), parsed with
//! argh and run; each returns an exit code through [`run`], the one place
//! that turns an error into a message and a status. It only routes: each
//! command owns its argument struct, and the exit status is [`ExitCode`]
//! (src/exit.rs), which commands and this router share.

use std::ffi::OsString;
use std::fmt;
use std::sync::LazyLock;

use argh::{ArgsInfo, FromArgs};
// argh's ArgsInfo derive names these unqualified for the dynamic (hook)
// subcommands; `ArgsInfo` feeds the man page (src/cli/man.rs).
use argh::{CommandInfoWithArgs, SubCommandInfo};

use crate::agent::AgentArgs;
use crate::check::CheckArgs;
use crate::exit::ExitCode;
use crate::install::{InstallArgs, UninstallArgs};
use crate::roles;
use crate::status::StatusArgs;

/// Connect/disconnect telemetry for OpenVPN servers that never puts the VPN
/// at risk. OpenVPN runs the hooks as telemetry-connect.sh and
/// telemetry-disconnect.sh (links to this binary).
#[derive(FromArgs, ArgsInfo, Debug)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// The hooks, listed from [`crate::roles::ROLES`].
    #[argh(dynamic)]
    Hook(HookCommand),
    Agent(AgentArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Status(StatusArgs),
    Check(CheckArgs),
}

/// A hook's subcommand as `--help` lists it. `main` runs the hooks before
/// any parsing (nothing a hook is given may make it exit non-zero), so
/// this only ever names one.
#[derive(Debug)]
pub struct HookCommand;

impl argh::DynamicSubCommand for HookCommand {
    fn commands() -> &'static [&'static argh::CommandInfo] {
        static HOOKS: LazyLock<Vec<&'static argh::CommandInfo>> = LazyLock::new(|| {
            roles::ROLES
                .iter()
                .filter(|n| n.role != roles::Role::Agent)
                .map(|n| {
                    &*Box::leak(Box::new(argh::CommandInfo { name: n.subcommand, short: &'\0', description: n.about }))
                })
                .collect()
        });
        &HOOKS
    }

    fn try_redact_arg_values(command_name: &[&str], args: &[&str]) -> Option<Result<Vec<String>, argh::EarlyExit>> {
        Self::try_from_args(command_name, args).map(|r| r.map(|_| Vec::new()))
    }

    fn try_from_args(command_name: &[&str], _args: &[&str]) -> Option<Result<Self, argh::EarlyExit>> {
        command_name.last().and_then(|c| roles::hook_by_subcommand(c)).map(|_| Ok(HookCommand))
    }
}

/// Why a command failed, by boundary; [`run`] prints it as one line.
#[derive(Debug)]
pub enum Error {
    NoCommand,
    Agent(crate::agent::Error),
    Install(crate::install::Error),
    Status(crate::status::Error),
    Check(crate::check::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoCommand => write!(f, "no command given; run 'openvpn-telemetry --help'"),
            Error::Agent(e) => write!(f, "{e}"),
            Error::Install(e) => write!(f, "{e}"),
            Error::Status(e) => write!(f, "{e}"),
            Error::Check(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NoCommand => None,
            Error::Install(e) => Some(e),
            Error::Agent(e) => Some(e),
            Error::Status(e) => Some(e),
            Error::Check(e) => Some(e),
        }
    }
}

impl From<crate::agent::Error> for Error {
    fn from(e: crate::agent::Error) -> Error {
        Error::Agent(e)
    }
}
impl From<crate::status::Error> for Error {
    fn from(e: crate::status::Error) -> Error {
        Error::Status(e)
    }
}
impl From<crate::check::Error> for Error {
    fn from(e: crate::check::Error) -> Error {
        Error::Check(e)
    }
}

/// Parses the arguments of a non-hook invocation and runs it; the one
/// place where a command's error becomes a message and a status.
pub fn run(args: &[OsString]) -> i32 {
    let code = match parse(args) {
        Ok(cli) => match command(cli) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("openvpn-telemetry: {e}");
                ExitCode::FAILURE
            }
        },
        Err(code) => code,
    };
    i32::from(code.0)
}

/// The arguments, or the status to exit with once argh's output (help,
/// or what was wrong) is printed.
fn parse(args: &[OsString]) -> Result<Cli, ExitCode> {
    let strings: Result<Vec<String>, _> = args.iter().map(|a| a.clone().into_string()).collect();
    let Ok(strings) = strings else {
        eprintln!("openvpn-telemetry: arguments must be valid UTF-8");
        return Err(ExitCode::USAGE);
    };
    let name = "openvpn-telemetry";
    let rest: Vec<&str> = strings.iter().skip(1).map(String::as_str).collect();
    Cli::from_args(&[name], &rest).map_err(|early| match early.status {
        Ok(()) => {
            print!("{}", early.output);
            ExitCode::SUCCESS
        }
        Err(()) => {
            eprint!("{}", early.output);
            eprintln!("Run '{name} --help' for usage.");
            ExitCode::USAGE
        }
    })
}

/// The man page, generated from the same argh descriptions as `--help`.
#[cfg(test)]
mod man;

fn command(cli: Cli) -> Result<ExitCode, Error> {
    if cli.version {
        println!("openvpn-telemetry {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    match cli.command.ok_or(Error::NoCommand)? {
        // main runs the hooks before parsing: nothing is left to do.
        Command::Hook(HookCommand) => Ok(ExitCode::SUCCESS),
        Command::Agent(a) => Ok(crate::agent::main(&a)?),
        Command::Install(a) => crate::install::install(&a).map_err(Error::Install),
        Command::Uninstall(a) => crate::install::uninstall(&a).map_err(Error::Install),
        Command::Status(a) => Ok(crate::status::main(&a)?),
        Command::Check(a) => Ok(crate::check::main(&a)?),
    }
}
