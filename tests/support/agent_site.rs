//! The integration tests' one test site: a temporary spool + agent.env +
//! the binary linked under every name of its role table (OpenVPN's hook
//! names), with the hooks run as OpenVPN runs them and the agent run
//! bounded in time; the loopback receiver (`receiver.py`, a real HTTP/TLS
//! server) and the throwaway certificates of `pki.sh`.

#![allow(dead_code)]

#[path = "roles.rs"]
pub mod roles;
/// The one builder of a scratch site, shared with the unit tests.
#[path = "../../src/testkit.rs"]
mod testkit;
pub use testkit::Scratch;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_openvpn-telemetry");
const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/receiver.py");

/// Generous bound for things that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Polls `f` until it returns Some, or panics with `what` after PATIENCE.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Site {
    pub root: PathBuf,
    /// Removes the site when the test ends.
    _scratch: Scratch,
}

impl Site {
    pub fn new(name: &str) -> Site {
        let scratch = Scratch::new("agent", name);
        let root = scratch.root.clone();
        fs::create_dir_all(root.join("bin")).unwrap();
        for l in roles::all().iter().map(|r| r.program).chain(["openvpn-telemetry"]) {
            symlink(BIN, root.join("bin").join(l)).unwrap();
        }
        let site = Site { root, _scratch: scratch };
        site.config("");
        site
    }
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }
    pub fn pending(&self) -> PathBuf {
        self.spool().join("pending")
    }
    pub fn failed(&self) -> PathBuf {
        self.spool().join("failed")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("agent.env")
    }
    /// A file or directory of the site.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    /// Writes agent.env as exactly `text` (no defaults added).
    pub fn settings(&self, text: &str) {
        fs::write(self.config_path(), text).unwrap();
    }
    /// The binary linked as `name` (a role's program name).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }
    /// The hook `name` as OpenVPN runs it: only OpenVPN's variables, no
    /// PATH/HOME, stdin closed.
    pub fn hook(&self, name: &str, args: &[&str], env: &[(&str, &[u8])]) -> Command {
        let mut c = Command::new(self.bin(name));
        c.args(args).env_clear().env("OPENVPN_TELEMETRY_CONFIG", self.config_path());
        for (k, v) in env {
            c.env(k, OsStr::from_bytes(v));
        }
        c.stdin(Stdio::null());
        c
    }
    /// queue.log's lines, each parsed (panics on one that is not JSON).
    pub fn lines(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.spool().join("queue.log")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))).collect()
    }
    /// Writes agent.env: the spool, fast retry settings, then `extra`.
    pub fn config(&self, extra: &str) {
        let text = format!(
            "SPOOL_DIR={}\nRETRY_SLEEP_SECONDS=0\nRETRY_MAX_SECONDS=1\nCONNECT_TIMEOUT_SECONDS=2\nREQUEST_TIMEOUT_SECONDS=2\nROTATE_INTERVAL_SECONDS=1\n{extra}",
            self.spool().display()
        );
        fs::write(self.config_path(), text).unwrap();
    }

    /// Runs the real connect hook `n` times (as OpenVPN would).
    pub fn hook_events(&self, n: usize) {
        for i in 0..n {
            let out = Command::new(self.bin(roles::connect()))
                .env_clear()
                .env("OPENVPN_TELEMETRY_CONFIG", self.config_path())
                .env("common_name", format!("user{i}"))
                .env("trusted_ip", "198.51.100.7")
                .env("trusted_port", format!("{}", 40000 + i))
                .env("ifconfig_pool_remote_ip", "10.8.0.6")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }

    /// Writes a chunk straight into pending/ (temp name, then rename, as
    /// the spool does) and returns the event lines it holds.
    pub fn chunk(&self, tag: &str, lines: &[String]) -> PathBuf {
        let name = format!("{:020}-{tag}.ndjson", nanos());
        let tmp = self.pending().join(format!(".{name}.tmp"));
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&tmp, text).unwrap();
        let path = self.pending().join(name);
        fs::rename(&tmp, &path).unwrap();
        path
    }

    pub fn agent(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("agent")
            .env("OPENVPN_TELEMETRY_CONFIG", self.config_path())
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null());
        c
    }

    /// Runs `agent --once`; one that has not ended within PATIENCE is
    /// killed and fails the test, so "never ends" is a failure, not a hang.
    pub fn once(&self) -> Output {
        let mut child = self.agent().arg("--once").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let read_all = |mut from: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = from.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = read_all(Box::new(child.stdout.take().unwrap()));
        let stderr = read_all(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap();
                let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(2000)..]).into_owned();
                panic!("agent --once did not end within {PATIENCE:?}; its log ends with: {tail}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    }

    /// The daemon, with its log going to `agent.log` in the site; killed
    /// when the guard drops, also when the test fails first.
    pub fn daemon(&self) -> Daemon {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.root.join("agent.log")).unwrap();
        Daemon(self.agent().stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("agent.log")).unwrap_or_default()
    }

    pub fn status_json(&self) -> Value {
        let out = Command::new(BIN)
            .args(["status", "--json"])
            .env("OPENVPN_TELEMETRY_CONFIG", self.config_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every event line still in the spool (queue.log and pending/).
    pub fn spooled_ids(&self) -> Vec<String> {
        let mut files = vec![self.spool().join("queue.log")];
        for e in fs::read_dir(self.pending()).unwrap() {
            let e = e.unwrap();
            if !e.file_name().to_string_lossy().starts_with('.') {
                files.push(e.path());
            }
        }
        let mut ids = Vec::new();
        for f in files {
            for line in fs::read_to_string(f).unwrap_or_default().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    ids.push(v["event_id"].as_str().unwrap_or("").to_string());
                }
            }
        }
        ids
    }

    pub fn failed_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(rd) = fs::read_dir(self.failed()) {
            for e in rd {
                let text = fs::read_to_string(e.unwrap().path()).unwrap();
                lines.extend(text.lines().map(str::to_string));
            }
        }
        lines
    }
}

/// A [`Site`] that delivers to a `file://` sink (`out.ndjson`) and runs
/// `agent --once`, remembering how much of the sink a test has seen.
pub struct FileSite {
    site: Site,
    seen: usize,
}

impl std::ops::Deref for FileSite {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl FileSite {
    /// A new site whose agent.env names its spool and the sink, then `extra`.
    pub fn new(name: &str, extra: &str) -> FileSite {
        let site = FileSite { site: Site::new(name), seen: 0 };
        site.configure(extra);
        site
    }
    /// Writes agent.env again: the spool, the `file://` sink, then `extra`.
    pub fn configure(&self, extra: &str) {
        self.site.settings(&format!(
            "SPOOL_DIR={}\nTELEMETRY_URL=file://{}\n{extra}",
            self.spool().display(),
            self.path("out.ndjson").display()
        ));
    }
    /// `agent --once` (at unix time `now`, if given): the events it
    /// delivered that the test has not seen yet.
    pub fn agent(&mut self, now: Option<i64>) -> Vec<Value> {
        self.agent_logged(now).0
    }
    /// [`FileSite::agent`] and the agent's log (at `info`).
    pub fn agent_logged(&mut self, now: Option<i64>) -> (Vec<Value>, String) {
        let mut c = Command::new(BIN);
        c.args(["agent", "--once"]).env("OPENVPN_TELEMETRY_CONFIG", self.config_path()).env("RUST_LOG", "info");
        if let Some(t) = now {
            c.env("OPENVPN_TELEMETRY_NOW", t.to_string());
        }
        let out = c.output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "agent --once: {log}");
        let text = fs::read_to_string(self.path("out.ndjson")).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let new = lines[self.seen..].to_vec();
        self.seen = lines.len();
        (new, log)
    }
}

/// A running `agent` daemon; a test that fails before stopping it must
/// not leave it running (it never ends by itself).
pub struct Daemon(Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies the host's account files into `root`/etc, minus ours (the
/// real-install test may be adding and deleting the agent's user on the
/// host right now), for `install --root` and `check --root`.
pub fn copy_host_accounts(root: &Path) {
    for f in ["passwd", "group", "shadow", "gshadow"] {
        let Ok(text) = fs::read_to_string(Path::new("/etc").join(f)) else { continue };
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("openvpn-telemetry:"))
            .map(|l| match l.rsplit_once(':') {
                Some((head, members)) if f.contains("group") => {
                    let m: Vec<&str> = members.split(',').filter(|m| *m != "openvpn-telemetry").collect();
                    format!("{head}:{}\n", m.join(","))
                }
                _ => format!("{l}\n"),
            })
            .collect();
        let mode = if f.contains("shadow") { 0o600 } else { 0o644 };
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(mode).open(root.join("etc").join(f)).unwrap();
        file.write_all(kept.as_bytes()).unwrap();
    }
}

/// A seed-format event line with a fresh event_id.
pub fn event_line(seq: u64) -> (String, String) {
    let id = uuid::Uuid::new_v4().to_string();
    let line = format!(
        r#"{{"event_id":"{id}","seq":{seq},"type":"SESSION_CONNECTED","common_name":"user{seq}","real_ip":"198.51.100.7","real_port":"5555","virtual_ip":"10.8.0.6","event_time_vpn":"2026-02-13T12:10:05Z"}}"#
    );
    (id, line)
}

pub fn event_lines(first_seq: u64, n: usize) -> (Vec<String>, Vec<String>) {
    (0..n).map(|i| event_line(first_seq + i as u64)).unzip()
}

/// The loopback telemetry server (tests/support/receiver.py).
pub struct Receiver {
    child: Child,
    pub port: u16,
    pub db: PathBuf,
}

impl Receiver {
    /// `args`: extra receiver flags (`--script`, `--token`, TLS files...).
    pub fn start(site: &Site, args: &[&str]) -> Receiver {
        Receiver::start_in(&site.root, args)
    }

    /// The same with its database, port file and log in `dir`.
    pub fn start_in(dir: &Path, args: &[&str]) -> Receiver {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let db = dir.join(format!("receiver-{n}"));
        let ready = dir.join(format!("receiver-{n}.port"));
        let log = dir.join(format!("receiver-{n}.err"));
        let child = Command::new("python3")
            .arg(RECEIVER)
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Dropped (killed and reaped) also when it never comes up.
        let mut rx = Receiver { child, port: 0, db };
        rx.port = wait_for("receiver to listen", || {
            // Ended before listening (a missing package, a bad flag): say why now.
            if let Ok(Some(status)) = rx.child.try_wait() {
                panic!("receiver.py {status}: {}", fs::read_to_string(&log).unwrap_or_default().trim());
            }
            fs::read_to_string(&ready).ok()?.trim().parse().ok()
        });
        rx
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/api/v1/events", self.port)
    }

    pub fn stats(&self) -> Value {
        match fs::read(self.db.join("stats.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => serde_json::json!({"requests":0,"batches":0,"events":0,"duplicates":0,"log":[]}),
        }
    }

    /// Event ids stored (first-seen), in arrival order.
    pub fn ids(&self) -> Vec<String> {
        self.events().iter().map(|v| v["event_id"].as_str().unwrap_or("").to_string()).collect()
    }

    pub fn events(&self) -> Vec<Value> {
        fs::read_to_string(self.db.join("events.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Throwaway PKI (tests/support/pki.sh, the one the shell proofs use too):
/// `ca` signs the server (127.0.0.1) and `client`; `other` is an unrelated
/// CA that signs `stranger`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(site: &Site) -> Pki {
        let dir = site.root.join("pki");
        make_pki(&dir);
        Pki { dir }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Runs tests/support/pki.sh into `dir`.
pub fn make_pki(dir: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pki.sh");
    let out = Command::new("bash").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Whether a path exists as a file with `lines` lines.
pub fn line_count(path: &Path) -> usize {
    fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}
