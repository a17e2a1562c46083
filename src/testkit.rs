//! The test kit's one site builder: a private scratch directory per test,
//! laid out as the agent expects (`spool/pending/`, `agent.env` beside it),
//! removed when the test ends, pass or fail (set `OVT_TEST_KEEP=1` to
//! keep them for a post-mortem).
//!
//! Test-only and free of crate imports on purpose: the unit tests use it
//! as `crate::testkit`, and the integration tests' site
//! (`tests/support/agent_site.rs`) includes this same file by path, so
//! there is one builder of a test site, not one per test suite.

// Each suite uses the part it needs.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch site under the system's temporary directory.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    /// `ovt-<suite>-<name>-<pid>-<n>`: unique across parallel tests and
    /// test binaries, with `spool/pending/` made.
    pub fn new(suite: &str, name: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("ovt-{suite}-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        if let Err(e) = fs::create_dir_all(root.join("spool/pending")) {
            panic!("{}: cannot make the test site: {e}", root.display());
        }
        Scratch { root }
    }

    /// A file or directory of the site.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("agent.env")
    }

    /// agent.env's text for this site: its spool, then `extra` (later
    /// lines win, as in the real file).
    pub fn env_text(&self, extra: &str) -> String {
        format!("SPOOL_DIR={}\n{extra}", self.spool().display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("OVT_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}
