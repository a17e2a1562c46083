//! The installer, run for real: `install --root` into a staging
//! root that carries a copy of this host's account files (so `useradd
//! --root` works there and ids resolve as on a target), then every file,
//! mode, owner and link is looked at. One test installs on this machine's
//! real paths and removes everything again. Tests that need root fail when
//! not root, saying so (tests/support/require.rs).
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use site::roles;

const BIN: &str = env!("CARGO_BIN_EXE_openvpn-telemetry");
const SBIN: &str = "/usr/local/sbin/openvpn-telemetry";
const UNIT: &str = "etc/systemd/system/openvpn-telemetry-agent.service";
/// Where the tests' OpenVPN writes its status file, below the root.
const STATUS_LOG: &str = "run/openvpn-server/status-server.log";
/// Every link `install` makes: the role table's (below the root).
fn links() -> Vec<&'static str> {
    roles::all().iter().map(|r| r.link.trim_start_matches('/')).collect()
}

macro_rules! need_root {
    () => {
        require::root("it installs with real owners and users");
    };
}

/// A staging root with the host's account files.
struct Root {
    dir: PathBuf,
    /// Removes the staging root when the test ends.
    _scratch: site::Scratch,
}

impl Root {
    fn new(name: &str) -> Root {
        let scratch = site::Scratch::new("install", name);
        let dir = scratch.root.clone();
        fs::create_dir_all(dir.join("etc/openvpn-telemetry")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        site::copy_host_accounts(&dir);
        Root { dir, _scratch: scratch }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }
    fn env(&self, text: &str) {
        fs::write(self.p("etc/openvpn-telemetry/.env"), text).unwrap();
    }
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args).arg("--root").arg(&self.dir).env_remove("FORCE").env_remove("OPENVPN_TELEMETRY_CONFIG");
        c.envs(env.iter().copied()).stdin(Stdio::null());
        c.output().unwrap()
    }
    /// Runs and insists on success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    }
    /// An id from the staging root's account files.
    fn id(&self, file: &str, name: &str) -> u32 {
        let text = fs::read_to_string(self.p(&format!("etc/{file}"))).unwrap();
        let rec =
            text.lines().find(|l| l.split(':').next() == Some(name)).unwrap_or_else(|| panic!("{name} in {file}"));
        rec.split(':').nth(2).unwrap().parse().unwrap()
    }
    /// OpenVPN's status file as OpenVPN leaves it: root's, 0600.
    fn status_file(&self) -> PathBuf {
        let status = self.p(STATUS_LOG);
        fs::create_dir_all(status.parent().unwrap()).unwrap();
        fs::write(&status, "TITLE,OpenVPN 2.6\n").unwrap();
        fs::set_permissions(&status, fs::Permissions::from_mode(0o600)).unwrap();
        status
    }
    /// Every path below the root with what a change would alter.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(&self.dir, &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let m = fs::symlink_metadata(dir).unwrap();
    let link = fs::read_link(dir).ok();
    out.insert(
        dir.to_path_buf(),
        format!(
            "ino={} mode={:o} {}:{} len={} mtime={}.{} {link:?}",
            m.ino(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ),
    );
    if m.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    }
}

fn meta(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
#[ignore = "needs root: make test runs it"]
fn fresh_install_puts_everything_in_place_and_a_second_changes_nothing() {
    need_root!();
    let r = Root::new("fresh");
    r.env("TELEMETRY_URL=file:///var/lib/ovt-sink/batches.ndjson\n");
    fs::create_dir_all(r.p("var/lib/ovt-sink")).unwrap();
    let out = r.ok(&["install"]);
    assert!(out.contains("create system user openvpn-telemetry"), "{out}");
    let agent_gid = r.id("group", "openvpn-telemetry");
    let nogroup = r.id("group", "nogroup");
    assert_eq!(meta(&r.p("etc/openvpn-telemetry")), (0o755, 0, 0));
    assert_eq!(meta(&r.p("etc/openvpn-telemetry/.env")), (0o600, 0, 0));
    assert_eq!(meta(&r.p("etc/openvpn-telemetry/agent.env")), (0o640, 0, agent_gid));
    assert_eq!(meta(&r.p("etc/openvpn-telemetry/agent.hook.env")), (0o644, 0, 0));
    // The agent's directories: the hooks may add files, never swap them.
    let agent = r.id("passwd", "openvpn-telemetry");
    for d in ["", "/pending"] {
        assert_eq!(meta(&r.p(&format!("var/spool/openvpn-telemetry{d}"))), (0o3770, agent, nogroup), "{d}");
    }
    assert_eq!(meta(&r.p("var/spool/openvpn-telemetry/failed")), (0o700, agent, agent_gid));
    assert_eq!(meta(&r.p(SBIN)), (0o755, 0, 0));
    assert_eq!(fs::read(r.p(SBIN)).unwrap(), fs::read(BIN).unwrap());
    for l in links() {
        assert_eq!(fs::read_link(r.p(l)).unwrap(), Path::new(SBIN), "{l}");
    }
    assert_eq!(meta(&r.p("etc/openvpn/scripts")), (0o755, 0, 0));
    assert_eq!(meta(&r.p(UNIT)), (0o644, 0, 0));
    let unit = fs::read_to_string(r.p(UNIT)).unwrap();
    for line in [
        "ExecStart=/usr/local/sbin/openvpn-telemetry agent",
        "User=openvpn-telemetry",
        "SupplementaryGroups=nogroup",
        "ReadWritePaths=/var/spool/openvpn-telemetry -/var/lib/ovt-sink",
        "Type=notify",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing in\n{unit}");
    }
    let passwd = fs::read_to_string(r.p("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("openvpn-telemetry:") && l.ends_with(":/nonexistent:/usr/sbin/nologin"))
    );
    let group = fs::read_to_string(r.p("etc/group")).unwrap();
    let members = group.lines().find(|l| l.starts_with("nogroup:")).unwrap();
    assert!(members.rsplit(':').next().unwrap().split(',').any(|m| m == "openvpn-telemetry"), "{members}");

    let before = r.snapshot();
    let out = r.ok(&["install"]);
    assert!(out.contains("nothing to change"), "{out}");
    assert_eq!(r.snapshot(), before, "a second install must not touch anything");
    let out = r.ok(&["install", "--dry-run"]);
    assert!(out.contains("nothing to change"), "{out}");

    // The doctor agrees, including the write probes as nobody and as the agent.
    let out = r.ok(&["check"]);
    assert!(out.contains("OK   hooks' user nobody:nogroup: can write") && !out.contains("FAIL"), "{out}");
    assert!(out.contains("OK   agent's user openvpn-telemetry: can write"), "{out}");
}

#[test]
#[ignore = "needs root: make test runs it"]
fn dry_run_changes_nothing() {
    need_root!();
    let r = Root::new("dry");
    fs::create_dir_all(r.p("etc/openvpn/server")).unwrap();
    fs::write(r.p("etc/openvpn/server/server.conf"), "port 1194\n").unwrap();
    r.env("AUTH_HEADER=\"Authorization: Bearer t\"\nOPENVPN_SERVER_CONF=/etc/openvpn/server/server.conf\n");
    fs::set_permissions(r.p("etc/openvpn-telemetry/.env"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = r.snapshot();
    let out = r.ok(&["install", "--dry-run"]);
    assert!(out.contains("(would)") && out.contains("nothing was changed"), "{out}");
    assert!(out.contains("patch ") && out.contains("create system user"), "{out}");
    assert_eq!(r.snapshot(), before);
    r.ok(&["install"]);
    let before = r.snapshot();
    let out = r.ok(&["uninstall", "--purge", "--dry-run"]);
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(r.snapshot(), before);
}

#[test]
#[ignore = "needs root: make test runs it"]
fn conf_is_patched_once_and_uninstall_restores_it_byte_for_byte() {
    need_root!();
    let r = Root::new("conf");
    fs::create_dir_all(r.p("etc/openvpn/server")).unwrap();
    let a = r.p("etc/openvpn/server/a.conf");
    let b = r.p("etc/openvpn/b.conf");
    let a_text = "port 1194\r\n;client-connect /old.sh\n<ca>\nMIIB\n</ca>"; // no final newline
    let b_text = "dev tun\nscript-security 3\n";
    fs::write(&a, a_text).unwrap();
    fs::write(&b, b_text).unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&a, Some(0), Some(65534)).unwrap();
    r.env("OPENVPN_SERVER_CONF=\"/etc/openvpn/server/a.conf /etc/openvpn/b.conf\"\n");
    r.ok(&["install"]);
    let patched = fs::read_to_string(&a).unwrap();
    assert!(patched.starts_with(a_text) && patched.contains("\nscript-security 2\n"), "{patched}");
    assert!(patched.contains(&format!("\nclient-connect {}\n", roles::installed("connect"))), "{patched}");
    assert!(patched.contains(&format!("\nclient-disconnect {}\n", roles::installed("disconnect"))), "{patched}");
    assert_eq!(meta(&a), (0o640, 0, 65534), "mode and owner kept");
    let b_patched = fs::read_to_string(&b).unwrap();
    assert_eq!(b_patched.matches("script-security").count(), 1, "3 already allows hooks: {b_patched}");
    let backups: Vec<_> = fs::read_dir(r.p("etc/openvpn/server"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("a.conf.bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), a_text);
    assert_eq!(meta(&backups[0]), (0o640, 0, 65534));

    let before = r.snapshot();
    assert!(r.ok(&["install"]).contains("nothing to change"));
    assert_eq!(r.snapshot(), before);

    let out = r.ok(&["uninstall"]);
    assert!(out.contains("kept"), "{out}");
    assert_eq!(fs::read_to_string(&a).unwrap(), a_text, "byte for byte");
    assert_eq!(fs::read_to_string(&b).unwrap(), b_text, "byte for byte");
    assert_eq!(meta(&a), (0o640, 0, 65534));
    for gone in [SBIN, UNIT, "etc/openvpn/scripts"].into_iter().chain(links()) {
        assert!(fs::symlink_metadata(r.p(gone)).is_err(), "{gone} still there");
    }
    assert!(r.p("var/spool/openvpn-telemetry/pending").is_dir() && r.p("etc/openvpn-telemetry/agent.env").is_file());
    let out = r.ok(&["uninstall", "--purge"]);
    assert!(out.contains("delete system user"), "{out}");
    assert!(!r.p("var/spool/openvpn-telemetry").exists() && !r.p("etc/openvpn-telemetry").exists());
    assert!(!fs::read_to_string(r.p("etc/passwd")).unwrap().contains("openvpn-telemetry:"));
}

#[test]
#[ignore = "needs root: make test runs it"]
fn conflicting_client_connect_is_refused_unchanged_unless_forced() {
    need_root!();
    let r = Root::new("conflict");
    let conf = r.p("etc/openvpn/server.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    let text = "port 1194\nclient-connect /usr/local/bin/other-connect.sh\n";
    fs::write(&conf, text).unwrap();
    r.env("OPENVPN_SERVER_CONF=/etc/openvpn/server.conf\n");
    let before = r.snapshot();
    let out = r.run(&["install"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 2") && err.contains("other-connect.sh") && err.contains("FORCE=1"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(r.snapshot(), before, "a refused install changes nothing");

    let out = r.run(&["install"], &[("FORCE", "1")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let patched = fs::read_to_string(&conf).unwrap();
    assert!(patched.contains("#openvpn-telemetry-disabled# client-connect /usr/local/bin/other-connect.sh\n"));
    assert!(r.ok(&["install"]).contains("nothing to change"), "once patched, FORCE is not needed again");
    r.ok(&["uninstall"]);
    assert_eq!(fs::read_to_string(&conf).unwrap(), text);
}

#[test]
#[ignore = "needs root: make test runs it"]
fn upgrade_over_the_seed_scripts_keeps_pending_events() {
    need_root!();
    let r = Root::new("seed");
    // What the seed's shell installer left: scripts as regular files, its
    // agent.env, and a spool with a queue and a chunk written as nobody.
    for l in links() {
        fs::create_dir_all(r.p(l).parent().unwrap()).unwrap();
        fs::write(r.p(l), "#!/bin/bash\nexit 0\n").unwrap();
        fs::set_permissions(r.p(l), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(r.p("etc/openvpn-telemetry/agent.env"), "TELEMETRY_URL=\"https://t.example/api\"\nSERVER_ID=\"vpn-1\"\nQUEUE_FILE=/var/spool/openvpn-telemetry/queue.log\n").unwrap();
    let spool = r.p("var/spool/openvpn-telemetry");
    fs::create_dir_all(spool.join("pending")).unwrap();
    let chunk = spool.join("pending/chunk-1.ndjson");
    fs::write(spool.join("queue.log"), "{\"seq\":2}\n").unwrap();
    fs::write(&chunk, "{\"seq\":1}\n").unwrap();
    for p in [spool.join("queue.log"), chunk.clone()] {
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = r.ok(&["install"]);
    assert!(out.contains("QUEUE_FILE is not a setting this version knows"), "{out}");
    for l in links() {
        assert_eq!(fs::read_link(r.p(l)).unwrap(), Path::new(SBIN), "{l} replaced by the link");
    }
    assert_eq!(fs::read_to_string(&chunk).unwrap(), "{\"seq\":1}\n");
    let nogroup = r.id("group", "nogroup");
    assert_eq!(meta(&chunk), (0o664, 65534, nogroup), "group-writable for the agent");
    let env = fs::read_to_string(r.p("etc/openvpn-telemetry/agent.env")).unwrap();
    for line in
        ["TELEMETRY_URL=https://t.example/api", "SERVER_ID=vpn-1", "QUEUE_FILE=/var/spool/openvpn-telemetry/queue.log"]
    {
        assert!(env.lines().any(|l| l == line), "{line} kept in\n{env}");
    }
    assert!(r.ok(&["install"]).contains("nothing to change"));
}

/// Copies the shared libraries of the test binary into the root, so the
/// installed (dynamic, debug) copy runs there under chroot.
fn libs_for_chroot(r: &Root) {
    let out = Command::new("ldd").arg(BIN).output().unwrap();
    for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if word.starts_with('/') {
            let to = r.p(word);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(word, &to).unwrap();
        }
    }
}

#[test]
#[ignore = "needs root: make test runs it"]
fn hooks_as_nobody_use_the_custom_spool_and_cannot_read_the_token() {
    need_root!();
    let r = Root::new("nobody");
    r.env("SPOOL_DIR=/srv/ovt spool\nAUTH_HEADER=\"Authorization: Bearer s3cr3t-token\"\n");
    r.ok(&["install"]);
    libs_for_chroot(&r);
    let hook = Command::new("/usr/sbin/chroot")
        .arg("--userspec=65534:65534")
        .arg(&r.dir)
        .arg(roles::installed("connect"))
        .env_clear()
        .envs([("common_name", "alice"), ("trusted_ip", "198.51.100.7"), ("trusted_port", "5555")])
        .output()
        .unwrap();
    assert!(hook.status.success());
    assert_eq!(String::from_utf8_lossy(&hook.stderr), "", "the hook found its settings without complaint");
    let queue = fs::read_to_string(r.p("srv/ovt spool/queue.log")).unwrap();
    assert!(queue.contains("\"SESSION_CONNECTED\"") && queue.contains("\"alice\""), "{queue}");
    assert!(!r.p("var/spool/openvpn-telemetry").exists(), "the default spool is not used");

    let cat = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(r.p("etc/openvpn-telemetry/agent.env"))
        .output()
        .unwrap();
    assert!(!cat.status.success() && !String::from_utf8_lossy(&cat.stdout).contains("s3cr3t"));
    assert!(!fs::read_to_string(r.p("etc/openvpn-telemetry/agent.hook.env")).unwrap().contains("s3cr3t"));

    // Upgrade: a new .env value, an operator's edit in agent.env, and the
    // queued event all survive.
    let agent_env = r.p("etc/openvpn-telemetry/agent.env");
    let edited = fs::read_to_string(&agent_env).unwrap().replace("\nLOG_LEVEL=\n", "\nLOG_LEVEL=debug\n");
    fs::write(&agent_env, edited).unwrap();
    r.env("SPOOL_DIR=/srv/ovt spool\nAUTH_HEADER=\"Authorization: Bearer s3cr3t-token\"\nROTATE_MAX_BYTES=4096\n");
    let out = r.ok(&["install"]);
    assert!(out.contains("agent.env") && !out.contains("agent.hook.env"), "{out}");
    let text = fs::read_to_string(&agent_env).unwrap();
    for line in ["LOG_LEVEL=debug", "ROTATE_MAX_BYTES=4096", "AUTH_HEADER=\"Authorization: Bearer s3cr3t-token\""] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert_eq!(fs::read_to_string(r.p("srv/ovt spool/queue.log")).unwrap(), queue);
}

#[test]
#[ignore = "needs root: make test runs it"]
fn check_fails_on_a_spool_the_hooks_cannot_write_and_install_fixes_it() {
    need_root!();
    let r = Root::new("check");
    r.env("TELEMETRY_URL=file:///var/tmp-sink/out\n");
    fs::create_dir_all(r.p("var/tmp-sink")).unwrap();
    r.ok(&["install"]);
    let spool = r.p("var/spool/openvpn-telemetry");
    // As if someone had recreated it by hand: root's, not the hooks'.
    std::os::unix::fs::chown(&spool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o755)).unwrap();
    let out = r.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL hooks' user nobody:nogroup") && l.contains("— fix:")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("expected 3770")), "{text}");
    // A stale companion is caught too.
    fs::write(r.p("etc/openvpn-telemetry/agent.hook.env"), "SPOOL_DIR=/elsewhere\n").unwrap();
    let text = String::from_utf8_lossy(&r.run(&["check"], &[]).stdout).into_owned();
    assert!(text.contains("agent.hook.env is out of date"), "{text}");
    r.ok(&["install"]);
    let text = r.ok(&["check"]);
    assert!(!text.contains("FAIL"), "{text}");
}

/// check's "agent can read" line: with the unit's CAP_DAC_READ_SEARCH the
/// agent reads OpenVPN's 0600 status file, so OK with a note; with a unit
/// that lacks it (stale, edited), the agent's user is probed for real.
#[test]
#[ignore = "needs root: make test runs it"]
fn check_says_whether_the_agent_can_read_its_sources() {
    need_root!();
    let r = Root::new("sources");
    let status = r.status_file();
    r.env("STATUS_LOG=/run/openvpn-server/status-server.log\nEASYRSA_INDEX=/etc/openvpn/easy-rsa/pki/index.txt\n");
    r.ok(&["install"]);
    let line = |text: &str| -> String {
        text.lines().find(|l| l.contains("agent can") && l.contains("STATUS_LOG")).unwrap_or_default().to_string()
    };
    // check exits 1 here (no TELEMETRY_URL); only the sources' lines matter.
    let text = String::from_utf8_lossy(&r.run(&["check"], &[]).stdout).into_owned();
    let l = line(&text);
    assert!(l.starts_with("OK   agent can read STATUS_LOG ") && l.contains("CAP_DAC_READ_SEARCH"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("WARN EASYRSA_INDEX") && l.contains("does not exist")), "{text}");

    // The same unit without the grant: now it is up to the file's mode.
    let unit = fs::read_to_string(r.p(UNIT)).unwrap();
    fs::write(r.p(UNIT), unit.replace("AmbientCapabilities=CAP_DAC_READ_SEARCH", "AmbientCapabilities=")).unwrap();
    let out = r.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let l = line(&text);
    assert!(l.starts_with("FAIL agent cannot read STATUS_LOG") && l.contains("Permission denied"), "{text}");
    assert!(l.contains("— fix: run `openvpn-telemetry install` again"), "{l}");
    fs::set_permissions(&status, fs::Permissions::from_mode(0o644)).unwrap();
    let text = String::from_utf8_lossy(&r.run(&["check"], &[]).stdout).into_owned();
    assert!(line(&text).starts_with("OK   agent can read STATUS_LOG ") && !line(&text).contains("CAP_"), "{text}");
}

/// `systemd-analyze security --offline=yes` on a unit file: the exposure.
fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(unit).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split("Overall exposure level for openvpn-telemetry-agent.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in\n{text}{}", String::from_utf8_lossy(&out.stderr)))
}

/// Every variant of the unit the installer renders: none of the
/// sources (no capabilities), a source (CAP_DAC_READ_SEARCH), and sources
/// under /tmp and /root (PrivateTmp=no, ProtectHome=read-only). Each is
/// chosen from the final agent.env on (re)install, rates <= 2.0 and
/// verifies clean.
#[test]
#[ignore = "needs root: make test runs it"]
fn unit_is_hardened_and_verifies() {
    need_root!();
    require::program("systemd-analyze", "--version", "systemd");
    let r = Root::new("unit");
    // verify resolves units and ExecStart below --root: give it the
    // system's own units so it can see sysinit.target and friends.
    let units = ["/usr/lib/systemd/system", "/lib/systemd/system"].into_iter().find(|d| Path::new(d).is_dir()).unwrap();
    let to = r.p("usr/lib/systemd");
    fs::create_dir_all(&to).unwrap();
    assert!(Command::new("cp").arg("-a").arg(units).arg(&to).status().unwrap().success());
    fs::create_dir_all(r.p("etc/openvpn/server")).unwrap();
    fs::write(r.p("etc/openvpn/server/server.conf"), "port 1194\n").unwrap();

    let caps = "CAP_DAC_READ_SEARCH";
    let variants = [
        ("none", "", ["", "yes", "yes"]),
        ("conf", "OPENVPN_SERVER_CONF=/etc/openvpn/server/server.conf\n", [caps, "yes", "yes"]),
        ("status", "OPENVPN_SERVER_CONF=\nSTATUS_LOG=/run/openvpn-server/status-server.log\n", [caps, "yes", "yes"]),
        (
            "tmp+home",
            "STATUS_LOG=/tmp/openvpn-status.log\nEASYRSA_INDEX=/root/easy-rsa/pki/index.txt\n",
            [caps, "no", "read-only"],
        ),
        // Back to none (agent.env keeps what .env no longer names, so the
        // sources are emptied): a reinstall takes the capability away.
        ("none again", "STATUS_LOG=\nEASYRSA_INDEX=\nOPENVPN_SERVER_CONF=\n", ["", "yes", "yes"]),
    ];
    for (name, env, [cap, private_tmp, protect_home]) in variants {
        r.env(env);
        // The conf source stays patched once set; only the .env decides.
        r.ok(&["install"]);
        let unit = fs::read_to_string(r.p(UNIT)).unwrap();
        for line in [
            format!("CapabilityBoundingSet={cap}"),
            format!("AmbientCapabilities={cap}"),
            format!("PrivateTmp={private_tmp}"),
            format!("ProtectHome={protect_home}"),
            "ProtectSystem=strict".into(),
            "NoNewPrivileges=yes".into(),
        ] {
            assert!(unit.lines().any(|l| l == line), "{name}: {line} missing in\n{unit}");
        }
        let score = exposure(&r.p(UNIT));
        eprintln!("systemd-analyze security, {name}: exposure {score}");
        assert!(score <= 2.0, "{name}: exposure {score} > 2.0");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", r.dir.display()))
            .arg(format!("/{UNIT}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "{name}: systemd-analyze verify:\n{err}");
    }
}

/// The real thing, on this machine's paths. Skipped when anything of an
/// earlier installation is present, so it never clobbers a real one.
#[test]
#[ignore = "needs root: make test runs it"]
fn real_install_and_purge_leave_this_machine_clean() {
    need_root!();
    let ours = ["/etc/openvpn-telemetry", SBIN, "/etc/systemd/system/openvpn-telemetry-agent.service"];
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let installed = ours.iter().any(|p| Path::new(p).exists()) || passwd.contains("\nopenvpn-telemetry:");
    if installed {
        require::missing(
            "openvpn-telemetry is already installed on this machine and this test does not touch a real \
             installation: remove it first (openvpn-telemetry uninstall --purge) or run the tests on a clean machine",
        );
    }
    let had = |p: &str| Path::new(p).exists();
    let had_openvpn = had("/etc/openvpn");
    let spool = format!("/var/spool/openvpn-telemetry-test-{}", std::process::id());
    fs::create_dir_all("/etc/openvpn-telemetry").unwrap();
    fs::write("/etc/openvpn-telemetry/.env", format!("SPOOL_DIR={spool}\nAUTH_HEADER=\"X-Token: s3cr3t\"\n")).unwrap();
    let run = |args: &[&str]| {
        let out =
            Command::new(BIN).args(args).env_remove("FORCE").env_remove("OPENVPN_TELEMETRY_CONFIG").output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, out) = run(&["install"]);
    let cleanup = || run(&["uninstall", "--purge"]);
    if !ok {
        cleanup();
        panic!("install failed:\n{out}");
    }
    let hook = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", roles::installed("disconnect")])
        .env_clear()
        .env("common_name", "bob")
        .output()
        .unwrap();
    let queue = fs::read_to_string(Path::new(&spool).join("queue.log")).unwrap_or_default();
    let (_, check) = run(&["check"]);
    let (ok2, again) = run(&["install"]);
    let (purged, purge_out) = cleanup();
    assert!(hook.status.success() && queue.contains("\"bob\""), "hook as nobody: {queue:?} {hook:?}");
    assert!(check.contains("OK   hooks' user nobody:nogroup: can write"), "{check}");
    assert!(ok2 && again.contains("nothing to change"), "{again}");
    assert!(purged, "{purge_out}");
    for p in ours
        .iter()
        .copied()
        .chain([spool.as_str()])
        .chain(links().iter().map(|l| format!("/{l}")).collect::<Vec<_>>().iter().map(String::as_str))
    {
        assert!(fs::symlink_metadata(p).is_err(), "{p} left behind");
    }
    assert!(!fs::read_to_string("/etc/passwd").unwrap().contains("\nopenvpn-telemetry:"), "user left behind");
    assert!(!fs::read_to_string("/etc/group").unwrap().contains("openvpn-telemetry"), "group left behind");
    if !had_openvpn {
        assert!(fs::symlink_metadata("/etc/openvpn").is_err(), "/etc/openvpn, made by install, left behind");
    }
}

/// check's network lines against the real loopback TLS receiver: a good
/// token passes with an empty batch (nothing stored), a wrong token, a
/// wrong CA and a closed port each FAIL with a fix. Needs no root.
#[test]
#[ignore = "needs the PyPI packages tests/setup.sh installs: make test runs it"]
fn check_reaches_the_server_over_tls_and_reports_auth() {
    let s = site::Site::new("install-check");
    let pki = site::Pki::new(&s);
    let p = |n: &str| pki.path(n).display().to_string();
    let rx = site::Receiver::start(&s, &["--cert", &p("server.crt"), "--key", &p("server.key"), "--token", "t0k"]);
    let check = |extra: &str| {
        s.config(extra);
        let out = Command::new(BIN).arg("check").env("OPENVPN_TELEMETRY_CONFIG", s.config_path()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "the site is not installed, so check must fail somewhere");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = rx.url("https");
    let ok =
        check(&format!("TELEMETRY_URL={url}\nCA_CERT={}\nAUTH_HEADER=\"Authorization: Bearer t0k\"\n", p("ca.crt")));
    for want in ["OK   DNS: 127.0.0.1 -> 127.0.0.1", "OK   TCP: connected to 127.0.0.1:", "TLS and auth OK"] {
        assert!(ok.contains(want), "{want} in\n{ok}");
    }
    assert_eq!(rx.events().len(), 0, "check sends no events");
    let bad_token =
        check(&format!("TELEMETRY_URL={url}\nCA_CERT={}\nAUTH_HEADER=\"Authorization: Bearer nope\"\n", p("ca.crt")));
    assert!(
        bad_token.lines().any(|l| l.starts_with("FAIL") && l.contains("refused") && l.contains("AUTH_HEADER")),
        "{bad_token}"
    );
    assert!(!bad_token.contains("nope"), "the token is never printed");
    let bad_ca = check(&format!("TELEMETRY_URL={url}\nCA_CERT={}\n", p("other.crt")));
    assert!(bad_ca.lines().any(|l| l.starts_with("FAIL") && l.contains("CA_CERT")), "{bad_ca}");
    drop(rx);
    let closed = check(&format!("TELEMETRY_URL={url}\n"));
    assert!(closed.lines().any(|l| l.starts_with("FAIL TCP:") && l.contains("— fix:")), "{closed}");
    // An OTLP endpoint (a strict ExportLogsServiceRequest parser) answers
    // 200 to the empty request check sends; the seed envelope it refuses.
    let otlp = site::Receiver::start(&s, &["--otlp"]);
    let url = otlp.url("http");
    let ok = check(&format!("TELEMETRY_URL={url}\nTELEMETRY_FORMAT=otlp\n"));
    assert!(ok.contains("auth (plain http, no TLS) OK (an empty OTLP ExportLogsServiceRequest was accepted)"), "{ok}");
    let seed = check(&format!("TELEMETRY_URL={url}\n"));
    assert!(seed.contains("HTTP 400"), "the seed envelope is not OTLP:\n{seed}");
}

// --- package mode (the Debian package's maintainer scripts) -----------------

const PKG_BIN: &str = "/usr/sbin/openvpn-telemetry";
const DROPIN: &str = "etc/systemd/system/openvpn-telemetry-agent.service.d/10-install.conf";
const HELPER: &str = "var/lib/openvpn-telemetry/openvpn-telemetry";
const PACKAGED_UNIT: &str = "/usr/lib/systemd/system/openvpn-telemetry-agent.service";
const PACKAGED_UNIT_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/debian/openvpn-telemetry-agent.service");
/// The two hook links OpenVPN's config names.
fn hooks() -> [&'static str; 2] {
    [roles::link("connect"), roles::link("disconnect")]
}

/// A chunk of one pending event in the staged spool.
fn pending_chunk(r: &Root) -> PathBuf {
    let chunk = r.p("var/spool/openvpn-telemetry/pending/1-q1.ndjson");
    fs::write(&chunk, "{\"event_id\":\"e1\",\"seq\":1}\n").unwrap();
    chunk
}

#[test]
#[ignore = "needs root: make test runs it"]
fn package_mode_takes_over_from_make_install_and_keeps_pending_events() {
    need_root!();
    let r = Root::new("pkg-takeover");
    r.ok(&["install"]);
    let chunk = pending_chunk(&r);
    let out = r.ok(&["install", "--package"]);
    assert!(out.contains("install --package"), "{out}");
    // make install's copy, its /usr/local/sbin names and its unit are gone;
    // the hooks point at the package's binary, which dpkg (not install) puts there.
    for gone in [SBIN, UNIT, roles::link("agent"), roles::link("write-event")] {
        assert!(fs::symlink_metadata(r.p(gone)).is_err(), "{gone} still there:\n{out}");
    }
    assert!(fs::symlink_metadata(r.p(PKG_BIN)).is_err(), "install never writes dpkg's file");
    for l in hooks() {
        assert_eq!(fs::read_link(r.p(l)).unwrap(), Path::new(PKG_BIN), "{l}");
    }
    assert!(!r.p(DROPIN).exists(), "the defaults need no drop-in:\n{out}");
    assert_eq!(fs::read_to_string(&chunk).unwrap(), "{\"event_id\":\"e1\",\"seq\":1}\n");
    assert!(r.p("etc/openvpn-telemetry/agent.env").is_file());

    let before = r.snapshot();
    let out = r.ok(&["install", "--package"]);
    assert!(out.contains("nothing to change"), "{out}");
    assert_eq!(r.snapshot(), before);

    // A source needs the read capability: the drop-in carries it, and goes
    // again when the source does.
    r.env("STATUS_LOG=/run/openvpn-server/status-server.log\n");
    r.ok(&["install", "--package"]);
    let dropin = fs::read_to_string(r.p(DROPIN)).unwrap();
    assert!(
        dropin.contains("\n[Service]\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_DAC_READ_SEARCH\n"),
        "{dropin}"
    );
    assert_eq!(meta(&r.p(DROPIN)), (0o644, 0, 0));
    r.env("STATUS_LOG=\n");
    r.ok(&["install", "--package"]);
    assert!(!r.p(DROPIN).exists() && !r.p(DROPIN).parent().unwrap().exists());
}

/// `check` on the package's layout: its binary, the hook links to it, and
/// its unit plus install's drop-in (which carries the read capability).
#[test]
#[ignore = "needs root: make test runs it"]
fn check_knows_the_package_layout() {
    need_root!();
    let r = Root::new("pkg-check");
    r.status_file();
    r.env("TELEMETRY_URL=file:///var/tmp-sink/out\nSTATUS_LOG=/run/openvpn-server/status-server.log\n");
    fs::create_dir_all(r.p("var/tmp-sink")).unwrap();
    // What dpkg unpacks before postinst runs `install --package`.
    for (from, to) in [(BIN, PKG_BIN), (PACKAGED_UNIT_SRC, PACKAGED_UNIT)] {
        fs::create_dir_all(r.p(to).parent().unwrap()).unwrap();
        fs::copy(from, r.p(to)).unwrap();
    }
    r.ok(&["install", "--package"]);
    let text = r.ok(&["check"]);
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains(&format!("OK   hooks and helpers link to {PKG_BIN}")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("OK   agent can read STATUS_LOG") && l.contains("CAP_DAC_READ_SEARCH")));
    // A drop-in edited by hand is found.
    fs::write(r.p(DROPIN), "[Service]\n").unwrap();
    let out = r.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("10-install.conf differs")), "{text}");
}

/// On a host without OpenVPN's package, install makes /etc/openvpn for the
/// hooks; uninstall takes it away again, but never one with more in it.
#[test]
#[ignore = "needs root: make test runs it"]
fn uninstall_removes_the_etc_openvpn_that_install_made_and_only_that() {
    need_root!();
    let r = Root::new("etc-openvpn");
    assert!(!r.p("etc/openvpn").exists());
    r.ok(&["install"]);
    assert!(r.p("etc/openvpn/scripts").is_dir());
    let out = r.ok(&["uninstall"]);
    assert!(!r.p("etc/openvpn").exists(), "{out}");
    r.ok(&["install"]);
    fs::write(r.p("etc/openvpn/site.conf"), "dev tun\n").unwrap();
    r.ok(&["uninstall"]);
    assert!(r.p("etc/openvpn/site.conf").is_file() && !r.p("etc/openvpn/scripts").exists());
}

/// node_exporter's textfile directory as Debian ships it: install offers
/// METRICS_TEXTFILE there; once set, the unit opens the directory (a
/// rename needs it) and leaves the directory's owner and mode alone;
/// uninstall removes the agent's file and its temporary name, nothing else.
#[test]
#[ignore = "needs root: make test runs it"]
fn the_metrics_file_is_offered_opened_in_the_sandbox_and_removed() {
    need_root!();
    let r = Root::new("metrics");
    let ne = r.p("var/lib/prometheus/node-exporter");
    fs::create_dir_all(&ne).unwrap();
    fs::set_permissions(&ne, fs::Permissions::from_mode(0o755)).unwrap();
    let out = r.ok(&["install"]);
    assert!(out.contains("METRICS_TEXTFILE=/var/lib/prometheus/node-exporter/openvpn-telemetry.prom"), "{out}");
    r.env("METRICS_TEXTFILE=/var/lib/prometheus/node-exporter/openvpn-telemetry.prom\n");
    let out = r.ok(&["install"]);
    assert!(!out.contains("for Prometheus metrics, set"), "offered once set: {out}");
    let unit = fs::read_to_string(r.p(UNIT)).unwrap();
    let rw = unit.lines().find(|l| l.starts_with("ReadWritePaths=")).unwrap();
    assert_eq!(rw, "ReadWritePaths=/var/spool/openvpn-telemetry -/var/lib/prometheus/node-exporter");
    let m = fs::metadata(&ne).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0), "the directory is node_exporter's");
    for name in ["openvpn-telemetry.prom", "openvpn-telemetry.prom.tmp", "apt.prom"] {
        fs::write(ne.join(name), "x 1\n").unwrap();
    }
    r.ok(&["uninstall"]);
    let left: Vec<String> =
        fs::read_dir(&ne).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["apt.prom"]);
}

#[test]
#[ignore = "needs root: make test runs it"]
fn package_mode_leaves_what_is_not_ours_in_usr_local_and_etc_systemd() {
    need_root!();
    let r = Root::new("pkg-foreign");
    fs::create_dir_all(r.p("usr/local/sbin")).unwrap();
    fs::create_dir_all(r.p(UNIT).parent().unwrap()).unwrap();
    fs::write(r.p(SBIN), "#!/bin/sh\necho someone else's\n").unwrap();
    fs::write(r.p(UNIT), "[Service]\nExecStart=/opt/site/agent\n").unwrap();
    let out = r.ok(&["install", "--package"]);
    assert!(out.contains("is not openvpn-telemetry: left alone"), "{out}");
    assert!(out.contains("is not one openvpn-telemetry wrote"), "{out}");
    assert!(r.p(SBIN).is_file() && r.p(UNIT).is_file());
}

#[test]
#[ignore = "needs root: make test runs it"]
fn make_install_is_refused_over_the_package() {
    need_root!();
    let r = Root::new("pkg-refuse");
    fs::create_dir_all(r.p("usr/sbin")).unwrap();
    fs::copy(BIN, r.p(PKG_BIN)).unwrap();
    let before = r.snapshot();
    for verb in ["install", "uninstall"] {
        let out = r.run(&[verb], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("the Debian package openvpn-telemetry is installed"), "{err}");
        assert!(err.contains("apt remove openvpn-telemetry"), "{err}");
    }
    assert_eq!(r.snapshot(), before, "refused before anything changed");
}

#[test]
#[ignore = "needs root: make test runs it"]
fn package_remove_keeps_the_spool_and_a_purge_helper_and_purge_removes_everything() {
    need_root!();
    let r = Root::new("pkg-remove");
    fs::create_dir_all(r.p("etc/openvpn/server")).unwrap();
    fs::write(r.p("etc/openvpn/server/s.conf"), "dev tun\n").unwrap();
    r.env("OPENVPN_SERVER_CONF=/etc/openvpn/server/s.conf\n");
    r.ok(&["install", "--package"]);
    assert!(r.p(DROPIN).is_file(), "OPENVPN_SERVER_CONF set: the read capability");
    let chunk = pending_chunk(&r);

    // apt remove (prerm): hooks, conf lines and drop-in go; the spool, the
    // settings and the user stay, and a copy of the binary for apt purge.
    let out = r.ok(&["uninstall", "--package"]);
    for gone in [DROPIN, hooks()[0], hooks()[1], "etc/openvpn/scripts"] {
        assert!(fs::symlink_metadata(r.p(gone)).is_err(), "{gone} still there:\n{out}");
    }
    assert_eq!(fs::read_to_string(r.p("etc/openvpn/server/s.conf")).unwrap(), "dev tun\n");
    assert!(chunk.is_file() && r.p("etc/openvpn-telemetry/.env").is_file());
    assert_eq!(fs::read(r.p(HELPER)).unwrap(), fs::read(BIN).unwrap());
    assert_eq!(meta(&r.p(HELPER)), (0o700, 0, 0));
    assert!(out.contains("restart OpenVPN"), "{out}");
    assert!(r.ok(&["uninstall", "--package"]).contains("nothing to change"));

    // Back to make install meanwhile: apt purge leaves spool and settings to it.
    r.ok(&["install"]);
    let out = r.ok(&["uninstall", "--package", "--purge"]);
    assert!(out.contains("the make install copy in /usr/local/sbin uses them now"), "{out}");
    assert!(chunk.is_file() && !r.p("var/lib/openvpn-telemetry").exists());

    // The package again, removed and purged: nothing of ours is left.
    r.ok(&["install", "--package"]);
    assert!(fs::symlink_metadata(r.p(SBIN)).is_err());
    r.ok(&["uninstall", "--package"]);
    let out = r.ok(&["uninstall", "--package", "--purge"]);
    assert!(out.contains("delete system user"), "{out}");
    for gone in ["var/spool/openvpn-telemetry", "etc/openvpn-telemetry", "var/lib/openvpn-telemetry"] {
        assert!(!r.p(gone).exists(), "{gone} still there:\n{out}");
    }
    assert!(!fs::read_to_string(r.p("etc/passwd")).unwrap().contains("openvpn-telemetry:"));
}

/// make install's man page: the generated page (the one the package
/// ships), where `man` looks for /usr/local/sbin's programs, found by
/// `man` and rendered without a warning; uninstall takes it away, and the
/// man8 directory install had to make.
#[test]
#[ignore = "needs root: make test runs it"]
fn make_install_writes_the_man_page_and_uninstall_removes_it() {
    need_root!();
    let r = Root::new("man");
    let page = "usr/local/share/man/man8/openvpn-telemetry.8";
    fs::create_dir_all(r.p("usr/local/share/man")).unwrap();
    r.ok(&["install"]);
    assert_eq!(meta(&r.p(page)), (0o644, 0, 0));
    let shipped = fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/debian/openvpn-telemetry.8")).unwrap();
    assert_eq!(fs::read(r.p(page)).unwrap(), shipped);
    require::program("man", "--version", "man-db");
    let found = Command::new("man")
        .args(["-w", "openvpn-telemetry"])
        .env("MANPATH", r.p("usr/local/share/man"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), r.p(page).to_str().unwrap(), "{found:?}");
    let shown = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
        .arg(r.p(page))
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(shown.status.success() && shown.stderr.is_empty(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(r.ok(&["install"]).contains("nothing to change"));
    r.ok(&["uninstall"]);
    assert!(fs::symlink_metadata(r.p(page)).is_err(), "man page left behind");
    assert!(fs::symlink_metadata(r.p("usr/local/share/man/man8")).is_err(), "man8, made by install, left behind");
    assert!(r.p("usr/local/share/man").is_dir(), "the man directory is not ours");
}

/// The pseudonym key: made by install (32 random bytes, 0640
/// root:openvpn-telemetry), unreadable for the hooks' user, kept byte for
/// byte by an upgrade (only its mode put right), checked by `check`, and
/// gone after a purge, also where PSEUDONYM_KEY_FILE put it elsewhere.
#[test]
#[ignore = "needs root: make test runs it"]
fn pseudonym_key_is_made_kept_guarded_and_purged() {
    need_root!();
    let r = Root::new("pseudonym-key");
    let sink = "TELEMETRY_URL=file:///var/lib/ovt-sink/out\n";
    fs::create_dir_all(r.p("var/lib/ovt-sink")).unwrap();
    r.env(&format!("{sink}PSEUDONYMIZE=common_name,real_ip\n"));
    let out = r.ok(&["install"]);
    let key = r.p("etc/openvpn-telemetry/pseudonym.key");
    assert!(out.contains("pseudonym key, 32 random bytes"), "{out}");
    assert_eq!(meta(&key), (0o640, 0, r.id("group", "openvpn-telemetry")));
    let bytes = fs::read(&key).unwrap();
    assert_eq!(bytes.len(), 32);
    assert_ne!(bytes, vec![0u8; 32]);
    let cat = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!cat.status.success() && cat.stdout.is_empty(), "the hooks' user read the key");
    let text = r.ok(&["check"]);
    assert!(text.contains("OK   personal fields leaving the host: pseudonymized: common_name, real_ip,"), "{text}");
    assert!(text.contains("OK   PSEUDONYM_KEY_FILE=/etc/openvpn-telemetry/pseudonym.key is root's"), "{text}");

    // Upgrade: the key stays; a widened mode fails check and is put right.
    assert!(r.ok(&["install"]).contains("nothing to change"));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = r.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL PSEUDONYM_KEY_FILE=") && l.contains("0644")), "{text}");
    r.ok(&["install"]);
    assert_eq!(meta(&key).0, 0o640);
    assert_eq!(fs::read(&key).unwrap(), bytes, "an upgrade keeps the key");

    // Missing while needed: check fails (the agent would not start).
    fs::remove_file(&key).unwrap();
    let out = r.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the agent will not start without it"), "{text}");

    // A key kept elsewhere is made there and purged too.
    fs::create_dir_all(r.p("srv/keys")).unwrap();
    r.env(&format!("{sink}PSEUDONYMIZE=common_name\nPSEUDONYM_KEY_FILE=/srv/keys/fleet.key\n"));
    r.ok(&["install"]);
    assert_eq!(meta(&r.p("srv/keys/fleet.key")).0, 0o640);
    let out = r.ok(&["uninstall", "--purge"]);
    assert!(out.contains("the pseudonym key"), "{out}");
    assert!(!r.p("srv/keys/fleet.key").exists() && !r.p("etc/openvpn-telemetry").exists(), "{out}");
}
