//! Certificates and CRLs as the PKI files hold them, read with RustCrypto's
//! `x509-cert` (strict DER, no DER reader of our own): PEM (any number of
//! blocks, text around them ignored, as Easy-RSA's `issued/*.crt` have a
//! text dump before the block) or a single DER structure.
//!
//! Guarantees: nothing here panics on any input; a file either reads as a
//! whole (every PEM block of the wanted kind parses) or is an error that
//! says what was wrong, so a half-read chain never counts as the chain.
//! The one exception is a CRL too large to read whole ([`crl_head`]): the
//! header of its start is decoded (with the same crates), in bounded work
//! whatever its size.
//! Times are UTCTime or GeneralizedTime (after 2049) alike, as unix seconds.

use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode as _, pem};
use x509_cert::name::Name;
use x509_cert::time::Time;

/// What a certificate says that the warnings need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// OpenSSL's one-line form, as `index.txt` writes it (`/CN=server`).
    pub subject: String,
    /// The last CN, as OpenVPN gives it to scripts.
    pub common_name: String,
    /// Upper-case hex without separators, as `index.txt` writes it.
    pub serial_hex: String,
    /// `notAfter`, unix seconds.
    pub not_after: i64,
}

/// What a CRL says that the warnings need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// OpenSSL's one-line form of the issuer.
    pub issuer: String,
    /// `nextUpdate`, unix seconds; `None`: the CRL never expires.
    pub next_update: Option<i64>,
}

const CERT_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];
const CRL_LABELS: [&str; 1] = ["X509 CRL"];

/// Every certificate of a file (a CA file may hold a chain), in order.
pub fn certificates(bytes: &[u8]) -> Result<Vec<CertInfo>, String> {
    let ders = der_blocks(bytes, &CERT_LABELS, "certificate")?;
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            let cert = Certificate::from_der(der).map_err(|e| format!("not a certificate (block {}: {e})", i + 1))?;
            let tbs = cert.tbs_certificate();
            Ok(CertInfo {
                subject: one_line(tbs.subject()),
                common_name: common_name(tbs.subject()),
                serial_hex: hex_upper(tbs.serial_number().as_bytes()),
                not_after: unix(tbs.validity().not_after),
            })
        })
        .collect()
}

/// The CRL of a file (PEM or DER).
pub fn crl(bytes: &[u8]) -> Result<CrlInfo, String> {
    let ders = der_blocks(bytes, &CRL_LABELS, "CRL")?;
    let [der] = ders.as_slice() else {
        return Err(format!("{} CRLs in one file; OpenVPN reads one", ders.len()));
    };
    let list: CertificateList = CertificateList::from_der(der).map_err(|e| format!("not a CRL ({e})"))?;
    let tbs = &list.tbs_cert_list;
    Ok(CrlInfo { issuer: one_line(&tbs.issuer), next_update: tbs.next_update.map(unix) })
}

/// How much of a CRL's DER [`crl_head`] decodes: the TBSCertList's
/// version, algorithm, issuer, thisUpdate and nextUpdate come before the
/// revoked list and take a few hundred bytes (an issuer is rarely over 1 KiB).
pub const CRL_HEAD_DER: usize = 64 * 1024;

/// The issuer and nextUpdate of a CRL of which `bytes` is only the start
/// (a CRL with hundreds of thousands of revocations): the first
/// [`CRL_HEAD_DER`] bytes of DER are decoded, from a DER file or from the
/// first whole base64 lines of the first `X509 CRL` PEM block, so any size
/// costs the same. The revoked list and the signature are not looked at
/// (OpenVPN's own check of them is what matters; this only warns of the
/// end).
pub fn crl_head(bytes: &[u8]) -> Result<CrlInfo, String> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let der = if let Some(start) = bytes.windows(BEGIN.len()).position(|w| w == BEGIN) {
        pem_head(&bytes[start..])?
    } else if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("no CRL in it (PEM without a {} block)", CRL_LABELS[0]));
    } else if bytes.first() == Some(&0x30) {
        bytes[..bytes.len().min(CRL_HEAD_DER)].to_vec()
    } else {
        return Err("not a CRL (neither PEM nor DER)".into());
    };
    tbs_head(&der).map_err(|e| format!("not a CRL ({e})"))
}

/// The first [`CRL_HEAD_DER`] bytes (or fewer, if the block ends first) of
/// a PEM block starting at `block`, through the PEM crate: whole lines only
/// (a prefix of a file may end mid-line), closed with an END line.
fn pem_head(block: &[u8]) -> Result<Vec<u8>, String> {
    let mut lines = block.split(|&b| b == b'\n');
    let begin = lines.next().unwrap_or_default();
    let mut text = begin.strip_suffix(b"\r").unwrap_or(begin).to_vec();
    text.push(b'\n');
    let mut decoded = 0;
    // A line without its newline is where the prefix was cut: left out.
    let mut whole = lines.clone().count();
    if !block.ends_with(b"\n") {
        whole = whole.saturating_sub(1);
    }
    for line in lines.take(whole) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"-----END ") || decoded >= CRL_HEAD_DER {
            break;
        }
        text.extend_from_slice(line);
        text.push(b'\n');
        decoded += line.len() / 4 * 3;
    }
    text.extend_from_slice(b"-----END X509 CRL-----\n");
    let (_, der) = pem::decode_vec(&text).map_err(|e| format!("bad PEM in `X509 CRL` block ({e})"))?;
    Ok(der)
}

/// Issuer and nextUpdate of the TBSCertList at the start of `der`, a
/// prefix of a CertificateList, with the DER crate's reader: the outer
/// lengths are read but not required to fit in `der`.
fn tbs_head(der: &[u8]) -> Result<CrlInfo, x509_cert::der::Error> {
    use x509_cert::der::asn1::AnyRef;
    use x509_cert::der::{Decode as _, Header, SliceReader, Tag};
    let mut r = SliceReader::new(der)?;
    for _ in 0..2 {
        // CertificateList, then its TBSCertList.
        let h = Header::decode(&mut r)?;
        if h.tag() != Tag::Sequence {
            return Err(h.tag().unexpected_error(Some(Tag::Sequence)).into());
        }
    }
    if Tag::peek(&r)? == Tag::Integer {
        AnyRef::decode(&mut r)?; // version (v2)
    }
    AnyRef::decode(&mut r)?; // signature algorithm
    let issuer = Name::decode(&mut r)?;
    Time::decode(&mut r)?; // thisUpdate
    let next_update = Option::<Time>::decode(&mut r)?;
    Ok(CrlInfo { issuer: one_line(&issuer), next_update: next_update.map(unix) })
}

/// The DER structures of a file: each PEM block with one of `labels`
/// (other blocks, such as a key, are someone else's business), or the
/// whole file when it holds no PEM at all.
fn der_blocks(bytes: &[u8], labels: &[&str], what: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !bytes.windows(BEGIN.len()).any(|w| w == BEGIN) {
        if bytes.first() != Some(&0x30) {
            return Err(format!("not a {what} (neither PEM nor DER)"));
        }
        return Ok(vec![bytes.to_vec()]);
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(start) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        let block = &rest[start..];
        let label_end = block[BEGIN.len()..].iter().position(|&b| b == b'-' || b == b'\n').unwrap_or(0);
        let label = String::from_utf8_lossy(&block[BEGIN.len()..BEGIN.len() + label_end]).into_owned();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.windows(end_marker.len()).position(|w| w == end_marker.as_bytes()) else {
            return Err(format!("truncated: no `{end_marker}`"));
        };
        let pem_block = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        if !labels.contains(&label.as_str()) {
            continue;
        }
        // The PEM reader wants the block on its own, ending in a newline.
        let mut text = pem_block.to_vec();
        text.push(b'\n');
        let (_, der) = pem::decode_vec(&text).map_err(|e| format!("bad PEM in `{label}` block ({e})"))?;
        out.push(der);
    }
    if out.is_empty() {
        return Err(format!("no {what} in it (PEM without a {} block)", labels[0]));
    }
    Ok(out)
}

/// Unix seconds of an X.509 time (both encodings; UTCTime is 1950–2049).
fn unix(t: Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn hex_upper(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    // DER adds a 00 byte before a serial whose top bit is set; OpenSSL's
    // index.txt does not write it.
    match hex.strip_prefix("00") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => hex,
    }
}

/// OpenSSL's short name for the attribute types Easy-RSA and OpenSSL
/// write; others as their dotted OID, as OpenSSL does.
fn short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        other => other,
    }
    .to_string()
}

/// A name as `X509_NAME_oneline` writes it (and so as `index.txt` has
/// it): `/KEY=value`, `+KEY=value` inside a multi-valued RDN, `/` and `+`
/// escaped, bytes outside ' '..'~' as `\xHH`; capped and cleaned.
fn one_line(name: &Name) -> String {
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        for (i, atv) in rdn.iter().enumerate() {
            out.push(if i == 0 { '/' } else { '+' });
            out.push_str(&short_name(&atv.oid.to_string()));
            out.push('=');
            for &b in atv.value.value() {
                match b {
                    b'/' | b'+' => {
                        out.push('\\');
                        out.push(char::from(b));
                    }
                    b' '..=b'~' => out.push(char::from(b)),
                    _ => out.push_str(&format!("\\x{b:02X}")),
                }
            }
        }
    }
    super::certs::clean(out.as_bytes())
}

/// The last CN's value as OpenVPN gives it to scripts; "" when none.
fn common_name(name: &Name) -> String {
    name.iter()
        .filter(|atv| atv.oid.to_string() == "2.5.4.3")
        .last()
        .map(|atv| super::certs::openvpn_name(atv.value.value()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_certificates() {
        assert!(certificates(b"").unwrap_err().contains("neither PEM nor DER"));
        assert!(certificates(b"hello\n").unwrap_err().contains("neither PEM nor DER"));
        assert!(certificates(&[0x30, 0x82, 0xff]).unwrap_err().contains("not a certificate"));
        let truncated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(certificates(truncated).unwrap_err().contains("truncated"));
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(certificates(bad).unwrap_err().contains("bad PEM"));
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(certificates(key_only).unwrap_err().contains("no certificate"));
        assert!(crl(key_only).unwrap_err().contains("no CRL"));
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real/pki");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    /// What OpenSSL itself reads from each file (tests/fixtures/make-pki.sh):
    /// `cert|crl, file, serial, unix time, subject or issuer`.
    fn expected() -> Vec<Vec<String>> {
        String::from_utf8(fixture("expected.txt"))
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Easy-RSA 3's and OpenSSL's own files read as OpenSSL reads them:
    /// serial, notAfter (UTCTime and, after 2049, GeneralizedTime) and
    /// subject; Easy-RSA's text dump before the PEM block is skipped.
    #[test]
    fn real_certificates_read_as_openssl_reads_them() {
        let want = expected();
        for row in want.iter().filter(|r| r[0] == "cert") {
            let certs = certificates(&fixture(&row[1])).unwrap();
            assert_eq!(certs.len(), 1, "{row:?}");
            let c = &certs[0];
            assert_eq!((c.serial_hex.as_str(), c.not_after.to_string().as_str()), (row[2].as_str(), row[3].as_str()));
            assert_eq!(c.subject, row[4], "{row:?}");
        }
        let long = &certificates(&fixture("long.crt")).unwrap()[0];
        assert!(long.not_after > 2_524_608_000, "after 2049: {long:?}");
        // The last CN, decoded, as OpenVPN gives it.
        assert_eq!(long.common_name, "Ops+Dev");
        // A CA file holding a chain: every certificate, in order.
        let chain = certificates(&fixture("chain.crt")).unwrap();
        let names: Vec<&str> = chain.iter().map(|c| c.common_name.as_str()).collect();
        assert_eq!(names, ["Fixture CA", "Ops+Dev"]);
        // Half a chain is no chain.
        let text = fixture("chain.crt");
        assert!(certificates(&text[..text.len() - 40]).unwrap_err().contains("truncated"));
    }

    /// The CRL in PEM and DER alike; one without nextUpdate never expires
    /// (the real CRL re-encoded without it: OpenSSL's `ca` always writes
    /// one, other CAs need not).
    #[test]
    fn real_crls_pem_der_and_without_next_update() {
        use x509_cert::der::Encode as _;
        let row = expected().into_iter().find(|r| r[0] == "crl").unwrap();
        let pem = crl(&fixture("crl.pem")).unwrap();
        assert_eq!((pem.issuer.as_str(), pem.next_update), (row[4].as_str(), Some(row[3].parse().unwrap())));
        assert_eq!(crl(&fixture("crl.der")).unwrap(), pem);
        let mut list: CertificateList = CertificateList::from_der(&fixture("crl.der")).unwrap();
        list.tbs_cert_list.next_update = None;
        let never = crl(&list.to_der().unwrap()).unwrap();
        assert_eq!(never, CrlInfo { issuer: pem.issuer.clone(), next_update: None });
        // A certificate is not a CRL, nor the other way round.
        assert!(crl(&fixture("ca.crt")).unwrap_err().contains("no CRL"));
        assert!(certificates(&fixture("crl.pem")).unwrap_err().contains("no certificate"));
        assert!(certificates(&fixture("crl.der")).unwrap_err().contains("not a certificate"));
    }

    /// Only the start of a CRL (as read of one too large to read whole):
    /// the same issuer and nextUpdate as the whole, from PEM cut mid-line
    /// and from DER cut anywhere after the header; less than the header is
    /// an error, not a guess.
    #[test]
    fn the_start_of_a_crl_is_enough() {
        let whole = crl(&fixture("crl.pem")).unwrap();
        let pem = fixture("crl.pem");
        assert_eq!(crl_head(&pem).unwrap(), whole);
        // The BEGIN line, three whole base64 lines (144 bytes of DER), and
        // part of a fourth.
        let cut = pem.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(3).unwrap().0 + 10;
        assert_eq!(crl_head(&pem[..cut]).unwrap(), whole);
        let der = fixture("crl.der");
        assert_eq!(crl_head(&der).unwrap(), whole);
        assert_eq!(crl_head(&der[..144]).unwrap(), whole);
        assert!(crl_head(&der[..40]).unwrap_err().starts_with("not a CRL"));
        // With text before the block, as some tools write.
        let text = [b"Certificate Revocation List (CRL):\n".as_slice(), &pem].concat();
        assert_eq!(crl_head(&text).unwrap(), whole);
        assert!(crl_head(&fixture("ca.crt")).unwrap_err().contains("no CRL"));
        assert!(crl_head(b"hello").unwrap_err().contains("neither PEM nor DER"));
        assert!(crl_head(&fixture("server.crt")).is_err());
    }

    #[test]
    fn serial_as_index_writes_it() {
        assert_eq!(hex_upper(&[0x00, 0x8c, 0x3a]), "8C3A");
        assert_eq!(hex_upper(&[0x0b]), "0B");
        assert_eq!(hex_upper(&[0x00]), "00");
    }
}
