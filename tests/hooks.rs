//! The hooks' guarantees (issue 2), each shown on the real binary run
//! through the names OpenVPN calls it by. Every test checks exit status 0
//! and an empty stdout, whatever else it checks.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/group.rs"]
mod group;
#[path = "support/require.rs"]
mod require;

use group::Group;

#[path = "support/agent_site.rs"]
mod site;

use site::Site;
use site::roles::{connect, disconnect, write_event};

const ALICE: &[(&str, &[u8])] = &[
    ("common_name", b"alice"),
    ("trusted_ip", b"198.51.100.7"),
    ("trusted_port", b"5555"),
    ("ifconfig_pool_remote_ip", b"10.8.0.6"),
    ("time_unix", b"1700000000"),
];

/// Runs and checks the two things every hook run must satisfy.
fn ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "hook exit status; stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "hook wrote to stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    out
}

/// Runs `n` hooks made by `hook(site, i)` from `n` threads released
/// together (a barrier), each checked by [`ok`]; returns when all ended.
fn all_at_once(s: &Arc<Site>, n: usize, hook: fn(&Site, usize) -> Command) {
    let barrier = Arc::new(Barrier::new(n));
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let (s, b) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = hook(&s, i);
                c.stderr(Stdio::null());
                b.wait();
                ok(c)
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn names_and_subcommands_dispatch_to_the_right_event() {
    let s = Site::new("dispatch");
    // OpenVPN appends the path of a temp file to client-connect's arguments.
    ok(s.hook(connect(), &["/tmp/openvpn_cc_1.tmp"], ALICE));
    ok(s.hook(disconnect(), &[], ALICE));
    ok(s.hook(write_event(), &["CUSTOM_1"], ALICE));
    ok(s.hook("openvpn-telemetry", &["connect", "extra"], ALICE));
    ok(s.hook("openvpn-telemetry", &["disconnect"], ALICE));
    ok(s.hook("openvpn-telemetry", &["write-event", "SESSION_CONNECTED"], ALICE));
    let types: Vec<_> = s.lines().iter().map(|l| l["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        types,
        [
            "SESSION_CONNECTED",
            "SESSION_DISCONNECTED",
            "CUSTOM_1",
            "SESSION_CONNECTED",
            "SESSION_DISCONNECTED",
            "SESSION_CONNECTED"
        ]
    );
    let seqs: Vec<_> = s.lines().iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    // Connect and disconnect of one session share its id.
    let l = s.lines();
    assert_eq!(l[0]["session_id"], l[1]["session_id"]);
    assert!(l[0]["session_id"].is_string());
}

#[test]
fn bad_hook_arguments_still_exit_zero_with_one_line() {
    let s = Site::new("badargs");
    for args in [&[][..], &["lower-case"][..], &["--help"][..]] {
        let out = ok(s.hook(write_event(), args, ALICE));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let mut c = s.hook(write_event(), &[], ALICE);
    c.arg(OsStr::from_bytes(b"BAD\xff"));
    ok(c);
    assert!(s.lines().is_empty());
}

#[test]
fn payload_has_the_seed_fields_and_types() {
    let s = Site::new("payload");
    ok(s.hook(connect(), &[], ALICE));
    let l = &s.lines()[0];
    assert_eq!(uuid::Uuid::parse_str(l["event_id"].as_str().unwrap()).unwrap().get_version_num(), 4);
    assert!(l["seq"].is_u64());
    for k in ["type", "common_name", "real_ip", "real_port", "virtual_ip", "event_time_vpn"] {
        assert!(l[k].is_string(), "{k} must be a string: {l}");
    }
    assert_eq!(l["real_port"], "5555");
    assert_eq!(l["connected_since"], "2023-11-14T22:13:20Z");
    let t = l["event_time_vpn"].as_str().unwrap();
    assert!(time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok() && t.ends_with('Z'));
}

#[test]
fn missing_or_deleted_spool_exits_zero_and_logs_the_event() {
    let s = Site::new("nospool");
    fs::remove_dir_all(s.spool()).unwrap();
    let out = ok(s.hook(connect(), &[], ALICE));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("event not stored") && err.contains("\"common_name\":\"alice\""), "{err}");
}

/// A read-only spool, as nobody (root ignores permission bits).
#[test]
#[ignore = "needs root: make test runs it"]
fn read_only_spool_exits_zero_and_logs_the_event() {
    require::root("a read-only spool, as nobody");
    let s = Site::new("rospool");
    fs::set_permissions(s.spool(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&s.root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(s.config_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let out = ok(as_nobody(s.hook(connect(), &[], ALICE)));
    assert!(stderr(&out).contains("Permission denied"), "{}", stderr(&out));
}

/// Runs a command as nobody:nogroup with no supplementary groups.
fn as_nobody(c: Command) -> Command {
    let mut n = Command::new("setpriv");
    n.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(c.get_program()).args(c.get_args());
    n.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            n.env(k, v);
        }
    }
    n.stdin(Stdio::null());
    n
}

#[test]
#[ignore = "needs root: make test runs it"]
fn full_disk_exits_zero_and_leaves_no_torn_line() {
    require::root("to mount a tiny tmpfs");
    let s = Site::new("full");
    let spool = s.spool();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16k"]).arg("tmpfs").arg(&spool).status().unwrap();
    assert!(st.success());
    let result = std::panic::catch_unwind(|| {
        fs::create_dir(spool.join("pending")).unwrap();
        ok(s.hook(connect(), &[], ALICE));
        // Fill the rest of the disk, leaving a few bytes: the next line
        // can only be written in part.
        let mut f = File::create(spool.join("filler")).unwrap();
        let _ = f.write_all(&vec![b'x'; 64 * 1024]);
        drop(f);
        let mut stored = 0;
        for _ in 0..20 {
            let out = ok(s.hook(connect(), &[], ALICE));
            if stderr(&out).is_empty() {
                stored += 1;
            } else {
                assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
            }
        }
        let lines = s.lines(); // panics on a torn line
        assert_eq!(lines.len(), 1 + stored);
    });
    let _ = Command::new("umount").arg(&spool).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn bad_config_still_writes_with_one_warning_per_problem() {
    let s = Site::new("badconf");
    s.settings(&format!(
        "this line is garbage\nROTATE_MAX_BYTES=lots\nSPOOL_DIR=\"{}\"\nAUTH_HEADER=oops\n",
        s.spool().display()
    ));
    let out = ok(s.hook(connect(), &[], ALICE));
    let err = stderr(&out);
    assert!(err.contains(":1:") && err.contains("ROTATE_MAX_BYTES") && err.contains("AUTH_HEADER"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("openvpn-telemetry: ")));
    assert_eq!(s.lines().len(), 1, "the good SPOOL_DIR line is still used");
}

/// A missing settings file means the default spool, silently. Shown in a
/// private mount namespace with a tmpfs over /var/spool, so the test never
/// writes into a real /var/spool/openvpn-telemetry of the machine it runs on.
#[test]
#[ignore = "needs root: make test runs it"]
fn missing_config_means_the_default_spool() {
    require::root("for a private mount namespace");
    let s = Site::new("noconf");
    let script = "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /var/spool; \
        mkdir -p /var/spool/openvpn-telemetry/pending; \
        env -i OPENVPN_TELEMETRY_CONFIG=\"$1\" common_name=alice \"$0\"; \
        cat /var/spool/openvpn-telemetry/queue.log";
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(s.bin(connect()))
        .arg(s.root.join("does-not-exist.env"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "no warning for a missing file: {}", stderr(&out));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["common_name"], "alice");
}

#[test]
fn garbage_environment_is_escaped_into_valid_capped_json() {
    let s = Site::new("hostile");
    let huge = vec![b'A'; 100_000];
    let env: &[(&str, &[u8])] = &[
        ("common_name", b"ev\"il\\\n{\"x\":1}\r\x01\x7f\xff\xfe"),
        ("username", b"\xc3\x28bad-utf8"),
        ("IV_PLAT", &huge),
        ("IV_VER", b"\n\n\n"),
        ("trusted_port", b"not-a-port\x1b[2J"),
        ("bytes_sent", b"99999999999999999999999"),
        ("time_unix", b"1700000000; rm -rf /"),
    ];
    ok(s.hook(disconnect(), &[], env));
    let raw = fs::read(s.spool().join("queue.log")).unwrap();
    assert_eq!(raw.iter().filter(|&&b| b == b'\n').count(), 1, "exactly one line");
    assert!(raw.len() < 8 * 1024, "fields are capped: {} bytes", raw.len());
    let l = &s.lines()[0];
    assert_eq!(l["common_name"], "ev\"il\\\n{\"x\":1}\r\u{1}\u{7f}\\xFF\\xFE");
    assert_eq!(l["username"], "\\xC3(bad-utf8");
    assert_eq!(l["client_platform"].as_str().unwrap().len(), 1024);
    assert!(l.get("bytes_sent").is_none() && l.get("session_id").is_none());
}

#[test]
fn stuck_lock_costs_milliseconds_and_loses_nothing() {
    let s = Site::new("stuck");
    ok(s.hook(connect(), &[], ALICE));
    // Another process holds the lock "forever" (until this test ends).
    let holder = Group::spawn(
        Command::new("flock").arg(s.spool().join("queue.lock")).args(["sleep", "600"]).stdout(Stdio::null()),
    );
    let lock = File::open(s.spool().join("queue.lock")).unwrap();
    while lock.try_lock().is_ok() {
        lock.unlock().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let out = ok(s.hook(disconnect(), &[], ALICE));
    let took = started.elapsed();
    drop(holder);
    // Generous bound for a noisy machine: blocking on the lock would take
    // the full 600 s; `make bench` measures the real figure.
    assert!(took < Duration::from_secs(2), "hook took {took:?} with a stuck lock");
    assert!(stderr(&out).contains("lock busy"), "{}", stderr(&out));
    let chunks: Vec<_> = fs::read_dir(s.spool().join("pending")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(chunks.len(), 1);
    let line: Value = serde_json::from_str(fs::read_to_string(&chunks[0]).unwrap().trim_end()).unwrap();
    assert_eq!(line["type"], "SESSION_DISCONNECTED");
    assert_eq!(line["seq"], 2, "the bypass still gets a unique, later seq");
    assert_eq!(s.lines().len(), 1);
}

#[test]
// The switch exists only in dev-profile builds (src/hook.rs).
#[cfg_attr(not(debug_assertions), ignore = "OPENVPN_TELEMETRY_TEST_PANIC exists only in dev builds")]
fn a_panic_is_caught_and_exits_zero_in_one_line() {
    let s = Site::new("panic");
    let mut c = s.hook(connect(), &[], ALICE);
    c.env("OPENVPN_TELEMETRY_TEST_PANIC", "1");
    let out = ok(c);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("internal error") && err.contains("panic requested"), "{err}");
}

#[test]
fn no_network_and_no_fork_from_a_hook() {
    require::program("strace", "-V", "strace");
    let s = Site::new("nonet");
    let trace = s.root.join("trace");
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-e", "trace=network,process", "-o"]).arg(&trace).arg(s.bin(connect()));
    c.env_clear().env("OPENVPN_TELEMETRY_CONFIG", s.config_path());
    for (k, v) in ALICE {
        c.env(k, OsStr::from_bytes(v));
    }
    c.env("TELEMETRY_URL", "https://127.0.0.1:1/");
    ok(c);
    let calls = fs::read_to_string(&trace).unwrap();
    let bad: Vec<_> = calls
        .lines()
        .filter(|l| {
            ["socket(", "connect(", "sendto(", "clone(", "clone3(", "fork(", "vfork("].iter().any(|c| l.contains(c))
        })
        .collect();
    assert!(bad.is_empty(), "hook made network or process calls: {bad:?}");
    assert!(calls.contains("execve("), "strace saw the hook run: {calls}");
    assert_eq!(s.lines().len(), 1);
}

#[test]
fn never_follows_a_symlink_in_the_spool() {
    let s = Site::new("symlink");
    let victim = s.root.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    symlink(&victim, s.spool().join("queue.log")).unwrap();
    // Not followed: the event takes the bypass into pending/ instead.
    let out = ok(s.hook(connect(), &[], ALICE));
    assert!(stderr(&out).contains("instead"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    let bypassed: Vec<_> = fs::read_dir(s.spool().join("pending")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(bypassed.len(), 1, "{bypassed:?}");
    assert!(fs::read_to_string(&bypassed[0]).unwrap().contains("\"alice\""));
    fs::remove_file(s.spool().join("queue.log")).unwrap();
    fs::remove_file(s.spool().join("seq")).unwrap();
    symlink(&victim, s.spool().join("seq")).unwrap();
    ok(s.hook(connect(), &[], ALICE));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    // The counter as a link: replaced (the link itself), never appended to.
    fs::remove_file(s.spool().join("seq.counter")).unwrap();
    symlink(&victim, s.spool().join("seq.counter")).unwrap();
    ok(s.hook(connect(), &[], ALICE));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(fs::symlink_metadata(s.spool().join("seq.counter")).unwrap().is_file());
    assert_eq!(s.lines().len(), 2);
}

#[test]
fn files_are_0660_with_the_spool_group_whatever_the_umask() {
    let s = Site::new("modes");
    if is_root() {
        // The installed layout: nobody:nogroup, setgid, group-writable.
        let (uid, gid) = (65534, 65534);
        std::os::unix::fs::chown(s.spool(), Some(uid), Some(gid)).unwrap();
        fs::set_permissions(s.spool(), fs::Permissions::from_mode(0o2770)).unwrap();
        fs::set_permissions(&s.root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(s.config_path(), fs::Permissions::from_mode(0o644)).unwrap();
    }
    // OpenVPN may run scripts with a strict umask.
    let mut sh = Command::new("sh");
    sh.arg("-c").arg("umask 077; exec \"$0\"").arg(s.bin(connect()));
    sh.env_clear().env("OPENVPN_TELEMETRY_CONFIG", s.config_path());
    let c = if is_root() { as_nobody(sh) } else { sh };
    ok(c);
    let dir_gid = fs::metadata(s.spool()).unwrap().gid();
    for f in ["queue.log", "seq", "seq.counter", "queue.lock"] {
        let m = fs::symlink_metadata(s.spool().join(f)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o660, "{f} mode");
        assert_eq!(m.gid(), dir_gid, "{f} group");
    }
}

#[test]
#[ignore = "needs root: make test runs it"]
fn nobody_uses_the_hook_companion_and_never_silently_moves() {
    require::root("to run a hook as nobody");
    let s = Site::new("nobody");
    let spool2 = s.root.join("custom-spool");
    fs::create_dir_all(spool2.join("pending")).unwrap();
    std::os::unix::fs::chown(&spool2, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&s.root, fs::Permissions::from_mode(0o755)).unwrap();
    // The secret file nobody may not read, and its public companion.
    s.settings(&format!("SPOOL_DIR={}\nAUTH_HEADER=\"Authorization: Bearer s3cret\"\n", spool2.display()));
    fs::set_permissions(s.config_path(), fs::Permissions::from_mode(0o640)).unwrap();
    let companion = s.root.join("agent.hook.env");
    fs::write(&companion, format!("SPOOL_DIR={}\n", spool2.display())).unwrap();
    let out = ok(as_nobody(s.hook(connect(), &[], ALICE)));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(spool2.join("queue.log")).unwrap().lines().count(), 1);

    // Without a companion: a warning naming both files, never silence.
    fs::remove_file(&companion).unwrap();
    let out = ok(as_nobody(s.hook(connect(), &[], ALICE)));
    let err = stderr(&out);
    assert!(err.contains("agent.env") && err.contains("agent.hook.env") && err.contains("Permission denied"), "{err}");
}

/// 250 hooks at once while the queue is rotated the way the agent does it
/// (flock queue.lock, rename into pending/): every event arrives exactly
/// once, every line is whole, and seq increases in queue order.
#[test]
fn hundreds_of_parallel_hooks_racing_rotation() {
    const HOOKS: usize = 250;
    let s = Arc::new(Site::new("race"));
    let stop = Arc::new(AtomicBool::new(false));
    let rotator = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                rotate(&s.spool(), n);
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    all_at_once(&s, HOOKS, |s, i| {
        let name = format!("user{i}");
        let hook = if i % 2 == 0 { connect() } else { disconnect() };
        s.hook(hook, &[], &[("common_name", name.as_bytes()), ("trusted_ip", b"192.0.2.1")])
    });
    stop.store(true, Ordering::Relaxed);
    rotator.join().unwrap();
    rotate(&s.spool(), 1_000_000);

    let mut chunks: Vec<_> = fs::read_dir(s.spool().join("pending")).unwrap().map(|e| e.unwrap().path()).collect();
    chunks.sort();
    let mut names = std::collections::HashSet::new();
    let mut last_seq = 0;
    for c in &chunks {
        let text = fs::read_to_string(c).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", c.display());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
            assert!(names.insert(v["common_name"].as_str().unwrap().to_string()), "duplicate {line}");
            let seq = v["seq"].as_u64().unwrap();
            if !c.to_string_lossy().contains("-h") {
                assert!(seq > last_seq, "seq {seq} after {last_seq} in queue order");
                last_seq = seq;
            }
        }
    }
    assert_eq!(names.len(), HOOKS, "every event exactly once");
}

/// The agent's rotation protocol, from outside: lock, rename, unlock.
fn rotate(spool: &Path, n: u64) {
    let lock = File::options().create(true).truncate(false).write(true).open(spool.join("queue.lock")).unwrap();
    lock.lock().unwrap();
    let q = spool.join("queue.log");
    if q.exists() {
        fs::rename(&q, spool.join(format!("pending/{:020}-q{n}.ndjson", n))).unwrap();
    }
}

/// Every event in `pending/` after a final rotation: (file name, seq,
/// common_name) in file order; checks every line is whole JSON.
fn spooled_events(spool: &Path) -> Vec<(String, u64, String)> {
    let mut chunks: Vec<_> = fs::read_dir(spool.join("pending")).unwrap().map(|e| e.unwrap().path()).collect();
    chunks.sort();
    let mut out = Vec::new();
    for c in &chunks {
        let text = fs::read_to_string(c).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", c.display());
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
            let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("seq not an integer: {line}"));
            out.push((name.clone(), seq, v["common_name"].as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

/// The storm of issue 12: 300 hooks released at once (OpenVPN restarting)
/// while queue.log is rotated every 2 ms. Every event exactly once, every
/// seq a unique non-zero integer, increasing within each file. How many
/// reach queue.log rather than a bypass chunk depends on the machine's
/// load (`make bench` measures it: ≥ 99% on 2 idle cores; 43–49% seen
/// here with other builds running); the test only asserts that more than a
/// quarter do, which the old fixed 15 ms poll missed by far (2–18% in
/// queue.log), and that bypassing never costs a number.
#[test]
fn connection_storm_gives_every_event_a_unique_seq() {
    const HOOKS: usize = 300;
    let s = Arc::new(Site::new("storm"));
    // An earlier version's counter: numbers continue from it, no gap.
    fs::write(s.spool().join("seq"), "1000\n").unwrap();
    // The rotator is a process of its own, as the agent is (a thread of
    // this process would stall behind its 300 forks holding the lock).
    let mut rotator = Group::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(
                "i=0; while [ ! -e stop ]; do \
               flock queue.lock sh -c '[ ! -e queue.log ] || mv queue.log pending/$(printf %020d $0)-q.ndjson' $i; \
               i=$((i+1)); sleep 0.002; done",
            )
            .current_dir(s.spool()),
    );
    all_at_once(&s, HOOKS, |s, i| s.hook(connect(), &[], &[("common_name", format!("storm{i}").as_bytes())]));
    fs::write(s.spool().join("stop"), "").unwrap();
    rotator.child().wait().unwrap();
    rotate(&s.spool(), 1_000_000);

    let events = spooled_events(&s.spool());
    let names: std::collections::HashSet<_> = events.iter().map(|e| e.2.clone()).collect();
    assert_eq!((events.len(), names.len()), (HOOKS, HOOKS), "every event exactly once");
    let seqs: std::collections::HashSet<_> = events.iter().map(|e| e.1).collect();
    assert_eq!(seqs.len(), HOOKS, "seq unique across queue and bypass chunks");
    assert!(events.iter().all(|e| e.1 > 1000), "never 0, never below the old counter");
    assert_eq!(seqs.iter().max(), Some(&(1000 + HOOKS as u64)), "no gap after the old counter");
    for w in events.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(w[0].1 < w[1].1, "seq {} after {} in {}", w[1].1, w[0].1, w[0].0);
        }
    }
    let queued = events.iter().filter(|e| e.0.contains("-q")).count();
    eprintln!("storm: {queued}/{HOOKS} events through queue.log");
    assert!(queued * 4 > HOOKS, "only {queued}/{HOOKS} through queue.log: a moving lock was taken for stuck");
}

/// A lock that really is stuck: its holder is stopped (SIGSTOP) while it
/// holds queue.lock. A burst of hooks all bypass, each quickly, with
/// numbers unique across the bypass chunks and what queue.log gets after.
#[test]
fn a_stopped_lock_holder_is_bypassed_with_unique_seq() {
    const HOOKS: usize = 40;
    let s = Arc::new(Site::new("stopped"));
    ok(s.hook(connect(), &[], &[("common_name", b"before")]));
    // flock and its sleep in a group of their own, stopped together.
    let holder = Group::spawn(
        Command::new("flock").arg(s.spool().join("queue.lock")).args(["sleep", "600"]).stdout(Stdio::null()),
    );
    let lock = File::open(s.spool().join("queue.lock")).unwrap();
    while lock.try_lock().is_ok() {
        lock.unlock().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(HOOKS));
    let workers: Vec<_> = (0..HOOKS)
        .map(|i| {
            let (s, b) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let name = format!("stuck{i}");
                let c = s.hook(connect(), &[], &[("common_name", name.as_bytes())]);
                b.wait();
                stderr(&ok(c))
            })
        })
        .collect();
    for w in workers {
        let err = w.join().unwrap();
        assert!(err.contains("lock busy"), "{err}");
    }
    let took = started.elapsed();
    drop(holder);
    // Generous for a noisy machine: waiting on the holder would be 600 s.
    assert!(took < Duration::from_secs(5), "{HOOKS} hooks took {took:?} with a stopped holder");
    ok(s.hook(connect(), &[], &[("common_name", b"after")]));
    rotate(&s.spool(), 1_000_000);
    let events = spooled_events(&s.spool());
    assert_eq!(events.len(), HOOKS + 2);
    let seqs: std::collections::HashSet<_> = events.iter().map(|e| e.1).collect();
    assert_eq!(seqs.len(), HOOKS + 2, "unique seq across bypass chunks and queue.log");
    assert!(events.iter().all(|e| e.1 > 0));
    let by_name = |n: &str| events.iter().find(|e| e.2 == n).unwrap().1;
    assert_eq!((by_name("before"), by_name("after")), (1, HOOKS as u64 + 2));
}

/// std's runtime set-up is skipped for speed (src/rt.rs); what of it the
/// hooks need still holds. With fds 0-2 closed, no spool file is opened as
/// "stderr": the warning about a bad setting goes nowhere, not into a spool
/// file, and the line is still whole.
#[test]
fn closed_stdio_never_lets_a_warning_into_the_spool() {
    let s = Site::new("closedfds");
    s.settings(&format!("SPOOL_DIR={}\nMAX_SPOOL_BYTES=lots\n", s.spool().display()));
    for _ in 0..2 {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("exec \"$0\" <&- >&- 2>&-").arg(s.bin(connect()));
        sh.env_clear().env("OPENVPN_TELEMETRY_CONFIG", s.config_path()).env("common_name", "alice");
        let out = sh.output().unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
    assert_eq!(s.lines().len(), 2); // panics on a line that is not JSON
    for f in ["seq.counter", "queue.lock"] {
        let text = fs::read(s.spool().join(f)).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("MAX_SPOOL_BYTES"), "warning written into {f}");
    }
}

/// A stderr whose reader is gone (SIGPIPE would kill the hook, and OpenVPN
/// would reject the client): the hook still exits 0 and stores the event.
#[test]
fn a_closed_pipe_on_stderr_still_exits_zero() {
    let s = Site::new("epipe");
    s.settings(&format!("SPOOL_DIR={}\nMAX_SPOOL_BYTES=lots\n", s.spool().display()));
    // The reader exits at once, so the pipe is closed before the hook
    // warns; the hook's own status is what matters, kept in a file.
    let status = s.root.join("status");
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("( \"$0\" 2>&1; echo $? > \"$1\" ) | (exec 0<&-; true); sleep 0.2")
        .arg(s.bin(connect()))
        .arg(&status);
    c.env_clear().env("OPENVPN_TELEMETRY_CONFIG", s.config_path()).env("common_name", "alice");
    assert!(c.status().unwrap().success());
    assert_eq!(fs::read_to_string(&status).unwrap().trim(), "0", "hook exit status with a closed stderr pipe");
    assert_eq!(s.lines().len(), 1);
}
