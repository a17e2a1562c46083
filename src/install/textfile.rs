//! The Prometheus offer: where Debian's and Ubuntu's node_exporter reads
//! textfiles, `install` suggests `METRICS_TEXTFILE` there, and what the
//! agent needs to write it.
//!
//! Nothing here changes the directory: it belongs to
//! `prometheus-node-exporter` (root:root 0755) and the operator decides
//! whether the agent may write into it (one ACL entry, owner and mode kept).

use super::{AGENT_USER, ENV_OVERRIDES, Layout};
use crate::config::Settings;

/// node_exporter's textfile directory in Debian's and Ubuntu's package.
pub const NODE_EXPORTER_DIR: &str = "/var/lib/prometheus/node-exporter";
/// The name suggested for the agent's file in it.
pub const FILE_NAME: &str = "openvpn-telemetry.prom";

/// The hint to give, if any: the directory exists and no metrics file is
/// set.
pub fn offer(layout: &Layout, s: &Settings) -> Option<String> {
    if s.health.metrics_textfile.is_some() || !layout.at(NODE_EXPORTER_DIR).is_dir() {
        return None;
    }
    Some(format!(
        "{NODE_EXPORTER_DIR} exists (node_exporter's textfile collector): for Prometheus metrics, set \
         METRICS_TEXTFILE={NODE_EXPORTER_DIR}/{FILE_NAME} in {ENV_OVERRIDES}, let the agent write there \
         (setfacl -m u:{AGENT_USER}:rwx {NODE_EXPORTER_DIR}) and run install again (it opens the directory \
         in the unit's sandbox)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn offered_only_where_node_exporter_reads_and_not_yet_set() {
        let root = crate::testkit::Scratch::new("unit", "textfile");
        let layout = Layout::new(Some(&root.root));
        let mut s = Settings::defaults(Path::new("/etc/openvpn-telemetry/agent.env"));
        assert_eq!(offer(&layout, &s), None);
        std::fs::create_dir_all(layout.at(NODE_EXPORTER_DIR)).unwrap();
        let hint = offer(&layout, &s).unwrap();
        assert!(hint.contains("METRICS_TEXTFILE=/var/lib/prometheus/node-exporter/openvpn-telemetry.prom"), "{hint}");
        s.health.metrics_textfile = Some(format!("{NODE_EXPORTER_DIR}/{FILE_NAME}").into());
        assert_eq!(offer(&layout, &s), None);
    }
}
