//! The privacy transform on every kind of event line, the pseudonym
//! format, the address cut and the settings' rules.

use super::*;
use serde_json::{Map, json};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn section(pseudo: &str, drop: &str, prefix: &str) -> PrivacySection {
    PrivacySection {
        pseudonymize: FieldSet::parse(pseudo).unwrap(),
        drop_fields: FieldSet::parse(drop).unwrap(),
        real_ip_prefix: Prefix::parse(prefix).unwrap(),
        key_file: PathBuf::from(DEFAULT_KEY_FILE),
    }
}

fn apply(p: &Privacy, v: Value) -> Value {
    let line = serde_json::to_vec(&v).unwrap();
    serde_json::from_slice(&p.line(&line).unwrap()).unwrap()
}

fn hook_event() -> Value {
    json!({
        "event_id": "4f0a6a52-0f36-4d1f-9d55-2c0b7f7f4e55", "seq": 7, "type": "SESSION_CONNECTED",
        "common_name": "Jürgen, \"the\" admin", "real_ip": "2001:db8:1:2::5", "real_port": "5555",
        "virtual_ip": "10.8.0.6", "session_id": crate::event::session_id("Jürgen", "2001:db8:1:2::5", "5555", 100),
        "username": "jürgen@example.org", "client_platform": "linux", "instance": "server",
        "event_time_vpn": "2026-02-13T12:10:05Z"
    })
}

#[test]
fn pseudonyms_are_short_fixed_keyed_and_per_field() {
    let k = Key::new(KEY);
    let a = k.pseudonym("common_name", "alice");
    assert_eq!(a.len(), PREFIX.len() + DIGITS);
    assert!(a.starts_with("pn_") && a[3..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(a, Key::new(KEY).pseudonym("common_name", "alice"), "same key, same pseudonym");
    assert_ne!(a, Key::new(b"another key, also 32 bytes long!").pseudonym("common_name", "alice"));
    assert_ne!(a, k.pseudonym("common_name", "alicf"));
    assert_ne!(a, k.pseudonym("username", "alice"), "each field has its own pseudonyms");
    // The separator keeps field and value apart.
    assert_ne!(k.pseudonym("a", "bc"), k.pseudonym("ab", "c"));
    // HMAC-SHA256 computed elsewhere (Python's hmac module) over exactly
    // field, 0x1f, value: a server can compute the same pseudonyms.
    let jefe = Key::new(b"Jefe");
    assert_eq!(jefe.pseudonym("what do ya want ", "for nothing?"), "pn_95d3dfef535b9c39");
}

#[test]
fn session_pseudonym_is_a_uuid_v8() {
    let k = Key::new(KEY);
    let s = k.session_pseudonym("331ef6f0-07ea-59af-b9bc-9caf274bb483");
    let u = uuid::Uuid::parse_str(&s).unwrap();
    assert_eq!(u.get_version_num(), 8);
    assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(s, u.hyphenated().to_string());
    assert_eq!(s, k.session_pseudonym("331ef6f0-07ea-59af-b9bc-9caf274bb483"));
}

#[test]
fn prefix_cuts_v4_v6_and_mapped() {
    let p = Prefix::parse("24,48").unwrap().unwrap();
    assert_eq!(p.cut("203.0.113.77"), "203.0.113.0");
    assert_eq!(p.cut("2001:db8:1:2:3:4:5:6"), "2001:db8:1::");
    assert_eq!(p.cut("::ffff:203.0.113.77"), "::ffff:203.0.113.0");
    assert_eq!(p.cut("not an address"), "");
    assert_eq!(p.cut(""), "");
    assert_eq!(p.cut("fe80::1%eth0"), "", "a scoped address is no plain address: not sent");
    let q = Prefix::parse("16, 32").unwrap().unwrap();
    assert_eq!(q.cut("203.0.113.77"), "203.0.0.0");
    assert_eq!(q.cut("2001:db8:1:2::5"), "2001:db8::");
    let all = Prefix::parse("32,128").unwrap().unwrap();
    assert_eq!(all.cut("203.0.113.77"), "203.0.113.77");
    let none = Prefix::parse("0,0").unwrap().unwrap();
    assert_eq!(none.cut("203.0.113.77"), "0.0.0.0");
    assert_eq!(none.cut("2001:db8::1"), "::");
    for bad in ["24", "33,48", "24,129", "x,48", "24,48,1", "-1,48"] {
        assert!(Prefix::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Prefix::parse("").unwrap(), None);
    assert_eq!(p.to_string(), "24,48");
}

#[test]
fn field_sets_parse_known_names_only() {
    let s = FieldSet::parse("real_ip, common_name  username").unwrap();
    assert_eq!(s.names(), vec!["common_name", "username", "real_ip"]);
    assert_eq!(s.to_string(), "common_name,username,real_ip");
    let err = FieldSet::parse("comon_name").unwrap_err();
    assert!(err.contains("\"comon_name\" is not a personal field") && err.contains("common_name"), "{err}");
    assert!(FieldSet::parse("event_id").is_err(), "structural fields are not personal");
    assert!(FieldSet::parse("").unwrap().is_empty());
}

#[test]
fn conflicting_settings_are_named() {
    assert_eq!(section("common_name", "common_name", "").conflict().unwrap().0, "DROP_FIELDS");
    assert_eq!(section("real_ip", "", "24,48").conflict().unwrap().0, "REAL_IP_PREFIX");
    assert_eq!(section("", "real_ip", "24,48").conflict().unwrap().0, "REAL_IP_PREFIX");
    assert!(section("common_name", "real_port", "24,48").conflict().is_none());
}

#[test]
fn nothing_configured_is_the_line_itself() {
    let p = Privacy::off();
    let line = br#"{"b" : 1, "common_name":"alice"}"#;
    assert!(matches!(p.line(line).unwrap(), Cow::Borrowed(l) if l == line));
    assert!(!section("", "", "").needs_key());
    assert_eq!(p.growth(line), 0);
}

#[test]
fn hook_event_pseudonymized_dropped_and_cut() {
    let s = section("common_name,username", "real_port,client_platform", "");
    let p = Privacy::with_key(&s, Key::new(KEY));
    let raw = hook_event();
    let out = apply(&p, raw.clone());
    let k = Key::new(KEY);
    assert_eq!(out["common_name"], k.pseudonym("common_name", raw["common_name"].as_str().unwrap()));
    assert_eq!(out["username"], k.pseudonym("username", "jürgen@example.org"));
    assert!(out.get("real_port").is_none() && out.get("client_platform").is_none());
    // session_id's inputs are not all in clear: it is a pseudonym too.
    assert_eq!(out["session_id"], k.session_pseudonym(raw["session_id"].as_str().unwrap()));
    // Everything else as it was, in the same order.
    for f in ["event_id", "seq", "type", "real_ip", "virtual_ip", "instance", "event_time_vpn"] {
        assert_eq!(out[f], raw[f], "{f}");
    }
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("event_id"));
    assert_eq!(keys.last().map(|k| k.as_str()), Some("event_time_vpn"));
}

#[test]
fn real_ip_prefix_alone_still_hides_session_id() {
    let s = section("", "", "24,48");
    assert!(s.needs_key(), "session_id must become a pseudonym, which needs the key");
    let p = Privacy::with_key(&s, Key::new(KEY));
    let out = apply(&p, hook_event());
    assert_eq!(out["real_ip"], "2001:db8:1::");
    assert_ne!(out["session_id"], hook_event()["session_id"]);
    assert_eq!(out["common_name"], hook_event()["common_name"]);
}

#[test]
fn snapshot_sessions_are_walked() {
    let s = section("common_name,real_ip", "", "");
    let p = Privacy::with_key(&s, Key::new(KEY));
    let raw = json!({
        "event_id": "e", "seq": 1, "type": "SESSION_SNAPSHOT", "snapshot_id": "s", "part": 1, "parts": 1,
        "session_count": 2, "sessions": [
            {"session_id": "331ef6f0-07ea-59af-b9bc-9caf274bb483", "common_name": "alice", "real_ip": "::ffff:1.2.3.4",
             "real_port": "1", "virtual_ip": "10.8.0.2", "connected_since": "2026-02-13T12:09:04Z"},
            {"session_id": "441ef6f0-07ea-59af-b9bc-9caf274bb483", "common_name": "bob,jr", "real_ip": "1.2.3.5",
             "real_port": "2", "virtual_ip": "10.8.0.3", "connected_since": "2026-02-13T12:09:04Z"}
        ],
        "event_time_vpn": "2026-02-13T12:10:05Z"
    });
    let out = apply(&p, raw.clone());
    let text = out.to_string();
    for secret in ["alice", "bob,jr", "1.2.3.4", "1.2.3.5", "331ef6f0", "441ef6f0"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let k = Key::new(KEY);
    assert_eq!(out["sessions"][1]["common_name"], k.pseudonym("common_name", "bob,jr"));
    assert_eq!(out["sessions"][0]["real_ip"], k.pseudonym("real_ip", "::ffff:1.2.3.4"));
    assert_eq!(out["sessions"][0]["virtual_ip"], "10.8.0.2");
    assert_eq!(out["session_count"], 2);
}

#[test]
fn cert_subject_follows_common_name_and_hex_serial_follows_serial() {
    let raw = json!({
        "event_id": "e", "seq": 1, "type": "CERT_ISSUED", "common_name": "alice", "cert_serial": "0a:bc",
        "cert_serial_hex": "0ABC", "subject": "/CN=alice/emailAddress=alice@example.org",
        "expires_at": "2030-01-01T00:00:00Z", "status": "valid", "event_time_vpn": "2026-02-13T12:10:05Z"
    });
    let p = Privacy::with_key(&section("common_name,cert_serial", "", ""), Key::new(KEY));
    let out = apply(&p, raw.clone());
    let text = out.to_string();
    for secret in ["alice", "0a:bc", "0ABC"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(out["subject"].as_str().unwrap().starts_with(PREFIX));
    let p = Privacy::with_key(&section("", "common_name", ""), Key::new(KEY));
    let out = apply(&p, raw);
    assert!(out.get("subject").is_none() && out.get("common_name").is_none());
    assert_eq!(out["cert_serial"], "0a:bc");
}

#[test]
fn drop_reports_and_other_fields_pass_unchanged() {
    let p = Privacy::with_key(&section("common_name,real_ip,username", "real_port", ""), Key::new(KEY));
    let raw = json!({"event_id": "e", "seq": 9, "type": "TELEMETRY_EVENTS_DROPPED", "count": 3, "first_seq": 1,
        "last_seq": 3, "total_count": 3, "total_first_seq": 1, "total_last_seq": 3,
        "event_time_vpn": "2026-02-13T12:10:05Z"});
    assert_eq!(apply(&p, raw.clone()), raw);
}

#[test]
fn odd_values_under_personal_names_are_never_sent_raw() {
    let p = Privacy::with_key(&section("real_port,common_name", "", ""), Key::new(KEY));
    let out = apply(&p, json!({"real_port": 5555, "common_name": null, "username": ["x"]}));
    assert_eq!(out["real_port"], Key::new(KEY).pseudonym("real_port", "5555"));
    assert_eq!(out["common_name"], Value::Null);
    assert!(p.line(b"{\"a\":1").is_err());
    assert!(p.line(b"[1]").is_err());
}

#[test]
fn field_is_the_same_transform_for_one_value() {
    let s = section("common_name", "username", "24,48");
    let p = Privacy::with_key(&s, Key::new(KEY));
    assert_eq!(p.field("common_name", "alice").unwrap(), Key::new(KEY).pseudonym("common_name", "alice"));
    assert_eq!(p.field("username", "alice"), None);
    assert_eq!(p.field("real_ip", "203.0.113.9").unwrap(), "203.0.113.0");
    assert_eq!(p.field("virtual_ip", "10.8.0.2").unwrap(), "10.8.0.2");
    assert_eq!(p.field("instance", "server").unwrap(), "server");
    // Without a key a pseudonymized field is not sent at all.
    let keyless = Privacy::new(&s, None);
    assert_eq!(keyless.field("common_name", "alice"), None);
}

#[test]
fn growth_bounds_what_the_transform_adds() {
    let p = Privacy::with_key(
        &section("common_name,real_ip,real_port,virtual_ip,username,session_id", "client_platform", ""),
        Key::new(KEY),
    );
    let line = serde_json::to_vec(&json!({"common_name": "", "real_ip": "", "real_port": 1, "virtual_ip": "",
        "username": "a", "session_id": "", "client_platform": "", "bytes": 5,
        "sessions": [{"common_name": "", "real_ip": "", "session_id": ""}]}))
    .unwrap();
    let out = p.line(&line).unwrap();
    assert!(out.len() <= line.len() + p.growth(&line), "{} > {} + {}", out.len(), line.len(), p.growth(&line));
    // Two objects; eight treated fields (subject follows common_name).
    assert_eq!(p.growth(&line), 2 * 8 * 38, "per object, one allowance per treated field");
}

#[test]
fn summary_says_what_leaves_how() {
    let s = section("common_name", "client_platform", "24,48");
    let sum: std::collections::HashMap<_, _> = s.summary().into_iter().collect();
    assert_eq!(sum["common_name"], Treatment::Pseudonym);
    assert_eq!(sum["subject"], Treatment::Pseudonym);
    assert_eq!(sum["client_platform"], Treatment::Dropped);
    assert_eq!(sum["real_ip"], Treatment::Network);
    assert_eq!(sum["session_id"], Treatment::Pseudonym);
    assert_eq!(sum["virtual_ip"], Treatment::Clear);
    assert!(!section("", "", "").active());
    assert!(section("", "client_platform", "").active() && !section("", "client_platform", "").needs_key());
}

#[test]
fn key_file_rules() {
    let dir = std::env::temp_dir().join(format!("ovt-privacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.key");
    std::fs::write(&good, Key::generate().unwrap()).unwrap();
    let short = dir.join("short.key");
    std::fs::write(&short, b"too short").unwrap();
    let link = dir.join("link.key");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert!(Key::load(&good).is_ok());
    assert!(matches!(Key::load(&short), Err(KeyError::Short { len: 9, .. })));
    assert!(matches!(Key::load(&link), Err(KeyError::Read { .. })), "a symlink is not followed");
    let missing = Key::load(&dir.join("none")).unwrap_err().to_string();
    assert!(missing.starts_with("PSEUDONYM_KEY_FILE=") && missing.contains("install"), "{missing}");
    assert_ne!(Key::generate().unwrap(), Key::generate().unwrap());
    let mut s = section("common_name", "", "");
    s.key_file = dir.join("none");
    assert!(Privacy::from_settings(&s).is_err(), "a needed key that is missing refuses");
    s.pseudonymize = FieldSet::default();
    s.drop_fields = FieldSet::parse("client_platform").unwrap();
    assert!(Privacy::from_settings(&s).is_ok(), "dropping needs no key");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The transform written the simple way, over a parsed tree: what the
/// one-pass scanner must agree with.
fn oracle(p: &Privacy, line: &[u8]) -> Value {
    fn object(p: &Privacy, obj: &mut Map<String, Value>) {
        obj.retain(|k, _| p.treatment(k) != Treatment::Dropped);
        for (k, v) in obj.iter_mut() {
            match (p.treatment(k), &mut *v) {
                (Treatment::Clear, Value::Object(inner)) => object(p, inner),
                (Treatment::Clear, Value::Array(items)) => array(p, items),
                (Treatment::Clear, _) | (_, Value::Null) => {}
                (_, Value::String(s)) => *v = p.field(k, s).map(Cow::into_owned).unwrap_or_default().into(),
                (_, other) => {
                    let text = other.to_string();
                    *v = p.field(k, &text).map(Cow::into_owned).unwrap_or_default().into();
                }
            }
        }
    }
    fn array(p: &Privacy, items: &mut [Value]) {
        for item in items {
            match item {
                Value::Object(inner) => object(p, inner),
                Value::Array(more) => array(p, more),
                _ => {}
            }
        }
    }
    let mut v: Map<String, Value> = serde_json::from_slice(line).unwrap();
    object(p, &mut v);
    Value::Object(v)
}

#[test]
fn the_scanner_agrees_with_the_tree_walk() {
    let sections = [
        section("common_name,username,real_ip", "real_port,client_platform", ""),
        section("", "common_name,session_id", "24,48"),
        section("subject,cert_serial", "virtual_ip", ""),
    ];
    let lines: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&hook_event()).unwrap(),
        br#" { "common_name" : "a\"b\u00e9" , "real_port" : 5555, "x" : [ 1 , {"real_ip":"1.2.3.4"} , [] , {} ] , "n": null } "#.to_vec(),
        br#"{"common\u005fname":"escaped key","client_platform":{"nested":["x"]},"ok":true,"f":-1.5e3}"#.to_vec(),
        br#"{"real_port":"1","common_name":"first","subject":"/CN=x","cert_serial":"0a:bc","cert_serial_hex":"0ABC"}"#.to_vec(),
        br#"{"sessions":[{"session_id":"s1","common_name":"a","real_ip":"::ffff:1.2.3.4","virtual_ip":"10.0.0.1"}],"empty":{}}"#.to_vec(),
        br#"{}"#.to_vec(),
        br#"{"common_name":null,"username":"","real_ip":"not an ip","session_id":"x"}"#.to_vec(),
        // The flat, compact shape the fast path takes: members dropped
        // first, in the middle and last, treated numbers, a key twice.
        r#"{"real_port":"1","a":1,"client_platform":"linux","common_name":"Jürgen","real_ip":"1.2.3.4","virtual_ip":"10.8.0.2"}"#.as_bytes().to_vec(),
        br#"{"real_port":5555,"session_id":"s","real_ip":"::ffff:10.1.2.3","common_name":"a","common_name":"b","n":null}"#.to_vec(),
        br#"{"real_port":"1"}"#.to_vec(),
        br#"{"x":-1.5e3,"y":true,"z":"with { brace","real_ip":"2001:db8::1"}"#.to_vec(),
    ];
    for s in &sections {
        let p = Privacy::with_key(s, Key::new(KEY));
        for line in &lines {
            let got = p.line(line).unwrap();
            let got: Value =
                serde_json::from_slice(&got).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&got)));
            assert_eq!(got, oracle(&p, line), "{}", String::from_utf8_lossy(line));
        }
    }
    let p = Privacy::with_key(&sections[0], Key::new(KEY));
    for bad in [
        &b"{\"a\":"[..],
        b"[1]",
        b"{\"a\":1} x",
        b"{\"a\" 1}",
        b"{\"a\":\"open}",
        b"",
        b"{\"a\":1,}",
        b"{\"a\":\"x\\",
        b"{\"a\":\"x\\\"",
        b"{\"a\":1}}",
        b"{\"a\":1,\"b\"}",
        b"{\"a\"}",
        b"{,}",
    ] {
        assert!(p.line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    // The fast path's output, byte for byte: the members that stay, in
    // their order, one comma between them.
    let k = Key::new(KEY);
    let got = p.line(br#"{"real_port":"1","common_name":"al","x":2,"client_platform":"p"}"#).unwrap();
    let want = format!(r#"{{"common_name":"{}","x":2}}"#, k.pseudonym("common_name", "al"));
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn remembered_pseudonyms_are_the_same_and_bounded() {
    let p = Privacy::with_key(&section("common_name,session_id", "", ""), Key::new(KEY));
    let k = Key::new(KEY);
    for _ in 0..2 {
        assert_eq!(p.field("common_name", "alice").unwrap(), k.pseudonym("common_name", "alice"));
        assert_eq!(p.field("session_id", "s").unwrap(), k.session_pseudonym("s"));
    }
    for i in 0..MEMO_ENTRIES + 10 {
        let v = format!("user{i}");
        assert_eq!(p.field("common_name", &v).unwrap(), k.pseudonym("common_name", &v));
    }
    let memo = p.memo.lock().unwrap();
    assert!(memo[0].len() <= MEMO_ENTRIES && !memo[0].is_empty());
    assert!(!format!("{p:?}").contains("alice"), "Debug shows no remembered value");
}
