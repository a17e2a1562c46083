//! PKI health as `check` says it: each certificate and CRL file the agent
//! watches, read now, judged against the smallest `EXPIRY_WARN_DAYS`
//! threshold: OK with the days left, WARN at or below it, FAIL once
//! expired, each naming the file and the command that renews it.
//!
//! Guarantees: reads only (bounded, no link followed, as the sources do);
//! a file that cannot be read or parsed is a WARN about that file alone.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{self as pki, Holds, Place, Reading, Role};
use crate::sources::SourceSettings;

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of `check`: the level, what was found, and for a FAIL what
/// to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: String,
}

fn finding(level: Level, what: String, fix: &str) -> Finding {
    Finding { level, what, fix: fix.to_string() }
}

/// Every watched file, judged at `now`; `at` maps a path to where it is
/// (`check --root` looks below a staging directory).
pub fn findings(settings: &SourceSettings, at: &dyn Fn(&Path) -> PathBuf, now: i64) -> Vec<Finding> {
    let warn_days = i64::from(settings.sources.expiry_warn_days.last().copied().unwrap_or(1));
    let read = |p: &Path| crate::fsutil::read_capped(&at(p), pki::PKI_READ_CAP, &crate::fsutil::Owners::anyone());
    let mut watched = Vec::new();
    for conf in &settings.server_confs {
        if let Ok(bytes) = read(conf) {
            watched.extend(pki::from_conf(conf, &String::from_utf8_lossy(&bytes)));
        }
    }
    if let Some(index) = &settings.sources.easyrsa_index {
        for w in pki::from_index(index) {
            if !watched.iter().any(|o| o.label == w.label) {
                watched.push(w);
            }
        }
    }
    let mut out = Vec::new();
    for w in &watched {
        let of = w.instance.as_deref().map(|i| format!(" ({i})")).unwrap_or_default();
        let bytes = match &w.place {
            Place::CrlDir(dir) => {
                out.push(finding(
                    Level::Ok,
                    format!(
                        "crl-verify {} dir{of}: a directory of revoked serials has no expiry to watch",
                        dir.display()
                    ),
                    "",
                ));
                continue;
            }
            Place::Inline(text) => text.clone().into_bytes(),
            Place::File(path) => match read_upto(&at(path), w.holds) {
                Ok(bytes) if w.holds != Holds::Crl && bytes.len() as u64 > pki::PKI_READ_CAP => {
                    out.push(finding(
                        Level::Warn,
                        format!(
                            "{}{of}: over the {}-byte cap for a certificate file; not checked",
                            w.label,
                            pki::PKI_READ_CAP
                        ),
                        "",
                    ));
                    continue;
                }
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && w.optional => continue,
                Err(e) => {
                    out.push(finding(
                        Level::Warn,
                        format!("{}{of}: cannot read ({e}); its expiry is not checked", w.label),
                        "",
                    ));
                    continue;
                }
            },
        };
        match pki::parse(w.holds, &bytes) {
            Err(why) => {
                out.push(finding(Level::Warn, format!("{}{of}: {why}; its expiry is not checked", w.label), ""))
            }
            Ok(Reading::Certs(certs)) => {
                let Holds::Certs(role) = w.holds else { continue };
                for c in &certs {
                    let what = format!("{} certificate {}{of} (CN={})", role_name(role), w.label, c.common_name);
                    let fix = match role {
                        Role::Ca => format!(
                            "renew the CA (`easyrsa renew-ca` with Easy-RSA 3.2, else `easyrsa build-ca` and reissue), \
                             then put it in {}",
                            w.label
                        ),
                        _ => format!("`easyrsa renew {}`, then put the new certificate in {}", c.common_name, w.label),
                    };
                    let mut f = judge(what, Some(c.not_after), now, warn_days, &fix);
                    // An old CA left in a rollover bundle: clients still
                    // connect through the valid one, so it is untidy, not
                    // an outage.
                    if role == Role::Ca && f.level == Level::Fail && certs.iter().any(|o| o.not_after > now) {
                        f = finding(
                            Level::Warn,
                            format!(
                                "{} (serial {}): an expired CA certificate is still in {}; remove it",
                                f.what, c.serial_hex, w.label
                            ),
                            "",
                        );
                    }
                    out.push(f);
                }
            }
            Ok(Reading::Crl(crl)) => {
                let what = format!("CRL {}{of}", w.label);
                if crl.next_update.is_none() {
                    out.push(finding(Level::Ok, format!("{what} has no nextUpdate: it never expires"), ""));
                    continue;
                }
                let fix = format!("`easyrsa gen-crl`, then put pki/crl.pem in {} (and set EASYRSA_CRL_DAYS)", w.label);
                let mut f = judge(what, crl.next_update, now, warn_days, &fix);
                if f.level == Level::Fail {
                    f.what.push_str(": OpenVPN refuses every client");
                }
                out.push(f);
            }
        }
    }
    if let Some(index) = &settings.sources.easyrsa_index
        && let Ok(bytes) =
            crate::fsutil::read_capped(&at(index), crate::sources::READ_CAP, &crate::fsutil::Owners::anyone())
    {
        let (entries, _) = crate::sources::certs::parse_index(&bytes);
        let soon: Vec<&str> = entries
            .iter()
            .filter(|e| e.status == crate::sources::certs::CertStatus::Valid && e.expires > now)
            .filter(|e| e.expires - now <= warn_days * 86_400)
            .map(|e| e.common_name.as_str())
            .collect();
        if !soon.is_empty() {
            let more = if soon.len() > 5 { ", ..." } else { "" };
            out.push(finding(
                Level::Warn,
                format!(
                    "{} client certificate(s) in {} expire within {warn_days} days ({}{more}); renew: `easyrsa renew NAME`",
                    soon.len(),
                    index.display(),
                    soon[..soon.len().min(5)].join(", ")
                ),
                "",
            ));
        }
    }
    out
}

/// The start of a watched file, as the agent reads it: a certificate file
/// up to one byte over [`pki::PKI_READ_CAP`] (so "over the cap" can be
/// said as such), a CRL up to one byte over [`pki::PKI_CRL_HEAD`] (its
/// expiry is at its start, whatever its size). No link followed.
fn read_upto(path: &Path, holds: Holds) -> std::io::Result<Vec<u8>> {
    let cap = if holds == Holds::Crl { pki::PKI_CRL_HEAD } else { pki::PKI_READ_CAP };
    let file = crate::fsutil::open_read(path, &crate::fsutil::Owners::anyone())?;
    let mut bytes = Vec::new();
    std::io::Read::take(file, cap + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ca => "CA",
        Role::Server => "server",
        Role::Client => "client",
    }
}

fn judge(what: String, expires: Option<i64>, now: i64, warn_days: i64, fix: &str) -> Finding {
    let Some(t) = expires else { return finding(Level::Ok, what, "") };
    let at = crate::event::unix_to_rfc3339(t).unwrap_or_default();
    let days = pki::days_left(t, now);
    if t <= now {
        finding(Level::Fail, format!("{what} expired at {at}"), fix)
    } else if t - now <= warn_days * 86_400 {
        finding(Level::Warn, format!("{what} expires in {days} days (at {at}); renew: {fix}"), "")
    } else {
        finding(Level::Ok, format!("{what}: {days} days left (until {at})"), "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Scratch;
    use x509_cert::der::{Decode as _, Encode as _};

    /// A certificate file over the cap is said to be over the cap, naming
    /// it, not "cannot read".
    #[test]
    fn an_oversized_certificate_file_names_the_cap() {
        let site = Scratch::new("pki-check", "oversized");
        let mut huge = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real/pki/ca.crt")).unwrap();
        huge.resize(pki::PKI_READ_CAP as usize + 1, b'A');
        std::fs::write(site.path("huge.crt"), huge).unwrap();
        std::fs::write(site.path("a.conf"), "ca huge.crt\n").unwrap();
        let text =
            format!("SPOOL_DIR={}\nOPENVPN_SERVER_CONF={}\n", site.spool().display(), site.path("a.conf").display());
        let s = SourceSettings::new(&crate::config::Settings::from_text(&site.config_path(), &text).unwrap());
        let f = findings(&s, &|p| p.to_path_buf(), 0);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Warn);
        assert!(f[0].what.contains("huge.crt (a): over the 4194304-byte cap"), "{f:?}");
    }

    /// `crl-verify DIR dir` and a CRL without nextUpdate are said to have
    /// no expiry; an expired real CRL is a FAIL with `easyrsa gen-crl`.
    #[test]
    fn no_expiry_is_said_and_an_expired_crl_fails() {
        let site = Scratch::new("pki-check", "findings");
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real/pki");
        let der = std::fs::read(format!("{fixtures}/crl.der")).unwrap();
        let mut list: x509_cert::crl::CertificateList = x509_cert::crl::CertificateList::from_der(&der).unwrap();
        list.tbs_cert_list.next_update = None;
        std::fs::write(site.path("never.der"), list.to_der().unwrap()).unwrap();
        std::fs::copy(format!("{fixtures}/crl.pem"), site.path("crl.pem")).unwrap();
        std::fs::write(site.path("a.conf"), "crl-verify never.der\n").unwrap();
        std::fs::write(site.path("b.conf"), "crl-verify /etc/openvpn/crls dir\n").unwrap();
        std::fs::write(site.path("c.conf"), "crl-verify crl.pem\n").unwrap();
        let text = format!(
            "SPOOL_DIR={}\nOPENVPN_SERVER_CONF=\"{} {} {}\"\n",
            site.spool().display(),
            site.path("a.conf").display(),
            site.path("b.conf").display(),
            site.path("c.conf").display()
        );
        let s = SourceSettings::new(&crate::config::Settings::from_text(&site.config_path(), &text).unwrap());
        let next_update = crate::sources::x509::crl(&std::fs::read(site.path("crl.pem")).unwrap()).unwrap().next_update;
        let f = findings(&s, &|p| p.to_path_buf(), next_update.unwrap() + 1);
        let levels: Vec<Level> = f.iter().map(|f| f.level).collect();
        assert_eq!(levels, [Level::Ok, Level::Ok, Level::Fail], "{f:?}");
        assert!(f[0].what.ends_with("never.der (a) has no nextUpdate: it never expires"), "{f:?}");
        assert!(f[1].what.contains("crl-verify /etc/openvpn/crls dir (b): a directory of revoked serials"), "{f:?}");
        assert!(
            f[2].what.contains("OpenVPN refuses every client") && f[2].fix.starts_with("`easyrsa gen-crl`"),
            "{f:?}"
        );
        // A day before: WARN at the smallest threshold (1 day).
        let f = findings(&s, &|p| p.to_path_buf(), next_update.unwrap() - 3600);
        assert_eq!(f[2].level, Level::Warn, "{f:?}");
        assert!(f[2].what.contains("expires in 0 days") && f[2].what.contains("easyrsa gen-crl"), "{f:?}");
    }
}
