//! The Prometheus textfile: the exposition format, and OpenVPN's metrics
//! (the agent's own are in `own.rs`), under the names, labels and types of kumina's
//! openvpn_exporter (exporters/openvpn_exporter.go, v0.3.0), so that the
//! dashboards made for it keep working, plus an `openvpn_instance` label
//! (`instance` is the label Prometheus gives the scraped target).
//!
//! Guarantees:
//! - text exposition format 0.0.4: HELP and TYPE before every family,
//!   label values escaped (`\`, `"`, newline), HELP text escaped (`\`,
//!   newline); strings were made valid UTF-8 where they were read (invalid
//!   bytes are the text `\xNN`), so the file is valid UTF-8;
//! - no series twice: a second row with the same labels is left out, as
//!   kumina's exporter leaves it out;
//! - [`write_atomically`]: a reader (node_exporter) opens the old file or
//!   the new one, never part of one: the text goes to a temporary name in
//!   the same directory (not ending in `.prom`, so node_exporter never
//!   reads it) and is renamed over the file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{ClientRow, InstanceView, RouteRow};

/// Bytes per `write`: a 10,000-client file is some 7 MB.
const WRITE_PIECE: usize = 256 * 1024;

/// Route series per client kept under the cap: a client has a route for
/// its IPv4 and its IPv6 address, and a few `iroute`s at most as a rule.
pub const ROUTES_PER_CLIENT: usize = 4;

/// The metrics file's mode: node_exporter runs as its own user.
pub const FILE_MODE: u32 = 0o644;

/// The label values that identify one client, made in one place: every
/// per-client series (bytes and routes) takes its `common_name`,
/// `real_address`, `virtual_address` and `username` from here, so a
/// policy on what they show (a pseudonym for a name) applies to all.
pub fn client_identity<'a>(
    common_name: &'a str,
    real_address: &'a str,
    virtual_address: &'a str,
    username: &'a str,
) -> [Cow<'a, str>; 4] {
    [Cow::Borrowed(common_name), Cow::Borrowed(real_address), Cow::Borrowed(virtual_address), Cow::Borrowed(username)]
}

/// `value` as a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// HELP text: `\` → `\\`, newline → `\n`.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends `# HELP` and `# TYPE` for a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", escape_help(help));
}

/// Appends one sample: `name{k="v",...} value`.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_label(v));
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The status files' families, with kumina's names, help texts, labels and
/// types. `per_client` off leaves out the per-client and per-route series
/// (kumina's `--ignore.individuals` keeps one per common name instead);
/// on, at most `max_clients` client rows and [`ROUTES_PER_CLIENT`] times as
/// many route rows of each status file get series (a hostile file may list 640,000 rows), and
/// `openvpn_telemetry_metrics_clients_left_out` says how many clients
/// were left out.
pub fn render_openvpn(instances: &[InstanceView], per_client: bool, max_clients: usize) -> String {
    let mut out = String::with_capacity(256 + instances.iter().map(|i| i.clients.len() * 700).sum::<usize>());
    let base = |i: &InstanceView| {
        [("status_path", i.status_path.clone()), ("openvpn_instance", i.instance.clone().unwrap_or_default())]
    };
    let per_path =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&InstanceView) -> Option<u64>| {
            let rows: Vec<(&InstanceView, u64)> = instances.iter().filter_map(|i| value(i).map(|v| (i, v))).collect();
            if rows.is_empty() {
                return;
            }
            family(out, name, kind, help);
            for (i, v) in rows {
                let [(a, b), (c, d)] = base(i);
                sample(out, name, &[(a, &b), (c, &d)], v);
            }
        };
    per_path(&mut out, "openvpn_up", "gauge", "Whether scraping OpenVPN's metrics was successful.", &|i| {
        Some(u64::from(i.up))
    });
    per_path(
        &mut out,
        "openvpn_status_update_time_seconds",
        "gauge",
        "UNIX timestamp at which the OpenVPN statistics were updated.",
        &|i| i.up.then_some(i.updated_at).flatten().map(|t| t.max(0) as u64),
    );
    per_path(&mut out, "openvpn_server_connected_clients", "gauge", "Number Of Connected Clients", &|i| {
        i.up.then_some(i.clients.len() as u64)
    });
    // The name kumina's exporter used from 2019-05 to 2020-06 (renamed in
    // its commit 7f420d0, before v0.3.0): dashboards made then still ask
    // for it.
    per_path(
        &mut out,
        "openvpn_openvpn_server_connected_clients",
        "gauge",
        "Number Of Connected Clients (the name openvpn_exporter used before v0.3.0; same as openvpn_server_connected_clients)",
        &|i| i.up.then_some(i.clients.len() as u64),
    );
    if !per_client {
        return out;
    }
    let up: Vec<&InstanceView> = instances.iter().filter(|i| i.up).collect();
    per_path(
        &mut out,
        "openvpn_telemetry_metrics_clients_left_out",
        "gauge",
        "Clients of this status file without per-client series (over METRICS_MAX_CLIENTS).",
        &|i| i.up.then_some(i.clients.len().saturating_sub(max_clients) as u64),
    );
    for (name, help, bytes) in [
        (
            "openvpn_server_client_received_bytes_total",
            "Amount of data received over a connection on the VPN server, in bytes.",
            (|c: &ClientRow| c.bytes_received) as fn(&ClientRow) -> u64,
        ),
        (
            "openvpn_server_client_sent_bytes_total",
            "Amount of data sent over a connection on the VPN server, in bytes.",
            |c: &ClientRow| c.bytes_sent,
        ),
    ] {
        if up.iter().all(|i| i.clients.is_empty()) {
            continue;
        }
        family(&mut out, name, "counter", help);
        for i in &up {
            let inst = i.instance.as_deref().unwrap_or_default();
            let mut seen = HashSet::with_capacity(i.clients.len());
            for c in i.clients.iter().take(max_clients) {
                let [cn, real, virt, user] =
                    client_identity(&c.common_name, &c.real_address, &c.virtual_address, &c.username);
                let since = c.connected_since.to_string();
                if !seen.insert((cn.clone(), since.clone(), real.clone(), virt.clone(), user.clone())) {
                    continue;
                }
                let labels = [
                    ("status_path", i.status_path.as_str()),
                    ("openvpn_instance", inst),
                    ("common_name", &cn),
                    ("connection_time", &since),
                    ("real_address", &real),
                    ("virtual_address", &virt),
                    ("username", &user),
                ];
                sample(&mut out, name, &labels, bytes(c));
            }
        }
    }
    if up.iter().any(|i| !i.routes.is_empty()) {
        let name = "openvpn_server_route_last_reference_time_seconds";
        family(&mut out, name, "gauge", "Time at which a route was last referenced, in seconds.");
        for i in &up {
            let inst = i.instance.as_deref().unwrap_or_default();
            let mut seen = HashSet::with_capacity(i.routes.len());
            for r in i.routes.iter().take(max_clients.saturating_mul(ROUTES_PER_CLIENT)) {
                let RouteRow { virtual_address, common_name, real_address, last_ref } = r;
                let [cn, real, virt, _] = client_identity(common_name, real_address, virtual_address, "");
                if !seen.insert((cn.clone(), real.clone(), virt.clone())) {
                    continue;
                }
                let labels = [
                    ("status_path", i.status_path.as_str()),
                    ("openvpn_instance", inst),
                    ("common_name", &cn),
                    ("real_address", &real),
                    ("virtual_address", &virt),
                ];
                sample(&mut out, name, &labels, last_ref);
            }
        }
    }
    out
}

/// The temporary name next to `path`: same directory (a rename does not
/// cross file systems), a name node_exporter does not read.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `text` to a temporary file next to `path`, mode [`FILE_MODE`],
/// and renames it over `path`. A link or other thing planted at the
/// temporary name is removed, never followed (`O_NOFOLLOW`,
/// `O_CREAT|O_EXCL`).
pub fn write_atomically(path: &Path, text: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).custom_flags(libc_nofollow()).open(&tmp)?;
    // The unit's UMask would take the read bit from node_exporter.
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    // In pieces, as any large write may be: a reader of the temporary
    // name could see any prefix, which is why nothing reads it.
    let written = text.chunks(WRITE_PIECE).try_for_each(|piece| f.write_all(piece)).and_then(|()| f.flush());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_CLOEXEC.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(cn: &str, rx: u64) -> ClientRow {
        ClientRow {
            common_name: cn.into(),
            real_address: "198.51.100.7:5555".into(),
            virtual_address: "10.8.0.6".into(),
            username: "UNDEF".into(),
            connected_since: 1_796_155_200,
            bytes_received: rx,
            bytes_sent: 2 * rx,
        }
    }

    #[test]
    fn label_values_are_escaped_as_the_format_requires() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label("a\"b\\c\nd\\xFF"), "a\\\"b\\\\c\\nd\\\\xFF");
        let inst = InstanceView {
            status_path: "/run/s\"x.log".into(),
            instance: Some("server".into()),
            up: true,
            updated_at: Some(1_796_157_000),
            clients: vec![client("evil\"}\nopenvpn_up 0 # \\", 5)],
            routes: vec![],
        };
        let text = render_openvpn(&[inst], true, 10_000);
        // Every line is a comment or one sample of a known family: the
        // name did not break out of its label.
        for line in text.lines() {
            assert!(line.starts_with('#') || line.starts_with("openvpn_"), "{line}");
            assert!(!line.starts_with("openvpn_up 0"), "{text}");
        }
        assert!(text.contains(r#"common_name="evil\"}\nopenvpn_up 0 # \\""#), "{text}");
    }

    #[test]
    fn a_row_listed_twice_is_one_series_and_per_client_can_be_off() {
        let inst = InstanceView {
            status_path: "/s".into(),
            instance: None,
            up: true,
            updated_at: Some(1),
            clients: vec![client("a", 5), client("a", 5), client("b", 7)],
            routes: vec![],
        };
        let text = render_openvpn(std::slice::from_ref(&inst), true, 10_000);
        assert_eq!(text.lines().filter(|l| l.starts_with("openvpn_server_client_received_bytes_total{")).count(), 2);
        let off = render_openvpn(&[inst], false, 10_000);
        assert!(!off.contains("openvpn_server_client_") && off.contains("openvpn_server_connected_clients{"), "{off}");
        let down = InstanceView { status_path: "/d".into(), ..Default::default() };
        let text = render_openvpn(&[down], true, 10_000);
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(),
            [r#"openvpn_up{status_path="/d",openvpn_instance=""} 0"#]
        );
    }

    #[test]
    fn per_client_series_stop_at_the_cap_and_the_rest_is_counted() {
        let route = |cn: &str| RouteRow {
            virtual_address: format!("10.8.{cn}"),
            common_name: cn.into(),
            real_address: "198.51.100.7:5555".into(),
            last_ref: 1,
        };
        let names: Vec<String> = (0..5).map(|n| n.to_string()).collect();
        let inst = InstanceView {
            status_path: "/s".into(),
            instance: Some("server".into()),
            up: true,
            updated_at: Some(1),
            clients: names.iter().map(|n| client(n, 1)).collect(),
            routes: (0..20).map(|n| route(&n.to_string())).collect(),
        };
        let text = render_openvpn(std::slice::from_ref(&inst), true, 3);
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("openvpn_server_client_received_bytes_total{"), 3, "{text}");
        assert_eq!(count("openvpn_server_client_sent_bytes_total{"), 3, "{text}");
        assert_eq!(count("openvpn_server_route_last_reference_time_seconds{"), 3 * ROUTES_PER_CLIENT, "{text}");
        assert!(text.contains("# TYPE openvpn_telemetry_metrics_clients_left_out gauge\n"), "{text}");
        assert!(
            text.contains(
                r#"openvpn_telemetry_metrics_clients_left_out{status_path="/s",openvpn_instance="server"} 2"#
            ),
            "{text}"
        );
        // Every client counted as connected all the same.
        assert!(text.contains(r#"openvpn_server_connected_clients{status_path="/s",openvpn_instance="server"} 5"#));
        let all = render_openvpn(&[inst], true, 5);
        assert!(
            all.contains(r#"openvpn_telemetry_metrics_clients_left_out{status_path="/s",openvpn_instance="server"} 0"#)
        );
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ovt-metrics-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.prom");
        std::os::unix::fs::symlink("/etc/passwd", temp_path(&path)).unwrap();
        write_atomically(&path, b"a 1\n").unwrap();
        write_atomically(&path, b"a 2\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"a 2\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
