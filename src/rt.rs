//! The process entry point, and the crate's one exception to "no unsafe
//! code": `#![no_main]` plus an exported C `main`, so that a
//! hook does not pay for std's runtime set-up. That set-up costs a hook
//! about 18 system calls before any of its own work: reading
//! `/proc/self/maps` (via `pthread_getattr_np`, with a `prlimit64` and a
//! `sched_getaffinity`) to locate the main thread's stack guard, a
//! `sigaltstack` with its own `mmap`/`mprotect` and `SIGSEGV`/`SIGBUS`
//! handlers for stack-overflow messages, and undoing that at exit.
//!
//! What of that set-up the binary does need is done here instead, for
//! every command: fds 0-2 are made valid (`/dev/null` where closed, one
//! `poll`), so no spool file can ever be opened as "stderr" and then
//! written with a log line; and `SIGPIPE` is ignored, so writing to a
//! closed stderr (a hook) or socket (the agent) is an error, not a
//! death by signal (which would reject a VPN client). What is given up:
//! a stack overflow ends in a plain `SIGSEGV` instead of std's message,
//! and the main thread has no name in panic messages. Arguments still come
//! from `std::env::args_os` (glibc hands them to std's `.init_array`
//! entry, static or not). A panic that escapes `main` is caught here and
//! exits 101, as std's runtime would (unwinding out of an `extern "C"`
//! function would abort instead).
//!
//! The unsafe parts: the exported symbol, `sigaction`, and borrowing the
//! raw fds 0-2 for `poll` (each is only read by poll, and may be closed:
//! poll reports that as `POLLNVAL`, it does not touch the fd).
//! Tested by tests/hooks.rs (closed stdio, a closed-pipe stderr, panics,
//! arguments) and by every test that runs the binary.
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::os::raw::{c_char, c_int};

use std::os::fd::IntoRawFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    valid_stdio();
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installs SIG_IGN (no handler code runs), before any thread.
    let _ = unsafe { sigaction(Signal::SIGPIPE, &ignore) };
    let code = std::panic::catch_unwind(crate::real_main).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Opens `/dev/null` on each of fds 0-2 that is closed, as std does.
fn valid_stdio() {
    // SAFETY: fds 0-2 are only polled (poll never reads, writes or closes
    // them), and a closed one is reported as POLLNVAL, not an error.
    let fds = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    let mut polls = fds.map(|fd| PollFd::new(fd, PollFlags::empty()));
    if poll(&mut polls, PollTimeout::ZERO).is_err() {
        return;
    }
    for (fd, p) in polls.iter().enumerate() {
        if p.revents().is_some_and(|r| r.contains(PollFlags::POLLNVAL)) {
            // The lowest free fd is the closed one; leaked on purpose.
            let mode = if fd == 0 { nix::fcntl::OFlag::O_RDONLY } else { nix::fcntl::OFlag::O_WRONLY };
            let _ = nix::fcntl::open("/dev/null", mode, nix::sys::stat::Mode::empty()).map(IntoRawFd::into_raw_fd);
        }
    }
}
