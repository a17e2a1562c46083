//! `openvpn-telemetry agent`: the foreground delivery daemon (and
//! `agent --once`, the operator's "flush now").
//!
//! Threads: the main thread only waits, with `poll`, for a signal (SIGTERM
//! and SIGINT are blocked and read through a `signalfd`), for the worker to
//! end (a pipe it holds closes), or for the systemd watchdog period. The
//! worker rotates `queue.log` and delivers; it sleeps on a channel with a
//! timeout, so a stop wakes it at once and no thread ever busy-polls. The
//! event sources (status file, index.txt) run on a third thread.
//!
//! Guarantees:
//! - on SIGTERM/SIGINT the worker is told to stop and given up to
//!   [`STOP_GRACE`] to finish its step; then the process exits 0 within 2 s.
//!   A request still in flight is abandoned: its batch was never deleted
//!   (deletion happens only after a 2xx), so it is sent again next start;
//! - rotation every `ROTATE_INTERVAL_SECONDS`, or within [`TICK`] of
//!   `queue.log` reaching `ROTATE_MAX_BYTES`; a stuck `queue.lock` is
//!   logged and delivery of `pending/` goes on;
//! - idle, the agent wakes [`TICK`]-often for one `stat`; nothing spins.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use argh::{ArgsInfo, FromArgs};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::{self, Settings};
use crate::deliver::{AGENT_LOCK_WAIT, Delivery, DeliverySettings, Step};
use crate::exit::ExitCode;
use crate::notify::Notifier;
use crate::privacy::{KeyError, Privacy};
use crate::sink::{Private, Sink, SinkError};
use crate::spool::SpoolError;

mod logging;
mod prepare;
mod pulse;

/// run the delivery agent in the foreground (as the systemd unit does)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "agent")]
pub struct AgentArgs {
    /// rotate, deliver what is pending (and what that delivery produced, once), and exit: 0 when the spool is empty, 1 when delivery failed (events kept), 3 when something is left
    #[argh(switch)]
    pub once: bool,
}

/// How often the worker looks at `queue.log`'s size when otherwise idle.
const TICK: Duration = Duration::from_millis(250);
/// How long a stopping worker may take to finish its step.
const STOP_GRACE: Duration = Duration::from_millis(1500);
/// `--once` gives up after this many failed attempts in a row.
const ONCE_ATTEMPTS: u32 = 3;
/// `--once` delivered what was pending, but the spool is not empty.
pub const ONCE_LEFT: ExitCode = ExitCode(3);
/// How often `pending/` is listed again even without a rotation (for
/// chunks the hooks wrote themselves while `queue.lock` was stuck).
const RELIST: Duration = Duration::from_secs(30);

/// Why the agent would not start, or why `--once` did not empty the spool.
/// Each says what to do.
#[derive(Debug)]
pub enum Error {
    Settings(config::ConfigError),
    Sink {
        path: PathBuf,
        source: SinkError,
    },
    /// PSEUDONYMIZE is set and the key cannot be read: nothing may leave
    /// in clear instead.
    Privacy(KeyError),
    /// The spool is not one the agent may deliver from (`why` says how).
    SpoolRefused {
        dir: PathBuf,
        why: String,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// A system call the agent's set-up needs (signals, poll, threads).
    Setup {
        what: &'static str,
        source: io::Error,
    },
    AlreadyRunning {
        pid: String,
        spool: PathBuf,
    },
    /// `--once` was stopped by a signal.
    Stopped {
        signal: Option<&'static str>,
    },
    /// `--once` gave up on the server.
    Undelivered {
        attempts: u32,
        reason: String,
        spool: PathBuf,
    },
    /// `--once` without a TELEMETRY_URL.
    Held {
        config: PathBuf,
        chunks: usize,
        pending: PathBuf,
    },
    /// `--once` could not rotate queue.log.
    QueueLockHeld {
        lock: PathBuf,
    },
    Panicked,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Settings(e) => write!(f, "{e}"),
            Error::Sink { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Privacy(e) => write!(f, "{e}"),
            Error::SpoolRefused { dir, why } => write!(f, "{}: {why}", dir.display()),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Setup { what, source } => write!(f, "cannot set up {what}: {source}"),
            Error::AlreadyRunning { pid, spool } => write!(
                f,
                "another agent (pid {pid}) is already delivering from {}; stop it first (systemctl stop openvpn-telemetry-agent)",
                spool.display()
            ),
            Error::Stopped { signal: Some(signal) } => write!(f, "stopped by {signal} before the spool was empty"),
            Error::Stopped { signal: None } => write!(f, "stopped before the spool was empty"),
            Error::Undelivered { attempts, reason, spool } => {
                write!(f, "cannot deliver after {attempts} attempt(s): {reason}; events kept in {}", spool.display())
            }
            Error::Held { config, chunks, pending } => {
                write!(f, "no TELEMETRY_URL in {}: {chunks} chunk(s) held in {}", config.display(), pending.display())
            }
            Error::QueueLockHeld { lock } => write!(
                f,
                "{} is held by another process: queue.log was not rotated (pending/ was delivered)",
                lock.display()
            ),
            Error::Panicked => write!(f, "internal error: the delivery thread panicked"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Settings(e) => Some(e),
            Error::Sink { source, .. } => Some(source),
            Error::Privacy(e) => Some(e),
            Error::Io { source, .. } | Error::Setup { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn setup(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |e| Error::Setup { what, source: e.into() }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

pub fn main(args: &AgentArgs) -> Result<ExitCode, Error> {
    // Before any file is opened and any thread or child started.
    crate::privilege::confine();
    let path = config::config_path();
    let settings = Settings::load(&path).map_err(Error::Settings)?;
    logging::init(&settings);
    for (line, key) in &settings.unknown_keys {
        log::warn!("{}:{line}: unknown setting {key}; ignored", path.display());
    }
    prepare::spool(&settings)?;
    let _only_agent = prepare::lock(&settings)?;
    let sink = Sink::from_settings(&settings.delivery).map_err(|source| Error::Sink { path: path.clone(), source })?;
    // Read once, before the sandboxed loop: personal fields are treated
    // at the one place events are handed to the sink.
    let privacy = Privacy::from_settings(&settings.privacy).map_err(Error::Privacy)?;
    if settings.privacy.active() {
        log::info!("personal fields leaving the host: {}", settings.privacy.outline());
    }
    if settings.privacy.needs_key()
        && let Ok(m) = std::fs::metadata(&settings.privacy.key_file)
        && let Err(why) = crate::privacy::key_access(&m, Some(nix::unistd::getegid().as_raw()))
    {
        log::warn!(
            "PSEUDONYM_KEY_FILE={} {why}: whoever reads it can compute pseudonyms; run `openvpn-telemetry install`",
            settings.privacy.key_file.display()
        );
    }
    let server_id = settings.server_id();

    // Start-up state is read before the stop signals are blocked: if that
    // ever hangs, SIGTERM still ends the process.
    let label_privacy = privacy.twin();
    let delivery = Delivery::new(
        DeliverySettings::new(&settings.spool, &settings.delivery, settings.hooks_uid()),
        Box::new(Private::new(sink, privacy)),
        server_id,
    );

    // Block the stop signals in every thread (threads inherit the mask),
    // so they arrive only through the signalfd read here.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().map_err(setup("blocked signals"))?;
    let signals =
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(setup("a signalfd"))?;
    let (done_rx, done_tx) = std::io::pipe().map_err(|source| Error::Setup { what: "a pipe", source })?;

    let stop = Arc::new(AtomicBool::new(false));
    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    let heartbeat = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let status_rounds =
        settings.sources.snapshot_interval_seconds > 0 || settings.sources.session_update_interval_seconds > 0;
    let board = Arc::new(crate::health::Board::new(&settings.health, status_rounds, label_privacy));

    log::info!(
        "openvpn-telemetry {} agent{}: spool {}, delivering to {}",
        env!("CARGO_PKG_VERSION"),
        if args.once { " --once" } else { "" },
        settings.spool.spool_dir.display(),
        delivery.state.sink
    );
    if delivery.holding() {
        log::warn!("no TELEMETRY_URL in {}: holding events in the spool (bounds still apply)", path.display());
    }
    if args.once {
        for e in crate::sources::run_once(&crate::sources::SourceSettings::new(&settings), &board) {
            log::warn!("event sources: {e}");
        }
    } else {
        let (s, stop, board) = (crate::sources::SourceSettings::new(&settings), Arc::clone(&stop), Arc::clone(&board));
        thread::Builder::new()
            .name("sources".into())
            .spawn(move || crate::sources::run(&s, &stop, &board))
            .map_err(|source| Error::Setup { what: "the sources thread", source })?;
    }

    let mut worker = Worker {
        settings: settings.clone(),
        delivery,
        stop: Arc::clone(&stop),
        wake: wake_rx,
        heartbeat: Arc::clone(&heartbeat),
        started,
        pulse: pulse::Pulse::new(&settings, board, started),
        lock_warned: None,
        damage_noted: 0,
    };
    let once = args.once;
    let handle = thread::Builder::new()
        .name("deliver".into())
        .spawn(move || {
            let _done = done_tx; // closes when the worker ends, even by panic
            if once { worker.run_once() } else { worker.run() }
        })
        .map_err(|source| Error::Setup { what: "the delivery thread", source })?;

    let notifier = Notifier::from_env();
    notifier.send("READY=1");
    let tolerance =
        Duration::from_secs(settings.delivery.request_timeout_seconds + settings.delivery.connect_timeout_seconds + 10);
    loop {
        let timeout = notifier.watchdog.map_or(PollTimeout::NONE, |d| {
            PollTimeout::try_from(d.max(Duration::from_millis(10))).unwrap_or(PollTimeout::MAX)
        });
        let mut fds =
            [PollFd::new(signals.as_fd(), PollFlags::POLLIN), PollFd::new(done_rx.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(setup("poll")(e)),
        }
        if fds[1].any().unwrap_or(false) {
            return join(handle);
        }
        if fds[0].any().unwrap_or(false) {
            let name = match signals.read_signal() {
                Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).map_or("signal", |s| s.as_str()),
                _ => continue,
            };
            log::info!("{name}: stopping");
            notifier.send("STOPPING=1");
            stop.store(true, Ordering::SeqCst);
            let _ = wake_tx.send(());
            let mut fds = [PollFd::new(done_rx.as_fd(), PollFlags::POLLIN)];
            let grace = PollTimeout::try_from(STOP_GRACE).unwrap_or(PollTimeout::ZERO);
            if matches!(nix::poll::poll(&mut fds, grace), Ok(n) if n > 0) {
                let result = join(handle);
                return if once {
                    result.and(Err(Error::Stopped { signal: Some(name) }))
                } else {
                    Ok(ExitCode::SUCCESS)
                };
            }
            log::warn!("a request was still in flight; its events stay in the spool and are sent again next start");
            return if once { Err(Error::Stopped { signal: Some(name) }) } else { Ok(ExitCode::SUCCESS) };
        }
        // Watchdog: ping only while the worker shows signs of life.
        let beat = Duration::from_millis(heartbeat.load(Ordering::Relaxed));
        if started.elapsed().saturating_sub(beat) < tolerance {
            notifier.send("WATCHDOG=1");
        }
    }
}

fn join(handle: thread::JoinHandle<Result<ExitCode, Error>>) -> Result<ExitCode, Error> {
    handle.join().unwrap_or(Err(Error::Panicked))
}

struct Worker {
    settings: Settings,
    delivery: Delivery,
    stop: Arc<AtomicBool>,
    wake: Receiver<()>,
    heartbeat: Arc<AtomicU64>,
    started: Instant,
    /// The agent's health: metrics file and AGENT_HEARTBEAT.
    pulse: pulse::Pulse,
    /// When a stuck `queue.lock` was last logged.
    lock_warned: Option<Instant>,
    /// Damaged spool files set aside, as last noted.
    damage_noted: u64,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps until `until` or a stop, whichever comes first.
    fn sleep_until(&self, until: Instant) {
        let d = until.saturating_duration_since(Instant::now());
        if !d.is_zero() {
            match self.wake.recv_timeout(d) {
                Ok(()) | Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    fn beat(&self) {
        self.heartbeat.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Rotates `queue.log`; returns false when `queue.lock` is stuck.
    fn rotate(&mut self) -> bool {
        let ok = match self.delivery.spool.rotate(AGENT_LOCK_WAIT) {
            Ok(Some(chunk)) => {
                log::debug!("rotated queue.log to {}", chunk.display());
                self.delivery.refresh();
                true
            }
            Ok(None) => true,
            Err(SpoolError::LockTimeout { path }) => {
                if self.lock_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    let msg = format!(
                        "{} held by another process for over {} ms; queue.log not rotated, delivering pending/ meanwhile",
                        path.display(),
                        AGENT_LOCK_WAIT.as_millis()
                    );
                    log::warn!("{msg}");
                    self.delivery.note_error(msg);
                    self.lock_warned = Some(Instant::now());
                }
                self.delivery.refresh();
                false
            }
            Err(e) => {
                log::error!("cannot rotate: {e}");
                self.delivery.note_error(format!("cannot rotate: {e}"));
                true
            }
        };
        self.delivery.collect_hook_drops();
        let damaged = crate::spool::damaged();
        if damaged > self.damage_noted {
            self.damage_noted = damaged;
            let dir = self.delivery.spool.failed();
            self.delivery.note_error(format!(
                "{damaged} damaged or planted spool file(s) set aside into {} since the start (see the log)",
                dir.display()
            ));
        }
        ok
    }

    /// What waits to be rotated: the hooks' `queue.log` and the agent's own
    /// queue (its drop reports and the sources' events).
    fn queue_bytes(&self) -> u64 {
        self.delivery.spool.queued_bytes()
    }

    fn run(&mut self) -> Result<ExitCode, Error> {
        let every = Duration::from_secs(self.settings.spool.rotate_interval_seconds).max(TICK);
        let mut next_rotate = Instant::now();
        let mut next_tick = Instant::now() + TICK;
        let mut next_list = Instant::now() + RELIST;
        self.delivery.refresh();
        while !self.stopping() {
            self.beat();
            self.pulse.tick(&self.delivery, false);
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                if self.queue_bytes() >= self.settings.spool.rotate_max_bytes {
                    next_rotate = now;
                }
            }
            if now >= next_rotate {
                self.rotate();
                next_rotate = Instant::now() + every;
            }
            if now >= next_list {
                self.delivery.refresh();
                next_list = now + RELIST;
            }
            let wait_until = match self.delivery.step() {
                Step::Progress => continue,
                Step::Idle | Step::Hold => next_tick.min(next_rotate),
                Step::Wait { until, .. } => until.min(next_tick).min(next_rotate),
            };
            self.sleep_until(wait_until);
        }
        self.delivery.flush();
        Ok(ExitCode::SUCCESS)
    }

    /// `--once`: rotates and delivers the chunks that are then pending;
    /// if the spool is not empty after that (the drop report this run
    /// wrote, events the hooks wrote meanwhile), rotates once more and
    /// delivers those, and stops. The work is bounded by what was there,
    /// never by what keeps arriving: anything left is for the next run or
    /// the daemon, and the exit status says so ([`ONCE_LEFT`]).
    fn run_once(&mut self) -> Result<ExitCode, Error> {
        for _pass in 0..2 {
            let rotated = self.rotate();
            self.delivery.refresh();
            let these = self.delivery.chunk_names();
            self.deliver_once(&these)?;
            self.delivery.flush();
            if !rotated {
                return Err(Error::QueueLockHeld { lock: self.delivery.spool.dir.join(crate::spool::QUEUE_LOCK) });
            }
            self.delivery.refresh();
            self.pulse.tick(&self.delivery, true);
            if self.queue_bytes() == 0 && self.delivery.pending_chunks() == 0 {
                return Ok(ExitCode::SUCCESS);
            }
        }
        log::warn!(
            "{} chunk(s) and {} bytes of queue.log left in the spool (written while this run delivered, or the drop \
             report it wrote): the agent delivers them, or run 'agent --once' again",
            self.delivery.pending_chunks(),
            self.queue_bytes()
        );
        Ok(ONCE_LEFT)
    }

    /// Delivers until none of `these` chunks is left (delivered, set aside
    /// or dropped); chunks listed later wait.
    fn deliver_once(&mut self, these: &std::collections::HashSet<String>) -> Result<(), Error> {
        while self.delivery.holds_any(these) {
            if self.stopping() {
                self.delivery.flush();
                return Err(Error::Stopped { signal: None });
            }
            self.beat();
            match self.delivery.step() {
                Step::Progress | Step::Idle => {}
                Step::Hold => {
                    return Err(Error::Held {
                        config: self.settings.path.clone(),
                        chunks: self.delivery.pending_chunks(),
                        pending: self.delivery.spool.pending(),
                    });
                }
                Step::Wait { until, misconfigured, reason } => {
                    if misconfigured || self.delivery.fails() >= ONCE_ATTEMPTS {
                        self.delivery.flush();
                        return Err(Error::Undelivered {
                            attempts: self.delivery.fails(),
                            reason,
                            spool: self.delivery.spool.dir.clone(),
                        });
                    }
                    self.sleep_until(until);
                }
            }
        }
        Ok(())
    }
}
