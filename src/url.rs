//! URLs taken apart once: `TELEMETRY_URL` checked by the settings reader,
//! connected to by `check` and the HTTP sink, told loopback from network,
//! and shown without secrets.
//!
//! Guarantees: only absolute `http`/`https` URLs with a host are accepted;
//! [`mask_url`] never shows user info or a query string (where tokens hide).

/// A network URL taken apart once (by `ureq::http::Uri`), for every use:
/// checking `TELEMETRY_URL`, connecting in `check`, telling loopback from
/// the network, and showing it without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Lower case: `http` or `https`.
    pub scheme: String,
    /// Without IPv6 brackets.
    pub host: String,
    /// As given, or the scheme's default.
    pub port: u16,
    /// `host[:port]` as written (brackets kept), without user info.
    authority: String,
    userinfo: bool,
    path: String,
    query: bool,
}

/// `None` for anything that is not an absolute http(s) URL with a host.
pub fn url_parts(url: &str) -> Option<UrlParts> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let auth = uri.authority()?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return None;
    }
    let written = auth.as_str();
    let (userinfo, authority) = match written.rsplit_once('@') {
        Some((_, a)) => (true, a.to_string()),
        None => (false, written.to_string()),
    };
    let port = auth.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(UrlParts {
        scheme,
        host,
        port,
        authority,
        userinfo,
        path: uri.path().to_string(),
        query: uri.query().is_some(),
    })
}

pub fn is_loopback(url: &str) -> bool {
    url_parts(url).is_some_and(|u| {
        u.host.eq_ignore_ascii_case("localhost") || u.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

/// A URL fit for logs: user info and query string (where tokens hide) are
/// replaced by `***`. A `file://` URL is a path and shown as it is;
/// anything else that is not an http(s) URL (a relative redirect) keeps
/// only its path.
pub fn mask_url(url: &str) -> String {
    if url.starts_with("file://") {
        return url.to_string();
    }
    match url_parts(url) {
        Some(u) => {
            let user = if u.userinfo { "***@" } else { "" };
            let query = if u.query { "?***" } else { "" };
            // `Uri` says "/" for a URL that ends at its authority.
            let path = if u.path == "/" && url.ends_with(u.authority.as_str()) { "" } else { &u.path };
            format!("{}://{user}{}{path}{query}", u.scheme, u.authority)
        }
        None => {
            let path = url.split(['?', '#']).next().unwrap_or("");
            if url.contains('?') { format!("{path}?***") } else { path.to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://[::1]:80/"));
        assert!(is_loopback("http://LOCALHOST/"));
        assert!(is_loopback("http://u:p@127.0.0.2"));
        assert!(!is_loopback("http://10.0.0.1/"));
        assert!(!is_loopback("http://example.com/127.0.0.1"));
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(mask_url("https://u:pw@h.example/a?token=x"), "https://***@h.example/a?***");
        assert_eq!(mask_url("https://h.example:443/api/v1"), "https://h.example:443/api/v1");
        assert_eq!(mask_url("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(mask_url("file:///var/lib/sink.ndjson"), "file:///var/lib/sink.ndjson");
        assert_eq!(mask_url("/v2/ingest?sig=abc"), "/v2/ingest?***");
    }

    #[test]
    fn urls_are_taken_apart_once() {
        let u = url_parts("HTTPS://u:p@[2001:db8::1]/x?y").unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.port), ("https", "2001:db8::1", 443));
        assert_eq!(
            url_parts("http://u:p@10.0.0.1:8080/x?y").map(|u| (u.host, u.port)),
            Some(("10.0.0.1".into(), 8080))
        );
        assert!(url_parts("https://").is_none() && url_parts("ftp://h/").is_none() && url_parts("h/x").is_none());
    }
}
