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

use std::path::Path;
use std::process::Command;

use attack::{BOUND, Findings, Ran, Running, Staged, each};

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

/// The real connect hook as OpenVPN runs it (nobody, inside the root).
fn hook(s: &Staged, common_name: &str) -> Ran {
    let mut c = Command::new("/usr/sbin/chroot");
    c.arg(format!("--userspec={}:{}", s.nobody_uid(), s.nogroup()))
        .arg(&s.root)
        .arg("/etc/openvpn/scripts/telemetry-connect.sh")
        .env_clear()
        .envs([("common_name", common_name), ("trusted_ip", "198.51.100.7"), ("trusted_port", "5555")]);
    attack::run("connect hook", &mut c, BOUND)
}

/// Files below `dir` (as root) that contain `needle`.
fn files_with(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let Ok(m) = fs::symlink_metadata(e.path()) else { continue };
        if m.is_dir() {
            out.extend(files_with(&e.path(), needle));
        } else if m.is_file() && m.len() < 1 << 20 && fs::read(e.path()).is_ok_and(|b| contains(&b, needle)) {
            out.push(e.path());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
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

// ---------------------------------------------------------------------
// 6. A lock holder faking progress

/// nobody holds `queue.lock` and appends a byte to `queue.log` every 10 ms
/// (progress, as far as a waiting hook can tell) for about half a second,
/// then lets go. Outcome: the hook's event is stored (its own chunk in
/// pending/) and the hook is done before the holder lets go: it never
/// waits on what a holder does.
#[test]
fn a_lock_holder_faking_progress_never_holds_a_hook() {
    each(LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = stage("fake-progress", layout, "");
        let h = hook(&s, "warm-up");
        f.expect(h.success(), || h.show());
        let holder = Running::start(
            "lock holder (nobody)",
            &mut s.nobody_cmd(
                "cd \"$S\" || exit 1\n\
                 exec flock queue.lock sh -c 'touch holding; i=0; while [ $i -lt 40 ]; do printf x >> queue.log; \
                 sleep 0.01; i=$((i+1)); done; touch released'",
            ),
        );
        let deadline = std::time::Instant::now() + BOUND;
        while !s.spool().join("holding").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let h = hook(&s, "while-faked");
        let released_first = s.spool().join("released").exists();
        let held = holder.wait(BOUND);
        f.expect(held.finished(), || held.show());
        f.expect(h.success(), || h.show());
        f.expect(!released_first, || {
            format!("{layout:?}: the hook waited until the holder let go (about half a second):\n{}", h.show())
        });
        let stored = !files_with(&s.spool().join("pending"), "while-faked").is_empty()
            || !files_with(&s.spool(), "while-faked").is_empty();
        f.expect(stored, || format!("{layout:?}: the event is nowhere in the spool:\n{}", h.show()));
        f
    })
    .verdict("a lock holder faking progress");
}
