//! The agent's own families in the metrics file, `openvpn_telemetry_*`:
//! build, queue, backlog, delivery counters, failures.

use super::Vitals;
use super::metrics::{family, sample};

/// The agent's own families. Without vitals yet (the first moments of a
/// start) only `build_info`.
pub fn render(v: Option<&Vitals>) -> String {
    let mut out = String::with_capacity(4096);
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    };
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        family(out, name, "counter", help);
        sample(out, name, &[], value);
    };
    family(&mut out, "openvpn_telemetry_build_info", "gauge", "The agent's version; always 1.");
    sample(&mut out, "openvpn_telemetry_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    let Some(v) = v else { return out };
    let s = &v.spool;
    gauge(
        &mut out,
        "openvpn_telemetry_queue_bytes",
        "Bytes waiting to be rotated (queue.log and the agent's queue).",
        s.queue_bytes,
    );
    gauge(&mut out, "openvpn_telemetry_pending_chunks", "Chunks in pending/ waiting for delivery.", s.pending_chunks);
    gauge(&mut out, "openvpn_telemetry_pending_bytes", "Bytes in pending/ waiting for delivery.", s.pending_bytes);
    if let Some(t) = s.oldest_pending {
        gauge(
            &mut out,
            "openvpn_telemetry_oldest_pending_timestamp_seconds",
            "When the oldest undelivered event was written (absent when nothing waits).",
            t.unix_timestamp().max(0) as u64,
        );
    }
    counter(
        &mut out,
        "openvpn_telemetry_delivered_events_total",
        "Events the receiver acknowledged (or the file sink stored).",
        v.delivered_events_total,
    );
    counter(
        &mut out,
        "openvpn_telemetry_dropped_events_total",
        "Events lost to the spool's bounds or rejected by an OTLP receiver.",
        v.dropped_events_total,
    );
    let name = "openvpn_telemetry_posts_total";
    family(&mut out, name, "counter", "Batches sent, by what the answer meant.");
    let p = &v.posts;
    for (outcome, n) in [
        ("2xx", p.ok),
        ("retry", p.retry),
        ("misconfigured", p.misconfigured),
        ("too_large", p.too_large),
        ("set_aside", p.set_aside),
    ] {
        sample(&mut out, name, &[("outcome", outcome)], n);
    }
    if let Some(t) = v.last_success_at {
        gauge(
            &mut out,
            "openvpn_telemetry_last_success_timestamp_seconds",
            "When a batch was last delivered (absent before the first).",
            t.unix_timestamp().max(0) as u64,
        );
    }
    gauge(
        &mut out,
        "openvpn_telemetry_consecutive_failures",
        "Failed delivery attempts since the last success.",
        v.consecutive_failures,
    );
    gauge(
        &mut out,
        "openvpn_telemetry_failed_files",
        "Files in failed/ (events the server refused, damaged lines).",
        s.failed_files,
    );
    out
}
