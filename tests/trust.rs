//! The second round of attacks by the hooks' user (`nobody`) on a real
//! staged install: it may add events, and nothing else. Each test tries an
//! attack for real and asserts the outcome: nobody reads or rewrites
//! nothing the agent wrote; no control file it damages stops a hook or the
//! agent; no file it makes huge or sparse stalls `status`, `check` or the
//! agent; `install` widens nothing of root's; a lock holder faking
//! progress does not hold a hook; `seq` never goes back below what the
//! agent saw. As in tests/security.rs, attacks run on the spool as the
//! installer leaves it and on the older layout where nobody owned the
//! directories, upgraded by `install` before the agent runs.
//!
//! Needs root (it fails, never skips, without). `OVT_TEST_BIN=path` runs
//! the attacks against another build; `OVT_TEST_KEEP=1` keeps the roots.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/attack.rs"]
mod attack;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use attack::{Findings, Staged, each};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// As the installer under test leaves the spool.
    Installed,
    /// As an older installer left it (nobody:nogroup 2770 everywhere, so
    /// nobody may remove, replace or chmod every file in it) when nobody
    /// attacks, then upgraded by `install` as root before the agent runs.
    Upgraded,
}

const LAYOUTS: [Layout; 2] = [Layout::Installed, Layout::Upgraded];

fn stage(name: &str, layout: Layout, env: &str) -> Staged {
    let s = Staged::new(&format!("t-{name}-{layout:?}").to_lowercase(), env);
    if layout == Layout::Upgraded {
        s.legacy_layout();
    }
    s
}

// ---------------------------------------------------------------------
// 5. install widens nothing of root's

/// Root-owned 0600 source state in the spool (as an earlier version, or a
/// run by hand, leaves it). Outcome: `install` leaves it 0600 root:root,
/// and nobody can read it.
#[test]
fn install_never_hands_a_root_file_in_the_spool_to_the_hooks() {
    const SECRET: &str = "secret-state-4c1d9e";
    each(LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = stage("root-state", layout, "");
        for name in ["certs.state", "sessions.state"] {
            let p = s.spool().join(name);
            fs::write(&p, format!("{{\"note\":\"{SECRET}\"}}\n")).unwrap();
            std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let r = s.install();
        f.expect(r.success(), || r.show());
        for name in ["certs.state", "sessions.state"] {
            let m = fs::symlink_metadata(s.spool().join(name)).unwrap();
            f.expect((m.mode() & 0o7777, m.uid(), m.gid()) == (0o600, 0, 0), || {
                format!("{layout:?}: {name} became {:04o} {}:{}\n{}", m.mode() & 0o7777, m.uid(), m.gid(), r.show())
            });
        }
        let readable = s.nobody_can_read(SECRET);
        f.expect(readable.is_empty(), || format!("{layout:?}: nobody reads {readable:?}"));
        f
    })
    .verdict("install widens root's files");
}
