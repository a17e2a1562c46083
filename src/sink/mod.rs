//! Where batches go: the telemetry server over HTTP(S), a local file
//! (`TELEMETRY_URL=file:///path`), or nowhere yet (no `TELEMETRY_URL`).
//!
//! Guarantees:
//! - one ureq `Agent` for the whole run, so one kept-alive connection;
//!   connect and whole-request timeouts are always set;
//! - TLS always verifies the server: the roots are the system bundle
//!   (`/etc/ssl/certs`, as curl uses) plus `CA_CERT`; there is no switch to
//!   turn verification off; mTLS presents `CLIENT_CERT`/`CLIENT_KEY`;
//! - the answer is classified into an [`Outcome`] by [`classify`] (a pure
//!   function of status, headers and body) and nowhere else;
//!   4xx/5xx are answers, never errors (`http_status_as_error(false)`);
//! - redirects are not followed (a POST must not wander off with the
//!   auth header); a 3xx is reported as a configuration problem;
//! - host names are resolved by `getent` as a child (src/resolve.rs), so a
//!   static build never loads NSS modules in-process;
//! - nothing secret is ever put in a log line or an error: not the auth
//!   header, not key material (errors name the setting and the path only).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig};

use crate::config::{Compress, DeliverySection, Format};
use crate::url::{is_loopback, mask_url};

mod classify;
pub mod otlp;
mod private;

pub use classify::{Outcome, classify, server_text};
pub use private::Private;

/// The system trust store, as Debian/Ubuntu ship it (curl's default).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";
/// How much of an answer is read at all.
const ANSWER_CAP: u64 = 64 * 1024;

/// A setting whose file could not be used; names the key and the path.
#[derive(Debug)]
pub enum SinkError {
    Read { key: &'static str, path: PathBuf, source: io::Error },
    Pem { key: &'static str, path: PathBuf, what: String },
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Read { key, path, source } => write!(f, "{key}={}: cannot read: {source}", path.display()),
            SinkError::Pem { key, path, what } => write!(f, "{key}={}: {what}", path.display()),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Read { source, .. } => Some(source),
            SinkError::Pem { .. } => None,
        }
    }
}

pub enum Sink {
    Http(Http),
    File(PathBuf),
    /// No `TELEMETRY_URL`: events stay in the spool.
    Hold,
}

pub struct Http {
    agent: ureq::Agent,
    url: String,
    auth: Option<(String, String)>,
    gzip: bool,
    format: Format,
    /// `host.name` of the OTLP resource.
    host: String,
}

/// Where delivery hands a batch, and what became of it. The agent's is
/// [`Sink`]; delivery's tests script one, so splitting, setting aside and
/// resuming are tested without a server.
pub trait Deliver: Send {
    /// Sends the events (raw JSON objects, as the hooks wrote them).
    fn send(&mut self, server_id: &str, events: &[&[u8]]) -> Outcome;
    /// Where events go, fit for logs and `status` (no secrets).
    fn describe(&self) -> String;
    /// Whether events are held on purpose (no `TELEMETRY_URL`).
    fn holds(&self) -> bool {
        false
    }
    /// Bytes one event line adds to a request body (for `MAX_BATCH_BYTES`).
    fn cost(&self, line: &[u8]) -> usize {
        line.len() + 1
    }
    /// Bytes a request body adds around its events.
    fn overhead(&self, server_id: &str) -> usize {
        envelope_overhead(server_id)
    }
}

impl Deliver for Sink {
    fn send(&mut self, server_id: &str, events: &[&[u8]]) -> Outcome {
        Sink::send(self, server_id, events)
    }
    fn describe(&self) -> String {
        Sink::describe(self)
    }
    fn holds(&self) -> bool {
        matches!(self, Sink::Hold)
    }
    fn cost(&self, line: &[u8]) -> usize {
        match self {
            Sink::Http(h) if h.format == Format::Otlp => otlp::cost(line),
            _ => line.len() + 1,
        }
    }
    fn overhead(&self, server_id: &str) -> usize {
        match self {
            Sink::Http(h) if h.format == Format::Otlp => otlp::OVERHEAD + 2 * server_id.len(),
            _ => envelope_overhead(server_id),
        }
    }
}

impl Sink {
    /// From the Delivery section of the settings alone (URL, format,
    /// auth, TLS, timeouts): the sink sees nothing else.
    pub fn from_settings(s: &DeliverySection) -> Result<Sink, SinkError> {
        match s.telemetry_url.as_deref() {
            None => Ok(Sink::Hold),
            Some(url) => match url.strip_prefix("file://") {
                Some(path) => Ok(Sink::File(PathBuf::from(path))),
                None => Ok(Sink::Http(Http::new(s, url)?)),
            },
        }
    }

    /// Sends the events (raw JSON objects, as the hooks wrote them).
    pub fn send(&self, server_id: &str, events: &[&[u8]]) -> Outcome {
        match self {
            Sink::Http(h) => h.post(server_id, events),
            Sink::File(path) => match append_lines(path, events) {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Retry { reason: format!("{}: {e}", path.display()), retry_after: None },
            },
            Sink::Hold => Outcome::Retry { reason: "no TELEMETRY_URL".into(), retry_after: None },
        }
    }

    /// Where events go, fit for logs and `status` (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Sink::Http(h) => mask_url(&h.url),
            Sink::File(p) => format!("file://{}", p.display()),
            Sink::Hold => "none (no TELEMETRY_URL: holding events)".into(),
        }
    }
}

/// The envelope servers accept (`{server_id, sent_at, events}`), written as bytes so the events go out exactly as
/// the hooks wrote them (no parse, no re-serialisation).
pub fn envelope(server_id: &str, events: &[&[u8]]) -> Vec<u8> {
    let size: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 128);
    body.extend_from_slice(b"{\"server_id\":");
    body.extend_from_slice(serde_json::to_string(server_id).unwrap_or_else(|_| "\"\"".into()).as_bytes());
    body.extend_from_slice(b",\"sent_at\":\"");
    body.extend_from_slice(crate::event::rfc3339(crate::event::now()).as_bytes());
    body.extend_from_slice(b"\",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Bytes the envelope adds around the events, for batch sizing (a
/// generous upper bound: server_id is at most a host name or a setting).
pub fn envelope_overhead(server_id: &str) -> usize {
    64 + 2 * server_id.len()
}

impl Http {
    fn new(s: &DeliverySection, url: &str) -> Result<Http, SinkError> {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(s.connect_timeout_seconds)))
            .timeout_global(Some(Duration::from_secs(s.request_timeout_seconds)))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(format!("openvpn-telemetry/{}", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .tls_config(if url.to_ascii_lowercase().starts_with("https://") {
                tls_config(s)?
            } else {
                TlsConfig::default()
            })
            .build();
        let auth =
            s.auth_header.as_deref().and_then(|h| h.split_once(':')).map(|(n, v)| (n.trim().into(), v.trim().into()));
        if url.to_ascii_lowercase().starts_with("http://") && !is_loopback(url) {
            log::warn!(
                "TELEMETRY_URL {} is plain http:// to a non-loopback host: events travel unencrypted",
                mask_url(url)
            );
        }
        Ok(Http {
            // Names are resolved by `getent` in a child, never by glibc's
            // NSS in this (static) process: see src/resolve.rs.
            agent: ureq::Agent::with_parts(
                config,
                ureq::unversioned::transport::DefaultConnector::default(),
                crate::resolve::GetentResolver,
            ),
            url: url.to_string(),
            auth,
            gzip: s.compress == Compress::Gzip,
            format: s.format,
            host: crate::config::host_name(),
        })
    }

    fn post(&self, server_id: &str, events: &[&[u8]]) -> Outcome {
        let body = match self.format {
            Format::Json => envelope(server_id, events),
            Format::Otlp => otlp::export_request(server_id, &self.host, events),
        };
        let body = &body[..];
        let mut req = self.agent.post(&self.url).header("Content-Type", "application/json");
        if let Some((name, value)) = &self.auth {
            req = req.header(name.as_str(), value.as_str());
        }
        let sent = if self.gzip {
            match gzip(body) {
                Ok(gz) => req.header("Content-Encoding", "gzip").send(&gz[..]),
                Err(e) => return Outcome::Retry { reason: format!("gzip: {e}"), retry_after: None },
            }
        } else {
            req.send(body)
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // A transport error may quote what the server sent.
                return Outcome::Retry { reason: server_text(e.to_string().as_bytes()), retry_after: None };
            }
        };
        let status = resp.status().as_u16();
        // Reading the (small) answer to the end lets ureq reuse the connection.
        let answer = match resp.body_mut().with_config().limit(ANSWER_CAP).read_to_vec() {
            Ok(answer) => answer,
            // Taken as an empty answer: for a 2xx, rejections it may
            // have listed are not known, so say so.
            Err(e) => {
                let e = server_text(e.to_string().as_bytes());
                log::warn!("HTTP {status}: the answer could not be read ({e}); taken as empty");
                Vec::new()
            }
        };
        classify(self.format, status, resp.headers(), &answer)
    }
}

fn gzip(body: &[u8]) -> io::Result<Vec<u8>> {
    // Level 1: JSON still shrinks several times, and CPU on the VPN host
    // matters more than a few more bytes on the wire.
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}

/// Appends lines to the file sink and fsyncs. A torn tail left by an
/// earlier crash is closed with a newline first, so it stays one bad line
/// instead of swallowing the next event.
fn append_lines(path: &Path, events: &[&[u8]]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(nix::fcntl::OFlag::O_CLOEXEC.bits())
        .open(path)?;
    let len = file.metadata()?.len();
    let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 1);
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    for e in events {
        buf.extend_from_slice(e);
        buf.push(b'\n');
    }
    file.write_all(&buf)?;
    file.sync_data()
}

fn tls_config(s: &DeliverySection) -> Result<TlsConfig, SinkError> {
    let mut roots = system_roots();
    if let Some(ca) = &s.ca_cert {
        let found = certs_in(&read("CA_CERT", ca)?);
        if found.is_empty() {
            return Err(SinkError::Pem { key: "CA_CERT", path: ca.clone(), what: "no PEM certificate found".into() });
        }
        roots.extend(found);
    }
    if roots.is_empty() {
        log::warn!("no trusted CA certificates found in {SYSTEM_DIR} and no CA_CERT: https:// will fail");
    }
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&roots));
    if s.mtls_enabled
        && let (Some(cert), Some(key)) = (&s.client_cert, &s.client_key)
    {
        let chain = certs_in(&read("CLIENT_CERT", cert)?);
        if chain.is_empty() {
            return Err(SinkError::Pem {
                key: "CLIENT_CERT",
                path: cert.clone(),
                what: "no PEM certificate found".into(),
            });
        }
        let key_pem = read("CLIENT_KEY", key)?;
        let private = ureq::tls::parse_pem(&key_pem).find_map(|item| match item {
            Ok(PemItem::PrivateKey(k)) => Some(k),
            _ => None,
        });
        let Some(private) = private else {
            return Err(SinkError::Pem {
                key: "CLIENT_KEY",
                path: key.clone(),
                what: "no PEM private key found".into(),
            });
        };
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, private)));
    }
    Ok(tls.build())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|source| SinkError::Read { key, path: path.to_path_buf(), source })
}

fn certs_in(pem: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// The system bundle, else every `*.pem`/`*.crt` in `/etc/ssl/certs`.
fn system_roots() -> Vec<Certificate<'static>> {
    if let Ok(pem) = std::fs::read(SYSTEM_BUNDLE) {
        return certs_in(&pem);
    }
    let mut roots = Vec::new();
    if let Ok(dir) = std::fs::read_dir(SYSTEM_DIR) {
        for entry in dir.flatten() {
            let p = entry.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("pem" | "crt")) {
                let mut pem = Vec::new();
                if File::open(&p).and_then(|mut f| f.read_to_end(&mut pem)).is_ok() {
                    roots.extend(certs_in(&pem));
                }
            }
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_events_verbatim() {
        let body = envelope("vpn \"1\"", &[br#"{"a":1}"#, br#"{"b" : [2]}"#]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["server_id"], "vpn \"1\"");
        assert_eq!(v["events"][1]["b"][0], 2);
        assert!(body.windows(11).any(|w| w == br#"{"b" : [2]}"#));
    }
}
