//! Column recognisers: what each column of a status file row may look
//! like (its [`Shape`], from the header's column name), and the readers of
//! the values OpenVPN prints there — real addresses of 2.1–2.7, routing
//! table addresses, numbers, local dates.
//!
//! Guarantees: every recogniser is total (any bytes in, an answer out, no
//! panic) and follows what OpenVPN's source prints (`mroute_addr_print`,
//! `time_string`, `format_hex_ex`), so a column of the wrong shape is told
//! apart from a right one; [`text`] cleans and caps like a hook field.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;

use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::event;
use crate::real_address;

/// A value as text, cleaned and capped like a hook field.
pub(super) fn text(raw: &[u8]) -> String {
    event::clean(OsStr::from_bytes(raw))
}

/// [`text`] without a copy when the value is clean already (valid UTF-8
/// within [`event::FIELD_CAP`], what OpenVPN writes): the same string.
pub(super) fn text_ref(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) if raw.len() <= event::FIELD_CAP => Cow::Borrowed(s),
        _ => Cow::Owned(text(raw)),
    }
}

/// A decimal number of ASCII digits only (no sign, no spaces) that fits
/// in a `u64`.
pub(super) fn number(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Reads a `Real Address` into ip and port: see [`real_address::split`].
pub(super) fn split_real_address(addr: &str) -> Option<(String, String)> {
    real_address::split(addr).map(|(ip, port)| (ip.to_string(), port.to_string()))
}

/// A routing table's `Virtual Address`: what kind of route it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteKind {
    /// A host address (the client's pool address, or a learned one).
    V4Host,
    V6Host,
    /// An `iroute` (`/bits`), a cached entry (`C`), or a TAP client's MAC
    /// address (`22:1d:63:bf:62:38@0`): none is the client's address.
    Other,
}

pub(super) fn route_kind(raw: &str) -> Option<RouteKind> {
    let (addr, cached) = match raw.strip_suffix('C') {
        Some(a) => (a, true),
        None => (raw, false),
    };
    let (addr, net) = match addr.split_once('/') {
        Some((a, bits)) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit() || b == b'.') => (a, true),
        Some(_) => return None,
        None => (addr, false),
    };
    let host = !cached && !net;
    if addr.parse::<Ipv4Addr>().is_ok() {
        return Some(if host { RouteKind::V4Host } else { RouteKind::Other });
    }
    if addr.parse::<Ipv6Addr>().is_ok() {
        return Some(if host { RouteKind::V6Host } else { RouteKind::Other });
    }
    // format_hex_ex(mac, 6, 0, 1, ":") then "@vid" (2.4+; 2.3 printed none).
    let mac = addr.split_once('@').map_or(addr, |(m, vid)| if number(vid.as_bytes()).is_some() { m } else { "" });
    let groups: Vec<&str> = mac.split(':').collect();
    (groups.len() == 6 && groups.iter().all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit())))
        .then_some(RouteKind::Other)
}

/// What a column must look like. `Free` columns (common name, username)
/// are any non-empty text and may contain the separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Free,
    Real,
    Ipv4OrEmpty,
    Ipv6OrEmpty,
    Number,
    NumberOrEmpty,
    Date,
    Route,
    Any,
}

pub(super) fn shape(table: &[u8], column: &[u8]) -> Shape {
    match (table, column) {
        (_, b"Common Name" | b"Username") => Shape::Free,
        (_, b"Real Address") => Shape::Real,
        (b"ROUTING_TABLE", b"Virtual Address") => Shape::Route,
        (_, b"Virtual Address") => Shape::Ipv4OrEmpty,
        (_, b"Virtual IPv6 Address") => Shape::Ipv6OrEmpty,
        (_, b"Bytes Received" | b"Bytes Sent" | b"Connected Since (time_t)" | b"Last Ref (time_t)" | b"Peer ID") => {
            Shape::Number
        }
        // Empty in builds without the management interface.
        (_, b"Client ID") => Shape::NumberOrEmpty,
        (_, b"Connected Since" | b"Last Ref") => Shape::Date,
        _ => Shape::Any,
    }
}

pub(super) fn fits(shape: Shape, raw: &[u8]) -> bool {
    let s = || std::str::from_utf8(raw).ok();
    match shape {
        Shape::Free => !raw.is_empty(),
        Shape::Real => s().and_then(real_address::split).is_some(),
        Shape::Ipv4OrEmpty => raw.is_empty() || s().is_some_and(|s| s.parse::<Ipv4Addr>().is_ok()),
        Shape::Ipv6OrEmpty => raw.is_empty() || s().is_some_and(|s| s.parse::<Ipv6Addr>().is_ok()),
        Shape::Number => number(raw).is_some(),
        Shape::NumberOrEmpty => raw.is_empty() || number(raw).is_some(),
        Shape::Date => iso_datetime_shape(raw) || local_datetime(raw).is_some(),
        Shape::Route => s().and_then(route_kind).is_some(),
        Shape::Any => true,
    }
}

/// `YYYY-MM-DD HH:MM:SS` by its shape alone (2.6+'s `time_string`): the
/// common case, checked without parsing (a date is only a column's shape
/// here; `Connected Since (time_t)` is the time that is used).
fn iso_datetime_shape(raw: &[u8]) -> bool {
    raw.len() == 19
        && raw.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

/// A local date as OpenVPN prints it, read as if it were UTC: 2.6+
/// `2026-11-27 07:30:15`, older `Fri Nov 27 07:30:15 2026` (ctime).
pub(super) fn local_datetime(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    let iso = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(s.trim(), iso) {
        return Some(t.assume_utc().unix_timestamp());
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    let ctime = format_description!(
        "[weekday repr:short] [month repr:short] [day padding:none] [hour]:[minute]:[second] [year]"
    );
    let t = PrimitiveDateTime::parse(&words.join(" "), ctime).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_address_forms() {
        let split = |a: &str| split_real_address(a).map(|(ip, port)| format!("{ip} {port}"));
        // 2.1-2.6: IPv4 with port, IPv6 bare (mroute_addr_print_ex).
        assert_eq!(split("1.2.3.4:5").as_deref(), Some("1.2.3.4 5"));
        assert_eq!(split("2001:db8::1").as_deref(), Some("2001:db8::1 "));
        assert_eq!(split("1.2.3.4").as_deref(), Some("1.2.3.4 "));
        // 2.7: protocol prefix, IPv6 in brackets with its port, v4-mapped
        // peers on a dual-stack socket as IPv4 behind "udp6:".
        assert_eq!(split("udp4:203.0.113.5:52137").as_deref(), Some("203.0.113.5 52137"));
        assert_eq!(split("udp6:[2001:db8::abcd]:51820").as_deref(), Some("2001:db8::abcd 51820"));
        assert_eq!(split("tcp4-server:127.0.0.1:53188").as_deref(), Some("127.0.0.1 53188"));
        assert_eq!(split("tcp6-server:[::1]:1194").as_deref(), Some("::1 1194"));
        assert_eq!(split("udp6:192.0.2.2:40000").as_deref(), Some("192.0.2.2 40000"));
        assert_eq!(split("[unknown protocol]:1.2.3.4:5").as_deref(), Some("1.2.3.4 5"));
        for junk in ["", "x", "1.2.3.4:", "1.2.3.4:70000", "1.2.3:5", "[2001:db8::1]", "quic:1.2.3.4:5", "zz::1"] {
            assert_eq!(split(junk), None, "{junk}");
        }
    }

    #[test]
    fn routing_table_addresses() {
        assert_eq!(route_kind("10.8.0.6"), Some(RouteKind::V4Host));
        assert_eq!(route_kind("fd00::1000"), Some(RouteKind::V6Host));
        for other in [
            "192.168.7.0/24",
            "10.8.0.6C",
            "fd00:1::/64",
            "22:1d:63:bf:62:38@0",
            "22:1d:63:bf:62:38",
            "a6:de:cb:89:99:dfC",
        ] {
            assert_eq!(route_kind(other), Some(RouteKind::Other), "{other}");
        }
        for junk in ["", "22:1d:63:bf:62", "22:1d:63:bf:62:38@x", "10.8.0.6/x"] {
            assert_eq!(route_kind(junk), None, "{junk}");
        }
    }

    #[test]
    fn text_ref_is_text_without_the_copy() {
        let long = "x".repeat(event::FIELD_CAP + 1);
        for raw in [&b"alice"[..], b"", b"Smith, John", "Jos\u{e9}".as_bytes(), b"bad \xff byte", long.as_bytes()] {
            assert_eq!(text_ref(raw), text(raw), "{raw:?}");
        }
        assert!(matches!(text_ref(b"alice"), Cow::Borrowed(_)));
    }

    #[test]
    fn numbers_are_digits_that_fit() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"1795762800"), Some(1_795_762_800));
        assert_eq!(number(b"18446744073709551615"), Some(u64::MAX));
        for junk in [&b""[..], b"18446744073709551616", b"-1", b"+1", b" 1", b"1x", b"\xd9\xa3"] {
            assert_eq!(number(junk), None, "{junk:?}");
        }
    }
}
