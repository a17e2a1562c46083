//! `install` / `uninstall` (issue 4): not built yet.

use crate::cli::{InstallArgs, UninstallArgs};

pub fn install(_args: &InstallArgs) -> Result<i32, String> {
    Err("install: not implemented yet".into())
}

pub fn uninstall(_args: &UninstallArgs) -> Result<i32, String> {
    Err("uninstall: not implemented yet".into())
}
