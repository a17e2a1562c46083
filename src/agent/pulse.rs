//! The delivery worker's share of the agent's health: it looks at the
//! spool and its counters now and then, hands them to the health board
//! (which rewrites the metrics file) and writes `AGENT_HEARTBEAT`.
//!
//! Guarantees: all of it runs between delivery steps, on the worker's
//! thread, and costs a `stat` when nothing is due; the spool is looked at
//! at most once per [`LOOK`] (15 s), and the metrics file rewritten from
//! here only then, when a number changed (or every [`REFRESH`], so its
//! mtime says the agent is alive); a heartbeat the spool refuses is logged, never retried
//! in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::deliver::Delivery;
use crate::health::{Board, SpoolView, Vitals, heartbeat};
use crate::sources::{EventWriter, Stored};

/// How often the spool is looked at for the metrics file, and so the
/// least time between two rewrites from here: each rewrites the whole file,
/// OpenVPN's per-client text included (some 10 MB at 10,000 clients).
const LOOK: Duration = Duration::from_secs(15);
/// The metrics file is rewritten at least this often.
const REFRESH: Duration = Duration::from_secs(60);
/// The first heartbeat after a start: soon, but after the sources' first
/// round, so it can say what the status files hold.
const FIRST_HEARTBEAT: Duration = Duration::from_secs(5);

pub(super) struct Pulse {
    board: Arc<Board>,
    writer: EventWriter,
    started: Instant,
    heartbeat_every: Option<Duration>,
    next_heartbeat: Option<Instant>,
    next_look: Instant,
    published: Option<(Vitals, Instant)>,
    secrets: Vec<String>,
    metrics: bool,
}

impl Pulse {
    pub(super) fn new(settings: &Settings, board: Arc<Board>, started: Instant) -> Pulse {
        let every = (settings.health.heartbeat_interval_seconds > 0)
            .then(|| Duration::from_secs(settings.health.heartbeat_interval_seconds));
        let secrets = crate::health::secrets_of(
            settings.delivery.telemetry_url.as_deref(),
            settings.delivery.auth_header.as_deref(),
        );
        Pulse {
            board,
            writer: EventWriter::new(&settings.spool),
            started,
            heartbeat_every: every,
            next_heartbeat: every.map(|d| started + d.min(FIRST_HEARTBEAT)),
            next_look: started,
            published: None,
            secrets,
            metrics: settings.health.metrics_textfile.is_some(),
        }
    }

    fn vitals(&self, delivery: &Delivery) -> Vitals {
        let state = &delivery.state;
        let spool = SpoolView::gather(&delivery.spool.dir, state.progress.as_ref()).unwrap_or_default();
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        Vitals::of(state, spool, &secrets)
    }

    /// Between delivery steps: what is due. `force` publishes now (the
    /// end of `agent --once`).
    pub(super) fn tick(&mut self, delivery: &Delivery, force: bool) {
        let now = Instant::now();
        if self.metrics && (force || now >= self.next_look) {
            self.next_look = now + LOOK;
            let vitals = self.vitals(delivery);
            if force || rewrite_due(self.published.as_ref().map(|(v, at)| (v == &vitals, *at)), now) {
                self.board.publish_vitals(vitals.clone());
                self.published = Some((vitals, now));
            }
        }
        if let (Some(every), Some(due)) = (self.heartbeat_every, self.next_heartbeat)
            && now >= due
        {
            self.next_heartbeat = Some(now + every);
            let ev =
                heartbeat::event(&self.vitals(delivery), self.started.elapsed().as_secs(), &self.board.instances());
            match self.writer.append(&ev) {
                Ok(Stored::Yes) => log::debug!("AGENT_HEARTBEAT written"),
                Ok(Stored::Dropped) => log::warn!("spool full: AGENT_HEARTBEAT dropped (counted)"),
                Err(e) => log::warn!("AGENT_HEARTBEAT not written: {e}"),
            }
        }
    }
}

/// Whether delivery's numbers go to the metrics file now, given the last
/// ones published (whether they are unchanged, and when): a change once
/// [`LOOK`] has passed since the last rewrite, or anything every
/// [`REFRESH`].
fn rewrite_due(last: Option<(bool, Instant)>, now: Instant) -> bool {
    match last {
        None => true,
        Some((same, at)) => {
            let since = now.saturating_duration_since(at);
            since >= REFRESH || (!same && since >= LOOK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_rewrites_the_metrics_file_at_most_every_15_s() {
        let at = Instant::now();
        let after = |s: u64| at + Duration::from_secs(s);
        assert!(rewrite_due(None, at));
        for (same, secs, due) in [
            (false, 2, false),
            (false, 14, false),
            (false, 15, true),
            (true, 15, false),
            (true, 59, false),
            (true, 60, true),
        ] {
            assert_eq!(rewrite_due(Some((same, at)), after(secs)), due, "unchanged {same}, {secs} s after");
        }
    }

    #[test]
    fn the_first_heartbeat_comes_soon_and_an_interval_of_0_turns_it_off() {
        let mut s = Settings::defaults(std::path::Path::new("/x/agent.env"));
        let board = Arc::new(Board::new(&s.health, true, crate::privacy::Privacy::off()));
        let started = Instant::now();
        assert_eq!(Pulse::new(&s, Arc::clone(&board), started).next_heartbeat, Some(started + FIRST_HEARTBEAT));
        s.health.heartbeat_interval_seconds = 1;
        assert_eq!(Pulse::new(&s, Arc::clone(&board), started).next_heartbeat, Some(started + Duration::from_secs(1)));
        s.health.heartbeat_interval_seconds = 0;
        assert_eq!(Pulse::new(&s, board, started).next_heartbeat, None);
    }
}
