//! `check`, the doctor (issue 4): not built yet.

use crate::cli::CheckArgs;

pub fn main(_args: &CheckArgs) -> Result<i32, String> {
    Err("check: not implemented yet".into())
}
