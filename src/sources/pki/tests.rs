//! Which files a config names, and when a warning is due, against a real
//! spool: each threshold once, the expiry once, a renewal starts afresh.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::*;
use crate::config::Settings;
use crate::testkit::Scratch;

#[test]
fn files_a_config_names() {
    let conf = Path::new("/etc/openvpn/server/office.conf");
    let text = "ca ca.crt\ncert /srv/pki/issued/server.crt\ncrl-verify crl.pem\n";
    let w = from_conf(conf, text);
    let places: Vec<(Holds, &Place)> = w.iter().map(|w| (w.holds, &w.place)).collect();
    assert_eq!(
        places,
        [
            (Holds::Certs(Role::Ca), &Place::File("/etc/openvpn/server/ca.crt".into())),
            (Holds::Certs(Role::Server), &Place::File("/srv/pki/issued/server.crt".into())),
            (Holds::Crl, &Place::File("/etc/openvpn/server/crl.pem".into())),
        ]
    );
    assert!(w.iter().all(|w| w.instance.as_deref() == Some("office") && !w.optional));
    // `cd` first, as for the status file; the last line wins.
    let w = from_conf(conf, "cd /srv/vpn\nca a.crt\nca b.crt\ncrl-verify crls dir\n");
    assert_eq!(w[0].place, Place::File("/srv/vpn/b.crt".into()));
    assert_eq!(w[1].place, Place::CrlDir("/srv/vpn/crls".into()));
    // Inline blocks, with or without `ca [[inline]]`.
    let w = from_conf(
        conf,
        "<ca>\n-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n</ca>\ncert [[INLINE]]\n<cert>\nB\n</cert>\n",
    );
    assert_eq!(w[0].place, Place::Inline("-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n".into()));
    assert_eq!(w[0].label, "/etc/openvpn/server/office.conf#<ca>");
    assert_eq!(w[1].place, Place::Inline("B\n".into()));
    assert!(from_conf(conf, "port 1194\n# ca x.crt\n").is_empty());
    let idx = from_index(Path::new("/etc/openvpn/easy-rsa/pki/index.txt"));
    assert_eq!(idx[0].place, Place::File("/etc/openvpn/easy-rsa/pki/ca.crt".into()));
    assert_eq!(idx[1].place, Place::File("/etc/openvpn/easy-rsa/pki/crl.pem".into()));
    assert!(idx.iter().all(|w| w.optional && w.instance.is_none()));
}

#[test]
fn days_left_rounds_down() {
    assert_eq!(days_left(10 * DAY, 0), 10);
    assert_eq!(days_left(10 * DAY, 1), 9);
    assert_eq!(days_left(10, 10), 0);
    assert_eq!(days_left(10, 10 + DAY - 1), 0);
    assert_eq!(days_left(10, 10 + DAY), -1);
}

/// A scratch spool (the test kit's) and a writer into it.
struct Spool(Scratch);

impl Spool {
    fn new(name: &str) -> (Spool, EventWriter) {
        let scratch = Scratch::new("pki", name);
        let s = Settings::from_text(&scratch.config_path(), &scratch.env_text("")).unwrap();
        (Spool(scratch), EventWriter::new(&s.spool))
    }
    fn take(&self) -> Vec<Value> {
        let q = self.0.spool().join(crate::spool::AGENT_QUEUE);
        let text = fs::read_to_string(&q).unwrap_or_default();
        let _ = fs::remove_file(&q);
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn said(events: &[Value]) -> Vec<(String, i64, i64)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["threshold_days"].as_i64().unwrap_or(-1),
                e["days_left"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// A server certificate and a CRL driven across every threshold: each
/// warning exactly once, the expiry once, a renewal re-arms.
#[test]
fn each_threshold_once_and_renewal_rearms() {
    let (spool, sink) = Spool::new("thresholds");
    let t = [30, 7, 1];
    let server = Watched {
        holds: Holds::Certs(Role::Server),
        place: Place::File("/pki/server.crt".into()),
        label: "/pki/server.crt".into(),
        instance: Some("office".into()),
        optional: false,
    };
    let crl_file = Watched {
        holds: Holds::Crl,
        label: "/pki/crl.pem".into(),
        place: Place::File("/pki/crl.pem".into()),
        ..server.clone()
    };
    let end = 100 * DAY;
    let mut cert = super::super::x509::CertInfo {
        subject: "/CN=server".into(),
        common_name: "server".into(),
        serial_hex: "0A".into(),
        not_after: end,
    };
    let mut crl = super::super::x509::CrlInfo { issuer: "/CN=Easy-RSA CA".into(), next_update: Some(end) };
    // Both files read every round: nothing kept for an unread one.
    let ok: BTreeSet<String> = BTreeSet::new();
    let mut book = PkiBook::default();
    let round =
        |book: &mut PkiBook, cert: &super::super::x509::CertInfo, crl: &super::super::x509::CrlInfo, now: i64| {
            let items = [
                Item { source: &server, what: ItemKind::Cert(Role::Server, cert) },
                Item { source: &crl_file, what: ItemKind::Crl(crl) },
            ];
            let done = book.judge(&items, &ok, &t, &sink, now).unwrap();
            assert!(!done.spool_full);
            said(&spool.take())
        };
    assert_eq!(round(&mut book, &cert, &crl, 0), []);
    assert_eq!(round(&mut book, &cert, &crl, end - 30 * DAY - 1), []);
    let w30 = round(&mut book, &cert, &crl, end - 30 * DAY);
    assert_eq!(w30, [("CERT_EXPIRING".into(), 30, 30), ("CRL_EXPIRING".into(), 30, 30)]);
    for now in [end - 30 * DAY + 1, end - 20 * DAY, end - 7 * DAY - 1] {
        assert_eq!(round(&mut book, &cert, &crl, now), [], "nothing again at {now}");
    }
    assert_eq!(
        round(&mut book, &cert, &crl, end - 7 * DAY + 5),
        [("CERT_EXPIRING".into(), 7, 6), ("CRL_EXPIRING".into(), 7, 6)]
    );
    assert_eq!(round(&mut book, &cert, &crl, end - 2 * DAY), []);
    // A restart in between: the state file keeps what was said.
    let json = serde_json::to_string(&book).unwrap();
    let mut book: PkiBook = serde_json::from_str(&json).unwrap();
    assert_eq!(
        round(&mut book, &cert, &crl, end - DAY),
        [("CERT_EXPIRING".into(), 1, 1), ("CRL_EXPIRING".into(), 1, 1)]
    );
    assert_eq!(round(&mut book, &cert, &crl, end - 1), []);
    assert_eq!(round(&mut book, &cert, &crl, end), [("CERT_EXPIRED".into(), -1, -1), ("CRL_EXPIRED".into(), 0, 0)]);
    assert_eq!(round(&mut book, &cert, &crl, end + 3 * DAY), []);
    // Renewed: a new nextUpdate and a new serial start afresh, and the
    // old ones are forgotten (the files were read).
    crl.next_update = Some(end + 10 * DAY);
    cert.serial_hex = "0B".into();
    cert.not_after = end + 200 * DAY;
    assert_eq!(round(&mut book, &cert, &crl, end + DAY), [("CRL_EXPIRING".into(), 30, 9)]);
    // Only the CRL was warned about: the renewed certificate, far from its
    // end, takes no place in the state.
    assert_eq!(book.said.keys().collect::<Vec<_>>(), ["crl\toffice\t/pki/crl.pem\t9504000"], "{book:?}");
    assert_eq!(round(&mut book, &cert, &crl, end + 4 * DAY), [("CRL_EXPIRING".into(), 7, 6)]);
}

/// The event's fields, as docs/payload.md lists them.
#[test]
fn event_fields() {
    let (spool, sink) = Spool::new("fields");
    let w = Watched {
        holds: Holds::Certs(Role::Ca),
        place: Place::File("/pki/ca.crt".into()),
        label: "/pki/ca.crt".into(),
        instance: Some("office".into()),
        optional: false,
    };
    let c = super::super::x509::CertInfo {
        subject: "/CN=Easy-RSA CA".into(),
        common_name: "Easy-RSA CA".into(),
        serial_hex: "8C3A01".into(),
        not_after: 10 * DAY,
    };
    let client = Watched { holds: Holds::Certs(Role::Client), instance: None, ..w.clone() };
    let mut book = PkiBook::default();
    let items = [
        Item { source: &w, what: ItemKind::Cert(Role::Ca, &c) },
        Item { source: &client, what: ItemKind::Cert(Role::Client, &c) },
    ];
    book.judge(&items, &BTreeSet::new(), &[30, 7, 1], &sink, 0).unwrap();
    let ev = spool.take();
    assert_eq!(ev.len(), 2);
    let e = &ev[0];
    for (k, v) in [
        ("type", "CERT_EXPIRING"),
        ("cert_role", "ca"),
        ("common_name", "Easy-RSA CA"),
        ("subject", "/CN=Easy-RSA CA"),
        ("cert_serial", "8c:3a:01"),
        ("cert_serial_hex", "8C3A01"),
        ("expires_at", "1970-01-11T00:00:00Z"),
        ("path", "/pki/ca.crt"),
        ("instance", "office"),
    ] {
        assert_eq!(e[k], v, "{k}: {e}");
    }
    assert_eq!((e["days_left"].as_i64(), e["threshold_days"].as_i64()), (Some(10), Some(30)));
    assert_eq!(ev[1]["cert_role"], "client");
    assert!(ev[1].get("instance").is_none());
    // A client's expiry: index.txt's CERT_EXPIRED says it, not this.
    book.judge(&items, &BTreeSet::new(), &[30, 7, 1], &sink, 10 * DAY).unwrap();
    let ev = spool.take();
    assert_eq!(said(&ev), [("CERT_EXPIRED".into(), -1, -1)]);
    assert_eq!((ev[0]["cert_role"].as_str(), ev[0]["status"].as_str()), (Some("ca"), Some("expired")));
}

/// A CRL without nextUpdate never expires: no warning, ever, and `status`
/// says "never expires".
#[test]
fn a_crl_without_next_update_is_never_warned_about() {
    let (spool, sink) = Spool::new("never");
    let w = Watched {
        holds: Holds::Crl,
        place: Place::File("/pki/crl.pem".into()),
        label: "/pki/crl.pem".into(),
        instance: None,
        optional: true,
    };
    let crl = super::super::x509::CrlInfo { issuer: "/CN=CA".into(), next_update: None };
    let mut book = PkiBook::default();
    for now in [0, 400 * DAY, i64::from(i32::MAX)] {
        book.judge(&[Item { source: &w, what: ItemKind::Crl(&crl) }], &BTreeSet::new(), &[30, 7, 1], &sink, now)
            .unwrap();
    }
    assert!(spool.take().is_empty());
    book.seen = vec![Seen { what: "crl".into(), label: w.label.clone(), instance: None, expires: None }];
    fs::write(spool.0.spool().join(PKI_STATE), serde_json::to_vec(&book).unwrap()).unwrap();
    let r = report(&spool.0.spool(), 0, 30, &crate::fsutil::Owners::me());
    assert_eq!(
        r["instances"]["-"]["crl"],
        serde_json::json!({"days_left": null, "expires": null, "expired": null, "path": "/pki/crl.pem"})
    );
    assert_eq!(report_lines(&r)[0], ("PKI -".to_string(), "CA -, server cert -, CRL never expires".to_string()));
}

/// The state holds what was said, not the PKI: many valid client
/// certificates far from their end leave no entry; a warned one keeps its
/// entry until it is renewed (a new serial) or gone from the index.
#[test]
fn the_state_holds_only_what_was_said() {
    let (spool, sink) = Spool::new("bounded");
    let index = Watched {
        holds: Holds::Certs(Role::Client),
        place: Place::File("/pki/index.txt".into()),
        label: "/pki/index.txt".into(),
        instance: None,
        optional: false,
    };
    let cert = |serial: usize, not_after: i64| super::super::x509::CertInfo {
        subject: format!("/CN=c{serial}"),
        common_name: format!("c{serial}"),
        serial_hex: format!("{serial:04X}"),
        not_after,
    };
    let mut certs: Vec<_> = (0..2000).map(|i| cert(i, 400 * DAY)).collect();
    certs.push(cert(9999, 20 * DAY));
    let ok: BTreeSet<String> = BTreeSet::new();
    let mut book = PkiBook::default();
    fn of<'a>(index: &'a Watched, certs: &'a [super::super::x509::CertInfo]) -> Vec<Item<'a>> {
        certs.iter().map(|c| Item { source: index, what: ItemKind::Cert(Role::Client, c) }).collect()
    }
    let items = |certs| of(&index, certs);
    book.judge(&items(&certs[..2000]), &ok, &[30, 7, 1], &sink, 0).unwrap();
    assert!(book.said.is_empty(), "{} entries for nothing said", book.said.len());
    book.judge(&items(&certs), &ok, &[30, 7, 1], &sink, 0).unwrap();
    assert_eq!(said(&spool.take()), [("CERT_EXPIRING".into(), 30, 20)]);
    let keys: Vec<&String> = book.said.keys().collect();
    assert_eq!(keys, ["client\t\t/pki/index.txt\t270F"], "only the warned one");
    // Kept while it is watched, whatever else changes.
    book.judge(&items(&certs[1000..]), &ok, &[30, 7, 1], &sink, DAY).unwrap();
    assert_eq!((book.said.len(), spool.take().len()), (1, 0));
    // Expired (index.txt says CERT_EXPIRED): nothing new to remember.
    book.judge(&items(&certs), &ok, &[30, 7, 1], &sink, 21 * DAY).unwrap();
    assert_eq!((book.said.len(), spool.take().len()), (1, 0));
    // The index unreadable this round: what was said about it is kept.
    let unread: BTreeSet<String> = [index.label.clone()].into();
    book.judge(&[], &unread, &[30, 7, 1], &sink, 21 * DAY).unwrap();
    assert_eq!(book.said.len(), 1);
    // Renewed or revoked: gone from the valid ones, so forgotten.
    book.judge(&items(&certs[..2000]), &ok, &[30, 7, 1], &sink, 21 * DAY).unwrap();
    assert!(book.said.is_empty(), "{book:?}");
    // A file no longer watched at all (its config changed): forgotten too.
    book.judge(&items(&certs), &ok, &[30, 7, 1], &sink, 0).unwrap();
    assert_eq!((book.said.len(), spool.take().len()), (1, 1));
    book.judge(&[], &ok, &[30, 7, 1], &sink, 0).unwrap();
    assert!(book.said.is_empty(), "{book:?}");
}

/// A state `status` cannot read is said, not shown as "no PKI problems".
#[test]
fn a_state_that_cannot_be_read_is_said() {
    let (spool, _) = Spool::new("unreadable");
    let r = report(&spool.0.spool(), 0, 30, &crate::fsutil::Owners::me());
    assert!(r.get("error").is_none(), "no state yet is no news: {r}");
    fs::write(spool.0.spool().join(PKI_STATE), "{\"said\": [").unwrap();
    let r = report(&spool.0.spool(), 0, 30, &crate::fsutil::Owners::me());
    assert!(r["error"].as_str().unwrap().contains("cannot read"), "{r}");
    let lines = report_lines(&r);
    assert!(lines[0].0 == "PKI" && lines[0].1.contains(PKI_STATE), "{lines:?}");
}
