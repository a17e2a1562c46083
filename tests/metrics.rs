//! The Prometheus textfile (`METRICS_TEXTFILE`) with the real programs:
//! Debian's `prometheus-node-exporter` reads the directory the agent
//! writes (textfile collector only, on a loopback port) and is scraped;
//! `promtool check metrics` (Debian's `prometheus`) lints the file; the
//! OpenVPN families are compared, fixture by fixture, with what kumina's
//! openvpn_exporter computes from the same file (its parser, ported line
//! for line below from exporters/openvpn_exporter.go at v0.3.0); and an
//! agent killed while it writes a 10,000-client file never lets
//! node_exporter read half of one.
//!
//! Needs prometheus-node-exporter and prometheus (tests/setup.sh); no
//! root, no network beyond 127.0.0.1.

// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/require.rs"]
mod require;
#[path = "support/agent_site.rs"]
mod site;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use site::{Site, wait_for};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const NODE_EXPORTER: &str = "prometheus-node-exporter";
const PROM_NAME: &str = "openvpn-telemetry.prom";

/// Every family the file must have once the agent has delivered, holds
/// events and reads a status file with clients, and its type.
const FAMILIES: &[(&str, &str)] = &[
    ("openvpn_telemetry_build_info", "gauge"),
    ("openvpn_telemetry_queue_bytes", "gauge"),
    ("openvpn_telemetry_pending_chunks", "gauge"),
    ("openvpn_telemetry_pending_bytes", "gauge"),
    ("openvpn_telemetry_oldest_pending_timestamp_seconds", "gauge"),
    ("openvpn_telemetry_delivered_events_total", "counter"),
    ("openvpn_telemetry_dropped_events_total", "counter"),
    ("openvpn_telemetry_posts_total", "counter"),
    ("openvpn_telemetry_last_success_timestamp_seconds", "gauge"),
    ("openvpn_telemetry_consecutive_failures", "gauge"),
    ("openvpn_telemetry_failed_files", "gauge"),
    ("openvpn_up", "gauge"),
    ("openvpn_status_update_time_seconds", "gauge"),
    ("openvpn_server_connected_clients", "gauge"),
    ("openvpn_openvpn_server_connected_clients", "gauge"),
    ("openvpn_server_client_received_bytes_total", "counter"),
    ("openvpn_server_client_sent_bytes_total", "counter"),
    ("openvpn_server_route_last_reference_time_seconds", "gauge"),
];

/// node_exporter with only the textfile collector, reading `dir`, on a
/// free loopback port; killed and reaped when dropped.
struct NodeExporter {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl NodeExporter {
    fn start(dir: &Path) -> NodeExporter {
        require::program(NODE_EXPORTER, "--version", "prometheus-node-exporter");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.with_extension("node-exporter.log");
        let child = Command::new(NODE_EXPORTER)
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut n = NodeExporter { child, port, log };
        wait_for("node_exporter to listen", || {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("{NODE_EXPORTER} ended: {status}");
            }
            TcpStream::connect(("127.0.0.1", n.port)).ok().map(|_| ())
        });
        n.port = port;
        n
    }

    /// Where another thread scrapes it from; the process stays with this
    /// value, so it is ended when the test ends, failed or not.
    fn endpoint(&self) -> Endpoint {
        Endpoint { port: self.port, log: self.log.clone() }
    }

    fn scrape(&self) -> String {
        self.endpoint().scrape()
    }
}

/// A running node_exporter's address and log.
struct Endpoint {
    port: u16,
    log: PathBuf,
}

impl Endpoint {
    /// What node_exporter logged at level error.
    fn errors(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("level=error"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One scrape of /metrics: the body.
    fn scrape(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample line's name, labels and value.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = value.parse().unwrap();
    let Some((name, labels)) = series.split_once('{') else { return (series.to_string(), BTreeMap::new(), value) };
    let labels = labels.strip_suffix('}').unwrap();
    let mut out = BTreeMap::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").unwrap();
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().unwrap() {
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        out.insert(k.to_string(), v);
        rest = after[end + 1..].trim_start_matches(',');
    }
    (name.to_string(), out, value)
}

/// Samples of `text` (exposition format), comments left out.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(parse_sample).collect()
}

/// The first sample of `name` (only its lines are parsed: a scrape of a
/// 10,000-client file is 30,000 lines).
fn value_of(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .map(parse_sample)
        .map(|(_, _, v)| v)
        .next()
}

/// How many samples of `name`.
fn count_of(text: &str, name: &str) -> usize {
    text.lines().filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' ']))).count()
}

/// An OpenVPN server config naming its status file (`status FILE n`).
fn conf(site: &Site, name: &str, status: &Path) -> PathBuf {
    let path = site.path(&format!("{name}.conf"));
    fs::write(&path, format!("port 1194\ndev tun\nstatus {} 10\nstatus-version 2\n", status.display())).unwrap();
    path
}

/// The real OpenVPN 2.7 status file, and a copy whose first client has a
/// name with a quote, backslashes and a byte that is not UTF-8.
fn status_files(site: &Site) -> (PathBuf, PathBuf) {
    let real = site.path("status-server.log");
    fs::copy(Path::new(FIXTURES).join("real/ovpn27-udp3/status-v3.log"), &real).unwrap();
    let text = fs::read(&real).unwrap();
    let evil = site.path("status-evil.log");
    let hostile: &[u8] = b"ev\"il\\x\\\xff";
    let mut out = Vec::new();
    let mut done = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        // Smith, John is a client and a route: rename both.
        if (!done || line.starts_with(b"ROUTING_TABLE"))
            && let Some(at) = line.windows(11).position(|w| w == b"Smith, John")
        {
            out.extend_from_slice(&line[..at]);
            out.extend_from_slice(hostile);
            out.extend_from_slice(&line[at + 11..]);
            done = done || line.starts_with(b"CLIENT_LIST");
            continue;
        }
        out.extend_from_slice(line);
    }
    assert!(done);
    fs::write(&evil, out).unwrap();
    (real, evil)
}

#[test]
fn node_exporter_serves_every_family_and_promtool_finds_nothing() {
    let site = Site::new("metrics");
    let prom = site.path("textfile");
    fs::create_dir_all(&prom).unwrap();
    let file = prom.join(PROM_NAME);
    let (real, evil) = status_files(&site);
    let confs = format!("{} {}", conf(&site, "server", &real).display(), conf(&site, "evil", &evil).display());
    let common = format!("OPENVPN_SERVER_CONF=\"{confs}\"\nMETRICS_TEXTFILE={}\n", file.display());

    // A delivery (to the file sink), then events held (no URL): the file
    // has a last success and an oldest pending event.
    site.config(&format!("{common}TELEMETRY_URL=file://{}\n", site.path("sink.ndjson").display()));
    site.hook_events(2);
    assert!(site.once().status.success(), "{}", site.log());
    site.config(&common);
    site.hook_events(2);
    let daemon = site.daemon();
    let text = wait_for("the daemon's metrics file with pending events", || {
        let t = fs::read_to_string(&file).ok()?;
        (t.contains("openvpn_telemetry_oldest_pending_timestamp_seconds ") && t.contains("openvpn_up{")).then_some(t)
    });
    drop(daemon);

    let exporter = NodeExporter::start(&prom);
    let scraped = exporter.scrape();
    assert_eq!(value_of(&scraped, "node_textfile_scrape_error"), Some(0.0), "{scraped}");
    for (family, kind) in FAMILIES {
        assert!(scraped.contains(&format!("# TYPE {family} {kind}\n")), "{family} {kind} in {scraped}");
        assert!(samples(&scraped).iter().any(|(n, _, _)| n == family), "a sample of {family}");
    }
    let all = samples(&scraped);
    let clients = |inst: &str| {
        all.iter()
            .find(|(n, l, _)| n == "openvpn_server_connected_clients" && l["openvpn_instance"] == inst)
            .map(|(_, _, v)| *v)
    };
    assert_eq!((clients("server"), clients("evil")), (Some(4.0), Some(4.0)));
    // The hostile name arrived whole, escaped and unescaped again.
    assert!(
        all.iter().any(|(n, l, _)| n == "openvpn_server_client_received_bytes_total"
            && l["common_name"] == "ev\"il\\x\\\\xFF"
            && l["openvpn_instance"] == "evil"),
        "{scraped}"
    );
    assert!(
        all.iter().any(|(n, l, _)| n == "openvpn_server_route_last_reference_time_seconds"
            && l["common_name"] == "ev\"il\\x\\\\xFF"),
        "{scraped}"
    );

    require::program("promtool", "--version", "prometheus");
    let out =
        Command::new("promtool").args(["check", "metrics"]).stdin(fs::File::open(&file).unwrap()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

/// kumina/openvpn_exporter's server-status parser (collectStatusFromReader
/// and collectServerStatusFromReader, v0.3.0), ported as it is, quirks and
/// all (checked once against the exporter itself, v0.3.0 built from its
/// source with Debian's golang-github-prometheus-client-golang-dev: the
/// same series on every fixture, and the same differences from ours): every CLIENT_LIST row counts as a connected client, and a row is
/// left out of a metric when each of its label values already appeared in
/// an earlier row of that metric ("subslice"). `Err` is where the
/// exporter errs (and reports openvpn_up 0).
#[allow(clippy::type_complexity)]
fn kumina(status_path: &str, bytes: &[u8]) -> Result<(f64, BTreeMap<(String, Vec<String>), f64>), String> {
    let text = String::from_utf8_lossy(bytes);
    let sep = if text.starts_with("TITLE,") {
        ","
    } else if text.starts_with("TITLE\t") {
        "\t"
    } else {
        return Err("unexpected file contents".into());
    };
    let (client_labels, route_labels) = (
        ["Common Name", "Connected Since (time_t)", "Real Address", "Virtual Address", "Username"],
        ["Common Name", "Real Address", "Virtual Address"],
    );
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut clients = 0.0;
    let mut recorded: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    // bufio.ScanLines: lines split at \n, a trailing \r dropped.
    for line in text.split_terminator('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        let f: Vec<&str> = line.split(sep).collect();
        match f[0] {
            "END" if f.len() == 1 => {}
            "GLOBAL_STATS" => {}
            "HEADER" if f.len() > 2 => {
                headers.insert(f[1].to_string(), f[2..].iter().map(|s| s.to_string()).collect());
            }
            "TIME" if f.len() == 3 => {
                f[2].parse::<f64>().map_err(|e| e.to_string())?;
            }
            "TITLE" if f.len() == 2 => {}
            kind @ ("CLIENT_LIST" | "ROUTING_TABLE") => {
                if kind == "CLIENT_LIST" {
                    clients += 1.0;
                }
                let cols = headers.get(kind).ok_or("should be preceded by HEADERS")?;
                if f.len() != cols.len() + 1 {
                    return Err(format!("HEADER for {kind} describes a different number of columns"));
                }
                let mut values: BTreeMap<&str, &str> = BTreeMap::new();
                for (i, c) in cols.iter().enumerate() {
                    values.insert(c, f[i + 1]);
                }
                let (label_cols, metrics): (&[&str], &[(&str, &str)]) = if kind == "CLIENT_LIST" {
                    (
                        &client_labels,
                        &[
                            ("Bytes Received", "openvpn_server_client_received_bytes_total"),
                            ("Bytes Sent", "openvpn_server_client_sent_bytes_total"),
                        ],
                    )
                } else {
                    (&route_labels, &[("Last Ref (time_t)", "openvpn_server_route_last_reference_time_seconds")])
                };
                let mut labels = vec![status_path.to_string()];
                labels.extend(label_cols.iter().map(|c| values.get(c).copied().unwrap_or("").to_string()));
                for (column, metric) in metrics {
                    let Some(v) = values.get(column) else { continue };
                    let seen = recorded.entry(metric).or_default();
                    let subslice = labels.len() <= seen.len() && labels.iter().all(|l| seen.contains(l));
                    if !subslice {
                        let v: f64 = v.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
                        out.insert((metric.to_string(), labels.clone()), v);
                        seen.extend(labels.iter().cloned());
                    }
                }
            }
            other => return Err(format!("unsupported key: {other:?}")),
        }
    }
    Ok((clients, out))
}

/// Our file's OpenVPN series in kumina's terms: label values in its order
/// (status_path first), `openvpn_instance` (ours alone) left out.
fn ours(text: &str) -> (f64, BTreeMap<(String, Vec<String>), f64>) {
    let mut out = BTreeMap::new();
    let mut clients = f64::NAN;
    for (name, l, v) in samples(text) {
        let order: &[&str] = match name.as_str() {
            "openvpn_server_connected_clients" => {
                clients = v;
                continue;
            }
            "openvpn_server_client_received_bytes_total" | "openvpn_server_client_sent_bytes_total" => {
                &["status_path", "common_name", "connection_time", "real_address", "virtual_address", "username"]
            }
            "openvpn_server_route_last_reference_time_seconds" => {
                &["status_path", "common_name", "real_address", "virtual_address"]
            }
            _ => continue,
        };
        out.insert((name, order.iter().map(|k| l[*k].clone()).collect()), v);
    }
    (clients, out)
}

/// Every version 2 and 3 status fixture (real OpenVPN output, and the
/// hand-made ones for versions no longer built here): where kumina's
/// exporter reads the file, ours gives the same connected clients and the
/// same bytes and routes. Where it differs, it is for a reason named here.
#[test]
fn the_same_status_files_give_what_kumina_openvpn_exporter_gives() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["real", "handmade"] {
        for e in fs::read_dir(Path::new(FIXTURES).join(dir)).unwrap() {
            let p = e.unwrap().path();
            let candidates: Vec<PathBuf> =
                if p.is_dir() { fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect() } else { vec![p] };
            files.extend(candidates.into_iter().filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.ends_with(".log") && !n.contains("v1")
            }));
        }
    }
    files.sort();
    let site = Site::new("kumina");
    let file = site.path("m.prom");
    let (mut compared, mut differ) = (Vec::new(), BTreeSet::new());
    for fixture in &files {
        let status = site.path("status.log");
        fs::copy(fixture, &status).unwrap();
        let _ = fs::remove_file(&file);
        site.config(&format!("STATUS_LOG={}\nMETRICS_TEXTFILE={}\n", status.display(), file.display()));
        let _ = site.once();
        let text = fs::read_to_string(&file).unwrap();
        let name = fixture.strip_prefix(FIXTURES).unwrap().display().to_string();
        let (k_clients, k_series) = match kumina(&status.display().to_string(), &fs::read(&status).unwrap()) {
            Ok(k) => k,
            // A common name with the separator in it ("Smith, John") makes
            // kumina's exporter give up on the whole file (openvpn_up 0);
            // we read it. Client-side status files neither reads.
            Err(e) if e.contains("different number of columns") => {
                assert_eq!(value_of(&text, "openvpn_up"), Some(1.0), "{name}: {text}");
                differ.insert(name);
                continue;
            }
            Err(e) => {
                assert_eq!(e, "unexpected file contents", "{name}");
                assert_eq!(value_of(&text, "openvpn_up"), Some(0.0), "{name}: {text}");
                continue;
            }
        };
        let (o_clients, o_series) = ours(&text);
        if name.contains("duplicate") {
            // OpenVPN 2.3 listing one session twice: kumina counts rows,
            // we count sessions; the bytes are the same.
            assert_eq!((k_clients, o_clients), (3.0, 2.0), "{name}");
            assert_eq!(k_series, o_series, "{name}");
            differ.insert(name);
            continue;
        }
        if name.contains("status-21-") {
            // OpenVPN 2.1 prints no Username column: kumina's label is "",
            // ours "UNDEF", what later versions print for no username.
            let blank = |m: &BTreeMap<(String, Vec<String>), f64>| -> BTreeMap<(String, Vec<String>), f64> {
                m.iter()
                    .map(|((n, l), v)| {
                        let mut l = l.clone();
                        if l.len() == 6 && l[5] == "UNDEF" {
                            l[5] = String::new();
                        }
                        ((n.clone(), l), *v)
                    })
                    .collect()
            };
            assert_eq!(k_clients, o_clients, "{name}");
            assert_eq!(k_series, blank(&o_series), "{name}");
            differ.insert(name);
            continue;
        }
        assert_eq!(k_clients, o_clients, "connected clients of {name}");
        assert_eq!(k_series, o_series, "bytes and routes of {name}");
        assert!(k_clients > 0.0, "{name} has clients");
        compared.push(name);
    }
    assert!(compared.len() >= 5 && differ.len() >= 9, "compared {compared:?} (and {differ:?})");
    assert!(compared.iter().any(|n| n.contains("ovpn27")) && compared.iter().any(|n| n.contains("v3")), "{compared:?}");
}

/// An agent daemon, killed and reaped when dropped (also when the test
/// fails first).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A version 2 status file as OpenVPN 2.6 writes it, `n` clients.
fn big_status(n: usize) -> String {
    let mut s = String::from(
        "TITLE,OpenVPN 2.6.3 x86_64-pc-linux-gnu\nTIME,2026-12-01 20:30:00,1796157000\n\
         HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,\
         Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "CLIENT_LIST,user{i},198.51.{}.{}:{},10.8.{}.{},,{},{},2026-12-01 20:00:00,1796155200,UNDEF,{i},{i},AES-256-GCM\n",
            i / 250 % 250,
            i % 250,
            1024 + i,
            i / 250,
            i % 250,
            1000 + i,
            2000 + i
        ));
    }
    s.push_str("HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n");
    for i in 0..n {
        s.push_str(&format!(
            "ROUTING_TABLE,10.8.{}.{},user{i},198.51.{}.{}:{},2026-12-01 20:29:00,1796156940\n",
            i / 250,
            i % 250,
            i / 250 % 250,
            i % 250,
            1024 + i
        ));
    }
    s.push_str("GLOBAL_STATS,Max bcast/mcast queue length,0\nGLOBAL_STATS,dco_enabled,0\nEND\n");
    s
}

/// The agent is killed again and again while it writes a 10,000-client
/// file; node_exporter, scraped all along, reads a whole file every time
/// (no scrape error, every client), or none before the first is there.
#[test]
fn an_agent_killed_mid_write_never_gives_node_exporter_half_a_file() {
    const CLIENTS: usize = 10_000;
    let site = Site::new("metrics-kill");
    let prom = site.path("textfile");
    fs::create_dir_all(&prom).unwrap();
    let file = prom.join(PROM_NAME);
    let tmp = prom.join(format!("{PROM_NAME}.tmp"));
    let status = site.path("status.log");
    fs::write(&status, big_status(CLIENTS)).unwrap();
    site.config(&format!(
        "STATUS_LOG={}\nMETRICS_TEXTFILE={}\nSESSION_UPDATE_INTERVAL_SECONDS=1\nSNAPSHOT_INTERVAL_SECONDS=0\n\
         HEARTBEAT_INTERVAL_SECONDS=0\nMAX_SPOOL_BYTES=1\n",
        status.display(),
        file.display()
    ));
    let exporter = NodeExporter::start(&prom);
    let stop = Arc::new(AtomicBool::new(false));
    let whole = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (endpoint, stop, whole) = (exporter.endpoint(), Arc::clone(&stop), Arc::clone(&whole));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let body = endpoint.scrape();
                assert_eq!(
                    value_of(&body, "node_textfile_scrape_error"),
                    Some(0.0),
                    "scrape error: {}",
                    endpoint.errors()
                );
                let rx = count_of(&body, "openvpn_server_client_received_bytes_total");
                let routes = count_of(&body, "openvpn_server_route_last_reference_time_seconds");
                let up = value_of(&body, "openvpn_up");
                assert!(
                    (rx, routes, up) == (CLIENTS, CLIENTS, Some(1.0)) || (rx, routes, up) == (0, 0, None),
                    "a partial file was served: {rx} clients, {routes} routes, up {up:?}"
                );
                whole.fetch_add(usize::from(rx == CLIENTS), Ordering::Relaxed);
            }
        })
    };
    // A whole file first.
    let mut agent = Agent(site.agent().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    wait_for("the first whole file with the clients", || {
        fs::read_to_string(&file).ok().filter(|t| t.contains("openvpn_up{")).map(|_| ())
    });
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let _ = fs::remove_file(&tmp);
    let mut caught = Vec::new();
    for _ in 0..40 {
        let mut agent = Agent(site.agent().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
        // Kill it the moment its temporary file is being written with the
        // clients (the agent's own numbers alone are a few kB).
        let deadline = std::time::Instant::now() + site::PATIENCE;
        while fs::symlink_metadata(&tmp).map_or(true, |m| m.len() < 64 * 1024) {
            assert!(std::time::Instant::now() < deadline, "the agent never wrote");
            if let Ok(Some(s)) = agent.0.try_wait() {
                panic!("agent ended: {s}");
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        agent.0.kill().unwrap();
        agent.0.wait().unwrap();
        if let Ok(m) = fs::metadata(&tmp) {
            caught.push(m.len());
            // The next agent's own temporary file is the one to wait for.
            fs::remove_file(&tmp).unwrap();
        }
        if caught.iter().filter(|&&len| len > 0).count() >= 3 {
            break;
        }
    }
    // Scrapes went on all along; a few more of the file as it was left.
    let before = whole.load(Ordering::Relaxed);
    wait_for("two more whole scrapes", || (whole.load(Ordering::Relaxed) >= before + 2).then_some(()));
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();
    let whole = whole.load(Ordering::Relaxed);
    let complete = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(complete > 0 && whole > 0, "node_exporter read the whole file at least once ({whole} scrapes)");
    assert!(
        caught.iter().any(|&len| len < complete),
        "the agent was killed mid-write (temporary file shorter than the whole {complete} bytes): {caught:?}"
    );
    // And after it all, the file is whole.
    let last = exporter.scrape();
    assert_eq!(value_of(&last, "openvpn_server_connected_clients"), Some(CLIENTS as f64));
}
