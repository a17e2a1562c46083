//! The systemd unit: `assets/openvpn-telemetry-agent.service` with this
//! installation's script group and writable paths filled in.
//!
//! The unit locks the agent down to what it needs (see the asset's
//! comments); the only writable paths are the spool and, for a `file://`
//! sink, that sink's directory.

use std::path::{Path, PathBuf};

use crate::config::Settings;

pub const TEMPLATE: &str = include_str!("../../assets/openvpn-telemetry-agent.service");
pub const UNIT_NAME: &str = "openvpn-telemetry-agent.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/openvpn-telemetry-agent.service";
pub const BIN: &str = "/usr/local/sbin/openvpn-telemetry";

/// The directories the agent writes to.
pub fn writable_paths(settings: &Settings) -> Vec<PathBuf> {
    let mut paths = vec![settings.spool_dir.clone()];
    if let Some(sink) = settings.telemetry_url.as_deref().and_then(|u| u.strip_prefix("file://")) {
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
    paths
}

/// Renders the unit. Paths are quoted for systemd when they hold spaces;
/// `-` makes a missing file:// sink directory not fatal at start.
pub fn render(settings: &Settings, script_group: &str) -> String {
    let rw: Vec<String> = writable_paths(settings)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = format!("{}{}", if i == 0 { "" } else { "-" }, p.display());
            if p.contains(char::is_whitespace) { format!("\"{p}\"") } else { p }
        })
        .collect();
    TEMPLATE.replace("@BIN@", BIN).replace("@SCRIPT_GROUP@", script_group).replace("@READ_WRITE_PATHS@", &rw.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder() {
        let mut s = Settings::defaults(Path::new("/x"));
        s.telemetry_url = Some("file:///srv/sink/batches.ndjson".into());
        let unit = render(&s, "nobody");
        for placeholder in ["@BIN@", "@SCRIPT_GROUP@", "@READ_WRITE_PATHS@"] {
            assert!(!unit.contains(placeholder), "{unit}");
        }
        assert!(unit.contains("\nReadWritePaths=/var/spool/openvpn-telemetry -/srv/sink\n"));
        assert!(unit.contains("\nSupplementaryGroups=nobody\n"));
        assert!(unit.contains("\nExecStart=/usr/local/sbin/openvpn-telemetry agent\n"));
    }
}
