//! OTLP/HTTP logs (`TELEMETRY_FORMAT=otlp`): each batch as one
//! `ExportLogsServiceRequest` in the OTLP JSON encoding (lowerCamelCase
//! names, 64-bit integers as strings), so an OpenTelemetry Collector (or
//! anything that speaks OTLP) can take the place of a bespoke server.
//!
//! Mapping (the README shows an example):
//! - one `ResourceLogs` per OpenVPN instance in the batch (most batches
//!   have one), with `service.name`, `service.version`, `host.name`,
//!   `openvpn.server_id` and, when events carry one, `openvpn.instance`;
//! - one `LogRecord` per event: `timeUnixNano` from `event_time_vpn`,
//!   `observedTimeUnixNano` the send time, `eventName` the event type,
//!   severity INFO (WARN for `TELEMETRY_EVENTS_DROPPED`), every field as an
//!   attribute (semantic-convention names where one exists: `client.address`,
//!   `client.port`, `user.name`; `openvpn.<field>` for the rest, so
//!   `openvpn.event_id`, `openvpn.session_id`, `openvpn.seq`), and the event
//!   exactly as the hook wrote it as the body, so nothing is lost in
//!   translation.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SCOPE: &str = "openvpn-telemetry";

/// The attribute an event field becomes.
fn attribute_key(field: &str) -> String {
    match field {
        "real_ip" => "client.address".into(),
        "real_port" => "client.port".into(),
        "username" => "user.name".into(),
        other => format!("openvpn.{other}"),
    }
}

/// An OTLP `AnyValue`; `None` for JSON null.
fn any_value(v: &Value) -> Option<Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(i) => json!({ "intValue": i.to_string() }),
            // Over i64: OTLP has no unsigned 64-bit; keep the digits.
            None => json!({ "stringValue": n.to_string() }),
        },
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    })
}

fn key_value(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

fn string_attr(key: &str, value: &str) -> Value {
    key_value(key, json!({ "stringValue": value }))
}

fn unix_nanos(t: OffsetDateTime) -> String {
    t.unix_timestamp_nanos().max(0).to_string()
}

/// One event line as a `LogRecord` (with the instance it belongs to), or
/// `None` for a line that is not a JSON object (delivery never sends one).
fn log_record(line: &[u8], observed: &str) -> Option<(Option<String>, Value)> {
    let event: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("EVENT").to_string();
    let mut attributes = Vec::with_capacity(event.len());
    for (field, value) in &event {
        let key = attribute_key(field);
        // client.port is an int in the conventions; a port that is not a
        // number keeps its own name instead.
        if key == "client.port" {
            match value.as_str().and_then(|p| p.parse::<u16>().ok()).or(value.as_u64().map(|p| p as u16)) {
                Some(port) => attributes.push(key_value(&key, json!({ "intValue": port.to_string() }))),
                None => {
                    if let Some(v) = any_value(value) {
                        attributes.push(key_value("openvpn.real_port", v));
                    }
                }
            }
            continue;
        }
        if let Some(v) = any_value(value) {
            attributes.push(key_value(&key, v));
        }
    }
    let warn = kind == "TELEMETRY_EVENTS_DROPPED";
    let mut record = json!({
        "observedTimeUnixNano": observed,
        "severityNumber": if warn { 13 } else { 9 },
        "severityText": if warn { "WARN" } else { "INFO" },
        "eventName": kind,
        "body": { "stringValue": String::from_utf8_lossy(line) },
        "attributes": attributes,
    });
    if let Some(t) =
        event.get("event_time_vpn").and_then(Value::as_str).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    {
        record["timeUnixNano"] = Value::String(unix_nanos(t));
    }
    let instance = event.get("instance").and_then(Value::as_str).map(str::to_string);
    Some((instance, record))
}

/// The `ExportLogsServiceRequest` for a batch (an empty batch is
/// `{"resourceLogs":[]}`, which `check` sends to test an endpoint).
pub fn export_request(server_id: &str, host: &str, events: &[&[u8]]) -> Vec<u8> {
    let observed = unix_nanos(OffsetDateTime::now_utc());
    let mut groups: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    for line in events {
        let Some((instance, record)) = log_record(line, &observed) else { continue };
        match groups.iter_mut().find(|(i, _)| *i == instance) {
            Some((_, records)) => records.push(record),
            None => groups.push((instance, vec![record])),
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let resource_logs: Vec<Value> = groups
        .into_iter()
        .map(|(instance, records)| {
            let mut attributes = vec![
                string_attr("service.name", SCOPE),
                string_attr("service.version", version),
                string_attr("host.name", host),
                string_attr("openvpn.server_id", server_id),
            ];
            if let Some(i) = &instance {
                attributes.push(string_attr("openvpn.instance", i));
            }
            json!({
                "resource": { "attributes": attributes },
                "scopeLogs": [{ "scope": { "name": SCOPE, "version": version }, "logRecords": records }],
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceLogs": resource_logs })).unwrap_or_default()
}

/// An upper bound on the bytes one event line adds to the request, so
/// `MAX_BATCH_BYTES` bounds the OTLP body: the line itself as the body
/// (escaping at most doubles it), its fields again as attributes, and the
/// fixed parts of a record.
pub fn cost(line: &[u8]) -> usize {
    3 * line.len() + 512
}

/// Bytes the request adds around the records (resource, scope).
pub const OVERHEAD: usize = 1024;

/// `partialSuccess` of a 2xx answer: how many records the receiver
/// rejected, and its message. `None` when it rejected none.
pub fn rejected(answer: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let partial = v.get("partialSuccess")?;
    let n = match partial.get("rejectedLogRecords")? {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    let message = partial.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_string();
    (n > 0).then_some((n, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_log_records_with_conventional_names() {
        let line = br#"{"event_id":"e1","seq":7,"type":"CLIENT_CONNECT","event_time_vpn":"2026-12-01T10:00:00Z","common_name":"alice","real_ip":"203.0.113.5","real_port":"52137","username":"al","instance":"server","bytes_sent":null}"#;
        let dropped = br#"{"event_id":"e2","seq":8,"type":"TELEMETRY_EVENTS_DROPPED","count":3}"#;
        let body = export_request("vpn-1", "host-a", &[line, dropped]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["resourceLogs"].as_array().unwrap().len(), 2, "one resource per instance");
        let res = &v["resourceLogs"][0];
        let attrs = |a: &Value| -> Vec<(String, Value)> {
            a.as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
                .collect()
        };
        let r = attrs(&res["resource"]["attributes"]);
        assert!(r.contains(&("openvpn.instance".into(), json!({"stringValue":"server"}))));
        assert!(r.contains(&("openvpn.server_id".into(), json!({"stringValue":"vpn-1"}))));
        let rec = &res["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["eventName"], "CLIENT_CONNECT");
        assert_eq!(rec["timeUnixNano"], "1796119200000000000");
        assert_eq!(rec["severityText"], "INFO");
        assert_eq!(rec["body"]["stringValue"].as_str().unwrap().as_bytes(), &line[..]);
        let a = attrs(&rec["attributes"]);
        assert!(a.contains(&("client.address".into(), json!({"stringValue":"203.0.113.5"}))));
        assert!(a.contains(&("client.port".into(), json!({"intValue":"52137"}))));
        assert!(a.contains(&("user.name".into(), json!({"stringValue":"al"}))));
        assert!(a.contains(&("openvpn.seq".into(), json!({"intValue":"7"}))));
        assert!(a.contains(&("openvpn.event_id".into(), json!({"stringValue":"e1"}))));
        assert!(!a.iter().any(|(k, _)| k == "openvpn.bytes_sent"), "null is left out");
        let warn = &v["resourceLogs"][1]["scopeLogs"][0]["logRecords"][0];
        assert_eq!((warn["severityNumber"].as_u64(), warn["severityText"].as_str()), (Some(13), Some("WARN")));
        assert!(line.len() + 512 < cost(line));
        assert_eq!(export_request("vpn-1", "h", &[]), br#"{"resourceLogs":[]}"#);
    }

    #[test]
    fn partial_success_is_read() {
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"bad"}}"#),
            Some((2, "bad".into()))
        );
        assert_eq!(rejected(br#"{"partialSuccess":{"rejectedLogRecords":3}}"#), Some((3, String::new())));
        assert_eq!(rejected(br#"{"partialSuccess":{}}"#), None);
        assert_eq!(rejected(b"{}"), None);
        assert_eq!(rejected(b""), None);
    }
}
