//! Agent drain: 100,000 `json`-format events in 100 chunks, delivered to the
//! loopback sink by `agent --once` (as sent, as OTLP, and with three fields
//! pseudonymized) and by the bash baseline agent in interleaved runs; every
//! event id is checked at the sink.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::measure::{Usage, measured};
use crate::sink::{self, SinkState};
use crate::{Ctx, Res, SCRIPT_PATH, knob};

const EVENTS: usize = 100_000;
const CHUNKS: usize = 100;
/// The fields the privacy run pseudonymizes (`session_id` follows them).
const PSEUDONYMIZE: &str = "common_name,real_ip,virtual_ip";
const PSEUDONYMIZED: &str = "ours, `PSEUDONYMIZE=common_name,real_ip,virtual_ip`";

/// 100 chunks of 1,000 events as the bash baseline writer formats them.
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

/// Why an agent has no (more) runs; no outcome means it ran fine.
enum Outcome {
    NotBuilt,
    Skipped(String),
    Failed(String),
}

struct DrainAgent {
    name: &'static str,
    /// Each good run and the number of requests the sink answered.
    runs: Vec<(Usage, u64)>,
    outcome: Option<Outcome>,
}

pub fn section(md: &mut String, work: &Path, ours: &Path, baseline: &Path) -> Res<bool> {
    let runs = knob("OVT_BENCH_DRAIN_RUNS", 3);
    let ids = make_backlog(&work.join("backlog"))?;
    let (port, sink) = sink::start()?;
    let url = format!("http://127.0.0.1:{port}/");
    let mut agents = [
        DrainAgent { name: "ours (`agent --once`)", runs: Vec::new(), outcome: None },
        DrainAgent { name: "bash baseline agent (`ONCE=1`)", runs: Vec::new(), outcome: None },
        DrainAgent { name: "ours, OTLP (`TELEMETRY_FORMAT=otlp`)", runs: Vec::new(), outcome: None },
        DrainAgent { name: PSEUDONYMIZED, runs: Vec::new(), outcome: None },
    ];
    if !Path::new("/usr/bin/curl").exists() && !Path::new("/bin/curl").exists() {
        agents[1].outcome = Some(Outcome::Skipped("curl not installed (apt-get install -y curl)".into()));
    }
    for r in 0..runs {
        for k in 0..4 {
            let which = (r + k) % 4;
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
            if which != 1 {
                let conf = dir.join("agent.env");
                let format = if which == 2 { "otlp" } else { "seed" };
                let mut text = format!(
                    "SPOOL_DIR={}\nTELEMETRY_URL={url}\nSERVER_ID=bench\nTELEMETRY_FORMAT={format}\n",
                    spool.display()
                );
                if which == 3 {
                    let key = dir.join("pseudonym.key");
                    fs::write(&key, [0x5a; 32]).ctx(key.display())?;
                    let _ = writeln!(text, "PSEUDONYMIZE={PSEUDONYMIZE}\nPSEUDONYM_KEY_FILE={}", key.display());
                }
                fs::write(&conf, text).ctx(conf.display())?;
                cmd = Command::new(ours);
                cmd.args(["agent", "--once"]).env_clear().env("OPENVPN_TELEMETRY_CONFIG", &conf);
            } else {
                cmd = Command::new(baseline.join("agent"));
                cmd.env_clear().env("PATH", SCRIPT_PATH).env("SPOOL_DIR", &spool).env("TELEMETRY_URL", &url);
                cmd.env("SERVER_ID", "bench").env("ONCE", "1").env("ROTATE_INTERVAL_SECONDS", "0");
            }
            *sink.lock().map_err(|_| "sink poisoned")? = SinkState::default();
            let log = dir.join("stderr.log");
            let (usage, code) = measured(&mut cmd, &log)?;
            let err = fs::read_to_string(&log).unwrap_or_default();
            let left = fs::read_dir(spool.join("pending")).map(|d| d.flatten().count()).unwrap_or(0);
            let s = sink.lock().map_err(|_| "sink poisoned")?.tally()?;
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
                a.runs.push((usage, s.requests));
                None
            };
            let _ = fs::remove_dir_all(&dir);
        }
    }
    let _ = writeln!(
        md,
        "## Agent drain\n\n{EVENTS} `json`-format events in {CHUNKS} chunks of {} in `pending/`, delivered to a loopback HTTP/1.1 sink answering 200 (in the bench process; every event id checked); {runs} interleaved runs each, median run shown; CPU and peak RSS of the whole process tree (`getrusage(RUSAGE_CHILDREN)`, peak = largest single process).\n",
        EVENTS / CHUNKS
    );
    let _ =
        writeln!(md, "| agent | wall s | events/s | CPU s (user+sys) | peak RSS MiB | requests | wall s, all runs |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    let mut ok = true;
    let mut med = [None, None, None, None];
    for (i, a) in agents.iter_mut().enumerate() {
        match a.outcome.take() {
            None if !a.runs.is_empty() => {
                let all = a.runs.iter().map(|(u, _)| format!("{:.3}", u.wall)).collect::<Vec<_>>().join(", ");
                a.runs.sort_by(|x, y| x.0.wall.total_cmp(&y.0.wall));
                let (m, requests) = a.runs[a.runs.len() / 2];
                let rss = a.runs.iter().map(|(u, _)| u.rss_kib).max().unwrap_or(0);
                med[i] = Some((m, rss));
                let _ = writeln!(
                    md,
                    "| {} | {:.3} | {:.0} | {:.3} | {:.1} | {requests} | {all} |",
                    a.name,
                    m.wall,
                    EVENTS as f64 / m.wall,
                    m.cpu,
                    rss as f64 / 1024.0
                );
            }
            None => {}
            Some(Outcome::NotBuilt) => {
                let _ = writeln!(md, "| {} | agent: not built yet | | | | | |", a.name);
            }
            Some(Outcome::Skipped(why)) => {
                let _ = writeln!(md, "| {} | skipped: {why} | | | | | |", a.name);
            }
            Some(Outcome::Failed(why)) => {
                ok = false;
                let _ = writeln!(md, "| {} | **FAILED**: {} | | | | | |", a.name, why.replace('|', "/"));
            }
        }
    }
    md.push('\n');
    if let [Some((o, _)), _, Some((t, rss)), _] = med {
        let _ = writeln!(
            md,
            "- OTLP / `json` format, ours: **{:.2}×** the wall time, {:.2}× the CPU (each event parsed and re-encoded with its attributes; peak RSS {:.1} MiB)",
            t.wall / o.wall,
            t.cpu / o.cpu,
            rss as f64 / 1024.0
        );
    }
    if let [Some((o, _)), _, _, Some((p, _))] = med {
        let _ = writeln!(
            md,
            "- three fields pseudonymized / none, ours (`json`): **{:.2}×** the throughput (target ≥ 0.5×), {:.2}× the CPU (each event parsed, three HMAC-SHA256, re-encoded)",
            o.wall / p.wall,
            p.cpu / o.cpu
        );
    }
    if let [Some((o, rss)), Some((s, _)), _, _] = med {
        let _ = writeln!(
            md,
            "- throughput ours / bash baseline: **{:.1}×** (target ≥ 10×); CPU bash baseline / ours: {:.1}×\n- our peak RSS: **{:.1} MiB** (target ≤ 8 MiB)\n",
            s.wall / o.wall,
            s.cpu / o.cpu,
            rss as f64 / 1024.0
        );
    }
    Ok(ok)
}
