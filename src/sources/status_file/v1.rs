//! Status version 1 (`--status-version 1`, OpenVPN's default): fixed
//! headers, comma-separated, dates in local time, and the virtual
//! addresses only in the routing table.
//!
//! Guarantees: the common name is the only free column, so every row has
//! one reading or none (a crafted name cannot shift another's columns);
//! local dates become `time_t` with the offset between `Updated` and the
//! file's mtime, or UTC when that is no real offset (a copied file).

use std::collections::HashMap;

use super::columns::{RouteKind, Shape, local_datetime, number, route_kind, split_real_address, text};
use super::resolve::{Route, Split, check_routes, readings};
use super::{Client, RowError, Status, StatusError, bad};

/// Version 1: fixed headers, comma-separated, dates in local time, the
/// virtual address only in the routing table. The common name is the only
/// free column, so every row has one reading or none.
pub(super) fn parse_v1(body: &[&[u8]], mtime: Option<i64>) -> Result<Status, StatusError> {
    let mut status = Status {
        version: 1,
        written_at: None,
        clients: Vec::new(),
        dco: None,
        unreadable: Vec::new(),
        routes: Vec::new(),
    };
    let updated = body.get(1).and_then(|l| l.strip_prefix(b"Updated,")).ok_or_else(|| bad(2, "expected Updated,"))?;
    let updated = local_datetime(updated).ok_or_else(|| bad(2, "Updated: unreadable date"))?;
    // Offset OpenVPN printed local times with, from the file's own mtime,
    // rounded to 15 minutes; UTC when there is no mtime or the result is no
    // real UTC offset (-12 h..+14 h: the file was copied, not written).
    let offset = mtime
        .map(|m| ((updated - m) as f64 / 900.0).round() as i64 * 900)
        .filter(|o| (-12 * 3600..=14 * 3600).contains(o))
        .unwrap_or(0);
    status.written_at = Some(updated - offset);
    if body.get(2).is_none_or(|l| *l != b"Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since") {
        return Err(bad(3, "expected the client list header"));
    }
    const CLIENT: [Shape; 5] = [Shape::Free, Shape::Real, Shape::Number, Shape::Number, Shape::Date];
    const ROUTE: [Shape; 4] = [Shape::Route, Shape::Free, Shape::Real, Shape::Date];
    let mut i = 3;
    let mut skipped = Vec::new();
    while i < body.len() && body[i] != b"ROUTING TABLE" {
        let n = i + 1;
        let f: Vec<&[u8]> = body[i].split(|&b| b == b',').collect();
        match readings(&f, &CLIENT, b',') {
            Ok(r) => {
                let real_address = text(&r[1]);
                let (real_ip, real_port) = split_real_address(&real_address).unwrap_or_default();
                let since = local_datetime(&r[4]).unwrap_or_default();
                status.clients.push(Client {
                    common_name: text(&r[0]),
                    real_address,
                    real_ip,
                    real_port,
                    virtual_ip: String::new(),
                    virtual_ipv6: None,
                    bytes_received: number(&r[2]).unwrap_or_default(),
                    bytes_sent: number(&r[3]).unwrap_or_default(),
                    connected_since: since - offset,
                    username: None,
                });
            }
            Err(Split::Short) => return Err(bad(n, "client row shorter than its header (file caught mid-rewrite?)")),
            Err(_) => {
                status.unreadable.push(RowError { line: n, what: "client row whose columns do not fit".into() });
                skipped.push(text(body[i]));
            }
        }
        i += 1;
    }
    if i >= body.len() {
        return Err(bad(i, "no ROUTING TABLE"));
    }
    if body.get(i + 1).is_none_or(|l| *l != b"Virtual Address,Common Name,Real Address,Last Ref") {
        return Err(bad(i + 2, "expected the routing table header"));
    }
    i += 2;
    let mut routes = Vec::new();
    let by_address: HashMap<(String, String), usize> =
        status.clients.iter().enumerate().map(|(k, c)| ((c.common_name.clone(), c.real_address.clone()), k)).collect();
    while i < body.len() && body[i] != b"GLOBAL STATS" {
        let n = i + 1;
        let f: Vec<&[u8]> = body[i].split(|&b| b == b',').collect();
        let r = match readings(&f, &ROUTE, b',') {
            Ok(r) => r,
            Err(Split::Short) => return Err(bad(n, "routing row shorter than its header (file caught mid-rewrite?)")),
            Err(_) => {
                status.unreadable.push(RowError { line: n, what: "routing row that does not fit".into() });
                i += 1;
                continue;
            }
        };
        let (v, cn, real) = (text(&r[0]), text(&r[1]), text(&r[2]));
        // The first IPv4 and IPv6 host routes are the pool addresses.
        if let Some(&k) = by_address.get(&(cn.clone(), real.clone())) {
            let c = &mut status.clients[k];
            match route_kind(&v) {
                Some(RouteKind::V6Host) => {
                    c.virtual_ipv6.get_or_insert(v);
                }
                Some(RouteKind::V4Host) if c.virtual_ip.is_empty() => c.virtual_ip = v,
                _ => {}
            }
        }
        routes.push(Route { line: n, cn: cn.into(), real: real.into() });
        i += 1;
    }
    if i >= body.len() {
        return Err(bad(i, "no GLOBAL STATS"));
    }
    for (j, l) in body[i + 1..].iter().enumerate() {
        if !l.contains(&b',') {
            return Err(bad(i + 2 + j, "unexpected line in GLOBAL STATS"));
        }
    }
    check_routes(&status.clients, &routes, &skipped, ',')?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn version_1_with_local_offset() {
        let v1 = "OpenVPN CLIENT LIST\nUpdated,2026-11-27 08:30:15\n\
Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
alice,198.51.100.7:5555,1000,2000,2026-11-27 08:00:00\n\
ROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\n\
192.168.7.0/24,alice,198.51.100.7:5555,2026-11-27 08:30:00\n\
10.8.0.6,alice,198.51.100.7:5555,2026-11-27 08:30:00\n\
fd00::1000,alice,198.51.100.7:5555,2026-11-27 08:30:00\n\
GLOBAL STATS\nMax bcast/mcast queue length,0\nEND\n";
        // The file was written at 07:30:16 UTC, so local time is UTC+1.
        let s = parse(v1.as_bytes(), Some(1_795_764_616)).unwrap();
        assert_eq!(s.written_at, Some(1_795_764_615));
        let a = &s.clients[0];
        assert_eq!(a.connected_since, 1_795_762_800);
        assert_eq!((a.virtual_ip.as_str(), a.virtual_ipv6.as_deref()), ("10.8.0.6", Some("fd00::1000")));
        let ctime = v1.replace("2026-11-27 08:00:00", "Fri Nov 27 08:00:00 2026");
        assert_eq!(parse(ctime.as_bytes(), Some(1_795_764_616)).unwrap().clients[0].connected_since, 1_795_762_800);
    }
}
