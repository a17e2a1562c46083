//! Host names to socket addresses without glibc's NSS in this process.
//!
//! Why: the installed binary is a static-pie glibc build (the fastest hook
//! exec). Static glibc can still `dlopen` NSS modules, and it aborts
//! (`_dl_call_libc_early_init: Assertion 'sym != NULL'`, signal 6) as soon
//! as `getaddrinfo` goes through nsswitch.conf to a module that is not
//! built in: RHEL's `hosts: files dns myhostname` once DNS fails,
//! `hosts: hesiod files dns`, Ubuntu desktop's `mdns4_minimal`. So the
//! agent (ureq, through [`GetentResolver`]) and `check` never call
//! `getaddrinfo` for a name: they run `getent ahosts NAME`, the host's own
//! dynamically linked NSS front end, as a child and read its answer.
//! The hooks never resolve anything.
//!
//! Guarantees:
//! - IP literals (`192.0.2.1`, `[2001:db8::1]`) never start a process;
//! - the answer is getent's STREAM addresses, de-duplicated, in getent's
//!   order (so `gai.conf` preferences still hold), with the URL's port;
//! - the caller's timeout bounds the lookup: getent is killed and reaped
//!   when it runs over, and the error says so;
//! - without getent, a dynamically linked build falls back to std's
//!   in-process lookup (safe there); a static build refuses with
//!   "cannot resolve NAME: getent not found" instead of risking the abort.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::getent;

/// Linked with `-C target-feature=+crt-static` (what `make build` does).
pub const STATIC: bool = cfg!(target_feature = "crt-static");

#[derive(Debug)]
pub enum ResolveError {
    /// The lookup worked and found no address.
    NotFound {
        host: String,
    },
    /// Static build and no getent: resolving in-process could abort.
    NoGetent {
        host: String,
    },
    TimedOut {
        host: String,
        after: Duration,
    },
    /// getent could not be started or read, or the in-process fallback failed.
    Failed {
        host: String,
        source: io::Error,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotFound { host } => write!(f, "cannot resolve {host}: no address found"),
            ResolveError::NoGetent { host } => write!(
                f,
                "cannot resolve {host}: getent not found (install glibc's getent or use an IP address in TELEMETRY_URL)"
            ),
            ResolveError::TimedOut { host, after } => {
                write!(f, "cannot resolve {host}: no answer within {} ms", after.as_millis())
            }
            ResolveError::Failed { host, source } => write!(f, "cannot resolve {host}: {source}"),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Failed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Addresses for `host` (a name, an IP, or a bracketed IPv6) and `port`,
/// within `timeout` (`None`: as long as the system resolver takes).
pub fn lookup(host: &str, port: u16, timeout: Option<Duration>) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(ip) = ip_literal(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match getent::find() {
        Some(getent) => {
            let out = run_getent(getent, host, timeout)?;
            let addrs = parse_ahosts(&out, port);
            if addrs.is_empty() { Err(ResolveError::NotFound { host: host.into() }) } else { Ok(addrs) }
        }
        None if STATIC => Err(ResolveError::NoGetent { host: host.into() }),
        None => in_process(host, port, timeout),
    }
}

/// `host` as an IP address, with or without IPv6 brackets.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// Runs `getent ahosts -- HOST` and returns its stdout.
fn run_getent(getent: &Path, host: &str, timeout: Option<Duration>) -> Result<Vec<u8>, ResolveError> {
    let mut cmd = Command::new(getent);
    cmd.args(["ahosts", "--", host]);
    getent::output_within(cmd, timeout).map_err(|e| match e {
        None => ResolveError::TimedOut { host: host.into(), after: timeout.unwrap_or_default() },
        Some(e) => {
            let source = io::Error::new(e.kind(), format!("{}: {e}", getent.display()));
            ResolveError::Failed { host: host.into(), source }
        }
    })
}

/// The STREAM lines of `getent ahosts` (`ADDRESS  STREAM  [CANONNAME]`),
/// unique addresses in order; DGRAM/RAW lines repeat the same addresses.
pub fn parse_ahosts(out: &[u8], port: u16) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for line in String::from_utf8_lossy(out).lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(addr), Some("STREAM")) = (fields.next(), fields.next()) else { continue };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let sa = SocketAddr::new(ip, port);
            if !addrs.contains(&sa) {
                addrs.push(sa);
            }
        }
    }
    addrs
}

/// std's lookup, for dynamically linked builds only (their NSS is safe).
fn in_process(host: &str, port: u16, timeout: Option<Duration>) -> Result<Vec<SocketAddr>, ResolveError> {
    let name = host.to_string();
    let (tx, rx) = mpsc::sync_channel(1);
    // A thread, so a hung resolver cannot hold the caller past its timeout.
    std::thread::spawn(move || tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter)).ok());
    let got = match timeout {
        Some(t) => rx.recv_timeout(t).map_err(|_| ResolveError::TimedOut { host: host.into(), after: t })?,
        None => rx.recv().map_err(|_| ResolveError::Failed { host: host.into(), source: io::Error::other("lost") })?,
    };
    match got {
        Ok(addrs) if addrs.is_empty() => Err(ResolveError::NotFound { host: host.into() }),
        Ok(addrs) => Ok(addrs),
        Err(source) => Err(ResolveError::Failed { host: host.into(), source }),
    }
}

/// ureq's resolver, built on [`lookup`] (see the module doc for why).
#[derive(Debug, Default)]
pub struct GetentResolver;

impl Resolver for GetentResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ureq::Error::BadUri(format!("{uri} is missing scheme or host")));
        };
        let port = match authority.port_u16() {
            Some(p) => p,
            None => match scheme.to_ascii_lowercase().as_str() {
                "https" => 443,
                "http" => 80,
                // Proxy URIs (ALL_PROXY/HTTPS_PROXY) come through here too.
                s if s.starts_with("socks") => 1080,
                s => return Err(ureq::Error::BadUri(format!("unknown scheme: {s}"))),
            },
        };
        let limit = (!timeout.after.is_not_happening()).then_some(*timeout.after);
        let addrs = lookup(authority.host(), port, limit).map_err(|e| {
            log::debug!("{e}");
            match e {
                ResolveError::NotFound { .. } => ureq::Error::HostNotFound,
                ResolveError::TimedOut { .. } => ureq::Error::Timeout(timeout.reason),
                other => ureq::Error::Io(io::Error::other(other.to_string())),
            }
        })?;
        let mut result = self.empty();
        for addr in config.ip_family().keep_wanted(addrs.into_iter()) {
            // ureq keeps at most 16; the first ones are the preferred ones.
            if result.try_push(addr).is_err() {
                break;
            }
        }
        if result.is_empty() { Err(ureq::Error::HostNotFound) } else { Ok(result) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AHOSTS: &str = "\
2001:db8::5     STREAM telemetry.example
2001:db8::5     DGRAM  \n\
2001:db8::5     RAW    \n\
192.0.2.10      STREAM 
192.0.2.10      DGRAM  
192.0.2.11      STREAM 
192.0.2.10      STREAM 
";

    #[test]
    fn getent_stream_lines_become_unique_addresses_in_order() {
        let got = parse_ahosts(AHOSTS.as_bytes(), 8443);
        let want: Vec<SocketAddr> =
            ["[2001:db8::5]:8443", "192.0.2.10:8443", "192.0.2.11:8443"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn junk_and_empty_output_give_no_address() {
        assert!(parse_ahosts(b"", 443).is_empty());
        assert!(parse_ahosts(b"not-an-ip STREAM x\n192.0.2.1 DGRAM\n\n", 443).is_empty());
    }

    #[test]
    fn ip_literals_are_returned_without_a_lookup() {
        let none = Some(Duration::ZERO); // a spawned getent would time out at once
        assert_eq!(lookup("192.0.2.7", 80, none).unwrap(), vec!["192.0.2.7:80".parse().unwrap()]);
        assert_eq!(lookup("[2001:db8::1]", 443, none).unwrap(), vec!["[2001:db8::1]:443".parse().unwrap()]);
        assert_eq!(lookup("::1", 443, none).unwrap(), vec!["[::1]:443".parse().unwrap()]);
        assert_eq!(ip_literal("[192.0.2.1"), None);
        assert_eq!(ip_literal("host.example"), None);
    }

    #[test]
    fn uri_ports_and_literals_through_the_ureq_resolver() {
        let config = Config::default();
        let resolve = |u: &str| {
            let uri: Uri = u.parse().unwrap();
            GetentResolver.resolve(&uri, &config, NextTimeout::default()).map(|a| a.to_vec())
        };
        assert_eq!(resolve("https://192.0.2.1/x").unwrap(), vec!["192.0.2.1:443".parse().unwrap()]);
        assert_eq!(resolve("http://[2001:db8::2]/").unwrap(), vec!["[2001:db8::2]:80".parse().unwrap()]);
        assert_eq!(resolve("http://192.0.2.1:8080/").unwrap(), vec!["192.0.2.1:8080".parse().unwrap()]);
        assert!(matches!(resolve("ftp://192.0.2.1/"), Err(ureq::Error::BadUri(_))));
    }

    #[test]
    fn names_go_through_getent() {
        // `localhost` is in every /etc/hosts, so no query leaves the host.
        let addrs = lookup("localhost", 8080, Some(Duration::from_secs(30))).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{addrs:?}");
    }
}
