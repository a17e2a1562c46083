//! A command's exit status, shared by the commands that return it and the
//! router (src/cli.rs) that turns it into the process's status.

/// A command's exit status. Not `std::process::ExitCode`: the entry point
/// (src/rt.rs) returns the status to the C runtime as a number, and std's
/// type cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub u8);

impl ExitCode {
    pub const SUCCESS: ExitCode = ExitCode(0);
    /// The command ran and found problems (`check`), or failed.
    pub const FAILURE: ExitCode = ExitCode(1);
    /// The arguments were wrong.
    pub const USAGE: ExitCode = ExitCode(2);
}
