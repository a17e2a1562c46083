//! `check`, the doctor: is everything in place, can the hooks write, can
//! the agent deliver? One line per check, `OK`, `WARN` or `FAIL ... — fix:`,
//! and exit status 1 when anything failed.
//!
//! Guarantees:
//! - nothing is sent but an empty batch (`"events":[]`), so no event is
//!   delivered or lost by checking;
//! - write access is tested for real, as the hooks' user and as the agent's
//!   user: `check` runs itself again with `--probe`, and that child drops to
//!   the user's ids (setgroups/setgid/setuid) before touching the spool, so
//!   the answer is the kernel's, not a guess from mode bits;
//! - the only trace left in the spool is an empty `queue.log` if there was
//!   none (the probe's test file is removed).

use std::fmt::{self, Write as _};
use std::fs;
use std::io::Write as _;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::accounts::{AGENT_USER, Accounts};
use crate::config::{self, Settings};
use crate::exit::ExitCode;
use crate::fsutil::{PathError, path_error, printable};
use crate::install::package::{self, Mode};
use crate::install::{self, Layout, conf, envfile, unit};
use crate::spool::{self, Spool};

mod privacy;
mod sources;
use privacy::check_privacy;
use sources::{check_sources, probe_read};

/// check the installation and the path to the telemetry server
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// check the installation below this directory instead of /
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// internal: only probe the spool as ROLE:UID:GID:GROUPS (hook or agent); check runs it itself
    #[argh(option, hidden_help)]
    pub probe: Option<String>,
}

/// Collects the lines and remembers whether one failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: impl AsRef<str>) {
        println!("OK   {}", printable(what.as_ref()));
    }
    fn warn(&mut self, what: impl AsRef<str>) {
        println!("WARN {}", printable(what.as_ref()));
    }
    fn fail(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failed = true;
        println!("FAIL {} — fix: {}", printable(what.as_ref()), printable(fix.as_ref()));
    }
}

const REINSTALL: &str = "run `openvpn-telemetry install` again";

/// Why `check` could not run at all (what it finds wrong is reported as
/// FAIL lines and exit status 1, not as an error), or why a probe failed.
#[derive(Debug)]
pub enum Error {
    BadProbe(String),
    Become { uid: u32, gid: u32, source: nix::errno::Errno },
    Settings(config::ConfigError),
    Io(PathError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadProbe(spec) => write!(f, "--probe: expected ROLE:UID:GID:GROUPS, found {spec:?}"),
            Error::Become { uid, gid, source } => write!(f, "cannot become {uid}:{gid}: {source}"),
            Error::Settings(e) => write!(f, "the agent cannot read its settings: {e}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::BadProbe(_) => None,
            Error::Become { source, .. } => Some(source),
            Error::Settings(e) => Some(e),
            Error::Io(e) => Some(e),
        }
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Error {
        Error::Io(e)
    }
}

pub fn main(args: &CheckArgs) -> Result<ExitCode, Error> {
    let layout = Layout::new(args.root.as_deref());
    if let Some(spec) = &args.probe {
        return probe(&layout, spec);
    }
    let mut r = Report::default();
    let path = if layout.staged() { layout.at(install::AGENT_ENV) } else { config::config_path() };
    let settings = match Settings::load(&path) {
        Ok(s) if path.exists() => {
            r.ok(format!("settings {} are valid", path.display()));
            for (line, key) in &s.unknown_keys {
                r.warn(format!("{}:{line}: {key} is not a known setting (ignored)", path.display()));
            }
            s
        }
        Ok(s) => {
            r.fail(format!("{} does not exist", path.display()), REINSTALL);
            s
        }
        Err(e) => {
            r.fail(e.to_string(), format!("correct that line in {} and {REINSTALL}", install::ENV_OVERRIDES));
            Settings::defaults(&path)
        }
    };
    let accounts = Accounts::for_root(&layout.root);
    check_files(&mut r, &layout, &path, &settings, &accounts);
    check_privacy(&mut r, &layout, &settings, &accounts);
    check_probes(&mut r, &layout, &settings, &accounts);
    check_sources(&mut r, &layout, &settings, &accounts);
    check_pki(&mut r, &layout, &settings);
    check_install(&mut r, &layout, &settings, &accounts);
    check_server(&mut r, &layout, &settings);
    Ok(if r.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// agent.env's mode and the hooks' companion.
fn check_files(r: &mut Report, layout: &Layout, path: &Path, s: &Settings, accounts: &Accounts) {
    if let Ok(m) = fs::metadata(path) {
        let group_ok = accounts.gid(AGENT_USER).is_none_or(|gid| gid == m.gid());
        if m.mode() & 0o007 != 0 {
            r.fail(
                format!(
                    "{} is readable by everyone (mode {:04o}) and may hold a token",
                    path.display(),
                    m.mode() & 0o7777
                ),
                format!("chmod 0640 {}", path.display()),
            );
        } else if !group_ok {
            r.fail(format!("{} is not in group {AGENT_USER}: the agent cannot read it", path.display()), REINSTALL);
        } else {
            r.ok(format!("{} is not world-readable ({:04o})", path.display(), m.mode() & 0o7777));
        }
    }
    let companion = config::hook_companion(path);
    match fs::read_to_string(&companion) {
        Ok(text) if text == envfile::hook_env(s) => r.ok(format!("{} matches the settings", companion.display())),
        Ok(_) => {
            r.fail(format!("{} is out of date (the hooks would use other settings)", companion.display()), REINSTALL)
        }
        Err(e) => r.fail(format!("{}: {e} (hooks running as nobody need it)", companion.display()), REINSTALL),
    }
    let spool = Spool::new(layout.at(&s.spool.spool_dir));
    let agent_uid = Accounts::for_root(&layout.root).uid(AGENT_USER);
    for (dir, want) in [
        (spool.dir.clone(), install::SPOOL_MODE),
        (spool.pending(), install::SPOOL_MODE),
        (spool.failed(), spool::FAILED_MODE),
    ] {
        // lstat: a symlink here is the attack, not a directory to follow.
        match fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => r.fail(
                format!("{} is not a directory (a symlink?): the hooks' user may have replaced it", dir.display()),
                format!("look at it, move it away, then {REINSTALL}"),
            ),
            Ok(m) if m.mode() & 0o7777 != want => {
                r.fail(format!("{} has mode {:04o}, expected {want:04o}", dir.display(), m.mode() & 0o7777), REINSTALL)
            }
            Ok(m) if agent_uid.is_some_and(|a| a != m.uid()) => r.fail(
                format!(
                    "{} is owned by uid {}, not by {AGENT_USER}: the hooks' user could swap it",
                    dir.display(),
                    m.uid()
                ),
                REINSTALL,
            ),
            Ok(m) => r.ok(format!("{} is the agent's, mode {:04o}", dir.display(), m.mode() & 0o7777)),
            Err(e) => r.fail(format!("{}: {e}", dir.display()), REINSTALL),
        }
    }
    for problem in spool::control_file_problems(&spool.dir, agent_uid) {
        r.fail(problem, format!("the agent sets it aside and makes it anew when it starts or rotates; or {REINSTALL}"));
    }
}

/// Runs the probe as the hooks' user and as the agent's user.
fn check_probes(r: &mut Report, layout: &Layout, s: &Settings, accounts: &Accounts) {
    if !nix::unistd::geteuid().is_root() {
        r.warn("not root: cannot test the spool as the hooks' and the agent's users (run check with sudo)");
        return;
    }
    let Ok((user, group)) = install::script_account(s, accounts) else {
        r.fail(
            format!("OPENVPN_SCRIPT_USER/GROUP ({}) do not exist", s.installer.openvpn_script_user),
            "set them in .env",
        );
        return;
    };
    let mut roles = Vec::new();
    if let (Some(uid), Some(gid)) = (accounts.uid(&user), accounts.gid(&group)) {
        roles.push((format!("hook:{uid}:{gid}:{gid}"), format!("hooks' user {user}:{group}")));
    }
    match (accounts.uid(AGENT_USER), accounts.primary_gid(AGENT_USER), accounts.gid(&group)) {
        (Some(uid), Some(gid), Some(sgid)) => {
            roles.push((format!("agent:{uid}:{gid}:{gid},{sgid}"), format!("agent's user {AGENT_USER}")))
        }
        _ => r.fail(format!("user {AGENT_USER} does not exist"), REINSTALL),
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return r.fail(format!("cannot find this program to run the probe: {e}"), "run check by its path"),
    };
    for (spec, who) in roles {
        let mut cmd = Command::new(&exe);
        cmd.args(["check", "--probe", &spec]);
        if layout.staged() {
            cmd.arg("--root").arg(&layout.root);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => r.ok(format!("{who}: {}", String::from_utf8_lossy(&out.stdout).trim())),
            Ok(out) => r.fail(
                format!("{who}: {}", String::from_utf8_lossy(&out.stderr).trim()),
                format!("{REINSTALL} (it fixes modes and owners), or set OPENVPN_SCRIPT_USER/GROUP to OpenVPN's `user`/`group`"),
            ),
            Err(e) => r.fail(format!("{who}: cannot run the probe: {e}"), "run check by its path"),
        }
    }
}

/// The child side of [`check_probes`]: drop to ROLE:UID:GID:GROUPS, then
/// do what that user must be able to do. Prints one line; errors exit 1.
fn probe(layout: &Layout, spec: &str) -> Result<ExitCode, Error> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let bad = || Error::BadProbe(spec.to_string());
    let parts: Vec<&str> = spec.splitn(5, ':').collect();
    let (role, uid, gid, groups, files) = match parts[..] {
        [role, uid, gid, groups] => (role, uid, gid, groups, ""),
        [role @ ("read" | "readcap"), uid, gid, groups, files] => (role, uid, gid, groups, files),
        _ => return Err(bad()),
    };
    let uid: u32 = uid.parse().map_err(|_| bad())?;
    let gid: u32 = gid.parse().map_err(|_| bad())?;
    let groups: Vec<Gid> =
        groups.split(',').map(|g| g.parse().map(Gid::from_raw)).collect::<Result<_, _>>().map_err(|_| bad())?;
    // The unit's privileges: CAP_DAC_READ_SEARCH kept across setuid, then
    // only it, permitted and not effective (what the agent has once it
    // confined it).
    if role == "readcap" {
        caps::securebits::set_keepcaps(true).map_err(|e| Error::BadProbe(format!("{spec}: keepcaps: {e}")))?;
    }
    setgroups(&groups)
        .and_then(|_| setgid(Gid::from_raw(gid)))
        .and_then(|_| setuid(Uid::from_raw(uid)))
        .map_err(|source| Error::Become { uid, gid, source })?;
    if role == "readcap" {
        crate::privilege::keep_only_read().map_err(|e| Error::BadProbe(format!("{spec}: {e}")))?;
    }
    if role == "read" || role == "readcap" {
        return probe_read(layout, files);
    }
    let config = layout.at(install::AGENT_ENV);
    let (spool_dir, dir) = match role {
        "hook" => {
            // The hook's own way of finding its settings (companion file).
            let spool_dir = config::spool_dir_for_hooks(&config);
            let spool = layout.at(&spool_dir);
            (spool_dir, spool)
        }
        "agent" => {
            let s = Settings::load(&config).map_err(Error::Settings)?;
            let pending = layout.at(&s.spool.spool_dir).join(spool::PENDING);
            (s.spool.spool_dir, pending)
        }
        _ => return Err(bad()),
    };
    let test = dir.join(format!(".check-{}", std::process::id()));
    let mut f = spool::open_create(&test, true).map_err(path_error("cannot create", &test))?;
    f.write_all(b"openvpn-telemetry check\n").map_err(path_error("cannot write", &test))?;
    fs::remove_file(&test).map_err(path_error("cannot remove", &test))?;
    if role == "hook" {
        let queue = Spool::new(&dir).queue();
        spool::open_create(&queue, true).map_err(path_error("cannot append to", &queue))?;
    }
    println!("can write and remove files in {} (SPOOL_DIR={})", dir.display(), spool_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The agent's unit as systemd reads it: `make install`'s file, or the
/// package's unit followed by install's drop-in.
pub(crate) fn installed_unit(layout: &Layout) -> String {
    let read = |p: &str| fs::read_to_string(layout.at(p)).unwrap_or_default();
    match package::installed(layout) {
        Mode::Local => read(unit::UNIT_PATH),
        Mode::Package => read(unit::PACKAGED_PATH) + &read(unit::DROPIN),
    }
}

/// Binary, links, unit, OpenVPN conf lines: `make install`'s, or the
/// Debian package's.
fn check_install(r: &mut Report, layout: &Layout, s: &Settings, accounts: &Accounts) {
    let mode = package::installed(layout);
    let target = mode.bin();
    let bin = layout.at(target);
    match fs::metadata(&bin) {
        Ok(m) if m.is_file() && m.mode() & 0o755 == 0o755 => r.ok(format!("{} is installed", bin.display())),
        Ok(m) => r.fail(format!("{} has mode {:04o}", bin.display(), m.mode() & 0o7777), REINSTALL),
        Err(e) => r.fail(format!("{}: {e}", bin.display()), REINSTALL),
    }
    let mut broken = Vec::new();
    for l in mode.links() {
        if fs::read_link(layout.at(l)).ok().as_deref() != Some(Path::new(target)) {
            broken.push(l);
        }
    }
    if broken.is_empty() {
        r.ok(format!("hooks and helpers link to {target}"));
    } else {
        r.fail(format!("not links to {target}: {}", broken.join(", ")), REINSTALL);
    }
    let group = s.installer.openvpn_script_group.clone().unwrap_or_else(|| accounts.default_script_group());
    match mode {
        Mode::Local => {
            let unit_path = layout.at(unit::UNIT_PATH);
            let want = unit::render(s, &group);
            match fs::read_to_string(&unit_path) {
                Ok(text) if text == want => r.ok(format!("{} is up to date", unit_path.display())),
                Ok(_) => r.fail(format!("{} differs from what the settings need", unit_path.display()), REINSTALL),
                Err(e) => r.fail(format!("{}: {e}", unit_path.display()), REINSTALL),
            }
        }
        Mode::Package => {
            // The package's unit, plus the drop-in install writes when the
            // settings need something else.
            let dropin = layout.at(unit::DROPIN);
            match (fs::read_to_string(&dropin), unit::dropin(s, &group)) {
                (Ok(text), Some(want)) if text == want => {
                    r.ok(format!("{} and {} are up to date", unit::PACKAGED_PATH, dropin.display()))
                }
                (Err(e), None) if e.kind() == std::io::ErrorKind::NotFound => {
                    r.ok(format!("{} is what the settings need", unit::PACKAGED_PATH))
                }
                (Err(e), Some(_)) => r.fail(format!("{}: {e}", dropin.display()), REINSTALL),
                _ => r.fail(format!("{} differs from what the settings need", dropin.display()), REINSTALL),
            }
        }
    }
    if layout.systemd_running() {
        let active = Command::new("systemctl").args(["is-active", "--quiet", unit::UNIT_NAME]).status();
        if active.is_ok_and(|s| s.success()) {
            r.ok(format!("{} is running", unit::UNIT_NAME));
        } else {
            r.fail(format!("{} is not running", unit::UNIT_NAME), format!("journalctl -u {} -n 50", unit::UNIT_NAME));
        }
    }
    if s.installer.openvpn_server_conf.is_empty() {
        let mut lines = String::new();
        for l in conf::wanted_lines() {
            let _ = write!(lines, "`{l}` ");
        }
        r.warn(format!("OPENVPN_SERVER_CONF not set, not checked: the server conf needs {}", lines.trim_end()));
    }
    for c in &s.installer.openvpn_server_conf {
        let path = layout.at(c);
        match fs::read_to_string(&path) {
            Ok(text) => match conf::missing(&text) {
                m if m.is_empty() => r.ok(format!("{} runs the telemetry hooks", path.display())),
                m => r.fail(format!("{} lacks: {}", path.display(), m.join("; ")), REINSTALL),
            },
            Err(e) => r.fail(format!("{}: {e}", path.display()), "correct OPENVPN_SERVER_CONF in .env"),
        }
    }
}

/// PKI health: each CA, server certificate and CRL the agent watches, by
/// the days left (WARN at or below the smallest `EXPIRY_WARN_DAYS`, FAIL
/// once expired, with the command that renews it).
fn check_pki(r: &mut Report, layout: &Layout, s: &Settings) {
    let now = crate::event::now().unix_timestamp();
    for f in crate::sources::pki_findings(&crate::sources::SourceSettings::new(s), &|p| layout.at(p), now) {
        match f.level {
            crate::sources::PkiLevel::Ok => r.ok(f.what),
            crate::sources::PkiLevel::Warn => r.warn(f.what),
            crate::sources::PkiLevel::Fail => r.fail(f.what, f.fix),
        }
    }
}

/// DNS, TCP, then TLS and auth with an empty batch through the agent's own
/// HTTP client (same roots, client cert and header as deliveries).
fn check_server(r: &mut Report, layout: &Layout, s: &Settings) {
    let Some(url) = s.delivery.telemetry_url.as_deref() else {
        return r.fail(
            "TELEMETRY_URL is not set: events stay in the spool",
            format!("set it in {} and {REINSTALL}", install::ENV_OVERRIDES),
        );
    };
    let shown = crate::url::mask_url(url);
    if let Some(path) = url.strip_prefix("file://") {
        let dir = layout.at(Path::new(path).parent().unwrap_or(Path::new("/")));
        return if dir.is_dir() {
            r.ok(format!("file sink {path}: directory exists"))
        } else {
            r.fail(format!("file sink directory {} does not exist", dir.display()), "create it")
        };
    }
    let Some(crate::url::UrlParts { host, port, .. }) = crate::url::url_parts(url) else {
        return r.fail(format!("cannot find the host in TELEMETRY_URL {shown}"), "correct TELEMETRY_URL");
    };
    // The agent's own lookup (getent as a child), so this step sees what
    // deliveries will see and a static build never loads NSS in-process.
    let timeout = Duration::from_secs(s.delivery.connect_timeout_seconds);
    let addrs = match crate::resolve::lookup(&host, port, Some(timeout)) {
        Ok(a) => a,
        Err(e) => return r.fail(format!("DNS: {e}"), "check the host name and /etc/resolv.conf"),
    };
    r.ok(format!("DNS: {host} -> {}", addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")));
    let mut last = String::new();
    let connected = addrs.iter().find(|a| match TcpStream::connect_timeout(a, timeout) {
        Ok(_) => true,
        Err(e) => {
            last = format!("{a}: {e}");
            false
        }
    });
    match connected {
        Some(a) => r.ok(format!("TCP: connected to {a}")),
        None => return r.fail(format!("TCP: {last}"), "check the port, firewalls and that the server is up"),
    }
    // Key and CA files as the installed system will find them (below
    // `--root` when staged).
    let mut at_root = s.delivery.clone();
    for p in [&mut at_root.ca_cert, &mut at_root.client_cert, &mut at_root.client_key] {
        *p = p.as_ref().map(|p| layout.at(p));
    }
    let sink = match crate::sink::Sink::from_settings(&at_root) {
        Ok(sink) => sink,
        Err(e) => return r.fail(format!("TLS settings: {e}"), "correct CA_CERT / CLIENT_CERT / CLIENT_KEY"),
    };
    let server_id = s.server_id();
    use crate::sink::Outcome;
    let tls =
        if url.to_ascii_lowercase().starts_with("https://") { "TLS and auth" } else { "auth (plain http, no TLS)" };
    let empty = match s.delivery.format {
        crate::config::Format::Otlp => "an empty OTLP ExportLogsServiceRequest",
        crate::config::Format::Json => "an empty batch",
    };
    match sink.send(&server_id, &[]) {
        Outcome::Delivered | Outcome::PartlyRejected { .. } => {
            r.ok(format!("{shown}: {tls} OK ({empty} was accepted)"))
        }
        Outcome::Misconfigured { reason } => {
            r.fail(format!("{shown}: refused: {reason}"), "check AUTH_HEADER or the client certificate")
        }
        Outcome::SetAside { status: status @ (404 | 405), .. } => {
            r.fail(format!("{shown}: HTTP {status}: no endpoint there"), "correct the path in TELEMETRY_URL")
        }
        Outcome::SetAside { status, body_head } => r.warn(format!(
            "{shown}: reachable, but an empty batch got HTTP {status} ({body_head}); auth not confirmed"
        )),
        Outcome::TooLarge => r.warn(format!("{shown}: reachable, but even an empty batch was too large (HTTP 413)")),
        Outcome::Retry { reason, .. } => r.fail(
            format!("{shown}: {reason}"),
            "check TLS (CA_CERT, the server's certificate and name) and the server's logs",
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::url::url_parts;

    #[test]
    fn hosts_and_ports() {
        let hp = |u: &str| url_parts(u).map(|u| (u.host, u.port));
        assert_eq!(hp("https://t.example/api"), Some(("t.example".into(), 443)));
        assert_eq!(hp("http://u:p@10.0.0.1:8080/x?y"), Some(("10.0.0.1".into(), 8080)));
        assert_eq!(hp("https://[::1]:8443/"), Some(("::1".into(), 8443)));
        assert_eq!(hp("https://[::1]"), Some(("::1".into(), 443)));
    }
}
