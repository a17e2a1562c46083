//! PKI health through the real binary: a PKI made by real Easy-RSA 3 and
//! OpenSSL with short lifetimes (a CRL for 2 days, a server certificate
//! for 5, clients for 3 and 20, a CA file holding a chain, a DER CRL, a
//! certificate that ends after 2049), two OpenVPN configs naming them (by
//! path, relative to `cd`, and inline), and `agent --once` driven across
//! every threshold with the test clock: each warning exactly once, the
//! expiries once, and a renewed CRL (`easyrsa gen-crl`) warned about again.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/easyrsa.rs"]
mod easyrsa;
#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use site::BIN;

const DAY: i64 = 86_400;

/// The shared test site with a `file://` sink (support/agent_site.rs).
type Site = site::FileSite;

/// The PKI health events among `evs`, as (type, role or "crl", path's
/// file name, threshold), sorted.
fn pki_keys(evs: &[Value]) -> Vec<(String, String, String, i64)> {
    let mut out: Vec<_> = evs.iter().filter(|e| is_pki(e)).map(key).collect();
    out.sort();
    out
}

/// [`pki_keys`] of a run at `now`.
fn warnings(site: &mut Site, now: i64) -> Vec<(String, String, String, i64)> {
    pki_keys(&site.agent(Some(now)))
}

fn is_pki(e: &Value) -> bool {
    e["type"] == "CERT_EXPIRING"
        || e["type"].as_str().is_some_and(|t| t.starts_with("CRL_"))
        || e.get("cert_role").is_some()
}

fn key(e: &Value) -> (String, String, String, i64) {
    let path = e["path"].as_str().unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    (
        e["type"].as_str().unwrap().to_string(),
        e["cert_role"].as_str().unwrap_or("crl").to_string(),
        name,
        e["threshold_days"].as_i64().unwrap_or(-1),
    )
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed EC CA for `days`: DIR/NAME.crt and DIR/NAME.key.
fn self_signed(dir: &Path, name: &str, cn: &str, days: u32) {
    let key = dir.join(format!("{name}.key")).display().to_string();
    let crt = dir.join(format!("{name}.crt")).display().to_string();
    let (days, subj) = (days.to_string(), format!("/CN={cn}"));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let args = [&["req", "-x509"][..], &ec, &["-days", &days, "-subj", &subj, "-keyout", &key, "-out", &crt]].concat();
    openssl(&args);
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn w(e: &str, role: &str, file: &str, t: i64) -> (String, String, String, i64) {
    (e.into(), role.into(), file.into(), t)
}

/// The PKI and the two configs; returns (pki dir, dir of the configs).
fn build(root: &Path) -> (PathBuf, PathBuf) {
    easyrsa::run(root, &["init-pki"], &[]);
    easyrsa::run(root, &["build-ca", "nopass"], &[("EASYRSA_REQ_CN", "pki-ca")]);
    easyrsa::run(root, &["build-server-full", "server", "nopass"], &[("EASYRSA_CERT_EXPIRE", "5")]);
    easyrsa::run(root, &["build-client-full", "c3", "nopass"], &[("EASYRSA_CERT_EXPIRE", "3")]);
    easyrsa::run(root, &["build-client-full", "c20", "nopass"], &[("EASYRSA_CERT_EXPIRE", "20")]);
    easyrsa::run(root, &["gen-crl"], &[("EASYRSA_CRL_DAYS", "2")]);
    let pki = root.join("pki");
    let etc = root.join("etc");
    fs::create_dir_all(etc.join("keys")).unwrap();
    // A CA file with a chain: the PKI's CA, then another CA for 10 days.
    let s = |p: PathBuf| p.display().to_string();
    self_signed(&etc, "short-ca", "short-ca", 10);
    let chain = [fs::read(pki.join("ca.crt")).unwrap(), fs::read(etc.join("short-ca.crt")).unwrap()].concat();
    fs::write(etc.join("chain.crt"), chain).unwrap();
    // A certificate that ends after 2049 (GeneralizedTime), inline.
    self_signed(&etc, "long-ca", "long-ca", 10000);
    // The CRL in DER, as a copy (not renewed with the PKI's).
    openssl(&["crl", "-in", &s(pki.join("crl.pem")), "-outform", "DER", "-out", &s(etc.join("keys/crl.der"))]);
    fs::write(
        etc.join("office.conf"),
        format!(
            "port 1194\nca chain.crt\ncert {}\nkey {}\ncrl-verify {}\nstatus /nonexistent/status.log\n",
            pki.join("issued/server.crt").display(),
            pki.join("private/server.key").display(),
            pki.join("crl.pem").display()
        ),
    )
    .unwrap();
    let long = fs::read_to_string(etc.join("long-ca.crt")).unwrap();
    fs::write(etc.join("lab.conf"), format!("cd keys\ncrl-verify crl.der\n<ca>\n{long}</ca>\n")).unwrap();
    (pki, etc)
}

#[test]
fn each_warning_once_across_thresholds_and_again_after_gen_crl() {
    require::file(easyrsa::EASYRSA, "easy-rsa");
    require::program("openssl", "version", "openssl");
    // Everything below the site's directory, removed with it.
    let mut site = Site::new("pki-thresholds", "");
    let root = site.path("easyrsa");
    fs::create_dir_all(&root).unwrap();
    let (pki, etc) = build(&root);
    // After the PKI was made (and a second on, as times are whole
    // seconds): every lifetime counted from here is short of whole days.
    let t0 = now() + 1;
    site.configure(&format!(
        "EASYRSA_INDEX={}\nOPENVPN_SERVER_CONF=\"{} {}\"\nSNAPSHOT_INTERVAL_SECONDS=0\nSESSION_UPDATE_INTERVAL_SECONDS=0\n",
        pki.join("index.txt").display(),
        etc.join("office.conf").display(),
        etc.join("lab.conf").display()
    ));
    let mut all = Vec::new();

    // At once: each file at the smallest threshold it is within.
    let (evs, log) = site.agent_logged(Some(t0));
    let got = pki_keys(&evs);
    assert_eq!(
        got,
        [
            w("CERT_EXPIRING", "ca", "chain.crt", 30),
            w("CERT_EXPIRING", "client", "index.txt", 7),
            w("CERT_EXPIRING", "client", "index.txt", 30),
            w("CERT_EXPIRING", "server", "server.crt", 7),
            w("CRL_EXPIRING", "crl", "crl.der", 7),
            w("CRL_EXPIRING", "crl", "crl.pem", 7),
        ],
        "{log}"
    );
    let by = |t: &str, f: &dyn Fn(&Value) -> bool| evs.iter().find(|e| e["type"] == t && f(e)).unwrap().clone();
    let server = by("CERT_EXPIRING", &|e| e["cert_role"] == "server");
    assert_eq!((server["common_name"].as_str(), server["instance"].as_str()), (Some("server"), Some("office")));
    assert_eq!(server["subject"], "/CN=server");
    assert_eq!(server["days_left"], 4, "{server} at {t0}");
    // The serial is index.txt's, so it joins with CERT_ISSUED.
    let issued = by("CERT_ISSUED", &|e| e["common_name"] == "server");
    assert_eq!(server["cert_serial_hex"], issued["cert_serial_hex"]);
    assert_eq!(server["expires_at"], issued["expires_at"]);
    let chain = by("CERT_EXPIRING", &|e| e["cert_role"] == "ca");
    assert_eq!((chain["common_name"].as_str(), chain["days_left"].as_i64()), (Some("short-ca"), Some(9)));
    let crl = by("CRL_EXPIRING", &|e| e["path"].as_str().unwrap().ends_with("crl.pem"));
    assert_eq!((crl["issuer"].as_str(), crl["days_left"].as_i64()), (Some("/CN=pki-ca"), Some(1)));
    assert_eq!(crl["instance"], "office");
    let der = by("CRL_EXPIRING", &|e| e["path"].as_str().unwrap().ends_with("crl.der"));
    assert_eq!((der["instance"].as_str(), der["next_update"].clone()), (Some("lab"), crl["next_update"].clone()));
    let c3 = by("CERT_EXPIRING", &|e| e["common_name"] == "c3");
    assert!(c3.get("instance").is_none() && c3["threshold_days"] == 7, "{c3}");
    all.extend(evs.into_iter().filter(is_pki));

    // Nothing is said twice: the same moment, and a restart a little later.
    assert_eq!(warnings(&mut site, t0), []);
    assert_eq!(warnings(&mut site, t0 + 3600), []);

    // A day later both CRLs have less than a day left.
    let d1 = t0 + DAY + 60;
    assert_eq!(
        warnings(&mut site, d1),
        [w("CRL_EXPIRING", "crl", "crl.der", 1), w("CRL_EXPIRING", "crl", "crl.pem", 1)]
    );
    assert_eq!(warnings(&mut site, d1 + 60), []);

    // Past nextUpdate: CRL_EXPIRED once each; c3 is within its last day.
    let d2 = t0 + 2 * DAY + 120;
    let (evs, _) = site.agent_logged(Some(d2));
    let got = pki_keys(&evs);
    assert_eq!(
        got,
        [
            w("CERT_EXPIRING", "client", "index.txt", 1),
            w("CRL_EXPIRED", "crl", "crl.der", 0),
            w("CRL_EXPIRED", "crl", "crl.pem", 0),
        ]
    );
    all.extend(evs.into_iter().filter(is_pki));
    assert_eq!(warnings(&mut site, d2 + 600), []);

    // `easyrsa gen-crl` (10 days, made now, so 8 days left by the test
    // clock): the new nextUpdate is warned about afresh, at 30 again; the
    // DER copy, not renewed, stays expired without a word.
    easyrsa::run(&root, &["gen-crl"], &[("EASYRSA_CRL_DAYS", "10")]);
    assert_eq!(warnings(&mut site, d2 + 900), [w("CRL_EXPIRING", "crl", "crl.pem", 30)]);
    assert_eq!(warnings(&mut site, d2 + 1200), []);
    // Three days on: the renewed CRL and the chain's 10-day CA at 7.
    assert_eq!(
        warnings(&mut site, t0 + 3 * DAY + 120),
        [w("CERT_EXPIRING", "ca", "chain.crt", 7), w("CRL_EXPIRING", "crl", "crl.pem", 7)]
    );

    // The server certificate's last day, then its end: CERT_EXPIRED with
    // its role (and index.txt's own CERT_EXPIRED, without one).
    assert_eq!(warnings(&mut site, t0 + 4 * DAY + 120), [w("CERT_EXPIRING", "server", "server.crt", 1)]);
    let (evs, _) = site.agent_logged(Some(t0 + 5 * DAY + 120));
    let server_end = evs.iter().find(|e| e["type"] == "CERT_EXPIRED" && e["cert_role"] == "server").unwrap();
    assert_eq!((server_end["status"].as_str(), server_end["instance"].as_str()), (Some("expired"), Some("office")));
    assert!(
        evs.iter().any(|e| e["type"] == "CERT_EXPIRED" && e["common_name"] == "server" && e.get("cert_role").is_none())
    );
    all.extend(evs.into_iter().filter(is_pki));
    assert_eq!(warnings(&mut site, t0 + 5 * DAY + 600).iter().filter(|k| k.1 == "server").count(), 0);

    // The certificate past 2049 was read (GeneralizedTime) and is far off.
    let state: Value = serde_json::from_slice(&fs::read(site.spool().join("pki.state")).unwrap()).unwrap();
    let long =
        state["seen"].as_array().unwrap().iter().find(|s| s["label"].as_str().unwrap().ends_with("lab.conf#<ca>"));
    assert!(long.unwrap()["expires"].as_i64().unwrap() > 2_524_608_000, "{state}"); // 2050-01-01

    // `status` at the same clock: days left per instance, clients.
    let status = |at: i64| {
        let out = Command::new(BIN)
            .args(["status", "--json"])
            .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
            .env("OPENVPN_TELEMETRY_NOW", at.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["pki"].clone()
    };
    let p = status(t0 + 3 * DAY + 120);
    let office = &p["instances"]["office"];
    // A CA file counts by its latest certificate (the PKI's CA, 10 years;
    // the 10-day one has its own events and `check` line); the server has
    // 1 day left.
    let ca_days = office["ca"]["days_left"].as_i64().unwrap();
    assert!((3640..=3650).contains(&ca_days), "{p}");
    assert_eq!(office["server"]["days_left"].as_i64(), Some(1), "{p}");
    assert_eq!(office["crl"]["days_left"].as_i64(), Some(6), "the renewed CRL: {p}");
    assert_eq!(p["instances"]["lab"]["crl"]["days_left"].as_i64(), Some(-1), "the DER copy expired a day ago: {p}");
    assert!(p["instances"]["lab"]["ca"]["days_left"].as_i64().unwrap() > 9000, "{p}");
    assert_eq!(p["instances"]["-"]["ca"]["path"].as_str().map(|s| s.ends_with("pki/ca.crt")), Some(true), "{p}");
    // c3 ended (the state's last reading was 5 days on), c20 within 30.
    assert_eq!((p["clients_expiring"].as_u64(), p["clients_expired"].as_u64()), (Some(1), Some(1)), "{p}");
    let text = Command::new(BIN)
        .args(["status"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", (t0 + 3 * DAY + 120).to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("PKI office") && text.contains(&format!("CA {ca_days} d, server cert 1 d, CRL 6 d")),
        "{text}"
    );
    assert!(text.contains("1 expire within 30 d"), "{text}");

    // `check` a day later: each file with its verdict and command.
    let out = Command::new(BIN)
        .args(["check"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", (t0 + 4 * DAY + 120).to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {text}"));
    let server = line("server certificate");
    assert!(
        server.starts_with("WARN ") && server.contains("server.crt (office) (CN=server) expires in 0 days"),
        "{server}"
    );
    assert!(server.contains("`easyrsa renew server`"), "{server}");
    let der = line("crl.der (lab)");
    assert!(der.starts_with("FAIL ") && der.contains("OpenVPN refuses every client"), "{der}");
    assert!(der.contains("fix: `easyrsa gen-crl`"), "{der}");
    assert!(line("crl.pem (office)").starts_with("OK ") && line("crl.pem (office)").contains("5 days left"), "{text}");
    assert!(line("(CN=short-ca)").starts_with("OK "), "{text}");
    assert!(line("(CN=long-ca)").contains("lab.conf#<ca>"), "{text}");

    let mut counts = BTreeMap::new();
    for e in &all {
        *counts.entry(key(e)).or_insert(0) += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

/// Files that are not what they should be: not a certificate, a truncated
/// PEM, one over the 4 MiB cap, a symlink (refused like a status file
/// would be). Each is one warning naming it; the good CRL beside them is
/// still warned about, and the agent exits 0.
#[test]
fn a_bad_file_costs_only_itself() {
    require::program("openssl", "version", "openssl");
    let mut site = Site::new("pki-bad", "");
    let dir = site.path("etc");
    fs::create_dir_all(&dir).unwrap();
    self_signed(&dir, "ca", "bad-test-ca", 3);
    fs::write(dir.join("index.txt"), "").unwrap();
    fs::write(dir.join("crlnumber"), "01\n").unwrap();
    fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\n",
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "ca", "-batch", "-config", "ca.cnf", "-gencrl", "-crldays", "2", "-keyfile", "ca.key", "-cert", "ca.crt",
        ])
        .args(["-out", "crl.pem"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl ca -gencrl: {}", String::from_utf8_lossy(&out.stderr));
    let good = fs::read(dir.join("ca.crt")).unwrap();
    fs::write(dir.join("not-a-cert.crt"), "hello, I am a text file\n").unwrap();
    fs::write(dir.join("truncated.crt"), &good[..good.len() / 2]).unwrap();
    let mut huge = good.clone();
    huge.resize(5 * 1024 * 1024, b'A');
    fs::write(dir.join("huge.crt"), huge).unwrap();
    std::os::unix::fs::symlink(dir.join("ca.crt"), dir.join("link.crt")).unwrap();
    fs::write(dir.join("a.conf"), "ca not-a-cert.crt\ncert truncated.crt\ncrl-verify crl.pem\n").unwrap();
    fs::write(dir.join("b.conf"), "ca huge.crt\ncert link.crt\n").unwrap();
    site.configure(&format!(
        "OPENVPN_SERVER_CONF=\"{} {}\"\nSNAPSHOT_INTERVAL_SECONDS=0\nSESSION_UPDATE_INTERVAL_SECONDS=0\n",
        dir.join("a.conf").display(),
        dir.join("b.conf").display()
    ));
    let (evs, log) = site.agent_logged(Some(now()));
    let got: Vec<_> = evs.iter().filter(|e| is_pki(e)).map(key).collect();
    assert_eq!(got, [w("CRL_EXPIRING", "crl", "crl.pem", 7)], "{log}");
    for (file, why) in [
        ("not-a-cert.crt", "neither PEM nor DER"),
        ("truncated.crt", "truncated"),
        ("huge.crt", "cap"),
        ("link.crt", "link"),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "one line about {file}: {log}");
        assert!(lines[0].contains("WARN") && lines[0].contains(why), "{file}: {}", lines[0]);
    }
}

/// A minimal `openssl ca` config in DIR (database, serial, CRL number),
/// unless there is one.
fn ca_config(dir: &Path) {
    if !dir.join("ca.cnf").exists() {
        fs::write(dir.join("index.txt"), "").unwrap();
        fs::write(dir.join("serial"), "1000\n").unwrap();
        fs::write(dir.join("crlnumber"), "01\n").unwrap();
        fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\ncrlnumber = crlnumber\n\
             new_certs_dir = .\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n\
             [v3_ca]\nbasicConstraints = critical,CA:true\nkeyUsage = cRLSign, keyCertSign\n",
        )
        .unwrap();
    }
}

/// `openssl ca` in DIR with [`ca_config`], run with `args`.
fn openssl_ca(dir: &Path, args: &[&str]) {
    ca_config(dir);
    let out = Command::new("openssl")
        .args(["ca", "-batch", "-config", "ca.cnf"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl ca {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A rollover bundle: the old self-signed CA (expired, made by `openssl ca
/// -selfsign` with a past `-enddate`) left in ca.crt beside its successor
/// (same subject, valid for 10 years). Clients still connect, so the old
/// one is its own CERT_EXPIRED (its serial, its subject) and a WARN in
/// `check` naming it, while `status` gives the CA the successor's days.
#[test]
fn an_old_ca_left_in_a_rollover_bundle_is_a_warning_not_an_outage() {
    require::program("openssl", "version", "openssl");
    let mut site = Site::new("pki-rollover", "");
    let dir = site.path("etc");
    fs::create_dir_all(&dir).unwrap();
    let (old_key, csr) = (dir.join("old.key"), dir.join("old.csr"));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let out = ["-subj", "/CN=rollover-ca", "-keyout", old_key.to_str().unwrap(), "-out", csr.to_str().unwrap()];
    openssl(&[&["req", "-new"][..], &ec, &out].concat());
    openssl_ca(
        &dir,
        &[
            "-selfsign",
            "-keyfile",
            "old.key",
            "-in",
            "old.csr",
            "-extensions",
            "v3_ca",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-out",
            "old.crt",
        ],
    );
    self_signed(&dir, "new", "rollover-ca", 3650);
    let old = fs::read_to_string(dir.join("old.crt")).unwrap();
    let old_pem = &old[old.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    fs::write(dir.join("ca.crt"), format!("{old_pem}{}", fs::read_to_string(dir.join("new.crt")).unwrap())).unwrap();
    fs::write(dir.join("office.conf"), "ca ca.crt\n").unwrap();
    site.configure(&format!(
        "OPENVPN_SERVER_CONF={}\nSNAPSHOT_INTERVAL_SECONDS=0\nSESSION_UPDATE_INTERVAL_SECONDS=0\n",
        dir.join("office.conf").display()
    ));
    let t0 = now();
    let (evs, log) = site.agent_logged(Some(t0));
    let pki: Vec<&Value> = evs.iter().filter(|e| is_pki(e)).collect();
    assert_eq!(pki.len(), 1, "only the old CA's end: {pki:?} {log}");
    let e = pki[0];
    assert_eq!(key(e), w("CERT_EXPIRED", "ca", "ca.crt", -1), "{e}");
    assert_eq!((e["cert_serial_hex"].as_str(), e["subject"].as_str()), (Some("1000"), Some("/CN=rollover-ca")), "{e}");
    assert!(e["expires_at"].as_str().unwrap().starts_with("2021-01-01"), "{e}");
    assert!(warnings(&mut site, t0 + 60).is_empty(), "once");

    let out = Command::new(BIN)
        .args(["status", "--json"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", t0.to_string())
        .output()
        .unwrap();
    let p = serde_json::from_slice::<Value>(&out.stdout).unwrap()["pki"].clone();
    let days = p["instances"]["office"]["ca"]["days_left"].as_i64().unwrap();
    assert!((3640..=3650).contains(&days), "the successor's days: {p}");

    let out = Command::new(BIN)
        .args(["check"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", t0.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ca: Vec<&str> = text.lines().filter(|l| l.contains("(CN=rollover-ca)")).collect();
    assert_eq!(ca.len(), 2, "{text}");
    assert!(
        ca.iter().any(|l| l.starts_with("WARN ")
            && l.contains("serial 1000")
            && l.contains("an expired CA certificate is still in")
            && l.contains("ca.crt; remove it")),
        "{text}"
    );
    assert!(ca.iter().any(|l| l.starts_with("OK ")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("FAIL ") && l.contains("ca.crt")), "{text}");

    // The old CA's entry stays in the state while ca.crt is watched, and
    // goes once the config no longer names it.
    let said = |site: &Site| {
        let state: Value = serde_json::from_slice(&fs::read(site.spool().join("pki.state")).unwrap()).unwrap();
        state["said"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(said(&site).len(), 1, "{:?}", said(&site));
    assert!(said(&site)[0].ends_with("ca.crt\t1000"), "{:?}", said(&site));
    fs::write(dir.join("office.conf"), "port 1194\n").unwrap();
    assert!(warnings(&mut site, t0 + 120).is_empty());
    assert!(said(&site).is_empty(), "{:?}", said(&site));
}

/// A CRL with 150 000 revocations (4.4 MB of PEM, over the 4 MiB a
/// certificate file may have), made by `openssl ca -gencrl` from an
/// index.txt of that many `R` lines: its nextUpdate is read from its
/// start, in PEM and DER, by the agent (CRL_EXPIRING) and by `check`.
#[test]
fn a_crl_with_many_revocations_is_watched() {
    require::program("openssl", "version", "openssl");
    let mut site = Site::new("pki-bigcrl", "");
    let dir = site.path("etc");
    fs::create_dir_all(&dir).unwrap();
    self_signed(&dir, "ca", "big-crl-ca", 30);
    ca_config(&dir);
    let mut index = String::new();
    for i in 0..150_000u32 {
        index.push_str(&format!("R\t300101000000Z\t240101000000Z\t{:06X}\tunknown\t/CN=c{i}\n", 0x10_0000 + i));
    }
    fs::write(dir.join("index.txt"), index).unwrap();
    openssl_ca(&dir, &["-gencrl", "-crldays", "2", "-keyfile", "ca.key", "-cert", "ca.crt", "-out", "crl.pem"]);
    let (pem, der) = (dir.join("crl.pem"), dir.join("crl.der"));
    openssl(&["crl", "-in", pem.to_str().unwrap(), "-outform", "DER", "-out", der.to_str().unwrap()]);
    let count = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl crl -in {} -noout -text | grep -c 'Serial Number'", pem.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "150000");
    assert!(fs::metadata(&pem).unwrap().len() > 4 * 1024 * 1024 && fs::metadata(&der).unwrap().len() > 3_000_000);
    fs::write(dir.join("a.conf"), "crl-verify crl.pem\n").unwrap();
    fs::write(dir.join("b.conf"), "crl-verify crl.der\n").unwrap();
    site.configure(&format!(
        "OPENVPN_SERVER_CONF=\"{} {}\"\nSNAPSHOT_INTERVAL_SECONDS=0\nSESSION_UPDATE_INTERVAL_SECONDS=0\n",
        dir.join("a.conf").display(),
        dir.join("b.conf").display()
    ));
    let t0 = now();
    let (evs, log) = site.agent_logged(Some(t0));
    let got = pki_keys(&evs);
    assert_eq!(got, [w("CRL_EXPIRING", "crl", "crl.der", 7), w("CRL_EXPIRING", "crl", "crl.pem", 7)], "{log}");
    assert!(evs.iter().filter(|e| is_pki(e)).all(|e| e["issuer"] == "/CN=big-crl-ca"), "{evs:?}");
    assert!(!log.contains("cap"), "{log}");

    let out = Command::new(BIN)
        .args(["check"])
        .env("OPENVPN_TELEMETRY_CONFIG", site.config_path())
        .env("OPENVPN_TELEMETRY_NOW", t0.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["crl.pem (a)", "crl.der (b)"] {
        let line = text.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {text}"));
        // 2 days less the seconds since it was made (none, within a second).
        assert!(
            line.starts_with("OK ") && (line.contains(": 1 days left") || line.contains(": 2 days left")),
            "{line}"
        );
    }
}
