//! What an HTTP answer means for the batch that was sent: one pure
//! function, [`classify`], from (format, status, headers, body) to an
//! [`Outcome`], so the transport only sends and reads, and every status
//! class is tested without a server.
//!
//! Guarantees:
//! - every status maps to exactly one outcome; 4xx/5xx are answers, never
//!   errors;
//! - a redirect is never followed but reported as a configuration problem
//!   (a POST must not wander off with the auth header);
//! - whatever the server says (body, `errorMessage`, `Location`) reaches a
//!   log or a terminal only capped and escaped ([`server_text`]).

use std::time::Duration;

use ureq::http::HeaderMap;

use crate::config::Format;
use crate::url::mask_url;

/// How much of a refusal's body goes into the log.
const BODY_HEAD: usize = 200;

/// What the other side made of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (or written and fsynced to the file sink): delete it.
    Delivered,
    /// Connection error, timeout, 408, 429, 5xx: keep it, back off.
    Retry { reason: String, retry_after: Option<Duration> },
    /// 401/403 or a redirect: the operator must fix `AUTH_HEADER`, the
    /// client certificate or the URL. Keep it, complain loudly, retry slowly.
    Misconfigured { reason: String },
    /// 2xx, but the receiver says it rejected `rejected` of the records
    /// (OTLP `partialSuccess`): delete the batch, count those as dropped.
    PartlyRejected { rejected: u64, message: String },
    /// 413: the batch must be split.
    TooLarge,
    /// Any other 4xx: this batch will never be accepted; set it aside in
    /// `failed/`.
    SetAside { status: u16, body_head: String },
}

/// What the server's answer to one batch means. `answer` is the body as
/// read (capped by the transport); `format` says whether a 2xx may carry
/// an OTLP `partialSuccess`.
pub fn classify(format: Format, status: u16, headers: &HeaderMap, answer: &[u8]) -> Outcome {
    let head = || server_text(answer);
    match status {
        200..=299 => accepted(format, answer),
        401 | 403 => Outcome::Misconfigured {
            reason: format!("HTTP {status} (check AUTH_HEADER / client certificate): {}", head()),
        },
        300..=399 => {
            let to = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("?");
            let to = server_text(to.as_bytes());
            Outcome::Misconfigured {
                reason: format!("HTTP {status} redirect to {} not followed; fix TELEMETRY_URL", mask_url(&to)),
            }
        }
        413 => Outcome::TooLarge,
        408 | 429 | 500.. | 100..=199 => {
            Outcome::Retry { reason: format!("HTTP {status}: {}", head()), retry_after: retry_after(headers) }
        }
        _ => Outcome::SetAside { status, body_head: head() },
    }
}

/// `Retry-After` in seconds; the HTTP-date form is not honoured (the
/// agent's own back-off applies instead).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// What a 2xx answer says: delivered, or (OTLP `partialSuccess`) taken
/// with some records rejected. The receiver's message is the server's
/// words like any body: capped and escaped ([`server_text`]).
fn accepted(format: Format, answer: &[u8]) -> Outcome {
    match format {
        Format::Otlp => match super::otlp::rejected(answer) {
            Some((rejected, message)) => Outcome::PartlyRejected { rejected, message: server_text(message.as_bytes()) },
            None => Outcome::Delivered,
        },
        Format::Json => Outcome::Delivered,
    }
}

/// Text from the server (a body, an `errorMessage`, a header), fit for a
/// log line, `status` and root's terminal: at most [`BODY_HEAD`] bytes (a
/// cut is marked with `…`), newlines as spaces, and every other control
/// byte (escape sequences, a forged second log line) shown escaped by
/// [`crate::fsutil::printable`], never passed on.
pub fn server_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(BODY_HEAD)];
    let text = String::from_utf8_lossy(cut).replace(['\n', '\r'], " ");
    let mut text = crate::fsutil::printable(&text).into_owned();
    if cut.len() < bytes.len() {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    /// Every status class, as the delivery loop must see it.
    #[test]
    fn every_status_class_has_its_outcome() {
        use Outcome::*;
        let secs = |s| Some(Duration::from_secs(s));
        let partial = br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"bad"}}"#;
        let retry = |status: u16, after| Retry { reason: format!("HTTP {status}: busy"), retry_after: after };
        let misconf = |status: u16| Misconfigured {
            reason: format!("HTTP {status} (check AUTH_HEADER / client certificate): busy"),
        };
        let redirect = |status: u16, to: &str| Misconfigured {
            reason: format!("HTTP {status} redirect to {to} not followed; fix TELEMETRY_URL"),
        };
        #[rustfmt::skip]
        let table: Vec<(Format, u16, HeaderMap, &[u8], Outcome)> = vec![
            (Format::Json, 200, headers(&[]), b"", Delivered),
            (Format::Json, 202, headers(&[]), b"anything", Delivered),
            (Format::Json, 204, headers(&[]), b"", Delivered),
            // A JSON receiver's body is not read for rejections.
            (Format::Json, 200, headers(&[]), partial, Delivered),
            (Format::Otlp, 200, headers(&[]), b"{}", Delivered),
            (Format::Otlp, 200, headers(&[]), b"", Delivered),
            (Format::Otlp, 200, headers(&[]), br#"{"partialSuccess":{}}"#, Delivered),
            (Format::Otlp, 200, headers(&[]), partial, PartlyRejected { rejected: 2, message: "bad".into() }),
            (Format::Json, 301, headers(&[("location", "https://u:p@elsewhere/x")]), b"", redirect(301, "https://***@elsewhere/x")),
            (Format::Json, 307, headers(&[]), b"", redirect(307, "?***")),
            (Format::Json, 400, headers(&[]), b"busy", SetAside { status: 400, body_head: "busy".into() }),
            (Format::Json, 401, headers(&[]), b"busy", misconf(401)),
            (Format::Json, 403, headers(&[]), b"busy", misconf(403)),
            (Format::Json, 404, headers(&[]), b"busy", SetAside { status: 404, body_head: "busy".into() }),
            (Format::Json, 408, headers(&[]), b"busy", retry(408, None)),
            (Format::Json, 413, headers(&[]), b"busy", TooLarge),
            (Format::Json, 422, headers(&[]), b"busy", SetAside { status: 422, body_head: "busy".into() }),
            (Format::Json, 429, headers(&[]), b"busy", retry(429, None)),
            (Format::Json, 429, headers(&[("retry-after", " 120 ")]), b"busy", retry(429, secs(120))),
            // The HTTP-date form is not honoured: the agent's back-off applies.
            (Format::Json, 429, headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]), b"busy", retry(429, None)),
            (Format::Json, 500, headers(&[]), b"busy", retry(500, None)),
            (Format::Json, 503, headers(&[("retry-after", "5")]), b"busy", retry(503, secs(5))),
            (Format::Otlp, 503, headers(&[]), b"busy", retry(503, None)),
            (Format::Json, 599, headers(&[]), b"busy", retry(599, None)),
            (Format::Json, 100, headers(&[]), b"busy", retry(100, None)),
        ];
        for (format, status, headers, body, want) in table {
            assert_eq!(classify(format, status, &headers, body), want, "HTTP {status} ({format:?})");
        }
    }

    /// A hostile body or Location header reaches the log as one escaped line.
    #[test]
    fn refusals_quote_the_server_capped_and_escaped() {
        let body = "x\r\n\u{1b}[2J".repeat(100);
        let Outcome::SetAside { body_head, .. } = classify(Format::Json, 400, &headers(&[]), body.as_bytes()) else {
            panic!("a 400 is set aside")
        };
        assert!(body_head.len() < 4 * BODY_HEAD && body_head.ends_with('…'), "{body_head:?}");
        assert!(!body_head.chars().any(char::is_control), "{body_head:?}");
    }

    /// A receiver's 60 KB errorMessage full of escapes and newlines
    /// becomes one short, escaped line; so does a body.
    #[test]
    fn the_servers_words_are_capped_and_escaped() {
        let piece = "\u{1b}[2Jhostile\r\nERROR root: owned\u{202e} xxxxxxxxxx";
        let message = piece.repeat(60_000 / piece.len());
        assert!(message.len() > 59_000);
        let answer = serde_json::json!({"partialSuccess":{"rejectedLogRecords":"3","errorMessage":message}});
        let Outcome::PartlyRejected { rejected, message } = accepted(Format::Otlp, answer.to_string().as_bytes())
        else {
            panic!("not read as a partial success")
        };
        assert_eq!(rejected, 3);
        assert!(message.len() < 4 * BODY_HEAD, "{} bytes", message.len());
        assert!(message.ends_with('…'), "the cut is marked");
        assert!(!message.chars().any(|c| c.is_control() || c == '\u{202e}'), "{message:?}");
        assert!(message.starts_with("\\u{1b}[2Jhostile  ERROR root: owned\\u{202e} x"), "{message:?}");
        assert_eq!(accepted(Format::Json, answer.to_string().as_bytes()), Outcome::Delivered);
        assert_eq!(server_text(b"short\x07"), "short\\u{7}");
        // A cut inside a multi-byte character is no panic, just a U+FFFD.
        let wide = "ü".repeat(BODY_HEAD);
        assert!(server_text(wide.as_bytes()).ends_with('…'));
    }
}
