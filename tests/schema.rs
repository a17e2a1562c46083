//! The payload contract (`docs/schema/`, JSON Schema 2020-12) against what
//! the real binary sends: the hooks run with real OpenVPN environments and a
//! hostile one, `write-event`, a spool that made the hooks drop events, and
//! the agent with a real status file and Easy-RSA index delivering to the
//! loopback receiver, which keeps every POST body. Every body is validated
//! by a real validator, and every event type must be among them; broken
//! copies of real events must be refused, so the schema is not a blank
//! cheque.
//!
//! The validator is the `jsonschema` Python package (tests/setup.sh pins it
//! into target/schema-py, as it does opentelemetry-proto for the OTLP
//! tests) rather than the `jsonschema` crate as a dev-dependency: the crate
//! would add some forty crates (regex engines, an HTTP client for remote
//! references) to every `cargo test` build on the project's small build
//! machines, while the tests already need python3 for the receiver.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use site::roles;
use site::{Receiver, Site, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every type the binary writes: the hooks', a `write-event` type, and the
/// agent's own.
const TYPES: [&str; 13] = [
    "SESSION_CONNECTED",
    "SESSION_DISCONNECTED",
    "VPN_NOTE_1",
    "SESSION_UPDATE",
    "SESSION_SNAPSHOT",
    "CERT_ISSUED",
    "CERT_REVOKED",
    "CERT_EXPIRED",
    "CERT_EXPIRING",
    "CRL_EXPIRING",
    "CRL_EXPIRED",
    "TELEMETRY_EVENTS_DROPPED",
    "AGENT_HEARTBEAT",
];

/// Runs tests/support/schema_check.py over `files`; its JSON report.
fn validate(files: &[&Path]) -> (Value, Output) {
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("tests/support/schema_check.py"))
        .arg(Path::new(ROOT).join("docs/schema"))
        .args(files)
        .output()
        .unwrap();
    if out.status.code() == Some(3) {
        require::missing(&format!("the jsonschema Python package ({})", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("schema_check: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (report, out)
}

/// A hook run as OpenVPN runs it: by its program name, with nothing but
/// the given environment (raw bytes: OpenVPN passes what clients send).
fn hook(site: &Site, program: &str, args: &[&str], env: &[(&[u8], &[u8])]) {
    let mut c = Command::new(site.bin(program));
    c.args(args).env_clear().env("OPENVPN_TELEMETRY_CONFIG", site.config_path());
    for (k, v) in env {
        c.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    let out = c.output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{program}: {out:?}");
}

/// `KEY=value` lines of a fixture (an environment OpenVPN gave a hook).
fn env_file(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    fs::read(path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter_map(|l| l.iter().position(|&b| b == b'=').map(|i| (l[..i].to_vec(), l[i + 1..].to_vec())))
        .collect()
}

fn run_env_hook(site: &Site, program: &str, args: &[&str], env: &[(Vec<u8>, Vec<u8>)]) {
    let pairs: Vec<(&[u8], &[u8])> = env.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    hook(site, program, args, &pairs);
}

fn copy_fixture(site: &Site, from: &str) -> PathBuf {
    let to = site.root.join(Path::new(from).file_name().unwrap());
    fs::copy(Path::new(FIXTURES).join(from), &to).unwrap();
    to
}

/// Everything the binary produces, delivered for real and validated.
#[test]
#[ignore = "needs the PyPI packages tests/setup.sh installs: make test runs it"]
fn every_event_the_binary_sends_matches_the_schema_and_broken_ones_do_not() {
    let site = Site::new("schema");
    let rx = Receiver::start(&site, &["--keep-bodies"]);
    let disconnect = env_file(&Path::new(FIXTURES).join("openvpn-env-disconnect.txt"));

    // 1. A full queue: the hooks keep one event and drop (count) the rest,
    //    which the agent reports as TELEMETRY_EVENTS_DROPPED.
    site.config("MAX_SPOOL_BYTES=1\n");
    for _ in 0..3 {
        run_env_hook(&site, roles::disconnect(), &[], &disconnect);
    }

    // 2. Every source at once: the hooks with real environments OpenVPN
    //    2.7 gave them (and a hostile one), write-event, a real status
    //    file (version 3: IPv6, usernames) and a real Easy-RSA index with
    //    valid, revoked and expired certificates.
    let status = copy_fixture(&site, "real/ovpn27-udp3/status-v3.log");
    let index = copy_fixture(&site, "real/easyrsa3/index.txt");
    site.config(&format!(
        "TELEMETRY_URL={}\nSTATUS_LOG={}\nEASYRSA_INDEX={}\nSERVER_ID=vpn-schema\nHEARTBEAT_INTERVAL_SECONDS=1\n",
        rx.url("http"),
        status.display(),
        index.display()
    ));
    for e in fs::read_dir(Path::new(FIXTURES).join("real/ovpn27-udp3/env")).unwrap() {
        run_env_hook(&site, roles::connect(), &[], &env_file(&e.unwrap().path()));
    }
    run_env_hook(&site, roles::disconnect(), &[], &disconnect);
    let connect = env_file(&Path::new(FIXTURES).join("openvpn-env-connect.txt"));
    run_env_hook(&site, roles::write_event(), &["VPN_NOTE_1"], &connect);
    let long = vec![b'x'; 100_000];
    hook(
        &site,
        roles::connect(),
        &[],
        &[
            (b"common_name", b"a\"b\\c\nd\x01\x1b[31m\xff\xfe"),
            (b"username", &long),
            (b"IV_PLAT", "\u{85}\u{2028}é".as_bytes()),
            (b"trusted_ip6", b"2001:db8::7"),
            (b"trusted_port", b"not a port"),
            (b"time_unix", b"1796159179"),
        ],
    );
    hook(&site, roles::connect(), &[], &[]);

    let bodies = rx.db.join("bodies");
    // Every type but PKI health's (step 2b).
    let before_pki = &TYPES[..9];
    for _ in 0..4 {
        // A minute after OpenVPN wrote the status file: a file not
        // rewritten for 15 minutes gives no snapshot.
        let out = site.agent().arg("--once").env("OPENVPN_TELEMETRY_NOW", "1796159242").output().unwrap();
        assert!(out.status.success(), "agent --once: {}", String::from_utf8_lossy(&out.stderr));
        let seen: BTreeSet<String> =
            rx.events().iter().filter_map(|e| e["type"].as_str().map(str::to_string)).collect();
        if before_pki.iter().all(|t| seen.contains(*t)) {
            break;
        }
    }
    // The daemon's heartbeat (`agent --once` writes none), with the status
    // file it has read.
    let daemon = site.daemon();
    wait_for("a delivered AGENT_HEARTBEAT", || {
        rx.events()
            .iter()
            .any(|e| e["type"] == "AGENT_HEARTBEAT" && e["instances"][0]["clients"].is_u64())
            .then_some(())
    });
    drop(daemon);
    // 2b. PKI health: a real Easy-RSA PKI (server certificate for 5 days,
    //     CRL for 2) named by a server config, at real time (warnings) and
    //     6 days on (CRL_EXPIRED, the server's CERT_EXPIRED with its role).
    let pki_root = site.root.join("easyrsa");
    fs::create_dir_all(&pki_root).unwrap();
    easyrsa::run(&pki_root, &["init-pki"], &[]);
    easyrsa::run(&pki_root, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "schema-ca")]);
    easyrsa::run(&pki_root, &["build-server-full", "server", "nopass"], &[("EASYRSA_CERT_EXPIRE", "5")]);
    easyrsa::run(&pki_root, &["gen-crl"], &[("EASYRSA_CRL_DAYS", "2")]);
    let pki = pki_root.join("pki");
    let conf = site.root.join("server.conf");
    fs::write(&conf, format!("ca {0}/ca.crt\ncert {0}/issued/server.crt\ncrl-verify {0}/crl.pem\n", pki.display()))
        .unwrap();
    site.config(&format!(
        "TELEMETRY_URL={}\nOPENVPN_SERVER_CONF={}\nSERVER_ID=vpn-schema\nSESSION_UPDATE_INTERVAL_SECONDS=0\n\
         SNAPSHOT_INTERVAL_SECONDS=0\n",
        rx.url("http"),
        conf.display()
    ));
    let real_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for now in [real_now, real_now + 6 * 86_400] {
        let out = site.agent().arg("--once").env("OPENVPN_TELEMETRY_NOW", now.to_string()).output().unwrap();
        assert!(out.status.success(), "agent --once: {}", String::from_utf8_lossy(&out.stderr));
    }
    let seen: BTreeSet<String> = rx.events().iter().filter_map(|e| e["type"].as_str().map(str::to_string)).collect();
    assert_eq!(seen, TYPES.iter().map(|t| t.to_string()).collect(), "every event type was delivered");
    assert!(rx.events().iter().any(|e| e["type"] == "CERT_EXPIRED" && e["cert_role"] == "server"));

    let (report, out) = validate(&[&bodies]);
    assert!(out.status.success() && report["errors"] == json!([]), "the schema refuses real output: {report:#}");
    let sent: BTreeSet<String> = report["events"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(sent, seen, "the validator saw every type");
    assert_eq!(report["documents"].as_u64(), Some(rx.stats()["batches"].as_u64().unwrap()), "{report}");

    // 3. Broken copies of real events, one a line: each must be refused,
    //    while the same events unbroken (the first line) are accepted.
    let events = rx.events();
    let of = |t: &str| events.iter().find(|e| e["type"] == t).unwrap().clone();
    let envelope = |evs: Vec<Value>| json!({"server_id": "x", "sent_at": "2026-02-13T12:10:10Z", "events": evs});
    let edit = |t: &str, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut e = of(t);
        f(e.as_object_mut().unwrap());
        envelope(vec![e])
    };
    let broken = [
        edit("SESSION_CONNECTED", &|e| drop(e.insert("seq".into(), json!("7")))),
        edit("SESSION_CONNECTED", &|e| drop(e.remove("real_ip"))),
        edit("SESSION_CONNECTED", &|e| drop(e.insert("real_port".into(), json!(1194)))),
        edit("SESSION_DISCONNECTED", &|e| drop(e.insert("bytes_sent".into(), json!(-1)))),
        edit("VPN_NOTE_1", &|e| drop(e.insert("surprise".into(), json!(1)))),
        edit("SESSION_UPDATE", &|e| drop(e.remove("bytes_received_delta"))),
        edit("SESSION_UPDATE", &|e| drop(e.insert("session_id".into(), json!("not-a-uuid")))),
        edit("SESSION_SNAPSHOT", &|e| drop(e["sessions"][0].as_object_mut().unwrap().remove("session_id"))),
        edit("SESSION_SNAPSHOT", &|e| drop(e.insert("part".into(), json!(0)))),
        edit("CERT_ISSUED", &|e| drop(e.insert("reason".into(), json!("superseded")))),
        edit("CERT_REVOKED", &|e| drop(e.insert("status".into(), json!("gone")))),
        edit("CERT_EXPIRED", &|e| drop(e.insert("cert_serial".into(), json!("ABC")))),
        edit("TELEMETRY_EVENTS_DROPPED", &|e| drop(e.remove("count"))),
        edit("AGENT_HEARTBEAT", &|e| drop(e.remove("last_error"))),
        edit("AGENT_HEARTBEAT", &|e| drop(e.insert("pending_bytes".into(), json!(-1)))),
        edit("AGENT_HEARTBEAT", &|e| {
            drop(e["instances"][0].as_object_mut().unwrap().insert("clients".into(), json!("4")))
        }),
        edit("CERT_EXPIRING", &|e| drop(e.remove("cert_role"))),
        edit("CERT_EXPIRING", &|e| drop(e.insert("days_left".into(), json!(-1)))),
        edit("CRL_EXPIRING", &|e| drop(e.insert("threshold_days".into(), json!(0)))),
        edit("CRL_EXPIRED", &|e| drop(e.remove("next_update"))),
        edit("CERT_ISSUED", &|e| drop(e.insert("cert_role".into(), json!("server")))),
        edit("SESSION_CONNECTED", &|e| drop(e.insert("event_time_vpn".into(), json!("2026-02-13T12:10:05+01:00")))),
        edit("SESSION_CONNECTED", &|e| drop(e.remove("event_id"))),
        edit("SESSION_CONNECTED", &|e| drop(e.insert("type".into(), json!("lower_case")))),
        json!({"server_id": "x", "events": [of("SESSION_CONNECTED")]}),
        json!({"server_id": 1, "sent_at": "2026-02-13T12:10:10Z", "events": []}),
    ];
    let good = envelope(TYPES.iter().map(|t| of(t)).collect());
    let file = site.root.join("broken.ndjson");
    let text: String = std::iter::once(&good).chain(&broken).map(|v| format!("{v}\n")).collect();
    fs::write(&file, text).unwrap();
    let (report, out) = validate(&[&file]);
    assert!(!out.status.success(), "{report}");
    let refused: BTreeSet<u64> =
        report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    let want: BTreeSet<u64> = (2..=broken.len() as u64 + 1).collect();
    assert_eq!(refused, want, "each broken line, and only those, is refused: {report:#}");
}
