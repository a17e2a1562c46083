//! `agent.env`: the one settings file shared by the hooks, the agent and the
//! installer.
//!
//! The format is the shell-style `KEY=value` file existing installs have, so the
//! same file can be sourced by a shell: `KEY=value`, `KEY="value"`,
//! `KEY='value'`, `# comments`, blank lines and an optional `export `.
//! Parsing is split in two (as ripgrep does): [`parse`] turns text into raw
//! `(line, key, value)` entries and knows nothing about meaning;
//! [`Settings::from_entries`] checks every value and names file, line and key
//! when one is wrong.
//!
//! Every setting is one row of [`table::SETTINGS`] (key, default, kind,
//! description, secret or not, needed by hooks or not): parsing, defaults,
//! `status`, the hooks' companion file and the generated documentation all
//! come from it.
//!
//! Hooks run as `nobody` and must not read the agent's secrets, so the
//! installer writes a *hook companion* next to the settings file
//! ([`hook_companion`]) that holds only what a hook needs (the rows marked
//! `hooks`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(test)]
pub mod docs;
mod lenient;
pub mod table;

pub use lenient::{hook_settings, say, spool_dir_for_hooks};

pub use table::SETTINGS;

/// Where the settings live unless `OPENVPN_TELEMETRY_CONFIG` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/openvpn-telemetry/agent.env";
/// The documented spool directory.
pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/openvpn-telemetry";
/// Environment variable naming another settings file (tests, or several
/// OpenVPN instances on one host through OpenVPN's `setenv`).
pub const CONFIG_ENV: &str = "OPENVPN_TELEMETRY_CONFIG";

/// The settings file in effect: `$OPENVPN_TELEMETRY_CONFIG` or the default.
pub fn config_path() -> PathBuf {
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// The world-readable file beside `config` that carries only the settings a
/// hook needs: `agent.env` → `agent.hook.env`, `site.env` → `site.hook.env`.
pub fn hook_companion(config: &Path) -> PathBuf {
    let name = config.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".env").unwrap_or(&name);
    config.with_file_name(format!("{stem}.hook.env"))
}

/// One `KEY=value` line as written, before any meaning is given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// What can be wrong with a settings file; every message names the file and,
/// where there is one, the line and key, so a sysadmin can go and fix it.
#[derive(Debug)]
pub enum ConfigError {
    Read { path: PathBuf, source: io::Error },
    Syntax { path: PathBuf, line: usize, what: String },
    Value { path: PathBuf, line: usize, key: String, what: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            ConfigError::Syntax { path, line, what } => write!(f, "{}:{line}: {what}", path.display()),
            ConfigError::Value { path, line, key, what } => {
                write!(f, "{}:{line}: {key}: {what}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A line of settings text that is not `KEY=value`; the caller knows the
/// file and makes it a [`ConfigError::Syntax`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub what: String,
}

impl SyntaxError {
    pub fn at(self, path: &Path) -> ConfigError {
        ConfigError::Syntax { path: path.to_path_buf(), line: self.line, what: self.what }
    }
}

/// Parses shell-style `KEY=value` text.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let s = s.strip_prefix("export ").map(str::trim_start).unwrap_or(s);
        let Some((key, rest)) = s.split_once('=') else {
            return Err(SyntaxError { line, what: format!("expected KEY=value, found {:?}", truncate(s, 60)) });
        };
        let key = key.trim_end();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(SyntaxError { line, what: format!("invalid key {:?}", truncate(key, 60)) });
        }
        let value = unquote(rest).map_err(|what| SyntaxError { line, what: format!("{key}: {what}") })?;
        entries.push(Entry { line, key: key.to_string(), value });
    }
    Ok(entries)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The value part of a line: `"..."` (with `\"`, `\\`, `\$`, `` \` `` escapes),
/// `'...'` (literal), or a bare word that ends at ` #`.
fn unquote(rest: &str) -> Result<String, String> {
    let rest = rest.trim();
    let trailing_ok = |tail: &str| {
        let t = tail.trim_start();
        if t.is_empty() || t.starts_with('#') {
            Ok(())
        } else {
            Err(format!("unexpected text after closing quote: {t:?}"))
        }
    };
    if let Some(body) = rest.strip_prefix('\'') {
        let end = body.find('\'').ok_or("missing closing single quote")?;
        trailing_ok(&body[end + 1..])?;
        return Ok(body[..end].to_string());
    }
    if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    trailing_ok(&body[i + 1..])?;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\' | '$' | '`'))) => out.push(e),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                _ => out.push(c),
            }
        }
        return Err("missing closing double quote".into());
    }
    let bare = match rest.find(" #") {
        Some(i) => rest[..i].trim_end(),
        None => rest,
    };
    Ok(bare.to_string())
}

/// How request bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    #[default]
    None,
    Gzip,
}

/// The wire format of a batch (`TELEMETRY_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `json` (also accepted as `seed`, the original installer's name):
    /// `{server_id, sent_at, events}`, the events as the hooks wrote them.
    #[default]
    Json,
    /// OTLP/HTTP logs, JSON encoding (see `src/sink/otlp.rs`).
    Otlp,
}

/// Every setting, checked, grouped by the [`Section`](table::Section) its
/// row of [`SETTINGS`] belongs to, so a component can take only its part.
/// [`SETTINGS`] holds the defaults; `Settings::default()` is only the blank
/// that [`Settings::defaults`] fills in from the table.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The file these came from (for messages; may not exist).
    pub path: PathBuf,
    pub delivery: DeliverySection,
    pub spool: SpoolSection,
    pub sources: SourcesSection,
    pub health: HealthSection,
    pub installer: InstallerSection,
    /// `LOG_LEVEL`, the one setting of the Logging section.
    pub log_level: Option<String>,
    /// The Privacy section: what personal fields become before they leave.
    pub privacy: crate::privacy::PrivacySection,
    /// Keys the file set that this version does not know (warned about).
    pub unknown_keys: Vec<(usize, String)>,
}

/// The Delivery section: where batches go, how they are encoded and sent
/// (TLS included), how large they are and how failures are retried.
#[derive(Debug, Clone, Default)]
pub struct DeliverySection {
    pub telemetry_url: Option<String>,
    pub format: Format,
    pub server_id: Option<String>,
    pub auth_header: Option<String>,
    pub mtls_enabled: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    pub compress: Compress,
    pub connect_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
    pub max_batch_events: u64,
    pub max_batch_bytes: u64,
    pub retry_sleep_seconds: u64,
    pub retry_max_seconds: u64,
}

/// The Spool section: the local queue the hooks append to, and its bounds.
#[derive(Debug, Clone, Default)]
pub struct SpoolSection {
    pub spool_dir: PathBuf,
    pub rotate_interval_seconds: u64,
    pub rotate_max_bytes: u64,
    pub max_pending_files: u64,
    pub max_spool_bytes: u64,
}

/// The Other sources section: OpenVPN's status file and Easy-RSA's index.
#[derive(Debug, Clone, Default)]
pub struct SourcesSection {
    pub status_log: Option<PathBuf>,
    pub session_update_interval_seconds: u64,
    pub snapshot_interval_seconds: u64,
    pub easyrsa_index: Option<PathBuf>,
    /// Days before an expiry to warn at, largest first, no repeats.
    pub expiry_warn_days: Vec<u32>,
}

/// The Health section: the agent's heartbeat, `status --check`'s
/// thresholds and the Prometheus textfile.
#[derive(Debug, Clone, Default)]
pub struct HealthSection {
    pub heartbeat_interval_seconds: u64,
    pub stall_warn_seconds: u64,
    pub stall_crit_seconds: u64,
    pub metrics_textfile: Option<PathBuf>,
    pub metrics_per_client: bool,
    /// Per-client series per status file at most (a hostile status file
    /// may list hundreds of thousands of rows).
    pub metrics_max_clients: u64,
}

/// The Installer section: the OpenVPN configs hooked and the hooks' user.
#[derive(Debug, Clone, Default)]
pub struct InstallerSection {
    pub openvpn_server_conf: Vec<PathBuf>,
    pub openvpn_script_user: String,
    pub openvpn_script_group: Option<String>,
}

/// This host's name, as `SERVER_ID` defaults to and OTLP's `host.name`
/// says; `unknown` when the kernel will not say (never an error: a name
/// is a label, not a reason to stop).
pub fn host_name() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into())
}

impl DeliverySection {
    /// `SERVER_ID`, or this host's name when it is not set.
    pub fn server_id(&self) -> String {
        self.server_id.clone().unwrap_or_else(host_name)
    }
}

impl InstallerSection {
    /// The uid of `OPENVPN_SCRIPT_USER` (the hooks' user) on this host,
    /// when it can be resolved.
    pub fn hooks_uid(&self) -> Option<u32> {
        crate::accounts::Accounts::for_root(Path::new("/")).uid(&self.openvpn_script_user)
    }
}

impl Settings {
    /// `SERVER_ID`, or this host's name when it is not set.
    pub fn server_id(&self) -> String {
        self.delivery.server_id()
    }

    /// The uid of `OPENVPN_SCRIPT_USER` (the hooks' user) on this host,
    /// when it can be resolved: whose files the agent reads in the spool,
    /// and never as a source.
    pub fn hooks_uid(&self) -> Option<u32> {
        self.installer.hooks_uid()
    }

    /// The defaults of [`SETTINGS`] (the file `path` need not exist).
    pub fn defaults(path: &Path) -> Settings {
        let mut s = Settings { path: path.to_path_buf(), ..Settings::default() };
        for row in SETTINGS {
            // Every default is accepted by its own parser (a unit test
            // checks each row), so there is no error to handle here.
            let _ = (row.set)(&mut s, row.default);
        }
        s
    }

    /// Reads the settings file; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
                    what: "not valid UTF-8".into(),
                })?;
                Self::from_text(path, &text)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Settings::defaults(path)),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    pub fn from_text(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let entries = parse(text).map_err(|e| e.at(path))?;
        Self::from_entries(path, &entries)
    }

    /// Gives meaning to raw entries; the last occurrence of a key wins, as
    /// in a shell.
    pub fn from_entries(path: &Path, entries: &[Entry]) -> Result<Settings, ConfigError> {
        let mut s = Settings::defaults(path);
        for e in entries {
            match table::setting(&e.key) {
                Some(row) => {
                    // An empty value means the default, as `agent.env` says.
                    let v = if e.value.is_empty() { row.default } else { e.value.as_str() };
                    (row.set)(&mut s, v).map_err(|what| ConfigError::Value {
                        path: path.to_path_buf(),
                        line: e.line,
                        key: e.key.clone(),
                        what,
                    })?;
                }
                None if table::INSTALLER_SWITCHES.iter().any(|(k, _)| *k == e.key) => {}
                None => s.unknown_keys.push((e.line, e.key.clone())),
            }
        }
        if let Some((key, what)) = s.privacy.conflict() {
            let line = entries.iter().rev().find(|e| e.key == key).map_or(0, |e| e.line);
            return Err(ConfigError::Value { path: path.to_path_buf(), line, key: key.into(), what });
        }
        if s.delivery.mtls_enabled && (s.delivery.client_cert.is_none() || s.delivery.client_key.is_none()) {
            let line = entries.iter().rev().find(|e| e.key == "MTLS_ENABLED").map_or(0, |e| e.line);
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                line,
                key: "MTLS_ENABLED".into(),
                what: "mTLS needs both CLIENT_CERT and CLIENT_KEY".into(),
            });
        }
        Ok(s)
    }
}

/// `SPOOL_DIR` must be absolute: a relative spool would depend on the
/// directory OpenVPN happens to run the hook from.
pub fn spool_dir_value(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Ok(PathBuf::from(DEFAULT_SPOOL_DIR));
    }
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(format!("must be an absolute path, found {v:?}"));
    }
    Ok(p)
}

/// `METRICS_TEXTFILE`: absolute (the agent runs from `/`) and naming a
/// file (the agent warns when it does not end in `.prom`, the only names
/// node_exporter's textfile collector reads).
fn metrics_path_value(v: &str) -> Result<Option<PathBuf>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let p = PathBuf::from(v);
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(format!("must be an absolute path to a file, found {v:?}"));
    }
    Ok(Some(p))
}

/// A path that must not depend on the directory the agent starts in.
fn absolute_path(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(format!("must be an absolute path, found {v:?}"));
    }
    Ok(p)
}

fn url_value(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let lower = v.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        match crate::url::url_parts(v) {
            Some(_) => Ok(Some(v.to_string())),
            None => Err(format!("not a valid URL (scheme://host[:port]/path expected), found {v:?}")),
        }
    } else if let Some(path) = v.strip_prefix("file://") {
        if path.starts_with('/') {
            Ok(Some(v.to_string()))
        } else {
            Err(format!("file:// URL needs an absolute path (file:///path), found {v:?}"))
        }
    } else {
        Err(format!("expected an https://, http:// or file:/// URL, found {v:?}"))
    }
}

fn auth_header_value(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    match v.split_once(':') {
        Some((name, value))
            if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !value.trim().is_empty()
                && !v.bytes().any(|b| b == b'\r' || b == b'\n') =>
        {
            Ok(Some(v.to_string()))
        }
        _ => Err("expected \"Header-Name: value\", e.g. \"Authorization: Bearer TOKEN\"".into()),
    }
}

fn number(v: &str) -> Result<u64, String> {
    v.parse::<u64>().map_err(|_| format!("expected a whole number, found {v:?}"))
}

/// `30,7,1`: days > 0, kept largest first without repeats.
fn days(v: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in v.split(',') {
        match part.parse::<u32>() {
            Ok(n) if n > 0 && n <= 3650 => out.push(n),
            _ => {
                return Err(format!("expected days between 1 and 3650 separated by commas (e.g. 30,7,1), found {v:?}"));
            }
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    Ok(out)
}

fn positive(v: &str) -> Result<u64, String> {
    match number(v)? {
        0 => Err("must be greater than 0".into()),
        n => Ok(n),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected 1 or 0, found {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_forms() {
        let text = "# c\n\nA=1\nexport B=\"two words\" # c\nC='lit $x \\n'\nD=bare # comment\nE=\"q\\\"x\"\nF=\n";
        let e = parse(text).unwrap();
        let kv: Vec<_> = e.iter().map(|e| (e.key.as_str(), e.value.as_str(), e.line)).collect();
        assert_eq!(
            kv,
            vec![
                ("A", "1", 3),
                ("B", "two words", 4),
                ("C", "lit $x \\n", 5),
                ("D", "bare", 6),
                ("E", "q\"x", 7),
                ("F", "", 8)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(parse("A=1\nnot a line\n").unwrap_err().line, 2);
        assert_eq!(parse("A=\"open\n").unwrap_err().line, 1);
        assert_eq!(parse("A='x' y\n").unwrap_err().line, 1);
        assert_eq!(parse("BAD-KEY=1\n").unwrap_err().line, 1);
    }

    #[test]
    fn values_are_checked_with_file_line_key() {
        let p = Path::new("/etc/x/agent.env");
        let err = Settings::from_text(p, "A=1\nROTATE_MAX_BYTES=lots\n").unwrap_err().to_string();
        assert_eq!(err, "/etc/x/agent.env:2: ROTATE_MAX_BYTES: expected a whole number, found \"lots\"");
        let err = Settings::from_text(p, "SPOOL_DIR=spool\n").unwrap_err().to_string();
        assert!(err.contains(":1: SPOOL_DIR: must be an absolute path"), "{err}");
        assert!(Settings::from_text(p, "TELEMETRY_URL=ftp://x\n").is_err());
        assert!(Settings::from_text(p, "AUTH_HEADER=Bearer abc\n").is_err());
        assert!(Settings::from_text(p, "MTLS_ENABLED=1\n").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::from_text(
            Path::new("/x"),
            "SPOOL_DIR=/srv/spool\nTELEMETRY_URL=\"https://t.example/api\"\nCOMPRESS=gzip\nOPENVPN_SERVER_CONF=\"/a.conf /b.conf\"\nWHAT=1\n",
        )
        .unwrap();
        assert_eq!(s.spool.spool_dir, PathBuf::from("/srv/spool"));
        assert_eq!(s.delivery.telemetry_url.as_deref(), Some("https://t.example/api"));
        assert_eq!(s.delivery.compress, Compress::Gzip);
        assert_eq!(s.installer.openvpn_server_conf.len(), 2);
        assert_eq!(s.spool.rotate_max_bytes, 131_072);
        assert_eq!(s.unknown_keys, vec![(5, "WHAT".to_string())]);
    }

    #[test]
    fn privacy_conflicts_name_line_and_key() {
        let p = Path::new("/x");
        let err = Settings::from_text(p, "PSEUDONYMIZE=real_ip\nREAL_IP_PREFIX=24,48\n").unwrap_err().to_string();
        assert!(err.starts_with("/x:2: REAL_IP_PREFIX: real_ip is in PSEUDONYMIZE"), "{err}");
        let err = Settings::from_text(p, "DROP_FIELDS=username\nPSEUDONYMIZE=username\n").unwrap_err().to_string();
        assert!(err.starts_with("/x:1: DROP_FIELDS: username is also in PSEUDONYMIZE"), "{err}");
        let s = Settings::from_text(p, "PSEUDONYMIZE=common_name,username\nDROP_FIELDS=real_port\n").unwrap();
        assert!(s.privacy.pseudonymize.contains("username") && s.privacy.drop_fields.contains("real_port"));
        assert_eq!(s.privacy.key_file, PathBuf::from(crate::privacy::DEFAULT_KEY_FILE));
    }

    #[test]
    fn companion_names() {
        assert_eq!(hook_companion(Path::new("/etc/o/agent.env")), PathBuf::from("/etc/o/agent.hook.env"));
        assert_eq!(hook_companion(Path::new("/t/site")), PathBuf::from("/t/site.hook.env"));
    }
}
