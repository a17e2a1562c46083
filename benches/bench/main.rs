//! `make bench`: the speed promises (hook latency, storms, drain, idle), measured as ratios
//! against baselines run side by side in the same run — never as timed
//! assertions, because machines are noisy and only ratios travel.
//!
//! 1. Hook latency: `/bin/true` (the floor), our static binary through a
//!    `telemetry-connect.sh` link, the dynamically linked build of the same
//!    code (why we link statically) and the bash baseline `connect.sh`, each spawned
//!    with `std::process::Command` + wait in interleaved rounds, with the
//!    environment OpenVPN gives a script. Every event written is counted.
//! 2. Connection storm: 300 hooks at once while `queue.log` is rotated
//!    every 2 ms, against the same burst of `/bin/true` (benches/bench/burst.rs).
//! 3. Agent drain: 100,000 `json`-format events in 100 chunks, delivered to a
//!    loopback HTTP sink in this process by `agent --once` and by the bash
//!    baseline's agent; the sink checks that every event id arrived. CPU and peak
//!    RSS come from `getrusage(RUSAGE_CHILDREN)` in a wrapper (this binary
//!    re-executed with `--measure`), so they cover the whole process tree.
//! 4. Idle CPU of `agent` on an empty spool, from `/proc/PID/task/*/schedstat`.
//! 5. Status-file parse: a 10,000-client status file, against only cutting it
//!    into lines and fields (benches/bench/parse.rs).
//! 6. Metrics file: rendering and writing `METRICS_TEXTFILE` for the same
//!    file, as a share of one core at the default intervals
//!    (benches/bench/metrics_file.rs).
//!
//! Exit status is non-zero only when a sanity check fails (a hook did not
//! write its event, an event did not arrive): a benchmark of a no-op is
//! worthless. Missed targets are reported, not failed.
//!
//! Knobs (environment): `OVT_BENCH_BIN` (static binary), `OVT_BENCH_OUT`
//! (Markdown copy), `OVT_BENCH_BASELINE` (the bash baseline's directory,
//! default benches/baseline/), `OVT_BENCH_ROUNDS`,
//! `OVT_BENCH_SPAWNS`, `OVT_BENCH_DRAIN_RUNS`, `OVT_BENCH_IDLE_SECS`,
//! `OVT_BENCH_BURST`, `OVT_BENCH_BURST_RUNS`, `OVT_BENCH_BURST_ALT`, `OVT_BENCH_HOOK_ALT`,
//! `OVT_BENCH_PARSE_RUNS`, `OVT_BENCH_METRICS_RUNS`, `OVT_BENCH_ONLY`.

mod burst;
mod drain;
mod hooks;
mod idle;
mod measure;
mod metrics_file;
mod parse;
mod sink;

// The status-file parser, compiled from its source for section 5 (a binary
// crate has no library to link); `event` is the one module it uses. Their
// unit tests come along but are never built as tests here, hence the allow.
#[allow(dead_code, unused_imports)]
#[path = "../../src/event.rs"]
mod event;
#[allow(dead_code, unused_imports)]
#[path = "../../src/real_address.rs"]
mod real_address;
#[allow(dead_code, unused_imports)]
#[path = "../../src/sources/status_file/mod.rs"]
mod status_file;
// The metrics file's rendering and writing, for section 6, with the rows
// it renders (the module says `super::` for them).
#[allow(dead_code, unused_imports)]
#[path = "../../src/health/metrics.rs"]
mod metrics;
#[allow(dead_code, unused_imports)]
#[path = "../../src/health/rows.rs"]
mod rows;
use rows::{ClientRow, InstanceView, RouteRow};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) type Res<T> = Result<T, String>;
/// One section of the report: appends its Markdown, says whether its
/// sanity checks held.
type Section<'a> = &'a dyn Fn(&mut String) -> Res<bool>;

/// Adds what was being done (and on which path) to an error.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T>;
}
impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// What Debian's OpenVPN unit hands a script as PATH; only the bash baseline's
/// scripts need one (they exec flock, cat, date).
pub(crate) const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rotate") {
        return burst::rotator(Path::new(&args[i + 1]));
    }
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        return measure::wrapper(&args[i + 1..]);
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

pub(crate) fn knob(name: &str, default: usize) -> usize {
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
    // The original bash design, written from its description and kept in
    // the repository (benches/baseline/README.md), so a bench needs
    // nothing outside it.
    let baseline =
        std::env::var_os("OVT_BENCH_BASELINE").map(PathBuf::from).unwrap_or_else(|| root.join("benches/baseline"));
    if let Some(missing) = ["connect.sh", "write-event", "agent"].iter().find(|f| !baseline.join(f).is_file()) {
        return Err(format!("{}: the bash baseline's {missing} is not there", baseline.display()));
    }
    let out = std::env::var_os("OVT_BENCH_OUT").map(PathBuf::from).unwrap_or_else(|| root.join("target/bench.md"));
    let work = std::env::temp_dir().join(format!("ovt-bench-{}", std::process::id()));
    fs::create_dir_all(&work).ctx(work.display())?;

    let mut md = header(&ours);
    print!("{md}");
    let mut ok = true;
    let sections: [Section; 6] = [
        &|md| hooks::section(md, &work.join("hook"), &ours, &dynamic, &baseline),
        &|md| burst::section(md, &work.join("burst"), &ours, &baseline),
        &|md| drain::section(md, &work.join("drain"), &ours, &baseline),
        &|md| idle::section(md, &work.join("idle"), &ours),
        &|md| parse::section(md),
        &|md| metrics_file::section(md, &work.join("metrics")),
    ];
    // OVT_BENCH_ONLY=N runs only section N (1 hooks, 2 storm, 3 drain, 4 idle, 5 parse, 6 metrics file).
    let only = knob("OVT_BENCH_ONLY", 0);
    for (i, section) in sections.into_iter().enumerate() {
        if only != 0 && only != i + 1 {
            continue;
        }
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
pub(crate) fn linking(bin: &Path) -> &'static str {
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
