//! Which status files to read: `STATUS_LOG`, or the `status FILE [n]`
//! directive of each OpenVPN config in `OPENVPN_SERVER_CONF`.
//!
//! Rule for relative paths (OpenVPN opens the status file relative to its
//! working directory): the last `cd DIR` in the config if there is one
//! (itself relative to the config's directory), else the config file's own
//! directory, which is what both Debian/Ubuntu units do
//! (`openvpn-server@` runs with `--cd /etc/openvpn/server`, `openvpn@` with
//! `--cd /etc/openvpn`). The last `status` line wins, as in OpenVPN.
//!
//! A config without a `status` line may still have one from the command
//! line of its systemd unit (the config's line would win, being read
//! later): Debian/Ubuntu's `openvpn-server@NAME` runs `--status
//! /run/openvpn-server/status-NAME.log --status-version 2` for
//! `/etc/openvpn/server/NAME.conf`, `openvpn@NAME` runs `--status
//! /run/openvpn/NAME.status 10` for `/etc/openvpn/NAME.conf`; those paths
//! are used for exactly those config locations.
//!
//! The `instance` of a status file is its config's name without directory
//! and extension, the same value the hooks put in `instance`.

use std::path::{Path, PathBuf};

use super::SourceSettings;

/// One status file to read and the OpenVPN instance it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSource {
    pub path: PathBuf,
    pub instance: Option<String>,
}

/// The status files to read this round, and one line per config that could
/// not be used (for the log).
pub fn status_sources(settings: &SourceSettings) -> (Vec<StatusSource>, Vec<String>) {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for conf in &settings.server_confs {
        // Through trusted directories only, like the status file.
        let read = || crate::fsutil::read_beneath(conf, 1 << 20, &crate::fsutil::Owners::anyone());
        match crate::privilege::for_sources(read) {
            Ok(bytes) => {
                match status_directive(conf, &String::from_utf8_lossy(&bytes)).or_else(|| unit_default(conf)) {
                    Some(path) => found.push(StatusSource { path, instance: instance_name(conf) }),
                    None => problems.push(format!("{}: no `status FILE` directive", conf.display())),
                }
            }
            Err(e) => problems.push(format!("{}: cannot read ({e}); set STATUS_LOG instead", conf.display())),
        }
    }
    if let Some(path) = &settings.sources.status_log {
        let instance = found.iter().find(|s| &s.path == path).map(|s| s.instance.clone()).unwrap_or_else(|| {
            match settings.server_confs.as_slice() {
                [only] => instance_name(only),
                _ => None,
            }
        });
        return (vec![StatusSource { path: path.clone(), instance }], Vec::new());
    }
    found.dedup_by(|a, b| a.path == b.path);
    (found, problems)
}

/// The status file the stock systemd unit for `conf` passes on its
/// command line, if `conf` is where such a unit reads its config.
pub fn unit_default(conf: &Path) -> Option<PathBuf> {
    let name = conf.file_name()?.to_str()?.strip_suffix(".conf")?;
    match conf.parent()?.to_str()? {
        "/etc/openvpn/server" => Some(PathBuf::from(format!("/run/openvpn-server/status-{name}.log"))),
        "/etc/openvpn" => Some(PathBuf::from(format!("/run/openvpn/{name}.status"))),
        _ => None,
    }
}

/// `server` for `/etc/openvpn/server/server.conf`.
pub fn instance_name(conf: &Path) -> Option<String> {
    conf.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// The status file named by `text` (the contents of `conf`), resolved.
pub fn status_directive(conf: &Path, text: &str) -> Option<PathBuf> {
    let conf_dir = conf.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cd: Option<PathBuf> = None;
    let mut status: Option<String> = None;
    for d in crate::ovpn_conf::directives(text) {
        match d.name() {
            "cd" if d.words.len() >= 2 => cd = Some(conf_dir.join(d.arg())),
            "status" if d.words.len() >= 2 => status = Some(d.arg().to_string()),
            _ => {}
        }
    }
    let file = PathBuf::from(status?);
    Some(if file.is_absolute() { file } else { cd.unwrap_or(conf_dir).join(file) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_directive_forms() {
        let conf = Path::new("/etc/openvpn/server/office.conf");
        let d = |t: &str| status_directive(conf, t);
        assert_eq!(d("status /var/log/openvpn/status.log 10\n"), Some("/var/log/openvpn/status.log".into()));
        assert_eq!(d("# status /nope\n;status /nope\nport 1194\n"), None);
        assert_eq!(d("status openvpn-status.log\n"), Some("/etc/openvpn/server/openvpn-status.log".into()));
        assert_eq!(d("cd /srv/vpn\nstatus \"my status.log\" # c\n"), Some("/srv/vpn/my status.log".into()));
        assert_eq!(d("cd run\nstatus s.log\n"), Some("/etc/openvpn/server/run/s.log".into()));
        assert_eq!(d("status /a\n<ca>\nstatus /inline\n</ca>\nstatus-version 2\n"), Some("/a".into()));
        assert_eq!(d("status /a\nstatus /b 5\n"), Some("/b".into()));
        assert_eq!(instance_name(conf).as_deref(), Some("office"));
        assert_eq!(unit_default(conf), Some("/run/openvpn-server/status-office.log".into()));
        assert_eq!(unit_default(Path::new("/etc/openvpn/hq.conf")), Some("/run/openvpn/hq.status".into()));
        assert_eq!(unit_default(Path::new("/srv/hq.conf")), None);
    }

    #[test]
    fn sources_from_settings() {
        let site = crate::testkit::Scratch::new("conf", "sources");
        let dir = site.root.clone();
        let a = dir.join("a.conf");
        std::fs::write(&a, "status a-status.log\n").unwrap();
        let b = dir.join("b.conf");
        std::fs::write(&b, "port 1\n").unwrap();
        let mut s = SourceSettings::new(&crate::config::Settings::defaults(Path::new("/x")));
        s.server_confs = vec![a.clone(), b.clone(), dir.join("missing.conf")];
        let (found, problems) = status_sources(&s);
        assert_eq!(found, vec![StatusSource { path: dir.join("a-status.log"), instance: Some("a".into()) }]);
        assert_eq!(problems.len(), 2);
        s.sources.status_log = Some(dir.join("a-status.log"));
        assert_eq!(status_sources(&s).0, found);
        s.sources.status_log = Some("/elsewhere".into());
        assert_eq!(status_sources(&s).0[0].instance, None);
    }
}
