//! How the sources read the files others write (OpenVPN's status file,
//! Easy-RSA's index, certificates and CRLs) and keep their own state.
//!
//! Guarantees: every read goes through [`crate::fsutil::open_beneath`]
//! inside one [`crate::privilege::for_sources`] (no link on the path, only
//! directories only root can change, never a FIFO or a file the hooks'
//! user owns), is capped, and is checked for a rewrite while it ran; state
//! files are the agent's own (0600, written atomically and durably), and a
//! damaged one costs a repeat, never a stop.

use std::io::{self, Read as _};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, READ_CAP};

/// Opens `path` and reads a byte the way the sources do (the same walk,
/// the same checks, the capability raised the same way): `check`'s probe,
/// run as the agent's user with the unit's capability.
pub fn probe(path: &Path, owners: &crate::fsutil::Owners) -> io::Result<()> {
    crate::privilege::for_sources(|| {
        let opened = crate::fsutil::open_beneath(path, owners)?;
        io::Read::by_ref(&mut &opened.file).take(1).read_to_end(&mut Vec::new()).map(|_| ())
    })
}

/// What [`read_stable`] got.
pub(super) enum Got {
    /// The bytes and the mtime (unix seconds).
    Data(Vec<u8>, i64),
    /// Nothing this round, and why.
    Skip(String),
}

/// Reads a file OpenVPN or Easy-RSA may be rewriting: [`Got::Skip`] when
/// it is missing, over [`READ_CAP`] or changed while being read (after one
/// retry); `Err` when it cannot be read at all (permissions, or refused).
///
/// The agent may hold `CAP_DAC_READ_SEARCH` for these files, and needs it
/// for every step through a 0710 `/run/openvpn-server` or a 0700 `pki/`:
/// the walk, the open, the read and the second look all run inside one
/// [`crate::privilege::for_sources`], on this thread, through
/// [`crate::fsutil::open_beneath`] (no link anywhere on the path, only
/// directories only root can change, never a FIFO, a second name or a file
/// the hooks' user owns). Nothing else happens while it is raised.
pub(super) fn read_stable(path: &Path, owners: &crate::fsutil::Owners) -> Result<Got, Error> {
    read_stable_capped(path, owners, READ_CAP)
}

/// [`read_stable`] with a cap of its own (certificates are small).
pub(super) fn read_stable_capped(path: &Path, owners: &crate::fsutil::Owners, cap: u64) -> Result<Got, Error> {
    read_stable_upto(path, owners, cap, false)
}

/// [`read_stable`] of the start of a file of any size: at most `head` + 1
/// bytes, so more than `head` says the file goes on (a CRL, whose expiry
/// is at its start).
pub(super) fn read_stable_head(path: &Path, owners: &crate::fsutil::Owners, head: u64) -> Result<Got, Error> {
    read_stable_upto(path, owners, head, true)
}

pub(super) fn read_stable_upto(
    path: &Path,
    owners: &crate::fsutil::Owners,
    cap: u64,
    head: bool,
) -> Result<Got, Error> {
    let err = |source: io::Error| Error::Read { path: path.to_path_buf(), source };
    for attempt in 0..2 {
        let read = || -> io::Result<Option<(Vec<u8>, crate::fsutil::Stamp, crate::fsutil::Stamp)>> {
            let opened = crate::fsutil::open_beneath(path, owners)?;
            let before = crate::fsutil::Stamp::of(&opened.file.metadata()?);
            if before.size > cap && !head {
                return Ok(None);
            }
            let mut bytes = Vec::with_capacity(before.size.min(cap + 1) as usize);
            io::Read::by_ref(&mut &opened.file).take(cap + 1).read_to_end(&mut bytes)?;
            let after = opened.restat()?;
            Ok(Some((bytes, before, after)))
        };
        let (bytes, before, after) = match crate::privilege::for_sources(read) {
            Ok(Some(got)) => got,
            Ok(None) => return Ok(Got::Skip(format!("over the {cap}-byte cap"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Got::Skip("not found".into())),
            Err(e) => return Err(err(e)),
        };
        if before == after && bytes.len() as u64 == after.size.min(if head { cap + 1 } else { u64::MAX }) {
            return Ok(Got::Data(bytes, after.mtime));
        }
        if attempt == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(Got::Skip("changed while being read".into()))
}

/// Reads a state file; `None` when there is none (first run). A damaged
/// one, or one the agent did not write itself, is logged and treated as
/// absent: at worst events are repeated, which the server's dedup absorbs.
pub(super) fn load_state<T: DeserializeOwned>(path: &Path) -> Option<T> {
    crate::fsutil::load_json(path, READ_CAP, &crate::fsutil::Owners::me())
        .map_err(|e| log::warn!("{}; starting afresh", crate::fsutil::printable(&e.to_string())))
        .ok()
        .flatten()
}

/// Writes a state file atomically and durably, 0600 for the agent alone
/// ([`crate::fsutil::replace_file`]).
pub(super) fn save_state<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    crate::fsutil::save_json(path, value).map_err(|source| Error::State { path: path.to_path_buf(), source })
}
