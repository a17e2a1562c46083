//! Planning `uninstall`: the unit, the links, the binary and the conf
//! lines install added go; the spool and `/etc/openvpn-telemetry` stay
//! (pending events are not thrown away by an uninstall) unless `--purge`,
//! which also deletes the agent's user. Links that do not point to the
//! installed binary, and confs without the marked block, are left alone.
//!
//! `--package` (the Debian package's prerm and postrm): the binary and the
//! unit are dpkg's, so only the drop-in goes besides the above; a removal
//! keeps a copy of the binary for `apt purge` (see [`super::package`]), and
//! a purge leaves the spool and settings to a `make install` layout that
//! uses them by then.

use std::fs;
use std::path::{Path, PathBuf};

use super::package::{self, Mode};
use super::plan::{Action, Change};
use super::{AGENT_ENV, ETC_DIR, Error, LINKS, Layout, Plan, SCRIPTS_DIR, conf, conf_change, systemctl, unit};
use crate::accounts::{AGENT_USER, Accounts};
use crate::config::Settings;

pub fn plan(layout: &Layout, purge: bool, chown: bool, mode: Mode) -> Result<Plan, Error> {
    if mode == Mode::Local {
        package::refuse_local_over_package(layout, "uninstall")?;
    }
    let mut plan = Plan::default();
    let accounts = Accounts::for_root(&layout.root);
    let config = layout.at(AGENT_ENV);
    let s = Settings::load(&config).unwrap_or_else(|e| {
        plan.notes.push(format!("{e}; reading what can be read"));
        crate::config::hook_settings(&config, &mut crate::config::say)
    });
    // The agent first: make install's unit is disabled and stopped (the
    // package's is stopped by dpkg before prerm runs this).
    let units_before = plan.changes.len();
    match mode {
        Mode::Local => {
            // The binary and the /usr/local/sbin names go last (below).
            let unit_path = layout.at(unit::UNIT_PATH);
            if layout.systemd_running() && unit_path.exists() {
                let argv = systemctl(&["disable", "--now", unit::UNIT_NAME]);
                let what = format!("systemctl disable --now {}", unit::UNIT_NAME);
                plan.changes.push(Change { action: Action::Run(argv), what });
            }
            if fs::symlink_metadata(&unit_path).is_ok() {
                let what = format!("remove {}", unit_path.display());
                plan.changes.push(Change { action: Action::Remove(unit_path), what });
            }
        }
        Mode::Package => package::remove_dropin(layout, &mut plan),
    }
    if layout.systemd_running() && plan.changes.len() != units_before {
        plan.changes.push(Change {
            action: Action::Run(systemctl(&["daemon-reload"])),
            what: "systemctl daemon-reload".into(),
        });
    }
    let mut confs_changed = false;
    for conf in &s.installer.openvpn_server_conf {
        let path = layout.at(conf);
        let Ok(text) = fs::read_to_string(&path) else { continue };
        if let Some(orig) = conf::unpatch(&text) {
            plan.changes.push(conf_change(&path, orig, chown, "remove the telemetry lines")?);
            confs_changed = true;
        }
    }
    if confs_changed {
        plan.hints.push(
            "restart OpenVPN: until then it still runs the hooks its conf named when it started, and they are gone"
                .into(),
        );
    }
    let bin = mode.bin();
    for l in mode.links() {
        let path = layout.at(l);
        match fs::read_link(&path) {
            Ok(t) if t == Path::new(bin) => plan
                .changes
                .push(Change { action: Action::Remove(path.clone()), what: format!("remove {}", path.display()) }),
            Ok(_) | Err(_) if fs::symlink_metadata(&path).is_ok() => {
                plan.notes.push(format!("{} is not a link to {bin}; left alone", path.display()))
            }
            _ => {}
        }
    }
    // The metrics file: node_exporter would go on serving numbers nobody
    // rewrites. Only the agent's two names, and only regular files.
    if let Some(file) = &s.health.metrics_textfile {
        for path in [layout.at(file), layout.at(crate::health::metrics::temp_path(file))] {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                let what = format!("remove {} (the metrics file)", path.display());
                plan.changes.push(Change { action: Action::Remove(path), what });
            }
        }
    }
    let scripts = layout.at(SCRIPTS_DIR);
    let ours = |name: &std::ffi::OsStr| LINKS.iter().any(|l| Path::new(l) == scripts_entry(name));
    if fs::read_dir(&scripts).is_ok_and(|mut d| d.all(|e| e.is_ok_and(|e| ours(&e.file_name())))) {
        let what = format!("remove {} (empty)", scripts.display());
        plan.changes.push(Change { action: Action::RemoveEmptyDir(scripts.clone()), what });
        // install made /etc/openvpn for the hooks where OpenVPN's package
        // had not (its own has client/ and server/): then it goes too.
        let openvpn = scripts.parent().map(Path::to_path_buf).unwrap_or_default();
        let only_scripts = fs::read_dir(&openvpn).is_ok_and(|d| {
            d.map(|e| e.map(|e| e.file_name())).collect::<Result<Vec<_>, _>>().is_ok_and(|n| n == ["scripts"])
        });
        if only_scripts {
            let what = format!("remove {} (empty but for the hooks' scripts/)", openvpn.display());
            plan.changes.push(Change { action: Action::RemoveEmptyDir(openvpn), what });
        }
    }
    if mode == Mode::Local {
        super::manpage::plan_remove(layout, &mut plan);
        let bin = layout.at(unit::BIN);
        if fs::symlink_metadata(&bin).is_ok() {
            plan.changes
                .push(Change { action: Action::Remove(bin.clone()), what: format!("remove {}", bin.display()) });
        }
    }
    let spool = layout.at(&s.spool.spool_dir);
    let etc = layout.at(ETC_DIR);
    let local_in_use = mode == Mode::Package && package::local_layout_present(layout);
    if mode == Mode::Package && purge {
        package::remove_purge_helper(layout, &mut plan);
    } else if mode == Mode::Package {
        package::keep_purge_helper(layout, &mut plan, chown, &accounts)?;
    }
    if purge && local_in_use {
        plan.notes.push(format!(
            "kept {} and {}: the make install copy in /usr/local/sbin uses them now; \
             `openvpn-telemetry uninstall --purge` removes them",
            spool.display(),
            etc.display()
        ));
    } else if purge {
        for dir in [&spool, &etc] {
            if dir.exists() {
                plan.changes.push(Change {
                    action: Action::RemoveTree(dir.clone()),
                    what: format!("remove {} and everything in it", dir.display()),
                });
            }
        }
        // The pseudonym key goes with the settings, also where
        // PSEUDONYM_KEY_FILE put it outside them.
        let key = layout.at(&s.privacy.key_file);
        if !key.starts_with(&etc) && fs::symlink_metadata(&key).is_ok_and(|m| m.is_file()) {
            let what = format!("remove {} (the pseudonym key)", key.display());
            plan.changes.push(Change { action: Action::Remove(key), what });
        }
        if chown && accounts.manageable(&layout.root) && accounts.uid(AGENT_USER).is_some() {
            plan.changes.push(Change {
                action: Action::Run(accounts.userdel()),
                what: format!("delete system user {AGENT_USER}"),
            });
        }
    } else {
        let chunks = fs::read_dir(spool.join(crate::spool::PENDING)).map(|d| d.count()).unwrap_or(0);
        plan.notes.push(format!(
            "kept {} ({chunks} pending chunks) and {}; `uninstall --purge` removes them and user {AGENT_USER}",
            spool.display(),
            etc.display()
        ));
    }
    Ok(plan)
}

fn scripts_entry(name: &std::ffi::OsStr) -> PathBuf {
    Path::new(SCRIPTS_DIR).join(name)
}
