//! OpenVPN's status file (`status FILE [n]`), versions 1, 2 and 3, as
//! written by `multi_print_status` in OpenVPN 2.1–2.7: the data model and
//! [`parse`], which finds the format and hands the body to its reader.
//!
//! OpenVPN rewrites the file in place (seek 0, one `write` per line,
//! truncate), so a reader can catch it half-written: new lines followed by
//! the tail of the old file. A read is therefore accepted only when it is
//! well-formed from the first line to a final `END`: every line of a known
//! kind in the order OpenVPN writes them, no row shorter than its header
//! (the tail of an old line is), and every routing row pointing at a listed
//! client (a stale tail names clients the new head does not list). Anything
//! else is [`StatusError`] and the caller skips the round; nothing here
//! panics.
//!
//! A common name or username may contain the separator, so rows are read
//! by the shapes of their columns (`columns`), and a row that reads more
//! than one way is settled by the routing table (`resolve`): a row with no
//! single reading costs that row, listed in [`Status::unreadable`], never
//! the file, and is never attributed to another session.
//!
//! Guarantees: strings are cleaned and capped like hook fields
//! ([`crate::event::clean`]); `connected_since` is the `time_t` OpenVPN
//! gave the hook as `time_unix`, so `session_id`s match; a session listed
//! twice is listed once. Version 1 has only a local date; it is turned
//! into `time_t` with the offset between the file's `Updated` line and its
//! mtime (exact unless a DST change happened since the client connected).

mod columns;
mod resolve;
mod v1;
mod v23;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::event;

use v1::parse_v1;
use v23::parse_v23;

/// One connected client as the status file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub common_name: String,
    /// `Real Address` as printed: `1.2.3.4:5555`, a bare IPv6 address
    /// (2.4–2.6 print no port for IPv6), or with 2.7's protocol prefix
    /// (`udp4:1.2.3.4:5555`, `udp6:[2001:db8::1]:5555`).
    pub real_address: String,
    pub real_ip: String,
    /// Empty when the file has none (IPv6 clients before 2.7).
    pub real_port: String,
    pub virtual_ip: String,
    pub virtual_ipv6: Option<String>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Unix time of the connect (OpenVPN's `mi->created`).
    pub connected_since: i64,
    pub username: Option<String>,
}

impl Client {
    pub fn session_id(&self) -> String {
        event::session_id(&self.common_name, &self.real_ip, &self.real_port, self.connected_since)
    }
}

/// A complete, consistent status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: u8,
    /// When OpenVPN wrote it (unix), from `TIME`/`Updated`.
    pub written_at: Option<i64>,
    pub clients: Vec<Client>,
    /// `GLOBAL_STATS,dco_enabled,1` (2.6+, versions 2/3 only).
    pub dco: Option<bool>,
    /// Rows left out because they could not be read unambiguously.
    pub unreadable: Vec<RowError>,
    /// The routing table (versions 2 and 3; version 1 prints no `time_t`),
    /// readable rows only.
    pub routes: Vec<RouteEntry>,
}

/// One `ROUTING_TABLE` row, columns as printed (cleaned like a client's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub virtual_address: String,
    pub common_name: String,
    pub real_address: String,
    /// `Last Ref (time_t)`.
    pub last_ref: i64,
}

/// One row left out: 1-based line number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Why a read was not accepted; the caller logs it and skips the round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    /// No final `END` line: being rewritten, truncated, or empty.
    Incomplete,
    /// Not a status file, or a half-rewritten one; `line` is 1-based.
    Malformed { line: usize, what: String },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Incomplete => write!(f, "incomplete (no final END line; OpenVPN may be rewriting it)"),
            StatusError::Malformed { line, what } => write!(f, "line {line}: {what}"),
        }
    }
}

fn bad(line: usize, what: impl Into<String>) -> StatusError {
    StatusError::Malformed { line, what: what.into() }
}

/// Parses a whole status file. `mtime` (unix seconds) is only used by
/// version 1 to learn the local UTC offset OpenVPN printed times in.
pub fn parse(bytes: &[u8], mtime: Option<i64>) -> Result<Status, StatusError> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    // `PACKET_TRUNCATION_CHECK` builds print an ERRORS table after END.
    let end = lines.iter().rposition(|l| *l == b"END").ok_or(StatusError::Incomplete)?;
    if lines[end + 1..].iter().any(|l| !l.starts_with(b"ERRORS") && !l.starts_with(b"HEADER,ERRORS")) {
        return Err(StatusError::Incomplete);
    }
    let body = &lines[..end];
    let mut status = match body.first() {
        Some(l) if *l == b"OpenVPN CLIENT LIST" => parse_v1(body, mtime),
        Some(l) if l.starts_with(b"TITLE,") => parse_v23(body, b',', 2),
        Some(l) if l.starts_with(b"TITLE\t") => parse_v23(body, b'\t', 3),
        _ => Err(bad(1, "not an OpenVPN status file (expected TITLE or \"OpenVPN CLIENT LIST\")")),
    }?;
    // OpenVPN 2.3 was seen printing a CLIENT_LIST row twice: one session.
    // A session_id is a hash (UUIDv5) of the name, real IP, port and
    // connect time, so only clients that share a real IP and a connect
    // time can share one: only they are hashed.
    let mut peers: HashMap<(&str, i64), usize> = HashMap::with_capacity(status.clients.len());
    for c in &status.clients {
        *peers.entry((c.real_ip.as_str(), c.connected_since)).or_default() += 1;
    }
    let shared: Vec<bool> =
        status.clients.iter().map(|c| peers[&(c.real_ip.as_str(), c.connected_since)] > 1).collect();
    drop(peers);
    let mut seen = HashSet::new();
    let mut shared = shared.into_iter();
    status.clients.retain(|c| !shared.next().unwrap_or(true) || seen.insert(c.session_id()));
    Ok(status)
}
