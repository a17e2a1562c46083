//! The agent's log: env_logger to stderr (the journal under systemd),
//! guarded so that nothing secret or forged gets through.
//!
//! Guarantees:
//! - the HTTP and TLS crates' debug and trace records never pass (their
//!   wire traces print request headers, and so `AUTH_HEADER`);
//! - every message has its control characters escaped, so a chunk name or
//!   a server's answer cannot write escape sequences or a second line.

use crate::config::Settings;

/// What the agent's log lets through, whatever `RUST_LOG` says:
/// - the HTTP and TLS crates' debug and trace records never: their wire
///   traces print request headers, and so `AUTH_HEADER`;
/// - every message with its control characters escaped
///   ([`crate::fsutil::printable`]): chunk names come from the hooks'
///   user and answers from the server, and neither may write escape
///   sequences to a terminal or a second, forged line into the journal.
struct Guarded {
    inner: env_logger::Logger,
}

fn wire_trace(m: &log::Metadata) -> bool {
    let t = m.target();
    m.level() > log::Level::Info && ["ureq", "rustls", "http", "webpki"].iter().any(|c| t.starts_with(c))
}

impl log::Log for Guarded {
    fn enabled(&self, m: &log::Metadata) -> bool {
        !wire_trace(m) && self.inner.enabled(m)
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let text = r.args().to_string();
        let safe = crate::fsutil::printable(&text);
        self.inner.log(
            &log::Record::builder()
                .args(format_args!("{safe}"))
                .metadata(r.metadata().clone())
                .module_path(r.module_path())
                .file(r.file())
                .line(r.line())
                .build(),
        );
    }
    fn flush(&self) {
        self.inner.flush();
    }
}

/// env_logger to stderr. `RUST_LOG` (if set) wins; else `LOG_LEVEL` from
/// agent.env sets this program's level (default info) while libraries stay
/// at warn (their debug output is not ours to vouch for). Under systemd
/// (`JOURNAL_STREAM`) lines carry `<N>` priorities instead of timestamps.
pub(super) fn init(s: &Settings) {
    let mut b = env_logger::Builder::new();
    let mut bad_level = None;
    b.target(env_logger::Target::Stderr);
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => {
            b.parse_filters(&spec);
        }
        _ => {
            let level = s.log_level.as_deref().unwrap_or("info");
            let parsed = level.parse().unwrap_or(log::LevelFilter::Info);
            b.filter_level(log::LevelFilter::Warn).filter_module("openvpn_telemetry", parsed);
            if level.parse::<log::LevelFilter>().is_err() {
                bad_level = Some(level.to_string());
            }
        }
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        use std::io::Write;
        b.format(|buf, rec| {
            let prio = match rec.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                _ => 7,
            };
            writeln!(buf, "<{prio}>{}", rec.args())
        });
    }
    let inner = b.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Guarded { inner })).is_ok() {
        log::set_max_level(max);
    }
    if let Some(level) = bad_level {
        log::warn!("{}: LOG_LEVEL={level:?} is not error/warn/info/debug/trace; using info", s.path.display());
    }
}
