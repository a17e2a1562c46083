//! The systemd unit: `assets/openvpn-telemetry-agent.service` with this
//! installation's script group and writable paths filled in.
//!
//! The unit locks the agent down to what it needs (see the asset's
//! comments); the only writable paths are the spool and, for a `file://`
//! sink, that sink's directory.
//!
//! Two variants, chosen from the final agent.env: without event sources
//! the capability set is empty; with `STATUS_LOG`, `OPENVPN_SERVER_CONF` or
//! `EASYRSA_INDEX` set, the agent gets `CAP_DAC_READ_SEARCH` (bounding and
//! ambient), because OpenVPN writes its status file 0600 root into the 0710
//! `/run/openvpn-server` and Easy-RSA's `pki/` is 0700. That capability
//! reads and searches, never writes (`ProtectSystem=strict` stays); the
//! seccomp filter then allows `capset` back (and only then), because the
//! agent confines the capability with it to its sources' thread and refuses
//! to read sources when it cannot. A source under `/tmp` or `/var/tmp`
//! would be invisible behind `PrivateTmp=yes`, and one under a home
//! directory (`/root/easy-rsa` is common) behind `ProtectHome=yes`: only
//! then are those relaxed, to `PrivateTmp=no` / `ProtectHome=read-only`,
//! so every other installation keeps the tighter unit. Only paths named in
//! agent.env are looked at: a `status` line inside a conf that points
//! below /tmp or a home needs `STATUS_LOG` set to that path too.
//!
//! The Debian package ships the unit rendered with the defaults
//! ([`PACKAGED`], in /usr/lib/systemd/system); what this installation's
//! settings change in it goes into a drop-in ([`dropin`]) instead.

use std::path::{Path, PathBuf};

use crate::config::Settings;

pub const TEMPLATE: &str = include_str!("../../assets/openvpn-telemetry-agent.service");
pub const UNIT_NAME: &str = "openvpn-telemetry-agent.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/openvpn-telemetry-agent.service";
pub const BIN: &str = "/usr/local/sbin/openvpn-telemetry";
/// The binary of the Debian package.
pub const PACKAGE_BIN: &str = "/usr/sbin/openvpn-telemetry";
/// The unit as the Debian package ships it: [`render_for`] with the
/// defaults, the group `nogroup` and [`PACKAGE_BIN`] (a test keeps them
/// equal).
pub const PACKAGED: &str = include_str!("../../assets/debian/openvpn-telemetry-agent.service");
pub const PACKAGED_PATH: &str = "/usr/lib/systemd/system/openvpn-telemetry-agent.service";
/// Where the settings' changes to the package's unit go. Sorts before
/// `override.conf` (`systemctl edit`), so the operator's edits still win.
pub const DROPIN_DIR: &str = "/etc/systemd/system/openvpn-telemetry-agent.service.d";
pub const DROPIN: &str = "/etc/systemd/system/openvpn-telemetry-agent.service.d/10-install.conf";
/// How every unit this program ever wrote begins (`make install` and the
/// package): tells our unit from someone else's.
pub const MARKER: &str = "# openvpn-telemetry delivery agent";
/// Settings that are lists in systemd: a drop-in must empty them before
/// it sets them, or its value would be added to the unit's.
const LIST_KEYS: [&str; 5] =
    ["ExecStart", "ReadWritePaths", "SupplementaryGroups", "CapabilityBoundingSet", "AmbientCapabilities"];

/// The directories the agent writes to.
pub fn writable_paths(settings: &Settings) -> Vec<PathBuf> {
    let mut paths = vec![settings.spool.spool_dir.clone()];
    if let Some(sink) = settings.delivery.telemetry_url.as_deref().and_then(|u| u.strip_prefix("file://")) {
        let sink = Path::new(sink);
        let dir = if sink.as_os_str().to_string_lossy().ends_with('/') || sink.is_dir() {
            sink.to_path_buf()
        } else {
            sink.parent().map(Path::to_path_buf).unwrap_or_else(|| sink.to_path_buf())
        };
        if !paths.contains(&dir) {
            paths.push(dir);
        }
    }
    // The metrics file is replaced by a rename in its directory, so the
    // directory (not the file: a rename onto a bind-mounted file fails)
    // must be writable in the sandbox.
    if let Some(dir) = settings.health.metrics_textfile.as_deref().and_then(Path::parent)
        && !paths.iter().any(|p| p == dir)
    {
        paths.push(dir.to_path_buf());
    }
    paths
}

/// The capability that lets the agent read root-only sources.
pub const READ_CAPABILITY: &str = "CAP_DAC_READ_SEARCH";

/// The event-source files agent.env names (status file, server confs,
/// Easy-RSA index).
pub fn source_paths(settings: &Settings) -> Vec<&Path> {
    let mut paths: Vec<&Path> = settings.installer.openvpn_server_conf.iter().map(PathBuf::as_path).collect();
    paths.extend(settings.sources.status_log.as_deref());
    paths.extend(settings.sources.easyrsa_index.as_deref());
    paths
}

/// Whether the unit grants [`READ_CAPABILITY`]: exactly when a source is set.
pub fn grants_read(settings: &Settings) -> bool {
    !source_paths(settings).is_empty()
}

fn any_below(settings: &Settings, dirs: &[&str]) -> bool {
    source_paths(settings).iter().any(|p| dirs.iter().any(|d| p.starts_with(d)))
}

/// Renders the unit `make install` writes (the binary in /usr/local/sbin).
pub fn render(settings: &Settings, script_group: &str) -> String {
    render_for(settings, script_group, BIN)
}

/// Renders the unit for the binary at `bin`. Paths are quoted for systemd
/// when they hold spaces; `-` makes a missing file:// sink directory not
/// fatal at start.
pub fn render_for(settings: &Settings, script_group: &str, bin: &str) -> String {
    let rw: Vec<String> = writable_paths(settings)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = format!("{}{}", if i == 0 { "" } else { "-" }, p.display());
            if p.contains(char::is_whitespace) { format!("\"{p}\"") } else { p }
        })
        .collect();
    let caps = if grants_read(settings) { READ_CAPABILITY } else { "" };
    // Allowed only with the capability; `~capset` otherwise (already denied
    // by `~@privileged`), so that the line pairs up in the drop-in and
    // never empties the filter.
    let capset = if grants_read(settings) { "capset" } else { "~capset" };
    let private_tmp = if any_below(settings, &["/tmp", "/var/tmp"]) { "no" } else { "yes" };
    let protect_home = if any_below(settings, &["/home", "/root", "/run/user"]) { "read-only" } else { "yes" };
    TEMPLATE
        .replace("@BIN@", bin)
        .replace("@SCRIPT_GROUP@", script_group)
        .replace("@READ_WRITE_PATHS@", &rw.join(" "))
        .replace("@CAPABILITIES@", caps)
        .replace("@CAPSET@", capset)
        .replace("@PRIVATE_TMP@", private_tmp)
        .replace("@PROTECT_HOME@", protect_home)
}

/// The drop-in that makes the package's unit what these settings need:
/// every line of the rendered unit that differs from [`PACKAGED`] (each
/// placeholder is one whole line of the template, so the lines pair up);
/// `None` when nothing differs.
pub fn dropin(settings: &Settings, script_group: &str) -> Option<String> {
    let want = render_for(settings, script_group, PACKAGE_BIN);
    let mut lines = String::new();
    for (have, want) in PACKAGED.lines().zip(want.lines()).filter(|(h, w)| h != w) {
        if want.starts_with('#') || have.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = want.split_once('=')
            && LIST_KEYS.contains(&key)
        {
            lines.push_str(key);
            lines.push_str("=\n");
        }
        lines.push_str(want);
        lines.push('\n');
    }
    (!lines.is_empty()).then(|| {
        format!(
            "# Written by `openvpn-telemetry install` from /etc/openvpn-telemetry/agent.env: what these settings\n\
             # change in the package's {PACKAGED_PATH}.\n\
             # Regenerated on every install; put your own changes in override.conf (`systemctl edit {UNIT_NAME}`).\n\
             [Service]\n{lines}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_unit_is_the_default_render() {
        let s = Settings::defaults(Path::new("/etc/openvpn-telemetry/agent.env"));
        let want = render_for(&s, "nogroup", PACKAGE_BIN);
        assert!(
            PACKAGED == want,
            "assets/debian/openvpn-telemetry-agent.service is stale; it must be exactly:\n{want}"
        );
        assert!(PACKAGED.starts_with(MARKER) && TEMPLATE.starts_with(MARKER));
        assert_eq!(dropin(&s, "nogroup"), None, "the defaults need no drop-in");
    }

    #[test]
    fn the_dropin_holds_only_what_the_settings_change_and_resets_lists() {
        let mut s = Settings::defaults(Path::new("/x"));
        s.spool.spool_dir = "/srv/spool".into();
        s.sources.status_log = Some("/tmp/status.log".into());
        let d = dropin(&s, "nobody").unwrap();
        let body: Vec<&str> = d.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "[Service]",
                "SupplementaryGroups=",
                "SupplementaryGroups=nobody",
                "ReadWritePaths=",
                "ReadWritePaths=/srv/spool",
                "CapabilityBoundingSet=",
                "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
                "AmbientCapabilities=",
                "AmbientCapabilities=CAP_DAC_READ_SEARCH",
                "PrivateTmp=no",
                "SystemCallFilter=capset",
            ]
        );
    }

    #[test]
    fn fills_every_placeholder() {
        let mut s = Settings::defaults(Path::new("/x"));
        s.delivery.telemetry_url = Some("file:///srv/sink/batches.ndjson".into());
        let unit = render(&s, "nobody");
        for placeholder in [
            "@BIN@",
            "@SCRIPT_GROUP@",
            "@READ_WRITE_PATHS@",
            "@CAPABILITIES@",
            "@CAPSET@",
            "@PRIVATE_TMP@",
            "@PROTECT_HOME@",
        ] {
            assert!(!unit.contains(placeholder), "{unit}");
        }
        assert!(unit.contains("\nReadWritePaths=/var/spool/openvpn-telemetry -/srv/sink\n"));
        s.health.metrics_textfile = Some("/var/lib/prometheus/node-exporter/openvpn-telemetry.prom".into());
        let unit = render(&s, "nobody");
        assert!(
            unit.contains(
                "\nReadWritePaths=/var/spool/openvpn-telemetry -/srv/sink -/var/lib/prometheus/node-exporter\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("\nSupplementaryGroups=nobody\n"));
        assert!(unit.contains("\nExecStart=/usr/local/sbin/openvpn-telemetry agent\n"));
        assert!(!unit.lines().any(|l| l.ends_with('@')), "no placeholder left: {unit}");
    }

    #[test]
    fn capability_and_visibility_follow_the_sources() {
        let lines = |s: &Settings| {
            let unit = render(s, "nogroup");
            let capset = unit.lines().rfind(|l| l.starts_with("SystemCallFilter=")).unwrap_or_default();
            ["CapabilityBoundingSet=", "AmbientCapabilities=", "PrivateTmp=", "ProtectHome="]
                .map(|k| unit.lines().find(|l| l.starts_with(k)).unwrap_or_default().to_string())
                .into_iter()
                .chain([capset.to_string()])
                .collect::<Vec<_>>()
        };
        let mut s = Settings::defaults(Path::new("/x"));
        let none = ["CapabilityBoundingSet=", "AmbientCapabilities=", "PrivateTmp=yes", "ProtectHome=yes"];
        assert_eq!(lines(&s), [&none[..], &["SystemCallFilter=~capset"]].concat());
        s.installer.openvpn_server_conf = vec!["/etc/openvpn/server/server.conf".into()];
        let read = ["CapabilityBoundingSet=CAP_DAC_READ_SEARCH", "AmbientCapabilities=CAP_DAC_READ_SEARCH"];
        let capset = "SystemCallFilter=capset";
        assert_eq!(lines(&s), [read[0], read[1], "PrivateTmp=yes", "ProtectHome=yes", capset]);
        s.installer.openvpn_server_conf.clear();
        s.sources.status_log = Some("/tmp/openvpn-status.log".into());
        assert_eq!(lines(&s), [read[0], read[1], "PrivateTmp=no", "ProtectHome=yes", capset]);
        s.sources.status_log = Some("/tmpfoo/status.log".into());
        assert_eq!(lines(&s)[2], "PrivateTmp=yes", "whole components only");
        s.sources.status_log = None;
        s.sources.easyrsa_index = Some("/root/easy-rsa/pki/index.txt".into());
        assert_eq!(lines(&s), [read[0], read[1], "PrivateTmp=yes", "ProtectHome=read-only", capset]);
    }
}
