//! The delivery agent (issue 3): not built yet.

use crate::cli::AgentArgs;

pub fn main(_args: &AgentArgs) -> Result<i32, String> {
    Err("agent: not implemented yet".into())
}
