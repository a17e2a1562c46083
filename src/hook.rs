//! The OpenVPN hooks: `client-connect`, `client-disconnect` and
//! `write-event TYPE`.
//!
//! OpenVPN waits for these synchronously and rejects a client when one
//! exits non-zero, so this module promises:
//! - exit status 0, always: every error and every panic ends here as one
//!   line on stderr (OpenVPN's log) — [`run`] is the one place that decides;
//! - nothing on stdout, no network, no fork, no `PATH`, no `/tmp`;
//! - bounded time: the wait for the spool's lock is capped at
//!   [`LOCK_WAIT`] (40 ms) in all, and ends sooner (20 ms) once an earlier
//!   hook has found the lock stuck ([`crate::spool::KNOWN_STALL`]);
//!   then the event goes to its own chunk in `pending/`, still with a
//!   unique seq;
//! - when an event cannot be stored at all, the event itself is printed in
//!   that stderr line, so it survives in OpenVPN's log.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::config::{self, say};
use crate::event::{self, ProcessEnv};
use crate::roles::Role;
use crate::spool::{Spool, Written};

/// The most a hook waits for `queue.lock` in all, whatever the holder does:
/// `queue.log` changing counts as progress, and the hooks' user can fake
/// that (append a byte every few ms while holding the lock), so only a hard
/// ceiling keeps OpenVPN's connect from waiting on it. Past it the event
/// takes the bypass (its own chunk): in a burst of 300 hooks on 2 cores a
/// few more hooks bypass, each still with its event stored.
pub const LOCK_WAIT: Duration = Duration::from_millis(40);

/// Which hook is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Connect,
    Disconnect,
    /// `write-event TYPE`; `None` when no TYPE was given.
    WriteEvent(Option<String>),
}

impl Hook {
    /// The hook a role runs with `argument` (write-event's TYPE); `None`
    /// for the agent.
    pub fn for_role(role: Role, argument: Option<String>) -> Option<Hook> {
        match role {
            Role::Connect => Some(Hook::Connect),
            Role::Disconnect => Some(Hook::Disconnect),
            Role::WriteEvent => Some(Hook::WriteEvent(argument)),
            Role::Agent => None,
        }
    }
}

/// Runs a hook and returns the process exit status, which is always 0.
pub fn run(hook: Hook) -> i32 {
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        say(&format!("internal error{at}: {msg}"));
    }));
    let _ = panic::catch_unwind(AssertUnwindSafe(|| write_event(&hook)));
    0
}

fn write_event(hook: &Hook) {
    // Test aid for tests/hooks.rs (which runs the dev-profile build): a
    // release build has no such switch and never reads the variable.
    #[cfg(debug_assertions)]
    if std::env::var_os("OPENVPN_TELEMETRY_TEST_PANIC").is_some() {
        panic!("panic requested by OPENVPN_TELEMETRY_TEST_PANIC");
    }
    let kind = match hook {
        Hook::Connect => "SESSION_CONNECTED".to_string(),
        Hook::Disconnect => "SESSION_DISCONNECTED".to_string(),
        Hook::WriteEvent(Some(t)) if valid_type(t) => t.clone(),
        Hook::WriteEvent(Some(t)) => {
            return say(&format!(
                "write-event: invalid event type {:?} (use A-Z, 0-9 and _, at most 64); nothing written",
                event::clean(std::ffi::OsStr::new(t))
            ));
        }
        Hook::WriteEvent(None) => {
            return say("write-event: missing event TYPE (e.g. SESSION_CONNECTED); nothing written");
        }
    };
    // The hooks need only the Spool section.
    let settings = config::hook_settings(&config::config_path(), &mut say).spool;
    let ev = event::from_openvpn_env(&kind, &ProcessEnv);
    let spool = Spool::new(&settings.spool_dir);
    match spool.append(&ev, LOCK_WAIT, settings.max_spool_bytes) {
        Ok(Written::Queue { .. }) => {}
        Ok(Written::Bypass { chunk, .. }) => {
            say(&format!("spool lock busy or queue.log unusable; event written to {} instead", chunk.display()))
        }
        Ok(Written::Dropped { seq }) => say(&format!(
            "spool full (queue.log at MAX_SPOOL_BYTES={}); event seq {seq} dropped and counted: {}",
            settings.max_spool_bytes,
            String::from_utf8_lossy(&ev.to_line(seq)).trim_end()
        )),
        Err(e) => say(&format!("event not stored ({e}): {}", String::from_utf8_lossy(&ev.to_line(0)).trim_end())),
    }
}

/// Event types are identifiers: `SESSION_CONNECTED`, `VPN_NOTE_1`, ...
fn valid_type(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
