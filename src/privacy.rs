//! Personal data before it leaves the host: the fields `PSEUDONYMIZE` names
//! are replaced by keyed pseudonyms, those `DROP_FIELDS` names are removed,
//! and `REAL_IP_PREFIX` keeps only the network part of `real_ip`.
//!
//! Guarantees:
//! - pure: no I/O but [`Key::load`]; one [`Privacy`] is built at the
//!   agent's start and applied at the one place a batch is encoded, so the
//!   JSON envelope, OTLP (attributes and body) and the file sink all carry
//!   what it made;
//! - a pseudonym is `pn_` and 16 lowercase hex digits: the first 64 bits of
//!   HMAC-SHA256 under the key over the field's name, a 0x1f and the value.
//!   The same value of the same field gives the same pseudonym on every
//!   event, after every restart and on every host that holds the same key;
//!   nothing reverses it without the key;
//! - every object at any depth is walked (`SESSION_SNAPSHOT`'s `sessions`
//!   too), so a field is treated wherever it appears;
//! - fields that carry another one's value follow it: `subject` (holds the
//!   common name) is treated at least as strictly as `common_name`,
//!   `cert_serial_hex` as `cert_serial`, and `session_id` (a UUIDv5 of the
//!   raw common name, address and port, which a dictionary would reverse)
//!   is pseudonymized, as a UUID, as soon as any of those is not sent in
//!   clear. Its pseudonym depends only on the raw id, so a session's
//!   connect, updates, snapshots and disconnect still share it;
//! - with nothing configured, lines pass through untouched (no parse).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;

use key::Pseudonym;
pub use key::{Key, KeyError, key_access};

/// Where the key is unless `PSEUDONYM_KEY_FILE` says otherwise.
pub const DEFAULT_KEY_FILE: &str = "/etc/openvpn-telemetry/pseudonym.key";
/// Bytes of a key `install` makes; also the least a key file must hold.
pub const KEY_BYTES: usize = 32;
/// The most of a key file that is read (a key is not a document).
const KEY_FILE_CAP: u64 = 4096;
/// What every pseudonym starts with.
pub const PREFIX: &str = "pn_";
/// Hex digits after [`PREFIX`].
const DIGITS: usize = 16;
/// Separates the field's name from the value in what is signed.
const SEPARATOR: u8 = 0x1f;

/// The fields `PSEUDONYMIZE` and `DROP_FIELDS` may name: every field an
/// event carries that says something about a person or their device.
pub const FIELDS: [&str; 13] = [
    "common_name",
    "username",
    "real_ip",
    "real_port",
    "virtual_ip",
    "virtual_ipv6",
    "cert_serial",
    "cert_serial_hex",
    "cert_sha256",
    "subject",
    "client_version",
    "client_platform",
    "session_id",
];

/// The place of `name` in [`FIELDS`] (a `match` on bytes: this runs for
/// every key of every event sent).
fn field_index(name: &str) -> Option<usize> {
    field_index_bytes(name.as_bytes())
}

fn field_index_bytes(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"common_name" => 0,
        b"username" => 1,
        b"real_ip" => 2,
        b"real_port" => 3,
        b"virtual_ip" => 4,
        b"virtual_ipv6" => 5,
        b"cert_serial" => 6,
        b"cert_serial_hex" => 7,
        b"cert_sha256" => 8,
        b"subject" => 9,
        b"client_version" => 10,
        b"client_platform" => 11,
        b"session_id" => 12,
        _ => return None,
    })
}

/// A set of [`FIELDS`], as a bit per field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Field names separated by commas and/or spaces; "" is none.
    pub fn parse(v: &str) -> Result<FieldSet, String> {
        let mut set = FieldSet::default();
        for name in v.split([',', ' ', '\t']).filter(|n| !n.is_empty()) {
            match field_index(name) {
                Some(i) => set.0 |= 1 << i,
                None => return Err(format!("{name:?} is not a personal field; known: {}", FIELDS.join(", "))),
            }
        }
        Ok(set)
    }

    pub fn contains(self, name: &str) -> bool {
        field_index(name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, in [`FIELDS`]' order.
    pub fn names(self) -> Vec<&'static str> {
        FIELDS.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, f)| *f).collect()
    }
}

impl fmt::Display for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// `REAL_IP_PREFIX`: the network bits of `real_ip` that are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub v4: u8,
    pub v6: u8,
}

impl Prefix {
    /// `V4,V6`, e.g. `24,48`; "" is none (the whole address is kept).
    pub fn parse(v: &str) -> Result<Option<Prefix>, String> {
        if v.is_empty() {
            return Ok(None);
        }
        let bad = || format!("expected IPv4,IPv6 prefix lengths such as 24,48 (at most 32 and 128), found {v:?}");
        let (a, b) = v.split_once(',').ok_or_else(bad)?;
        let v4 = a.trim().parse::<u8>().ok().filter(|n| *n <= 32).ok_or_else(bad)?;
        let v6 = b.trim().parse::<u8>().ok().filter(|n| *n <= 128).ok_or_else(bad)?;
        Ok(Some(Prefix { v4, v6 }))
    }

    /// `ip` with every bit after the prefix zeroed, written as an address
    /// (`203.0.113.0`, `2001:db8:1::`, `::ffff:203.0.113.0` for an
    /// IPv4-mapped one, cut as IPv4). Anything that is not an address
    /// gives "": it cannot be cut, so it is not sent.
    pub fn cut(self, ip: &str) -> String {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => mask_v4(a.to_bits(), self.v4).to_string(),
            Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => format!("::ffff:{}", mask_v4(v4.to_bits(), self.v4)),
                None => {
                    let keep = if self.v6 == 0 { 0 } else { u128::MAX << (128 - u32::from(self.v6)) };
                    std::net::Ipv6Addr::from_bits(a.to_bits() & keep).to_string()
                }
            },
            Err(_) => String::new(),
        }
    }
}

fn mask_v4(bits: u32, len: u8) -> std::net::Ipv4Addr {
    let keep = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    std::net::Ipv4Addr::from_bits(bits & keep)
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.v4, self.v6)
    }
}

/// The Privacy section of the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacySection {
    pub pseudonymize: FieldSet,
    pub drop_fields: FieldSet,
    pub real_ip_prefix: Option<Prefix>,
    pub key_file: PathBuf,
}

/// What becomes of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Treatment {
    Clear,
    /// Only `real_ip`, with `REAL_IP_PREFIX`.
    Network,
    Pseudonym,
    Dropped,
}

impl Treatment {
    pub fn describe(self) -> &'static str {
        match self {
            Treatment::Clear => "in clear",
            Treatment::Network => "network part only",
            Treatment::Pseudonym => "pseudonymized",
            Treatment::Dropped => "dropped",
        }
    }
}

impl PrivacySection {
    /// The settings that cannot both hold, named for the message: a field
    /// both pseudonymized and dropped, or `REAL_IP_PREFIX` on a `real_ip`
    /// that is not sent as an address.
    pub fn conflict(&self) -> Option<(&'static str, String)> {
        let both = FieldSet(self.pseudonymize.0 & self.drop_fields.0);
        if !both.is_empty() {
            return Some(("DROP_FIELDS", format!("{both} is also in PSEUDONYMIZE; name each field in one of them")));
        }
        let ip_hidden = self.pseudonymize.contains("real_ip") || self.drop_fields.contains("real_ip");
        if self.real_ip_prefix.is_some() && ip_hidden {
            return Some((
                "REAL_IP_PREFIX",
                "real_ip is in PSEUDONYMIZE or DROP_FIELDS, so there is no address to cut; leave one of them empty"
                    .into(),
            ));
        }
        None
    }

    fn own(&self, field: &str) -> Treatment {
        if self.drop_fields.contains(field) {
            Treatment::Dropped
        } else if self.pseudonymize.contains(field) {
            Treatment::Pseudonym
        } else if field == "real_ip" && self.real_ip_prefix.is_some() {
            Treatment::Network
        } else {
            Treatment::Clear
        }
    }

    /// What becomes of `field` (any name: fields that are not personal are
    /// always sent in clear), the rules of the module's guarantees applied.
    pub fn treatment(&self, field: &str) -> Treatment {
        match field {
            "subject" => self.own("subject").max(self.own("common_name")),
            "cert_serial_hex" => self.own("cert_serial_hex").max(self.own("cert_serial")),
            "session_id" => {
                let own = self.own("session_id");
                let inputs = ["common_name", "real_ip", "real_port"].iter().any(|f| self.own(f) != Treatment::Clear);
                if own == Treatment::Clear && inputs { Treatment::Pseudonym } else { own }
            }
            _ => self.own(field),
        }
    }

    /// Whether anything is changed at all.
    pub fn active(&self) -> bool {
        FIELDS.iter().any(|f| self.own(f) != Treatment::Clear)
    }

    /// Whether the key is needed: some field is pseudonymized.
    pub fn needs_key(&self) -> bool {
        FIELDS.iter().any(|f| self.treatment(f) == Treatment::Pseudonym)
    }

    /// Each personal field and what becomes of it.
    pub fn summary(&self) -> Vec<(&'static str, Treatment)> {
        FIELDS.iter().map(|f| (*f, self.treatment(f))).collect()
    }

    /// For `status --json`: the personal fields by what becomes of them.
    pub fn report(&self) -> Value {
        let names = |t: Treatment| -> Vec<&str> {
            self.summary().into_iter().filter(|(_, x)| *x == t).map(|(f, _)| f).collect()
        };
        serde_json::json!({
            "in_clear": names(Treatment::Clear),
            "network_part": names(Treatment::Network),
            "real_ip_prefix": self.real_ip_prefix.map(|p| p.to_string()),
            "pseudonymized": names(Treatment::Pseudonym),
            "dropped": names(Treatment::Dropped),
            "key_file": self.needs_key().then(|| self.key_file.display().to_string()),
        })
    }

    /// One line for `status` and `check`: what leaves the host how.
    pub fn outline(&self) -> String {
        let mut parts = Vec::new();
        for t in [Treatment::Pseudonym, Treatment::Dropped, Treatment::Network, Treatment::Clear] {
            let names: Vec<&str> = self.summary().into_iter().filter(|(_, x)| *x == t).map(|(f, _)| f).collect();
            if names.is_empty() {
                continue;
            }
            let extra = match (t, self.real_ip_prefix) {
                (Treatment::Network, Some(p)) => format!(" (REAL_IP_PREFIX={p})"),
                _ => String::new(),
            };
            parts.push(format!("{}: {}{extra}", t.describe(), names.join(", ")));
        }
        parts.join("; ")
    }
}

/// Never the key nor the values remembered: only the settings.
impl fmt::Debug for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Privacy").field("section", &self.section).finish_non_exhaustive()
    }
}

/// The settings and the key, ready to apply.
pub struct Privacy {
    section: PrivacySection,
    key: Option<Key>,
    /// [`PrivacySection::treatment`] of each of [`FIELDS`], worked out once.
    treatments: [Treatment; FIELDS.len()],
    /// Whether anything is treated at all.
    active: bool,
    /// The names of the fields that are not sent in clear, as bytes.
    treated: Vec<&'static [u8]>,
    /// Pseudonyms already made, per field: the same people recur in every
    /// update and snapshot, and a lookup costs a fraction of an HMAC. Each
    /// map holds at most [`MEMO_ENTRIES`]; a full one takes no more (the
    /// others are made each time), so the memory stays bounded and a
    /// field with more distinct values than that does not churn the
    /// allocator by emptying and refilling it.
    memo: Mutex<Vec<HashMap<Box<str>, Pseudonym>>>,
}

/// Most pseudonyms remembered per field (about 70 bytes each).
const MEMO_ENTRIES: usize = 8192;

/// A line that is not a JSON object cannot be made safe; it is not sent.
#[derive(Debug)]
pub struct NotAnEvent(pub &'static str);

impl fmt::Display for NotAnEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an event line is not a JSON object ({}); not sent while PSEUDONYMIZE/DROP_FIELDS apply", self.0)
    }
}

impl Privacy {
    /// Nothing changed: what is sent is what was written.
    #[cfg(test)]
    pub fn off() -> Privacy {
        Privacy::new(&PrivacySection::default(), None)
    }

    fn new(section: &PrivacySection, key: Option<Key>) -> Privacy {
        let treatments = FIELDS.map(|f| section.treatment(f));
        let treated =
            FIELDS.iter().zip(treatments).filter(|(_, t)| *t != Treatment::Clear).map(|(f, _)| f.as_bytes()).collect();
        let memo = Mutex::new(vec![HashMap::new(); FIELDS.len()]);
        Privacy { section: section.clone(), key, treatments, active: section.active(), treated, memo }
    }

    /// What becomes of `field`, from the table made once.
    fn treatment(&self, field: &str) -> Treatment {
        self.treatment_bytes(field.as_bytes())
    }

    fn treatment_bytes(&self, field: &[u8]) -> Treatment {
        field_index_bytes(field).map_or(Treatment::Clear, |i| self.treatments[i])
    }

    /// From the settings, reading the key when a field is pseudonymized.
    pub fn from_settings(section: &PrivacySection) -> Result<Privacy, KeyError> {
        let key = if section.needs_key() { Some(Key::load(&section.key_file)?) } else { None };
        Ok(Privacy::new(section, key))
    }

    /// From the settings and a key already in hand.
    #[cfg(test)]
    pub fn with_key(section: &PrivacySection, key: Key) -> Privacy {
        Privacy::new(section, Some(key))
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// The same settings and key with a memory of its own: for a second
    /// thread that sends personal fields (the metrics file's labels), so
    /// the two never wait on each other's lock.
    pub fn twin(&self) -> Privacy {
        Privacy::new(&self.section, self.key.clone())
    }

    /// OpenVPN's `Real Address` (`1.2.3.4:5555`, or 2.7's `udp4:…`) as it
    /// may leave the host: unchanged when `real_ip` and `real_port` are
    /// sent in clear; else rebuilt from the ip as `real_ip` is treated
    /// and the port as `real_port` is (left out when dropped), so a label
    /// shows the same pseudonym or network as the events. Not an address:
    /// treated as a `real_ip`.
    pub fn real_address<'a>(&self, addr: &'a str) -> Cow<'a, str> {
        if self.treatment("real_ip") == Treatment::Clear && self.treatment("real_port") == Treatment::Clear {
            return Cow::Borrowed(addr);
        }
        let Some((ip, port)) = crate::real_address::split(addr) else {
            return self.field("real_ip", addr).map_or(Cow::Borrowed(""), |v| Cow::Owned(v.into_owned()));
        };
        let ip = self.field("real_ip", ip).unwrap_or_default();
        match self.field("real_port", port) {
            Some(p) if !port.is_empty() && !ip.is_empty() => Cow::Owned(format!("{ip}:{p}")),
            _ => Cow::Owned(ip.into_owned()),
        }
    }

    /// One field's value as it may leave the host: `None` when the field
    /// is dropped, else the value in clear, cut to its network or replaced
    /// by its pseudonym. For anything that sends a field outside an event
    /// line (a metric's label): use the event's field name (`real_ip` for
    /// a client's address) so the pseudonyms join.
    pub fn field<'a>(&self, field: &str, value: &'a str) -> Option<Cow<'a, str>> {
        match self.treatment(field) {
            Treatment::Clear => Some(Cow::Borrowed(value)),
            _ => self.made(field, value, |made| made.map(|m| Cow::Owned(m.to_owned()))),
        }
    }

    /// Hands what a treated `field`'s `value` becomes to `then` (`None`:
    /// not sent), without a copy when the pseudonym is remembered.
    fn made<R>(&self, field: &str, value: &str, then: impl FnOnce(Option<&str>) -> R) -> R {
        match self.treatment(field) {
            Treatment::Clear => then(Some(value)),
            Treatment::Dropped => then(None),
            Treatment::Network => then(Some(&self.section.real_ip_prefix.map(|p| p.cut(value)).unwrap_or_default())),
            // A key is loaded whenever a field is pseudonymized
            // (`from_settings`); without one nothing is sent rather than
            // the raw value.
            Treatment::Pseudonym => {
                let (Some(key), Some(i)) = (self.key.as_ref(), field_index(field)) else { return then(None) };
                let mut memo = self.memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(map) = memo.get_mut(i) else { return then(None) };
                if let Some(p) = map.get(value) {
                    return then(Some(p.as_str()));
                }
                let p = key.made(field, value);
                if map.len() < MEMO_ENTRIES {
                    map.insert(value.into(), p);
                }
                then(Some(p.as_str()))
            }
        }
    }

    /// An upper bound of the bytes [`Privacy::line`] may add to `line`, for
    /// batch sizing: in each object (at most one per `{`), each treated
    /// field's value may become at most a UUID's 36 characters and two
    /// quotes longer. Counting braces is one quick pass; a line with keys
    /// written twice may still outgrow it, and then meets the server's 413.
    pub fn growth(&self, line: &[u8]) -> usize {
        if !self.active {
            return 0;
        }
        let objects = memchr::memchr_iter(b'{', line).count();
        objects * self.treated.len() * 38
    }
}

mod key;
mod line;
#[cfg(test)]
mod tests;
