//! Personal data never leaves the host when the settings say so: the real
//! hooks (OpenVPN's recorded environment with odd names and addresses),
//! OpenVPN's status file (SESSION_UPDATE, SESSION_SNAPSHOT), a real
//! Easy-RSA index (CERT_ISSUED with its subject) and a drop report are
//! spooled, `agent --once` delivers them to the loopback receiver in both
//! formats, and no byte sequence of a raw pseudonymized or dropped value,
//! in any escaped form, is anywhere in what the receiver got. Pseudonyms
//! hold across a restart and across agents sharing a key, differ under
//! another key, and `session_id` still joins a session's events.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use site::roles::{connect, disconnect};
use site::{Receiver, Site};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const PSEUDONYMIZE: &str = "common_name,username,real_ip,virtual_ip,virtual_ipv6,cert_serial,cert_sha256";
const DROP: &str = "real_port,client_platform,client_version";

/// The session seen by the hooks and in the status file.
const NAME: &str = "Jürgen Ölmann";
const IP6: &str = "2001:db8:77::1";
const PORT: &str = "51234";
const VIP: &str = "10.99.0.77";
const VIP6: &str = "fd00:77::1000";
const USER: &str = "jürgen.o@corp.example";
const SINCE: i64 = 1_795_764_953;
/// A second hook session: a comma, quotes, an IPv4-mapped address.
const NAME2: &str = "Müller, Anna \"ops\"";
const MAPPED: &str = "::ffff:198.51.100.77";
const PORT2: &str = "51777";
const PLATFORM: &str = "wïn,odd";
const VERSION: &str = "2.6.14-öd\"d";
/// The certificate in the Easy-RSA index.
const CERT_CN: &str = "jürgen-ölmann";

fn env_file(name: &str) -> Vec<(String, String)> {
    let text = fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap();
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// OpenVPN's recorded hook environment with this session's values.
fn hook(site: &Site, role: &str, fixture: &str, personal: &[(&str, &str)]) {
    let mut env = env_file(fixture);
    env.retain(|(k, _)| !personal.iter().any(|(p, _)| p == k) && k != "trusted_ip" && k != "trusted_port");
    let mut all: Vec<(&str, &[u8])> = env.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    all.extend(personal.iter().map(|(k, v)| (*k, v.as_bytes())));
    let out = site.hook(role, &[], &all).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

fn first_session(site: &Site, role: &str, fixture: &str) {
    hook(
        site,
        role,
        fixture,
        &[
            ("common_name", NAME),
            ("trusted_ip6", IP6),
            ("trusted_port", PORT),
            ("ifconfig_pool_remote_ip", VIP),
            ("ifconfig_pool_remote_ip6", VIP6),
            ("username", USER),
            ("IV_PLAT", PLATFORM),
            ("IV_VER", VERSION),
            ("time_unix", &SINCE.to_string()),
        ],
    );
}

fn second_session(site: &Site) {
    hook(
        site,
        connect(),
        "openvpn-env-connect.txt",
        &[("common_name", NAME2), ("trusted_ip", MAPPED), ("trusted_port", PORT2), ("IV_PLAT", PLATFORM)],
    );
}

/// The recorded status file (version 2) with the first session in it.
fn status_file(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(Path::new(FIXTURES).join("status-v2.log")).unwrap();
    let row =
        format!("CLIENT_LIST,{NAME},{IP6},{VIP},{VIP6},100,200,2026-11-27 07:35:53,{SINCE},{USER},7,7,AES-256-GCM");
    let text = text.replacen("HEADER,ROUTING_TABLE", &format!("{row}\nHEADER,ROUTING_TABLE"), 1);
    // Written just now, as OpenVPN keeps rewriting it (a stale file gets
    // no snapshot).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let text = text.replacen(",1795764956\n", &format!(",{now}\n"), 1);
    let path = dir.join("status.log");
    fs::write(&path, text).unwrap();
    path
}

/// A real Easy-RSA PKI with one client certificate; its index.txt.
fn pki(dir: &Path) -> PathBuf {
    require::file(easyrsa::EASYRSA, "easy-rsa");
    easyrsa::run(dir, &["init-pki"], &[]);
    easyrsa::run(dir, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "privacy-ca")]);
    easyrsa::run(dir, &["build-client-full", CERT_CN, "nopass"], &[]);
    dir.join("pki/index.txt")
}

/// A site delivering to `rx` in `format`, with `key` as its pseudonym key.
fn private_site(name: &str, rx: &Receiver, format: &str, key: &[u8], status: &Path, index: &Path) -> Site {
    let site = Site::new(&format!("privacy-{name}"));
    let key_file = site.path("pseudonym.key");
    fs::write(&key_file, key).unwrap();
    site.config(&format!(
        "TELEMETRY_URL={}\nTELEMETRY_FORMAT={format}\nPSEUDONYMIZE={PSEUDONYMIZE}\nDROP_FIELDS={DROP}\n\
         PSEUDONYM_KEY_FILE={}\nSTATUS_LOG={}\nEASYRSA_INDEX={}\n",
        rx.url("http"),
        key_file.display(),
        status.display(),
        index.display()
    ));
    // Three events the hooks could not store: the drop report.
    fs::write(site.spool().join("dropped"), "3 1 3\n").unwrap();
    site
}

fn once(site: &Site) {
    let out = site.once();
    assert!(out.status.success(), "agent --once: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every form a raw value could take in a body: as it is, JSON-escaped
/// once (the envelope, an OTLP attribute) and twice (an OTLP body holds
/// the event line as a string), and with non-ASCII as `\uXXXX`.
fn forms(raw: &str) -> Vec<Vec<u8>> {
    let once = |s: &str| serde_json::to_string(s).unwrap().trim_matches('"').to_string();
    let ascii = |s: &str, upper: bool| -> String {
        s.chars()
            .map(|c| match c {
                c if c.is_ascii() => c.to_string(),
                c => {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .map(|u| if upper { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") })
                        .collect()
                }
            })
            .collect()
    };
    let mut out = vec![raw.to_string(), once(raw), once(&once(raw)), ascii(raw, false), ascii(raw, true)];
    out.push(ascii(&once(raw), false));
    out.sort();
    out.dedup();
    out.into_iter().map(String::into_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The index's serial as index.txt and as OpenVPN write it.
fn serials(index: &Path) -> Vec<String> {
    let text = fs::read_to_string(index).unwrap();
    let hex = text.lines().next().unwrap().split('\t').nth(3).unwrap().to_string();
    let pairs: Vec<String> =
        hex.as_bytes().chunks(2).map(|c| String::from_utf8(c.to_vec()).unwrap().to_lowercase()).collect();
    vec![hex.clone(), pairs.join(":")]
}

fn session_id(cn: &str, ip: &str, port: &str, t: i64) -> String {
    let ns = uuid::Uuid::from_u128(0x6f70656e_7670_4e74_a56c_656d65747279);
    let port = if ip.contains(':') { "" } else { port };
    uuid::Uuid::new_v5(&ns, format!("{cn}\n{ip}\n{port}\n{t}").as_bytes()).to_string()
}

fn by_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[test]
#[ignore = "needs the PyPI packages tests/setup.sh installs (the OTLP receiver): make test runs it"]
fn personal_fields_never_leave_in_clear_in_either_format() {
    let work = std::env::temp_dir().join(format!("ovt-privacy-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let index = pki(&work);
    let status = status_file(&work);
    let key = [0x5au8; 32];
    let conn = "openvpn-env-connect.txt";
    let disc = "openvpn-env-disconnect.txt";

    let json_rx = Receiver::start_in(&work, &["--keep-bodies"]);
    let otlp_rx = Receiver::start_in(&work, &["--keep-bodies", "--otlp"]);
    let mut all_events = Vec::new();
    let mut per_site = Vec::new();
    for (name, rx, format) in [("json", &json_rx, "json"), ("otlp", &otlp_rx, "otlp")] {
        let site = private_site(name, rx, format, &key, &status, &index);
        first_session(&site, connect(), conn);
        second_session(&site);
        once(&site);
        // A restart in the middle of the session: the disconnect goes out
        // from a new agent process.
        first_session(&site, disconnect(), disc);
        once(&site);
        let events = rx.events();
        per_site.push(events.clone());
        all_events.extend(events);
        drop(site);
    }
    for t in ["SESSION_CONNECTED", "SESSION_DISCONNECTED", "SESSION_UPDATE", "SESSION_SNAPSHOT", "CERT_ISSUED"] {
        for events in &per_site {
            let types: Vec<&Value> = events.iter().map(|e| &e["type"]).collect();
            assert!(!by_type(events, t).is_empty(), "no {t} arrived: {types:?}");
        }
    }
    for events in &per_site {
        assert!(!by_type(events, "TELEMETRY_EVENTS_DROPPED").is_empty(), "no drop report arrived");
    }

    // No raw value of a pseudonymized or dropped field, in any form.
    let raw_id = session_id(NAME, IP6, PORT, SINCE);
    let mut raw: Vec<String> =
        [NAME, NAME2, IP6, MAPPED, "198.51.100.77", VIP, VIP6, USER, PLATFORM, VERSION, CERT_CN, &raw_id]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // The fixtures' certificate serial and digest (cert_serial, cert_sha256).
    for (k, v) in env_file(conn) {
        if k == "tls_serial_hex_0" || k == "tls_digest_sha256_0" {
            raw.push(v);
        }
    }
    raw.extend(serials(&index));
    // The subject as index.txt writes it: the name's escaped bytes.
    let subject = fs::read_to_string(&index).unwrap().lines().next().unwrap().split('\t').nth(5).unwrap().to_string();
    raw.push(subject.trim_start_matches("/CN=").to_string());
    // Ports are dropped: as a JSON string or an OTLP intValue, never.
    let quoted: Vec<String> = [PORT, PORT2].iter().map(|p| format!("\"{p}\"")).collect();
    let mut checked = 0;
    for rx in [&json_rx, &otlp_rx] {
        let bodies = fs::read(rx.db.join("bodies")).unwrap();
        let stored = fs::read(rx.db.join("events.ndjson")).unwrap();
        assert!(bodies.len() > 1000, "the receiver kept the bodies");
        for hay in [&bodies, &stored] {
            for r in &raw {
                for f in forms(r) {
                    assert!(!contains(hay, &f), "{:?} (raw {r:?}) reached the receiver", String::from_utf8_lossy(&f));
                    checked += 1;
                }
            }
            for q in &quoted {
                for f in forms(q) {
                    assert!(!contains(hay, &f), "port {q} reached the receiver");
                }
            }
        }
    }
    assert!(checked > 100);

    // What was pseudonymized is there as a pseudonym; what was dropped is
    // absent; the rest as it was.
    for events in &per_site {
        let connects = by_type(events, "SESSION_CONNECTED");
        for e in &connects {
            let cn = e["common_name"].as_str().unwrap();
            assert!(cn.starts_with("pn_") && cn.len() == 19, "{e}");
            for gone in ["real_port", "client_platform", "client_version"] {
                assert!(e.get(gone).is_none(), "{gone} in {e}");
            }
            assert_eq!(e["instance"], "server-v2", "fields that are not personal stay");
        }
    }

    // session_id joins connect, update, snapshot and disconnect (across
    // the restart), is not the raw id, and is a UUID.
    let json = &per_site[0];
    let first = |kind: &str| by_type(json, kind).into_iter().find(|e| e["username"].is_string()).unwrap().clone();
    let c = first("SESSION_CONNECTED");
    let d = first("SESSION_DISCONNECTED");
    let u = first("SESSION_UPDATE");
    let sid = c["session_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(sid).is_ok() && sid != raw_id);
    assert_eq!(d["session_id"], sid);
    assert_eq!(u["session_id"], sid);
    let snap_ids: HashSet<&str> = by_type(json, "SESSION_SNAPSHOT")
        .iter()
        .flat_map(|s| s["sessions"].as_array().unwrap().iter().map(|x| x["session_id"].as_str().unwrap()))
        .collect();
    assert!(snap_ids.contains(sid), "{snap_ids:?} {sid}");
    // The same person, the same pseudonym: hook, status file, restart.
    assert_eq!(c["common_name"], d["common_name"]);
    assert_eq!(c["common_name"], u["common_name"]);
    assert_eq!(c["username"], u["username"]);
    assert_eq!(c["real_ip"], u["real_ip"]);

    // Two agents sharing the key agree; another key gives others.
    let otlp_connect =
        by_type(&per_site[1], "SESSION_CONNECTED").into_iter().find(|e| e["username"].is_string()).unwrap().clone();
    assert_eq!(otlp_connect["common_name"], c["common_name"]);
    assert_eq!(otlp_connect["session_id"], c["session_id"]);
    let other_rx = Receiver::start_in(&work, &[]);
    let other = private_site("otherkey", &other_rx, "json", &[0xa5u8; 32], &status, &index);
    first_session(&other, connect(), conn);
    once(&other);
    let oc = by_type(&other_rx.events(), "SESSION_CONNECTED")[0].clone();
    assert_ne!(oc["common_name"], c["common_name"]);
    assert_ne!(oc["session_id"], c["session_id"]);
    drop(other);
    drop((json_rx, otlp_rx, other_rx));
    fs::remove_dir_all(&work).unwrap();
}

/// Without the key a pseudonymizing agent does not start (nothing goes out
/// in clear instead), and says which setting and file.
#[test]
fn a_missing_key_stops_the_agent_before_anything_is_sent() {
    let rx_dir = std::env::temp_dir().join(format!("ovt-privacy-nokey-{}", std::process::id()));
    let _ = fs::remove_dir_all(&rx_dir);
    fs::create_dir_all(&rx_dir).unwrap();
    let rx = Receiver::start_in(&rx_dir, &[]);
    let site = Site::new("privacy-nokey");
    let key_file = site.path("missing.key");
    site.config(&format!(
        "TELEMETRY_URL={}\nPSEUDONYMIZE=common_name\nPSEUDONYM_KEY_FILE={}\n",
        rx.url("http"),
        key_file.display()
    ));
    site.hook_events(2);
    let out = site.once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("PSEUDONYM_KEY_FILE={}", key_file.display())), "{err}");
    assert_eq!(rx.stats()["requests"], 0, "nothing was sent");
    // status says what would leave how.
    let status =
        Command::new(site::BIN).arg("status").env("OPENVPN_TELEMETRY_CONFIG", site.config_path()).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("personal fields        pseudonymized: common_name, subject, session_id;"), "{text}");
    drop(rx);
    fs::remove_dir_all(&rx_dir).unwrap();
}
