//! The agent's one capability, `CAP_DAC_READ_SEARCH`, effective only on the
//! sources' thread, only while it walks to and reads a source file.
//!
//! The unit grants it when `STATUS_LOG`, `OPENVPN_SERVER_CONF` or
//! `EASYRSA_INDEX` is set, because OpenVPN writes its status file root 0600
//! into `/run/openvpn-server` (0710 root, recreated at every start, so an
//! ACL there would be gone after the next restart) and Easy-RSA's `pki/` is
//! 0700. With it effective, any file the agent opened would be readable,
//! including one the hooks' user planted in the spool. Linux keeps
//! capabilities per thread, so:
//! - [`confine`], first thing in the agent: no ambient capabilities (the
//!   `getent` children get none) and `CAP_DAC_READ_SEARCH` not effective;
//!   every thread started later inherits that. It checks the result: when
//!   the capability is held and cannot be confined (a seccomp filter that
//!   denies `capset`), the agent starts itself again without it (the
//!   ambient set cleared, `execve` gives a user other than root none) and
//!   says why; where even that fails, it says so and runs no source;
//! - [`for_sources`] raises it on the calling thread around one walk to a
//!   status file, server conf or index.txt (every path step, stat, open and
//!   re-stat: a 0710 directory needs it at each), and drops it again: the
//!   spool, the state files and `failed/` are only ever opened without it.
//!   A drop that fails is never ignored: the process is marked, every later
//!   [`for_sources`] refuses, and the caller ends its thread.
//!
//! Without the capability in the permitted set (an agent run by hand, or a
//! unit without sources) both do nothing and the sources read with the
//! user's own rights.

use std::io;
use std::sync::OnceLock;

use caps::{CapSet, Capability};

pub const READ: Capability = Capability::CAP_DAC_READ_SEARCH;

/// Why the capability could not be confined or dropped again, once that
/// happened: from then on nothing is opened with it.
static UNSAFE: OnceLock<String> = OnceLock::new();

/// What [`confine`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// The capability is not in the permitted set: nothing to confine, and
    /// the sources read with the user's own rights.
    NotHeld,
    /// Permitted, effective on no thread: [`for_sources`] raises it.
    Confined,
    /// Held and still effective (or ambient): the reason, for one log line.
    /// [`for_sources`] refuses from now on.
    Failed(String),
}

/// See the module docs. Call before any other thread is started.
pub fn confine() -> Confinement {
    let mut why = Vec::new();
    match caps::has_cap(None, CapSet::Permitted, READ) {
        // Ambient and effective are subsets of permitted: nothing to do.
        Ok(false) => return Confinement::NotHeld,
        Ok(true) => {}
        Err(e) => why.push(format!("cannot read the permitted set ({e})")),
    }
    if let Err(e) = caps::clear(None, CapSet::Ambient) {
        why.push(format!("cannot clear the ambient set ({e})"));
    }
    if let Err(e) = caps::drop(None, CapSet::Effective, READ) {
        why.push(format!("cannot drop it from the effective set ({e})"));
    }
    // The kernel's word, not the calls' return values.
    match caps::has_cap(None, CapSet::Effective, READ) {
        Ok(false) => {}
        Ok(true) if why.is_empty() => why.push("still effective after capset".into()),
        Ok(true) => {}
        Err(e) => why.push(format!("cannot read the effective set ({e})")),
    }
    if why.is_empty() {
        return Confinement::Confined;
    }
    let why = format!(
        "CAP_DAC_READ_SEARCH cannot be confined: {} (does a seccomp filter deny capset? the unit must allow it)",
        why.join("; ")
    );
    let why = match without_it(&why) {
        // Only returns when it could not.
        Err(e) => format!("{why}; starting again without it failed too ({e})"),
        Ok(()) => why,
    };
    let _ = UNSAFE.set(why.clone());
    Confinement::Failed(why)
}

/// Set by [`without_it`] for the program it starts again: why.
const RESTARTED: &str = "OPENVPN_TELEMETRY_UNCONFINED";

/// When the capability cannot be confined but the ambient set could be
/// cleared: runs this program again in place (same PID, arguments and
/// environment, so systemd's `Type=notify` and watchdog carry on). Without
/// ambient capabilities a user other than root gets none at `execve`
/// (`NoNewPrivileges`, no file capabilities), so the agent then holds the
/// capability nowhere, and says why once ([`restarted_without`]). Done once
/// only: the second start never tries again.
fn without_it(why: &str) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(RESTARTED).is_some() || nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let ambient = caps::read(None, CapSet::Ambient).map_err(|e| io::Error::other(e.to_string()))?;
    if !ambient.is_empty() {
        return Err(io::Error::other("the ambient set is not empty"));
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let exe = std::env::current_exe()?;
    Err(std::process::Command::new(exe).arg0(arg0).args(args).env(RESTARTED, why).exec())
}

/// Why the capability was given up by starting again without it, when it
/// was: the sources say so once (they read what the user's own rights
/// allow).
pub fn restarted_without() -> Option<String> {
    std::env::var(RESTARTED).ok()
}

/// Runs `walk` with `CAP_DAC_READ_SEARCH` effective on this thread only
/// (when it is permitted), and drops it again before returning. Refuses
/// (`PermissionDenied`, nothing run) once confinement has failed; a failed
/// raise is an error too, never a silent read without it.
pub fn for_sources<T>(walk: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    if let Some(why) = UNSAFE.get() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{why}; no source is opened with it")));
    }
    if !caps::has_cap(None, CapSet::Permitted, READ).unwrap_or(false) {
        return walk();
    }
    caps::raise(None, CapSet::Effective, READ)
        .map_err(|e| io::Error::other(format!("cannot make CAP_DAC_READ_SEARCH effective: {e}")))?;
    let out = walk();
    let dropped = caps::drop(None, CapSet::Effective, READ);
    if dropped.is_err() || caps::has_cap(None, CapSet::Effective, READ).unwrap_or(true) {
        let why = format!(
            "CAP_DAC_READ_SEARCH could not be dropped again ({})",
            dropped.err().map_or("still effective".into(), |e| e.to_string())
        );
        let _ = UNSAFE.set(why.clone());
        return Err(io::Error::other(format!("{why}; the sources stop")));
    }
    out
}

/// Why a confinement or drop failed, if one did: the sources then do not
/// run (their thread ends, and takes its capability with it).
pub fn refused() -> Option<&'static str> {
    UNSAFE.get().map(String::as_str)
}

/// Whether the calling thread can read past file modes right now.
#[cfg(test)]
pub fn effective() -> bool {
    caps::has_cap(None, CapSet::Effective, READ).unwrap_or(false)
}

/// Whether the capability is in the permitted set (the unit granted it).
#[cfg(test)]
pub fn permitted() -> bool {
    caps::has_cap(None, CapSet::Permitted, READ).unwrap_or(false)
}

/// For `check`'s probe, after it became the agent's user with
/// `PR_SET_KEEPCAPS`: exactly `CAP_DAC_READ_SEARCH` permitted and nothing
/// effective, what the unit gives the agent after [`confine`].
pub fn keep_only_read() -> io::Result<()> {
    let only: caps::CapsHashSet = [READ].into_iter().collect();
    caps::set(None, CapSet::Effective, &caps::CapsHashSet::new())
        .and_then(|_| caps::set(None, CapSet::Permitted, &only))
        .and_then(|_| caps::clear(None, CapSet::Inheritable))
        .map_err(|e| io::Error::other(format!("cannot keep only CAP_DAC_READ_SEARCH: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root (where the capability is permitted): confined threads lack
    /// it, and it is effective only inside `for_sources`, on that thread.
    #[test]
    fn effective_only_inside_for_sources() {
        if !permitted() {
            // Not permitted: both calls must leave it absent.
            assert_eq!(confine(), Confinement::NotHeld);
            assert!(!for_sources(|| Ok(effective())).unwrap() && !effective());
            return;
        }
        std::thread::spawn(|| {
            assert_eq!(confine(), Confinement::Confined);
            assert!(!effective());
            assert!(for_sources(|| Ok(effective())).unwrap());
            assert!(!effective());
            let other = std::thread::spawn(effective).join().unwrap();
            assert!(!other, "a thread started after confine inherits it");
            // An error inside still drops it.
            assert!(for_sources(|| -> io::Result<()> { Err(io::Error::other("x")) }).is_err());
            assert!(!effective());
        })
        .join()
        .unwrap();
    }
}
