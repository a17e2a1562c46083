//! The agent's one capability, `CAP_DAC_READ_SEARCH`, held only for the
//! instant it opens a source file.
//!
//! The unit grants it when `STATUS_LOG`, `OPENVPN_SERVER_CONF` or
//! `EASYRSA_INDEX` is set, because OpenVPN writes its status file root 0600
//! into a runtime directory it recreates at every start (an ACL there would
//! be gone after the next restart) and Easy-RSA's `pki/` is 0700. With it
//! effective, any file the agent opened would be readable, including one
//! the hooks' user planted in the spool. Linux keeps capabilities per
//! thread, so:
//! - [`confine`], first thing in the agent: no ambient capabilities (the
//!   `getent` children get none) and `CAP_DAC_READ_SEARCH` not effective;
//!   every thread started later inherits that;
//! - [`for_sources`] raises it on the calling thread around one `open` of a
//!   status file, server conf or index.txt, and drops it again: the spool,
//!   the state files and `failed/` are only ever opened without it.
//!
//! Without the capability in the permitted set (an agent run by hand, or a
//! unit without sources) both are no-ops.

use caps::{CapSet, Capability};

const READ: Capability = Capability::CAP_DAC_READ_SEARCH;

/// See the module docs. Errors are ignored: where capabilities cannot be
/// changed, there are none to give up.
pub fn confine() {
    let _ = caps::clear(None, CapSet::Ambient);
    let _ = caps::drop(None, CapSet::Effective, READ);
}

/// Runs `open` with `CAP_DAC_READ_SEARCH` effective on this thread only
/// (when it is permitted), and drops it again before returning.
pub fn for_sources<T>(open: impl FnOnce() -> T) -> T {
    let raised = caps::has_cap(None, CapSet::Permitted, READ).unwrap_or(false)
        && caps::raise(None, CapSet::Effective, READ).is_ok();
    let out = open();
    if raised {
        let _ = caps::drop(None, CapSet::Effective, READ);
    }
    out
}

/// Whether the calling thread can read past file modes right now.
#[cfg(test)]
pub fn effective() -> bool {
    caps::has_cap(None, CapSet::Effective, READ).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root (where the capability is permitted): confined threads lack
    /// it, and it is effective only inside `for_sources`, on that thread.
    #[test]
    fn effective_only_inside_for_sources() {
        if !caps::has_cap(None, CapSet::Permitted, READ).unwrap_or(false) {
            // Not permitted: both calls must leave it absent.
            confine();
            assert!(!for_sources(effective) && !effective());
            return;
        }
        std::thread::spawn(|| {
            confine();
            assert!(!effective());
            assert!(for_sources(effective));
            assert!(!effective());
            let other = std::thread::spawn(effective).join().unwrap();
            assert!(!other, "a thread started after confine inherits it");
        })
        .join()
        .unwrap();
    }
}
