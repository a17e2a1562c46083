//! Rounds of the sources against real files in a temporary spool: status
//! files written the way OpenVPN writes them, and an Easy-RSA PKI made by
//! Debian's `easyrsa` when it is installed.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::testkit::Scratch;

/// The one Easy-RSA runner of the test kit (tests/support/easyrsa.rs).
#[path = "../../tests/support/easyrsa.rs"]
mod easyrsa;

struct Site {
    root: PathBuf,
    scratch: Scratch,
}

impl Site {
    fn new(name: &str) -> Site {
        let scratch = Scratch::new("sources", name);
        Site { root: scratch.root.clone(), scratch }
    }
    fn settings(&self, extra: &str) -> SourceSettings {
        SourceSettings::new(&Settings::from_text(&self.scratch.config_path(), &self.scratch.env_text(extra)).unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    /// Events written so far, drained from the queue.
    fn take(&self) -> Vec<Value> {
        let q = self.root.join("spool").join(crate::spool::AGENT_QUEUE);
        let text = fs::read_to_string(&q).unwrap_or_default();
        let _ = fs::remove_file(&q);
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn status_v2(time: i64, rows: &[(&str, &str, u64, u64)]) -> String {
    let mut s = format!(
        "TITLE,OpenVPN 2.6.14\nTIME,x,{time}\nHEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,\
Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,\
Data Channel Cipher\n"
    );
    for (cn, real, rx, tx) in rows {
        s.push_str(&format!(
            "CLIENT_LIST,{cn},{real},10.8.0.6,,{rx},{tx},2026-11-27 07:00:00,1795762800,UNDEF,0,0,AES-256-GCM\n"
        ));
    }
    s.push_str("HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n");
    s.push_str("GLOBAL_STATS,dco_enabled,0\nEND\n");
    s
}

#[test]
fn updates_snapshots_and_deltas_across_restarts() {
    let site = Site::new("status");
    let conf = site.path("server.conf");
    fs::write(&conf, "port 1194\nstatus status.log 10\n").unwrap();
    let settings = site.settings(&format!("OPENVPN_SERVER_CONF={}\n", conf.display()));
    let status = site.path("status.log");
    fs::write(&status, status_v2(100, &[("alice", "198.51.100.7:5555", 1000, 2000), ("bob", "2001:db8::7", 5, 6)]))
        .unwrap();

    assert!(Sources::new(&settings, None).status_round(true, true, 200).unwrap());
    let evs = site.take();
    let ups = of_type(&evs, "SESSION_UPDATE");
    assert_eq!(ups.len(), 2);
    let alice = ups.iter().find(|e| e["common_name"] == "alice").unwrap();
    assert_eq!(alice["session_id"], event::session_id("alice", "198.51.100.7", "5555", 1_795_762_800));
    assert_eq!((alice["bytes_received"].as_u64(), alice["bytes_received_delta"].as_u64()), (Some(1000), Some(1000)));
    assert_eq!(alice["instance"], "server");
    assert_eq!(alice["connected_since"], "2026-11-27T07:00:00Z");
    assert!(alice["seq"].as_u64().unwrap() > 0 && alice.get("username").is_none());
    let snap = of_type(&evs, "SESSION_SNAPSHOT");
    assert_eq!((snap.len(), snap[0]["session_count"].as_u64()), (1, Some(2)));

    // A new agent (restart) continues from sessions.state: deltas, and a
    // counter going backwards (DCO) gives 0, not a negative number.
    fs::write(&status, status_v2(160, &[("alice", "198.51.100.7:5555", 1500, 100)])).unwrap();
    assert!(Sources::new(&settings, None).status_round(false, true, 260).unwrap());
    let evs = site.take();
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0]["bytes_received_delta"].as_u64(), evs[0]["bytes_sent_delta"].as_u64()), (Some(500), Some(0)));
    fs::write(&status, status_v2(220, &[("alice", "198.51.100.7:5555", 1600, 2300)])).unwrap();
    let mut sources = Sources::new(&settings, None);
    assert!(sources.status_round(false, true, 320).unwrap());
    let evs = site.take();
    assert_eq!((evs[0]["bytes_received_delta"].as_u64(), evs[0]["bytes_sent_delta"].as_u64()), (Some(100), Some(300)));
    // bob left: his baseline is gone. Not rewritten since: no update.
    let book: sessions::SessionBook = load_state(&site.path("spool").join(SESSIONS_STATE)).unwrap();
    assert_eq!(book.sessions.len(), 1);
    assert!(sources.status_round(false, true, 380).unwrap());
    assert!(site.take().is_empty());

    // Mid-rewrite: skipped, nothing written, baselines untouched.
    let full = status_v2(280, &[("alice", "198.51.100.7:5555", 9999, 9999)]);
    fs::write(&status, &full[..full.len() - 4]).unwrap();
    assert!(!sources.status_round(true, true, 440).unwrap());
    assert!(site.take().is_empty());
    fs::remove_file(&status).unwrap();
    assert!(!sources.status_round(true, true, 440).unwrap());

    // A file OpenVPN stopped rewriting long ago gives updates (deltas 0)
    // but no snapshot: it cannot say who is connected now.
    fs::write(&status, status_v2(500, &[("alice", "198.51.100.7:5555", 1600, 2300)])).unwrap();
    assert!(!sources.status_round(true, true, 500 + STALE_STATUS_SECONDS + 1).unwrap());
    let evs = site.take();
    assert_eq!(evs.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(), ["SESSION_UPDATE"]);
}

/// A crafted common name whose row reads two ways and no route settles:
/// that row is left out, every other client is updated and in the
/// snapshot, the count is kept for `status`, and the problem is reported
/// once for as long as it lasts (not again per rewrite), then cleared.
#[test]
fn an_unreadable_row_costs_that_row_only() {
    let site = Site::new("rows");
    let status = site.path("status.log");
    let settings = site.settings(&format!("STATUS_LOG={}\n", status.display()));
    let forged = "alice,198.51.100.7:5555,,,1,2,2026-11-27 07:00:00,1795762800";
    let rows = [
        ("alice", "198.51.100.7:5555", 10, 20),
        (forged, "198.51.100.9:7777", 30, 40),
        ("bob", "198.51.100.8:6", 5, 6),
    ];
    let mut sources = Sources::new(&settings, None);
    let key = status.display().to_string();
    for t in [100, 160] {
        fs::write(&status, status_v2(t, &rows)).unwrap();
        assert!(sources.status_round(true, true, t + 10).unwrap());
        let evs = site.take();
        let ups = of_type(&evs, "SESSION_UPDATE");
        let names: Vec<&str> = ups.iter().map(|u| u["common_name"].as_str().unwrap()).collect();
        assert_eq!(names, ["alice", "bob"], "{ups:?}");
        // alice's own numbers, never the forged 1 and 2.
        assert_eq!((ups[0]["bytes_received"].as_u64(), ups[0]["bytes_sent"].as_u64()), (Some(10), Some(20)));
        assert_eq!(of_type(&evs, "SESSION_SNAPSHOT")[0]["session_count"], 2);
        let book: sessions::SessionBook = load_state(&site.path("spool").join(SESSIONS_STATE)).unwrap();
        assert_eq!(book.unreadable.get(&key), Some(&1));
        let msg = sources.noise.0.get(&format!("rows {key}")).cloned().unwrap();
        assert!(msg.contains("1 unreadable row(s) left out (line 5: client row that reads more than one way"), "{msg}");
    }
    let report = unreadable_report(&site.path("spool"), &crate::fsutil::Owners::me());
    assert_eq!(report["status_files"][&key], 1);
    assert_eq!(unreadable_text(&report), "1 in status files, 0 in index.txt (left out; see the agent's log)");
    fs::write(&status, status_v2(220, &[rows[0], rows[2]])).unwrap();
    assert!(sources.status_round(true, true, 230).unwrap());
    assert!(!sources.noise.0.contains_key(&format!("rows {key}")));
    assert_eq!(
        unreadable_report(&site.path("spool"), &crate::fsutil::Owners::me())["status_files"],
        serde_json::json!({})
    );
}

/// While a row is unreadable its session may still be connected: its
/// baseline is kept, so when the row reads again (here: its route is back
/// and settles it) the delta is its growth, not its whole total again.
#[test]
fn a_row_unreadable_for_a_while_is_not_counted_twice() {
    let site = Site::new("rows-again");
    let status = site.path("status.log");
    let settings = site.settings(&format!("STATUS_LOG={}\n", status.display()));
    let forged = "alice,198.51.100.7:5555,,,1,2,2026-11-27 07:00:00,1795762800";
    let file = |t: i64, rx: u64, routed: bool| {
        let rows = [("alice", "198.51.100.7:5555", 10, 20), (forged, "198.51.100.9:7777", rx, rx)];
        let route = format!("ROUTING_TABLE,10.8.0.6,{forged},198.51.100.9:7777,2026-11-27 07:00:00,{t}\n");
        let text = status_v2(t, &rows);
        if routed { text.replace("GLOBAL_STATS", &format!("{route}GLOBAL_STATS")) } else { text }
    };
    let mut sources = Sources::new(&settings, None);
    let forger = |evs: &[Value]| {
        of_type(evs, "SESSION_UPDATE")
            .into_iter()
            .find(|u| u["common_name"] == forged)
            .map(|u| u["bytes_received_delta"].clone())
    };
    for (t, rx, routed, delta) in [(100, 30, true, Some(30)), (160, 40, false, None), (220, 45, true, Some(15))] {
        fs::write(&status, file(t, rx, routed)).unwrap();
        assert!(sources.status_round(false, true, t + 5).unwrap());
        assert_eq!(forger(&site.take()), delta.map(Value::from), "t={t}");
    }
}

/// Unreadable index.txt lines cost those lines; the count is for `status`.
#[test]
fn unreadable_index_lines_are_counted() {
    let site = Site::new("index-rows");
    let index = site.path("index.txt");
    fs::write(
        &index,
        "V\t361127073015Z\t\t0A\tunknown\t/CN=a\r\nX\tjunk\r\nV\t361127073015Z\t\t0B\tunknown\t/CN=b\r\n",
    )
    .unwrap();
    let settings = site.settings(&format!("EASYRSA_INDEX={}\n", index.display()));
    let mut sources = Sources::new(&settings, None);
    sources.certs_round(1_000).unwrap();
    let names: Vec<String> = site.take().iter().map(|e| e["common_name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(unreadable_report(&site.path("spool"), &crate::fsutil::Owners::me())["index_lines"], 1);
}

#[test]
fn easyrsa_issue_revoke_expire_and_restart() {
    // A test that cannot run fails; `make test` installs what it needs.
    assert!(
        Path::new(easyrsa::EASYRSA).exists(),
        "cannot run this test: {} is missing (apt-get install easy-rsa)",
        easyrsa::EASYRSA
    );
    let site = Site::new("certs");
    let dir = &site.root;
    easyrsa::run(dir, &["init-pki"], &[]);
    easyrsa::run(dir, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "test-ca")]);
    easyrsa::run(dir, &["build-client-full", "alice", "nopass"], &[]);
    easyrsa::run(dir, &["build-client-full", "bob", "nopass"], &[("EASYRSA_CERT_EXPIRE", "1")]);
    let index = dir.join("pki/index.txt");
    let settings = site.settings(&format!("EASYRSA_INDEX={}\n", index.display()));
    let now = unix_now();

    // First run: an inventory of both certificates.
    Sources::new(&settings, None).certs_round(now).unwrap();
    let evs = site.take();
    let issued = of_type(&evs, "CERT_ISSUED");
    assert_eq!(evs.len(), 2, "{evs:?}");
    let mut names: Vec<_> = issued.iter().map(|e| e["common_name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    assert!(issued.iter().all(|e| e["inventory"] == true && e["status"] == "valid"));
    let bob = issued.iter().find(|e| e["common_name"] == "bob").unwrap();
    let bob_expiry = rfc3339_secs(bob["expires_at"].as_str().unwrap());
    assert!(bob_expiry > now && bob_expiry <= now + 2 * 86_400);

    // Restart: nothing repeated. Changes made while "down" are seen once.
    let mut sources = Sources::new(&settings, None);
    sources.certs_round(now).unwrap();
    assert!(site.take().is_empty());
    easyrsa::run(dir, &["revoke", "alice", "keyCompromise"], &[]);
    easyrsa::run(dir, &["build-client-full", "carol", "nopass"], &[]);
    let mut sources = Sources::new(&settings, None);
    sources.certs_round(now).unwrap();
    let evs = site.take();
    let kinds: Vec<_> = evs.iter().map(|e| (e["type"].as_str().unwrap(), e["common_name"].as_str().unwrap())).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&("CERT_REVOKED", "alice")) && kinds.contains(&("CERT_ISSUED", "carol")));
    let revoked = of_type(&evs, "CERT_REVOKED")[0];
    assert_eq!(revoked["reason"], "keyCompromise");
    assert_eq!(revoked["status"], "revoked");
    assert!(rfc3339_secs(revoked["revoked_at"].as_str().unwrap()) >= now - 5);
    assert!(of_type(&evs, "CERT_ISSUED")[0].get("inventory").is_none());
    sources.certs_round(now).unwrap();
    assert!(site.take().is_empty());

    // Time passes bob's expiry: CERT_EXPIRED although the file is as it
    // was; once, also across a restart.
    sources.certs_round(bob_expiry + 1).unwrap();
    let evs = site.take();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0]["type"].as_str(), evs[0]["common_name"].as_str()), (Some("CERT_EXPIRED"), Some("bob")));
    sources.certs_round(bob_expiry + 20).unwrap();
    Sources::new(&settings, None).certs_round(bob_expiry + 30).unwrap();
    assert!(site.take().is_empty());
    // The revoked alice never "expires" as far as events go.
    Sources::new(&settings, None).certs_round(now + 20 * 365 * 86_400).unwrap();
    let evs = site.take();
    assert_eq!(of_type(&evs, "CERT_EXPIRED").len(), 1);
    assert_eq!(evs[0]["common_name"], "carol");
}

fn rfc3339_secs(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
}

/// `run` does a snapshot and an update at start, then stops when told.
#[test]
fn run_loop_starts_with_a_round_and_stops() {
    let site = Site::new("loop");
    let status = site.path("status.log");
    fs::write(&status, status_v2(unix_now(), &[("alice", "198.51.100.7:5555", 1, 2)])).unwrap();
    let settings = site.settings(&format!("STATUS_LOG={}\n", status.display()));
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            run(
                &settings,
                &stop,
                &crate::health::Board::new(
                    &crate::config::HealthSection::default(),
                    true,
                    crate::privacy::Privacy::off(),
                ),
            )
        });
        let give_up = Instant::now() + Duration::from_secs(60);
        // Read without draining: the runner may be appending right now.
        while seen.len() < 2 && Instant::now() < give_up {
            let text = fs::read_to_string(site.path("spool").join(crate::spool::AGENT_QUEUE)).unwrap_or_default();
            seen = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
    });
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&"SESSION_SNAPSHOT") && kinds.contains(&"SESSION_UPDATE"));
}

/// A status file taken out of the settings is forgotten from
/// `sessions.state` at the next round, so `status --check` does not say
/// for ever that it is not rewritten.
#[test]
fn a_status_file_no_longer_configured_is_forgotten() {
    let site = Site::new("status-removed");
    let (old, new) = (site.path("old.log"), site.path("new.log"));
    for p in [&old, &new] {
        fs::write(p, status_v2(100, &[("alice", "198.51.100.7:5555", 1, 2)])).unwrap();
    }
    let book = || {
        let v: Value =
            serde_json::from_slice(&fs::read(site.root.join("spool").join(SESSIONS_STATE)).unwrap()).unwrap();
        v["last_update"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
    };
    let settings = site.settings(&format!("STATUS_LOG={}\n", old.display()));
    assert!(Sources::new(&settings, None).status_round(false, true, 200).unwrap());
    assert_eq!(book(), vec![old.display().to_string()]);
    let settings = site.settings(&format!("STATUS_LOG={}\n", new.display()));
    assert!(Sources::new(&settings, None).status_round(false, true, 200).unwrap());
    assert_eq!(book(), vec![new.display().to_string()]);
}
