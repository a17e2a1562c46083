//! The pace of delivery: when the next attempt may be made, and how large
//! a batch may be.
//!
//! What is guaranteed: failed attempts in a row back off exponentially
//! with jitter, from `RETRY_SLEEP_SECONDS` up to `RETRY_MAX_SECONDS`, and
//! never longer; a server's `Retry-After` is honoured up to that ceiling,
//! so a hostile server cannot park the agent for a day; a misconfigured
//! delivery (401, 403, 404, TLS) waits the ceiling at once. A 413 lowers
//! the batch size for the rest of the run, never below 1 KiB. Nothing here
//! touches a file: the coordinator ([`super::Delivery`]) records the
//! outcome in the state.

use std::time::{Duration, Instant};

/// A failed send that leaves the position where it is.
pub(super) enum Fail {
    Retry { reason: String, retry_after: Option<Duration> },
    Misconfigured { reason: String },
}

/// The wait a failure earned: until when, and whether it is a
/// misconfiguration (logged as an error, not a warning).
pub(super) struct Wait {
    pub until: Instant,
    pub delay: Duration,
    pub reason: String,
    pub misconfigured: bool,
}

pub(super) struct Pace {
    /// Failed attempts in a row.
    pub fails: u32,
    pub next_attempt: Option<Instant>,
    /// Lowered after a 413 so later batches fit the server's limit.
    pub byte_cap: usize,
    retry_sleep_seconds: u64,
    retry_max_seconds: u64,
}

impl Pace {
    pub fn new(max_batch_bytes: u64, retry_sleep_seconds: u64, retry_max_seconds: u64) -> Pace {
        Pace {
            fails: 0,
            next_attempt: None,
            byte_cap: max_batch_bytes.min(usize::MAX as u64) as usize,
            retry_sleep_seconds,
            retry_max_seconds,
        }
    }

    /// When the backoff of an earlier failure still runs, its end.
    pub fn waiting(&self, now: Instant) -> Option<Instant> {
        self.next_attempt.filter(|until| now < *until)
    }

    /// A send worked: the backoff is over. Returns the failed attempts
    /// that came before it.
    pub fn succeeded(&mut self) -> u32 {
        self.next_attempt = None;
        std::mem::take(&mut self.fails)
    }

    /// A send failed: how long to wait before the next one.
    pub fn failed(&mut self, fail: Fail) -> Wait {
        self.fails += 1;
        let max = Duration::from_secs(self.retry_max_seconds);
        let (reason, delay, misconfigured) = match fail {
            Fail::Retry { reason, retry_after } => {
                let d = backoff(self.retry_sleep_seconds, self.retry_max_seconds, self.fails);
                (reason, d.max(retry_after.unwrap_or_default()).min(max), false)
            }
            Fail::Misconfigured { reason } => (reason, max, true),
        };
        let until = Instant::now() + delay;
        self.next_attempt = Some(until);
        Wait { until, delay, reason, misconfigured }
    }

    /// Something local went wrong that retrying at once would hammer (a
    /// delivered chunk that cannot be removed): slow down like a failure.
    pub fn slow_down(&mut self) {
        self.fails += 1;
        let d = backoff(self.retry_sleep_seconds, self.retry_max_seconds, self.fails);
        self.next_attempt = Some(Instant::now() + d);
    }

    /// A 413 for a batch of `size` bytes: later batches take at most half.
    pub fn shrink(&mut self, size: usize) -> usize {
        self.byte_cap = self.byte_cap.min(size / 2).max(1024);
        self.byte_cap
    }
}

/// Exponential backoff from `sleep` to `max` seconds with "equal jitter"
/// (half fixed, half random), so many agents do not retry in step.
pub fn backoff(sleep: u64, max: u64, attempt: u32) -> Duration {
    let base_ms = (sleep * 1000).max(100);
    let max_ms = (max * 1000).max(base_ms);
    let d = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)).min(max_ms);
    let random = (uuid::Uuid::new_v4().as_u128() as u64) % (d / 2 + 1);
    Duration::from_millis(d - d / 2 + random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 1..40 {
            let d = backoff(2, 300, attempt).as_millis() as u64;
            let full = (2000u64 << (attempt - 1).min(30)).min(300_000);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d}");
        }
        assert!(backoff(0, 1, 1) >= Duration::from_millis(50));
    }

    /// A server's Retry-After counts up to the ceiling, never past it; a
    /// misconfiguration waits the ceiling at once; a success resets.
    #[test]
    fn waits_are_bounded_by_the_ceiling_whatever_the_server_says() {
        let mut pace = Pace::new(1 << 20, 2, 300);
        let day = Some(Duration::from_secs(86_400));
        let w = pace.failed(Fail::Retry { reason: "503".into(), retry_after: day });
        assert_eq!(w.delay, Duration::from_secs(300));
        assert!(!w.misconfigured);
        let w = pace.failed(Fail::Retry { reason: "503".into(), retry_after: Some(Duration::from_secs(60)) });
        assert!(w.delay >= Duration::from_secs(60) && w.delay <= Duration::from_secs(300), "{:?}", w.delay);
        let w = pace.failed(Fail::Misconfigured { reason: "401".into() });
        assert_eq!((w.delay, w.misconfigured), (Duration::from_secs(300), true));
        assert_eq!(pace.fails, 3);
        assert!(pace.waiting(Instant::now()).is_some());
        assert_eq!(pace.succeeded(), 3);
        assert_eq!((pace.fails, pace.waiting(Instant::now())), (0, None));
    }

    #[test]
    fn a_413_halves_the_batch_down_to_one_kib() {
        let mut pace = Pace::new(1 << 20, 2, 300);
        assert_eq!(pace.shrink(100_000), 50_000);
        assert_eq!(pace.shrink(300_000), 50_000, "never grows back");
        assert_eq!(pace.shrink(10), 1024);
    }
}
