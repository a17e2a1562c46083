//! How the agent reaches OpenVPN's and Easy-RSA's files, through the real
//! binary run as an unprivileged user that holds `CAP_DAC_READ_SEARCH` the
//! way the unit gives it (ambient, so permitted and effective at exec; the
//! agent confines it itself) — a hand-written unit, another init or a
//! container runtime, i.e. without our unit's seccomp filter:
//! - the stock Debian layout: the status file 0600 in a 0710 root
//!   `/run/openvpn-server`, Easy-RSA's `pki/` 0700 from a real `easyrsa
//!   init-pki`: read through the capability (and, without it, refused
//!   naming the directory that blocks it);
//! - attacks on a parent directory of `STATUS_LOG`: a symlink swapped in,
//!   a parent another user owns or may write: refused with a message that
//!   names it, and nothing of the file read.
//!
//! Root only (it makes root-only trees and runs `setpriv`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/require.rs"]
mod require;
#[path = "../src/testkit.rs"]
mod testkit;
use testkit::Scratch;

const BIN: &str = env!("CARGO_BIN_EXE_openvpn-telemetry");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The agent's user: a number without an account (setpriv takes numbers),
/// neither root nor the hooks' user.
const AGENT_UID: u32 = 64123;
/// nobody: the hooks' user, who may be compromised.
const NOBODY: u32 = 65534;

/// A temporary root-owned tree with a spool and a `file://` sink that
/// belong to the agent's user; removed on drop.
struct Site {
    root: PathBuf,
    /// Removes the tree when the test ends.
    _scratch: Scratch,
}

impl Site {
    fn new(name: &str) -> Site {
        let scratch = Scratch::new("access", name);
        let root = scratch.root.clone();
        fs::create_dir_all(root.join("out")).unwrap();
        mode(&root, 0o755);
        for d in ["spool", "spool/pending", "out"] {
            std::os::unix::fs::chown(root.join(d), Some(AGENT_UID), Some(AGENT_UID)).unwrap();
        }
        Site { root, _scratch: scratch }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    /// agent.env naming `sources` (lines of settings).
    fn settings(&self, sources: &str) {
        let text = format!(
            "SPOOL_DIR={}\nTELEMETRY_URL=file://{}\n{sources}",
            self.p("spool").display(),
            self.p("out/out.ndjson").display()
        );
        fs::write(self.p("agent.env"), text).unwrap();
        mode(&self.p("agent.env"), 0o644);
    }
    /// `agent --once` as the agent's user, with the capability when
    /// `cap` (bounded: `timeout`).
    fn agent(&self, cap: bool) -> Output {
        let mut c = Command::new("timeout");
        c.args(["60", "setpriv", &format!("--reuid={AGENT_UID}"), &format!("--regid={AGENT_UID}"), "--clear-groups"]);
        if cap {
            c.args(["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]);
        }
        c.args(["--", BIN, "agent", "--once"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("OPENVPN_TELEMETRY_CONFIG", self.p("agent.env"))
            .current_dir("/");
        let out = c.output().unwrap();
        assert!(out.status.success(), "agent --once: {}", String::from_utf8_lossy(&out.stderr));
        out
    }
    /// Every event the sink has got so far.
    fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.p("out/out.ndjson")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
    /// Whether `needle` is anywhere in the sink or the spool.
    fn anywhere(&self, needle: &str) -> bool {
        let out = Command::new("grep").args(["-rqF", needle]).arg(self.p("spool")).arg(self.p("out")).status();
        out.unwrap().success()
    }
}

fn mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// OpenVPN's status file (version 2, three clients) as OpenVPN leaves it:
/// root's, 0600, its TIME line now, client names changed with `rename`.
fn status_file(path: &Path, rename: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let v2 = fs::read_to_string(Path::new(FIXTURES).join("status-v2.log")).unwrap();
    let text: String = v2
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            if f[0] == "TIME" {
                f[2] = now.to_string();
            }
            f.join(",").replace("ovt-client-", rename) + "\n"
        })
        .collect();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    mode(path, 0o600);
}

/// The stock layout: /run/openvpn-server 0710 root (the openvpn package's
/// tmpfiles rule) with the unit's status-server.log 0600 in it, and
/// Easy-RSA's pki/ as `init-pki` makes it (0700) with a CA and alice.
/// Without the capability the agent's user reads neither, and the log
/// names the directory; with it (confined by the agent) it reads both:
/// SESSION_UPDATE, SESSION_SNAPSHOT and CERT_ISSUED delivered.
#[test]
#[ignore = "needs root: make test runs it"]
fn stock_layout_is_read_through_the_capability() {
    require::root("root-only trees and setpriv");
    require::file(easyrsa::EASYRSA, "easy-rsa");
    let s = Site::new("stock");
    let run = s.p("run/openvpn-server");
    fs::create_dir_all(&run).unwrap();
    mode(&s.p("run"), 0o755);
    mode(&run, 0o710);
    let status = run.join("status-server.log");
    status_file(&status, "ovt-client-");
    let ca = s.p("easy-rsa");
    fs::create_dir_all(&ca).unwrap();
    easyrsa::run(&ca, &["init-pki"], &[]);
    assert_eq!(fs::metadata(ca.join("pki")).unwrap().permissions().mode() & 0o7777, 0o700, "init-pki's pki/");
    easyrsa::run(&ca, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "access-ca")]);
    easyrsa::run(&ca, &["build-client-full", "alice", "nopass"], &[]);
    let index = ca.join("pki/index.txt");
    s.settings(&format!("STATUS_LOG={}\nEASYRSA_INDEX={}\n", status.display(), index.display()));

    // Without the capability: nothing, and the log says which directory.
    let out = s.agent(false);
    let err = stderr(&out);
    assert!(s.events().is_empty(), "{:?}", s.events());
    assert!(err.contains(&format!("{} (mode 0710, uid 0, gid 0) cannot be searched", run.display())), "{err}");
    assert!(
        err.contains(&format!("{} (mode 0700, uid 0, gid 0) cannot be searched", ca.join("pki").display())),
        "{err}"
    );

    // With it: everything, and no complaint.
    let out = s.agent(true);
    let err = stderr(&out);
    let events = s.events();
    assert_eq!(count(&events, "SESSION_UPDATE"), 3, "{err}\n{events:?}");
    assert_eq!(count(&events, "SESSION_SNAPSHOT"), 1, "{err}");
    assert!(events.iter().any(|e| e["type"] == "CERT_ISSUED" && e["common_name"] == "alice"), "{err}\n{events:?}");
    assert!(!err.contains("event sources") && !err.contains("cannot"), "{err}");
}

/// A status file below a directory tree: the first run reads it (the set-up
/// is right), then the hooks' user, owning a parent, swaps `logs` for a
/// symlink to a root-only directory. Refused; nothing of that file read.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_symlink_swapped_into_a_parent_is_refused() {
    require::root("root-only trees and setpriv");
    let s = Site::new("symlink");
    let logs = s.p("srv/vpn/logs");
    status_file(&logs.join("status.log"), "ovt-client-");
    for d in ["srv", "srv/vpn", "srv/vpn/logs"] {
        mode(&s.p(d), 0o755);
    }
    // A root-only file (0600) in a directory anyone may search, like a
    // key next to a server's conf: only the capability opens it.
    let private = s.p("private");
    status_file(&private.join("status.log"), "secret-root-only-");
    mode(&private, 0o755);
    s.settings(&format!("STATUS_LOG={}\n", logs.join("status.log").display()));
    s.agent(true);
    assert_eq!(count(&s.events(), "SESSION_UPDATE"), 3, "the set-up reads through real directories");

    // The swap, as the parent's owner would do it; the directory itself
    // stays root's, so only the symlink rule stands between.
    fs::rename(&logs, s.p("srv/vpn/logs.old")).unwrap();
    symlink("../../private", &logs).unwrap();
    let before = s.events().len();
    let err = stderr(&s.agent(true));
    assert!(err.contains(&format!("{} is a symlink", logs.display())), "{err}");
    assert_eq!(s.events().len(), before, "nothing new delivered");
    assert!(!s.anywhere("secret-root-only-"), "the root-only file was read");
}

/// A parent of STATUS_LOG that someone other than root may change (owned
/// by the hooks' user; writable by its group; writable by all): refused,
/// naming that directory, before anything below it is looked at.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_parent_writable_by_another_user_is_refused() {
    require::root("root-only trees and setpriv");
    let cases: [(&str, Option<u32>, u32, String); 3] = [
        ("owned by nobody", Some(NOBODY), 0o755, format!("is owned by uid {NOBODY}")),
        ("group-writable", None, 0o775, format!("is writable by group gid {NOBODY}")),
        ("world-writable", None, 0o777, "is writable by everyone".into()),
    ];
    for (what, owner, m, says) in cases {
        let s = Site::new("parent");
        let vpn = s.p("srv/vpn");
        let status = vpn.join("logs/status.log");
        status_file(&status, "secret-below-");
        for d in ["srv", "srv/vpn", "srv/vpn/logs"] {
            mode(&s.p(d), 0o755);
        }
        std::os::unix::fs::chown(&vpn, owner, Some(NOBODY)).unwrap();
        mode(&vpn, m);
        s.settings(&format!("STATUS_LOG={}\n", status.display()));
        let err = stderr(&s.agent(true));
        assert!(err.contains(&format!("directory {} {says}", vpn.display())), "{what}: {err}");
        assert!(s.events().is_empty() && !s.anywhere("secret-below-"), "{what}: read anyway");
    }
}

/// A staging root with the host's accounts (minus ours), for `install` and
/// `check --root`; removed on drop (it is a [`Site`]'s tree).
fn staged(name: &str) -> Site {
    let s = Site::new(name);
    fs::create_dir_all(s.p("etc/openvpn-telemetry")).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        let Ok(text) = fs::read_to_string(Path::new("/etc").join(f)) else { continue };
        let kept: String =
            text.lines().filter(|l| !l.starts_with("openvpn-telemetry:")).map(|l| format!("{l}\n")).collect();
        fs::write(s.p(&format!("etc/{f}")), kept).unwrap();
        mode(&s.p(&format!("etc/{f}")), if f.contains("shadow") { 0o600 } else { 0o644 });
    }
    s
}

fn root_cmd(s: &Site, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["60", BIN])
        .args(args)
        .arg("--root")
        .arg(&s.root)
        .env_remove("OPENVPN_TELEMETRY_CONFIG")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `check` opens each source as the agent's user with exactly the unit's
/// privileges, through the agent's walk: OK for the stock 0710/0600
/// status file (with the capability), FAIL naming the directory for a
/// parent the hooks' user owns, FAIL naming the 0710 directory once the
/// unit no longer grants the capability, and FAIL when the unit's filter
/// would keep the agent from confining it.
#[test]
#[ignore = "needs root: make test runs it"]
fn check_names_what_blocks_each_source() {
    require::root("install --root and a probe that changes user");
    let s = staged("check");
    let run = s.p("run/openvpn-server");
    status_file(&run.join("status-server.log"), "ovt-client-");
    mode(&s.p("run"), 0o755);
    mode(&run, 0o710);
    let index = s.p("srv/vpn/pki/index.txt");
    fs::create_dir_all(index.parent().unwrap()).unwrap();
    fs::write(&index, "").unwrap();
    mode(&s.p("srv"), 0o755);
    mode(&s.p("srv/vpn/pki"), 0o700);
    std::os::unix::fs::chown(s.p("srv/vpn"), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::write(
        s.p("etc/openvpn-telemetry/.env"),
        "STATUS_LOG=/run/openvpn-server/status-server.log\nEASYRSA_INDEX=/srv/vpn/pki/index.txt\n",
    )
    .unwrap();
    let out = root_cmd(&s, &["install"]);
    let unit = s.p("etc/systemd/system/openvpn-telemetry-agent.service");
    assert!(unit.exists(), "install: {out}");
    let line = |text: &str, key: &str| -> String {
        text.lines().find(|l| l.contains("agent can") && l.contains(key)).unwrap_or_default().to_string()
    };

    let text = root_cmd(&s, &["check"]);
    let status = line(&text, "STATUS_LOG");
    assert!(status.starts_with("OK   agent can read STATUS_LOG") && status.contains("CAP_DAC_READ_SEARCH"), "{text}");
    let easyrsa = line(&text, "EASYRSA_INDEX");
    let blocked = format!("directory {} is owned by uid {NOBODY}", s.p("srv/vpn").display());
    assert!(easyrsa.starts_with("FAIL agent cannot read EASYRSA_INDEX") && easyrsa.contains(&blocked), "{text}");
    assert!(!text.contains("denies capset"), "{text}");

    // The unit before this one: capset denied by ~@privileged.
    let good = fs::read_to_string(&unit).unwrap();
    fs::write(&unit, good.replace("SystemCallFilter=capset\n", "")).unwrap();
    let text = root_cmd(&s, &["check"]);
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("denies capset")), "{text}");
    // ... so the agent runs without it, and the probe too.
    let status = line(&text, "STATUS_LOG");
    assert!(
        status.starts_with("FAIL agent cannot read STATUS_LOG") && status.contains("without capabilities"),
        "{text}"
    );

    // No capability: the 0710 directory is what stops the agent's user.
    fs::write(&unit, good.replace("AmbientCapabilities=CAP_DAC_READ_SEARCH", "AmbientCapabilities=")).unwrap();
    let text = root_cmd(&s, &["check"]);
    let status = line(&text, "STATUS_LOG");
    let dir = format!("{} (mode 0710, uid 0, gid 0) cannot be searched", run.display());
    assert!(status.starts_with("FAIL agent cannot read STATUS_LOG") && status.contains(&dir), "{text}");
    assert!(status.contains("— fix: run `openvpn-telemetry install` again"), "{status}");
}
