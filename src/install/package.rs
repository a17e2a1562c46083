//! The Debian package's side of `install` and `uninstall`.
//!
//! One installer, two layouts. [`Mode::Local`] is `make install` and the
//! scp'd binary: the program copies itself to /usr/local/sbin, links its
//! names there and writes the unit to /etc/systemd/system. [`Mode::Package`]
//! is the Debian package: dpkg owns /usr/sbin/openvpn-telemetry, its other
//! /usr/sbin names and the unit in /usr/lib/systemd/system, and
//! dh_installsystemd's snippets enable, start, restart and stop it; the
//! maintainer scripts run `install --package` and `uninstall --package` for
//! everything else (user, settings, spool, hook links, conf lines), so both
//! layouts share every other line of the installer.
//!
//! What package mode does besides:
//! - it takes over from an earlier `make install`: that unit in
//!   /etc/systemd/system would shadow the package's (and keep running the
//!   old binary), and the copy in /usr/local/sbin comes first in root's
//!   `PATH`. Both go (after `systemctl disable --now`), the links there too,
//!   but only what is recognisably ours; anything else is named in a note.
//! - what the settings change in the unit (script group, spool, the read
//!   capability for the sources) goes into a drop-in ([`unit::dropin`]).
//! - `uninstall --package` (prerm, `remove`) keeps a copy of the binary in
//!   [`PURGE_DIR`] for `apt purge`, whose postrm runs after dpkg has
//!   deleted /usr/sbin/openvpn-telemetry; the purge deletes that copy too.
//! - the two layouts never mix: a `make install` while the package is
//!   installed is refused (its copy and unit would shadow the package's).

use std::fs;
use std::path::Path;

use super::plan::{self, Action, Change, Owner};
use super::{Error, LINKS, Layout, Plan, systemctl, unit};
use crate::accounts::Accounts;

/// Where `uninstall --package` keeps the binary for `apt purge`.
pub const PURGE_DIR: &str = "/var/lib/openvpn-telemetry";
pub const PURGE_HELPER: &str = "/var/lib/openvpn-telemetry/openvpn-telemetry";

/// Who owns the binary and the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `make install`, or the binary run from anywhere else.
    Local,
    /// The Debian package: `--package`, or run as /usr/sbin/openvpn-telemetry.
    Package,
}

impl Mode {
    /// `--package`, or this program is the package's binary (never in a
    /// staging root: there the tests' binary runs).
    pub fn detect(flag: bool, layout: &Layout) -> Mode {
        if flag || (!layout.staged() && running_packaged()) { Mode::Package } else { Mode::Local }
    }
    /// The binary the hook links point to.
    pub fn bin(self) -> &'static str {
        match self {
            Mode::Local => unit::BIN,
            Mode::Package => unit::PACKAGE_BIN,
        }
    }
    /// The links this mode's install makes: all of [`LINKS`] for
    /// `make install`; for the package only those outside /usr/local (the
    /// hooks OpenVPN's conf names), since dpkg ships the other names in
    /// /usr/sbin and Debian policy (9.1.2) keeps packages out of /usr/local.
    pub fn links(self) -> Vec<&'static str> {
        LINKS.iter().copied().filter(|l| self == Mode::Local || !in_usr_local(l)).collect()
    }
}

/// Whether this program is /usr/sbin/openvpn-telemetry.
pub fn running_packaged() -> bool {
    std::env::current_exe().is_ok_and(|e| e == Path::new(unit::PACKAGE_BIN))
}

fn in_usr_local(path: &str) -> bool {
    path.starts_with("/usr/local/")
}

/// Whose layout is installed: the package's when dpkg has put its binary
/// in place (`install` itself never writes it), else `make install`'s.
pub fn installed(layout: &Layout) -> Mode {
    if fs::symlink_metadata(layout.at(unit::PACKAGE_BIN)).is_ok() { Mode::Package } else { Mode::Local }
}

/// Refuses a `make install` layout over an installed package.
pub fn refuse_local_over_package(layout: &Layout, verb: &str) -> Result<(), Error> {
    if installed(layout) == Mode::Local {
        return Ok(());
    }
    let bin = layout.at(unit::PACKAGE_BIN);
    Err(Error::Refused(format!(
        "the Debian package openvpn-telemetry is installed ({}): a `make install` copy in /usr/local/sbin and \
         /etc/systemd/system would shadow its binary and unit, so {verb} changed nothing. Upgrade the package \
         instead, run /usr/sbin/openvpn-telemetry {verb}, or first `apt remove openvpn-telemetry` (keeps the \
         spool, its pending events and the settings)",
        bin.display()
    )))
}

/// Whether the unit file at `path` is one this program wrote (any version,
/// or the seed's, whose ExecStart is in /usr/local/sbin too).
pub fn unit_is_ours(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else { return false };
    text.starts_with(unit::MARKER)
        || text.lines().any(|l| l.trim_start().starts_with("ExecStart=/usr/local/sbin/openvpn-telemetry"))
}

/// Whether `path` is a copy of this program (any version): a regular file
/// that carries the unit template, which every build embeds.
pub fn binary_is_ours(path: &Path) -> bool {
    let Ok(m) = fs::symlink_metadata(path) else { return false };
    if !m.is_file() {
        return false;
    }
    let needle = unit::MARKER.as_bytes();
    fs::read(path).is_ok_and(|data| data.windows(needle.len()).any(|w| w == needle))
}

/// A `systemctl mask` of the unit (deb-systemd-helper masks it on
/// `apt remove`, and unmasks it again on install or purge).
fn is_mask(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// Plans taking an earlier `make install` apart: its unit (disabled and
/// stopped first, so the package's unit takes the name), the links in
/// /usr/local/sbin and the binary they point to. With `only_ours`, what
/// this program did not write is left alone and named in a note. Returns
/// whether the unit went (systemd must reload).
pub(crate) fn remove_local_copy(layout: &Layout, plan: &mut Plan, only_ours: bool) -> bool {
    let running = layout.systemd_running();
    let unit_path = layout.at(unit::UNIT_PATH);
    let mut reload = false;
    if fs::symlink_metadata(&unit_path).is_ok() && !is_mask(&unit_path) {
        if !only_ours || unit_is_ours(&unit_path) {
            if running {
                let argv = systemctl(&["disable", "--now", unit::UNIT_NAME]);
                let what = format!("systemctl disable --now {}", unit::UNIT_NAME);
                plan.changes.push(Change { action: Action::Run(argv), what });
            }
            let what = format!("remove {}", unit_path.display());
            plan.changes.push(Change { action: Action::Remove(unit_path), what });
            reload = true;
        } else {
            plan.notes.push(format!(
                "{} is not one openvpn-telemetry wrote, and it overrides the package's {}: left alone; \
                 remove it unless you mean it",
                unit_path.display(),
                unit::PACKAGED_PATH
            ));
        }
    }
    for l in LINKS.iter().filter(|l| in_usr_local(l)) {
        let path = layout.at(l);
        match fs::read_link(&path) {
            Ok(t) if t == Path::new(unit::BIN) => plan
                .changes
                .push(Change { action: Action::Remove(path.clone()), what: format!("remove {}", path.display()) }),
            _ if fs::symlink_metadata(&path).is_ok() && only_ours => plan.notes.push(format!(
                "{} is not a link to {}: left alone (it comes before /usr/sbin in root's PATH)",
                path.display(),
                unit::BIN
            )),
            _ => {}
        }
    }
    // make install's man page would shadow the package's (/usr/local first).
    super::manpage::plan_remove(layout, plan);
    let bin = layout.at(unit::BIN);
    if fs::symlink_metadata(&bin).is_ok() {
        if !only_ours || binary_is_ours(&bin) {
            plan.changes
                .push(Change { action: Action::Remove(bin.clone()), what: format!("remove {}", bin.display()) });
        } else {
            plan.notes.push(format!("{} is not openvpn-telemetry: left alone", bin.display()));
        }
    }
    reload
}

/// Plans the package's drop-in: written when the settings change the unit,
/// removed when they no longer do. Returns whether anything changes.
pub(crate) fn plan_dropin(
    layout: &Layout,
    plan: &mut Plan,
    want: Option<String>,
    owner: Option<Owner>,
    accounts: &Accounts,
) -> bool {
    let path = layout.at(unit::DROPIN);
    let before = plan.changes.len();
    match want {
        Some(text) => {
            if !layout.at(unit::DROPIN_DIR).is_dir() {
                plan.add(plan::dir(&layout.at(unit::DROPIN_DIR), 0o755, owner.clone(), accounts));
            }
            let why = "what the settings change in the package's unit";
            plan.add(plan::file(&path, text.into_bytes(), 0o644, owner, accounts, why));
        }
        None => remove_dropin(layout, plan),
    }
    plan.changes.len() != before
}

/// Plans removing the drop-in (and its directory, if nothing else is in it).
pub(crate) fn remove_dropin(layout: &Layout, plan: &mut Plan) {
    let path = layout.at(unit::DROPIN);
    if fs::symlink_metadata(&path).is_ok() {
        plan.changes.push(Change { action: Action::Remove(path.clone()), what: format!("remove {}", path.display()) });
        let dir = layout.at(unit::DROPIN_DIR);
        let what = format!("remove {} (if empty)", dir.display());
        plan.changes.push(Change { action: Action::RemoveEmptyDir(dir), what });
    }
}

/// Reload and restart for package mode. Enabling and starting the unit is
/// dpkg's (dh_installsystemd), so a changed setting only restarts an agent
/// that runs (`try_restart`); `restart` (taking over from make install,
/// whose agent was just stopped) starts the package's at once.
pub(crate) fn plan_service(layout: &Layout, plan: &mut Plan, reload: bool, try_restart: bool, restart: bool) {
    if !layout.systemd_running() {
        return;
    }
    if reload {
        plan.changes.push(Change {
            action: Action::Run(systemctl(&["daemon-reload"])),
            what: "systemctl daemon-reload".into(),
        });
    }
    let verb = if restart { "restart" } else { "try-restart" };
    if restart || try_restart {
        let what = format!("systemctl {verb} {}", unit::UNIT_NAME);
        plan.changes.push(Change { action: Action::Run(systemctl(&[verb, unit::UNIT_NAME])), what });
    }
}

/// Plans the copy of this program that `apt purge` runs (see the module
/// comment).
pub(crate) fn keep_purge_helper(
    layout: &Layout,
    plan: &mut Plan,
    chown: bool,
    accounts: &Accounts,
) -> Result<(), Error> {
    let bytes = super::this_binary()?;
    let owner = chown.then(Owner::root);
    plan.add(plan::dir(&layout.at(PURGE_DIR), 0o700, owner.clone(), accounts));
    let why = "runs `uninstall --purge` for apt purge";
    plan.add(plan::file(&layout.at(PURGE_HELPER), bytes, 0o700, owner, accounts, why));
    Ok(())
}

/// Plans removing the purge copy (the package is installed again, or purged).
pub(crate) fn remove_purge_helper(layout: &Layout, plan: &mut Plan) {
    let dir = layout.at(PURGE_DIR);
    if fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        let what = format!("remove {} and everything in it", dir.display());
        plan.changes.push(Change { action: Action::RemoveTree(dir), what });
    }
}

/// Whether a `make install` layout is in use beside the (removed) package:
/// then `apt purge` must leave the spool and settings to it.
pub fn local_layout_present(layout: &Layout) -> bool {
    binary_is_ours(&layout.at(unit::BIN))
        || (unit_is_ours(&layout.at(unit::UNIT_PATH)) && !is_mask(&layout.at(unit::UNIT_PATH)))
}
