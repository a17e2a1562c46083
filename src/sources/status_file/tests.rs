//! The parser against every status file in tests/fixtures: files a real
//! OpenVPN 2.1–2.7 wrote, with the environment it gave the connect hook
//! in the same run, and hand-made files of forms no server here writes.
//!
//! They live here, not in tests/, because the crate is a binary crate:
//! an integration test reaches the parser only through `agent --once`
//! (tests/sources.rs runs the same real files that way), which shows
//! neither a whole [`Status`] nor which [`StatusError`] a file gave.

use std::collections::HashMap;

use time::PrimitiveDateTime;
use time::macros::format_description;

use super::*;
use crate::event;

/// A file in tests/fixtures (see tests/fixtures/README.md).
fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (see tests/fixtures/README.md)"))
}

/// An `event::Env` from a `KEY=value` dump of a hook's environment.
struct FileEnv(HashMap<String, std::ffi::OsString>);
impl event::Env for FileEnv {
    fn get(&self, key: &str) -> Option<std::ffi::OsString> {
        self.0.get(key).cloned()
    }
}
fn env_of(text: &str) -> FileEnv {
    FileEnv(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
}
fn field(ev: &event::Event, k: &str) -> Option<String> {
    ev.fields.iter().find(|(f, _)| *f == k).and_then(|(_, v)| v.as_str()).map(String::from)
}

/// Files a real OpenVPN 2.6.14 wrote (tests/e2e/fixtures.sh), in UTC.
const FIX_V1: &[u8] = include_bytes!("../../../tests/fixtures/status-v1.log");
const FIX_V2: &[u8] = include_bytes!("../../../tests/fixtures/status-v2.log");
const FIX_V3: &[u8] = include_bytes!("../../../tests/fixtures/status-v3.log");
const FIX_MIDWRITE: &[u8] = include_bytes!("../../../tests/fixtures/status-v2-midwrite.log");
const FIX_CONNECT_ENV: &str = include_str!("../../../tests/fixtures/openvpn-env-connect.txt");

#[test]
fn real_openvpn_files() {
    for (bytes, version, since) in [(FIX_V1, 1, "2026-11-27 07:35:37"), (FIX_V2, 2, ""), (FIX_V3, 3, "")] {
        let s = parse(bytes, None).unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert_eq!(s.version, version);
        let mut names: Vec<&str> = s.clients.iter().map(|c| c.common_name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["ovt-client-01", "ovt-client-02", "ovt-client-03"], "v{version}");
        for c in &s.clients {
            assert_eq!(c.real_ip, "192.0.2.2");
            assert!(c.real_port.parse::<u16>().is_ok() && c.virtual_ip.starts_with("10.99.0."), "{c:?}");
            assert!(c.bytes_received > 2000 && c.bytes_sent > 2000 && c.username.is_none(), "{c:?}");
        }
        if version == 1 {
            let t =
                PrimitiveDateTime::parse(since, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"));
            assert!(s.clients.iter().all(|c| c.connected_since == t.unwrap().assume_utc().unix_timestamp()));
        } else {
            assert_eq!(s.dco, Some(false));
        }
    }
    // v1 with a mtime an hour after its Updated line: local time UTC+1.
    let updated = parse(FIX_V1, None).unwrap().written_at.unwrap();
    let shifted = parse(FIX_V1, Some(updated - 3600)).unwrap();
    assert_eq!(shifted.written_at, Some(updated - 3600));
    // A copied file (mtime days later) falls back to UTC.
    assert_eq!(parse(FIX_V1, Some(updated + 5 * 86_400)).unwrap().written_at, Some(updated));

    assert_eq!(parse(FIX_MIDWRITE, None), Err(StatusError::Incomplete));
    // The harder mid-rewrite: a shorter new file over the old one, so
    // the old END survives: new head (client-03 gone) + old tail.
    let text = std::str::from_utf8(FIX_V2).unwrap();
    let head: String =
        text.lines().take(5).filter(|l| !l.contains("ovt-client-03")).map(|l| format!("{l}\n")).collect();
    let mixed = format!("{head}{}", &text[head.len()..]);
    assert!(parse(mixed.as_bytes(), None).is_err(), "{mixed}");
}

/// The status file gives the session the same `session_id` as the
/// connect hook computed from OpenVPN's real environment.
#[test]
fn session_id_matches_the_connect_hook() {
    let connect = event::from_openvpn_env("SESSION_CONNECTED", &env_of(FIX_CONNECT_ENV));
    let s = parse(FIX_V2, None).unwrap();
    let c = s.clients.iter().find(|c| Some(&c.common_name) == field(&connect, "common_name").as_ref()).unwrap();
    assert_eq!(Some(c.session_id()), field(&connect, "session_id"));
    assert_eq!(Some(c.virtual_ip.clone()), field(&connect, "virtual_ip"));
    let others = s.clients.iter().filter(|o| o.session_id() == c.session_id()).count();
    assert_eq!(others, 1);
}

/// Every file a real OpenVPN 2.6.14 wrote in tests/fixtures/real (UDP
/// dual-stack, TCP, IPv6 clients, --duplicate-cn, an iroute,
/// --username-as-common-name, verify-client-cert none, dev tap; common
/// names with commas, UTF-8, '/', '+', and one imitating the columns
/// after it): every client row is read, and each connect hook's
/// environment recorded in the same run finds exactly its own row, with
/// the same session_id, name, address, port and connect time.
#[test]
fn real_files_match_every_connect_hook() {
    let runs = [
        ("udp", "status-v1.log", 7),
        ("udp2", "status-v2.log", 7),
        ("udp3", "status-v3.log", 7),
        ("tcp", "status-v2.log", 2),
        ("undef", "status-v2.log", 1),
        ("tap1", "status-v1.log", 2),
        ("tap2", "status-v2.log", 2),
        // OpenVPN 2.7.0 built from its source (make-real.sh, OPENVPN27).
        ("ovpn27-udp1", "status-v1.log", 4),
        ("ovpn27-udp2", "status-v2.log", 4),
        ("ovpn27-udp3", "status-v3.log", 4),
        ("ovpn27-tcp", "status-v2.log", 2),
    ];
    let mut checked = 0;
    for (run, file, clients) in runs {
        let bytes = fixture(&format!("real/{run}/{file}"));
        let s = parse(&bytes, None).unwrap_or_else(|e| panic!("{run}: {e}"));
        assert_eq!((s.clients.len(), s.unreadable.len()), (clients, 0), "{run}: {s:#?}");
        let crlf = String::from_utf8(bytes.clone()).unwrap().replace('\n', "\r\n");
        assert_eq!(parse(crlf.as_bytes(), None), Ok(s.clone()), "{run}: CRLF");
        let dir = format!("{}/tests/fixtures/real/{run}/env", env!("CARGO_MANIFEST_DIR"));
        let envs: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")).collect();
        assert_eq!(envs.len(), clients, "{run}: one connect environment per client");
        for entry in envs {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let connect = event::from_openvpn_env("SESSION_CONNECTED", &env_of(&text));
            let id = field(&connect, "session_id").unwrap();
            let rows: Vec<&Client> = s.clients.iter().filter(|c| c.session_id() == id).collect();
            assert_eq!(rows.len(), 1, "{run}: {id} for {:?} in {:#?}", field(&connect, "common_name"), s.clients);
            let c = rows[0];
            let hook_cn = field(&connect, "common_name").unwrap();
            // verify-client-cert none: no common_name for the hook, UNDEF in the file.
            assert_eq!(c.common_name, if hook_cn.is_empty() { "UNDEF".into() } else { hook_cn }, "{run}");
            assert_eq!(Some(&c.real_ip), field(&connect, "real_ip").as_ref(), "{run}");
            // 2.7 prints the port of IPv6 clients too.
            if !c.real_ip.contains(':') || run.starts_with("ovpn27") {
                assert_eq!(Some(&c.real_port), field(&connect, "real_port").as_ref(), "{run}");
            }
            if run.starts_with("ovpn27") {
                assert!(c.real_address.starts_with("udp6:") || c.real_address.starts_with("tcp6-server:"), "{c:?}");
            }
            assert_eq!(Some(event::unix_to_rfc3339(c.connected_since).unwrap()), field(&connect, "connected_since"));
            if !(s.version == 1 && run.starts_with("tap")) {
                assert_eq!(Some(&c.virtual_ip), field(&connect, "virtual_ip").as_ref(), "{run}: {c:?}");
            } else {
                // TAP in v1: the routing table has MAC addresses only.
                assert_eq!((c.virtual_ip.as_str(), c.virtual_ipv6.as_deref()), ("", None), "{run}");
            }
            if run.starts_with("udp") || run.starts_with("ovpn27-udp") {
                assert_eq!(c.virtual_ipv6, field(&connect, "virtual_ipv6"), "{run}: {c:?}");
            }
            assert_eq!(c.username, field(&connect, "username"), "{run}");
            assert!(c.bytes_received > 0 && c.bytes_sent > 0, "{c:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 42);
}

/// The 2.7 forms written by hand after mroute_addr_print_ex: protocol
/// prefix, `[v6]:port`, v4-mapped peers as IPv4 behind `udp6:`.
#[test]
fn openvpn_27_real_addresses() {
    let v2 = parse(&fixture("handmade/status-27-v2.log"), None).unwrap();
    let got: Vec<(&str, &str, &str, &str)> = v2
        .clients
        .iter()
        .map(|c| (c.common_name.as_str(), c.real_ip.as_str(), c.real_port.as_str(), c.virtual_ip.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("alice", "203.0.113.5", "52137", "10.8.0.2"),
            ("bob", "2001:db8::abcd", "51820", "10.8.0.3"),
            ("Smith, John", "192.0.2.7", "40000", "10.8.0.4"),
            ("carol", "127.0.0.1", "53188", "10.8.0.5"),
            ("dave", "::1", "53190", "10.8.0.6"),
        ]
    );
    assert_eq!(v2.clients[3].username.as_deref(), Some("carol"));
    // The id the hook computes from trusted_ip(6)/trusted_port/time_unix.
    assert_eq!(v2.clients[0].session_id(), event::session_id("alice", "203.0.113.5", "52137", 1_796_155_200));
    assert_eq!(v2.clients[1].session_id(), event::session_id("bob", "2001:db8::abcd", "51820", 1_796_155_260));
    let v3 = parse(&fixture("handmade/status-27-v3.log"), None).unwrap();
    assert_eq!((v3.version, &v3.clients), (3, &v2.clients));
    let v1 = parse(&fixture("handmade/status-27-v1.log"), None).unwrap();
    assert_eq!(v1.clients.len(), 4);
    for (a, b) in v1.clients.iter().zip(&v2.clients) {
        assert_eq!((a.session_id(), &a.virtual_ip), (b.session_id(), &b.virtual_ip));
    }
    assert_eq!(v1.clients[0].virtual_ipv6.as_deref(), Some("fd00::1000"));
}

#[test]
fn older_versions_duplicates_and_tap_without_vid() {
    // 2.3: no IPv6 column, ctime dates, one row printed twice.
    let s = parse(&fixture("handmade/status-23-v2-duplicate.log"), None).unwrap();
    assert_eq!(s.clients.iter().map(|c| c.common_name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(s.clients[1].username.as_deref(), Some("bob"));
    // 2.1: no Username column.
    let s = parse(&fixture("handmade/status-21-v2.log"), None).unwrap();
    assert_eq!((s.clients.len(), s.clients[0].connected_since), (1, 1_796_155_200));
    // 2.3 v1 TAP: a MAC without @vid is no IPv6 address.
    let s = parse(&fixture("handmade/status-23-v1-tap.log"), None).unwrap();
    assert_eq!((s.clients[0].virtual_ip.as_str(), s.clients[0].virtual_ipv6.as_deref()), ("", None));
    assert_eq!(s.clients[0].connected_since, 1_796_155_200);
    for v in 1..=3 {
        let crlf = parse(&fixture(&format!("handmade/status-v{v}-crlf.log")), None).unwrap();
        let lf = parse(
            &fixture(["real/udp/status-v1.log", "real/udp2/status-v2.log", "real/udp3/status-v3.log"][v - 1]),
            None,
        );
        assert_eq!(Ok(crlf), lf, "v{v}");
    }
}

/// What is not a complete server status file gives nothing.
#[test]
fn not_server_status_files() {
    for f in ["real/tcp/client-status.log", "real/p2p/static-key-status.log"] {
        assert!(matches!(parse(&fixture(f), None), Err(StatusError::Malformed { line: 1, .. })), "{f}");
    }
    assert_eq!(parse(b"\r\n\r\n", None), Err(StatusError::Incomplete));
    let v2 = fixture("real/udp2/status-v2.log");
    for cut in [10, v2.len() / 3, v2.len() / 2, v2.len() - 5] {
        assert!(parse(&v2[..cut], None).is_err(), "{cut}");
    }
}
