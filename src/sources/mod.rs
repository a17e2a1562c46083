//! Event sources the agent reads besides the hooks (issue 6): OpenVPN's
//! status file (SESSION_UPDATE, SESSION_SNAPSHOT) and Easy-RSA's index.txt
//! (CERT_*). Not built yet.

use std::sync::atomic::AtomicBool;

use crate::config::Settings;

/// Runs the sources until `stop` is set; called by the agent on a thread of
/// its own so a slow or huge status file never delays delivery.
pub fn run(_settings: &Settings, _stop: &AtomicBool) {}
