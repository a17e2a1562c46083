//! The settings read the hooks' way, for the hooks and for whoever must
//! see what the hooks see (`check`, `uninstall` with a broken file): the
//! settings file if readable, else its world-readable companion, line by
//! line, keeping every good line. A bad value costs that value, warned
//! about, never the whole file, and never stops the reader.

use std::path::{Path, PathBuf};

use super::{ConfigError, Settings};

/// The settings a hook needs, read the hook's way: from the settings file
/// if this user may read it, else from its world-readable companion (the
/// installer writes both; hooks as `nobody` cannot read the secrets). A bad
/// value never stops a hook: it warns and uses the default. An unreadable
/// file with no companion is warned about, never silently replaced.
pub fn hook_settings(path: &Path, warn: &mut dyn FnMut(&str)) -> Settings {
    let companion = super::hook_companion(path);
    let text = match std::fs::read(path) {
        Ok(bytes) => Some((path.to_path_buf(), bytes)),
        Err(e) => match std::fs::read(&companion) {
            Ok(bytes) => Some((companion.clone(), bytes)),
            Err(_) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => {
                warn(&format!(
                    "cannot read {} ({e}) and no readable {}; using defaults (spool {})",
                    path.display(),
                    companion.display(),
                    super::DEFAULT_SPOOL_DIR
                ));
                None
            }
        },
    };
    let Some((source, bytes)) = text else { return Settings::defaults(path) };
    lenient(&source, &String::from_utf8_lossy(&bytes), warn)
}

/// Parses settings line by line, keeping every good line: one bad value
/// costs that value (warned about), not the whole file.
fn lenient(path: &Path, text: &str, warn: &mut dyn FnMut(&str)) -> Settings {
    let mut good = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        match super::parse(line) {
            Ok(mut entries) => {
                for e in &mut entries {
                    e.line = idx + 1;
                }
                good.extend(entries);
            }
            Err(e) => warn(&format!("{}:{}: {}; line ignored", path.display(), idx + 1, e.what)),
        }
    }
    loop {
        match Settings::from_entries(path, &good) {
            Ok(s) => return s,
            Err(ConfigError::Value { line, key, what, .. }) => {
                warn(&format!("{}:{line}: {key}: {what}; using the default", path.display()));
                let before = good.len();
                good.retain(|e| e.line != line);
                if good.len() == before {
                    return Settings::defaults(path);
                }
            }
            Err(e) => {
                warn(&format!("{e}; using defaults"));
                return Settings::defaults(path);
            }
        }
    }
}

/// The spool a hook would use, for `check` and tests; warnings go to
/// stderr as the hook's would.
pub fn spool_dir_for_hooks(path: &Path) -> PathBuf {
    hook_settings(path, &mut say).spool.spool_dir
}

/// One line on stderr, prefixed so it is findable in OpenVPN's log: the
/// hooks' voice, and this reader's for whoever uses it. Errors writing it
/// (stderr closed) are ignored: a hook never fails for logging.
pub fn say(msg: &str) {
    let line = format!("openvpn-telemetry: {}\n", msg.replace('\n', " "));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}
