//! `status` (issue 3): not built yet.

use crate::cli::StatusArgs;

pub fn main(_args: &StatusArgs) -> Result<i32, String> {
    Err("status: not implemented yet".into())
}
