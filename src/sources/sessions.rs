//! `SESSION_UPDATE` and `SESSION_SNAPSHOT` from a parsed status file.
//!
//! Updates carry byte totals and the deltas since the previous *stored*
//! update of the same session. The baselines live in `sessions.state` in
//! the spool so deltas survive an agent restart; a baseline moves only
//! after its event was stored (so a refused event's bytes are carried into
//! the next delta) and never backwards (DCO builds may report zero or stale
//! counters: the delta is then 0, never negative). A session seen for the
//! first time has baseline 0, so a session's deltas always add up to its
//! last total.
//!
//! Updates are written at most once per rewrite of the status file: a file
//! whose own timestamp has not moved holds no new numbers.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::conf::StatusSource;
use super::status_file::{Client, Status};
use super::{EventWriter, Stored};
use crate::event::{self, Event};
use crate::spool::SpoolError;

/// At most this many sessions per `SESSION_SNAPSHOT` event ...
pub const SNAPSHOT_PART_SESSIONS: usize = 500;
/// ... and about this many bytes of session list, so one line stays well
/// under `MAX_BATCH_BYTES`.
pub const SNAPSHOT_PART_BYTES: usize = 256 * 1024;
/// Baselines of sessions not seen for this long are forgotten (their status
/// file may have gone from the configuration).
const FORGET_AFTER_SECONDS: i64 = 7 * 86_400;

/// The counters of one session as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub rx: u64,
    pub tx: u64,
    /// Status file the session was read from.
    pub source: String,
    /// Unix time it was last seen.
    pub seen: i64,
}

/// What `sessions.state` holds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBook {
    #[serde(default)]
    pub sessions: BTreeMap<String, Baseline>,
    /// Per status file: its timestamp at the last update round.
    #[serde(default)]
    pub last_update: BTreeMap<String, i64>,
    /// Per status file: rows left out as unreadable in its last read (for
    /// `status`); absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, usize>,
}

impl SessionBook {
    /// Forgets the per-file records (timestamp, unreadable rows) of status
    /// files not in `configured`; whether any was forgotten. Sessions'
    /// baselines age out on their own.
    pub fn keep_only(&mut self, configured: &std::collections::BTreeSet<String>) -> bool {
        let before = self.last_update.len() + self.unreadable.len();
        self.last_update.retain(|k, _| configured.contains(k));
        self.unreadable.retain(|k, _| configured.contains(k));
        before != self.last_update.len() + self.unreadable.len()
    }
}

/// How an update round went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    Written(usize),
    /// The file was not rewritten since the last round.
    Unchanged,
    /// The spool refused an event; this many were written before it.
    SpoolFull(usize),
}

/// `(delta, new baseline)`: a counter that went backwards gives 0 and keeps
/// the old baseline.
fn delta(total: u64, base: Option<u64>) -> (u64, u64) {
    match base {
        None => (total, total),
        Some(b) if total >= b => (total - b, total),
        Some(b) => (0, b),
    }
}

impl SessionBook {
    /// Writes one `SESSION_UPDATE` per connected client of `status`.
    /// Errors leave the book updated for the events already stored.
    pub fn update(
        &mut self,
        status: &Status,
        src: &StatusSource,
        sink: &EventWriter,
        now: i64,
    ) -> Result<Updated, SpoolError> {
        let key = src.path.display().to_string();
        let stamp = status.written_at;
        if stamp.is_some() && self.last_update.get(&key) == stamp.as_ref() {
            return Ok(Updated::Unchanged);
        }
        let mut written = 0;
        for c in &status.clients {
            let id = c.session_id();
            let base = self.sessions.get(&id);
            let (rx_delta, rx) = delta(c.bytes_received, base.map(|b| b.rx));
            let (tx_delta, tx) = delta(c.bytes_sent, base.map(|b| b.tx));
            if base.is_some_and(|b| c.bytes_received < b.rx || c.bytes_sent < b.tx) {
                log::debug!("{key}: counters of session {id} went backwards (DCO?); delta 0");
            }
            let mut ev = Event::new("SESSION_UPDATE");
            push_identity(&mut ev, c, &id);
            if let Some(v) = &c.virtual_ipv6 {
                ev.push("virtual_ipv6", v.clone());
            }
            if let Some(u) = &c.username {
                ev.push("username", u.clone());
            }
            ev.push("bytes_received", c.bytes_received);
            ev.push("bytes_sent", c.bytes_sent);
            ev.push("bytes_received_delta", rx_delta);
            ev.push("bytes_sent_delta", tx_delta);
            ev.push("connected_since", event::unix_to_rfc3339(c.connected_since).unwrap_or_default());
            if let Some(i) = &src.instance {
                ev.push("instance", i.clone());
            }
            if let Some(t) = stamp.and_then(event::unix_to_rfc3339) {
                ev.push("status_time", t);
            }
            match sink.append(&ev)? {
                Stored::Yes => {}
                Stored::Dropped => return Ok(Updated::SpoolFull(written)),
            }
            self.sessions.insert(id, Baseline { rx, tx, source: key.clone(), seen: now });
            written += 1;
        }
        let live: HashSet<String> = status.clients.iter().map(Client::session_id).collect();
        // A row left out as unreadable may be a session still connected:
        // its baseline stays (until FORGET_AFTER_SECONDS), or its next
        // readable update would count its whole total again.
        let unsure = !status.unreadable.is_empty();
        self.sessions
            .retain(|id, b| (b.source != key || live.contains(id) || unsure) && b.seen > now - FORGET_AFTER_SECONDS);
        if let Some(t) = stamp {
            self.last_update.insert(key, t);
        }
        Ok(Updated::Written(written))
    }
}

/// The fields every session event starts with, in the hooks' order.
fn push_identity(ev: &mut Event, c: &Client, id: &str) {
    ev.push("common_name", c.common_name.clone());
    ev.push("real_ip", c.real_ip.clone());
    ev.push("real_port", c.real_port.clone());
    ev.push("virtual_ip", c.virtual_ip.clone());
    ev.push("session_id", id.to_string());
}

/// One snapshot of the sessions in `status`, split into parts that share a
/// `snapshot_id` when the list is long.
pub fn snapshot_events(status: &Status, src: &StatusSource) -> Vec<Event> {
    let mut parts: Vec<Vec<Value>> = vec![Vec::new()];
    let mut bytes = 0;
    for c in &status.clients {
        let entry = json!({
            "session_id": c.session_id(),
            "common_name": c.common_name,
            "real_ip": c.real_ip,
            "real_port": c.real_port,
            "virtual_ip": c.virtual_ip,
            "connected_since": event::unix_to_rfc3339(c.connected_since).unwrap_or_default(),
        });
        let size = entry.to_string().len() + 1;
        let last = parts.len() - 1;
        if !parts[last].is_empty()
            && (parts[last].len() >= SNAPSHOT_PART_SESSIONS || bytes + size > SNAPSHOT_PART_BYTES)
        {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(p) = parts.last_mut() {
            p.push(entry);
        }
    }
    let snapshot_id = Uuid::new_v4().to_string();
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, sessions)| {
            let mut ev = Event::new("SESSION_SNAPSHOT");
            ev.push("snapshot_id", snapshot_id.clone());
            ev.push("part", i + 1);
            ev.push("parts", count);
            ev.push("session_count", status.clients.len());
            if let Some(t) = status.written_at.and_then(event::unix_to_rfc3339) {
                ev.push("status_time", t);
            }
            if let Some(inst) = &src.instance {
                ev.push("instance", inst.clone());
            }
            ev.push("sessions", Value::Array(sessions));
            ev
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: usize, rx: u64, tx: u64) -> Client {
        Client {
            common_name: format!("user{n}"),
            real_address: format!("198.51.100.{}:{}", n % 250, 1000 + n),
            real_ip: format!("198.51.100.{}", n % 250),
            real_port: format!("{}", 1000 + n),
            virtual_ip: format!("10.8.{}.{}", n / 250, n % 250),
            virtual_ipv6: None,
            bytes_received: rx,
            bytes_sent: tx,
            connected_since: 1_795_762_800,
            username: None,
        }
    }

    #[test]
    fn deltas_never_go_negative() {
        assert_eq!(delta(100, None), (100, 100));
        assert_eq!(delta(150, Some(100)), (50, 150));
        assert_eq!(delta(0, Some(150)), (0, 150));
        assert_eq!(delta(170, Some(150)), (20, 170));
    }

    #[test]
    fn snapshot_splits_into_bounded_parts() {
        let src = StatusSource { path: "/s".into(), instance: Some("server".into()) };
        let clients: Vec<Client> = (0..1201).map(|n| client(n, 0, 0)).collect();
        let status = Status {
            version: 2,
            written_at: Some(1_795_764_615),
            clients,
            dco: None,
            unreadable: Vec::new(),
            routes: Vec::new(),
        };
        let evs = snapshot_events(&status, &src);
        assert_eq!(evs.len(), 3);
        let mut ids = HashSet::new();
        for (i, ev) in evs.iter().enumerate() {
            let line: Value = serde_json::from_slice(&ev.to_line(1)).unwrap();
            assert_eq!(line["part"], i + 1);
            assert_eq!(line["parts"], 3);
            assert_eq!(line["session_count"], 1201);
            assert_eq!(line["snapshot_id"], evs[0].fields[0].1);
            assert_eq!(line["status_time"], "2026-11-27T07:30:15Z");
            for s in line["sessions"].as_array().unwrap() {
                assert!(ids.insert(s["session_id"].as_str().unwrap().to_string()));
            }
        }
        assert_eq!(ids.len(), 1201);
        let empty = Status { clients: Vec::new(), ..status };
        let evs = snapshot_events(&empty, &src);
        assert_eq!(evs.len(), 1);
        assert_eq!(serde_json::from_slice::<Value>(&evs[0].to_line(1)).unwrap()["sessions"], json!([]));
    }
}
