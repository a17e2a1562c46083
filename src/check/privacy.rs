//! `check`'s word on personal data: which fields leave the host in clear,
//! cut to their network, pseudonymized or dropped, and whether the
//! pseudonym key is there and readable by root and the agent alone.

use std::fs;

use super::{REINSTALL, Report};
use crate::accounts::{AGENT_USER, Accounts};
use crate::config::Settings;
use crate::install::Layout;
use crate::privacy::{Key, key_access};

pub(super) fn check_privacy(r: &mut Report, layout: &Layout, s: &Settings, accounts: &Accounts) {
    r.ok(format!("personal fields leaving the host: {}", s.privacy.outline()));
    let path = layout.at(&s.privacy.key_file);
    let shown = s.privacy.key_file.display();
    let fix = format!("{REINSTALL} (it makes the key when missing and sets 0640 root:{AGENT_USER})");
    match fs::symlink_metadata(&path) {
        Err(e) if s.privacy.needs_key() => {
            r.fail(format!("PSEUDONYM_KEY_FILE={shown}: {e}; the agent will not start without it"), fix)
        }
        // Not needed yet: its absence is only worth a word.
        Err(_) => r.warn(format!("PSEUDONYM_KEY_FILE={shown} does not exist (needed once PSEUDONYMIZE is set)")),
        Ok(m) => match key_access(&m, accounts.gid(AGENT_USER)) {
            Err(why) => r.fail(
                format!("PSEUDONYM_KEY_FILE={shown} {why}: whoever reads it can compute pseudonyms and try names"),
                fix,
            ),
            Ok(()) => match Key::load(&path) {
                Err(e) if s.privacy.needs_key() => r.fail(e.to_string(), fix),
                Err(e) => r.warn(e.to_string()),
                Ok(_) => r.ok(format!("PSEUDONYM_KEY_FILE={shown} is root's and the agent's only")),
            },
        },
    }
}
