//! `AGENT_HEARTBEAT`: the agent's health as an event, written to the spool
//! and delivered like every other, so that its absence at the server means
//! exactly "this host's telemetry is not arriving" (docs/payload.md).
//!
//! Guarantees: every field is always present (null when unknown), so a
//! server's rule never has to tell "missing" from "zero"; `last_error` is
//! scrubbed ([`super::scrub`]); no client's name or address is in it, only
//! counts per OpenVPN instance.

use serde_json::{Value, json};

use super::{InstanceView, Vitals};
use crate::event::{self, Event};

pub const TYPE: &str = "AGENT_HEARTBEAT";

/// The heartbeat for `vitals` and the status files as last read.
/// `uptime_seconds` is how long this agent process has run.
pub fn event(vitals: &Vitals, uptime_seconds: u64, instances: &[InstanceView]) -> Event {
    let time = |t: Option<time::OffsetDateTime>| t.map_or(Value::Null, |t| Value::from(event::rfc3339(t)));
    let mut ev = Event::new(TYPE);
    let s = &vitals.spool;
    ev.push("agent_version", env!("CARGO_PKG_VERSION"));
    ev.push("started_at", time(vitals.started_at));
    ev.push("uptime_seconds", uptime_seconds);
    ev.push("queue_bytes", s.queue_bytes);
    ev.push("pending_chunks", s.pending_chunks);
    ev.push("pending_bytes", s.pending_bytes);
    ev.push("oldest_pending_at", time(s.oldest_pending));
    ev.push("failed_files", s.failed_files);
    ev.push("delivered_events_total", vitals.delivered_events_total);
    ev.push("dropped_events_total", vitals.dropped_events_total);
    ev.push("last_success_at", time(vitals.last_success_at));
    ev.push("consecutive_failures", vitals.consecutive_failures);
    ev.push("last_error", vitals.last_error.clone().map_or(Value::Null, Value::from));
    let list: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "instance": i.instance,
                "status_path": i.status_path,
                "status_updated_at": i.updated_at.and_then(event::unix_to_rfc3339),
                "clients": i.up.then_some(i.clients.len()),
            })
        })
        .collect();
    ev.push("instances", Value::Array(list));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::SpoolView;

    #[test]
    fn every_field_is_present_and_nulls_say_unknown() {
        let v = Vitals {
            spool: SpoolView { queue_bytes: 3, pending_chunks: 1, pending_bytes: 9, ..Default::default() },
            delivered_events_total: 5,
            last_error: Some("HTTP 503: busy".into()),
            ..Default::default()
        };
        let inst = InstanceView {
            status_path: "/run/openvpn-server/status-server.log".into(),
            instance: Some("server".into()),
            up: true,
            updated_at: Some(1_796_157_000),
            clients: Vec::new(),
            routes: Vec::new(),
        };
        let line: Value = serde_json::from_slice(&event(&v, 42, &[inst]).to_line(7)).unwrap();
        assert_eq!(line["type"], TYPE);
        assert_eq!((line["uptime_seconds"].clone(), line["pending_bytes"].clone()), (json!(42), json!(9)));
        assert_eq!((line["started_at"].clone(), line["oldest_pending_at"].clone()), (Value::Null, Value::Null));
        assert_eq!(line["last_error"], "HTTP 503: busy");
        assert_eq!(
            line["instances"],
            json!([{"instance": "server", "status_path": "/run/openvpn-server/status-server.log",
                    "status_updated_at": "2026-12-01T20:30:00Z", "clients": 0}])
        );
        assert_eq!(line.as_object().unwrap().len(), 4 + 14);
    }
}
