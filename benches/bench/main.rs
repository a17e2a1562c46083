//! `make bench`: the speed promises of issues 2 and 3, measured as ratios
//! against baselines run side by side in the same run — never as timed
//! assertions, because machines are noisy and only ratios travel.
//!
//! 1. Hook latency: `/bin/true` (the floor), our static binary through a
//!    `telemetry-connect.sh` link, the dynamically linked build of the same
//!    code (why we link statically) and the seed's `connect.sh`, each spawned
//!    with `std::process::Command` + wait in interleaved rounds, with the
//!    environment OpenVPN gives a script. Every event written is counted.
//! 2. Agent drain: 100,000 seed-format events in 100 chunks, delivered to a
//!    loopback HTTP sink in this process by `agent --once` and by the seed's
//!    shell agent; the sink checks that every event id arrived. CPU and peak
//!    RSS come from `getrusage(RUSAGE_CHILDREN)` in a wrapper (this binary
//!    re-executed with `--measure`), so they cover the whole process tree.
//! 3. Idle CPU of `agent` on an empty spool, from `/proc/PID/task/*/schedstat`.
//!
//! Exit status is non-zero only when a sanity check fails (a hook did not
//! write its event, an event did not arrive): a benchmark of a no-op is
//! worthless. Missed targets are reported, not failed.
//!
//! Knobs (environment): `OVT_BENCH_BIN` (static binary), `OVT_BENCH_OUT`
//! (Markdown copy), `OVT_BENCH_ROUNDS`, `OVT_BENCH_SPAWNS`,
//! `OVT_BENCH_DRAIN_RUNS`, `OVT_BENCH_IDLE_SECS`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

type Res<T> = Result<T, String>;
/// One section of the report: appends its Markdown, says whether its
/// sanity checks held.
type Section<'a> = &'a dyn Fn(&mut String) -> Res<bool>;

/// Adds what was being done (and on which path) to an error.
trait Ctx<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T>;
}
impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

const EVENTS: usize = 100_000;
/// Wall time after which the hook section stops starting new rounds.
const HOOK_BUDGET: Duration = Duration::from_secs(75);
const CHUNKS: usize = 100;
/// What Debian's OpenVPN unit hands a script as PATH; only the seed's shell
/// scripts need one (they exec flock, cat, date).
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        return measure(&args[i + 1..]);
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: a sanity check failed (see the table); these numbers are not valid");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run() -> Res<bool> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ours = std::env::var_os("OVT_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/x86_64-unknown-linux-gnu/release/openvpn-telemetry"));
    if !ours.is_file() {
        return Err(format!("{}: no static binary; run `make build` (or `make bench`)", ours.display()));
    }
    let dynamic = PathBuf::from(env!("CARGO_BIN_EXE_openvpn-telemetry"));
    let seed = root.join("../shared/bench/peer-seed");
    let out = std::env::var_os("OVT_BENCH_OUT").map(PathBuf::from).unwrap_or_else(|| root.join("target/bench.md"));
    let work = std::env::temp_dir().join(format!("ovt-bench-{}", std::process::id()));
    fs::create_dir_all(&work).ctx(work.display())?;

    let mut md = header(&ours);
    print!("{md}");
    let mut ok = true;
    let sections: [Section; 3] = [
        &|md| hooks(md, &work.join("hook"), &ours, &dynamic, &seed),
        &|md| drain(md, &work.join("drain"), &ours, &seed),
        &|md| idle(md, &work.join("idle"), &ours),
    ];
    for section in sections {
        let before = md.len();
        ok &= section(&mut md)?;
        print!("{}", &md[before..]);
        let _ = std::io::stdout().flush();
    }
    let _ = fs::remove_dir_all(&work);
    fs::write(&out, &md).ctx(out.display())?;
    println!("(copy written to {})", out.display());
    Ok(ok)
}

fn header(ours: &Path) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    format!(
        "# openvpn-telemetry bench\n\n{now}; {cores} × {}; Linux {}; load {}; binary {} ({})\n\n",
        model.unwrap_or("?"),
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        ours.display(),
        linking(ours)
    )
}

/// How the kernel starts `bin`: "script" (`#!`), "dynamic" (the ELF has a
/// PT_INTERP program header naming the loader) or "static".
fn linking(bin: &Path) -> &'static str {
    let b = fs::read(bin).unwrap_or_default();
    if b.starts_with(b"#!") {
        return "script";
    }
    let num =
        |at: usize, n: usize| b.get(at..at + n).map_or(0, |s| s.iter().rev().fold(0, |a, &x| a << 8 | x as usize));
    if !b.starts_with(b"\x7fELF") {
        return "?";
    }
    let (phoff, phentsize, phnum) = (num(0x20, 8), num(0x36, 2), num(0x38, 2));
    let interp = (0..phnum).any(|i| num(phoff + i * phentsize, 4) == 3);
    if interp { "dynamic" } else { "static" }
}

// ---------------------------------------------------------------- hooks --

/// The variables OpenVPN 2.6 sets for `client-connect` (no PATH, no HOME).
fn openvpn_env(work: &Path) -> Vec<(String, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let vars: &[(&str, &str)] = &[
        ("script_type", "client-connect"),
        ("script_context", "init"),
        ("daemon", "0"),
        ("daemon_log_redirect", "0"),
        ("verb", "3"),
        ("config", "/etc/openvpn/server/server.conf"),
        ("dev", "tun0"),
        ("dev_type", "tun"),
        ("proto_1", "udp"),
        ("local_port_1", "1194"),
        ("tun_mtu", "1500"),
        ("ifconfig_local", "10.8.0.1"),
        ("ifconfig_netmask", "255.255.255.0"),
        ("redirect_gateway", "0"),
        ("common_name", "client-0042"),
        ("X509_0_CN", "client-0042"),
        ("X509_1_CN", "Easy-RSA CA"),
        ("tls_id_0", "CN=client-0042"),
        ("tls_serial_0", "201537389467723411183432290453155410251"),
        ("tls_serial_hex_0", "97:9d:c8:e6:61:1d:7c:f4:0c:f9:c4:d7:ae:6b:3b:4b"),
        ("tls_digest_0", "4c:2e:7f:9a:31:0b:88:d2:54:6e:1f:a0:93:7c:c5:12:de:44:0a:71"),
        (
            "tls_digest_sha256_0",
            "1f:6e:9b:42:aa:07:3c:d9:58:e1:20:b4:7a:cc:91:05:6d:3e:f8:12:44:a9:0b:7e:c3:5d:28:96:e0:1a:bf:73",
        ),
        ("untrusted_ip", "203.0.113.7"),
        ("untrusted_port", "51234"),
        ("trusted_ip", "203.0.113.7"),
        ("trusted_port", "51234"),
        ("ifconfig_pool_remote_ip", "10.8.0.6"),
        ("ifconfig_pool_netmask", "255.255.255.0"),
        ("IV_VER", "2.6.8"),
        ("IV_PLAT", "linux"),
        ("IV_PROTO", "990"),
        ("IV_CIPHERS", "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"),
        ("IV_TCPNL", "1"),
        ("IV_GUI_VER", "OpenVPN_GUI_11"),
        ("time_ascii", "2026-11-27 07:00:00"),
    ];
    let mut env: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("time_unix".into(), now.to_string()));
    env.push(("client_connect_config_file".into(), work.join("openvpn_cc.tmp").display().to_string()));
    env
}

struct Candidate {
    name: &'static str,
    linking: &'static str,
    cmd: Command,
    /// Spool whose written lines are counted; `None` for `/bin/true`.
    spool: Option<PathBuf>,
    /// Nanoseconds per spawn, one vector per round.
    rounds: Vec<Vec<u64>>,
    written: u64,
    failed_exits: u64,
}

impl Candidate {
    fn new(name: &'static str, prog: &Path, env: &[(String, String)], spool: Option<PathBuf>) -> Candidate {
        let mut cmd = Command::new(prog);
        // OpenVPN appends the client-connect temp file to the arguments.
        cmd.args(env.iter().filter(|(k, _)| k == "client_connect_config_file").map(|(_, v)| v));
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(Stdio::null());
        Candidate { name, linking: linking(prog), cmd, spool, rounds: Vec::new(), written: 0, failed_exits: 0 }
    }
}

fn hook_setup(work: &Path, name: &str, bin: &Path, env: &mut Vec<(String, String)>) -> Res<(PathBuf, PathBuf)> {
    let dir = work.join(name);
    let spool = dir.join("spool");
    fs::create_dir_all(&spool).ctx(spool.display())?;
    let conf = dir.join("agent.env");
    fs::write(&conf, format!("SPOOL_DIR={}\n", spool.display())).ctx(conf.display())?;
    let link = dir.join("telemetry-connect.sh");
    symlink(bin, &link).ctx(link.display())?;
    env.push(("OPENVPN_TELEMETRY_CONFIG".into(), conf.display().to_string()));
    Ok((link, spool))
}

fn hooks(md: &mut String, work: &Path, ours: &Path, dynamic: &Path, seed: &Path) -> Res<bool> {
    let (rounds, spawns) = (knob("OVT_BENCH_ROUNDS", 30), knob("OVT_BENCH_SPAWNS", 100));
    let base = openvpn_env(work);
    let mut cands = vec![Candidate::new("/bin/true (floor)", Path::new("/bin/true"), &base, None)];
    for (name, label, bin) in [("static", "ours, static", ours), ("dynamic", "ours, dynamic", dynamic)] {
        let mut env = base.clone();
        let (link, spool) = hook_setup(work, name, bin, &mut env)?;
        cands.push(Candidate::new(label, &link, &env, Some(spool)));
    }
    let seed_dir = work.join("seed");
    let seed_spool = seed_dir.join("spool");
    fs::create_dir_all(&seed_spool).ctx(seed_spool.display())?;
    for f in ["connect.sh", "write-event"] {
        fs::copy(seed.join(f), seed_dir.join(f)).ctx(seed.join(f).display())?;
    }
    let mut env = base.clone();
    env.push(("PATH".into(), SCRIPT_PATH.into()));
    env.push(("SPOOL_DIR".into(), seed_spool.display().to_string()));
    cands.push(Candidate::new("seed connect.sh", &seed_dir.join("connect.sh"), &env, Some(seed_spool)));

    // One warm-up spawn each, with stderr shown: a hook that complains is
    // not measuring the path that matters.
    for c in &mut cands {
        let out = c.cmd.stderr(Stdio::piped()).output().ctx(c.name)?;
        if !out.stderr.is_empty() {
            eprintln!("bench: {} said: {}", c.name, String::from_utf8_lossy(&out.stderr).trim_end());
        }
        c.cmd.stderr(Stdio::null());
        if let Some(s) = &c.spool {
            c.written += count_and_clear(s)?;
        }
    }
    // Interleaved spawn by spawn, in an order that rotates every time, so a
    // burst of load elsewhere hits every candidate alike. The seed's shell
    // hook is slow on a loaded machine: stop after HOOK_BUDGET (≥ 5 rounds).
    let n = cands.len();
    let start = Instant::now();
    let mut done = 0;
    for r in 0..rounds {
        if r >= 5 && start.elapsed() > HOOK_BUDGET {
            break;
        }
        for c in &mut cands {
            c.rounds.push(Vec::with_capacity(spawns));
        }
        for i in 0..spawns {
            for k in 0..n {
                let c = &mut cands[(r + i + k) % n];
                let t = Instant::now();
                let st = c.cmd.status().ctx(c.name)?;
                c.rounds[r].push(t.elapsed().as_nanos() as u64);
                c.failed_exits += u64::from(!st.success());
            }
        }
        done += 1;
        // Rotate the spools away so queue.log stays small, as the agent would.
        for c in &mut cands {
            if let Some(s) = &c.spool {
                c.written += count_and_clear(s)?;
            }
        }
    }

    let all: Vec<Vec<u64>> = cands.iter().map(|c| sorted(c.rounds.concat())).collect();
    let floor = median(&all[0]);
    let rounds = done;
    let expected = (rounds * spawns + 1) as u64;
    let mut ok = true;
    let _ = writeln!(
        md,
        "## Hook latency\n\n{rounds} rounds × {spawns} spawns per candidate, interleaved spawn by spawn in rotating order (`Command` + wait), OpenVPN's environment, own spool each.\n"
    );
    let _ = writeln!(md, "| candidate | linking | median µs | p95 µs | × /bin/true | events written |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    for (c, s) in cands.iter().zip(&all) {
        let written = match &c.spool {
            None => "—".to_string(),
            Some(_) if c.written == expected && c.failed_exits == 0 => format!("{}/{expected}", c.written),
            Some(_) => {
                ok = false;
                format!("**{}/{expected}, {} bad exits**", c.written, c.failed_exits)
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.2}× | {written} |",
            c.name,
            c.linking,
            median(s) / 1e3,
            pct(s, 95) / 1e3,
            median(s) / floor
        );
    }
    let (ours_m, seed_m) = (median(&all[1]), median(&all[3]));
    let per_round: Vec<f64> = (0..rounds).map(|r| med_of(&cands[1].rounds[r]) / med_of(&cands[0].rounds[r])).collect();
    let pr = sorted_f(per_round);
    let _ = writeln!(
        md,
        "\n- ours (static) / `/bin/true`: **{:.2}×** (target ≤ 1.1×; per-round ratios {:.2}–{:.2}, median {:.2})\n- seed `connect.sh` / ours (static): **{:.1}×** (target ≥ 8×)\n- dynamic / static: {:.2}×\n",
        ours_m / floor,
        pr[0],
        pr[pr.len() - 1],
        pr[pr.len() / 2],
        seed_m / ours_m,
        median(&all[2]) / ours_m
    );
    Ok(ok)
}

/// Counts event lines in `queue.log` and `pending/`, then removes them.
fn count_and_clear(spool: &Path) -> Res<u64> {
    let mut files = vec![spool.join("queue.log")];
    if let Ok(rd) = fs::read_dir(spool.join("pending")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    let mut lines = 0;
    for f in files {
        match fs::read(&f) {
            Ok(b) => lines += b.iter().filter(|&&c| c == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", f.display())),
        }
        fs::remove_file(&f).ctx(f.display())?;
    }
    Ok(lines)
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}
fn sorted_f(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}
fn median(s: &[u64]) -> f64 {
    s[s.len() / 2] as f64
}
fn pct(s: &[u64], p: usize) -> f64 {
    s[(s.len() * p / 100).min(s.len() - 1)] as f64
}
fn med_of(s: &[u64]) -> f64 {
    median(&sorted(s.to_vec()))
}

// ---------------------------------------------------------------- drain --

/// The loopback telemetry server: HTTP/1.1 keep-alive, one thread per
/// connection, answers every request 200 and records the event ids it saw.
#[derive(Default)]
struct SinkState {
    ids: HashSet<String>,
    occurrences: u64,
    requests: u64,
}

fn start_sink() -> Res<(u16, Arc<Mutex<SinkState>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ctx("sink: bind 127.0.0.1:0")?;
    let port = listener.local_addr().ctx("sink")?.port();
    let state = Arc::new(Mutex::new(SinkState::default()));
    let st = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let st = st.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(conn, &st) {
                    eprintln!("bench sink: {e}");
                }
            });
        }
    });
    Ok((port, state))
}

fn serve(conn: TcpStream, state: &Mutex<SinkState>) -> Res<()> {
    let mut out = conn.try_clone().ctx("sink: clone")?;
    let mut rd = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).ctx("sink: request line")? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let (mut len, mut chunked, mut close, mut gzip) = (0usize, false, false, false);
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).ctx("sink: header")? == 0 {
                return Ok(());
            }
            let Some((k, v)) = h.trim_end().split_once(':') else { break };
            let (k, v) = (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => len = v.parse().ctx("sink: content-length")?,
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                "content-encoding" => gzip = v == "gzip",
                "expect" if v == "100-continue" => out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ctx("sink")?,
                _ => {}
            }
        }
        let mut body = if chunked { read_chunked(&mut rd)? } else { vec![0; len] };
        if !chunked {
            rd.read_exact(&mut body).ctx("sink: body")?;
        }
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).ctx("sink: gunzip")?;
            body = plain;
        }
        let (n, ids) = event_ids(&body);
        {
            let mut s = state.lock().map_err(|_| "sink: poisoned")?;
            s.requests += 1;
            s.occurrences += n;
            s.ids.extend(ids);
        }
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").ctx("sink: answer")?;
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(rd: &mut impl BufRead) -> Res<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        rd.read_line(&mut size).ctx("sink: chunk size")?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).ctx("sink: chunk size")?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if rd.read_line(&mut t).ctx("sink: trailer")? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size + 2, 0);
        rd.read_exact(&mut body[at..]).ctx("sink: chunk")?;
        body.truncate(at + size);
    }
}

/// Occurrences of `"event_id"` and the ids they name.
fn event_ids(body: &[u8]) -> (u64, Vec<String>) {
    const KEY: &[u8] = b"\"event_id\"";
    let (mut n, mut ids, mut i) = (0, Vec::new(), 0);
    while let Some(off) = body[i..].windows(KEY.len()).position(|w| w == KEY) {
        n += 1;
        i += off + KEY.len();
        let rest = &body[i..];
        let start = rest.iter().position(|&c| c == b'"').map_or(rest.len(), |p| p + 1);
        let end = rest[start..].iter().position(|&c| c == b'"').map_or(rest.len(), |p| start + p);
        ids.push(String::from_utf8_lossy(&rest[start..end]).into_owned());
    }
    (n, ids)
}

/// 100 chunks of 1,000 events as the seed's writer formats them.
fn make_backlog(dir: &Path) -> Res<Vec<String>> {
    fs::create_dir_all(dir).ctx(dir.display())?;
    let fmt = time::format_description::well_known::Rfc3339;
    let t0 = 1_795_000_000i64;
    let mut ids = Vec::with_capacity(EVENTS);
    for c in 0..CHUNKS {
        let mut text = String::new();
        for k in 0..EVENTS / CHUNKS {
            let seq = c * (EVENTS / CHUNKS) + k + 1;
            let id = uuid::Uuid::new_v4().to_string();
            let kind = if seq % 2 == 1 { "SESSION_CONNECTED" } else { "SESSION_DISCONNECTED" };
            let at =
                time::OffsetDateTime::from_unix_timestamp(t0 + seq as i64).ctx("time")?.format(&fmt).ctx("time")?;
            let _ = writeln!(
                text,
                r#"{{"event_id":"{id}","seq":{seq},"type":"{kind}","common_name":"client-{:04}","real_ip":"203.0.113.{}","real_port":"{}","virtual_ip":"10.8.{}.{}","event_time_vpn":"{at}"}}"#,
                seq / 2 % 5000,
                seq % 250 + 1,
                40000 + seq % 20000,
                seq / 250 % 250,
                seq % 250 + 2
            );
            ids.push(id);
        }
        let f = dir.join(format!("{:020}-q{c}.ndjson", 1_795_000_000_000_000_000u64 + c as u64));
        fs::write(&f, text).ctx(f.display())?;
    }
    Ok(ids)
}

/// One measured run of a process tree, as the `--measure` wrapper saw it.
#[derive(Clone, Copy)]
struct Usage {
    wall: f64,
    cpu: f64,
    rss_kib: u64,
}

/// Why an agent has no (more) runs; no outcome means it ran fine.
enum Outcome {
    NotBuilt,
    Skipped(String),
    Failed(String),
}

/// `bench --measure SECS -- CMD...`: runs CMD in its own process group
/// (killed after SECS) and prints wall time and the rusage of the whole
/// tree that was waited for, as JSON.
fn measure(args: &[String]) -> ExitCode {
    let (Some(secs), Some(cmd)) = (args.first().and_then(|s| s.parse::<u64>().ok()), args.get(2..)) else {
        eprintln!("usage: bench --measure SECS -- CMD...");
        return ExitCode::FAILURE;
    };
    let Some((prog, rest)) = cmd.split_first() else { return ExitCode::FAILURE };
    let t = Instant::now();
    let mut child = match Command::new(prog).args(rest).stdout(Stdio::null()).process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench --measure: {prog}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pgid = Pid::from_raw(child.id() as i32);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("bench --measure: timed out after {secs} s, killing");
        let _ = killpg(pgid, Signal::SIGKILL);
    });
    let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
    let wall = t.elapsed().as_secs_f64();
    let Ok(ru) = getrusage(UsageWho::RUSAGE_CHILDREN) else { return ExitCode::FAILURE };
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    println!(
        r#"{{"wall_s":{wall},"user_s":{},"sys_s":{},"max_rss_kib":{},"exit":{code}}}"#,
        tv(ru.user_time()),
        tv(ru.system_time()),
        ru.max_rss()
    );
    ExitCode::SUCCESS
}

fn measured(cmd: &mut Command, log: &Path) -> Res<(Usage, i64)> {
    let me = std::env::current_exe().ctx("current_exe")?;
    let prog = cmd.get_program().to_owned();
    let mut wrapped = Command::new(me);
    wrapped.args(["--measure", "120", "--"]).arg(prog).args(cmd.get_args());
    wrapped.env_clear().envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let logf = fs::File::create(log).ctx(log.display())?;
    let out = wrapped.stderr(logf).output().ctx("bench --measure")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ctx("bench --measure output")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let usage =
        Usage { wall: f("wall_s"), cpu: f("user_s") + f("sys_s"), rss_kib: v["max_rss_kib"].as_u64().unwrap_or(0) };
    Ok((usage, v["exit"].as_i64().unwrap_or(-1)))
}

struct DrainAgent {
    name: &'static str,
    runs: Vec<Usage>,
    outcome: Option<Outcome>,
}

fn drain(md: &mut String, work: &Path, ours: &Path, seed: &Path) -> Res<bool> {
    let runs = knob("OVT_BENCH_DRAIN_RUNS", 3);
    let ids = make_backlog(&work.join("backlog"))?;
    let (port, sink) = start_sink()?;
    let url = format!("http://127.0.0.1:{port}/");
    let mut agents = [
        DrainAgent { name: "ours (`agent --once`)", runs: Vec::new(), outcome: None },
        DrainAgent { name: "seed shell agent (`ONCE=1`)", runs: Vec::new(), outcome: None },
    ];
    if !Path::new("/usr/bin/curl").exists() && !Path::new("/bin/curl").exists() {
        agents[1].outcome = Some(Outcome::Skipped("curl not installed (apt-get install -y curl)".into()));
    }
    for r in 0..runs {
        for k in 0..2 {
            let which = (r + k) % 2;
            let a = &mut agents[which];
            if a.outcome.is_some() {
                continue;
            }
            let dir = work.join(format!("run{r}-{which}"));
            let spool = dir.join("spool");
            fs::create_dir_all(spool.join("pending")).ctx(spool.display())?;
            for e in fs::read_dir(work.join("backlog")).ctx("backlog")?.flatten() {
                fs::copy(e.path(), spool.join("pending").join(e.file_name())).ctx(e.path().display())?;
            }
            let mut cmd;
            if which == 0 {
                let conf = dir.join("agent.env");
                let text = format!("SPOOL_DIR={}\nTELEMETRY_URL={url}\nSERVER_ID=bench\n", spool.display());
                fs::write(&conf, text).ctx(conf.display())?;
                cmd = Command::new(ours);
                cmd.args(["agent", "--once"]).env_clear().env("OPENVPN_TELEMETRY_CONFIG", &conf);
            } else {
                cmd = Command::new(seed.join("agent"));
                cmd.env_clear().env("PATH", SCRIPT_PATH).env("SPOOL_DIR", &spool).env("TELEMETRY_URL", &url);
                cmd.env("SERVER_ID", "bench").env("ONCE", "1").env("ROTATE_INTERVAL_SECONDS", "0");
            }
            *sink.lock().map_err(|_| "sink poisoned")? = SinkState::default();
            let log = dir.join("stderr.log");
            let (usage, code) = measured(&mut cmd, &log)?;
            let err = fs::read_to_string(&log).unwrap_or_default();
            let left = fs::read_dir(spool.join("pending")).map(|d| d.flatten().count()).unwrap_or(0);
            let s = sink.lock().map_err(|_| "sink poisoned")?;
            let got = ids.iter().filter(|id| s.ids.contains(*id)).count();
            a.outcome = if code != 0 && err.contains("not implemented") {
                Some(Outcome::NotBuilt)
            } else if code != 0 || got != EVENTS || left != 0 {
                let first = err.lines().last().unwrap_or("").chars().take(200).collect::<String>();
                Some(Outcome::Failed(format!(
                    "exit {code}, {got}/{EVENTS} events arrived, {left} chunks left, {} requests; {first}",
                    s.requests
                )))
            } else {
                a.runs.push(usage);
                None
            };
            drop(s);
            let _ = fs::remove_dir_all(&dir);
        }
    }
    let _ = writeln!(
        md,
        "## Agent drain\n\n{EVENTS} seed-format events in {CHUNKS} chunks of {} in `pending/`, delivered to a loopback HTTP/1.1 sink answering 200 (in the bench process; every event id checked); {runs} interleaved runs each, median run shown; CPU and peak RSS of the whole process tree (`getrusage(RUSAGE_CHILDREN)`, peak = largest single process).\n",
        EVENTS / CHUNKS
    );
    let _ = writeln!(md, "| agent | wall s | events/s | CPU s (user+sys) | peak RSS MiB |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let mut ok = true;
    let mut med = [None, None];
    for (i, a) in agents.iter_mut().enumerate() {
        match a.outcome.take() {
            None if !a.runs.is_empty() => {
                a.runs.sort_by(|x, y| x.wall.total_cmp(&y.wall));
                let m = a.runs[a.runs.len() / 2];
                let rss = a.runs.iter().map(|u| u.rss_kib).max().unwrap_or(0);
                med[i] = Some((m, rss));
                let _ = writeln!(
                    md,
                    "| {} | {:.3} | {:.0} | {:.3} | {:.1} |",
                    a.name,
                    m.wall,
                    EVENTS as f64 / m.wall,
                    m.cpu,
                    rss as f64 / 1024.0
                );
            }
            None => {}
            Some(Outcome::NotBuilt) => {
                let _ = writeln!(md, "| {} | agent: not built yet | | | |", a.name);
            }
            Some(Outcome::Skipped(why)) => {
                let _ = writeln!(md, "| {} | skipped: {why} | | | |", a.name);
            }
            Some(Outcome::Failed(why)) => {
                ok = false;
                let _ = writeln!(md, "| {} | **FAILED**: {} | | | |", a.name, why.replace('|', "/"));
            }
        }
    }
    md.push('\n');
    if let [Some((o, rss)), Some((s, _))] = med {
        let _ = writeln!(
            md,
            "- throughput ours / seed: **{:.1}×** (target ≥ 10×); CPU seed / ours: {:.1}×\n- our peak RSS: **{:.1} MiB** (target ≤ 8 MiB)\n",
            s.wall / o.wall,
            s.cpu / o.cpu,
            rss as f64 / 1024.0
        );
    }
    Ok(ok)
}

// ----------------------------------------------------------------- idle --

/// CPU nanoseconds (all threads, from schedstat) and context switches.
fn proc_cpu(pid: u32) -> Res<(u64, u64)> {
    let (mut ns, mut switches) = (0, 0);
    let tasks = format!("/proc/{pid}/task");
    for t in fs::read_dir(&tasks).ctx(&tasks)?.flatten() {
        let sched = fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += sched.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let status = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in status.lines().filter(|l| l.contains("ctxt_switches:")) {
            switches += l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok((ns, switches))
}

fn idle(md: &mut String, work: &Path, ours: &Path) -> Res<bool> {
    let secs = knob("OVT_BENCH_IDLE_SECS", 10) as u64;
    let spool = work.join("spool");
    fs::create_dir_all(spool.join("pending")).ctx(spool.display())?;
    let (port, _sink) = start_sink()?;
    let conf = work.join("agent.env");
    let text = format!("SPOOL_DIR={}\nTELEMETRY_URL=http://127.0.0.1:{port}/\nSERVER_ID=bench\n", spool.display());
    fs::write(&conf, text).ctx(conf.display())?;
    let log = work.join("stderr.log");
    let logf = fs::File::create(&log).ctx(log.display())?;
    let mut child = Command::new(ours)
        .arg("agent")
        .env_clear()
        .env("OPENVPN_TELEMETRY_CONFIG", &conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .ctx(ours.display())?;
    let _ = writeln!(
        md,
        "## Idle\n\n`agent` (daemon mode) on an empty spool; CPU of all its threads over {secs} s after a 1 s warm-up (`/proc/PID/task/*/schedstat`).\n"
    );
    let _ = writeln!(md, "| agent | CPU % of one core | wakeups/s | exit after SIGTERM |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    std::thread::sleep(Duration::from_secs(1));
    if let Ok(Some(st)) = child.try_wait() {
        let err = fs::read_to_string(&log).unwrap_or_default();
        let row = if err.contains("not implemented") {
            "agent: not built yet".to_string()
        } else {
            format!("**exited early** ({st}): {}", err.lines().last().unwrap_or("").replace('|', "/"))
        };
        let _ = writeln!(md, "| ours | {row} | | |\n");
        return Ok(err.contains("not implemented"));
    }
    let (ns0, sw0) = proc_cpu(child.id())?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (ns1, sw1) = proc_cpu(child.id())?;
    let window = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).ctx("SIGTERM")?;
    let mut stopped = None;
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            stopped = Some(t.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if stopped.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let pct = (ns1 - ns0) as f64 / 1e9 / window * 100.0;
    let _ = writeln!(
        md,
        "| ours | **{pct:.3}%** (target < 0.1%) | {:.1} | {} |\n",
        (sw1 - sw0) as f64 / window,
        stopped.map_or("**not within 5 s**".to_string(), |d| format!("{} ms", d.as_millis()))
    );
    Ok(true)
}
