//! Helpers for tests/security.rs: a real staged install to
//! attack, the attacker (`nobody`, as OpenVPN drops to), the agent run the
//! way its systemd unit runs it, root's own commands, and bounded runs (a
//! hang must fail a test, not stall the suite).
//!
//! The install is `openvpn-telemetry install --root R` into a staging root
//! R that carries a copy of this host's account files, so the installer
//! creates the agent's user there and every id resolves as on a target.
//! The agent and `status` run *inside* R (`chroot`, with the binary's
//! shared libraries and `setpriv` copied in), so they see exactly the
//! installed paths, users and unit; the attacker runs outside, as uid
//! `nobody`, on R's spool. Symlinks the attacker plants are relative, so
//! they point at the same file inside and outside the chroot, and never at
//! this host's own /etc.
//!
//! `OVT_TEST_BIN=/path/to/openvpn-telemetry` tests another build (e.g. an
//! old release, to see the attacks succeed there); `OVT_TEST_VERBOSE=1`
//! prints every command's output (with `--nocapture`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The spool below the staging root (the default SPOOL_DIR).
pub const SPOOL: &str = "var/spool/openvpn-telemetry";
/// Upper bound for anything that should take well under a second: a hang
/// is forever, so this only has to be generous, never tight.
pub const BOUND: Duration = Duration::from_secs(20);
const UNIT: &str = "etc/systemd/system/openvpn-telemetry-agent.service";
#[path = "agent_site.rs"]
pub mod site;

/// The binary under test.
pub fn bin() -> PathBuf {
    match std::env::var_os("OVT_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_openvpn-telemetry")),
    }
}

/// These tests need root (real owners, useradd, chroot, setpriv): without
/// it they FAIL, they never pass unseen.
pub fn need_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "tests/security.rs attacks a real staged install as user nobody against the agent's own user: \
         it needs root (run `sudo cargo test --test security`); it is never skipped"
    );
}

/// What a bounded run did.
pub struct Ran {
    pub what: String,
    /// None: still running at the bound (killed).
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Ran {
    pub fn finished(&self) -> bool {
        self.status.is_some()
    }
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn both(&self) -> String {
        format!("{}{}", self.out(), self.err())
    }
    /// A short account for assertion messages.
    pub fn show(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => format!("STILL RUNNING after {:.1} s (killed)", self.elapsed.as_secs_f64()),
        };
        let cut = |s: String| if s.len() > 4000 { format!("{}…[{} bytes]", &s[..4000], s.len()) } else { s };
        format!("{}: {status}\n--- stdout:\n{}\n--- stderr:\n{}", self.what, cut(self.out()), cut(self.err()))
    }
}

/// A started process, killed (with its process group) at the latest when
/// waited for past its bound, or when dropped.
pub struct Running {
    what: String,
    child: Child,
    started: Instant,
    readers: Vec<JoinHandle<Vec<u8>>>,
    status: Option<ExitStatus>,
    /// Waited for: its id may belong to someone else by now.
    reaped: bool,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Running {
    pub fn start(what: &str, cmd: &mut Command) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
        let readers = vec![reader(child.stdout.take().unwrap()), reader(child.stderr.take().unwrap())];
        Running { what: what.to_string(), child, started: Instant::now(), readers, status: None, reaped: false }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }
    fn kill_group(&self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::Signal::SIGKILL);
    }
    /// Waits up to `limit` from now; kills the whole group past it.
    pub fn wait(mut self, limit: Duration) -> Ran {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    self.reaped = true;
                    break;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        let elapsed = self.started.elapsed();
        if !self.reaped {
            // The process and whatever it started (check's probes). Only
            // while it is unreaped: its id cannot have been reused.
            self.kill_group();
            let _ = self.child.wait();
            self.reaped = true;
        }
        let mut out = self.readers.drain(..).map(|h| h.join().unwrap_or_default());
        let (stdout, stderr) = (out.next().unwrap_or_default(), out.next().unwrap_or_default());
        let ran = Ran { what: self.what.clone(), status: self.status, stdout, stderr, elapsed };
        if std::env::var_os("OVT_TEST_VERBOSE").is_some() {
            eprintln!("=== [{}] {}", std::thread::current().name().unwrap_or("?"), ran.show());
        }
        ran
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

pub fn run(what: &str, cmd: &mut Command, limit: Duration) -> Ran {
    Running::start(what, cmd).wait(limit)
}

/// What went wrong, collected so that one run reports every sub-attack
/// that succeeded, not only the first.
#[derive(Default)]
pub struct Findings(pub Vec<String>);

impl Findings {
    /// Records `what()` unless `ok`.
    pub fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }
    /// Fails the test with every finding.
    pub fn verdict(self, attack: &str) {
        assert!(
            self.0.is_empty(),
            "{attack}: {} sub-attack(s) succeeded:\n\n{}",
            self.0.len(),
            self.0.join("\n\n==========\n\n")
        );
    }
}

/// Runs `f` for every item at once (each in its own thread, so that hangs
/// cost the bound once) and collects the findings.
pub fn each<T: Send, F: Fn(T) -> Findings + Sync>(items: impl IntoIterator<Item = T>, f: F) -> Findings {
    need_root();
    let mut all = Findings::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.into_iter().map(|item| scope.spawn(|| f(item))).collect();
        for h in handles {
            match h.join() {
                Ok(found) => all.extend(found),
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    all.0.push(format!("a case could not run (set-up failed, not an attack's outcome): {msg}"));
                }
            }
        }
    });
    all
}

/// A real install below a staging root.
pub struct Staged {
    /// Holds `root` (0755, the attacker may walk it) and `logs`.
    pub work: PathBuf,
    pub root: PathBuf,
    /// 0700: root-only scratch (receiver database, PKI keys).
    pub logs: PathBuf,
    pub bin: PathBuf,
    /// Removes `work` when the test ends (kept with `OVT_TEST_KEEP=1`).
    _scratch: site::Scratch,
}

impl Staged {
    /// Stages a root with the host's accounts, writes `.env` and installs.
    pub fn new(name: &str, env: &str) -> Staged {
        need_root();
        let scratch = site::Scratch::new("sec", name);
        let work = scratch.root.clone();
        let root = work.join("root");
        let logs = work.join("logs");
        fs::create_dir_all(root.join("etc/openvpn-telemetry")).unwrap();
        fs::create_dir_all(&logs).unwrap();
        for (d, mode) in [(&work, 0o755), (&root, 0o755), (&logs, 0o700)] {
            fs::set_permissions(d, fs::Permissions::from_mode(mode)).unwrap();
        }
        for d in ["etc", "var", "usr"] {
            fs::create_dir_all(root.join(d)).unwrap();
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        site::copy_host_accounts(&root);
        let s = Staged { work, root, logs, bin: bin(), _scratch: scratch };
        s.env(env);
        let r = s.install();
        assert!(r.success(), "the first install must work:\n{}", r.show());
        s.chroot_ready();
        s
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    pub fn spool(&self) -> PathBuf {
        self.p(SPOOL)
    }
    /// `/etc/openvpn-telemetry/.env` (the operator's overrides).
    pub fn env(&self, text: &str) {
        fs::write(self.p("etc/openvpn-telemetry/.env"), text).unwrap();
    }

    /// `install --root R`, as root (the documented upgrade path).
    pub fn install(&self) -> Ran {
        let mut c = Command::new(&self.bin);
        c.arg("install").arg("--root").arg(&self.root).env_remove("FORCE").env_remove("OPENVPN_TELEMETRY_CONFIG");
        run("install", &mut c, BOUND)
    }

    /// `check --root R`, as root.
    pub fn check(&self) -> Ran {
        let mut c = Command::new(&self.bin);
        c.arg("check").arg("--root").arg(&self.root).env_remove("OPENVPN_TELEMETRY_CONFIG");
        run("check", &mut c, BOUND)
    }

    /// A command of the installed binary, as root inside the root (status).
    pub fn root_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/sbin/chroot");
        c.arg(&self.root).arg("/usr/local/sbin/openvpn-telemetry").args(args).env_clear().env("PATH", "/usr/bin:/bin");
        c
    }

    pub fn status(&self, json: bool) -> Ran {
        let args: &[&str] = if json { &["status", "--json"] } else { &["status"] };
        run(if json { "status --json" } else { "status" }, &mut self.root_cmd(args), BOUND)
    }

    /// An id from the staging root's account files.
    pub fn id(&self, file: &str, name: &str) -> u32 {
        let text = fs::read_to_string(self.p(&format!("etc/{file}"))).unwrap();
        let rec = text
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in {file} of the staging root"));
        rec.split(':').nth(2).unwrap().parse().unwrap()
    }
    pub fn nobody_uid(&self) -> u32 {
        self.id("passwd", "nobody")
    }
    pub fn nogroup(&self) -> u32 {
        self.id("group", "nogroup")
    }
    pub fn agent_uid(&self) -> u32 {
        self.id("passwd", "openvpn-telemetry")
    }

    /// The attacker: a shell as nobody:nogroup (what OpenVPN drops to),
    /// with `$S` the spool and `$R` the staging root. Steps may fail (the
    /// fix may refuse them); the caller judges the outcome, not the steps.
    pub fn nobody(&self, script: &str) -> Ran {
        run("attacker (nobody)", &mut self.nobody_cmd(script), BOUND)
    }

    /// [`Staged::nobody`], to start in the background ([`Running`]).
    pub fn nobody_cmd(&self, script: &str) -> Command {
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.nobody_uid()))
            .arg(format!("--regid={}", self.nogroup()))
            .args(["--clear-groups", "--", "sh", "-c"])
            // The mode OpenVPN's hooks give their files (0660), so the
            // agent (in the hooks' group) can open what nobody plants.
            .arg(format!("umask 0007\n{script}"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("S", self.spool())
            .env("R", &self.root)
            .current_dir("/");
        c
    }

    /// The real connect hook, as OpenVPN runs it (nobody, inside the root).
    pub fn hook(&self, common_name: &str) {
        let mut c = Command::new("/usr/sbin/chroot");
        c.arg(format!("--userspec={}:{}", self.nobody_uid(), self.nogroup()))
            .arg(&self.root)
            .arg(site::roles::installed("connect"))
            .env_clear()
            .envs([("common_name", common_name), ("trusted_ip", "198.51.100.7"), ("trusted_port", "5555")]);
        let r = run("connect hook", &mut c, BOUND);
        assert!(r.success(), "{}", r.show());
    }

    /// The agent as its unit runs it: `User=`, `Group=`,
    /// `SupplementaryGroups=`, `UMask=`, capabilities and
    /// `NoNewPrivileges=` from the installed unit, inside the root.
    pub fn agent_cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let unit = fs::read_to_string(self.p(UNIT)).expect("the installed unit");
        let key = |k: &str| {
            unit.lines().filter_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('='))).next_back().unwrap_or("")
        };
        let user = match key("User") {
            "" => "openvpn-telemetry",
            u => u,
        };
        let group = match key("Group") {
            "" => user,
            g => g,
        };
        let uid = self.id("passwd", user);
        let gid = self.id("group", group);
        let mut gids = vec![gid.to_string()];
        gids.extend(key("SupplementaryGroups").split_whitespace().map(|g| self.id("group", g).to_string()));
        let caps = |v: &str| -> String {
            v.split_whitespace().map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase())).collect()
        };
        let bound = caps(key("CapabilityBoundingSet"));
        let ambient = caps(key("AmbientCapabilities"));
        let umask = u32::from_str_radix(key("UMask"), 8).unwrap_or(0o022);
        let mut c = Command::new("/usr/sbin/chroot");
        c.arg(&self.root)
            .arg("/usr/bin/setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(format!("--groups={}", gids.join(",")))
            .arg(format!("--bounding-set=-all{bound}"))
            .arg(format!("--inh-caps=-all{ambient}"));
        if !ambient.is_empty() {
            c.arg(format!("--ambient-caps={}", ambient.trim_start_matches(',')));
        }
        if key("NoNewPrivileges") == "yes" {
            c.arg("--no-new-privs");
        }
        c.arg("--").arg("/usr/local/sbin/openvpn-telemetry").arg("agent").args(args);
        c.env_clear().env("PATH", "/usr/bin:/bin").envs(env.iter().copied());
        let mask = nix::sys::stat::Mode::from_bits_truncate(umask);
        // SAFETY: umask(2) is async-signal-safe; nothing else runs here.
        #[allow(unsafe_code)]
        unsafe {
            c.pre_exec(move || {
                nix::sys::stat::umask(mask);
                Ok(())
            });
        }
        c
    }

    /// `agent --once`, bounded.
    pub fn agent_once(&self, env: &[(&str, &str)]) -> Ran {
        run("agent --once", &mut self.agent_cmd(&["--once"], env), BOUND)
    }

    /// The spool's directories as a0d36ed's installer left them: all three
    /// nobody:nogroup 2770. This is what an attacker had before the upgrade
    /// (and prepared traps in); the agent and installer under test must
    /// hold on such a spool too.
    pub fn legacy_layout(&self) {
        let (u, g) = (self.nobody_uid(), self.nogroup());
        for d in ["", "/pending", "/failed"] {
            let p = self.p(&format!("{SPOOL}{d}"));
            std::os::unix::fs::lchown(&p, Some(u), Some(g)).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o2770)).unwrap();
        }
    }

    /// Files below the root in which nobody can read `needle`: grep run as
    /// nobody:nogroup (so exactly what nobody may open), never following
    /// links, skipping FIFOs and devices.
    pub fn nobody_can_read(&self, needle: &str) -> Vec<String> {
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.nobody_uid()))
            .arg(format!("--regid={}", self.nogroup()))
            .args(["--clear-groups", "--", "grep", "-rlF", "-D", "skip", "--no-messages", "-e", needle, "--"])
            .arg(&self.root)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/");
        let r = run("grep as nobody", &mut c, BOUND);
        assert!(r.finished(), "{}", r.show());
        r.out().lines().map(str::to_string).collect()
    }

    /// Copies what the installed binary and setpriv need to run under chroot.
    fn chroot_ready(&self) {
        for exe in [self.bin.as_path(), Path::new("/usr/bin/setpriv")] {
            // The binary itself was installed as /usr/local/sbin/openvpn-telemetry.
            let to = self.p(&exe.display().to_string());
            if exe != self.bin && !to.exists() {
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                fs::copy(exe, &to).unwrap();
            }
            let out = Command::new("ldd").arg(exe).output().unwrap();
            for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if word.starts_with('/') && Path::new(word).exists() {
                    let to = self.p(word);
                    if !to.exists() {
                        fs::create_dir_all(to.parent().unwrap()).unwrap();
                        fs::copy(word, &to).unwrap();
                    }
                }
            }
        }
        let dev = self.p("dev");
        fs::create_dir_all(&dev).unwrap();
        for (name, minor) in [("null", 3), ("zero", 5), ("urandom", 9)] {
            let p = dev.join(name);
            if !p.exists() {
                nix::sys::stat::mknod(
                    &p,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o666),
                    nix::sys::stat::makedev(1, minor),
                )
                .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
                fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
            }
        }
    }
}

/// Mode, owner, size and content of a path (not following a link): what
/// a root-only target must still have after an attack.
pub fn fingerprint(p: &Path) -> String {
    match fs::symlink_metadata(p) {
        Err(e) => format!("{}: {e}", p.display()),
        Ok(m) => {
            let content =
                if m.is_file() { fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).ok() } else { None };
            let link = fs::read_link(p).ok();
            format!(
                "{} mode={:o} {}:{} ino={} len={} link={link:?} content={content:?}",
                p.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.ino(),
                m.len()
            )
        }
    }
}

/// [`fingerprint`] of a tree, keyed by path.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        out.insert(p.to_path_buf(), fingerprint(p));
        if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            let mut es: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
            es.sort();
            for e in es {
                walk(&e, out);
            }
        }
    }
    walk(dir, &mut out);
    out
}

/// Makes a root-only directory with root-only files (the attacker's target).
pub fn root_only_dir(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    for (name, text) in files {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Whether `bytes` hold a byte a terminal acts on: C0 controls but tab and
/// newline (ESC, BEL, CR, ...), DEL, or a C1 control in UTF-8 (U+0080..U+009F,
/// e.g. the 8-bit CSI).
pub fn terminal_controls(bytes: &[u8]) -> Vec<String> {
    controls(bytes, true)
}

/// [`terminal_controls`] for JSON output: C0 controls and DEL only (a JSON
/// encoder must escape C0; C1 characters are valid JSON text).
pub fn json_controls(bytes: &[u8]) -> Vec<String> {
    controls(bytes, false)
}

fn controls(bytes: &[u8], with_c1: bool) -> Vec<String> {
    let mut found = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        let c1 = with_c1 && b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
        if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || c1 {
            let from = i.saturating_sub(30);
            let to = (i + 30).min(bytes.len());
            found.push(format!("byte {b:#04x} at {i}: {:?}", String::from_utf8_lossy(&bytes[from..to])));
        }
    }
    found
}

/// Where `out` shows a piece of `secret` (8 characters of it in a row, or
/// 6 bytes of it in hex, as a wire trace's hex dump prints them, which
/// splits a header over lines).
pub fn secret_pieces(out: &[u8], secret: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(out);
    let hexed: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    let s = secret.as_bytes();
    let mut found = Vec::new();
    for w in s.windows(8) {
        let piece = String::from_utf8_lossy(w);
        if let Some(i) = text.find(&*piece) {
            found.push(format!("{piece:?} in {:?}", &text[i.saturating_sub(60)..(i + 68).min(text.len())]));
            break;
        }
    }
    for w in s.windows(6) {
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        if hexed.contains(&hex) {
            found.push(format!("{:?} as hex {hex}", String::from_utf8_lossy(w)));
            break;
        }
    }
    found
}

/// The loopback HTTPS telemetry server (tests/support/receiver.py) with
/// a throwaway CA whose certificate is installed in the root.
pub struct Receiver {
    /// The shared receiver (support/agent_site.rs), stopped when dropped.
    rx: site::Receiver,
    pub port: u16,
    pub db: PathBuf,
}

impl Receiver {
    /// Starts it; `args` are extra receiver flags. Its database and keys
    /// live in the root-only `logs`; the CA certificate is copied to
    /// `/etc/openvpn-telemetry/test-ca.crt` in the root (for CA_CERT).
    pub fn start(s: &Staged, args: &[&str]) -> Receiver {
        let pki = s.logs.join("pki");
        if !pki.join("server.crt").exists() {
            site::make_pki(&pki);
        }
        let ca = s.p("etc/openvpn-telemetry/test-ca.crt");
        fs::copy(pki.join("ca.crt"), &ca).unwrap();
        fs::set_permissions(&ca, fs::Permissions::from_mode(0o644)).unwrap();
        let (cert, key) = (pki.join("server.crt"), pki.join("server.key"));
        let mut flags = vec!["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap(), "--keep-bodies"];
        flags.extend(args);
        let rx = site::Receiver::start_in(&s.logs, &flags);
        Receiver { port: rx.port, db: rx.db.clone(), rx }
    }
    /// The settings lines for the agent (URL and the CA inside the root).
    pub fn settings(&self) -> String {
        format!(
            "TELEMETRY_URL=https://127.0.0.1:{}/api/v1/events\nCA_CERT=/etc/openvpn-telemetry/test-ca.crt\n",
            self.port
        )
    }
    /// Every POST body it received (gunzipped), concatenated.
    pub fn bodies(&self) -> Vec<u8> {
        fs::read(self.db.join("bodies")).unwrap_or_default()
    }
    pub fn requests(&self) -> u64 {
        fs::read(self.db.join("stats.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["requests"].as_u64())
            .unwrap_or(0)
    }
    /// The common names of the events it stored.
    pub fn common_names(&self) -> Vec<String> {
        fs::read_to_string(self.db.join("events.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["common_name"].as_str().map(str::to_string))
            .collect()
    }
}
