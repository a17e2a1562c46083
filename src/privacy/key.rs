//! The pseudonym key and what is made with it: HMAC-SHA256 of a field's
//! name and value, written as `pn_` and 16 hex digits (a UUID for
//! `session_id`).
//!
//! Guarantees: the key is read only from a regular file that is root's,
//! with no access for others and no write for its group
//! ([`key_access`]); it never appears in `Debug` output, a log line or an
//! error; a pseudonym is made without a heap allocation.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;

use super::{DIGITS, KEY_BYTES, KEY_FILE_CAP, PREFIX, SEPARATOR};

/// What is wrong with who may read the key file, if anything: it must be
/// root's, with no access for others and no write for its group (0640
/// root:the agent's group, as `install` makes it), so neither the hooks'
/// user nor anyone else can compute pseudonyms (and so reverse them by
/// trying names) or change them. `agent_gid` is the only group besides
/// root's that may hold it.
pub fn key_access(meta: &std::fs::Metadata, agent_gid: Option<u32>) -> Result<(), String> {
    let mode = meta.mode() & 0o7777;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != 0 {
        return Err(format!("is owned by uid {}, not root", meta.uid()));
    }
    if mode & 0o027 != 0 {
        return Err(format!("has mode {mode:04o}: others may read it or its group may write it (0640 wanted)"));
    }
    if meta.gid() != 0 && Some(meta.gid()) != agent_gid && mode & 0o040 != 0 {
        return Err(format!("is readable by group {}, which is not the agent's", meta.gid()));
    }
    Ok(())
}

/// Why the key cannot be used; names the setting and the path, never the
/// key.
#[derive(Debug)]
pub enum KeyError {
    Read { path: PathBuf, source: std::io::Error },
    Short { path: PathBuf, len: usize },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Read { path, source } => write!(
                f,
                "PSEUDONYM_KEY_FILE={}: cannot read: {source} (needed for PSEUDONYMIZE, and for session_id whenever \
                 common_name, real_ip or real_port is not sent in clear; `openvpn-telemetry install` makes one, or \
                 copy the fleet's key there)",
                path.display()
            ),
            KeyError::Short { path, len } => write!(
                f,
                "PSEUDONYM_KEY_FILE={}: holds {len} bytes, a key needs at least {KEY_BYTES} (make one with \
                 `head -c {KEY_BYTES} /dev/urandom`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Read { source, .. } => Some(source),
            KeyError::Short { .. } => None,
        }
    }
}

/// The pseudonym key: the bytes of its file, whatever they are (32 random
/// bytes as `install` makes it, or hex text an operator made), at least
/// [`KEY_BYTES`].
#[derive(Clone)]
pub struct Key(hmac::Key);

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// Reads the key file, not following a symlink (root's file, the
    /// agent's to read).
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let err = |source| KeyError::Read { path: path.to_path_buf(), source };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(err(std::io::Error::other("not a regular file")));
        }
        let mut bytes = Vec::with_capacity(KEY_BYTES);
        file.take(KEY_FILE_CAP).read_to_end(&mut bytes).map_err(err)?;
        if bytes.len() < KEY_BYTES {
            return Err(KeyError::Short { path: path.to_path_buf(), len: bytes.len() });
        }
        Ok(Key::new(&bytes))
    }

    /// 32 fresh random bytes from the OS, for `install`.
    pub fn generate() -> Result<[u8; KEY_BYTES], String> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; KEY_BYTES];
        ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "the OS gave no random bytes".to_string())?;
        Ok(bytes)
    }

    fn tag(&self, field: &str, value: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(field.as_bytes());
        ctx.update(&[SEPARATOR]);
        ctx.update(value.as_bytes());
        ctx.sign()
    }

    /// `pn_` and 16 hex digits for `value` of `field`.
    #[cfg(test)]
    pub fn pseudonym(&self, field: &str, value: &str) -> String {
        self.made(field, value).as_str().to_owned()
    }

    /// A UUID (version 8, RFC 9562's custom one) from the HMAC of a raw
    /// `session_id`: still a UUID where a server keys sessions by one.
    #[cfg(test)]
    pub fn session_pseudonym(&self, raw: &str) -> String {
        self.made("session_id", raw).as_str().to_owned()
    }

    /// What `value` of `field` becomes, made without a heap allocation:
    /// `session_id` a UUID, any other field `pn_` and 16 hex digits.
    pub(super) fn made(&self, field: &str, value: &str) -> Pseudonym {
        let tag = self.tag(field, value);
        let mut p = Pseudonym { text: [0; 36], len: 0 };
        if field == "session_id" {
            let mut b = [0u8; 16];
            b.copy_from_slice(&tag.as_ref()[..16]);
            b[6] = (b[6] & 0x0f) | 0x80;
            b[8] = (b[8] & 0x3f) | 0x80;
            p.len = uuid::Uuid::from_bytes(b).hyphenated().encode_lower(&mut p.text).len();
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            p.text[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
            for (i, b) in tag.as_ref()[..DIGITS / 2].iter().enumerate() {
                p.text[PREFIX.len() + 2 * i] = HEX[usize::from(b >> 4)];
                p.text[PREFIX.len() + 2 * i + 1] = HEX[usize::from(b & 15)];
            }
            p.len = PREFIX.len() + DIGITS;
        }
        p
    }
}

/// A pseudonym's text held inline (ASCII, at most a UUID's 36 bytes), so
/// making and remembering one allocates nothing.
#[derive(Clone, Copy)]
pub(super) struct Pseudonym {
    text: [u8; 36],
    len: usize,
}

impl Pseudonym {
    pub(super) fn as_str(&self) -> &str {
        // Always ASCII (hex digits, `pn_`, hyphens): never the fallback.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or("")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}
