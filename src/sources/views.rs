//! What a status round hands to the agent's health board
//! ([`crate::health::Board`]): each status file as the metrics file and
//! the heartbeat show it, columns as kumina's openvpn_exporter labels them.

use super::conf::StatusSource;
use super::status_file::Status;
use crate::health::{ClientRow, InstanceView, RouteRow};

/// `status` read from `src`; `None` when this round could not read it
/// (`openvpn_up` 0).
pub fn instance_view(src: &StatusSource, status: Option<&Status>) -> InstanceView {
    let mut view = InstanceView {
        status_path: src.path.display().to_string(),
        instance: src.instance.clone(),
        ..InstanceView::default()
    };
    let Some(status) = status else { return view };
    view.up = true;
    view.updated_at = status.written_at;
    view.clients = status
        .clients
        .iter()
        .map(|c| ClientRow {
            common_name: c.common_name.clone(),
            real_address: c.real_address.clone(),
            virtual_address: c.virtual_ip.clone(),
            // OpenVPN prints UNDEF for a client without a username; the
            // parser keeps only real names.
            username: c.username.clone().unwrap_or_else(|| "UNDEF".into()),
            connected_since: c.connected_since,
            bytes_received: c.bytes_received,
            bytes_sent: c.bytes_sent,
        })
        .collect();
    view.routes = status
        .routes
        .iter()
        .map(|r| RouteRow {
            virtual_address: r.virtual_address.clone(),
            common_name: r.common_name.clone(),
            real_address: r.real_address.clone(),
            last_ref: r.last_ref,
        })
        .collect();
    view
}
