//! Telemetry events: what one NDJSON line in the spool says.
//!
//! Every event has `event_id` (a UUID the server dedups on), `seq` (given by
//! the spool under its lock), `type` and `event_time_vpn` (RFC 3339 UTC).
//! Session events add the seed's `common_name`, `real_ip`, `real_port` and
//! `virtual_ip` (always present, empty when OpenVPN gave nothing, as in the
//! seed) and, only when OpenVPN set them, the extra fields the README lists.
//!
//! Everything a VPN client controls (`common_name`, `username`, `IV_*`) is
//! untrusted: invalid UTF-8 is written as `\xNN`, the line is escaped by
//! hand exactly as serde_json would escape it ([`push_json_str`]), and every
//! string is capped at [`FIELD_CAP`] bytes so a client
//! cannot bloat the spool.

use std::ffi::{OsStr, OsString};

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest string a field may hold, in bytes.
pub const FIELD_CAP: usize = 1024;

/// Namespace of the UUIDv5 `session_id`; documented in the README so a
/// server can compute the same id from OpenVPN's status file.
pub const SESSION_NAMESPACE: Uuid = Uuid::from_u128(0x6f70656e_7670_4e74_a56c_656d65747279);

/// An event waiting for its `seq`.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_id: Uuid,
    pub kind: String,
    pub time: OffsetDateTime,
    /// Fields after `type`, in the order they are written.
    pub fields: Vec<(&'static str, Value)>,
}

impl Event {
    pub fn new(kind: &str) -> Event {
        Event { event_id: Uuid::new_v4(), kind: kind.to_string(), time: now(), fields: Vec::new() }
    }

    pub fn push(&mut self, key: &'static str, value: impl Into<Value>) {
        self.fields.push((key, value.into()));
    }

    /// The NDJSON line (with its `\n`) for this event numbered `seq`.
    ///
    /// Written byte by byte rather than through serde_json's serializer and
    /// `time`'s formatter: this runs in every hook, where what costs is not
    /// computation but the code pages a process touches for the first time
    /// (each one a page fault; see docs/benchmarks.md). The bytes are the
    /// ones serde_json writes (a unit test compares them); values other
    /// than strings and integers, which hooks never have, still go through
    /// serde_json.
    pub fn to_line(&self, seq: u64) -> Vec<u8> {
        let mut line = Vec::with_capacity(768);
        line.extend_from_slice(b"{\"event_id\":\"");
        line.extend_from_slice(self.event_id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
        line.extend_from_slice(b"\",\"seq\":");
        push_u64(&mut line, seq);
        line.extend_from_slice(b",\"type\":");
        push_json_str(&mut line, &self.kind);
        for (k, v) in &self.fields {
            line.push(b',');
            push_json_str(&mut line, k);
            line.push(b':');
            match v {
                Value::String(s) => push_json_str(&mut line, s),
                Value::Number(n) if n.is_u64() => push_u64(&mut line, n.as_u64().unwrap_or(0)),
                Value::Number(n) if n.is_i64() => {
                    let n = n.as_i64().unwrap_or(0);
                    if n < 0 {
                        line.push(b'-');
                    }
                    push_u64(&mut line, n.unsigned_abs());
                }
                // Writing into a Vec cannot fail.
                other => {
                    let _ = serde_json::to_writer(&mut line, other);
                }
            }
        }
        line.extend_from_slice(b",\"event_time_vpn\":\"");
        push_rfc3339(&mut line, self.time);
        line.extend_from_slice(b"\"}\n");
        line
    }
}

/// `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `s` as a JSON string, escaped exactly as serde_json does: `"` and `\`,
/// the short forms `\b \f \n \r \t`, other control characters as
/// `\u00XX` (lowercase hex); everything else, non-ASCII too, as it is.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short == 0 {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// [`rfc3339`] written into `out`, without `time`'s formatting machinery.
/// Years outside 0..=9999 write nothing, as [`rfc3339`] gives "" for them.
fn push_rfc3339(out: &mut Vec<u8>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u16::try_from(t.year()) else { return };
    if year > 9999 {
        return;
    }
    let two = |out: &mut Vec<u8>, n: u8| out.extend_from_slice(&[b'0' + n / 10, b'0' + n % 10]);
    two(out, (year / 100) as u8);
    two(out, (year % 100) as u8);
    out.push(b'-');
    two(out, t.month() as u8);
    out.push(b'-');
    two(out, t.day());
    out.push(b'T');
    two(out, t.hour());
    out.push(b':');
    two(out, t.minute());
    out.push(b':');
    two(out, t.second());
    out.push(b'Z');
}

/// The one wall clock: every timestamp the hooks and the agent write (event
/// times, the agent's state, OTLP's observed time) is read here and passed
/// on. `OPENVPN_TELEMETRY_NOW` (unix seconds) is a testing aid that pins it,
/// so time-dependent behaviour is checked without sleeping; operators never
/// set it. Durations and deadlines use `Instant`, which it does not touch.
pub fn now() -> OffsetDateTime {
    // The test clock is looked up once per process, not on every call
    // (every hook, every batch, every source round calls this).
    static FIXED: std::sync::OnceLock<Option<OffsetDateTime>> = std::sync::OnceLock::new();
    let fixed = FIXED.get_or_init(|| {
        std::env::var_os("OPENVPN_TELEMETRY_NOW")
            .and_then(|v| v.to_str().and_then(|s| s.parse::<i64>().ok()))
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    });
    fixed.unwrap_or_else(OffsetDateTime::now_utc)
}

/// RFC 3339 in UTC with a `Z` and whole seconds, as the seed writes it.
/// Years outside 0..=9999 (which RFC 3339 cannot write) give "".
pub fn rfc3339(t: OffsetDateTime) -> String {
    let mut out = Vec::with_capacity(20);
    push_rfc3339(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// `time_t` as RFC 3339 UTC, or `None` when it is not a sane timestamp.
pub fn unix_to_rfc3339(secs: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(secs).ok().map(rfc3339)
}

/// An untrusted OS string as valid, capped UTF-8: invalid bytes become the
/// four characters `\xNN`; the result is at most [`FIELD_CAP`] bytes.
pub fn clean(raw: &OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    // What OpenVPN normally gives: short, valid UTF-8, copied as it is.
    if bytes.len() <= FIELD_CAP
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len().min(FIELD_CAP));
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if out.len() + c.len_utf8() > FIELD_CAP {
                return out;
            }
            out.push(c);
        }
        for b in chunk.invalid() {
            if out.len() + 4 > FIELD_CAP {
                return out;
            }
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// The stable id of one OpenVPN session, equal for its connect, disconnect
/// and status-file entries: UUIDv5 over `common_name`, real address, real
/// port and connect time (`time_unix`), joined by `\n`. For IPv6 clients
/// the port is left empty: OpenVPN's status file before 2.7 prints none for
/// them. A session without a common name (`verify-client-cert none`: the
/// hook gets no `common_name`) counts as `UNDEF`, which is what the status
/// file prints for it (`tls_common_name`).
pub fn session_id(common_name: &str, real_ip: &str, real_port: &str, time_unix: i64) -> String {
    let common_name = if common_name.is_empty() { "UNDEF" } else { common_name };
    let real_port = if real_ip.contains(':') { "" } else { real_port };
    let name = format!("{common_name}\n{real_ip}\n{real_port}\n{time_unix}");
    Uuid::new_v5(&SESSION_NAMESPACE, name.as_bytes()).hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned()
}

/// Reads the OpenVPN script environment. Abstracted so unit tests need not
/// touch the process environment.
pub trait Env {
    fn get(&self, key: &str) -> Option<OsString>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<OsString> {
        std::env::var_os(key)
    }
}

/// A session event (`SESSION_CONNECTED`, `SESSION_DISCONNECTED`, or any
/// `write-event TYPE`) built from OpenVPN's script variables.
pub fn from_openvpn_env(kind: &str, env: &dyn Env) -> Event {
    let text = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(|v| clean(&v));
    let int = |k: &str| text(k).and_then(|v| v.trim().parse::<i64>().ok());
    let mut ev = Event::new(kind);

    let common_name = text("common_name").unwrap_or_default();
    let real_ip = text("trusted_ip").or_else(|| text("trusted_ip6")).unwrap_or_default();
    let real_port = text("trusted_port").unwrap_or_default();
    let time_unix = int("time_unix");
    ev.push("common_name", common_name.clone());
    ev.push("real_ip", real_ip.clone());
    ev.push("real_port", real_port.clone());
    ev.push("virtual_ip", text("ifconfig_pool_remote_ip").unwrap_or_default());

    if let Some(t) = time_unix {
        ev.push("session_id", session_id(&common_name, &real_ip, &real_port, t));
    }
    if let Some(v) = text("ifconfig_pool_remote_ip6") {
        ev.push("virtual_ipv6", v);
    }
    if let Some(v) = text("username") {
        ev.push("username", v);
    }
    for (field, var) in
        [("bytes_received", "bytes_received"), ("bytes_sent", "bytes_sent"), ("duration_seconds", "time_duration")]
    {
        if let Some(n) = int(var).filter(|n| *n >= 0) {
            ev.push(field, n);
        }
    }
    if let Some(s) = time_unix.and_then(unix_to_rfc3339) {
        ev.push("connected_since", s);
    }
    for (field, var) in [
        ("client_version", "IV_VER"),
        ("client_platform", "IV_PLAT"),
        ("cert_serial", "tls_serial_hex_0"),
        ("cert_sha256", "tls_digest_sha256_0"),
    ] {
        if let Some(v) = text(var) {
            ev.push(field, v);
        }
    }
    if let Some(v) = instance(env) {
        ev.push("instance", v);
    }
    ev
}

/// Which OpenVPN server on this host ran the hook: the name of its config
/// file without directory and extension (`server` for
/// `/etc/openvpn/server/server.conf`), else its tun/tap device.
fn instance(env: &dyn Env) -> Option<String> {
    if let Some(cfg) = env.get("config").filter(|v| !v.is_empty()) {
        let p = std::path::Path::new(&cfg);
        let name = p.file_stem().unwrap_or(p.as_os_str());
        if !name.is_empty() {
            return Some(clean(name));
        }
    }
    env.get("dev").filter(|v| !v.is_empty()).map(|v| clean(&v))
}

/// Events lost to the spool bounds: how many and their `seq` range, as
/// the hooks keep it in the spool's `dropped` file and the agent in its
/// state until reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropCount {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl DropCount {
    /// `count first_seq last_seq`, as the hooks keep it in `dropped`.
    pub fn parse(text: &str) -> Option<DropCount> {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(count)), Some(Ok(first_seq)), Some(Ok(last_seq))) => {
                Some(DropCount { count, first_seq, last_seq })
            }
            _ => None,
        }
    }

    pub fn add(&mut self, other: DropCount) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        self.count += other.count;
        self.first_seq = self.first_seq.min(other.first_seq);
        self.last_seq = self.last_seq.max(other.last_seq);
    }
}

impl std::fmt::Display for DropCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {} {}", self.count, self.first_seq, self.last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::ffi::OsStrExt;
    use time::format_description::well_known::Rfc3339;

    struct MapEnv(HashMap<&'static str, OsString>);
    impl Env for MapEnv {
        fn get(&self, key: &str) -> Option<OsString> {
            self.0.get(key).cloned()
        }
    }
    fn env(pairs: &[(&'static str, &[u8])]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (*k, OsStr::from_bytes(v).to_os_string())).collect())
    }
    fn parse(ev: &Event, seq: u64) -> serde_json::Map<String, Value> {
        let line = ev.to_line(seq);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice::<Value>(&line).unwrap().as_object().unwrap().clone()
    }

    #[test]
    fn seed_fields_and_types() {
        let e = env(&[
            ("common_name", b"alice"),
            ("trusted_ip", b"1.2.3.4"),
            ("trusted_port", b"5555"),
            ("ifconfig_pool_remote_ip", b"10.8.0.6"),
        ]);
        let m = parse(&from_openvpn_env("SESSION_CONNECTED", &e), 123);
        assert!(Uuid::parse_str(m["event_id"].as_str().unwrap()).is_ok());
        assert_eq!(m["seq"], 123);
        assert_eq!(m["type"], "SESSION_CONNECTED");
        assert_eq!(m["common_name"], "alice");
        assert_eq!(m["real_ip"], "1.2.3.4");
        assert_eq!(m["real_port"], "5555");
        assert_eq!(m["virtual_ip"], "10.8.0.6");
        let t = m["event_time_vpn"].as_str().unwrap();
        assert!(OffsetDateTime::parse(t, &Rfc3339).is_ok() && t.ends_with('Z'), "{t}");
        for absent in ["session_id", "bytes_sent", "username", "instance", "virtual_ipv6"] {
            assert!(!m.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn disconnect_extras() {
        let e = env(&[
            ("common_name", b"bob"),
            ("trusted_ip6", b"2001:db8::1"),
            ("trusted_port", b"40000"),
            ("time_unix", b"1700000000"),
            ("time_duration", b"61"),
            ("bytes_received", b"1000"),
            ("bytes_sent", b"2000"),
            ("IV_VER", b"2.6.3"),
            ("IV_PLAT", b"linux"),
            ("tls_serial_hex_0", b"0a:bc"),
            ("config", b"/etc/openvpn/server/office.conf"),
            ("dev", b"tun0"),
        ]);
        let m = parse(&from_openvpn_env("SESSION_DISCONNECTED", &e), 1);
        assert_eq!(m["real_ip"], "2001:db8::1");
        assert_eq!(m["bytes_received"], 1000);
        assert_eq!(m["bytes_sent"], 2000);
        assert_eq!(m["duration_seconds"], 61);
        assert_eq!(m["connected_since"], "2023-11-14T22:13:20Z");
        assert_eq!(m["client_version"], "2.6.3");
        assert_eq!(m["cert_serial"], "0a:bc");
        assert_eq!(m["instance"], "office");
        assert_eq!(m["session_id"], session_id("bob", "2001:db8::1", "40000", 1_700_000_000));
    }

    #[test]
    fn session_id_pairs_and_separates() {
        let a = session_id("alice", "1.2.3.4", "5555", 100);
        assert_eq!(a, session_id("alice", "1.2.3.4", "5555", 100));
        assert_ne!(a, session_id("alice", "1.2.3.4", "5555", 101));
        assert_ne!(a, session_id("alice", "1.2.3.4", "5556", 100));
        // The status file has no port for IPv6 clients; the hook does.
        assert_eq!(session_id("bob", "2001:db8::1", "40000", 100), session_id("bob", "2001:db8::1", "", 100));
        // No common name (verify-client-cert none) is the status file's UNDEF.
        assert_eq!(session_id("", "1.2.3.4", "5555", 100), session_id("UNDEF", "1.2.3.4", "5555", 100));
        assert_ne!(session_id("", "1.2.3.4", "5555", 100), session_id("undef", "1.2.3.4", "5555", 100));
    }

    #[test]
    fn hostile_input_is_escaped_and_capped() {
        let mut nasty = b"a\"b\\c\nd\re\x00f\x1b\xff\xfeg".to_vec();
        let e = env(&[("common_name", &nasty), ("IV_PLAT", &vec![b'x'; 100_000])]);
        let m = parse(&from_openvpn_env("SESSION_CONNECTED", &e), 1);
        assert_eq!(m["common_name"], "a\"b\\c\nd\re\u{0}f\u{1b}\\xFF\\xFEg");
        assert_eq!(m["client_platform"].as_str().unwrap().len(), FIELD_CAP);
        nasty = "é".repeat(1000).into_bytes();
        let capped = clean(OsStr::from_bytes(&nasty));
        assert!(capped.len() <= FIELD_CAP && capped.len() > FIELD_CAP - 2);
    }

    /// The hand-written line is byte for byte what serde_json writes.
    #[test]
    fn to_line_writes_what_serde_json_writes() {
        let mut ev = Event::new("SESSION_CONNECTED");
        let every_control: String = (0u8..0x20).map(char::from).collect();
        ev.push("controls", every_control);
        ev.push("quotes", "a\"b\\c/d\u{7f}é\u{2028}😀");
        ev.push("empty", "");
        ev.push("zero", 0u64);
        ev.push("max", u64::MAX);
        ev.push("neg", -42i64);
        ev.push("min", i64::MIN);
        ev.push("float", 1.5f64);
        ev.push("yes", true);
        ev.push("null", Value::Null);
        ev.push("nested", serde_json::json!({"a": [1, "x\n"]}));
        let mut expected = serde_json::Map::new();
        expected.insert("event_id".into(), ev.event_id.to_string().into());
        expected.insert("seq".into(), 18_446_744_073_709_551_615u64.into());
        expected.insert("type".into(), ev.kind.clone().into());
        for (k, v) in &ev.fields {
            expected.insert((*k).into(), v.clone());
        }
        let t = ev.time.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap();
        expected.insert("event_time_vpn".into(), t.format(&Rfc3339).unwrap().into());
        let mut want = serde_json::to_vec(&Value::Object(expected)).unwrap();
        want.push(b'\n');
        let got = ev.to_line(u64::MAX);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    #[test]
    fn rfc3339_is_times_rfc3339_in_whole_utc_seconds() {
        let offset = time::UtcOffset::from_hms(5, 30, 0).unwrap();
        let mut secs: Vec<i64> = vec![0, 1, 59, 951_782_400, 1_700_000_000, 253_402_300_799, -62_167_219_200];
        secs.extend((0..2000).map(|i| i * 1_234_567_891 % 253_402_300_799));
        for s in secs {
            let t = OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::nanoseconds(999_999_999);
            let want = OffsetDateTime::from_unix_timestamp(s).unwrap().format(&Rfc3339).unwrap();
            assert_eq!(rfc3339(t), want, "{s}");
            if let Some(local) = t.checked_to_offset(offset) {
                assert_eq!(rfc3339(local), want, "{s} at +05:30");
            }
        }
        assert_eq!(rfc3339(OffsetDateTime::from_unix_timestamp(-62_167_219_201).unwrap()), "");
    }

    #[test]
    fn non_numeric_counters_are_left_out() {
        let e = env(&[("bytes_sent", b"12x"), ("time_unix", b"-")]);
        let m = parse(&from_openvpn_env("SESSION_DISCONNECTED", &e), 1);
        assert!(!m.contains_key("bytes_sent") && !m.contains_key("session_id"));
    }
}
