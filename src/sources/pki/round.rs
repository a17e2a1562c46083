//! One round of PKI health: find the certificate and CRL files (from the
//! server configs and beside `index.txt`), read them the way the status
//! file is read, and let [`super::pki::PkiBook`] say what is due.
//!
//! Guarantees: each file costs only itself (a file that is missing,
//! unreadable, huge or not what it should be is left out of the round and
//! its warnings kept as they were); a bad file is warned about once per
//! version (size and mtime), a missing or unreadable one once while it
//! lasts; the state is written only when it changed, after the events.

use std::collections::{BTreeSet, HashMap};

use super::{self as pki, Holds, Item, ItemKind, Place, Reading, Role, Seen, Watched};
use crate::sources::SourceSettings;
use crate::sources::{Error, Got, Sources};

/// Whether there is anything to watch: an index or a server config.
pub fn enabled(settings: &SourceSettings) -> bool {
    settings.sources.easyrsa_index.is_some() || !settings.server_confs.is_empty()
}

/// Everything to watch: each config's files, then the PKI's own `ca.crt`
/// and `crl.pem` unless a config names the same file.
pub fn watched(settings: &SourceSettings) -> Vec<Watched> {
    let mut out = Vec::new();
    for conf in &settings.server_confs {
        // Through trusted directories only, like the status file.
        let read = || crate::fsutil::read_beneath(conf, 1 << 20, &crate::fsutil::Owners::anyone());
        if let Ok(bytes) = crate::privilege::for_sources(read) {
            out.extend(pki::from_conf(conf, &String::from_utf8_lossy(&bytes)));
        }
        // (A config that cannot be read is reported by the status round.)
    }
    if let Some(index) = &settings.sources.easyrsa_index {
        for w in pki::from_index(index) {
            if !out.iter().any(|o| o.label == w.label) {
                out.push(w);
            }
        }
    }
    out
}

/// Whether a file that would not parse is news at this version (size,
/// mtime): the first time, and again only once it changed.
fn news(bad: &mut HashMap<String, (usize, Option<i64>)>, label: &str, version: (usize, Option<i64>)) -> bool {
    bad.insert(label.to_string(), version) != Some(version)
}

impl Sources<'_> {
    /// Reads every watched file and writes the warnings due at `now`.
    /// Returns what stops the warnings altogether (the spool or the state
    /// not writable); a file that cannot be read is logged here instead.
    pub(in crate::sources) fn pki_round(&mut self, now: i64) -> Vec<Error> {
        let watched = watched(self.settings);
        let mut errors = Vec::new();
        let mut readings: Vec<(&Watched, Reading)> = Vec::new();
        let mut read_ok = BTreeSet::new();
        for w in &watched {
            let key = format!("pki {}", w.label);
            let (bytes, mtime) = match &w.place {
                Place::CrlDir(_) => continue,
                Place::Inline(text) => (text.clone().into_bytes(), None),
                Place::File(path) => {
                    let read = match w.holds {
                        Holds::Crl => crate::sources::read_stable_head(path, &self.source_owners, pki::PKI_CRL_HEAD),
                        Holds::Certs(_) => {
                            crate::sources::read_stable_capped(path, &self.source_owners, pki::PKI_READ_CAP)
                        }
                    };
                    match read {
                        Ok(Got::Data(bytes, mtime)) => (bytes, Some(mtime)),
                        Ok(Got::Skip(why)) if w.optional && why == "not found" => {
                            read_ok.insert(w.label.clone());
                            continue;
                        }
                        Ok(Got::Skip(why)) => {
                            self.noise.warn(&key, format!("{}: {why}; its expiry is not checked", w.label));
                            continue;
                        }
                        Err(e) => {
                            // Logged here (once while it lasts), not returned:
                            // it costs only this file.
                            self.noise.warn(&key, format!("{e}; its expiry is not checked"));
                            continue;
                        }
                    }
                }
            };
            self.noise.over(&key);
            match pki::parse(w.holds, &bytes) {
                Ok(reading) => {
                    if self.pki_bad.remove(&w.label).is_some() {
                        log::info!("resolved: {} reads again", w.label);
                    }
                    read_ok.insert(w.label.clone());
                    readings.push((w, reading));
                }
                Err(why) => {
                    let msg = format!("{}: {why}; its expiry is not checked", w.label);
                    if news(&mut self.pki_bad, &w.label, (bytes.len(), mtime)) {
                        log::warn!("{}", crate::fsutil::printable(&msg));
                    } else {
                        log::debug!("{} (still)", crate::fsutil::printable(&msg));
                    }
                }
            }
        }
        let mut items: Vec<Item<'_>> = Vec::new();
        let mut seen = Vec::new();
        for (w, reading) in &readings {
            match (w.holds, reading) {
                (Holds::Certs(role), Reading::Certs(certs)) => {
                    for c in certs {
                        items.push(Item { source: w, what: ItemKind::Cert(role, c) });
                    }
                    let expires = pki::file_expiry(role, certs);
                    seen.push(Seen {
                        what: role.as_str().into(),
                        label: w.label.clone(),
                        instance: w.instance.clone(),
                        expires,
                    });
                }
                (Holds::Crl, Reading::Crl(crl)) => {
                    items.push(Item { source: w, what: ItemKind::Crl(crl) });
                    seen.push(Seen {
                        what: "crl".into(),
                        label: w.label.clone(),
                        instance: w.instance.clone(),
                        expires: crl.next_update,
                    });
                }
                _ => {}
            }
        }
        // Client certificates from the index; the server's and the CA's
        // own serials are reported from their files, with their role.
        let index_source = self.settings.sources.easyrsa_index.as_ref().map(|index| Watched {
            holds: Holds::Certs(Role::Client),
            place: Place::File(index.clone()),
            label: index.display().to_string(),
            instance: None,
            optional: false,
        });
        let from_files: BTreeSet<&str> = items
            .iter()
            .filter_map(|i| match i.what {
                ItemKind::Cert(_, c) => Some(c.serial_hex.as_str()),
                ItemKind::Crl(_) => None,
            })
            .collect();
        let clients: Vec<&crate::sources::x509::CertInfo> =
            self.index_valid.iter().filter(|c| !from_files.contains(c.serial_hex.as_str())).collect();
        if let Some(source) = &index_source {
            if self.certs.is_some() {
                read_ok.insert(source.label.clone());
            }
            for c in &clients {
                items.push(Item { source, what: ItemKind::Cert(Role::Client, c) });
            }
        }
        // What was said about a watched file that could not be read is
        // kept; about anything no longer watched, forgotten.
        let unread: BTreeSet<String> = watched
            .iter()
            .chain(&index_source)
            .map(|w| w.label.clone())
            .filter(|label| !read_ok.contains(label))
            .collect();
        let before = self.pki.clone();
        let result = self.pki.judge(&items, &unread, &self.settings.sources.expiry_warn_days, &self.sink, now);
        self.pki.seen = seen;
        self.pki.clients = clients.iter().map(|c| c.not_after).collect();
        let state = self.settings.spool.spool_dir.join(pki::PKI_STATE);
        if self.pki != before
            && let Err(e) = crate::sources::save_state(&state, &self.pki)
        {
            errors.push(e);
        }
        match result {
            Ok(done) if done.spool_full => log::warn!("spool full; remaining PKI warnings wait for the next round"),
            Ok(done) if done.written > 0 => log::info!("PKI health: {} events written", done.written),
            Ok(_) => {}
            Err(source) => errors.push(Error::Spool { file: state, source }),
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One warning per version of a bad file: again when it changes, and
    /// again if it turns bad after having been read (the caller forgets it).
    #[test]
    fn a_bad_file_is_news_once_per_version() {
        let mut bad = HashMap::new();
        assert!(news(&mut bad, "/pki/ca.crt", (10, Some(1))));
        assert!(!news(&mut bad, "/pki/ca.crt", (10, Some(1))));
        assert!(news(&mut bad, "/pki/crl.pem", (10, Some(1))));
        assert!(news(&mut bad, "/pki/ca.crt", (11, Some(2))));
        assert!(!news(&mut bad, "/pki/ca.crt", (11, Some(2))));
        bad.remove("/pki/ca.crt");
        assert!(news(&mut bad, "/pki/ca.crt", (11, Some(2))));
    }
}
