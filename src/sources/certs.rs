//! Certificate status from Easy-RSA's `pki/index.txt` (OpenSSL's CA
//! database): `CERT_ISSUED`, `CERT_REVOKED`, `CERT_EXPIRED`.
//!
//! Each line is `status TAB expiry TAB revocation[,reason] TAB serial TAB
//! filename TAB subject`, status `V`alid, `R`evoked or `E`xpired, times as
//! `YYMMDDHHMMSSZ` or `YYYYMMDDHHMMSSZ`.
//!
//! What the agent has already said about each serial is kept in
//! `certs.state` in the spool, written (atomically) only after the events
//! were stored: a restart repeats nothing and misses nothing that changed
//! while it was down; a crash between the two repeats at most one round
//! (at-least-once). Rules:
//! - a serial seen for the first time gives `CERT_ISSUED` (on the very
//!   first run that is every certificate, marked `inventory: true`; the
//!   server dedups by serial anyway);
//! - `R` gives `CERT_REVOKED` once, with `revoked_at` and `reason`;
//! - a certificate that is not revoked gives `CERT_EXPIRED` once when its
//!   expiry passes (by the clock, even if the file never changes) or the
//!   file says `E`;
//! - a missing or unreadable file is a skipped round, never "all gone".

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};
use time::{Date, Month, PrimitiveDateTime, Time};

use super::{Sink, Stored};
use crate::event::{self, Event};

/// `V`, `R` or `E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    Revoked,
    Expired,
}

impl CertStatus {
    fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }
}

/// One line of `index.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub status: CertStatus,
    pub expires: i64,
    pub revoked_at: Option<i64>,
    pub reason: Option<String>,
    /// As in the file: upper-case hex, no separators.
    pub serial: String,
    pub subject: String,
    pub common_name: String,
}

/// Parses `index.txt`; returns the good entries and the 1-based numbers of
/// lines that could not be read (skipped, reported by the caller).
pub fn parse_index(bytes: &[u8]) -> (Vec<IndexEntry>, Vec<usize>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(e) => entries.push(e),
            None => bad.push(i + 1),
        }
    }
    (entries, bad)
}

fn parse_line(line: &[u8]) -> Option<IndexEntry> {
    let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if f.len() < 6 {
        return None;
    }
    let status = match f[0] {
        b"V" => CertStatus::Valid,
        b"R" => CertStatus::Revoked,
        b"E" => CertStatus::Expired,
        _ => return None,
    };
    let expires = asn1_time(f[1])?;
    let (revoked_at, reason) = match f[2] {
        [] => (None, None),
        rev => {
            let (t, reason) = match rev.iter().position(|&b| b == b',') {
                Some(p) => (&rev[..p], Some(clean(&rev[p + 1..]))),
                None => (rev, None),
            };
            (Some(asn1_time(t)?), reason)
        }
    };
    if status == CertStatus::Revoked && revoked_at.is_none() {
        return None;
    }
    let serial = std::str::from_utf8(f[3]).ok()?;
    if serial.is_empty() || serial.len() > 128 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // The subject may itself contain tabs in theory: keep the rest whole.
    let subject = clean(&line[f[..5].iter().map(|x| x.len() + 1).sum::<usize>()..]);
    let common_name = subject.rsplit('/').find_map(|rdn| rdn.strip_prefix("CN=")).unwrap_or_default().to_string();
    Some(IndexEntry { status, expires, revoked_at, reason, serial: serial.to_ascii_uppercase(), subject, common_name })
}

fn clean(raw: &[u8]) -> String {
    event::clean(OsStr::from_bytes(raw))
}

/// `YYMMDDHHMMSSZ` (UTCTime: years 50–99 are 19xx) or `YYYYMMDDHHMMSSZ`.
pub fn asn1_time(raw: &[u8]) -> Option<i64> {
    let digits = raw.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |r: &[u8]| r.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
    let (year, rest) = match digits.len() {
        12 => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        14 => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let part = |i: usize| u8::try_from(num(&rest[i..i + 2])).ok();
    let date = Date::from_calendar_date(year, Month::try_from(part(0)?).ok()?, part(2)?).ok()?;
    let time = Time::from_hms(part(4)?, part(6)?, part(8)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp())
}

/// The serial as OpenVPN gives it to hooks (`tls_serial_hex_0`, the
/// connect event's `cert_serial`): lower-case bytes joined by `:`.
pub fn openvpn_serial(hex: &str) -> String {
    let hex = hex.to_ascii_lowercase();
    let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex };
    padded.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// What has been said about one serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub common_name: String,
    pub expires: i64,
    pub revoked: bool,
    pub expired: bool,
}

/// What `certs.state` holds: every serial of the last read index.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertBook {
    #[serde(default)]
    pub certs: BTreeMap<String, Known>,
}

/// How a round went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub written: usize,
    /// The spool refused an event; the rest waits for the next round.
    pub spool_full: bool,
}

impl CertBook {
    /// Emits what changed between the book and `entries` at `now`.
    /// `inventory` marks the events of the very first run.
    pub fn check(&mut self, entries: &[IndexEntry], sink: &Sink, now: i64, inventory: bool) -> Result<Checked, String> {
        let mut done = Checked { written: 0, spool_full: false };
        for e in entries {
            let steps: [(&str, bool); 3] = {
                let k = self.certs.get(&e.serial);
                let revoked = k.is_some_and(|k| k.revoked);
                [
                    ("CERT_ISSUED", k.is_none()),
                    ("CERT_REVOKED", e.status == CertStatus::Revoked && !revoked),
                    (
                        "CERT_EXPIRED",
                        e.status != CertStatus::Revoked
                            && !revoked
                            && !k.is_some_and(|k| k.expired)
                            && (e.status == CertStatus::Expired || e.expires <= now),
                    ),
                ]
            };
            for (kind, due) in steps {
                if !due {
                    continue;
                }
                if sink.append(&cert_event(kind, e, inventory))? == Stored::Dropped {
                    done.spool_full = true;
                    return Ok(done);
                }
                done.written += 1;
                let k = self.certs.entry(e.serial.clone()).or_insert_with(|| Known {
                    common_name: e.common_name.clone(),
                    expires: e.expires,
                    revoked: false,
                    expired: false,
                });
                k.expires = e.expires;
                match kind {
                    "CERT_REVOKED" => k.revoked = true,
                    "CERT_EXPIRED" => k.expired = true,
                    _ => {}
                }
            }
        }
        let present: HashSet<&str> = entries.iter().map(|e| e.serial.as_str()).collect();
        self.certs.retain(|serial, _| present.contains(serial.as_str()));
        Ok(done)
    }

    /// The earliest expiry not yet reported, so that the caller reads the
    /// file again when it passes even if the file does not change.
    pub fn next_expiry(&self) -> Option<i64> {
        self.certs.values().filter(|k| !k.revoked && !k.expired).map(|k| k.expires).min()
    }
}

fn cert_event(kind: &str, e: &IndexEntry, inventory: bool) -> Event {
    let mut ev = Event::new(kind);
    ev.push("common_name", e.common_name.clone());
    ev.push("cert_serial", openvpn_serial(&e.serial));
    ev.push("cert_serial_hex", e.serial.clone());
    ev.push("subject", e.subject.clone());
    ev.push("expires_at", event::unix_to_rfc3339(e.expires).unwrap_or_default());
    ev.push("status", e.status.as_str());
    if kind == "CERT_REVOKED" {
        if let Some(t) = e.revoked_at.and_then(event::unix_to_rfc3339) {
            ev.push("revoked_at", t);
        }
        if let Some(r) = &e.reason {
            ev.push("reason", r.clone());
        }
    }
    if inventory {
        ev.push("inventory", true);
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &[u8] = b"V\t361127073015Z\t\t8C3A01\tunknown\t/CN=alice\n\
R\t361127073015Z\t261127080000Z,keyCompromise\t0B\tunknown\t/C=US/CN=bob/emailAddress=b@x\n\
E\t20251127073015Z\t\t0C\tunknown\t/CN=carol\n\
X\tbroken\n\
V\t991301000000Z\t\t0D\tunknown\t/CN=bad-date\n";

    #[test]
    fn index_lines() {
        let (entries, bad) = parse_index(INDEX);
        assert_eq!(bad, vec![4, 5]);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].common_name, "alice");
        assert_eq!(entries[0].expires, asn1_time(b"20361127073015Z").unwrap());
        assert_eq!(entries[1].common_name, "bob");
        assert_eq!(entries[1].status, CertStatus::Revoked);
        assert_eq!(entries[1].reason.as_deref(), Some("keyCompromise"));
        assert_eq!(event::unix_to_rfc3339(entries[1].revoked_at.unwrap()).unwrap(), "2026-11-27T08:00:00Z");
        assert_eq!(entries[2].status, CertStatus::Expired);
        assert_eq!(asn1_time(b"500101000000Z"), asn1_time(b"19500101000000Z"));
        assert_eq!(asn1_time(b"1234Z"), None);
    }

    #[test]
    fn serial_as_openvpn_prints_it() {
        assert_eq!(openvpn_serial("8C3A01"), "8c:3a:01");
        assert_eq!(openvpn_serial("B"), "0b");
    }
}
