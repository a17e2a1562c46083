//! Delivery against a scripted sink: the split, set-aside, retry, resume
//! and poison paths, each checked by what the sink received and what is
//! left in `pending/` and `failed/`.

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::Settings;
use crate::sink::{Deliver, Outcome};
use crate::testkit::Scratch;

/// Answers from a script (then `Delivered`) and records every batch as
/// the `seq`s it carried.
struct Scripted {
    answers: VecDeque<Outcome>,
    sent: Arc<Mutex<Vec<Vec<u64>>>>,
}

impl Deliver for Scripted {
    fn send(&mut self, _server_id: &str, events: &[&[u8]]) -> Outcome {
        let seqs = events
            .iter()
            .map(|e| serde_json::from_slice::<serde_json::Value>(e).unwrap()["seq"].as_u64().unwrap())
            .collect();
        self.sent.lock().unwrap().push(seqs);
        self.answers.pop_front().unwrap_or(Outcome::Delivered)
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
}

struct Site {
    /// The spool directory of `_scratch`.
    dir: PathBuf,
    _scratch: Scratch,
    settings: Settings,
    sent: Arc<Mutex<Vec<Vec<u64>>>>,
}

impl Site {
    fn new(name: &str, extra: &str) -> Site {
        let scratch = Scratch::new("deliver", name);
        let dir = scratch.spool();
        fs::create_dir_all(dir.join("failed")).unwrap();
        let settings = Settings::from_text(&scratch.config_path(), &scratch.env_text(extra)).unwrap();
        Site { dir, _scratch: scratch, settings, sent: Arc::default() }
    }
    fn chunk(&self, name: &str, seqs: impl IntoIterator<Item = u64>) {
        let text: String =
            seqs.into_iter().map(|s| format!("{{\"event_id\":\"e{s}\",\"seq\":{s},\"type\":\"X\"}}\n")).collect();
        fs::write(self.dir.join("pending").join(name), text).unwrap();
    }
    fn delivery(&self, answers: Vec<Outcome>) -> Delivery {
        let sink = Scripted { answers: answers.into(), sent: Arc::clone(&self.sent) };
        Delivery::new(
            DeliverySettings::new(&self.settings.spool, &self.settings.delivery, self.settings.hooks_uid()),
            Box::new(sink),
            "vpn-test".into(),
        )
    }
    /// Steps until idle, ignoring back-off times (they are not under test).
    fn drain(&self, d: &mut Delivery) {
        for _ in 0..100 {
            match d.step() {
                Step::Idle => return,
                Step::Wait { .. } => d.pace.next_attempt = None,
                _ => {}
            }
        }
        panic!("delivery did not become idle");
    }
    fn sent(&self) -> Vec<Vec<u64>> {
        self.sent.lock().unwrap().clone()
    }
    fn names(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(self.dir.join(sub)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }
    fn failed_text(&self) -> String {
        self.names("failed").iter().map(|n| fs::read_to_string(self.dir.join("failed").join(n)).unwrap()).collect()
    }
}

#[test]
fn a_413_splits_in_halves_until_each_part_is_taken() {
    let site = Site::new("split", "");
    site.chunk("1-q0.ndjson", 1..=4);
    let mut d = site.delivery(vec![Outcome::TooLarge, Outcome::TooLarge]);
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2, 3, 4], vec![1, 2], vec![1], vec![2], vec![3, 4]]);
    assert!(site.names("pending").is_empty() && site.names("failed").is_empty());
    assert_eq!(d.state.delivered_events, 4);
    assert!(d.pace.byte_cap < d.settings.max_batch_bytes as usize, "later batches stay smaller");
}

#[test]
fn one_event_still_too_large_or_a_4xx_batch_is_set_aside_and_the_rest_goes_on() {
    let site = Site::new("aside", "MAX_BATCH_EVENTS=2\n");
    site.chunk("1-q0.ndjson", 1..=2);
    site.chunk("2-q1.ndjson", [3]);
    site.chunk("3-q2.ndjson", [4]);
    let bad = Outcome::SetAside { status: 400, body_head: "no".into() };
    let mut d = site.delivery(vec![bad, Outcome::TooLarge]);
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2], vec![3, 4], vec![3], vec![4]]);
    let failed = site.names("failed");
    assert!(failed.len() == 1 && failed[0].ends_with("-http400.ndjson"), "{failed:?}");
    assert_eq!(site.failed_text().lines().count(), 2);
    assert_eq!((d.state.delivered_events, d.state.failed_events), (2, 2));
    assert!(site.names("pending").is_empty());
}

#[test]
fn a_413_part_that_went_through_is_not_sent_again_after_a_retry() {
    let site = Site::new("partial", "");
    site.chunk("1-q0.ndjson", 1..=4);
    let retry = Outcome::Retry { reason: "503".into(), retry_after: None };
    let mut d = site.delivery(vec![Outcome::TooLarge, Outcome::Delivered, retry]);
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2, 3, 4], vec![1, 2], vec![3, 4], vec![3, 4]]);
    assert_eq!(d.state.delivered_events, 4);
}

#[test]
fn a_retry_keeps_everything_and_misconfigured_waits_longest() {
    let site = Site::new("retry", "RETRY_SLEEP_SECONDS=1\nRETRY_MAX_SECONDS=60\n");
    site.chunk("1-q0.ndjson", 1..=2);
    let mut d = site.delivery(vec![
        Outcome::Retry { reason: "503".into(), retry_after: None },
        Outcome::Misconfigured { reason: "401".into() },
    ]);
    match d.step() {
        Step::Wait { misconfigured: false, .. } => {}
        other => panic!("{other:?}"),
    }
    d.pace.next_attempt = None;
    match d.step() {
        Step::Wait { misconfigured: true, until, .. } => {
            assert!(until > Instant::now() + Duration::from_secs(55), "RETRY_MAX_SECONDS")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(site.names("pending"), vec!["1-q0.ndjson"]);
    d.pace.next_attempt = None;
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2]; 3]);
    assert!(site.names("pending").is_empty());
}

#[test]
fn a_restart_resumes_inside_a_chunk_where_the_last_batch_ended() {
    let site = Site::new("resume", "MAX_BATCH_EVENTS=2\n");
    site.chunk("1-q0.ndjson", 1..=5);
    let mut d = site.delivery(vec![]);
    assert_eq!(d.step(), Step::Progress);
    assert_eq!(site.sent(), vec![vec![1, 2]]);
    drop(d); // as if killed: the position was saved durably before this
    let mut again = site.delivery(vec![]);
    site.drain(&mut again);
    assert_eq!(site.sent(), vec![vec![1, 2], vec![3, 4], vec![5]]);
    assert!(again.state.progress.is_none() && site.names("pending").is_empty());
}

#[test]
fn malformed_lines_go_to_failed_and_the_good_ones_out() {
    let site = Site::new("poison", "");
    let good = |s: u64| format!("{{\"event_id\":\"e{s}\",\"seq\":{s},\"type\":\"X\"}}\n");
    let text = format!("{}not json\n{}{{\"torn\":\n{}", good(1), good(2), good(3));
    fs::write(site.dir.join("pending/1-q0.ndjson"), text).unwrap();
    let mut d = site.delivery(vec![]);
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2, 3]]);
    assert_eq!(site.names("failed"), vec!["1-q0.ndjson.bad"]);
    assert_eq!(site.failed_text(), "not json\n{\"torn\":\n");
    assert_eq!(d.state.failed_events, 2);
}

/// Reports written to the agent's queue (not rotated here).
fn reports_in_queue(site: &Site) -> Vec<serde_json::Value> {
    fs::read_to_string(site.dir.join(crate::spool::AGENT_QUEUE))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "TELEMETRY_EVENTS_DROPPED")
        .collect()
}

#[test]
fn rejections_are_put_on_reports_first_and_one_report_is_outstanding() {
    let site = Site::new("reject", "MAX_BATCH_EVENTS=3\n");
    site.chunk("1-q0.ndjson", 1..=6);
    let rejected = |n| Outcome::PartlyRejected { rejected: n, message: "no".into() };
    // More than the batch held: capped at its 3 events.
    let mut d = site.delivery(vec![rejected(u64::MAX), rejected(1)]);
    site.drain(&mut d);
    assert_eq!(site.sent(), vec![vec![1, 2, 3], vec![4, 5, 6]]);
    assert_eq!((d.state.dropped.count, d.state.dropped_unreported.count), (4, 1));
    let reports = reports_in_queue(&site);
    assert_eq!(reports.len(), 1, "the second loss waits for the first report's answer: {reports:?}");
    assert_eq!((reports[0]["count"].as_u64(), reports[0]["total_count"].as_u64()), (Some(3), Some(3)));
    let id = reports[0]["event_id"].as_str().unwrap().to_string();
    assert_eq!(d.state.drop_report.as_deref(), Some(id.as_str()));

    // The report comes back in a batch with an event; one of the two is
    // rejected: put on the report, it begets nothing and settles it, and
    // the loss that waited is reported next, with the running total.
    let line = fs::read_to_string(site.dir.join(crate::spool::AGENT_QUEUE)).unwrap();
    fs::remove_file(site.dir.join(crate::spool::AGENT_QUEUE)).unwrap();
    fs::write(
        site.dir.join("pending/2-q1.ndjson"),
        format!("{line}{{\"event_id\":\"e9\",\"seq\":9,\"type\":\"X\"}}\n"),
    )
    .unwrap();
    d.sink = Box::new(Scripted { answers: vec![rejected(1)].into(), sent: Arc::clone(&site.sent) });
    d.refresh();
    site.drain(&mut d);
    assert_eq!((d.state.dropped.count, d.state.dropped_unreported.count), (5, 0));
    let next = reports_in_queue(&site);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!((next[0]["count"].as_u64(), next[0]["total_count"].as_u64()), (Some(1), Some(5)));
    assert_ne!(d.state.drop_report.as_deref(), Some(id.as_str()));
}
