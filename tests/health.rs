//! The agent's health end to end, with the real binary: `AGENT_HEARTBEAT`
//! as the loopback receiver gets it (or as it waits in the spool during an
//! outage), and `status --check`'s line and exit code through every state
//! it reports: agent stopped, healthy, outage (stalled past the warning
//! and the critical threshold), `failed/` not empty, drops not reported,
//! a status file OpenVPN stopped rewriting, and a spool whose locks are
//! held and whose `pending/` holds a FIFO (it must still answer at once).
//!
//! The clock of the agent and of the check is pinned
//! (`OPENVPN_TELEMETRY_NOW`) to a minute after the real status file was
//! written, so "stalled" is a pinned later time, never a sleep.
//!
//! Needs python3 (the receiver); no root, no network.

// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/agent_site.rs"]
mod site;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use site::{Receiver, Site, roles, wait_for};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The fixture's own `TIME`, plus a minute.
const WRITTEN: i64 = 1_796_159_182;
const NOW: i64 = WRITTEN + 60;
const TOKEN: &str = "Bearer S3CRET-T0KEN-do-not-leak";

/// The agent daemon with the pinned clock; killed and reaped when dropped.
struct Agent(Child);

impl Agent {
    fn start(site: &Site) -> Agent {
        let log = fs::OpenOptions::new().create(true).append(true).open(site.path("agent.log")).unwrap();
        let child = site
            .agent()
            .env("OPENVPN_TELEMETRY_NOW", NOW.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Agent {
    /// Stops the agent the way systemd does (SIGTERM), so it saves its
    /// state on the way out; killed after 10 s.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the agent did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `status --check` at `now`: exit code and line; it must end within
/// 10 s whatever the spool holds.
fn check_at(site: &Site, now: i64) -> (i32, String) {
    let mut child = Command::new(site::BIN)
        .args(["status", "--check"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", now.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status --check did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    assert_eq!(line.matches('|').count(), 1, "performance data after one |: {line}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), line.trim_end().to_string())
}

fn check(site: &Site) -> (i32, String) {
    check_at(site, NOW)
}

/// The real status file (OpenVPN 2.7, version 3, 4 clients) in the site.
fn status_file(site: &Site) -> PathBuf {
    let to = site.path("status-v3.log");
    fs::copy(Path::new(FIXTURES).join("real/ovpn27-udp3/status-v3.log"), &to).unwrap();
    to
}

/// Every AGENT_HEARTBEAT still in the spool (not delivered).
fn spooled_heartbeats(site: &Site) -> Vec<Value> {
    let mut files = vec![site.spool().join("agent-queue.log")];
    files.extend(fs::read_dir(site.pending()).unwrap().map(|e| e.unwrap().path()));
    files
        .iter()
        .flat_map(|f| fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|v| v["type"] == "AGENT_HEARTBEAT")
        .collect()
}

/// `n` connect hooks as OpenVPN runs them, at the pinned time.
fn connect_hooks(site: &Site, n: usize) {
    for i in 0..n {
        let (cn, port) = (format!("user{i}"), format!("{}", 40000 + i));
        let out = site
            .hook(
                roles::connect(),
                &[],
                &[
                    ("OPENVPN_TELEMETRY_NOW", NOW.to_string().as_bytes()),
                    ("common_name", cn.as_bytes()),
                    ("trusted_ip", b"198.51.100.7"),
                    ("trusted_port", port.as_bytes()),
                ],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

/// Unix time as the events write it.
fn event_time(t: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t).unwrap().format(&Rfc3339).unwrap()
}

#[test]
fn heartbeat_and_check_follow_the_agent_from_stopped_to_healthy_to_an_outage() {
    let site = Site::new("health");
    let rx = Receiver::start(&site, &["--token", TOKEN.trim_start_matches("Bearer ")]);
    let status = status_file(&site);
    let settings = format!(
        "TELEMETRY_URL={}\nAUTH_HEADER=\"Authorization: {TOKEN}\"\nSTATUS_LOG={}\nHEARTBEAT_INTERVAL_SECONDS=1\n",
        rx.url("http"),
        status.display()
    );
    site.config(&settings);

    // Stopped: never started.
    let (code, line) = check(&site);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("OPENVPN-TELEMETRY CRITICAL - agent not running"), "{line}");

    // Healthy: heartbeats arrive, each saying what the agent knows.
    connect_hooks(&site, 3);
    let agent = Agent::start(&site);
    let beat = wait_for("a heartbeat that saw a delivery and the status file", || {
        rx.events().into_iter().find(|e| {
            e["type"] == "AGENT_HEARTBEAT"
                && e["delivered_events_total"].as_u64() > Some(0)
                && e["instances"][0]["clients"] == 4
        })
    });
    assert_eq!(beat["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(beat["last_success_at"], event_time(NOW));
    assert_eq!(beat["consecutive_failures"], 0);
    assert_eq!(beat["instances"][0]["status_path"], status.display().to_string());
    assert_eq!(beat["instances"][0]["status_updated_at"], event_time(WRITTEN));
    let (code, line) = wait_for("status --check to say OK", || {
        let (code, line) = check(&site);
        (code == 0).then_some((code, line))
    });
    assert!(line.starts_with("OPENVPN-TELEMETRY OK - "), "{code}: {line}");

    // Outage: the receiver is gone. Events wait, failures count, and the
    // heartbeat (waiting in the spool with them) says why, without the
    // token.
    drop(rx);
    connect_hooks(&site, 2);
    assert!(fs::metadata(site.spool().join("queue.log")).unwrap().len() > 0);
    let beat = wait_for("a heartbeat during the outage", || {
        spooled_heartbeats(&site).into_iter().find(|b| b["consecutive_failures"].as_u64() >= Some(2))
    });
    let error = beat["last_error"].as_str().unwrap();
    assert!(!error.is_empty() && !error.contains("S3CRET"), "{error}");
    assert!(beat["pending_chunks"].as_u64() > Some(0) || beat["queue_bytes"].as_u64() > Some(0), "{beat}");
    assert_eq!(beat["oldest_pending_at"], event_time(NOW));
    let (code, line) = check(&site);
    assert_eq!(code, 0, "stalled for 0 s is not yet a problem: {line}");
    assert!(line.contains("consecutive_failures="), "{line}");
    let (code, line) = check_at(&site, NOW + 601);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("WARNING - oldest undelivered event 601 s old (> 600 s)"), "{line}");
    let (code, line) = check_at(&site, NOW + 3601);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("CRITICAL - oldest undelivered event 3601 s old (> 3600 s)"), "{line}");
    assert!(line.contains("oldest_pending_age=3601s;600;3600;0"), "{line}");

    // The counters survive a restart: the state keeps them (written at
    // most once a second while running, and on a stop).
    agent.stop();
    let (code, line) = check(&site);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("agent not running"), "{line}");
    let state: Value = serde_json::from_slice(&fs::read(site.spool().join("agent-state.json")).unwrap()).unwrap();
    assert!(state["posts"]["ok"].as_u64() > Some(0) && state["posts"]["retry"].as_u64() >= Some(2), "{state}");
    assert!(state["consecutive_failures"].as_u64() >= Some(2), "{state}");
    let shown = site.status_json();
    assert_eq!((&shown["posts"], &shown["consecutive_failures"]), (&state["posts"], &state["consecutive_failures"]));
}

#[test]
fn check_warns_on_failed_files_and_a_status_file_openvpn_stopped_rewriting() {
    let site = Site::new("health-failed");
    let rx = Receiver::start(&site, &["--script", "400"]);
    let status = status_file(&site);
    site.config(&format!("TELEMETRY_URL={}\nSTATUS_LOG={}\n", rx.url("http"), status.display()));
    connect_hooks(&site, 2);
    let _agent = Agent::start(&site);
    wait_for("the refused batch in failed/", || (fs::read_dir(site.failed()).ok()?.count() > 0).then_some(()));
    let (code, line) = wait_for("WARNING for failed/", || {
        let (code, line) = check(&site);
        line.contains("file(s) in failed/").then_some((code, line))
    });
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("failed_files=1;0;;0"), "{line}");

    // The same spool ten minutes later: OpenVPN has not rewritten its
    // status file since (3 of its 60 s intervals plus the agent's 60 s
    // between reads is 240 s).
    let (code, line) = check_at(&site, NOW + 600);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains(&format!("{} not rewritten for 660 s", status.display())), "{line}");
}

#[test]
fn drops_not_yet_reported_are_critical_until_the_report_is_delivered() {
    let site = Site::new("health-drops");
    site.config("MAX_SPOOL_BYTES=1\n");
    connect_hooks(&site, 3);
    let (code, line) = check(&site);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("events dropped, not yet reported"), "{line}");
    assert!(line.contains("dropped_unreported=") && !line.contains("dropped_unreported=0;"), "{line}");

    // Delivered: the report went out, nothing is unreported.
    let rx = Receiver::start(&site, &[]);
    site.config(&format!("TELEMETRY_URL={}\n", rx.url("http")));
    let _agent = Agent::start(&site);
    wait_for("the drop report delivered", || {
        rx.events().iter().any(|e| e["type"] == "TELEMETRY_EVENTS_DROPPED").then_some(())
    });
    let (code, line) = wait_for("OK once reported", || {
        let (code, line) = check(&site);
        (code == 0).then_some((code, line))
    });
    assert!(line.contains("dropped_unreported=0;;0;0") && !line.contains("dropped_total=0c"), "{code} {line}");
}

/// The locks held by someone else and a FIFO where a chunk should be:
/// `status --check` still answers at once (check_at bounds it), and says
/// UNKNOWN when it may not read the spool, CRITICAL when there is none.
#[test]
fn check_never_blocks_and_says_unknown_when_it_cannot_look() {
    let site = Site::new("health-block");
    site.config("");
    let hold = |name: &str| {
        let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(site.spool().join(name)).unwrap();
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap()
    };
    let _queue_lock = hold("queue.lock");
    let _agent_lock = hold("agent.lock");
    nix::unistd::mkfifo(&site.pending().join("00000000000000000001-fifo.ndjson"), nix::sys::stat::Mode::S_IRWXU)
        .unwrap();
    fs::write(site.spool().join("queue.log"), "{\"type\":\"X\",\"event_time_vpn\":\"2026-12-01T21:07:22Z\"}\n")
        .unwrap();
    let (code, line) = check(&site);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("agent not running"), "{line}");
    // A state it cannot read: whether the agent runs is not known.
    fs::write(site.spool().join("agent-state.json"), "{").unwrap();
    let (code, line) = check(&site);
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("OPENVPN-TELEMETRY UNKNOWN - cannot check: agent state: "), "{line}");
    fs::remove_file(site.spool().join("agent-state.json")).unwrap();

    if nix::unistd::geteuid().is_root() {
        // Root may read anything; a missing spool is the other case.
        fs::remove_dir_all(site.spool()).unwrap();
        let (code, line) = check(&site);
        assert_eq!(code, 2, "{line}");
        assert!(line.contains("spool refused:") && line.contains("does not exist"), "{line}");
    } else {
        fs::set_permissions(site.pending(), fs::Permissions::from_mode(0o000)).unwrap();
        let (code, line) = check(&site);
        fs::set_permissions(site.pending(), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(code, 2, "agent not running outranks UNKNOWN: {line}");
        assert!(line.contains("cannot check:"), "{line}");
    }
    site.settings("SPOOL_DIR=relative\n");
    let (code, line) = check(&site);
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("OPENVPN-TELEMETRY UNKNOWN - cannot check: ") && line.contains("SPOOL_DIR"), "{line}");
}

/// A CRL (real Easy-RSA, valid 2 days) of a server config the agent
/// watches: within the first `EXPIRY_WARN_DAYS` threshold it is a
/// WARNING, once expired (every client locked out) CRITICAL.
#[test]
fn a_pki_item_within_its_first_threshold_warns_and_an_expired_one_is_critical() {
    let site = Site::new("health-pki");
    let root = site.path("easyrsa");
    fs::create_dir_all(&root).unwrap();
    easyrsa::run(&root, &["init-pki"], &[]);
    easyrsa::run(&root, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "health-ca")]);
    easyrsa::run(&root, &["build-server-full", "server", "nopass"], &[]);
    easyrsa::run(&root, &["gen-crl"], &[("EASYRSA_CRL_DAYS", "2")]);
    let pki = root.join("pki");
    let conf = site.path("server.conf");
    fs::write(&conf, format!("ca {0}/ca.crt\ncert {0}/issued/server.crt\ncrl-verify {0}/crl.pem\n", pki.display()))
        .unwrap();
    site.config(&format!("OPENVPN_SERVER_CONF={}\nEXPIRY_WARN_DAYS=30,7,1\n", conf.display()));
    let _ = site.once();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // The agent is not running (CRITICAL anyway): the PKI findings are
    // read from the line.
    let (_, line) = check_at(&site, now);
    assert!(line.contains("PKI server: CRL expires in "), "{line}");
    assert!(!line.contains("PKI server: CA") && !line.contains("server certificate"), "{line}");
    let (code, line) = check_at(&site, now + 3 * 86_400);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("PKI server: CRL expired"), "{line}");
}

/// `METRICS_TEXTFILE` in a directory the agent cannot write: once the agent
/// has run for 5 minutes without a file there, `status --check` says so;
/// where it can write, it does not.
#[test]
fn a_metrics_file_the_agent_cannot_write_warns() {
    let site = Site::new("health-metrics");
    let rx = Receiver::start(&site, &[]);
    let config =
        |file: &Path| site.config(&format!("TELEMETRY_URL={}\nMETRICS_TEXTFILE={}\n", rx.url("http"), file.display()));
    let missing = site.path("no-such-directory/openvpn-telemetry.prom");
    config(&missing);
    let agent = Agent::start(&site);
    wait_for("the agent's log line", || site_log(&site).contains("cannot write the metrics file").then_some(()));
    let (code, line) = check_at(&site, NOW + 301);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains(&format!("{} not written", missing.display())), "{line}");
    let (_, line) = check_at(&site, NOW + 299);
    assert!(!line.contains("not written"), "the agent may still be starting: {line}");
    drop(agent);

    let file = site.path("openvpn-telemetry.prom");
    config(&file);
    let _agent = Agent::start(&site);
    wait_for("the metrics file", || file.exists().then_some(()));
    let (code, line) = check_at(&site, NOW + 301);
    assert_eq!(code, 0, "{line}");
}

fn site_log(site: &Site) -> String {
    fs::read_to_string(site.path("agent.log")).unwrap_or_default()
}

/// The spool is writable by the hooks' group, so the hooks' user can
/// create there the names of the agent's state files. `status --check`
/// believes them only from root or the agent (the spool's owner): a
/// planted state that says the agent runs, a planted `pki.state` that says
/// the CA expired and a planted `sessions.state` that says a status file
/// is stale are each "cannot check" (UNKNOWN), never their claim; the same
/// files from root are believed (so it is the owner that is refused).
#[test]
#[ignore = "needs root: make test runs it"]
fn check_refuses_state_files_the_hooks_user_planted() {
    use std::os::unix::fs::chown;
    let site = Site::new("health-planted");
    let status = site.path("status.log");
    site.config(&format!("STATUS_LOG={}\n", status.display()));
    let plant = |name: &str, text: &str, uid: u32| {
        let path = site.spool().join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, text).unwrap();
        chown(&path, Some(uid), None).unwrap();
    };
    // pid 1 is alive: from root, the state says the agent runs.
    plant("agent-state.json", "{\"pid\":1}", 0);
    let (code, line) = check(&site);
    assert_eq!(code, 0, "{line}");
    plant("agent-state.json", "{\"pid\":1}", 65534);
    let (code, line) = check(&site);
    assert_eq!(code, 3, "a planted state must not say the agent runs: {line}");
    assert!(line.contains("cannot check: agent state") && line.contains("owned by uid 65534"), "{line}");
    // `status` refuses it too, and says why.
    let out = Command::new(site::BIN)
        .args(["status", "--json"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["agent"]["running"], false, "{report}");
    assert!(report["agent"]["state_error"].as_str().unwrap().contains("owned by uid 65534"), "{report}");
    plant("agent-state.json", "{\"pid\":1}", 0);

    let expired = format!(
        "{{\"seen\":[{{\"what\":\"ca\",\"label\":\"/p/ca.crt\",\"instance\":\"server\",\"expires\":{}}}]}}",
        NOW - 10 * 86_400
    );
    plant("pki.state", &expired, 0);
    let (code, line) = check(&site);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("PKI server: CA expired"), "{line}");
    plant("pki.state", &expired, 65534);
    let (code, line) = check(&site);
    assert_eq!(code, 3, "a planted pki.state must not make a CRITICAL: {line}");
    assert!(!line.contains("expired") && line.contains("cannot check: PKI state"), "{line}");
    fs::remove_file(site.spool().join("pki.state")).unwrap();

    let stale = format!("{{\"last_update\":{{{:?}:{}}}}}", status.display().to_string(), NOW - 3600);
    plant("sessions.state", &stale, 0);
    let (code, line) = check(&site);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("not rewritten for 3600 s"), "{line}");
    plant("sessions.state", &stale, 65534);
    let (code, line) = check(&site);
    assert_eq!(code, 3, "{line}");
    assert!(!line.contains("not rewritten") && line.contains("cannot check: sessions state"), "{line}");
    fs::remove_file(site.spool().join("sessions.state")).unwrap();

    // A legacy spool that the hooks' user (nobody, 65534) owns: its owner
    // is not the agent, and its files are still refused.
    site.config(&format!(
        "STATUS_LOG={}
OPENVPN_SCRIPT_USER=nobody
",
        status.display()
    ));
    chown(site.spool(), Some(65534), None).unwrap();
    plant("agent-state.json", "{\"pid\":1}", 65534);
    let (code, line) = check(&site);
    chown(site.spool(), Some(0), None).unwrap();
    assert_eq!(code, 3, "a spool the hooks' user owns: {line}");
    assert!(line.contains("owned by uid 65534"), "{line}");
}

/// A CA that ends in two hours has 0 whole days left but is not expired:
/// `status --check` warns (WARNING, hours left) and says "expired"
/// (CRITICAL) only once its end has passed.
#[test]
fn under_a_day_left_warns_and_only_the_end_itself_is_expired() {
    let site = Site::new("health-pki-hours");
    site.config("EXPIRY_WARN_DAYS=30,7,1\n");
    fs::write(site.spool().join("agent-state.json"), "{\"pid\":1}").unwrap();
    let ends = NOW + 7200;
    fs::write(
        site.spool().join("pki.state"),
        format!(
            "{{\"seen\":[{{\"what\":\"ca\",\"label\":\"/p/ca.crt\",\"instance\":\"server\",\"expires\":{ends}}}]}}"
        ),
    )
    .unwrap();
    let (code, line) = check(&site);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("PKI server: CA expires in 2 h") && !line.contains("expired"), "{line}");
    let (code, line) = check_at(&site, ends - 1);
    assert_eq!(code, 1, "{line}");
    let (code, line) = check_at(&site, ends);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("PKI server: CA expired"), "{line}");
    let (code, line) = check_at(&site, ends - 30 * 86_400 - 1);
    assert_eq!(code, 0, "beyond the first threshold: {line}");
    let (code, _) = check_at(&site, ends - 30 * 86_400);
    assert_eq!(code, 1);
}

/// `sessions.state` still holds a status file the settings no longer
/// name (an agent that has not run a round since): `status --check` warns
/// only about the configured one.
#[test]
fn only_configured_status_files_can_be_stale() {
    let site = Site::new("health-removed-status");
    let status = site.path("status.log");
    site.config(&format!("STATUS_LOG={}\n", status.display()));
    fs::write(site.spool().join("agent-state.json"), "{\"pid\":1}").unwrap();
    let book = format!(
        "{{\"last_update\":{{{:?}:{},\"/run/openvpn-server/status-removed.log\":{}}}}}",
        status.display().to_string(),
        NOW - 3600,
        NOW - 7200
    );
    fs::write(site.spool().join("sessions.state"), book).unwrap();
    let (code, line) = check(&site);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("status.log not rewritten for 3600 s"), "{line}");
    assert!(!line.contains("status-removed.log"), "{line}");
}
