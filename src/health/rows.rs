//! What a status file says, as the metrics file and the heartbeat use it:
//! plain data, with the columns kumina's openvpn_exporter makes labels of.
//! (No imports: `make bench` compiles this and `metrics.rs` from source.)

/// One connected client, as a status file's `CLIENT_LIST` row gives it:
/// the columns kumina's openvpn_exporter makes labels of, and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub common_name: String,
    /// `Real Address` as printed (`1.2.3.4:5555`).
    pub real_address: String,
    /// `Virtual Address` as printed (empty when none).
    pub virtual_address: String,
    /// `Username` as printed (`UNDEF` when the client gave none).
    pub username: String,
    /// `Connected Since (time_t)`.
    pub connected_since: i64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// One `ROUTING_TABLE` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    pub virtual_address: String,
    pub common_name: String,
    pub real_address: String,
    /// `Last Ref (time_t)`.
    pub last_ref: i64,
}

/// What one status file said at the last round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceView {
    pub status_path: String,
    /// The OpenVPN instance (its config file's name), when known.
    pub instance: Option<String>,
    /// Whether the file was read and understood (`openvpn_up`).
    pub up: bool,
    /// The file's own `TIME`/`Updated` (unix seconds).
    pub updated_at: Option<i64>,
    /// Connected clients (sessions, a row listed twice counted once).
    pub clients: Vec<ClientRow>,
    pub routes: Vec<RouteRow>,
}
