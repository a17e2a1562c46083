//! Attacks, each tried for real against a staged install: the
//! attacker is user `nobody`, which is what OpenVPN drops to, so "whoever
//! compromises OpenVPN"; or a hostile telemetry server. Every test tries
//! each step of its attack (a step the fix refuses simply fails) and then
//! asserts the OUTCOME: nobody gains nothing — no root-only file becomes
//! theirs, no secret reaches a file they can read or the server, nothing
//! outside the spool is deleted, no command of ours hangs, no raw control
//! byte reaches root's terminal or the journal.
//!
//! Attacks on the agent run twice: on the spool as the installer under
//! test leaves it (`Installed`), and on the spool as a0d36ed's installer
//! left it (`Legacy`: nobody owned the directories): traps laid before an
//! upgrade wait there for the new agent and installer, so those must hold
//! on it as well. Sub-attacks run in parallel (a hang costs the bound
//! once) and every one that succeeds is reported, not only the first.
//!
//! Needs root (it fails, never skips, without). `OVT_TEST_BIN=path` runs
//! the attacks against another build of the binary; `OVT_TEST_KEEP=1`
//! keeps the staging roots (/tmp/ovt-sec-*) for a look.
// Set-up that cannot go right is a failed test: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/attack.rs"]
mod attack;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use attack::{
    BOUND, Findings, Receiver, Running, Staged, each, fingerprint, json_controls, root_only_dir, secret_pieces,
    terminal_controls, tree,
};
use nix::sys::signal::Signal;

const TOKEN: &str = "tok-9f3a61c2e4b7-do-not-leak";
const FILE_SINK: &str = "TELEMETRY_URL=file:///var/lib/ovt-sink/batches.ndjson\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// As the installer under test leaves the spool.
    Installed,
    /// As a0d36ed's installer left it: nobody:nogroup 2770 everywhere.
    Legacy,
    /// Legacy, attacked, and then upgraded (`install` as root) before the
    /// agent or root's commands run: the traps nobody laid before the
    /// upgrade are still there for them.
    Upgraded,
}

/// Where the agent and root's commands are attacked.
const LAYOUTS: [Layout; 3] = [Layout::Installed, Layout::Legacy, Layout::Upgraded];
/// Where the installer is attacked (Legacy is the upgrade).
const INSTALL_LAYOUTS: [Layout; 2] = [Layout::Installed, Layout::Legacy];

fn stage(name: &str, layout: Layout, env: &str) -> Staged {
    let s = Staged::new(&format!("{name}-{layout:?}").to_lowercase(), env);
    if layout != Layout::Installed {
        s.legacy_layout();
    }
    s
}

/// nobody runs `script`; on the Upgraded layout root then runs `install`.
/// The result tells both, for messages.
fn lay_traps(s: &Staged, layout: Layout, script: &str) -> attack::Ran {
    let mut ran = s.nobody(script);
    if layout == Layout::Upgraded {
        let up = s.install();
        ran.what = "attacker (nobody), then the upgrade (install as root)".into();
        ran.stdout.extend_from_slice(format!("\n--- the upgrade: {}\n", up.show()).as_bytes());
    }
    ran
}

/// Re-installs with `.env` = `env` (settings that need a started receiver),
/// then puts the legacy layout back if asked.
fn reinstall(s: &Staged, layout: Layout, env: &str) {
    s.env(env);
    let r = s.install();
    assert!(r.success(), "{}", r.show());
    if layout != Layout::Installed {
        s.legacy_layout();
    }
}

/// The file:// sink directory, the agent's (as an operator makes it).
fn sink_dir(s: &Staged) -> std::path::PathBuf {
    let sink = s.p("var/lib/ovt-sink");
    fs::create_dir_all(&sink).unwrap();
    std::os::unix::fs::chown(&sink, Some(s.agent_uid()), None).unwrap();
    sink
}

/// A seed-format event line (what a hook writes) for `common_name`.
fn event(seq: u64, common_name: &str) -> String {
    format!(
        r#"{{"event_id":"{}","seq":{seq},"type":"SESSION_CONNECTED","common_name":"{common_name}","real_ip":"198.51.100.7","real_port":"5555","virtual_ip":"10.8.0.6","event_time_vpn":"2026-02-13T12:10:05Z"}}"#,
        uuid::Uuid::new_v4()
    )
}

// ---------------------------------------------------------------------
// 1. nobody -> root, through the installer

/// nobody replaces `pending/` and `failed/` by links to root-only
/// directories (and plants links and hard links to root-only files as
/// spool files), then root runs `install` again, the documented upgrade,
/// or `uninstall --purge`. Outcome: every root-only target keeps its mode,
/// owner and content, and nobody can neither read nor write any of them
/// afterwards.
#[test]
#[ignore = "needs root: make test runs it"]
fn reinstall_never_hands_a_root_only_file_to_nobody() {
    let cases = INSTALL_LAYOUTS.into_iter().flat_map(|l| [(l, "install"), (l, "uninstall --purge")]);
    each(cases, |(layout, verb)| {
        let mut f = Findings::default();
        let s = stage(if verb == "install" { "p1-install" } else { "p1-purge" }, layout, "");
        s.hook("alice");
        let etc = s.p("etc");
        root_only_dir(&etc.join("victim-a"), &[("shadow", "root:$6$secret-a:19000::::::\n")]);
        root_only_dir(&etc.join("victim-b"), &[("sudoers", "root ALL=(ALL) ALL\n")]);
        for name in ["victim-file", "victim-hl"] {
            fs::write(etc.join(name), "root-only secret file\n").unwrap();
            fs::set_permissions(etc.join(name), fs::Permissions::from_mode(0o600)).unwrap();
        }
        // A hard link nobody could make where fs.protected_hardlinks=0 (the
        // kernel's default; this host may have it on): root makes it.
        fs::hard_link(etc.join("victim-hl"), s.spool().join("00000000000000000009-h9.ndjson")).unwrap();
        let targets = [etc.join("victim-a"), etc.join("victim-b"), etc.join("victim-file"), etc.join("victim-hl")];
        let before: Vec<_> = targets.iter().map(|t| tree(t)).collect();

        let attack = s.nobody(
            r#"cd "$S" || exit 0
            mv pending pending.old; ln -s ../../../etc/victim-a pending
            mv failed failed.old; ln -s ../../../etc/victim-b failed
            mv queue.log queue.old; ln -s ../../../etc/victim-file queue.log
            ln -s ../../../../etc/victim-file pending.old/00000000000000000001-h1.ndjson
            ln -s ../../../../etc/victim-file pending/00000000000000000002-h2.ndjson
            ln ../../../etc/victim-file dropped
            ls -la "$S" "$S/pending/" "$S/failed/" 2>&1
            exit 0"#,
        );
        let install = if verb == "install" {
            s.install()
        } else {
            let mut c = std::process::Command::new(&s.bin);
            c.args(["uninstall", "--purge", "--root"]).arg(&s.root).env_remove("OPENVPN_TELEMETRY_CONFIG");
            attack::run("uninstall --purge", &mut c, BOUND)
        };
        f.expect(install.finished(), || format!("{layout:?}: {verb} hangs: {}", install.show()));
        let after_install: Vec<_> = targets.iter().map(|t| tree(t)).collect();
        // And use whatever was handed over.
        let grab = s.nobody(
            r#"for f in "$R/etc/victim-a/shadow" "$R/etc/victim-b/sudoers" "$R/etc/victim-file" "$R/etc/victim-hl" \
                     "$S/00000000000000000009-h9.ndjson"; do
                cat "$f" >/dev/null 2>&1 && echo "READ $f"; echo pwned 2>/dev/null >> "$f" && echo "WROTE $f"
            done; exit 0"#,
        );
        for (i, t) in targets.iter().enumerate() {
            f.expect(after_install[i] == before[i], || {
                format!(
                    "{layout:?}: {verb} changed root-only {}:\nbefore: {:#?}\nafter:  {:#?}\n{}\n{}",
                    t.display(),
                    before[i],
                    after_install[i],
                    attack.show(),
                    install.show()
                )
            });
        }
        f.expect(!grab.out().contains("READ") && !grab.out().contains("WROTE"), || {
            format!("{layout:?}: after {verb} nobody reads/writes root-only files:\n{}", grab.out())
        });
        f
    })
    .verdict("nobody -> root through install / uninstall --purge");
}

/// The swap timed to land while the upgrade runs (the issue's inotify
/// race): on a0d36ed's layout nobody swaps `pending/` and `failed/` for
/// links to root-only directories and back, in a tight loop, while root
/// runs `install` (several times, as a refused install is retried).
/// Outcome: the root-only directories keep their mode, owner and content.
#[test]
#[ignore = "needs root: make test runs it"]
fn the_upgrade_never_follows_a_swap_made_while_it_runs() {
    const RACER: &str = r#"
import os, time
os.chdir(os.environ["S"])
end = time.time() + 15
swaps = (("pending", "../../../etc/victim-a"), ("failed", "../../../etc/victim-b"))
while time.time() < end:
    for d, target in swaps:
        try:
            os.rename(d, d + ".real")
            os.symlink(target, d)
        except OSError:
            pass
    time.sleep(0.0005)
    for d, target in swaps:
        try:
            if os.path.islink(d):
                os.unlink(d)
            os.rename(d + ".real", d)
        except OSError:
            pass
    time.sleep(0.0005)
"#;
    each(0..6, |i| {
        let mut f = Findings::default();
        let s = stage(&format!("p1-race-{i}"), Layout::Legacy, "");
        s.hook("alice");
        let etc = s.p("etc");
        let shadow = "root:$6$secret-a:19000::::::\n";
        root_only_dir(&etc.join("victim-a"), &[("shadow", shadow), ("gshadow", shadow), ("passwd-", shadow)]);
        root_only_dir(&etc.join("victim-b"), &[("sudoers", "root ALL=(ALL) ALL\n"), ("key", "k\n")]);
        let targets = [etc.join("victim-a"), etc.join("victim-b")];
        let before: Vec<_> = targets.iter().map(|t| tree(t)).collect();
        let racer = Running::start(
            "racer (nobody)",
            &mut s.nobody_cmd(&format!("exec /usr/bin/python3 -c '{}'", RACER.replace('\'', "\""))),
        );
        std::thread::sleep(Duration::from_millis(200));
        let mut installs = Vec::new();
        for _ in 0..5 {
            installs.push(s.install());
        }
        racer.signal(Signal::SIGKILL);
        let racer = racer.wait(BOUND);
        for (k, t) in targets.iter().enumerate() {
            let after = tree(t);
            f.expect(after == before[k], || {
                format!(
                    "race {i}: an install under nobody's swaps changed root-only {}:\nbefore: {:#?}\nafter:  {:#?}\n{}\n{}",
                    t.display(),
                    before[k],
                    after,
                    racer.show(),
                    installs.iter().map(|r| r.show()).collect::<Vec<_>>().join("\n")
                )
            });
        }
        for r in &installs {
            f.expect(r.finished(), || format!("race {i}: {}", r.show()));
        }
        f
    })
    .verdict("nobody -> root through a swap racing the upgrade");
}

// ---------------------------------------------------------------------
// 2. nobody -> the token, or any file, through the agent

/// Trap sets for the secret tests, `$T` being the target directory (from
/// the spool) and `$F` a file in it.
const SECRET_TRAPS: [(&str, &str); 4] = [
    (
        // pending/ itself swapped for a link to the target directory.
        "pending/ -> the target directory",
        r#"mv pending pending.old; ln -s "../../../$T" pending"#,
    ),
    (
        // The directories stay; links and a hard link pose as chunks, and
        // files nobody owns (hard-linked outside failed/, so nobody keeps
        // reaching them after an upgrade closes failed/) wait where lines
        // or chunks are set aside.
        "links as chunks, nobody's files in failed/",
        r#"ln -s "../../../../$T/$F" pending/00000000000000000001-h1.ndjson
        ln "../../../$T/$F" pending/00000000000000000002-h2.ndjson
        ln -s "../../../../$T" pending/00000000000000000003-h3.ndjson
        for n in "$F.bad" "$F.unreadable" 00000000000000000001-h1.ndjson.bad \
                 00000000000000000001-h1.ndjson.unreadable 00000000000000000002-h2.ndjson.bad; do
            touch "failed/$n" && chmod 666 "failed/$n" && ln "failed/$n" "keep-$n"
        done"#,
    ),
    (
        // The files the agent keeps its own state in, as links.
        "links as the agent's state files",
        r#"for n in agent-state.json sessions.state certs.state dropped; do
            rm -f $n; ln -s "../../../$T/$F" $n
        done"#,
    ),
    (
        // What nobody could do where fs.protected_hardlinks=0 (the
        // kernel's default; this host may have it on): hard links to the
        // target file as chunks. Root makes them on nobody's behalf.
        "hard links as chunks (protected_hardlinks=0)",
        ROOT_MAKES_HARD_LINKS,
    ),
];

/// Marks the trap set [`secret_traps`] plays itself, as root.
const ROOT_MAKES_HARD_LINKS: &str = "# root makes the hard links";

/// Runs a trap set as nobody with `$T`/`$F` set.
fn secret_traps(s: &Staged, layout: Layout, target: &str, file: &str, traps: &str) -> attack::Ran {
    if traps == ROOT_MAKES_HARD_LINKS {
        for name in ["00000000000000000001-h1.ndjson", ".00000000000000000002-h2.ndjson.tmp"] {
            fs::hard_link(s.p(&format!("{target}/{file}")), s.spool().join("pending").join(name)).unwrap();
        }
        // An old temporary file is adopted as a chunk.
        let tmp = s.spool().join("pending/.00000000000000000002-h2.ndjson.tmp");
        let t = nix::sys::time::TimeSpec::new(1_600_000_000, 0);
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, &tmp, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .unwrap();
    }
    lay_traps(s, layout, &format!("cd \"$S\" || exit 0\nT='{target}'\nF='{file}'\n{traps}\nexit 0"))
}

/// nobody points the agent at /etc/openvpn-telemetry/agent.env (it holds
/// the bearer token and the agent's group may read it): `pending/` as a
/// link to that directory, or links and a hard link to agent.env posing
/// as chunks, with files of nobody's own where the agent would set its
/// lines aside. Then the agent runs. Outcome: the token is in no file
/// nobody can read and in no body the server got, and
/// /etc/openvpn-telemetry is untouched. On the installed spool the hook's
/// event is still delivered (the system keeps working).
#[test]
#[ignore = "needs root: make test runs it"]
fn the_agent_never_copies_the_token_where_nobody_or_the_server_sees_it() {
    let cases = LAYOUTS.into_iter().flat_map(|l| SECRET_TRAPS.map(|t| (l, t)));
    each(cases, |(layout, (what, traps))| {
        let mut f = Findings::default();
        let s = stage("p2-token", layout, "");
        let rx = Receiver::start(&s, &["--token", TOKEN]);
        reinstall(&s, layout, &format!("{}AUTH_HEADER=\"Authorization: Bearer {TOKEN}\"\n", rx.settings()));
        s.hook("alice");
        let etc = s.p("etc/openvpn-telemetry");
        let etc_before = tree(&etc);
        assert!(s.nobody_can_read(TOKEN).is_empty(), "nobody reads the token right after install");

        let attack = secret_traps(&s, layout, "etc/openvpn-telemetry", "agent.env", traps);
        let agent = s.agent_once(&[]);
        let readable = s.nobody_can_read(TOKEN);
        f.expect(readable.is_empty(), || {
            format!(
                "{layout:?}, {what}: nobody can read the token in {readable:?}\n{}\n{}",
                attack.show(),
                agent.show()
            )
        });
        let bodies = String::from_utf8_lossy(&rx.bodies()).into_owned();
        f.expect(!bodies.contains(TOKEN), || format!("{layout:?}, {what}: the token was POSTed in a body:\n{bodies}"));
        f.expect(agent.finished(), || format!("{layout:?}, {what}: {}", agent.show()));
        let etc_after = tree(&etc);
        f.expect(etc_after == etc_before, || {
            format!("{layout:?}, {what}: /etc/openvpn-telemetry changed:\n{etc_before:#?}\n{etc_after:#?}")
        });
        if layout == Layout::Installed {
            f.expect(rx.common_names().contains(&"alice".to_string()), || {
                format!("{what}: the hook's event is not delivered: {}", agent.show())
            });
        }
        f
    })
    .verdict("nobody -> the token through the agent");
}

/// With a source configured (STATUS_LOG) the unit may grant the agent
/// CAP_DAC_READ_SEARCH. nobody points the agent (the same two trap sets)
/// at a root-only directory holding a JSON-looking line and a password
/// line. Outcome: neither secret reaches the server or a file nobody can
/// read, and the root-only directory is unchanged.
#[test]
#[ignore = "needs root: make test runs it"]
fn the_agents_read_access_never_opens_what_nobody_points_at() {
    const SECRET_JSON: &str = "secret-json-5d0e77";
    const SECRET_TEXT: &str = "secret-text-a41b09";
    let cases = LAYOUTS.into_iter().flat_map(|l| SECRET_TRAPS.map(|t| (l, t)));
    each(cases, |(layout, (what, traps))| {
        let mut f = Findings::default();
        let s = stage("p2-cap", layout, "");
        let rx = Receiver::start(&s, &[]);
        let status = s.p("run/openvpn-server/status-server.log");
        fs::create_dir_all(status.parent().unwrap()).unwrap();
        fs::write(&status, "TITLE,OpenVPN 2.6.3\nTIME,2026-02-13 12:00:00,1770984000\nEND\n").unwrap();
        fs::set_permissions(&status, fs::Permissions::from_mode(0o600)).unwrap();
        reinstall(&s, layout, &format!("{}STATUS_LOG=/run/openvpn-server/status-server.log\n", rx.settings()));
        fs::create_dir_all(s.p("root")).unwrap();
        fs::set_permissions(s.p("root"), fs::Permissions::from_mode(0o700)).unwrap();
        let victim = s.p("root/keys");
        let line = format!(
            r#"{{"event_id":"00000000-0000-4000-8000-00000000beef","seq":1,"type":"SESSION_CONNECTED","common_name":"{SECRET_JSON}"}}"#
        );
        root_only_dir(&victim, &[("keys.ndjson", &format!("{line}\npassword={SECRET_TEXT}\n"))]);
        let before = tree(&victim);

        let attack = secret_traps(&s, layout, "root/keys", "keys.ndjson", traps);
        let agent = s.agent_once(&[]);
        let bodies = String::from_utf8_lossy(&rx.bodies()).into_owned();
        for secret in [SECRET_JSON, SECRET_TEXT] {
            f.expect(!bodies.contains(secret), || {
                let first = bodies.lines().find(|l| l.contains(secret)).unwrap_or_default();
                format!(
                    "{layout:?}, {what}: {secret} was POSTed ({} times), e.g. {first}\n{}",
                    bodies.matches(secret).count(),
                    agent.show()
                )
            });
            let readable = s.nobody_can_read(secret);
            f.expect(readable.is_empty(), || {
                format!("{layout:?}, {what}: nobody reads {secret} in {readable:?}\n{}", attack.show())
            });
        }
        f.expect(agent.finished(), || format!("{layout:?}, {what}: {}", agent.show()));
        let after = tree(&victim);
        f.expect(after == before, || format!("{layout:?}, {what}: the root-only directory changed:\n{after:#?}"));
        f
    })
    .verdict("nobody -> root-only files through the agent's read access");
}

// ---------------------------------------------------------------------
// 3. nobody -> deletion

/// Trap sets for the deletion test: what, the script, and whether the
/// hook's event must still be delivered on the installed spool.
const DELETE_TRAPS: [(&str, &str, bool); 2] = [
    (
        "failed/ -> the sink directory",
        "mv failed failed.old; ln -s ../../lib/ovt-sink failed\n\
         printf 'not json at all\\n' > pending/00000000000000000001-h1.ndjson",
        true,
    ),
    (
        // Every name in the spool the agent opens or replaces, as a link
        // to the sink file (nobody may remove its own queue.lock and seq).
        "the agent's spool files -> the sink file",
        "for n in agent.lock queue.lock agent-state.json .agent-state.json.tmp sessions.state certs.state \
                  dropped seq seq.counter queue.log; do\n\
             rm -f $n; ln -s ../../lib/ovt-sink/batches.ndjson $n\n\
         done",
        false,
    ),
];

/// nobody replaces `failed/` by a link to the agent's own file:// sink
/// directory, where older batches and an operator's files are kept, with
/// MAX_SPOOL_BYTES making failed/'s share small; or links every file the
/// agent opens in the spool to the sink file. Outcome: no file there is
/// deleted or changed (the sink file only grows).
#[test]
#[ignore = "needs root: make test runs it"]
fn the_failed_bound_never_deletes_outside_the_spool() {
    let cases = LAYOUTS.into_iter().flat_map(|l| DELETE_TRAPS.map(|t| (l, t)));
    each(cases, |(layout, (what, traps, delivers))| {
        let mut f = Findings::default();
        let s = stage("p3-delete", layout, &format!("{FILE_SINK}MAX_SPOOL_BYTES=8192\nROTATE_MAX_BYTES=4096\n"));
        let sink = sink_dir(&s);
        let old_batches = format!("{}\n", event(1, "earlier")).repeat(12);
        let kept = [
            ("archive-2026-01.ndjson", format!("{}\n", event(2, "january")).repeat(20)),
            ("archive-2026-02.ndjson", format!("{}\n", event(3, "february")).repeat(20)),
            ("README.operator", "do not delete: these are the only copies\n".repeat(40)),
        ];
        for (name, text) in &kept {
            fs::write(sink.join(name), text).unwrap();
        }
        fs::write(sink.join("batches.ndjson"), &old_batches).unwrap();
        for e in fs::read_dir(&sink).unwrap() {
            let p = e.unwrap().path();
            std::os::unix::fs::chown(&p, Some(s.agent_uid()), None).unwrap();
            // Old, so that an oldest-first bound picks them first.
            let t = nix::sys::time::TimeSpec::new(1_600_000_000, 0);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &p,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
        let before: Vec<String> = kept.iter().map(|(n, _)| fingerprint(&sink.join(n))).collect();
        s.hook("bob");

        let attack = lay_traps(&s, layout, &format!("cd \"$S\" || exit 0\n{traps}\nexit 0"));
        let agent = s.agent_once(&[]);
        f.expect(agent.finished(), || format!("{layout:?}, {what}: {}", agent.show()));
        for (i, (name, _)) in kept.iter().enumerate() {
            let now = fingerprint(&sink.join(name));
            f.expect(now == before[i], || {
                format!(
                    "{layout:?}, {what}: the agent deleted or changed {name} next to its sink: {now}\n{}\n{}",
                    attack.show(),
                    agent.show()
                )
            });
        }
        let batches = fs::read_to_string(sink.join("batches.ndjson")).unwrap_or_default();
        f.expect(batches.starts_with(&old_batches), || {
            format!("{layout:?}, {what}: the sink lost its earlier batches")
        });
        if layout == Layout::Installed && delivers {
            f.expect(batches.contains("\"bob\""), || {
                format!("{what}: the hook's event is not delivered: {}", agent.show())
            });
        }
        f
    })
    .verdict("nobody -> deletion through failed/");
}

// ---------------------------------------------------------------------
// 4. nobody -> silent hangs

/// nobody writes a chunk with a malformed line and FIFOs where the agent
/// sets that line or chunk aside (`failed/<chunk>.bad`, `.unreadable`).
/// Outcome: `agent --once` ends within the bound.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_fifo_in_failed_never_hangs_the_agent() {
    each(LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = stage("p4-fifo-bad", layout, FILE_SINK);
        sink_dir(&s);
        let attack = lay_traps(
            &s,
            layout,
            r#"cd "$S" || exit 0
            c=00000000000000000001-h1.ndjson
            printf 'this is not json\n' > pending/$c
            mkfifo failed/$c.bad failed/$c.unreadable
            exit 0"#,
        );
        let agent = s.agent_once(&[]);
        f.expect(agent.finished(), || {
            format!("{layout:?}: a FIFO in failed/ hangs the agent\n{}\n{}", attack.show(), agent.show())
        });
        f
    })
    .verdict("nobody -> hang through failed/");
}

/// nobody replaces `queue.log` by a FIFO and records hook drops in
/// `dropped` (so the agent has a report to append to it); or makes
/// `dropped`, `queue.lock` or `seq.counter` a FIFO, or `queue.lock` a link. Outcome:
/// `agent --once` ends within the bound.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_fifo_as_queue_log_drop_count_or_lock_never_hangs_the_agent() {
    let plants = [
        ("a FIFO as queue.log", "rm -f queue.log; mkfifo queue.log; printf '3 1 3\\n' > dropped"),
        ("a FIFO as dropped", "rm -f dropped; mkfifo dropped"),
        ("a FIFO as queue.lock", "rm -f queue.lock; mkfifo queue.lock"),
        ("a link as queue.lock", "rm -f queue.lock; ln -s queue.log queue.lock"),
        ("a FIFO as seq.counter", "rm -f seq.counter; mkfifo seq.counter"),
    ];
    let cases = LAYOUTS.into_iter().flat_map(|l| plants.into_iter().enumerate().map(move |p| (l, p)));
    each(cases, |(layout, (i, (what, plant)))| {
        let mut f = Findings::default();
        let s = stage(&format!("p4-queue-{i}"), layout, FILE_SINK);
        sink_dir(&s);
        s.hook("carol");
        // A chunk to deliver, after which the drop report is due.
        let attack = lay_traps(
            &s,
            layout,
            &format!(
                "cd \"$S\" || exit 0\nprintf '%s\\n' '{}' > pending/00000000000000000005-h1.ndjson\n{plant}\nexit 0",
                event(9, "dave")
            ),
        );
        let agent = s.agent_once(&[]);
        f.expect(agent.finished(), || {
            format!("{layout:?}: {what} hangs the agent\n{}\n{}", attack.show(), agent.show())
        });
        f
    })
    .verdict("nobody -> hang through queue.log / dropped / queue.lock");
}

/// nobody puts a FIFO where the agent's state file goes, or the sources'
/// (`sessions.state`, `certs.state`, `pki.state`, with STATUS_LOG and EASYRSA_INDEX
/// set), before the agent first runs. Outcome: `agent --once` ends within
/// the bound, and the daemon, stopped with SIGTERM (as systemd does), ends
/// within the bound.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_fifo_as_the_agent_state_never_hangs_the_agent_nor_its_stop() {
    let cases = LAYOUTS.into_iter().flat_map(|l| {
        ["agent-state.json", "sessions.state", "certs.state", "pki.state"]
            .into_iter()
            .flat_map(move |n| [(l, n, true), (l, n, false)])
    });
    each(cases, |(layout, name, once)| {
        let mut f = Findings::default();
        let tag = format!("p4-state-{}-{}", name.split('.').next().unwrap_or(""), if once { "once" } else { "daemon" });
        let s = stage(&tag, layout, FILE_SINK);
        sink_dir(&s);
        if name != "agent-state.json" {
            // The sources keep their state there: give the agent sources.
            let status = s.p("run/openvpn-server/status-server.log");
            fs::create_dir_all(status.parent().unwrap()).unwrap();
            fs::write(&status, "TITLE,OpenVPN 2.6.3\nTIME,2026-02-13 12:00:00,1770984000\nEND\n").unwrap();
            let index = s.p("etc/openvpn/easy-rsa/pki/index.txt");
            fs::create_dir_all(index.parent().unwrap()).unwrap();
            fs::write(&index, "").unwrap();
            reinstall(
                &s,
                layout,
                &format!(
                    "{FILE_SINK}STATUS_LOG=/run/openvpn-server/status-server.log\n\
                     EASYRSA_INDEX=/etc/openvpn/easy-rsa/pki/index.txt\n"
                ),
            );
        }
        let plant = format!("cd \"$S\" || exit 0\nrm -f {name}; mkfifo {name}\nexit 0");
        let attack = lay_traps(&s, layout, &plant);
        if once {
            let once = s.agent_once(&[]);
            f.expect(once.finished(), || {
                format!("{layout:?}: a FIFO as {name} hangs agent --once\n{}\n{}", attack.show(), once.show())
            });
        } else {
            let daemon = Running::start("agent (daemon)", &mut s.agent_cmd(&[], &[]));
            std::thread::sleep(Duration::from_secs(1));
            daemon.signal(Signal::SIGTERM);
            let daemon = daemon.wait(BOUND);
            f.expect(daemon.finished(), || {
                format!(
                    "{layout:?}: with a FIFO as {name} the daemon does not stop on SIGTERM\n{}\n{}",
                    attack.show(),
                    daemon.show()
                )
            });
        }
        f
    })
    .verdict("nobody -> hang through the agent's state files");
}

/// nobody makes a chunk impossible for the agent to remove (on the legacy
/// spool nobody owns `pending/` and takes its write bit away). Outcome: no
/// re-POST of the same batch in a loop: `agent --once` ends within the
/// bound, and it and the daemon (4 s) send a handful of requests at most.
#[test]
#[ignore = "needs root: make test runs it"]
fn a_chunk_the_agent_cannot_remove_is_not_posted_in_a_loop() {
    each(LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = stage("p4-unlink", layout, "");
        let rx = Receiver::start(&s, &[]);
        reinstall(&s, layout, &format!("{}RETRY_SLEEP_SECONDS=1\n", rx.settings()));
        let attack = lay_traps(&s, layout, &format!(
            "cd \"$S\" || exit 0\nprintf '%s\\n' '{}' > pending/00000000000000000001-h1.ndjson\nchmod 0550 pending\nexit 0",
            event(1, "erin")
        ));
        let once = s.agent_once(&[]);
        let after_once = rx.requests();
        f.expect(once.finished(), || {
            format!("{layout:?}: agent --once never ends ({after_once} POSTs)\n{}\n{}", attack.show(), once.show())
        });
        f.expect(after_once <= 10, || format!("{layout:?}: agent --once sent {after_once} requests for one chunk"));
        let daemon = Running::start("agent (daemon)", &mut s.agent_cmd(&[], &[]));
        std::thread::sleep(Duration::from_secs(4));
        let posts = rx.requests() - after_once;
        daemon.signal(Signal::SIGTERM);
        let daemon = daemon.wait(BOUND);
        f.expect(posts <= 10, || format!("{layout:?}: the daemon sent {posts} requests in 4 s for one chunk"));
        f.expect(daemon.finished(), || format!("{layout:?}: {}", daemon.show()));
        f
    })
    .verdict("nobody -> re-POST loop");
}

/// nobody puts a FIFO, or a link to /dev/zero, where root's `status` and
/// `check` read: `queue.log`, `dropped`, `agent-state.json`, a file in
/// `failed/`. Outcome: each of `status`, `status --json` and `check` ends
/// within the bound. (check runs on a root of its own: its probe opening
/// a FIFO for writing would otherwise unblock a status reading it.)
#[test]
#[ignore = "needs root: make test runs it"]
fn status_and_check_never_block_on_what_nobody_plants() {
    let plants = [
        ("a FIFO as queue.log", "rm -f queue.log; mkfifo queue.log"),
        ("/dev/zero as queue.log", "rm -f queue.log; ln -s /dev/zero queue.log"),
        ("a FIFO as dropped", "rm -f dropped; mkfifo dropped"),
        ("/dev/zero as dropped", "rm -f dropped; ln -s /dev/zero dropped"),
        ("a FIFO as agent-state.json", "rm -f agent-state.json; mkfifo agent-state.json"),
        ("a FIFO in failed/", "mkfifo failed/00000000000000000001-h1.ndjson.bad"),
        ("/dev/zero in failed/", "ln -s /dev/zero failed/00000000000000000002-h2.ndjson.bad"),
    ];
    let cases = LAYOUTS.into_iter().flat_map(|l| plants.into_iter().flat_map(move |p| [(l, p, true), (l, p, false)]));
    each(cases, |(layout, (what, plant), status)| {
        let mut f = Findings::default();
        let s = stage(if status { "p4-status" } else { "p4-check" }, layout, FILE_SINK);
        sink_dir(&s);
        let attack = lay_traps(&s, layout, &format!("cd \"$S\" || exit 0\n{plant}\nexit 0"));
        let running = if status {
            vec![
                Running::start("status", &mut s.root_cmd(&["status"])),
                Running::start("status --json", &mut s.root_cmd(&["status", "--json"])),
            ]
        } else {
            let mut check = std::process::Command::new(&s.bin);
            check.arg("check").arg("--root").arg(&s.root).env_remove("OPENVPN_TELEMETRY_CONFIG");
            vec![Running::start("check", &mut check)]
        };
        let deadline = Instant::now() + BOUND;
        for r in running {
            let ran = r.wait(deadline.saturating_duration_since(Instant::now()));
            f.expect(ran.finished(), || {
                format!("{layout:?}: {what} blocks root's {}\n{}\n{}", ran.what, attack.show(), ran.show())
            });
        }
        f
    })
    .verdict("nobody -> hang of root's status/check");
}

// ---------------------------------------------------------------------
// 5. the server (and nobody's files) -> root's terminal, the journal

/// Terminal escapes a hostile server could send: set the window title,
/// clear the screen, colour, a carriage return to overwrite the line, and
/// the 8-bit CSI.
const ESCAPES: &[u8] = b"{\"error\":\"\x1b]0;owned\x07\x1b[2J\x1b[31mALL OK\r\xc2\x9b1m\"}";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server answers 503 (retried) and then 400 with escape sequences in
/// its body. Outcome: no raw control byte in the agent's log (the
/// journal, in both its formats), in `status` / `status --json`, or in
/// `check`.
#[test]
#[ignore = "needs root: make test runs it"]
fn server_text_never_reaches_a_terminal_raw() {
    let mut f = Findings::default();
    let s = Staged::new("p5-escapes", "");
    let rx = Receiver::start(&s, &["--script", "503,503,503,400,400,400", "--error-body-hex", &hex(ESCAPES)]);
    reinstall(&s, Layout::Installed, &rx.settings());
    s.hook("frank");
    for (journal, env) in [("stderr", vec![]), ("journal", vec![("JOURNAL_STREAM", "8:12345")])] {
        let once = s.agent_once(&env);
        f.expect(once.finished(), || once.show());
        let controls = terminal_controls(&once.stderr);
        f.expect(controls.is_empty(), || format!("agent log ({journal} format) has raw control bytes: {controls:?}"));
    }
    f.expect(rx.requests() >= 4, || "the agent did not get the server's answers".into());
    for json in [false, true] {
        let st = s.status(json);
        f.expect(st.finished(), || st.show());
        let controls = if json { json_controls(&st.stdout) } else { terminal_controls(&st.stdout) };
        f.expect(controls.is_empty(), || format!("{} prints raw control bytes: {controls:?}", st.what));
    }
    let before = rx.requests();
    // Inside the root, where CA_CERT is (`check --root` looks for it on
    // this host's path).
    let check = attack::run("check", &mut s.root_cmd(&["check"]), BOUND);
    f.expect(check.finished(), || check.show());
    f.expect(rx.requests() > before, || format!("check did not ask the server: {}", check.show()));
    let controls = terminal_controls(&check.stdout);
    f.expect(controls.is_empty(), || format!("check prints raw control bytes: {controls:?}"));
    f.verdict("server -> root's terminal");
}

/// On the legacy spool nobody owns the directory the agent's state is in,
/// so it can replace that file (and write queue.log, chunks, failed/ and
/// dropped) with text carrying escape sequences; anywhere it can name
/// files with them. Outcome: `status` and `status --json` print no raw
/// control byte, nor does the agent's log (the journal).
#[test]
#[ignore = "needs root: make test runs it"]
fn status_and_agent_log_never_print_control_bytes_nobody_planted() {
    each(LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = stage("p5-state", layout, FILE_SINK);
        sink_dir(&s);
        s.hook("grace");
        let once = s.agent_once(&[]);
        assert!(once.finished(), "{}", once.show());
        let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}1m";
        let state = serde_json::json!({
            "pid": 1,
            "sink": format!("https://evil.example/{esc}"),
            "last_error": {"time": format!("2026-02-13T12:00:00Z{esc}"), "message": format!("fake {esc}")},
            "last_success": {"time": format!("now{esc}"), "events": 1},
        })
        .to_string();
        let line = format!(
            r#"{{"event_id":"x","seq":1,"type":"SESSION_CONNECTED","event_time_vpn":"2026-02-13T12:10:05Z{esc}"}}"#
        );
        let attack = lay_traps(
            &s,
            layout,
            &format!(
                r#"cd "$S" || exit 0
            printf '%s\n' '{state}' > .forged && mv -f .forged agent-state.json
            printf '%s\n' '{line}' > pending/00000000000000000001-h1.ndjson
            printf '%s\n' '{line}' >> queue.log
            printf '%s\n' '{line}' > failed/00000000000000000002-h1.ndjson.bad
            printf '3 1 3 {esc}\n' > dropped
            n=$(printf '\033]0;owned\007\033[2J.ndjson')
            ln -s nowhere "pending/00000000000000000003-$n"
            mkfifo "pending/00000000000000000004-$n"
            printf 'not json\n' > "pending/00000000000000000005-$n"
            ln -s nowhere "$n"
            exit 0"#
            ),
        );
        for json in [false, true] {
            let st = s.status(json);
            f.expect(st.finished(), || format!("{layout:?}: {}", st.show()));
            let controls = if json { json_controls(&st.stdout) } else { terminal_controls(&st.stdout) };
            f.expect(controls.is_empty(), || {
                format!(
                    "{layout:?}: {} prints raw control bytes from nobody's files: {controls:?}\n{}",
                    st.what,
                    attack.show()
                )
            });
        }
        // The agent logs what it sets aside, by name.
        let once = s.agent_once(&[]);
        f.expect(once.finished(), || format!("{layout:?}: {}", once.show()));
        let controls = terminal_controls(&once.stderr);
        f.expect(controls.is_empty(), || {
            format!("{layout:?}: the agent's log has raw control bytes from nobody's file names: {controls:?}")
        });
        f
    })
    .verdict("nobody -> root's terminal through status and the journal");
}

/// The agent at every log level, `RUST_LOG=trace` included (which turns
/// on the HTTP library's wire trace), and `check` likewise. Outcome: no
/// piece of the token appears in their output.
#[test]
#[ignore = "needs root: make test runs it"]
fn no_log_level_prints_the_token() {
    let mut f = Findings::default();
    let s = Staged::new("p5-trace", "");
    let rx = Receiver::start(&s, &["--token", TOKEN]);
    reinstall(
        &s,
        Layout::Installed,
        &format!("{}AUTH_HEADER=\"Authorization: Bearer {TOKEN}\"\nLOG_LEVEL=trace\n", rx.settings()),
    );
    let levels = ["trace", "ureq=trace,ureq_proto=trace,rustls=trace,trace", "debug", ""];
    for (i, rust_log) in levels.iter().enumerate() {
        s.hook(&format!("heidi{i}"));
        let env: Vec<(&str, &str)> = if rust_log.is_empty() { vec![] } else { vec![("RUST_LOG", rust_log)] };
        let once = s.agent_once(&env);
        f.expect(once.success(), || format!("RUST_LOG={rust_log:?}: {}", once.show()));
        let pieces = secret_pieces(&[once.stdout.as_slice(), &once.stderr].concat(), TOKEN);
        f.expect(pieces.is_empty(), || {
            format!("RUST_LOG={rust_log:?} (LOG_LEVEL=trace): the agent logs the token: {pieces:?}")
        });
    }
    f.expect(rx.common_names().contains(&"heidi0".to_string()), || "not delivered with the token".into());
    // Inside the root, where CA_CERT is, so that check does send the token.
    let before = rx.requests();
    let check = attack::run("check (RUST_LOG=trace)", s.root_cmd(&["check"]).env("RUST_LOG", "trace"), BOUND);
    f.expect(rx.requests() > before, || format!("check did not ask the server: {}", check.show()));
    let pieces = secret_pieces(&[check.stdout.as_slice(), &check.stderr].concat(), TOKEN);
    f.expect(pieces.is_empty(), || format!("check prints the token: {pieces:?}"));
    f.verdict("the token in logs");
}

// ---------------------------------------------------------------------
// The ownership model behind all of the above

/// After a fresh install, and after an upgrade of a0d36ed's layout with
/// events waiting: the spool and pending/ belong to the agent's user with
/// the hooks' group, 3770 (nobody may add files, not rename or delete the
/// directories or others' files), failed/ is the agent's alone (0700),
/// the agent's state files are its own 0600; waiting events are kept and
/// the hooks still write.
#[test]
#[ignore = "needs root: make test runs it"]
fn nobody_may_only_add_events() {
    each(INSTALL_LAYOUTS, |layout| {
        let mut f = Findings::default();
        let s = Staged::new(&format!("own-{layout:?}").to_lowercase(), "");
        let (agent, nogroup, nobody) = (s.agent_uid(), s.nogroup(), s.nobody_uid());
        if layout == Layout::Legacy {
            s.legacy_layout();
            s.hook("ivan");
            let chunk = s.spool().join("pending/00000000000000000001-h1.ndjson");
            let line = format!("{}\n", event(1, "judy"));
            fs::write(&chunk, &line).unwrap();
            std::os::unix::fs::chown(&chunk, Some(nobody), Some(nogroup)).unwrap();
            fs::set_permissions(&chunk, fs::Permissions::from_mode(0o660)).unwrap();
            let r = s.install();
            f.expect(r.success(), || format!("upgrade of the legacy layout: {}", r.show()));
            let queue = fs::read_to_string(s.spool().join("queue.log")).unwrap_or_default();
            f.expect(queue.contains("\"ivan\""), || "the upgrade lost queue.log's event".into());
            f.expect(fs::read_to_string(&chunk).ok().as_ref() == Some(&line), || "the upgrade lost a chunk".into());
        }
        let meta = |rel: &str| {
            use std::os::unix::fs::MetadataExt;
            fs::symlink_metadata(s.spool().join(rel)).map(|m| (m.mode() & 0o7777, m.uid(), m.gid())).ok()
        };
        let show = |m: Option<(u32, u32, u32)>| match m {
            Some((mode, uid, gid)) => format!("{mode:04o} {uid}:{gid}"),
            None => "missing".into(),
        };
        for d in ["", "pending"] {
            let got = meta(d);
            f.expect(got == Some((0o3770, agent, nogroup)), || {
                format!("{layout:?}: SPOOL_DIR/{d} is {}, expected 3770 {agent}:{nogroup}", show(got))
            });
        }
        let got = meta("failed");
        f.expect(got.is_some_and(|(m, u, _)| (m, u) == (0o700, agent)), || {
            format!("{layout:?}: failed/ is {}, expected 0700 owned by {agent}", show(got))
        });
        s.hook("mallory-is-a-normal-user");
        let queue = fs::read_to_string(s.spool().join("queue.log")).unwrap_or_default();
        f.expect(queue.contains("mallory-is-a-normal-user"), || format!("{layout:?}: the hooks cannot write"));
        let once = s.agent_once(&[]);
        f.expect(once.finished(), || once.show());
        for file in ["agent-state.json", "agent.lock"] {
            let got = meta(file);
            f.expect(got.is_none_or(|(m, u, _)| (m, u) == (0o600, agent)), || {
                format!("{layout:?}: {file} is {}, expected 0600 owned by {agent}", show(got))
            });
        }
        let attack = s.nobody(
            r#"cd "$S" || exit 0
            touch new-file pending/.new-chunk.tmp && echo "ADDED"
            mv pending p2 2>/dev/null && echo "RENAMED pending"
            mv failed f2 2>/dev/null && echo "RENAMED failed"
            rm -f agent-state.json 2>/dev/null; [ -e agent-state.json ] || echo "REMOVED agent-state.json"
            ls failed >/dev/null 2>&1 && echo "LISTED failed"
            touch failed/x 2>/dev/null && echo "WROTE failed"
            exit 0"#,
        );
        let out = attack.out();
        for bad in ["RENAMED", "REMOVED", "LISTED", "WROTE"] {
            f.expect(!out.contains(bad), || format!("{layout:?}: nobody {bad}:\n{out}"));
        }
        f.expect(out.contains("ADDED"), || format!("{layout:?}: nobody cannot add files: {}", attack.show()));
        f
    })
    .verdict("ownership model");
}
