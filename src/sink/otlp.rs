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
//!   severity by [`severity`] (ERROR, WARN or INFO), every field as an
//!   attribute (semantic-convention names where one exists: `client.address`,
//!   `client.port`, `user.name`; `openvpn.<field>` for the rest, so
//!   `openvpn.event_id`, `openvpn.session_id`, `openvpn.seq`), and the event
//!   exactly as the hook wrote it as the body, so nothing is lost in
//!   translation.

use serde_json::{Map, Value};
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

/// Appends `s` as a JSON string.
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `{"key":KEY,"value":{"stringValue":VALUE}}`.
fn put_string_attr(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(b"{\"key\":");
    put_str(out, key);
    out.extend_from_slice(b",\"value\":{\"stringValue\":");
    put_str(out, value);
    out.extend_from_slice(b"}}");
}

/// Appends an attribute for an event field as an OTLP `AnyValue`; false
/// (nothing written) for JSON null.
fn put_attr(out: &mut Vec<u8>, key: &str, v: &Value) -> bool {
    let start = out.len();
    out.extend_from_slice(b"{\"key\":");
    put_str(out, key);
    out.extend_from_slice(b",\"value\":{");
    match v {
        Value::Null => {
            out.truncate(start);
            return false;
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"\"boolValue\":true" } else { b"\"boolValue\":false" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(i) => {
                out.extend_from_slice(b"\"intValue\":\"");
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'"');
            }
            // Over i64: OTLP has no unsigned 64-bit; keep the digits.
            None => {
                out.extend_from_slice(b"\"stringValue\":");
                put_str(out, &n.to_string());
            }
        },
        Value::Number(n) => {
            out.extend_from_slice(b"\"doubleValue\":");
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => {
            out.extend_from_slice(b"\"stringValue\":");
            put_str(out, s);
        }
        other => {
            out.extend_from_slice(b"\"stringValue\":");
            put_str(out, &other.to_string());
        }
    }
    out.extend_from_slice(b"}}");
    true
}

fn unix_nanos(t: OffsetDateTime) -> String {
    t.unix_timestamp_nanos().max(0).to_string()
}

/// OpenTelemetry's severity of an event type: ERROR where every client is
/// refused from now on (an expired CRL, CA or server certificate), WARN for
/// what needs an operator soon (loss, a certificate or CRL about to
/// expire), INFO for the rest (a client's own certificate expiring is one
/// user, not the service).
fn severity(kind: &str, event: &Map<String, Value>) -> &'static [u8] {
    let service_cert = matches!(event.get("cert_role").and_then(Value::as_str), Some("ca" | "server"));
    match kind {
        "CRL_EXPIRED" => b"\",\"severityNumber\":17,\"severityText\":\"ERROR\",\"eventName\":",
        "CERT_EXPIRED" if service_cert => b"\",\"severityNumber\":17,\"severityText\":\"ERROR\",\"eventName\":",
        "TELEMETRY_EVENTS_DROPPED" | "CERT_EXPIRING" | "CRL_EXPIRING" => {
            b"\",\"severityNumber\":13,\"severityText\":\"WARN\",\"eventName\":"
        }
        _ => b"\",\"severityNumber\":9,\"severityText\":\"INFO\",\"eventName\":",
    }
}

/// Appends one event line as a `LogRecord`.
fn put_record(out: &mut Vec<u8>, line: &[u8], event: &Map<String, Value>, observed: &str) {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("EVENT");
    out.extend_from_slice(b"{");
    if let Some(t) =
        event.get("event_time_vpn").and_then(Value::as_str).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    {
        out.extend_from_slice(b"\"timeUnixNano\":\"");
        out.extend_from_slice(unix_nanos(t).as_bytes());
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"observedTimeUnixNano\":\"");
    out.extend_from_slice(observed.as_bytes());
    out.extend_from_slice(severity(kind, event));
    put_str(out, kind);
    out.extend_from_slice(b",\"body\":{\"stringValue\":");
    put_str(out, &String::from_utf8_lossy(line));
    out.extend_from_slice(b"},\"attributes\":[");
    let mut first = true;
    for (field, value) in event {
        let mark = out.len();
        if !first {
            out.push(b',');
        }
        let key = attribute_key(field);
        // client.port is an int in the conventions; a port that is not a
        // number keeps its own name instead.
        let written = if key == "client.port" {
            match value.as_str().and_then(|p| p.parse::<u16>().ok()).or(value.as_u64().map(|p| p as u16)) {
                Some(port) => put_attr(out, &key, &Value::from(port)),
                None => put_attr(out, "openvpn.real_port", value),
            }
        } else {
            put_attr(out, &key, value)
        };
        if written {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.extend_from_slice(b"]}");
}

/// The `ExportLogsServiceRequest` for a batch (an empty batch is
/// `{"resourceLogs":[]}`, which `check` sends to test an endpoint). Lines
/// that are not JSON objects are left out (delivery never sends one).
pub fn export_request(server_id: &str, host: &str, events: &[&[u8]]) -> Vec<u8> {
    let observed = unix_nanos(crate::event::now());
    let parsed: Vec<(&[u8], Map<String, Value>)> =
        events.iter().filter_map(|l| Some((*l, serde_json::from_slice(l).ok()?))).collect();
    let instance = |e: &Map<String, Value>| e.get("instance").and_then(Value::as_str).map(str::to_string);
    let mut instances: Vec<Option<String>> = Vec::new();
    for (_, e) in &parsed {
        let i = instance(e);
        if !instances.contains(&i) {
            instances.push(i);
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let size: usize = events.iter().map(|l| cost(l)).sum();
    let mut out = Vec::with_capacity(size + OVERHEAD);
    out.extend_from_slice(b"{\"resourceLogs\":[");
    for (n, inst) in instances.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"resource\":{\"attributes\":[");
        put_string_attr(&mut out, "service.name", SCOPE);
        out.push(b',');
        put_string_attr(&mut out, "service.version", version);
        out.push(b',');
        put_string_attr(&mut out, "host.name", host);
        out.push(b',');
        put_string_attr(&mut out, "openvpn.server_id", server_id);
        if let Some(i) = inst {
            out.push(b',');
            put_string_attr(&mut out, "openvpn.instance", i);
        }
        out.extend_from_slice(b"]},\"scopeLogs\":[{\"scope\":{\"name\":");
        put_str(&mut out, SCOPE);
        out.extend_from_slice(b",\"version\":");
        put_str(&mut out, version);
        out.extend_from_slice(b"},\"logRecords\":[");
        let mut first = true;
        for (line, event) in parsed.iter().filter(|(_, e)| instance(e) == *inst) {
            if !first {
                out.push(b',');
            }
            first = false;
            put_record(&mut out, line, event, &observed);
        }
        out.extend_from_slice(b"]}]}");
    }
    out.extend_from_slice(b"]}");
    out
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
/// rejected, and its message (as sent: the caller caps and escapes it).
/// `None` when it rejected none. A count too large for a u64 is read as
/// `u64::MAX`, never as none: the caller caps it at the batch's size.
pub fn rejected(answer: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let partial = v.get("partialSuccess")?;
    let n = match partial.get("rejectedLogRecords")? {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().unwrap_or(u64::MAX),
        Value::Number(n) => {
            n.as_u64().unwrap_or_else(|| if n.as_f64().is_some_and(|f| f >= 1.0) { u64::MAX } else { 0 })
        }
        _ => return None,
    };
    let message = partial.get("errorMessage").and_then(Value::as_str).unwrap_or("").to_string();
    (n > 0).then_some((n, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn what_refuses_every_client_is_an_error_what_is_coming_a_warning() {
        let level = |line: &str| {
            let body = export_request("vpn-1", "h", &[line.as_bytes()]);
            let v: Value = serde_json::from_slice(&body).unwrap();
            let rec = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
            (rec["severityNumber"].as_u64().unwrap(), rec["severityText"].as_str().unwrap().to_string())
        };
        let error = (17, "ERROR".to_string());
        let warn = (13, "WARN".to_string());
        let info = (9, "INFO".to_string());
        assert_eq!(level(r#"{"type":"CRL_EXPIRED","seq":1}"#), error);
        assert_eq!(level(r#"{"type":"CERT_EXPIRED","cert_role":"server","seq":1}"#), error);
        assert_eq!(level(r#"{"type":"CERT_EXPIRED","cert_role":"ca","seq":1}"#), error);
        assert_eq!(level(r#"{"type":"CERT_EXPIRED","common_name":"alice","seq":1}"#), info);
        assert_eq!(level(r#"{"type":"CERT_EXPIRING","cert_role":"client","seq":1}"#), warn);
        assert_eq!(level(r#"{"type":"CRL_EXPIRING","seq":1}"#), warn);
        assert_eq!(level(r#"{"type":"TELEMETRY_EVENTS_DROPPED","seq":1}"#), warn);
        assert_eq!(level(r#"{"type":"SESSION_CONNECTED","seq":1}"#), info);
    }

    #[test]
    fn partial_success_is_read() {
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"bad"}}"#),
            Some((2, "bad".into()))
        );
        assert_eq!(rejected(br#"{"partialSuccess":{"rejectedLogRecords":3}}"#), Some((3, String::new())));
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":"99999999999999999999999"}}"#).unwrap().0,
            u64::MAX
        );
        assert_eq!(rejected(br#"{"partialSuccess":{"rejectedLogRecords":1e30}}"#).unwrap().0, u64::MAX);
        assert_eq!(rejected(br#"{"partialSuccess":{"rejectedLogRecords":"-1"}}"#), None);
        assert_eq!(rejected(br#"{"partialSuccess":{}}"#), None);
        assert_eq!(rejected(b"{}"), None);
        assert_eq!(rejected(b""), None);
    }
}
