//! The metrics file: what `METRICS_TEXTFILE` costs for a 10,000-client
//! status file. The agent renders OpenVPN's families once per status round
//! and writes the whole file then, and again (the cached text, with the
//! agent's own numbers) at most every 15 s while delivery changes them.
//! Target: ≤ 1 % of one core at the default intervals.
//!
//! `src/health/metrics.rs` and `rows.rs` are compiled into this bench from
//! their source (main.rs, `#[path]`), like the parser. The rows come from
//! the parser's reading of the same file parse.rs times. The budget at the
//! defaults (SESSION_UPDATE_INTERVAL_SECONDS 60, snapshot rounds falling on
//! the same minute) is one render and write a minute, plus, in the worst
//! case, a write of the cached text every 15 s of the minute: 1 render + 5
//! writes. Every render must hold every client and route, or the section fails.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use crate::parse::median_ms;
use crate::{Ctx, Res, knob, metrics, parse, rows, status_file};

/// The status file as the sources hand it to the metrics file.
fn view(status: &status_file::Status) -> rows::InstanceView {
    rows::InstanceView {
        status_path: "/run/openvpn-server/status-server.log".into(),
        instance: Some("server".into()),
        up: true,
        updated_at: status.written_at,
        clients: status
            .clients
            .iter()
            .map(|c| rows::ClientRow {
                common_name: c.common_name.clone(),
                real_address: c.real_address.clone(),
                virtual_address: c.virtual_ip.clone(),
                username: c.username.clone().unwrap_or_else(|| "UNDEF".into()),
                connected_since: c.connected_since,
                bytes_received: c.bytes_received,
                bytes_sent: c.bytes_sent,
            })
            .collect(),
        routes: status
            .routes
            .iter()
            .map(|r| rows::RouteRow {
                virtual_address: r.virtual_address.clone(),
                common_name: r.common_name.clone(),
                real_address: r.real_address.clone(),
                last_ref: r.last_ref,
            })
            .collect(),
    }
}

pub fn section(md: &mut String, work: &Path) -> Res<bool> {
    let runs = knob("OVT_BENCH_METRICS_RUNS", 21).max(1);
    let clients = 10_000;
    std::fs::create_dir_all(work).ctx(work.display())?;
    let file = parse::status_v2(clients, 0);
    let status = status_file::parse(file.as_bytes(), None).map_err(|e| format!("metrics: parse: {e}"))?;
    let instances = [view(&status)];
    let _ = writeln!(
        md,
        "## Metrics file\n\n`METRICS_TEXTFILE` for a {clients}-client status file, median of {runs}: rendering \
OpenVPN's families (once per status round) and writing the file (temporary name + rename). Budget at the \
defaults: 1 render + 5 writes a minute (the status round's, and delivery's at most every 15 s). Target ≤ 1 % of one core.\n"
    );
    let _ = writeln!(md, "| series | file | render | write | per minute | of one core | target |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    let mut ok = true;
    for (what, per_client) in [("per client (default)", true), ("METRICS_PER_CLIENT=0", false)] {
        let text = metrics::render_openvpn(&instances, per_client, 10_000);
        let series = text.lines().filter(|l| l.starts_with("openvpn_server_client_received_bytes_total{")).count();
        let routes =
            text.lines().filter(|l| l.starts_with("openvpn_server_route_last_reference_time_seconds{")).count();
        let sane = series == if per_client { clients } else { 0 }
            && routes == if per_client { instances[0].routes.len() } else { 0 }
            && text.contains(&format!("openvpn_server_connected_clients{{status_path=\"/run/openvpn-server/status-server.log\",openvpn_instance=\"server\"}} {clients}\n"));
        ok &= sane;
        let render = median_ms(runs, || {
            black_box(metrics::render_openvpn(black_box(&instances), per_client, 10_000));
        });
        let path = work.join("openvpn-telemetry.prom");
        let mut failed = None;
        let write = median_ms(runs, || {
            if let Err(e) = metrics::write_atomically(&path, text.as_bytes()) {
                failed = Some(e.to_string());
            }
        });
        if let Some(e) = failed {
            return Err(format!("metrics: write {}: {e}", path.display()));
        }
        let minute = render + 5.0 * write;
        let share = minute / 60_000.0 * 100.0;
        let verdict = match (sane, share <= 1.0) {
            (false, _) => format!("**not every client in the file** ({series} of {clients})"),
            (true, true) => "met".into(),
            (true, false) => "**missed**".into(),
        };
        let _ = writeln!(
            md,
            "| {what} | {:.1} MB | {render:.1} ms | {write:.1} ms | {minute:.0} ms | {share:.2} % | {verdict} |",
            text.len() as f64 / 1e6
        );
    }
    md.push('\n');
    Ok(ok)
}
