//! PKI health: which certificate and CRL files to watch, and when their
//! expiry is worth a warning (`CERT_EXPIRING`, `CRL_EXPIRING`,
//! `CRL_EXPIRED`, and `CERT_EXPIRED` with `cert_role` for the CA and server
//! certificates).
//!
//! Watched: each `OPENVPN_SERVER_CONF`'s `ca`, `cert` and `crl-verify`
//! (relative to the last `cd`, else the config's directory, as for the
//! status file), its inline `<ca>`/`<cert>` blocks, and the `ca.crt` and
//! `crl.pem` beside `EASYRSA_INDEX`; client certificates come from the
//! index itself (the caller passes them in).
//!
//! Rules, kept in `pki.state` (written after the events it covers, so a
//! restart repeats at most one round and misses nothing):
//! - a threshold of `EXPIRY_WARN_DAYS` is crossed when at most that many
//!   days are left; the smallest one crossed is reported, once, and the
//!   larger ones count as said (an agent that first sees a CRL 5 days
//!   before its end says "7", not "30" and then "7");
//! - the expiry itself is reported once, when it passes;
//! - what was said belongs to one serial (certificate) or one
//!   `nextUpdate` (CRL): a renewal is a new key, so it starts afresh;
//! - what was said about a file that cannot be read this round is kept;
//! - only what was said has an entry (a certificate far from its end has
//!   none), and an entry goes once its item is no longer watched, so the
//!   state is bounded by the warnings, not by the size of the PKI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::x509::{CertInfo, CrlInfo};
use super::{EventWriter, Stored};
use crate::event::{self, Event};
use crate::spool::SpoolError;

pub const PKI_STATE: &str = "pki.state";
/// Largest certificate or chain file read: anything beyond is not one.
pub const PKI_READ_CAP: u64 = 4 * 1024 * 1024;
/// How much of a CRL file is read: a CRL up to this size is read whole
/// (and must parse whole); a larger one (a CRL grows by tens of bytes per
/// revocation, without bound) is read only this far, enough for the PEM
/// of [`super::x509::CRL_HEAD_DER`] bytes of DER, where its expiry is.
pub const PKI_CRL_HEAD: u64 = 256 * 1024;
const DAY: i64 = 86_400;

/// What a watched certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ca,
    Server,
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ca => "ca",
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// What a watched file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Certs(Role),
    Crl,
}

/// Where the bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    File(PathBuf),
    /// An inline block of a config (its text).
    Inline(String),
    /// `crl-verify DIR dir`: revoked serials as file names, no expiry.
    CrlDir(PathBuf),
}

/// One file (or inline block) to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub holds: Holds,
    pub place: Place,
    /// What events and messages name: the path, or `CONF#<ca>` inline.
    pub label: String,
    pub instance: Option<String>,
    /// A file Easy-RSA may not have made (its `crl.pem` before the first
    /// `gen-crl`): its absence is not worth a warning.
    pub optional: bool,
}

/// The `ca`, `cert` and `crl-verify` of a config's text, paths resolved as
/// OpenVPN resolves them (the last `cd`, else the config's directory).
pub fn from_conf(conf: &Path, text: &str) -> Vec<Watched> {
    let conf_dir = conf.parent().map(Path::to_path_buf).unwrap_or_default();
    let instance = super::conf::instance_name(conf);
    let mut cd: Option<PathBuf> = None;
    // The last of each wins, as in OpenVPN; `crl-verify DIR dir` is a
    // directory of revoked serials.
    let mut named: BTreeMap<&'static str, (String, bool)> = BTreeMap::new();
    for d in crate::ovpn_conf::directives(text) {
        let name = match d.name() {
            "cd" if d.words.len() >= 2 => {
                cd = Some(conf_dir.join(d.arg()));
                continue;
            }
            "ca" => "ca",
            "cert" => "cert",
            "crl-verify" => "crl-verify",
            _ => continue,
        };
        if d.words.len() >= 2 {
            let dir = name == "crl-verify" && d.words.get(2).is_some_and(|w| w == "dir");
            named.insert(name, (d.arg().to_string(), dir));
        }
    }
    let base = cd.unwrap_or(conf_dir);
    let mut out = Vec::new();
    for (name, holds) in
        [("ca", Holds::Certs(Role::Ca)), ("cert", Holds::Certs(Role::Server)), ("crl-verify", Holds::Crl)]
    {
        let inline_text = inline_block(text, name);
        let place = match named.get(name) {
            Some((arg, _)) if arg == "[[INLINE]]" => inline_text.map(Place::Inline),
            Some((arg, dir)) => {
                let p = PathBuf::from(arg);
                let p = if p.is_absolute() { p } else { base.join(p) };
                Some(if *dir { Place::CrlDir(p) } else { Place::File(p) })
            }
            None => inline_text.map(Place::Inline),
        };
        let Some(place) = place else { continue };
        let label = match &place {
            Place::File(p) | Place::CrlDir(p) => p.display().to_string(),
            Place::Inline(_) => format!("{}#<{name}>", conf.display()),
        };
        out.push(Watched { holds, place, label, instance: instance.clone(), optional: false });
    }
    out
}

/// The text of the config's `<tag>` … `</tag>` block, if any.
fn inline_block(text: &str, tag: &str) -> Option<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut lines = text.lines().map(str::trim);
    lines.by_ref().find(|l| *l == open)?;
    let mut body = String::new();
    for l in lines {
        if l == close {
            return Some(body);
        }
        body.push_str(l);
        body.push('\n');
    }
    // An unterminated block: OpenVPN refuses the config; read what is there.
    Some(body)
}

/// The PKI's own `ca.crt` and `crl.pem` beside `index.txt`.
pub fn from_index(index: &Path) -> Vec<Watched> {
    let Some(dir) = index.parent() else { return Vec::new() };
    [("ca.crt", Holds::Certs(Role::Ca)), ("crl.pem", Holds::Crl)]
        .into_iter()
        .map(|(name, holds)| {
            let p = dir.join(name);
            Watched { holds, label: p.display().to_string(), place: Place::File(p), instance: None, optional: true }
        })
        .collect()
}

/// A watched item's contents, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Certs(Vec<CertInfo>),
    Crl(CrlInfo),
}

/// Parses `bytes` as what `w` holds; for a CRL, more than
/// [`PKI_CRL_HEAD`] bytes means only the start of a larger file was read
/// (its header is decoded, not the rest).
pub fn parse(holds: Holds, bytes: &[u8]) -> Result<Reading, String> {
    match holds {
        Holds::Certs(_) => super::x509::certificates(bytes).map(Reading::Certs),
        Holds::Crl => match bytes.get(..PKI_CRL_HEAD as usize) {
            Some(head) if bytes.len() as u64 > PKI_CRL_HEAD => super::x509::crl_head(head).map(Reading::Crl),
            _ => super::x509::crl(bytes).map(Reading::Crl),
        },
    }
}

/// When a certificate file as a whole stops working, for `status`: a CA
/// file by its latest certificate (a rollover bundle still holding the
/// expired old root works while the new one does; each certificate's own
/// end still comes as its own event and `check` line), any other by its
/// earliest (a server certificate with its chain fails at its first end).
pub fn file_expiry(role: Role, certs: &[CertInfo]) -> Option<i64> {
    let ends = certs.iter().map(|c| c.not_after);
    if role == Role::Ca { ends.max() } else { ends.min() }
}

/// What has been said about one certificate (one serial) or one CRL (one
/// `nextUpdate`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    /// Thresholds (days) already reported or passed over.
    #[serde(default)]
    pub warned: BTreeSet<u32>,
    #[serde(default)]
    pub expired: bool,
}

/// One expiry last seen, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// `ca`, `server` or `crl`.
    pub what: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Unix seconds; `None`: never (a CRL without `nextUpdate`).
    pub expires: Option<i64>,
}

/// `pki.state`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiBook {
    /// By item key: `ROLE\tINSTANCE\tLABEL\tSERIAL`, `crl\tINSTANCE\tLABEL\tNEXT_UPDATE`.
    #[serde(default)]
    pub said: BTreeMap<String, Said>,
    /// The CA, server certificates and CRLs as last read (for `status`).
    #[serde(default)]
    pub seen: Vec<Seen>,
    /// Expiry of each valid client certificate in the index (for `status`).
    #[serde(default)]
    pub clients: Vec<i64>,
}

/// One certificate or CRL to judge this round.
pub struct Item<'a> {
    pub source: &'a Watched,
    pub what: ItemKind<'a>,
}

pub enum ItemKind<'a> {
    Cert(Role, &'a CertInfo),
    Crl(&'a CrlInfo),
}

impl Item<'_> {
    fn key(&self) -> String {
        let inst = self.source.instance.as_deref().unwrap_or("");
        match &self.what {
            ItemKind::Cert(role, c) => format!("{}\t{inst}\t{}\t{}", role.as_str(), self.source.label, c.serial_hex),
            ItemKind::Crl(c) => {
                format!(
                    "crl\t{inst}\t{}\t{}",
                    self.source.label,
                    c.next_update.map_or("never".into(), |t| t.to_string())
                )
            }
        }
    }

    fn expires(&self) -> Option<i64> {
        match &self.what {
            ItemKind::Cert(_, c) => Some(c.not_after),
            ItemKind::Crl(c) => c.next_update,
        }
    }
}

/// Whole days left, rounded down; after the end, whole days since, as a
/// negative number (0 on the day it passed).
pub fn days_left(expires: i64, now: i64) -> i64 {
    if expires > now { (expires - now) / DAY } else { -((now - expires) / DAY) }
}

/// What is due for an item with `said` at `now`: `Some(Some(t))` a warning
/// at threshold `t`, `Some(None)` the expiry, `None` nothing.
fn due(expires: i64, now: i64, thresholds: &[u32], said: &Said) -> Option<Option<u32>> {
    if expires <= now {
        return (!said.expired).then_some(None);
    }
    let crossed = thresholds.iter().copied().filter(|&t| expires - now <= i64::from(t) * DAY).min()?;
    (!said.warned.contains(&crossed)).then_some(Some(crossed))
}

/// How a round went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judged {
    pub written: usize,
    pub spool_full: bool,
}

impl PkiBook {
    /// Writes the warnings due among `items` at `now`. `unread`: the
    /// labels watched but not read this round, whose entries are kept (the
    /// file may read again); every other entry not among `items` is
    /// forgotten (renewed, revoked, or no longer watched). Client
    /// certificates whose `CERT_EXPIRED` the index already gives get none
    /// here.
    pub fn judge(
        &mut self,
        items: &[Item<'_>],
        unread: &BTreeSet<String>,
        thresholds: &[u32],
        sink: &EventWriter,
        now: i64,
    ) -> Result<Judged, SpoolError> {
        let mut done = Judged::default();
        let mut present = BTreeSet::new();
        for item in items {
            let key = item.key();
            present.insert(key.clone());
            let Some(expires) = item.expires() else { continue };
            // Looked up, not inserted: only what was said takes a place in
            // the state, so it stays as small as the warnings, not the PKI.
            let mut said = self.said.get(&key).cloned().unwrap_or_default();
            let Some(what) = due(expires, now, thresholds, &said) else { continue };
            let client_expiry = what.is_none() && matches!(item.what, ItemKind::Cert(Role::Client, _));
            if client_expiry {
                // index.txt's CERT_EXPIRED says it: nothing written, nothing
                // to remember.
                continue;
            }
            if sink.append(&pki_event(item, what, now))? == Stored::Dropped {
                done.spool_full = true;
                return Ok(done);
            }
            done.written += 1;
            match what {
                Some(t) => said.warned.extend(thresholds.iter().copied().filter(|&x| x >= t)),
                None => {
                    said.expired = true;
                    said.warned.extend(thresholds.iter().copied());
                }
            }
            self.said.insert(key, said);
        }
        self.said.retain(|key, _| {
            let label = key.split('\t').nth(2).unwrap_or("");
            present.contains(key) || unread.contains(label)
        });
        Ok(done)
    }
}

fn pki_event(item: &Item<'_>, what: Option<u32>, now: i64) -> Event {
    let expires = item.expires().unwrap_or(now);
    let kind = match (&item.what, what) {
        (ItemKind::Cert(..), Some(_)) => "CERT_EXPIRING",
        (ItemKind::Cert(..), None) => "CERT_EXPIRED",
        (ItemKind::Crl(_), Some(_)) => "CRL_EXPIRING",
        (ItemKind::Crl(_), None) => "CRL_EXPIRED",
    };
    let mut ev = Event::new(kind);
    let at = event::unix_to_rfc3339(expires).unwrap_or_default();
    match &item.what {
        ItemKind::Cert(role, c) => {
            ev.push("cert_role", role.as_str());
            ev.push("common_name", c.common_name.clone());
            ev.push("cert_serial", super::certs::openvpn_serial(&c.serial_hex));
            ev.push("cert_serial_hex", c.serial_hex.clone());
            ev.push("subject", c.subject.clone());
            ev.push("expires_at", at);
            if what.is_none() {
                ev.push("status", "expired");
            }
        }
        ItemKind::Crl(c) => {
            ev.push("issuer", c.issuer.clone());
            ev.push("next_update", at);
        }
    }
    if !(what.is_none() && matches!(item.what, ItemKind::Cert(..))) {
        ev.push("days_left", days_left(expires, now));
        ev.push("threshold_days", what.unwrap_or(0));
    }
    ev.push("path", item.source.label.clone());
    if let Some(i) = &item.source.instance {
        ev.push("instance", i.clone());
    }
    ev
}

/// PKI health as the agent last read it (`pki.state`), for `status`: per
/// instance (`-` for the PKI beside `index.txt`) the days left of its CA
/// (its file's latest certificate, [`file_expiry`]), server certificate and CRL (`null`: a
/// CRL that never expires), and how many client certificates end within
/// `within_days`. Read like anything in the spool: regular files only,
/// never through a link, bounded, and only when `owners` (root or the
/// agent: the hooks' user can plant files in the spool) owns it.
pub fn report(spool_dir: &Path, now: i64, within_days: u32, owners: &crate::fsutil::Owners) -> serde_json::Value {
    let path = spool_dir.join(PKI_STATE);
    // None yet is no news (the agent has not run a round); anything else
    // that keeps the state from being read is said, not shown as "no
    // PKI problems".
    let (book, error): (PkiBook, Option<String>) = match crate::fsutil::read_capped(&path, super::READ_CAP, owners) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (PkiBook::default(), None),
        Err(e) => (PkiBook::default(), Some(format!("cannot read {}: {e}", path.display()))),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(book) => (book, None),
            Err(e) => (PkiBook::default(), Some(format!("cannot read {}: {e}", path.display()))),
        },
    };
    let mut instances = serde_json::Map::new();
    for seen in &book.seen {
        let name = seen.instance.clone().unwrap_or_else(|| "-".into());
        let entry = instances.entry(name).or_insert_with(|| serde_json::json!({}));
        let days = seen.expires.map(|t| days_left(t, now));
        let earlier = entry.get(&seen.what).and_then(|v| v["expires"].as_i64());
        if entry.get(&seen.what).is_none() || matches!((seen.expires, earlier), (Some(t), Some(e)) if t < e) {
            // `expires` (unix seconds) beside the rounded days: under a
            // day left is 0 days but not expired.
            entry[&seen.what] = serde_json::json!({
                "days_left": days,
                "expires": seen.expires,
                "expired": seen.expires.map(|t| t <= now),
                "path": seen.label,
            });
        }
    }
    let horizon = now + i64::from(within_days) * DAY;
    let mut out = serde_json::json!({
        "instances": instances,
        "clients_expiring": book.clients.iter().filter(|&&t| t > now && t <= horizon).count(),
        "clients_expired": book.clients.iter().filter(|&&t| t <= now).count(),
        "within_days": within_days,
    });
    if let Some(e) = error {
        out["error"] = crate::fsutil::printable(&e).into();
    }
    out
}

/// `status`'s lines for [`report`]: (label, text).
pub fn report_lines(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(e) = report["error"].as_str() {
        out.push(("PKI".to_string(), format!("unknown: {e}")));
    }
    let days = |v: &serde_json::Value| match &v["days_left"] {
        serde_json::Value::Null if v.is_object() => "never expires".to_string(),
        serde_json::Value::Null => "-".to_string(),
        _ if v["expired"] == true => "expired".to_string(),
        d => format!("{d} d"),
    };
    if let Some(map) = report["instances"].as_object() {
        for (name, v) in map {
            out.push((
                format!("PKI {name}"),
                format!("CA {}, server cert {}, CRL {}", days(&v["ca"]), days(&v["server"]), days(&v["crl"])),
            ));
        }
    }
    if out.is_empty() && report["clients_expiring"] == 0 && report["clients_expired"] == 0 {
        return out;
    }
    out.push((
        "client certs".into(),
        format!(
            "{} expire within {} d, {} expired (valid in index.txt)",
            report["clients_expiring"], report["within_days"], report["clients_expired"]
        ),
    ));
    out
}

pub mod check;
pub mod round;
#[cfg(test)]
mod tests;
