//! Status versions 2 (commas) and 3 (tabs), the `--status-version 2`
//! of Debian's stock unit: `HEADER` rows name the columns of the
//! `CLIENT_LIST` and `ROUTING_TABLE` rows after them, so the reader follows
//! the header (2.1 has no `Username`, 2.3 no IPv6 column, later versions add
//! more) instead of fixed positions.
//!
//! Guarantees: sections in OpenVPN's order or the file is refused (a
//! stale tail goes back); a client row that reads several ways is settled
//! by its routes (`resolve`); `connected_since` is the header's
//! `Connected Since (time_t)`, the hook's `time_unix`.

use super::columns::{number, shape, split_real_address, text};
use super::resolve::{Route, Row, Split, check_routes, identity, readings, settle};
use super::{Client, RouteEntry, RowError, Status, StatusError, bad};

/// Versions 2 (commas) and 3 (tabs): `TITLE`, `TIME`, then `HEADER` rows
/// naming the columns of the `CLIENT_LIST` and `ROUTING_TABLE` rows that
/// follow, `GLOBAL_STATS`, `END` (already cut off by the caller).
pub(super) fn parse_v23<'a>(body: &[&'a [u8]], sep: u8, version: u8) -> Result<Status, StatusError> {
    let mut status = Status {
        version,
        written_at: None,
        clients: Vec::new(),
        dco: None,
        unreadable: Vec::new(),
        routes: Vec::new(),
    };
    let mut client_cols: Option<Vec<&[u8]>> = None;
    let mut route_cols: Option<Vec<&[u8]>> = None;
    let mut client_rows: Vec<Row<'a>> = Vec::new();
    let mut routes: Vec<Route<'a>> = Vec::new();
    // Sections must come in OpenVPN's order; going back means a stale tail.
    let mut stage = 0u8;
    let mut advance = |n: usize, to: u8| {
        if to < stage {
            return Err(bad(n, "section out of order (file caught mid-rewrite?)"));
        }
        stage = to;
        Ok(())
    };
    let shapes_of = |table: &[u8], cols: &[&[u8]]| cols.iter().map(|c| shape(table, c)).collect::<Vec<_>>();
    let mut client_shapes = Vec::new();
    let mut route_shapes = Vec::new();
    let mut route_at = (0, 0);
    // `Virtual Address` and `Last Ref (time_t)`, for the metrics file.
    let mut route_more: (Option<usize>, Option<usize>) = (None, None);
    let mut f: Vec<&'a [u8]> = Vec::new();
    for (i, &line) in body.iter().enumerate() {
        let n = i + 1;
        f.clear();
        f.extend(line.split(|&b| b == sep));
        match f[0] {
            b"TITLE" if n == 1 => {}
            b"TIME" if n == 2 => {
                let t = f.get(2).ok_or_else(|| bad(n, "TIME without time_t"))?;
                status.written_at = Some(number(t).ok_or_else(|| bad(n, "TIME: expected a number"))? as i64);
            }
            b"HEADER" if f.get(1) == Some(&&b"CLIENT_LIST"[..]) => {
                advance(n, 1)?;
                let cols = f[2..].to_vec();
                for need in ["Common Name", "Real Address", "Bytes Received", "Bytes Sent", "Connected Since (time_t)"]
                {
                    if !cols.contains(&need.as_bytes()) {
                        return Err(bad(n, format!("CLIENT_LIST header lacks {need:?}")));
                    }
                }
                client_shapes = shapes_of(b"CLIENT_LIST", &cols);
                client_cols = Some(cols);
            }
            b"CLIENT_LIST" => {
                advance(n, 1)?;
                if client_cols.is_none() {
                    return Err(bad(n, "CLIENT_LIST before its HEADER"));
                }
                let result = readings(&f[1..], &client_shapes, sep);
                let raw = line.get(f[0].len() + 1..).unwrap_or_default();
                client_rows.push(Row { line: n, raw, result });
            }
            b"HEADER" if f.get(1) == Some(&&b"ROUTING_TABLE"[..]) => {
                advance(n, 2)?;
                let cols = f[2..].to_vec();
                let pos = |name: &[u8]| cols.iter().position(|c| *c == name);
                let (Some(cn), Some(real)) = (pos(b"Common Name"), pos(b"Real Address")) else {
                    return Err(bad(n, "ROUTING_TABLE header lacks Common Name or Real Address"));
                };
                route_at = (cn, real);
                route_more = (pos(b"Virtual Address"), pos(b"Last Ref (time_t)"));
                route_shapes = shapes_of(b"ROUTING_TABLE", &cols);
                route_cols = Some(cols);
            }
            b"ROUTING_TABLE" => {
                advance(n, 2)?;
                if route_cols.is_none() {
                    return Err(bad(n, "ROUTING_TABLE before its HEADER"));
                }
                match readings(&f[1..], &route_shapes, sep) {
                    Ok(r) => {
                        let (cn, real) = identity(&r, route_at.0, route_at.1);
                        if let (Some(v), Some(t)) = route_more
                            && let Some(last_ref) = r.get(t).and_then(|t| number(t))
                        {
                            status.routes.push(RouteEntry {
                                virtual_address: r.get(v).map(|v| text(v)).unwrap_or_default(),
                                common_name: cn.to_string(),
                                real_address: real.to_string(),
                                last_ref: last_ref as i64,
                            });
                        }
                        routes.push(Route { line: n, cn, real });
                    }
                    Err(Split::Short) => {
                        return Err(bad(n, "routing row shorter than its header (file caught mid-rewrite?)"));
                    }
                    Err(_) => {
                        status.unreadable.push(RowError { line: n, what: "routing row that does not fit".into() })
                    }
                }
            }
            b"GLOBAL_STATS" => {
                advance(n, 3)?;
                if f.get(1) == Some(&&b"dco_enabled"[..]) {
                    status.dco = f.get(2).map(|v| *v == b"1");
                }
            }
            other => return Err(bad(n, format!("unexpected line starting {:?}", text(&other[..other.len().min(40)])))),
        }
    }
    let Some(cols) = client_cols else {
        return Err(bad(body.len(), "no HEADER for CLIENT_LIST"));
    };
    // Where each column is, looked up once for all rows.
    let at = |name: &[u8]| cols.iter().position(|c| *c == name);
    let (cn, real) = (at(b"Common Name").unwrap_or(0), at(b"Real Address").unwrap_or(0));
    let (vip, vip6, user) = (at(b"Virtual Address"), at(b"Virtual IPv6 Address"), at(b"Username"));
    let (rx, tx, since) = (at(b"Bytes Received"), at(b"Bytes Sent"), at(b"Connected Since (time_t)"));
    let mut skipped = Vec::new();
    let settled = settle(client_rows, cn, real, &routes, &mut status.unreadable, &mut skipped)?;
    status.clients.reserve(settled.len());
    for (n, row) in settled {
        let get = |i: Option<usize>| i.map(|i| &*row[i]);
        let num = |i: Option<usize>| get(i).and_then(number).unwrap_or_default();
        let opt = |i: Option<usize>| get(i).filter(|v| !v.is_empty() && *v != b"UNDEF").map(text);
        let real_address = text(&row[real]);
        let Some((real_ip, real_port)) = split_real_address(&real_address) else {
            return Err(bad(n, "unreadable Real Address")); // fits() made sure; never here
        };
        status.clients.push(Client {
            common_name: text(&row[cn]),
            real_address,
            real_ip,
            real_port,
            virtual_ip: opt(vip).unwrap_or_default(),
            virtual_ipv6: opt(vip6),
            bytes_received: num(rx),
            bytes_sent: num(tx),
            connected_since: num(since) as i64,
            username: opt(user),
        });
    }
    check_routes(&status.clients, &routes, &skipped, char::from(sep))?;
    status.unreadable.sort_by_key(|e| e.line);
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::event;

    const V2: &str = "TITLE,OpenVPN 2.6.14 x86_64-pc-linux-gnu\n\
TIME,2026-11-27 07:30:15,1795764615\n\
HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n\
CLIENT_LIST,alice,198.51.100.7:5555,10.8.0.6,fd00::1000,1000,2000,2026-11-27 07:00:00,1795762800,UNDEF,0,0,AES-256-GCM\n\
CLIENT_LIST,bob,2001:db8::7,10.8.0.10,,5,6,2026-11-27 07:10:00,1795763400,bob,u,ser,1,1,AES-256-GCM\n\
HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n\
ROUTING_TABLE,10.8.0.6,alice,198.51.100.7:5555,2026-11-27 07:30:00,1795764600\n\
ROUTING_TABLE,10.8.0.10,bob,2001:db8::7,2026-11-27 07:30:00,1795764600\n\
GLOBAL_STATS,Max bcast/mcast queue length,0\n\
GLOBAL_STATS,dco_enabled,1\n\
END\n";

    #[test]
    fn version_2_and_3() {
        let s = parse(V2.as_bytes(), None).unwrap();
        assert_eq!((s.version, s.written_at, s.dco), (2, Some(1_795_764_615), Some(true)));
        assert_eq!(s.clients.len(), 2);
        let a = &s.clients[0];
        assert_eq!((a.real_ip.as_str(), a.real_port.as_str()), ("198.51.100.7", "5555"));
        assert_eq!((a.virtual_ip.as_str(), a.virtual_ipv6.as_deref()), ("10.8.0.6", Some("fd00::1000")));
        assert_eq!((a.bytes_received, a.bytes_sent, a.connected_since), (1000, 2000, 1_795_762_800));
        assert_eq!(a.username, None);
        assert_eq!(a.session_id(), event::session_id("alice", "198.51.100.7", "5555", 1_795_762_800));
        let b = &s.clients[1];
        assert_eq!((b.real_ip.as_str(), b.real_port.as_str(), b.virtual_ipv6.as_ref()), ("2001:db8::7", "", None));
        // "bob,u,ser" had the separator in it: folded back into Username.
        assert_eq!(b.username.as_deref(), Some("bob,u,ser"));
        // No port for IPv6 in the file, yet the hook's id (with port) matches.
        assert_eq!(b.session_id(), event::session_id("bob", "2001:db8::7", "40000", 1_795_763_400));
        let v3 = V2.replace(',', "\t").replace("bob\tu\tser", "bob,u,ser");
        let s3 = parse(v3.as_bytes(), None).unwrap();
        assert_eq!(s3.version, 3);
        assert_eq!(s3.clients, s.clients);
    }

    #[test]
    fn incomplete_and_mid_rewrite_are_refused() {
        assert_eq!(parse(b"", None), Err(StatusError::Incomplete));
        let cut = &V2[..V2.len() - 5];
        assert_eq!(parse(cut.as_bytes(), None), Err(StatusError::Incomplete));
        // New head (one client left) over the old tail: the old routing
        // row for bob survives and gives it away.
        let new_head: String = V2.lines().filter(|l| !l.contains("bob")).collect::<Vec<_>>().join("\n");
        let mixed = format!(
            "{}\n{}",
            &new_head[..new_head.find("HEADER,ROUTING").unwrap()],
            &V2[V2.find("HEADER,ROUTING").unwrap()..]
        );
        assert!(matches!(parse(mixed.as_bytes(), None), Err(StatusError::Malformed { .. })), "{mixed}");
        // A junction in the middle of a line.
        let torn = V2.replacen("CLIENT_LIST,bob", "ENT_LIST,bob", 1);
        assert!(matches!(parse(torn.as_bytes(), None), Err(StatusError::Malformed { line: 5, .. })));
        // A row whose columns do not fit costs that row only.
        // (Its routing row names a client left out, not a stale tail.)
        let bad_num = V2.replacen(",1000,2000,", ",1x00,2000,", 1);
        let s = parse(bad_num.as_bytes(), None).unwrap();
        assert_eq!(s.clients.iter().map(|c| c.common_name.as_str()).collect::<Vec<_>>(), ["bob"]);
        assert_eq!(s.unreadable, [RowError { line: 4, what: "client row whose columns do not fit".into() }]);
        // A row shorter than its header is the tail of an old line.
        let short = V2.replacen(",1000,2000,", ",", 1);
        assert!(matches!(parse(short.as_bytes(), None), Err(StatusError::Malformed { line: 4, .. })));
        assert!(parse(b"\xff\xfe garbage\nEND\n", None).is_err());
        let alice = V2.lines().nth(3).unwrap();
        let out_of_order = V2.replace("END\n", &format!("{alice}\nEND\n"));
        assert_eq!(
            parse(out_of_order.as_bytes(), None),
            Err(bad(11, "section out of order (file caught mid-rewrite?)"))
        );
    }

    fn v2_row(cn: &str, real: &str, vip: &str, rx: u64, t: i64, user: &str) -> String {
        format!("CLIENT_LIST,{cn},{real},{vip},,{rx},{rx},2026-12-01 20:00:00,{t},{user},0,0,AES-256-GCM\n")
    }
    fn v2_file(rows: &[String], routes: &[(&str, &str, &str)]) -> String {
        let mut s = String::from("TITLE,OpenVPN 2.6.14\nTIME,2026-12-01 20:30:00,1796157000\n");
        s.push_str(&V2.lines().nth(2).unwrap().replace("\n", ""));
        s.push('\n');
        rows.iter().for_each(|r| s.push_str(r));
        s.push_str("HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n");
        for (v, cn, real) in routes {
            s.push_str(&format!("ROUTING_TABLE,{v},{cn},{real},2026-12-01 20:29:00,1796156940\n"));
        }
        s.push_str("GLOBAL_STATS,dco_enabled,0\nEND\n");
        s
    }

    /// A row printed twice is one session; two sessions from one address
    /// that connected in the same second stay two.
    #[test]
    fn a_session_listed_twice_is_listed_once() {
        let alice = v2_row("alice", "192.0.2.2:1194", "10.8.0.2", 10, 1_796_155_200, "UNDEF");
        let bob = v2_row("bob", "192.0.2.2:1195", "10.8.0.3", 20, 1_796_155_200, "UNDEF");
        let routes = [("10.8.0.2", "alice", "192.0.2.2:1194"), ("10.8.0.3", "bob", "192.0.2.2:1195")];
        let s = parse(v2_file(&[alice.clone(), bob, alice], &routes).as_bytes(), None).unwrap();
        let got: Vec<(&str, u64)> = s.clients.iter().map(|c| (c.common_name.as_str(), c.bytes_received)).collect();
        assert_eq!(got, [("alice", 10), ("bob", 20)]);
    }

    /// A common name crafted to look like the columns after it (a VPN
    /// client chooses its name) is never attributed to another session.
    #[test]
    fn crafted_names_never_take_another_session() {
        let victim = ("alice", "192.0.2.2:1194", 1_796_155_200);
        let forged = format!("{},{},,,999999,999999,2026-12-01 20:00:00,{}", victim.0, victim.1, victim.2);
        let alice_id = event::session_id("alice", "192.0.2.2", "1194", victim.2);
        let alice_row = v2_row("alice", victim.1, "10.8.0.2", 10, victim.2, "UNDEF");
        let evil_row = v2_row(&forged, "192.0.2.9:5000", "10.8.0.9", 77, 1_796_155_300, "UNDEF");
        let alice_route = ("10.8.0.2", "alice", victim.1);
        let evil_route = ("10.8.0.9", forged.as_str(), "192.0.2.9:5000");
        // The attacker's routes confirm its own reading: read right.
        let s = parse(v2_file(&[alice_row.clone(), evil_row.clone()], &[alice_route, evil_route]).as_bytes(), None)
            .unwrap();
        assert_eq!(s.clients.len(), 2);
        assert_eq!(
            s.clients.iter().filter(|c| c.session_id() == alice_id).map(|c| c.bytes_received).collect::<Vec<_>>(),
            [10]
        );
        assert_eq!(s.clients[1].common_name, forged);
        // No route for the attacker (a silent TAP client): its row reads
        // two ways and neither is confirmed for it; never alice's.
        let s = parse(v2_file(&[alice_row.clone(), evil_row.clone()], &[alice_route]).as_bytes(), None).unwrap();
        assert_eq!(s.clients.iter().map(|c| c.bytes_received).collect::<Vec<_>>(), [10]);
        assert_eq!(s.unreadable.len(), 1);
        assert!(s.unreadable[0].what.contains("more than one way"), "{:?}", s.unreadable);
        // Alice not connected: the imitation has no route of its own.
        let s = parse(v2_file(std::slice::from_ref(&evil_row), &[]).as_bytes(), None).unwrap();
        assert!(s.clients.is_empty() && s.unreadable.len() == 1);
        // Alice's row after the attacker's: same outcome, order does not matter.
        let s = parse(v2_file(&[evil_row.clone(), alice_row.clone()], &[alice_route]).as_bytes(), None).unwrap();
        assert_eq!(s.clients.iter().map(|c| c.session_id()).collect::<Vec<_>>(), [alice_id]);
        // Through the username too (--username-as-common-name).
        let user_row = v2_row("doe, jane", "192.0.2.3:4000", "10.8.0.3", 5, 1_796_155_400, "doe, jane");
        let s = parse(
            v2_file(&[alice_row.clone(), user_row], &[alice_route, ("10.8.0.3", "doe, jane", "192.0.2.3:4000")])
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(s.clients[1].username.as_deref(), Some("doe, jane"));
        assert_eq!(s.clients[1].common_name, "doe, jane");
        // Version 1: the name is the only free column, so one reading.
        let v1 = format!(
            "OpenVPN CLIENT LIST\nUpdated,2026-12-01 20:30:00\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\n\
alice,192.0.2.2:1194,10,10,2026-12-01 20:00:00\n{},192.0.2.9:5000,77,77,2026-12-01 20:00:00\nROUTING TABLE\n\
Virtual Address,Common Name,Real Address,Last Ref\nGLOBAL STATS\nEND\n",
            forged.replace(",,,", ",1,1,")
        );
        let s = parse(v1.as_bytes(), None).unwrap();
        assert_eq!(s.clients.iter().map(|c| c.bytes_received).collect::<Vec<_>>(), [10, 77]);
        assert_eq!(s.clients[1].real_address, "192.0.2.9:5000");
    }
}
