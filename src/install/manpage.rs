//! The man page in a `make install` layout: `install` writes the page the
//! binary carries (generated from `--help` and the settings table, see
//! src/cli/man.rs) to /usr/local/share/man/man8, where `man` looks for
//! /usr/local/sbin's programs, and `uninstall` removes it. The Debian
//! package ships the same file as /usr/share/man/man8/openvpn-telemetry.8.gz.

use std::fs;

use super::plan::{self, Action, Change, Owner};
use super::{Layout, Plan};
use crate::accounts::Accounts;

/// The page (roff), as committed in the repository.
pub const PAGE: &str = include_str!("../../assets/debian/openvpn-telemetry.8");
/// Where `install` puts it.
pub const PATH: &str = "/usr/local/share/man/man8/openvpn-telemetry.8";
const PAGE_NAME: &str = "openvpn-telemetry.8";

/// Plans the page (and its directory, when missing: an existing one is
/// left as it is).
pub fn plan_install(layout: &Layout, plan: &mut Plan, owner: Option<Owner>, accounts: &Accounts) {
    let path = layout.at(PATH);
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        plan.add(plan::dir(dir, 0o755, owner.clone(), accounts));
    }
    plan.add(plan::file(&path, PAGE.as_bytes().to_vec(), 0o644, owner, accounts, "man page"));
}

/// Plans the page's removal, and its directory's when nothing else is in
/// it (install makes man8, which a stock /usr/local/share/man lacks).
pub fn plan_remove(layout: &Layout, plan: &mut Plan) {
    let path = layout.at(PATH);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        let what = format!("remove {}", path.display());
        plan.changes.push(Change { action: Action::Remove(path.clone()), what });
        let Some(dir) = path.parent() else { return };
        let only_ours = fs::read_dir(dir).is_ok_and(|d| {
            d.map(|e| e.map(|e| e.file_name())).collect::<Result<Vec<_>, _>>().is_ok_and(|n| n == [PAGE_NAME])
        });
        if only_ours {
            let what = format!("remove {} (empty)", dir.display());
            plan.changes.push(Change { action: Action::RemoveEmptyDir(dir.to_path_buf()), what });
        }
    }
}
