//! The event sources through the real binary: `agent --once`
//! reads the status file and Easy-RSA's index.txt, writes through the spool
//! and delivers to a `file://` sink, exactly as in production.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use site::BIN;
use site::roles::{connect, disconnect};
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The shared test site with a `file://` sink (support/agent_site.rs).
type Site = site::FileSite;

fn new_site(name: &str, extra: &str) -> Site {
    Site::new(&format!("sources-{name}"), extra)
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn rfc3339_secs(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
}

/// The index's own events: bob's one-day certificate also gives a
/// `CERT_EXPIRING` (PKI health, tests/pki.rs), which is not this test's.
fn index_events(site: &mut Site, now: Option<i64>) -> Vec<Value> {
    site.agent(now).into_iter().filter(|e| e["type"] != "CERT_EXPIRING").collect()
}

#[test]
fn easyrsa_issue_revoke_expire_without_duplicates() {
    require::file(easyrsa::EASYRSA, "easy-rsa");
    let root = std::env::temp_dir().join(format!("ovt-sources-it-pki-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    easyrsa::run(&root, &["init-pki"], &[]);
    easyrsa::run(&root, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "it-ca")]);
    easyrsa::run(&root, &["build-client-full", "alice", "nopass"], &[]);
    easyrsa::run(&root, &["build-client-full", "bob", "nopass"], &[("EASYRSA_CERT_EXPIRE", "1")]);
    let index = root.join("pki/index.txt");
    let mut site = new_site("certs", &format!("EASYRSA_INDEX={}\n", index.display()));
    let mut all = Vec::new();

    let evs = index_events(&mut site, None);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(evs.iter().all(|e| e["type"] == "CERT_ISSUED" && e["inventory"] == true));
    let bob = evs.iter().find(|e| e["common_name"] == "bob").unwrap().clone();
    let bob_expiry = rfc3339_secs(bob["expires_at"].as_str().unwrap());
    let serial = bob["cert_serial_hex"].as_str().unwrap();
    assert!(fs::read_to_string(&index).unwrap().contains(serial));
    all.extend(evs);

    // Nothing new: a second run (a restart) repeats nothing.
    assert!(index_events(&mut site, None).is_empty());
    // Changes made while the agent is not running are seen once.
    easyrsa::run(&root, &["revoke", "alice", "superseded"], &[]);
    easyrsa::run(&root, &["build-client-full", "carol", "nopass"], &[]);
    let evs = index_events(&mut site, None);
    let mut kinds: Vec<(String, String)> =
        evs.iter().map(|e| (e["type"].as_str().unwrap().into(), e["common_name"].as_str().unwrap().into())).collect();
    kinds.sort();
    assert_eq!(kinds, [("CERT_ISSUED".into(), "carol".into()), ("CERT_REVOKED".into(), "alice".into())]);
    let revoked = of_type(&evs, "CERT_REVOKED")[0];
    assert_eq!((revoked["reason"].as_str(), revoked["status"].as_str()), (Some("superseded"), Some("revoked")));
    all.extend(evs);
    assert!(index_events(&mut site, None).is_empty());

    // bob's one-day certificate expires: seen by the clock, file unchanged.
    let evs = index_events(&mut site, Some(bob_expiry + 1));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0]["type"].as_str(), evs[0]["common_name"].as_str()), (Some("CERT_EXPIRED"), Some("bob")));
    all.extend(evs);
    assert!(index_events(&mut site, Some(bob_expiry + 60)).is_empty());

    let ids: HashSet<&str> = all.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len());
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let _ = fs::remove_dir_all(&root);
}

/// A status file rewritten as OpenVPN would: new totals, new TIME.
fn bump(text: &str, time: u64, extra: u64) -> String {
    text.lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            if f[0] == "TIME" {
                f[2] = time.to_string();
            }
            if f[0] == "CLIENT_LIST" {
                for i in [5, 6] {
                    f[i] = (f[i].parse::<u64>().unwrap() + extra).to_string();
                }
            }
            f.join(",") + "\n"
        })
        .collect()
}

#[test]
fn status_file_updates_snapshots_and_the_hooks_session_id() {
    let mut site = new_site("status", "");
    let conf = site.path("server.conf");
    fs::write(&conf, "port 1194\nstatus openvpn-status.log 10\nstatus-version 2\n").unwrap();
    let config = fs::read_to_string(site.path("agent.env")).unwrap();
    fs::write(site.path("agent.env"), format!("{config}OPENVPN_SERVER_CONF={}\n", conf.display())).unwrap();
    let status = site.path("openvpn-status.log");
    let v2 = fs::read_to_string(Path::new(FIXTURES).join("status-v2.log")).unwrap();
    // Rewritten "now" as far as its TIME line goes: an old file gives no snapshot.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    fs::write(&status, bump(&v2, now, 0)).unwrap();

    // The real connect hook, with the environment OpenVPN gave it for
    // ovt-client-01 in the same run the status file comes from.
    let hook = site.bin(connect());
    let env_text = fs::read_to_string(Path::new(FIXTURES).join("openvpn-env-connect.txt")).unwrap();
    let mut c = Command::new(&hook);
    c.env_clear().env("OPENVPN_TELEMETRY_CONFIG", site.path("agent.env"));
    for (k, v) in env_text.lines().filter_map(|l| l.split_once('=')) {
        c.env(k, v);
    }
    assert!(c.status().unwrap().success());

    let evs = site.agent(None);
    let connect = of_type(&evs, "SESSION_CONNECTED");
    assert_eq!(connect.len(), 1);
    let updates = of_type(&evs, "SESSION_UPDATE");
    assert_eq!(updates.len(), 3);
    let same: Vec<_> = updates.iter().filter(|u| u["session_id"] == connect[0]["session_id"]).collect();
    assert_eq!(same.len(), 1, "the status file's session_id must equal the connect hook's");
    assert_eq!(same[0]["common_name"], "ovt-client-01");
    assert_eq!(same[0]["instance"], "server");
    assert_eq!(same[0]["connected_since"], connect[0]["connected_since"]);
    let rx0 = same[0]["bytes_received"].as_u64().unwrap();
    assert_eq!(same[0]["bytes_received_delta"].as_u64(), Some(rx0));
    let snap = of_type(&evs, "SESSION_SNAPSHOT");
    assert_eq!((snap.len(), snap[0]["session_count"].as_u64(), snap[0]["parts"].as_u64()), (1, Some(3), Some(1)));
    let listed: HashSet<&str> =
        snap[0]["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
    assert!(listed.contains(connect[0]["session_id"].as_str().unwrap()));

    // Traffic: totals grow and the delta is the growth, across agent runs.
    fs::write(&status, bump(&v2, now + 60, 700)).unwrap();
    let evs = site.agent(None);
    let ups = of_type(&evs, "SESSION_UPDATE");
    assert_eq!(ups.len(), 3);
    assert!(ups.iter().all(|u| u["bytes_received_delta"] == 700 && u["bytes_sent_delta"] == 700), "{ups:?}");

    // Caught mid-rewrite: the round is skipped, nothing is emitted, the
    // agent still succeeds, and the next complete file carries the deltas.
    fs::copy(Path::new(FIXTURES).join("status-v2-midwrite.log"), &status).unwrap();
    assert!(site.agent(None).is_empty());
    fs::write(&status, bump(&v2, now + 120, 1000)).unwrap();
    let evs = site.agent(None);
    let ups = of_type(&evs, "SESSION_UPDATE");
    assert!(ups.len() == 3 && ups.iter().all(|u| u["bytes_received_delta"] == 300), "{ups:?}");
}

/// Processes and namespaces of one live OpenVPN run, ended on drop (by PID
/// and by name: only what this test made).
struct Live {
    namespaces: Vec<String>,
    children: Vec<std::process::Child>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).output().is_ok_and(|o| o.status.success())
}

fn wait_for(file: &Path, text: &str) -> bool {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < give_up {
        if fs::read_to_string(file).is_ok_and(|t| t.contains(text)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// Whether a live OpenVPN can run here; a test that needs one and cannot
/// have it fails (see support/require.rs).
fn live_gate() {
    require::root("OpenVPN in network namespaces");
    require::file("/dev/net/tun", "the tun module (modprobe tun)");
    require::file(easyrsa::EASYRSA, "easy-rsa");
    require::program("openvpn", "--version", "openvpn");
    require::program("ip", "-V", "iproute2");
    require::program("python3", "--version", "python3");
}

/// A real OpenVPN 2.6 server and client in two namespaces of this test's
/// own: the client's SESSION_UPDATE bytes grow with its traffic, its
/// session_id is its connect event's, and its disconnect empties the next
/// snapshot.
#[test]
#[ignore = "needs root: make test runs it"]
fn live_openvpn_session_updates_follow_traffic() {
    live_gate();
    let id = std::process::id();
    let (srv, cli) = (format!("ovt6s-{id}"), format!("ovt6c-{id}"));
    let (veth_s, veth_c) = (format!("o6s{}", id % 100_000), format!("o6c{}", id % 100_000));
    let mut live = Live { namespaces: Vec::new(), children: Vec::new() };
    for ns in [&srv, &cli] {
        assert!(sh(&["ip", "netns", "add", ns]), "cannot create network namespace {ns} (ip netns add)");
        live.namespaces.push(ns.clone());
    }
    assert!(sh(&["ip", "link", "add", &veth_s, "netns", &srv, "type", "veth", "peer", "name", &veth_c, "netns", &cli]));
    for (ns, dev, addr) in [(&srv, &veth_s, "192.0.2.1/24"), (&cli, &veth_c, "192.0.2.2/24")] {
        assert!(sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]));
        assert!(sh(&["ip", "-n", ns, "link", "set", dev, "up"]));
        assert!(sh(&["ip", "-n", ns, "link", "set", "lo", "up"]));
    }

    let mut site = new_site("live", "");
    let dir = site.root.clone();
    easyrsa::run(&dir, &["init-pki"], &[]);
    easyrsa::run(&dir, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "live-ca")]);
    easyrsa::run(&dir, &["build-server-full", "server", "nopass"], &[]);
    easyrsa::run(&dir, &["build-client-full", "alice", "nopass"], &[]);
    let pki = dir.join("pki");
    let conf = dir.join("server.conf");
    let p = |rel: &str| pki.join(rel).display().to_string();
    fs::write(
        &conf,
        format!(
            "proto udp\nlocal 192.0.2.1\nport 1194\ndev tun\ntopology subnet\nserver 10.98.0.0 255.255.255.0\n\
ca {}\ncert {}\nkey {}\ndh none\ndisable-dco\nkeepalive 1 10\nstatus live-status.log 1\nstatus-version 2\n\
script-security 2\nsetenv OPENVPN_TELEMETRY_CONFIG {}\nclient-connect {}\nclient-disconnect {}\nverb 3\n",
            p("ca.crt"),
            p("issued/server.crt"),
            p("private/server.key"),
            dir.join("agent.env").display(),
            site.bin(connect()).display(),
            site.bin(disconnect()).display(),
        ),
    )
    .unwrap();
    let env = fs::read_to_string(dir.join("agent.env")).unwrap();
    fs::write(dir.join("agent.env"), format!("{env}OPENVPN_SERVER_CONF={}\n", conf.display())).unwrap();

    let spawn = |ns: &str, args: &[String]| {
        Command::new("ip").args(["netns", "exec", ns, "openvpn"]).args(args).current_dir(&dir).spawn().unwrap()
    };
    let server_log = dir.join("server.log");
    let s = format!("{}", conf.display());
    live.children.push(spawn(&srv, &["--config".into(), s, "--log".into(), server_log.display().to_string()]));
    assert!(wait_for(&server_log, "Initialization Sequence Completed"), "server did not start");
    let client_log = dir.join("client.log");
    let client_args: Vec<String> = [
        "--client",
        "--dev",
        "tun",
        "--proto",
        "udp",
        "--remote",
        "192.0.2.1",
        "1194",
        "--nobind",
        "--remote-cert-tls",
        "server",
        "--explicit-exit-notify",
        "1",
        "--disable-dco",
        "--verb",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--ca", &p("ca.crt"), "--cert", &p("issued/alice.crt"), "--key", &p("private/alice.key")].map(String::from))
    .chain(["--log".to_string(), client_log.display().to_string()])
    .collect();
    live.children.push(spawn(&cli, &client_args));
    assert!(wait_for(&client_log, "Initialization Sequence Completed"), "client did not connect");

    // Traffic through the tunnel: UDP datagrams to the server's tunnel
    // address, counted by OpenVPN whether or not anything answers.
    let traffic = |n: u32| {
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor _ in range({n}): s.sendto(b'x'*1000,('10.98.0.1',9))"
        );
        assert!(sh(&["ip", "netns", "exec", &cli, "python3", "-c", &code]));
    };
    // Waits until OpenVPN's status file shows alice with at least `min`
    // bytes received (it is rewritten every second).
    let status = dir.join("live-status.log");
    let wait_rx = |min: u64| {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let rx = || {
            let text = fs::read_to_string(&status).unwrap_or_default();
            text.lines()
                .find(|l| l.starts_with("CLIENT_LIST,alice,"))
                .and_then(|l| l.split(',').nth(5).and_then(|n| n.parse::<u64>().ok()))
                .unwrap_or(0)
        };
        while rx() < min && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };

    traffic(10);
    assert!(wait_for(&dir.join("spool/queue.log"), "SESSION_CONNECTED"), "no connect event");
    wait_rx(10_000);
    let first_round = site.agent(None);
    let connect = of_type(&first_round, "SESSION_CONNECTED");
    assert_eq!(connect.len(), 1, "{first_round:?}");
    let up1 = of_type(&first_round, "SESSION_UPDATE");
    assert_eq!(up1.len(), 1, "{first_round:?}");
    assert_eq!(up1[0]["session_id"], connect[0]["session_id"]);
    assert_eq!(up1[0]["common_name"], "alice");
    assert_eq!(up1[0]["virtual_ip"], connect[0]["virtual_ip"]);
    let rx1 = up1[0]["bytes_received"].as_u64().unwrap();
    assert!(rx1 >= 10_000, "{:?}", up1[0]);

    traffic(50);
    wait_rx(rx1 + 50_000);
    let evs = site.agent(None);
    let ups = of_type(&evs, "SESSION_UPDATE");
    assert_eq!(ups.len(), 1, "{evs:?}");
    let up2 = ups[0];
    let rx2 = up2["bytes_received"].as_u64().unwrap();
    assert_eq!(up2["session_id"], connect[0]["session_id"]);
    assert!(rx2 >= rx1 + 50_000, "{rx1} -> {rx2}");
    assert_eq!(up2["bytes_received_delta"].as_u64(), Some(rx2 - rx1));

    // The client leaves: its disconnect carries the same id, and the next
    // snapshot lists nobody.
    let client = live.children.pop().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(client.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let mut client = client;
    let _ = client.wait();
    assert!(wait_for(&dir.join("spool/queue.log"), "SESSION_DISCONNECTED"), "no disconnect");
    // A status file written just before the disconnect may still list
    // alice (the server must not reopen a session it saw close): wait for
    // OpenVPN's next rewrite.
    let status = dir.join("live-status.log");
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read_to_string(&status).unwrap_or_default().contains("CLIENT_LIST,alice")
        && std::time::Instant::now() < give_up
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let evs = site.agent(None);
    let gone = of_type(&evs, "SESSION_DISCONNECTED");
    assert_eq!(gone[0]["session_id"], connect[0]["session_id"]);
    let snap = of_type(&evs, "SESSION_SNAPSHOT");
    assert_eq!(snap[0]["session_count"], 0, "{evs:?}");
}

/// Runs the real connect hook (the binary through its hook name, as
/// OpenVPN runs it) with an environment OpenVPN recorded, writing into
/// `site`'s spool.
fn run_connect_hook(site: &Site, env_text: &str) {
    let hook = site.bin(connect());
    let mut c = Command::new(&hook);
    c.env_clear().env("OPENVPN_TELEMETRY_CONFIG", site.path("agent.env"));
    for (k, v) in env_text.lines().filter_map(|l| l.split_once('=')) {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "hook: {}", String::from_utf8_lossy(&out.stderr));
}

/// `Updated,` of a version 1 file (written in UTC) as unix time, so its
/// copy can get the mtime OpenVPN gave it.
fn v1_updated(text: &str) -> Option<i64> {
    let d = text.lines().find_map(|l| l.strip_prefix("Updated,"))?;
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    Some(time::PrimitiveDateTime::parse(d, f).ok()?.assume_utc().unix_timestamp())
}

/// For every client of every status file a real OpenVPN 2.6 wrote
/// (tests/fixtures/real), the real connect hook, run with the environment
/// OpenVPN gave it in the same run, and the agent reading the status file
/// give the session one and the same session_id, name, address and port.
#[test]
fn every_client_row_has_its_connect_hooks_session_id() {
    let runs = [
        ("udp", "status-v1.log"),
        ("udp2", "status-v2.log"),
        ("udp3", "status-v3.log"),
        ("tcp", "status-v2.log"),
        ("undef", "status-v2.log"),
        ("tap1", "status-v1.log"),
        ("tap2", "status-v2.log"),
        ("ovpn27-udp1", "status-v1.log"),
        ("ovpn27-udp2", "status-v2.log"),
        ("ovpn27-udp3", "status-v3.log"),
        ("ovpn27-tcp", "status-v2.log"),
    ];
    let mut compared = 0;
    for (run, file) in runs {
        let mut site = new_site(&format!("ids-{run}"), "");
        let status = site.path(file);
        let text = fs::read_to_string(Path::new(FIXTURES).join("real").join(run).join(file)).unwrap();
        fs::write(&status, &text).unwrap();
        if let Some(t) = v1_updated(&text) {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
            fs::File::options().write(true).open(&status).unwrap().set_modified(when).unwrap();
        }
        let config = fs::read_to_string(site.path("agent.env")).unwrap();
        fs::write(site.path("agent.env"), format!("{config}STATUS_LOG={}\n", status.display())).unwrap();
        let env_dir = Path::new(FIXTURES).join("real").join(run).join("env");
        let mut envs = 0;
        for entry in fs::read_dir(&env_dir).unwrap_or_else(|e| panic!("{}: {e}", env_dir.display())) {
            run_connect_hook(&site, &fs::read_to_string(entry.unwrap().path()).unwrap());
            envs += 1;
        }
        let evs = site.agent(None);
        let connects = of_type(&evs, "SESSION_CONNECTED");
        let updates = of_type(&evs, "SESSION_UPDATE");
        assert_eq!((connects.len(), updates.len()), (envs, envs), "{run}: {evs:#?}");
        for c in &connects {
            let same: Vec<_> = updates.iter().filter(|u| u["session_id"] == c["session_id"]).collect();
            assert_eq!(same.len(), 1, "{run}: {c} not among {updates:#?}");
            let u = same[0];
            let cn = c["common_name"].as_str().unwrap();
            assert_eq!(u["common_name"], if cn.is_empty() { "UNDEF" } else { cn }, "{run}");
            assert_eq!((&u["real_ip"], &u["connected_since"]), (&c["real_ip"], &c["connected_since"]), "{run}");
            if !u["real_ip"].as_str().unwrap().contains(':') || run.starts_with("ovpn27") {
                assert_eq!(u["real_port"], c["real_port"], "{run}");
            }
            if run != "tap1" {
                assert_eq!(u["virtual_ip"], c["virtual_ip"], "{run}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 42);
}

/// [`bump`] for rows whose common name may hold commas: the byte counts
/// are found from the end of the row (no commas in the usernames here).
fn bump_from_the_end(text: &str, time: u64, extra: u64) -> String {
    text.lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            if f[0] == "TIME" {
                f[2] = time.to_string();
            }
            if f[0] == "CLIENT_LIST" {
                let n = f.len();
                for i in [n - 8, n - 7] {
                    f[i] = (f[i].parse::<u64>().unwrap() + extra).to_string();
                }
            }
            f.join(",") + "\n"
        })
        .collect()
}

/// A row that cannot be read costs that row: the others are read, the
/// agent warns once for it (not again for the next rewrite with the same
/// row), and `status` shows the count.
#[test]
fn an_unreadable_row_is_counted_logged_once_and_costs_only_itself() {
    let mut site = new_site("unreadable", "");
    let status = site.path("status.log");
    let config = fs::read_to_string(site.path("agent.env")).unwrap();
    fs::write(site.path("agent.env"), format!("{config}STATUS_LOG={}\n", status.display())).unwrap();
    let real = fs::read_to_string(Path::new(FIXTURES).join("real/udp2/status-v2.log")).unwrap();
    // The crafted row of the real file, without the routes that let the
    // reader tell its readings apart: left out, never given to ovt-alice.
    let crafted = "ovt-alice,192.0.2.2:1194,";
    let text: String = real
        .lines()
        .filter(|l| !(l.starts_with("ROUTING_TABLE,") && l.contains(crafted)))
        .map(|l| format!("{l}\n"))
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (mut logs, mut evs) = (Vec::new(), Vec::new());
    for (i, t) in [now, now + 60].into_iter().enumerate() {
        fs::write(&status, bump_from_the_end(&text, t, i as u64 * 100)).unwrap();
        let (delivered, log) = site.agent_logged(None);
        evs.extend(delivered);
        logs.push(log);
    }
    let ups = of_type(&evs, "SESSION_UPDATE");
    assert_eq!(ups.len(), 12, "6 of 7 clients, twice: {ups:#?}");
    assert!(ups.iter().all(|u| !u["username"].as_str().is_some_and(|n| n.contains("192.0.2.2"))), "{ups:#?}");
    let alice_ports: HashSet<&str> =
        ups.iter().filter(|u| u["common_name"] == "ovt-alice").map(|u| u["real_port"].as_str().unwrap()).collect();
    assert!(!alice_ports.contains("1194"), "{alice_ports:?}");
    let snap = of_type(&evs, "SESSION_SNAPSHOT");
    assert_eq!(snap[0]["session_count"], 6);
    let line = text.lines().position(|l| l.starts_with("CLIENT_LIST,") && l.contains(crafted)).unwrap() + 1;
    assert!(logs[0].contains(&format!("1 unreadable row(s) left out (line {line}: ")), "{}", logs[0]);
    // Each `agent --once` is a new process: it logs again; within one
    // agent the same problem is logged once (see the unit tests).
    let out = Command::new(BIN)
        .args(["status", "--json"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.path("agent.env"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unreadable_rows"]["status_files"][status.display().to_string()], 1, "{report:#}");
    let out = Command::new(BIN).arg("status").env("OPENVPN_TELEMETRY_CONFIG", site.path("agent.env")).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("unreadable rows") && shown.contains("1 in status files"), "{shown}");
    // The row read again (its routes are back): the count goes to 0.
    fs::write(&status, bump_from_the_end(&real, now + 120, 300)).unwrap();
    assert_eq!(of_type(&site.agent(None), "SESSION_UPDATE").len(), 7);
    let out = Command::new(BIN)
        .args(["status", "--json"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.path("agent.env"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unreadable_rows"]["status_files"], serde_json::json!({}), "{report:#}");
}
