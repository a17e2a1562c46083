//! Spool preparation: before the agent delivers anything, the spool must
//! be one it may deliver from, and it must be the only agent doing so.
//!
//! Guarantees:
//! - the spool, `pending/` and `failed/` are real directories of the
//!   agent's (or root's), sticky when others may write in them, `failed/`
//!   the agent's alone (0700); anything else is refused with what to run;
//! - one agent per spool (`agent.lock`, flock); a name the hooks' user
//!   planted there is set aside, never trusted or followed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Error, io_at};
use crate::config::Settings;
use crate::spool::AGENT_LOCK;

/// Makes sure the spool is one the agent may deliver from, creating
/// `pending/` and `failed/` when missing (the installer creates them; this
/// covers hand-made and test spools). The spool and `pending/` must be real
/// directories of the agent's (or root's), and sticky when others may write
/// in them, so the hooks' user can add files but never rename or replace a
/// directory; `failed/` is the agent's alone. Anything else is refused,
/// with what to run, rather than delivered from.
pub(super) fn spool(s: &Settings) -> Result<(), Error> {
    let spool = &s.spool.spool_dir;
    let meta = match std::fs::symlink_metadata(spool) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SpoolRefused {
                dir: spool.clone(),
                why: format!("SPOOL_DIR in {} does not exist (run 'openvpn-telemetry install')", s.path.display()),
            });
        }
        Err(e) => return Err(io_at(spool)(e)),
    };
    check_spool_dir(spool, &meta, false)?;
    for sub in [crate::spool::PENDING, crate::spool::FAILED] {
        let dir = spool.join(sub);
        let failed = sub == crate::spool::FAILED;
        if std::fs::symlink_metadata(&dir).is_err() {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            let mode = if failed { crate::spool::FAILED_MODE } else { meta.mode() & 0o7777 };
            std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io_at(&dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(io_at(&dir))?;
        }
        let m = std::fs::symlink_metadata(&dir).map_err(io_at(&dir))?;
        check_spool_dir(&dir, &m, failed)?;
    }
    Ok(())
}

fn check_spool_dir(dir: &Path, m: &std::fs::Metadata, agent_only: bool) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::SpoolRefused { dir: dir.to_path_buf(), why });
    let fix = "run 'sudo openvpn-telemetry install', which gives the spool to the agent";
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_dir() {
        return refuse(format!("not a directory (a symlink?); refusing to deliver from it; {fix}"));
    }
    if m.uid() != me && m.uid() != 0 {
        return refuse(format!(
            "owned by uid {}, not by the agent (uid {me}): whoever owns it can swap its directories; {fix}",
            m.uid()
        ));
    }
    let mode = m.mode() & 0o7777;
    if agent_only && mode & 0o077 != 0 {
        return refuse(format!("mode {mode:04o}, but failed/ is the agent's alone (0700); {fix}"));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return refuse(format!("mode {mode:04o} lets others rename what is in it (no sticky bit); {fix}"));
    }
    Ok(())
}

/// One agent per spool: two would send every chunk twice and fight over
/// the state file. The lock lives as long as the process.
pub(super) fn lock(s: &Settings) -> Result<std::fs::File, Error> {
    let path = s.spool.spool_dir.join(AGENT_LOCK);
    // A name the hooks' user planted before the agent's first start (a
    // FIFO, a link, its own file that it keeps locked) is replaced: the
    // agent owns the directory. An agent's lock, even another user's (root
    // running `agent --once`), is respected.
    // Anything at the name that cannot be opened as a file (a directory,
    // a FIFO, a link, mode 000) or belongs to neither the agent nor root is
    // set aside into failed/, whatever the error: the agent must start.
    let me = nix::unistd::geteuid().as_raw();
    let planted = match crate::spool::open_create(&path, false) {
        Ok(f) => f.metadata().map_or(true, |m| m.uid() != me && m.uid() != 0),
        Err(_) => std::fs::symlink_metadata(&path).is_ok(),
    };
    if planted {
        let why = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not the agent's lock file", path.display()),
        );
        crate::spool::Spool::new(&s.spool.spool_dir).set_aside(AGENT_LOCK, &why);
    }
    let mut file = crate::spool::open_create(&path, false).map_err(io_at(&path))?;
    // The agent's own files are 0600 (docs/security.md, "Files, owners and modes").
    if file.metadata().is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o7777 != 0o600) {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = std::io::Read::read_to_string(&mut file, &mut pid);
        return Err(Error::AlreadyRunning { pid: pid.trim().to_string(), spool: s.spool.spool_dir.clone() });
    }
    let _ = file.set_len(0);
    let _ = std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes());
    Ok(file)
}
