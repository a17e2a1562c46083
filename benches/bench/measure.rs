//! The `--measure` wrapper: this bench binary re-executed to run one command
//! and report its wall time, CPU and peak RSS from `getrusage(RUSAGE_CHILDREN)`,
//! which covers the whole process tree (the bash baseline agent's curl and bash too)
//! and nothing of the bench itself (its sink threads).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::{Ctx, Res};

/// One measured run of a process tree, as the `--measure` wrapper saw it.
#[derive(Clone, Copy)]
pub struct Usage {
    pub wall: f64,
    pub cpu: f64,
    pub rss_kib: u64,
}

/// `bench --measure SECS -- CMD...`: runs CMD in its own process group
/// (killed after SECS) and prints wall time and the rusage of the whole
/// tree that was waited for, as JSON.
pub fn wrapper(args: &[String]) -> ExitCode {
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

pub fn measured(cmd: &mut Command, log: &Path) -> Res<(Usage, i64)> {
    let me = std::env::current_exe().ctx("current_exe")?;
    let prog = cmd.get_program().to_owned();
    let mut wrapped = Command::new(me);
    wrapped.args(["--measure", "60", "--"]).arg(prog).args(cmd.get_args());
    wrapped.env_clear().envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let logf = fs::File::create(log).ctx(log.display())?;
    let out = wrapped.stderr(logf).output().ctx("bench --measure")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ctx("bench --measure output")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let usage =
        Usage { wall: f("wall_s"), cpu: f("user_s") + f("sys_s"), rss_kib: v["max_rss_kib"].as_u64().unwrap_or(0) };
    Ok((usage, v["exit"].as_i64().unwrap_or(-1)))
}
