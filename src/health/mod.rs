//! The agent's health, in the three forms operators consume it: the
//! `AGENT_HEARTBEAT` event ([`heartbeat`]), the one-line verdict of
//! `status --check` ([`check`]) and the Prometheus textfile for
//! node_exporter ([`metrics`]).
//!
//! The agent's two working threads each know half of it: delivery knows
//! the spool and the counters ([`Vitals`]), the sources thread what the
//! status files said ([`InstanceView`]). Both hand their half to one
//! [`Board`], which keeps the latest of each and rewrites the metrics
//! file from them.
//!
//! Guarantees: the board's lock is held only to swap in a half and write
//! the file (never across a read of the spool or a status file); a failed
//! write is logged once per kind of failure, never fatal: metrics are a
//! view, and delivery goes on without them.

pub mod check;
pub mod heartbeat;
pub mod metrics;
mod own;
mod rows;
mod view;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use rows::{ClientRow, InstanceView, RouteRow};
pub use view::{SpoolView, first_event_time, list_chunks, read_dir_here};

use crate::config::HealthSection;
use crate::privacy::Privacy;
use crate::state::{AgentState, Posts};

/// Longest `last_error` the heartbeat carries, in characters.
pub const LAST_ERROR_CAP: usize = 200;

/// The agent's own numbers: the spool as it is, and the delivery counters
/// its state keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vitals {
    pub started_at: Option<OffsetDateTime>,
    pub spool: SpoolView,
    pub delivered_events_total: u64,
    pub dropped_events_total: u64,
    pub posts: Posts,
    pub last_success_at: Option<OffsetDateTime>,
    pub consecutive_failures: u64,
    /// Short and escaped ([`scrub`]).
    pub last_error: Option<String>,
}

impl Vitals {
    /// From the agent's state and a look at the spool. `secrets` are the
    /// values that must never appear in `last_error` (the URL, the
    /// header's value).
    pub fn of(state: &AgentState, spool: SpoolView, secrets: &[&str]) -> Vitals {
        let time = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
        Vitals {
            started_at: time(&state.started),
            spool,
            delivered_events_total: state.delivered_events,
            dropped_events_total: state.dropped.count,
            posts: state.posts,
            last_success_at: state.last_success.as_ref().and_then(|s| time(&s.time)),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.as_ref().map(|e| scrub(&e.message, secrets)),
        }
    }
}

/// A message fit to leave the host: every secret replaced by `***`, the
/// user info and query of every URL (and any other `?query`) masked
/// wherever they stand in the text ([`mask_urls`]), control characters
/// escaped, and at most [`LAST_ERROR_CAP`] characters (a hostile server's
/// text is capped before it gets here, but not this short).
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut text = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(s, "***");
    }
    let text = mask_urls(&text);
    let printable = crate::fsutil::printable(&text);
    let mut out: String = printable.chars().take(LAST_ERROR_CAP).collect();
    if printable.chars().count() > LAST_ERROR_CAP {
        out.push('…');
    }
    out
}

/// Where a URL or query ends in running text: white space, or what
/// closes the brackets or quotes around it.
fn url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, ')' | ']' | '>' | '"' | '\'' | '`')
}

/// `scheme://user:pw@host` → `scheme://***@host` and `?a=b` → `?***`,
/// anywhere in `text` (inside brackets, after a colon, mid-word): where
/// tokens hide, whatever the message around them.
pub fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(|c: char| url_end(c) || matches!(c, '/' | '?' | '#')).unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("***@");
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find('?') {
        masked.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let end = rest.find(|c: char| url_end(c) || c == '#').unwrap_or(rest.len());
        if end > 0 {
            masked.push_str("***");
            rest = &rest[end..];
        }
    }
    masked.push_str(rest);
    masked
}

/// The values that must never leave the host in a message: the URL, its
/// password and query values; the header, its value and the value's last
/// word (the bare token of `Authorization: Bearer X`).
pub fn secrets_of(url: Option<&str>, auth_header: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = url {
        out.push(url.to_string());
        if let Some((_, after)) = url.split_once("://") {
            let authority = after.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                out.push(userinfo.to_string());
                if let Some((_, pw)) = userinfo.split_once(':') {
                    out.push(pw.to_string());
                }
            }
        }
        if let Some((_, query)) = url.split_once('?') {
            let query = query.split('#').next().unwrap_or("");
            for pair in query.split('&') {
                out.push(pair.split_once('=').map_or(pair, |(_, v)| v).to_string());
            }
        }
    }
    if let Some(header) = auth_header {
        out.push(header.to_string());
        if let Some((_, value)) = header.split_once(':') {
            out.push(value.trim().to_string());
            if let Some(last) = value.split_whitespace().last() {
                out.push(last.to_string());
            }
        }
    }
    // The longest first, so that a secret is not half replaced by a
    // shorter one inside it.
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Where the agent's threads leave their half of the health, and the
/// metrics file made of both.
pub struct Board {
    textfile: Option<PathBuf>,
    per_client: bool,
    max_clients: usize,
    /// Applied to the per-client labels before they are written.
    privacy: Privacy,
    /// Whether a sources thread will publish status files: until it has
    /// (or [`SOURCES_GRACE`] passed), the file is not written, so that a
    /// restart does not replace a file with clients by one without them.
    wait_for_sources: bool,
    created: Instant,
    inner: Mutex<Halves>,
}

/// How long a new board waits for the sources' first round.
const SOURCES_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Halves {
    /// Shared with the heartbeat, which only counts its rows.
    instances: Arc<Vec<InstanceView>>,
    /// The sources have published at least once.
    instances_seen: bool,
    /// The OpenVPN families, rendered once per status round.
    openvpn_text: String,
    vitals: Option<Vitals>,
    /// The last write's error, logged once until it changes.
    write_error: Option<String>,
}

/// The status files with every per-client label as `privacy` lets it
/// leave the host: the metrics file is read by whoever scrapes
/// node_exporter, so it shows names and addresses exactly as the events
/// do (pseudonymized, cut to a network, or empty when dropped). OpenVPN's
/// `UNDEF` (no username) stays: it names no one.
fn labelled<'a>(privacy: &Privacy, instances: &'a [InstanceView]) -> Cow<'a, [InstanceView]> {
    if !privacy.active() {
        return Cow::Borrowed(instances);
    }
    let field = |name: &str, value: &str| privacy.field(name, value).map(Cow::into_owned).unwrap_or_default();
    let mut shown = instances.to_vec();
    for i in &mut shown {
        for c in &mut i.clients {
            c.common_name = field("common_name", &c.common_name);
            c.real_address = privacy.real_address(&c.real_address).into_owned();
            c.virtual_address = field("virtual_ip", &c.virtual_address);
            if c.username != "UNDEF" {
                c.username = field("username", &c.username);
            }
        }
        for r in &mut i.routes {
            r.common_name = field("common_name", &r.common_name);
            r.real_address = privacy.real_address(&r.real_address).into_owned();
            r.virtual_address = field("virtual_ip", &r.virtual_address);
        }
    }
    Cow::Owned(shown)
}

impl Board {
    /// `status_rounds`: whether the sources will read status files (an
    /// update or snapshot interval is set).
    /// `privacy`: what the metrics file's per-client labels may show (the
    /// same treatment as the events').
    pub fn new(health: &HealthSection, status_rounds: bool, privacy: Privacy) -> Board {
        if let Some(p) = &health.metrics_textfile
            && p.extension().is_none_or(|e| e != "prom")
        {
            log::warn!("METRICS_TEXTFILE={}: node_exporter reads only names ending in .prom", p.display());
        }
        Board {
            textfile: health.metrics_textfile.clone(),
            per_client: health.metrics_per_client,
            max_clients: usize::try_from(health.metrics_max_clients).unwrap_or(usize::MAX),
            wait_for_sources: status_rounds,
            privacy,
            created: Instant::now(),
            inner: Mutex::new(Halves::default()),
        }
    }

    /// The sources' half: every status file of this round.
    pub fn publish_instances(&self, instances: Vec<InstanceView>) {
        let text = if self.textfile.is_some() {
            metrics::render_openvpn(&labelled(&self.privacy, &instances), self.per_client, self.max_clients)
        } else {
            String::new()
        };
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        h.instances = Arc::new(instances);
        h.instances_seen = true;
        h.openvpn_text = text;
        self.write(&mut h);
    }

    /// Delivery's half.
    pub fn publish_vitals(&self, vitals: Vitals) {
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        h.vitals = Some(vitals);
        self.write(&mut h);
    }

    /// The status files as last read, for the heartbeat: shared, not a
    /// copy of every row (the heartbeat only counts them).
    pub fn instances(&self) -> Arc<Vec<InstanceView>> {
        Arc::clone(&self.inner.lock().unwrap_or_else(PoisonError::into_inner).instances)
    }

    fn write(&self, h: &mut Halves) {
        let Some(path) = &self.textfile else { return };
        if self.wait_for_sources && !h.instances_seen && self.created.elapsed() < SOURCES_GRACE {
            return;
        }
        let mut text = own::render(h.vitals.as_ref());
        text.push_str(&h.openvpn_text);
        match metrics::write_atomically(path, text.as_bytes()) {
            Ok(()) => {
                if h.write_error.take().is_some() {
                    log::info!("{}: written again", path.display());
                }
            }
            Err(e) => {
                let msg = format!("{}: cannot write the metrics file: {e}", path.display());
                if h.write_error.as_deref() != Some(msg.as_str()) {
                    log::warn!("{msg}");
                    h.write_error = Some(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{FieldSet, Key, Prefix, PrivacySection};

    fn one_client() -> Vec<InstanceView> {
        vec![InstanceView {
            status_path: "/run/openvpn-server/status-server.log".into(),
            instance: Some("server".into()),
            up: true,
            updated_at: Some(1),
            clients: vec![ClientRow {
                common_name: "alice".into(),
                real_address: "udp4:203.0.113.5:52137".into(),
                virtual_address: "10.8.0.6".into(),
                username: "al-user".into(),
                connected_since: 1,
                bytes_received: 2,
                bytes_sent: 3,
            }],
            routes: vec![RouteRow {
                virtual_address: "10.8.0.6".into(),
                common_name: "alice".into(),
                real_address: "udp4:203.0.113.5:52137".into(),
                last_ref: 1,
            }],
        }]
    }

    /// The labels show what the events show: with nothing set, OpenVPN's
    /// text; else pseudonyms (the events' own), a network, or nothing.
    #[test]
    fn metric_labels_leave_the_host_as_the_events_do() {
        let rows = one_client();
        let clear = metrics::render_openvpn(&labelled(&Privacy::off(), &rows), true, 100);
        assert!(clear.contains(r#"common_name="alice""#) && clear.contains("udp4:203.0.113.5:52137"), "{clear}");

        let section = PrivacySection {
            pseudonymize: FieldSet::parse("common_name,username,real_ip,virtual_ip").unwrap(),
            drop_fields: FieldSet::parse("real_port").unwrap(),
            ..PrivacySection::default()
        };
        let key = Key::new(&[7; 32]);
        let text = metrics::render_openvpn(&labelled(&Privacy::with_key(&section, key.clone()), &rows), true, 100);
        for raw in ["alice", "203.0.113", "52137", "10.8.0.6", "al-user"] {
            assert!(!text.contains(raw), "{raw} in\n{text}");
        }
        for (field, raw) in [("common_name", "alice"), ("real_ip", "203.0.113.5"), ("username", "al-user")] {
            assert!(text.contains(&format!("\"{}\"", key.pseudonym(field, raw))), "{field} in\n{text}");
        }
        assert!(text.contains(&format!("real_address=\"{}\"", key.pseudonym("real_ip", "203.0.113.5"))), "{text}");

        let cut = PrivacySection { real_ip_prefix: Prefix::parse("24,48").unwrap(), ..PrivacySection::default() };
        let text = metrics::render_openvpn(&labelled(&Privacy::with_key(&cut, key), &rows), true, 100);
        assert!(text.contains(r#"real_address="203.0.113.0:52137""#), "{text}");
        assert!(text.contains(r#"common_name="alice""#), "{text}");
    }

    #[test]
    fn scrub_masks_every_url_secret_and_query_wherever_it_stands() {
        let secrets = secrets_of(
            Some("https://tele:hunter2pw@t.example/api?key=SECRETKEY&sig=SIGVALUE#frag"),
            Some("Authorization: Bearer TOKEN123"),
        );
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        // (message, must not appear, must appear)
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("connect failed (https://u:hunter2@h.example/x?token=abcd)", &["hunter2", "abcd"], &["h.example/x?***)"]),
            ("url=https://u:pw@h.example/x: refused", &[":pw@"], &["url=https://***@h.example/x"]),
            ("\"http://a:b@h.example\"", &["a:b"], &["http://***@h.example\""]),
            ("see [http://h.example/p?sig=ABCDEF]", &["ABCDEF"], &["/p?***]"]),
            ("redirect to /x?session=S3SS10N", &["S3SS10N"], &["/x?***"]),
            ("token TOKEN123 rejected", &["TOKEN123"], &["token *** rejected"]),
            ("password hunter2pw", &["hunter2pw"], &["password ***"]),
            ("query value SIGVALUE echoed", &["SIGVALUE"], &["***"]),
            ("what? nothing", &[], &["what? nothing"]),
            ("ssh://git@h.example:22/r", &["git@"], &["ssh://***@h.example:22/r"]),
        ];
        for (msg, gone, kept) in cases {
            let s = scrub(msg, &secrets);
            for g in *gone {
                assert!(!s.contains(g), "{g:?} left in {s:?} (from {msg:?})");
            }
            for k in *kept {
                assert!(s.contains(k), "{k:?} not in {s:?} (from {msg:?})");
            }
        }
    }

    #[test]
    fn scrub_masks_secrets_urls_and_controls_and_caps() {
        let secrets = ["https://u:pw@t.example/api?key=SECRETKEY", "Bearer TOKEN123"];
        let msg = "https://u:pw@t.example/api?key=SECRETKEY: refused; header Bearer TOKEN123; \
                   see http://other.example/x?sig=ABCDEF\u{1b}[31m";
        let s = scrub(msg, &secrets);
        assert!(!s.contains("SECRETKEY") && !s.contains("TOKEN123") && !s.contains("ABCDEF"), "{s}");
        assert!(!s.contains('\u{1b}'), "{s}");
        assert!(s.contains("other.example"), "{s}");
        let long = "x".repeat(1000);
        assert_eq!(scrub(&long, &[]).chars().count(), LAST_ERROR_CAP + 1);
    }
}
