//! Idle CPU: `agent` (daemon mode) on an empty spool, CPU time of all its
//! threads from `/proc/PID/task/*/schedstat` (nanoseconds; `/proc/PID/stat`
//! ticks are 10 ms, as coarse as the whole 0.1% target over 10 s).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Ctx, Res, knob, sink};

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

pub fn section(md: &mut String, work: &Path, ours: &Path) -> Res<bool> {
    let secs = knob("OVT_BENCH_IDLE_SECS", 10) as u64;
    let spool = work.join("spool");
    fs::create_dir_all(spool.join("pending")).ctx(spool.display())?;
    let (port, _sink) = sink::start()?;
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
