//! Every setting, defined once: its key, default, kind of value, what an
//! empty value means, a one-line description, whether it is a secret and
//! whether the hooks need it. This table drives parsing and the defaults
//! ([`super::Settings`]), `status`'s list of settings (secrets masked), the
//! hooks' companion file, and the generated texts `assets/agent.env`,
//! `docs/configuration.md` and the man page, which tests keep equal to it.
//!
//! Adding a setting: a field in the group of [`super::Settings`] that its
//! section names, and a row here (its `get`/`set` reach into that group); then
//! `make generated` rewrites the generated files (a plain `cargo test`
//! fails until they match).

use std::path::PathBuf;

use super::{Compress, Format, Settings};

/// Where a setting belongs; also the order of `agent.env`'s sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Delivery,
    Spool,
    Sources,
    Health,
    Installer,
    Logging,
    Privacy,
}

// The titles and descriptions are read by the generated texts (tests).
#[cfg_attr(not(test), allow(dead_code))]
impl Section {
    pub const ALL: [Section; 7] = [
        Section::Delivery,
        Section::Spool,
        Section::Sources,
        Section::Health,
        Section::Installer,
        Section::Logging,
        Section::Privacy,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::Delivery => "Delivery",
            Section::Spool => "Spool (local queue the OpenVPN hooks append to)",
            Section::Sources => "Other sources",
            Section::Health => "Health (heartbeat, `status --check`, Prometheus textfile)",
            Section::Installer => "Installer",
            Section::Logging => "Logging",
            Section::Privacy => "Privacy (personal fields before they leave the host)",
        }
    }
}

/// The kind of value a setting takes: what its parser accepts (a unit test
/// holds every row's parser to its kind) and how `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `https://`, `http://` or `file:///` URL.
    Url,
    /// Free text.
    Text,
    /// A whole number, 0 allowed.
    Whole,
    /// A whole number greater than 0.
    Positive,
    /// `1`/`0` (also `true`/`false`, `yes`/`no`, `on`/`off`).
    Switch,
    /// One of the listed words (the first is the default).
    Choice(&'static [&'static str]),
    /// `Header-Name: value`.
    Header,
    /// An absolute path.
    AbsolutePath,
    /// A path.
    Path,
    /// Paths separated by spaces.
    Paths,
    /// Whole numbers of days > 0, comma-separated.
    Days,
    /// Names of personal event fields, separated by commas.
    Fields,
    /// Two prefix lengths, IPv4 and IPv6: `24,48`.
    Prefixes,
}

impl Kind {
    /// For the documentation.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn describe(self) -> String {
        match self {
            Kind::Url => "URL: `https://…`, `http://…` or `file:///path`".into(),
            Kind::Text => "text".into(),
            Kind::Whole => "whole number (0 allowed)".into(),
            Kind::Positive => "whole number > 0".into(),
            Kind::Switch => "`1` or `0`".into(),
            Kind::Choice(words) => words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(" or "),
            Kind::Header => "`Header-Name: value`".into(),
            Kind::AbsolutePath => "absolute path".into(),
            Kind::Path => "path".into(),
            Kind::Paths => "paths, space-separated".into(),
            Kind::Days => "days > 0, comma-separated".into(),
            Kind::Fields => "field names, comma-separated".into(),
            Kind::Prefixes => "`IPv4,IPv6` prefix lengths, e.g. `24,48`".into(),
        }
    }

    /// Numbers and switches are JSON numbers and booleans in `status --json`.
    pub fn is_number(self) -> bool {
        matches!(self, Kind::Whole | Kind::Positive)
    }
}

/// One row of [`SETTINGS`]. `section`, `empty` and `doc` are read by the
/// generated texts, which are made in tests and committed.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Setting {
    pub key: &'static str,
    pub section: Section,
    /// As written in `agent.env`; an empty value in a file means this too.
    pub default: &'static str,
    pub kind: Kind,
    /// What an empty value (the default "") means, when it means something.
    pub empty: &'static str,
    /// One line for `agent.env`, the docs and the man page.
    pub doc: &'static str,
    /// Never shown in full: `status` masks it (URLs lose user info and
    /// query, headers their value, anything else is `***`).
    pub secret: bool,
    /// Also written to the hooks' world-readable companion file, so it must
    /// not be a secret (a unit test holds that).
    pub hooks: bool,
    /// Checks a value and stores it (given "" only when the default is "",
    /// which then means "not set").
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
    /// The value in effect, written as `agent.env` would have it.
    pub get: fn(&Settings) -> String,
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn path(v: &Option<PathBuf>) -> String {
    v.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

/// An optional value: empty is "not set".
fn some_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn some_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// Every setting, in `agent.env`'s order.
pub const SETTINGS: &[Setting] = &[
    // --- Delivery ---
    Setting {
        key: "TELEMETRY_URL",
        section: Section::Delivery,
        default: "",
        kind: Kind::Url,
        empty: "events are held in the spool (within its bounds) and shown by `status`",
        doc: "Where batches go: https://..., http://... (warned about unless loopback) or file:///path (append, \
              for air-gapped hosts or a log shipper).",
        secret: true,
        hooks: false,
        set: |s, v| {
            s.delivery.telemetry_url = super::url_value(v)?;
            Ok(())
        },
        get: |s| text(&s.delivery.telemetry_url),
    },
    Setting {
        key: "TELEMETRY_FORMAT",
        section: Section::Delivery,
        default: "json",
        kind: Kind::Choice(&["json", "otlp"]),
        empty: "",
        doc: "Wire format: json (the batch envelope {server_id, sent_at, events}; `seed` is accepted as another \
              name for it) or otlp (OTLP/HTTP logs, JSON; point TELEMETRY_URL at a collector's /v1/logs).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.format = match v {
                "json" | "seed" => Format::Json,
                "otlp" => Format::Otlp,
                _ => return Err(format!("expected json or otlp, found {v:?}")),
            };
            Ok(())
        },
        get: |s| match s.delivery.format {
            Format::Json => "json".into(),
            Format::Otlp => "otlp".into(),
        },
    },
    Setting {
        key: "SERVER_ID",
        section: Section::Delivery,
        default: "",
        kind: Kind::Text,
        empty: "the host name",
        doc: "Name of this VPN server in every batch.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.server_id = some_text(v);
            Ok(())
        },
        get: |s| text(&s.delivery.server_id),
    },
    Setting {
        key: "AUTH_HEADER",
        section: Section::Delivery,
        default: "",
        kind: Kind::Header,
        empty: "no header",
        doc: "One request header sent as given, e.g. \"Authorization: Bearer TOKEN\"; never logged.",
        secret: true,
        hooks: false,
        set: |s, v| {
            s.delivery.auth_header = super::auth_header_value(v)?;
            Ok(())
        },
        get: |s| text(&s.delivery.auth_header),
    },
    Setting {
        key: "MTLS_ENABLED",
        section: Section::Delivery,
        default: "0",
        kind: Kind::Switch,
        empty: "",
        doc: "Mutual TLS: 1 presents CLIENT_CERT and CLIENT_KEY (PEM files), which it then needs.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.mtls_enabled = super::boolean(v)?;
            Ok(())
        },
        get: |s| if s.delivery.mtls_enabled { "1".into() } else { "0".into() },
    },
    Setting {
        key: "CLIENT_CERT",
        section: Section::Delivery,
        default: "",
        kind: Kind::Path,
        empty: "none",
        doc: "Client certificate (PEM) for mutual TLS.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.client_cert = some_path(v);
            Ok(())
        },
        get: |s| path(&s.delivery.client_cert),
    },
    Setting {
        key: "CLIENT_KEY",
        section: Section::Delivery,
        default: "",
        kind: Kind::Path,
        empty: "none",
        doc: "Client key (PEM) for mutual TLS; shown by path, never by content.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.client_key = some_path(v);
            Ok(())
        },
        get: |s| path(&s.delivery.client_key),
    },
    Setting {
        key: "CA_CERT",
        section: Section::Delivery,
        default: "",
        kind: Kind::Path,
        empty: "only the system's roots",
        doc: "Extra CA (PEM) trusted besides the system store /etc/ssl/certs (as curl); verification cannot be \
              turned off.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.ca_cert = some_path(v);
            Ok(())
        },
        get: |s| path(&s.delivery.ca_cert),
    },
    Setting {
        key: "COMPRESS",
        section: Section::Delivery,
        default: "none",
        kind: Kind::Choice(&["none", "gzip"]),
        empty: "",
        doc: "Request body encoding: gzip sends Content-Encoding: gzip.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.compress = match v {
                "none" | "0" => Compress::None,
                "gzip" => Compress::Gzip,
                _ => return Err(format!("expected gzip or none, found {v:?}")),
            };
            Ok(())
        },
        get: |s| match s.delivery.compress {
            Compress::None => "none".into(),
            Compress::Gzip => "gzip".into(),
        },
    },
    Setting {
        key: "CONNECT_TIMEOUT_SECONDS",
        section: Section::Delivery,
        default: "10",
        kind: Kind::Positive,
        empty: "",
        doc: "TCP and TLS connect timeout.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.connect_timeout_seconds = super::positive(v)?;
            Ok(())
        },
        get: |s| s.delivery.connect_timeout_seconds.to_string(),
    },
    Setting {
        key: "REQUEST_TIMEOUT_SECONDS",
        section: Section::Delivery,
        default: "30",
        kind: Kind::Positive,
        empty: "",
        doc: "Whole-request timeout.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.request_timeout_seconds = super::positive(v)?;
            Ok(())
        },
        get: |s| s.delivery.request_timeout_seconds.to_string(),
    },
    Setting {
        key: "MAX_BATCH_EVENTS",
        section: Section::Delivery,
        default: "1000",
        kind: Kind::Positive,
        empty: "",
        doc: "Most events in one request.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.max_batch_events = super::positive(v)?;
            Ok(())
        },
        get: |s| s.delivery.max_batch_events.to_string(),
    },
    Setting {
        key: "MAX_BATCH_BYTES",
        section: Section::Delivery,
        default: "1048576",
        kind: Kind::Positive,
        empty: "",
        doc: "Most bytes of events in one request.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.max_batch_bytes = super::positive(v)?;
            Ok(())
        },
        get: |s| s.delivery.max_batch_bytes.to_string(),
    },
    Setting {
        key: "RETRY_SLEEP_SECONDS",
        section: Section::Delivery,
        default: "2",
        kind: Kind::Whole,
        empty: "",
        doc: "First delay after a failed delivery; it doubles (with jitter) on each failure.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.retry_sleep_seconds = super::number(v)?;
            Ok(())
        },
        get: |s| s.delivery.retry_sleep_seconds.to_string(),
    },
    Setting {
        key: "RETRY_MAX_SECONDS",
        section: Section::Delivery,
        default: "300",
        kind: Kind::Positive,
        empty: "",
        doc: "Longest delay between retries (also the pace of retries after 401/403).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.delivery.retry_max_seconds = super::positive(v)?;
            Ok(())
        },
        get: |s| s.delivery.retry_max_seconds.to_string(),
    },
    // --- Spool ---
    Setting {
        key: "SPOOL_DIR",
        section: Section::Spool,
        default: super::DEFAULT_SPOOL_DIR,
        kind: Kind::AbsolutePath,
        empty: "",
        doc: "The spool: queue.log, pending/ and failed/.",
        secret: false,
        hooks: true,
        set: |s, v| {
            s.spool.spool_dir = super::spool_dir_value(v)?;
            Ok(())
        },
        get: |s| s.spool.spool_dir.display().to_string(),
    },
    Setting {
        key: "ROTATE_INTERVAL_SECONDS",
        section: Section::Spool,
        default: "5",
        kind: Kind::Whole,
        empty: "",
        doc: "queue.log is cut into a chunk in pending/ this often...",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.spool.rotate_interval_seconds = super::number(v)?;
            Ok(())
        },
        get: |s| s.spool.rotate_interval_seconds.to_string(),
    },
    Setting {
        key: "ROTATE_MAX_BYTES",
        section: Section::Spool,
        default: "131072",
        kind: Kind::Positive,
        empty: "",
        doc: "...or as soon as it is this big.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.spool.rotate_max_bytes = super::positive(v)?;
            Ok(())
        },
        get: |s| s.spool.rotate_max_bytes.to_string(),
    },
    Setting {
        key: "MAX_PENDING_FILES",
        section: Section::Spool,
        default: "10000",
        kind: Kind::Positive,
        empty: "",
        doc: "Most chunks in pending/; beyond it the oldest are dropped, counted and reported \
              (TELEMETRY_EVENTS_DROPPED).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.spool.max_pending_files = super::positive(v)?;
            Ok(())
        },
        get: |s| s.spool.max_pending_files.to_string(),
    },
    Setting {
        key: "MAX_SPOOL_BYTES",
        section: Section::Spool,
        default: "536870912",
        kind: Kind::Positive,
        empty: "",
        doc: "Most bytes in pending/ and queue.log (the oldest chunks are dropped, counted and reported); failed/ \
              may hold an eighth of it more. Hooks refuse (and count) events once queue.log alone reaches it.",
        secret: false,
        hooks: true,
        set: |s, v| {
            s.spool.max_spool_bytes = super::positive(v)?;
            Ok(())
        },
        get: |s| s.spool.max_spool_bytes.to_string(),
    },
    // --- Sources ---
    Setting {
        key: "STATUS_LOG",
        section: Section::Sources,
        default: "",
        kind: Kind::Path,
        empty: "the status file named by the `status` line of OPENVPN_SERVER_CONF, if any",
        doc: "OpenVPN status file (versions 1, 2 and 3) for SESSION_UPDATE and SESSION_SNAPSHOT.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.sources.status_log = some_path(v);
            Ok(())
        },
        get: |s| path(&s.sources.status_log),
    },
    Setting {
        key: "SESSION_UPDATE_INTERVAL_SECONDS",
        section: Section::Sources,
        default: "60",
        kind: Kind::Whole,
        empty: "",
        doc: "SESSION_UPDATE this often; 0 turns it off.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.sources.session_update_interval_seconds = super::number(v)?;
            Ok(())
        },
        get: |s| s.sources.session_update_interval_seconds.to_string(),
    },
    Setting {
        key: "SNAPSHOT_INTERVAL_SECONDS",
        section: Section::Sources,
        default: "300",
        kind: Kind::Whole,
        empty: "",
        doc: "SESSION_SNAPSHOT at start and this often; 0 turns it off.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.sources.snapshot_interval_seconds = super::number(v)?;
            Ok(())
        },
        get: |s| s.sources.snapshot_interval_seconds.to_string(),
    },
    Setting {
        key: "EASYRSA_INDEX",
        section: Section::Sources,
        default: "",
        kind: Kind::Path,
        empty: "no certificate events",
        doc: "Easy-RSA pki/index.txt for CERT_ISSUED, CERT_REVOKED and CERT_EXPIRED.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.sources.easyrsa_index = some_path(v);
            Ok(())
        },
        get: |s| path(&s.sources.easyrsa_index),
    },
    Setting {
        key: "EXPIRY_WARN_DAYS",
        section: Section::Sources,
        default: "30,7,1",
        kind: Kind::Days,
        empty: "",
        doc: "CERT_EXPIRING and CRL_EXPIRING when a CA, server or client certificate or a CRL has this many days left, once per threshold.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.sources.expiry_warn_days = super::days(v)?;
            Ok(())
        },
        get: |s| s.sources.expiry_warn_days.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    },
    // --- Health ---
    Setting {
        key: "HEARTBEAT_INTERVAL_SECONDS",
        section: Section::Health,
        default: "300",
        kind: Kind::Whole,
        empty: "",
        doc: "AGENT_HEARTBEAT (the agent's own health, through the spool like every event) at start and this \
              often; 0 turns it off.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.heartbeat_interval_seconds = super::number(v)?;
            Ok(())
        },
        get: |s| s.health.heartbeat_interval_seconds.to_string(),
    },
    Setting {
        key: "STALL_WARN_SECONDS",
        section: Section::Health,
        default: "600",
        kind: Kind::Positive,
        empty: "",
        doc: "`status --check` says WARNING when the oldest undelivered event is older than this.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.stall_warn_seconds = super::positive(v)?;
            Ok(())
        },
        get: |s| s.health.stall_warn_seconds.to_string(),
    },
    Setting {
        key: "STALL_CRIT_SECONDS",
        section: Section::Health,
        default: "3600",
        kind: Kind::Positive,
        empty: "",
        doc: "`status --check` says CRITICAL when the oldest undelivered event is older than this.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.stall_crit_seconds = super::positive(v)?;
            Ok(())
        },
        get: |s| s.health.stall_crit_seconds.to_string(),
    },
    Setting {
        key: "METRICS_TEXTFILE",
        section: Section::Health,
        default: "",
        kind: Kind::AbsolutePath,
        empty: "no metrics file",
        doc: "Prometheus metrics for node_exporter's textfile collector, rewritten atomically (e.g. \
              /var/lib/prometheus/node-exporter/openvpn-telemetry.prom; its directory must be writable by the agent).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.metrics_textfile = super::metrics_path_value(v)?;
            Ok(())
        },
        get: |s| path(&s.health.metrics_textfile),
    },
    Setting {
        key: "METRICS_PER_CLIENT",
        section: Section::Health,
        default: "1",
        kind: Kind::Switch,
        empty: "",
        doc: "Per-client series (bytes, routes) in METRICS_TEXTFILE; 0 leaves them out for servers with thousands \
              of clients.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.metrics_per_client = super::boolean(v)?;
            Ok(())
        },
        get: |s| if s.health.metrics_per_client { "1".into() } else { "0".into() },
    },
    Setting {
        key: "METRICS_MAX_CLIENTS",
        section: Section::Health,
        default: "10000",
        kind: Kind::Positive,
        empty: "",
        doc: "At most this many clients (and 4 routes each) per status file get per-client series in \
              METRICS_TEXTFILE; the rest are counted in openvpn_telemetry_metrics_clients_left_out.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.health.metrics_max_clients = super::positive(v)?;
            Ok(())
        },
        get: |s| s.health.metrics_max_clients.to_string(),
    },
    // --- Installer ---
    Setting {
        key: "OPENVPN_SERVER_CONF",
        section: Section::Installer,
        default: "",
        kind: Kind::Paths,
        empty: "install prints the lines to add instead",
        doc: "OpenVPN server configuration file(s) that install adds the hooks to.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.installer.openvpn_server_conf = v.split_whitespace().map(PathBuf::from).collect();
            Ok(())
        },
        get: |s| s.installer.openvpn_server_conf.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
    },
    Setting {
        key: "OPENVPN_SCRIPT_USER",
        section: Section::Installer,
        default: "nobody",
        kind: Kind::Text,
        empty: "",
        doc: "The user OpenVPN runs the hooks as (`user` in the server configuration).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.installer.openvpn_script_user = v.to_string();
            Ok(())
        },
        get: |s| s.installer.openvpn_script_user.clone(),
    },
    Setting {
        key: "OPENVPN_SCRIPT_GROUP",
        section: Section::Installer,
        default: "",
        kind: Kind::Text,
        empty: "nogroup, or nobody where there is no nogroup",
        doc: "The group OpenVPN runs the hooks as (`group` in the server configuration).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.installer.openvpn_script_group = some_text(v);
            Ok(())
        },
        get: |s| text(&s.installer.openvpn_script_group),
    },
    // --- Logging ---
    Setting {
        key: "LOG_LEVEL",
        section: Section::Logging,
        default: "",
        kind: Kind::Text,
        empty: "info",
        doc: "The agent's log level: error, warn, info, debug or trace (RUST_LOG, when set, wins).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.log_level = some_text(v);
            Ok(())
        },
        get: |s| text(&s.log_level),
    },
    // --- Privacy ---
    Setting {
        key: "PSEUDONYMIZE",
        section: Section::Privacy,
        default: "",
        kind: Kind::Fields,
        empty: "none",
        doc: "Fields replaced by a keyed pseudonym (pn_ and 16 hex digits; session_id a UUID) in everything \
              sent: common_name, username, real_ip, real_port, virtual_ip, virtual_ipv6, cert_serial, \
              cert_serial_hex, cert_sha256, subject, client_version, client_platform, session_id.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.privacy.pseudonymize = crate::privacy::FieldSet::parse(v)?;
            Ok(())
        },
        get: |s| s.privacy.pseudonymize.to_string(),
    },
    Setting {
        key: "DROP_FIELDS",
        section: Section::Privacy,
        default: "",
        kind: Kind::Fields,
        empty: "none",
        doc: "Fields removed from everything sent (the same names as PSEUDONYMIZE); without common_name, real_ip \
              or real_port in clear, session_id becomes a pseudonym (the key is needed).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.privacy.drop_fields = crate::privacy::FieldSet::parse(v)?;
            Ok(())
        },
        get: |s| s.privacy.drop_fields.to_string(),
    },
    Setting {
        key: "REAL_IP_PREFIX",
        section: Section::Privacy,
        default: "",
        kind: Kind::Prefixes,
        empty: "the whole address",
        doc: "Send only the network part of real_ip: IPv4,IPv6 prefix lengths, e.g. 24,48 (session_id then \
              becomes a pseudonym: the key is needed).",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.privacy.real_ip_prefix = crate::privacy::Prefix::parse(v)?;
            Ok(())
        },
        get: |s| s.privacy.real_ip_prefix.map(|p| p.to_string()).unwrap_or_default(),
    },
    Setting {
        key: "PSEUDONYM_KEY_FILE",
        section: Section::Privacy,
        default: crate::privacy::DEFAULT_KEY_FILE,
        kind: Kind::AbsolutePath,
        empty: "",
        doc: "The pseudonyms' key (at least 32 bytes; install makes one, 0640 root:openvpn-telemetry); share it \
              across hosts for pseudonyms that join.",
        secret: false,
        hooks: false,
        set: |s, v| {
            s.privacy.key_file = super::absolute_path(v)?;
            Ok(())
        },
        get: |s| s.privacy.key_file.display().to_string(),
    },
];

/// Keys that steer the installer only: read from `.env` or the environment
/// by `install`, accepted in `agent.env`, never written into it.
pub const INSTALLER_SWITCHES: &[(&str, &str)] = &[(
    "FORCE",
    "1: install replaces a different client-connect/client-disconnect line in OPENVPN_SERVER_CONF \
     (commented out with a marker).",
)];

/// The row of `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(row: &Setting, v: &str) -> Result<String, String> {
        let mut s = Settings::defaults(std::path::Path::new("/t/agent.env"));
        (row.set)(&mut s, v)?;
        Ok((row.get)(&s))
    }

    /// Values a kind must accept (and give back as written).
    fn good(kind: Kind) -> Vec<&'static str> {
        match kind {
            Kind::Url => vec!["https://t.example/api", "http://127.0.0.1:8080/x", "file:///var/x"],
            Kind::Text => vec!["vpn-1", "a b"],
            Kind::Whole => vec!["0", "7", "18446744073709551615"],
            Kind::Positive => vec!["1", "7"],
            Kind::Switch => vec!["1", "0"],
            Kind::Choice(words) => words.to_vec(),
            Kind::Header => vec!["Authorization: Bearer a b", "X-Token: t"],
            Kind::AbsolutePath => vec!["/srv/spool"],
            Kind::Path => vec!["/etc/x.pem", "rel.pem"],
            Kind::Paths => vec!["/a.conf", "/a.conf /b.conf"],
            Kind::Days => vec!["30,7,1", "14", "90,30"],
            Kind::Fields => vec!["common_name", "common_name,real_ip,session_id"],
            Kind::Prefixes => vec!["24,48", "0,128"],
        }
    }

    /// Values a kind must refuse.
    fn bad(kind: Kind) -> Vec<&'static str> {
        match kind {
            Kind::Url => vec!["ftp://x", "file://relative", "t.example"],
            Kind::Whole => vec!["x", "-1", "1.5"],
            Kind::Positive => vec!["0", "x", "-1"],
            Kind::Switch => vec!["maybe", "2"],
            Kind::Choice(_) => vec!["bogus"],
            Kind::Header => vec!["Bearer abc", ": x"],
            Kind::AbsolutePath => vec!["spool", "./x"],
            Kind::Days => vec!["", "0", "7,x", "30,,1", "-1", "30 7"],
            Kind::Fields => vec!["bogus", "event_id", "common_name,seq"],
            Kind::Prefixes => vec!["24", "33,48", "24,129", "a,b"],
            Kind::Text | Kind::Path | Kind::Paths => vec![],
        }
    }

    /// Each row writes into the group of [`Settings`] its section names, and
    /// nowhere else: the table, the generated docs (which are laid out by
    /// section) and the groups components take agree.
    #[test]
    fn every_row_writes_into_its_sections_group() {
        let blank = Settings::defaults(std::path::Path::new("/t/agent.env"));
        let groups = |s: &Settings| {
            [
                (Section::Delivery, format!("{:?}", s.delivery)),
                (Section::Spool, format!("{:?}", s.spool)),
                (Section::Sources, format!("{:?}", s.sources)),
                (Section::Health, format!("{:?}", s.health)),
                (Section::Installer, format!("{:?}", s.installer)),
                (Section::Logging, format!("{:?}", s.log_level)),
                (Section::Privacy, format!("{:?}", s.privacy)),
            ]
        };
        for row in SETTINGS {
            let v = good(row.kind).into_iter().find(|v| *v != row.default).unwrap();
            let mut s = blank.clone();
            (row.set)(&mut s, v).unwrap();
            let changed: Vec<Section> =
                groups(&s).into_iter().zip(groups(&blank)).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0).collect();
            assert_eq!(changed, vec![row.section], "{}={v} writes into its section's group only", row.key);
            assert_eq!((&s.path, &s.unknown_keys), (&blank.path, &blank.unknown_keys), "{}", row.key);
        }
    }

    /// Values each kind must accept (and give back as written) or refuse:
    /// holds every row's parser to the kind the documentation names.
    #[test]
    fn every_row_parses_as_its_kind_says() {
        for row in SETTINGS {
            let k = row.key;
            assert_eq!(set(row, row.default).as_deref(), Ok(row.default), "{k}: its default round-trips");
            let (good, bad) = (good(row.kind), bad(row.kind));
            for v in good {
                assert_eq!(set(row, v).as_deref(), Ok(v), "{k}={v} is accepted and shown as written");
            }
            for v in bad {
                assert!(set(row, v).is_err(), "{k}={v} must be refused");
            }
            if let Kind::Choice(words) = row.kind {
                assert_eq!(words[0], row.default, "{k}: a choice's first word is its default");
            }
        }
    }

    #[test]
    fn keys_are_unique_and_hook_settings_are_no_secrets() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|r| r.key).collect();
        keys.extend(INSTALLER_SWITCHES.iter().map(|(k, _)| *k));
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key is defined twice");
        for row in SETTINGS {
            assert!(!(row.hooks && row.secret), "{}: the hooks' companion file is world-readable", row.key);
            assert!(!row.doc.is_empty() && !row.doc.contains('\n'), "{}: one line of description", row.key);
        }
        assert!(SETTINGS.iter().any(|r| r.key == "SPOOL_DIR" && r.hooks));
    }

    /// `seed`, the original installer's name of the json format, stays
    /// accepted so settings written before the rename keep working.
    #[test]
    fn seed_is_another_name_for_json() {
        let row = setting("TELEMETRY_FORMAT").unwrap();
        assert_eq!(set(row, "seed").as_deref(), Ok("json"));
        let s = Settings::from_text(std::path::Path::new("/x"), "TELEMETRY_FORMAT=seed\n").unwrap();
        assert_eq!(s.delivery.format, Format::Json);
    }

    /// An empty value means the default, for every key.
    #[test]
    fn empty_means_the_default() {
        let text: String = SETTINGS.iter().map(|r| format!("{}=\n", r.key)).collect();
        let p = std::path::Path::new("/x");
        let s = Settings::from_text(p, &text).unwrap();
        assert_eq!(format!("{s:?}"), format!("{:?}", Settings::defaults(p)));
    }
}
