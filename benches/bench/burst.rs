//! Connection storm: `BURST` hooks released at the same instant
//! while `queue.log` is rotated every 2 ms (a busy agent), against the same
//! burst of `/bin/true` and of the bash baseline `connect.sh`. Reports how many
//! events reached `queue.log` (rather than a bypass chunk in `pending/`),
//! whether every seq is a unique non-zero integer increasing within each
//! file, and p50/p99/max hook latency (spawn to exit, as each spawning
//! thread sees it).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::hooks::{hook_setup, openvpn_env};
use crate::{Ctx, Res, SCRIPT_PATH, knob};

struct Outcome {
    lat: Vec<u64>,
    events: usize,
    queued: usize,
    unique: usize,
    zero: usize,
    misordered: usize,
    bad_exits: usize,
}

/// One burst of `n` spawns of `cmd`; `spool` is rotated every 2 ms
/// throughout (flock queue.lock, rename into pending/, as the agent does).
fn burst(cmd: &Command, n: usize, spool: Option<&Path>) -> Res<Outcome> {
    // The rotator is a process of its own, as the agent is: a thread of
    // this process would stall behind its hundreds of forks (mmap lock)
    // while holding queue.lock, which no real agent does.
    let mut rotator = match spool {
        Some(s) => Some(
            Command::new(std::env::current_exe().ctx("current_exe")?)
                .arg("--rotate")
                .arg(s)
                .stdin(Stdio::piped())
                .spawn()
                .ctx("rotator")?,
        ),
        None => None,
    };
    std::thread::sleep(Duration::from_millis(20));
    let barrier = Arc::new(Barrier::new(n));
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let b = barrier.clone();
            let mut c = Command::new(cmd.get_program());
            c.args(cmd.get_args());
            c.env_clear().envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))));
            c.env("common_name", format!("burst-{i}"));
            c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            std::thread::spawn(move || {
                b.wait();
                let t = Instant::now();
                let ok = c.status().map(|s| s.success()).unwrap_or(false);
                (t.elapsed().as_nanos() as u64, ok)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let mut bad_exits = 0;
    for w in workers {
        let (ns, ok) = w.join().map_err(|_| "burst thread panicked".to_string())?;
        lat.push(ns);
        bad_exits += usize::from(!ok);
    }
    if let Some(r) = &mut rotator {
        drop(r.stdin.take());
        let _ = r.wait();
    }
    lat.sort_unstable();
    let mut out = Outcome { lat, events: 0, queued: 0, unique: 0, zero: 0, misordered: 0, bad_exits };
    let Some(spool) = spool else { return Ok(out) };
    rotate(spool, u64::MAX / 2);
    let mut seqs = HashSet::new();
    let pending = spool.join("pending");
    let mut chunks: Vec<PathBuf> = fs::read_dir(&pending).ctx(pending.display())?.flatten().map(|e| e.path()).collect();
    chunks.sort();
    for c in chunks {
        let text = fs::read_to_string(&c).ctx(c.display())?;
        let queued = c.file_name().is_some_and(|n| n.to_string_lossy().contains("-q"));
        let mut last = 0;
        for line in text.lines() {
            let seq = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["seq"].as_u64()).unwrap_or(0);
            out.events += 1;
            out.queued += usize::from(queued);
            out.zero += usize::from(seq == 0);
            out.misordered += usize::from(seq <= last);
            last = seq;
            seqs.insert(seq);
        }
        fs::remove_file(&c).ctx(c.display())?;
    }
    out.unique = seqs.len();
    Ok(out)
}

/// `bench --rotate SPOOL`: rotates every 2 ms until stdin closes.
pub fn rotator(spool: &Path) -> std::process::ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
        s.store(true, Ordering::Relaxed);
    });
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        rotate(spool, k);
        k += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    std::process::ExitCode::SUCCESS
}

fn rotate(spool: &Path, n: u64) {
    let Ok(lock) = File::options().create(true).truncate(false).write(true).open(spool.join("queue.lock")) else {
        return;
    };
    if lock.lock().is_ok() {
        let q = spool.join("queue.log");
        if q.exists() {
            let _ = fs::rename(&q, spool.join(format!("pending/{n:020}-q.ndjson")));
        }
    }
}

pub fn section(md: &mut String, work: &Path, ours: &Path, baseline: &Path) -> Res<bool> {
    let n = knob("OVT_BENCH_BURST", 300);
    let runs = knob("OVT_BENCH_BURST_RUNS", 5);
    let base = openvpn_env(work);
    // (label, command, spool)
    let mut cands: Vec<(String, Command, Option<PathBuf>)> = Vec::new();
    let mut t = Command::new("/bin/true");
    t.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
    cands.push(("/bin/true (floor)".into(), t, None));
    let mut bins = vec![("ours".to_string(), ours.to_path_buf(), Vec::new())];
    // Other builds to compare, e.g. the previous commit's binary or an
    // alternative lock design: OVT_BENCH_BURST_ALT="label=path;label=path".
    if let Ok(alt) = std::env::var("OVT_BENCH_BURST_ALT") {
        for item in alt.split(';').filter(|s| !s.is_empty()) {
            // label=path[|VAR=value...]: extra environment for that build.
            if let Some((label, rest)) = item.split_once('=') {
                let mut parts = rest.split('|');
                let path = PathBuf::from(parts.next().unwrap_or_default());
                let vars: Vec<(String, String)> =
                    parts.filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
                bins.push((label.to_string(), path, vars));
            }
        }
    }
    for (i, (label, bin, vars)) in bins.iter().enumerate() {
        let mut env = base.clone();
        env.extend(vars.iter().cloned());
        let (link, spool) = hook_setup(work, &format!("burst{i}"), bin, &mut env)?;
        fs::create_dir_all(spool.join("pending")).ctx(spool.display())?;
        let mut c = Command::new(&link);
        c.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        cands.push((label.clone(), c, Some(spool)));
    }
    let baseline_dir = work.join("burst-baseline");
    let baseline_spool = baseline_dir.join("spool");
    fs::create_dir_all(baseline_spool.join("pending")).ctx(baseline_spool.display())?;
    for f in ["connect.sh", "write-event"] {
        fs::copy(baseline.join(f), baseline_dir.join(f)).ctx(baseline.join(f).display())?;
    }
    let mut c = Command::new(baseline_dir.join("connect.sh"));
    c.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
    c.env("PATH", SCRIPT_PATH).env("SPOOL_DIR", &baseline_spool);
    cands.push(("bash baseline connect.sh".into(), c, Some(baseline_spool)));

    let _ = writeln!(
        md,
        "## Connection storm\n\n{runs} bursts × {n} hooks released at once (one thread each, barrier, `Command` + wait), `queue.log` rotated every 2 ms throughout; candidates take turns burst by burst. Latency is spawn to exit.\n"
    );
    let _ = writeln!(
        md,
        "| candidate | events | in queue.log (worst burst) | unique seq | seq 0 | out of order | p50 ms | p99 ms | max ms | p99 × /bin/true |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all: Vec<Vec<Outcome>> = cands.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (k, (_, cmd, spool)) in cands.iter().enumerate() {
            all[k].push(burst(cmd, n, spool.as_deref())?);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut ok = true;
    let floor_p99 = {
        let mut l: Vec<u64> = all[0].iter().flat_map(|o| o.lat.iter().copied()).collect();
        l.sort_unstable();
        pct(&l, 99)
    };
    for ((label, _, spool), outs) in cands.iter().zip(&all) {
        let mut l: Vec<u64> = outs.iter().flat_map(|o| o.lat.iter().copied()).collect();
        l.sort_unstable();
        let bad: usize = outs.iter().map(|o| o.bad_exits).sum();
        let ms = |v: f64| v / 1e6;
        let cells = if spool.is_some() {
            let events: usize = outs.iter().map(|o| o.events).sum();
            let worst = outs.iter().map(|o| o.queued).min().unwrap_or(0);
            let queued: usize = outs.iter().map(|o| o.queued).sum();
            let unique: usize = outs.iter().map(|o| o.unique).sum();
            let zero: usize = outs.iter().map(|o| o.zero).sum();
            let mis: usize = outs.iter().map(|o| o.misordered).sum();
            if (events != runs * n && !label.starts_with("bash baseline")) || bad > 0 {
                ok = false;
            }
            format!(
                "{events}/{} | {:.1}% ({worst}/{n}) | {unique} | {zero} | {mis}",
                runs * n,
                100.0 * queued as f64 / events.max(1) as f64
            )
        } else {
            "— | — | — | — | —".to_string()
        };
        let _ = writeln!(
            md,
            "| {label} | {cells} | {:.1} | {:.1} | {:.1} | {:.2}× |",
            ms(pct(&l, 50)),
            ms(pct(&l, 99)),
            ms(*l.last().unwrap_or(&0) as f64),
            pct(&l, 99) / floor_p99
        );
        if bad > 0 {
            let _ = writeln!(md, "\n**{label}: {bad} non-zero exits**\n");
        }
    }
    let _ = writeln!(md);
    Ok(ok)
}

fn pct(s: &[u64], p: usize) -> f64 {
    s.get((s.len() * p / 100).min(s.len().saturating_sub(1))).copied().unwrap_or(0) as f64
}
