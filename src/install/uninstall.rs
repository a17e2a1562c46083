//! Planning `uninstall`: the unit, the links, the binary and the conf
//! lines install added go; the spool and `/etc/openvpn-telemetry` stay
//! (pending events are not thrown away by an uninstall) unless `--purge`,
//! which also deletes the agent's user. Links that do not point to the
//! installed binary, and confs without the marked block, are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use super::accounts::{AGENT_USER, Accounts};
use super::plan::{Action, Change};
use super::{AGENT_ENV, ETC_DIR, LINKS, Layout, Plan, SCRIPTS_DIR, conf, conf_change, systemctl, unit};
use crate::config::Settings;

pub fn plan(layout: &Layout, purge: bool, chown: bool) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let accounts = Accounts::for_root(&layout.root);
    let config = layout.at(AGENT_ENV);
    let s = Settings::load(&config).or_else(|e| {
        plan.notes.push(format!("{e}; reading what can be read"));
        Ok::<_, String>(crate::hook::hook_settings(&config))
    })?;
    let unit_path = layout.at(unit::UNIT_PATH);
    let running = layout.systemd_running();
    if running && unit_path.exists() {
        let argv = systemctl(&["disable", "--now", unit::UNIT_NAME]);
        plan.changes
            .push(Change { action: Action::Run(argv), what: format!("systemctl disable --now {}", unit::UNIT_NAME) });
    }
    if fs::symlink_metadata(&unit_path).is_ok() {
        plan.changes.push(Change {
            action: Action::Remove(unit_path.clone()),
            what: format!("remove {}", unit_path.display()),
        });
        if running {
            plan.changes.push(Change {
                action: Action::Run(systemctl(&["daemon-reload"])),
                what: "systemctl daemon-reload".into(),
            });
        }
    }
    for conf in &s.openvpn_server_conf {
        let path = layout.at(conf);
        let Ok(text) = fs::read_to_string(&path) else { continue };
        if let Some(orig) = conf::unpatch(&text) {
            plan.changes.push(conf_change(&path, orig, chown, "remove the telemetry lines")?);
        }
    }
    for l in LINKS {
        let path = layout.at(l);
        match fs::read_link(&path) {
            Ok(t) if t == Path::new(unit::BIN) => plan
                .changes
                .push(Change { action: Action::Remove(path.clone()), what: format!("remove {}", path.display()) }),
            Ok(_) | Err(_) if fs::symlink_metadata(&path).is_ok() => {
                plan.notes.push(format!("{} is not a link to {}; left alone", path.display(), unit::BIN))
            }
            _ => {}
        }
    }
    let scripts = layout.at(SCRIPTS_DIR);
    let ours = |name: &std::ffi::OsStr| LINKS.iter().any(|l| Path::new(l) == scripts_entry(name));
    if fs::read_dir(&scripts).is_ok_and(|mut d| d.all(|e| e.is_ok_and(|e| ours(&e.file_name())))) {
        let what = format!("remove {} (empty)", scripts.display());
        plan.changes.push(Change { action: Action::RemoveEmptyDir(scripts), what });
    }
    let bin = layout.at(unit::BIN);
    if fs::symlink_metadata(&bin).is_ok() {
        plan.changes.push(Change { action: Action::Remove(bin.clone()), what: format!("remove {}", bin.display()) });
    }
    let spool = layout.at(&s.spool_dir);
    let etc = layout.at(ETC_DIR);
    if purge {
        for dir in [&spool, &etc] {
            if dir.exists() {
                plan.changes.push(Change {
                    action: Action::RemoveTree(dir.clone()),
                    what: format!("remove {} and everything in it", dir.display()),
                });
            }
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
