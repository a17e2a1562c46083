//! OpenVPN's `Real Address`, as its status file (and nothing else) prints
//! it, split into the peer's ip and port: the status-file parser reads
//! sessions with it, and the metrics file's labels are made from it.
//!
//! Guarantee: total (any text in, an answer out, no panic), and it follows
//! OpenVPN's own printing (`mroute_addr_print`, `proto2ascii`), so a column
//! that is not an address is told apart from one that is.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Protocol prefixes OpenVPN 2.7 puts before a real address
/// (`proto2ascii(proto, family, false)` in socket_util.c, then `:`).
const PROTOCOLS: [&str; 13] = [
    "udp",
    "tcp-server",
    "tcp-client",
    "tcp",
    "udp4",
    "tcp4-server",
    "tcp4-client",
    "tcp4",
    "udp6",
    "tcp6-server",
    "tcp6-client",
    "tcp6",
    "[unknown protocol]",
];

/// Reads a `Real Address` as `mroute_addr_print` writes it into ip and
/// port: 2.1–2.6 `1.2.3.4:5555` or a bare IPv6 address (no port), 2.7 the
/// same behind a protocol prefix and IPv6 as `[2001:db8::1]:5555`; an
/// IPv4-mapped IPv6 peer is printed as IPv4. `None`: not an address.
pub fn split(addr: &str) -> Option<(&str, &str)> {
    // Every protocol prefix starts with one of these; an address
    // (digits or hex) seldom does, and then no prefix is tried.
    let rest = if addr.starts_with(['u', 't', '[']) {
        PROTOCOLS.iter().find_map(|p| addr.strip_prefix(p)?.strip_prefix(':')).unwrap_or(addr)
    } else {
        addr
    };
    let port_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok();
    if let Some(v6) = rest.strip_prefix('[') {
        let (ip, port) = v6.split_once("]:")?;
        return (ip.parse::<Ipv6Addr>().is_ok() && port_ok(port)).then_some((ip, port));
    }
    // IPv4 with a port first, the common form: no string is both that
    // and a bare address (an IPv4 has no ':'; an IPv6 ends in no port).
    if let Some((ip, port)) = rest.rsplit_once(':')
        && ip.parse::<Ipv4Addr>().is_ok()
        && port_ok(port)
    {
        return Some((ip, port));
    }
    (rest.parse::<Ipv6Addr>().is_ok() || rest.parse::<Ipv4Addr>().is_ok()).then_some((rest, ""))
}
