//! Status-file parse: the agent reads OpenVPN's whole status file every
//! round, so a big server's file must parse in well under a round. Target:
//! a 10,000-client `--status-version 2` file (about 3 MB) in ≤ 20 ms.
//!
//! The parser is `src/sources/status_file/`, compiled into this bench from
//! its own source (main.rs, `#[path]`) with the release profile's settings:
//! the crate is a binary crate, so there is no library to link, and timing
//! `agent --once` would bury the parse under process start, state and
//! 10,000 events written to the spool. Baseline in the same run: the same
//! file only cut into lines and fields, what any reader pays before it
//! looks at a column. Every parse must give every client and no
//! unreadable row, or the section fails.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use crate::{Res, knob, status_file};

/// A `--status-version 2` file as OpenVPN 2.6 writes it: one client row
/// and two host routes (IPv4, IPv6) per client; every `comma_every`-th
/// common name has a comma in it (0: none).
pub fn status_v2(clients: usize, comma_every: usize) -> String {
    let mut s = String::from(
        "TITLE,OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]\n\
TIME,2026-12-01 20:30:00,1796157000\n\
HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher\n",
    );
    let name = |i: usize| {
        if comma_every > 0 && i.is_multiple_of(comma_every) {
            format!("Smith, client-{i:05}")
        } else {
            format!("client-{i:05}")
        }
    };
    let real = |i: usize| format!("198.51.{}.{}:{}", i / 250, i % 250 + 1, 1024 + i);
    let (v4, v6) =
        (|i: usize| format!("10.8.{}.{}", i / 250, i % 250 + 2), |i: usize| format!("fd00::{:x}", 0x1000 + i));
    for i in 0..clients {
        let _ = writeln!(
            s,
            "CLIENT_LIST,{},{},{},{},{},{},2026-12-01 20:00:00,{},UNDEF,{i},{i},AES-256-GCM",
            name(i),
            real(i),
            v4(i),
            v6(i),
            1_000_000 + i * 37,
            2_000_000 + i * 41,
            1_796_155_200 + i as u64
        );
    }
    s.push_str("HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)\n");
    for i in 0..clients {
        for v in [v4(i), v6(i)] {
            let _ = writeln!(s, "ROUTING_TABLE,{v},{},{},2026-12-01 20:29:59,1796156999", name(i), real(i));
        }
    }
    s.push_str("GLOBAL_STATS,Max bcast/mcast queue length,3\nGLOBAL_STATS,dco_enabled,0\nEND\n");
    s
}

/// Median milliseconds of `runs` calls of `f`.
pub fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

pub fn section(md: &mut String) -> Res<bool> {
    let runs = knob("OVT_BENCH_PARSE_RUNS", 21).max(1);
    let clients = 10_000;
    let _ = writeln!(
        md,
        "## Status-file parse\n\n`status_file::parse` of a {clients}-client `--status-version 2` file, median of {runs}; \
baseline: the same file cut into lines and fields only. Target ≤ 20 ms.\n"
    );
    let _ = writeln!(md, "| file | size | parse | lines and fields only | ratio | target |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    let mut ok = true;
    for (what, comma_every) in [("no comma in a name", 0), ("1 name in 10 with a comma", 10)] {
        let file = status_v2(clients, comma_every);
        let got = status_file::parse(file.as_bytes(), None).map_err(|e| format!("status-file parse ({what}): {e}"))?;
        let sane = got.clients.len() == clients && got.unreadable.is_empty();
        ok &= sane;
        let parse = median_ms(runs, || {
            black_box(status_file::parse(black_box(file.as_bytes()), None).ok());
        });
        let floor = median_ms(runs, || {
            let fields: usize =
                black_box(file.as_bytes()).split(|&b| b == b'\n').map(|l| l.split(|&b| b == b',').count()).sum();
            black_box(fields);
        });
        let verdict = match (sane, parse <= 20.0) {
            (false, _) => format!("**not every client read** ({} of {clients})", got.clients.len()),
            (true, true) => "met".into(),
            (true, false) => "**missed**".into(),
        };
        let _ = writeln!(
            md,
            "| {clients} clients, {what} | {:.1} MB | {parse:.1} ms | {floor:.2} ms | {:.0}× | {verdict} |",
            file.len() as f64 / 1e6,
            parse / floor.max(1e-6)
        );
    }
    md.push('\n');
    Ok(ok)
}
