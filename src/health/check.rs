//! `status --check`: the agent's health as one line and the Monitoring
//! Plugins exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) with
//! performance data after `|`, so Nagios, Icinga, Zabbix and Sensu run it
//! unchanged.
//!
//! Guarantees: [`evaluate`] is a pure function of the [`Facts`] (the
//! caller gathers them without taking any lock); the line is one line,
//! printable, with no `|` before the performance data; the worst finding
//! sets the code and comes first.

use std::fmt::Write as _;

const DAY: i64 = 86_400;

/// Exit codes of the Monitoring Plugins guidelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Code {
    fn word(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Warning => "WARNING",
            Code::Critical => "CRITICAL",
            Code::Unknown => "UNKNOWN",
        }
    }
}

/// What `status --check` looked at.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Set when the check could not look (state or spool unreadable): the
    /// verdict is UNKNOWN with this reason.
    pub cannot_tell: Option<String>,
    pub agent_running: bool,
    /// The spool is missing or not a directory the agent would deliver from.
    pub spool_refused: Option<String>,
    /// Seconds since the oldest undelivered event was written.
    pub oldest_age: Option<i64>,
    pub queue_bytes: u64,
    pub pending_chunks: u64,
    pub pending_bytes: u64,
    pub failed_files: u64,
    /// Events lost and not yet reported to the server.
    pub unreported_drops: u64,
    pub dropped_total: u64,
    pub consecutive_failures: u64,
    /// Status files not rewritten for too long: (path, seconds).
    pub stale_status: Vec<(String, i64)>,
    /// CAs, server certificates and CRLs within the first expiry
    /// threshold (`EXPIRY_WARN_DAYS`): (what, seconds left; 0 or less is
    /// expired, which locks every client out).
    pub pki: Vec<(String, i64)>,
    /// `METRICS_TEXTFILE` while the agent runs: missing (`None`) or not
    /// rewritten for this many seconds, when that is too long.
    pub metrics_stale: Option<(String, Option<i64>)>,
    pub warn_seconds: u64,
    pub crit_seconds: u64,
}

/// The verdict: exit code and the line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub code: Code,
    pub line: String,
}

/// A path or message in the line: printable, and no `|`, which would
/// start the performance data.
fn clean(text: &str) -> String {
    crate::fsutil::printable(text).replace('|', "\\x7c")
}

pub fn evaluate(f: &Facts) -> Verdict {
    let mut findings: Vec<(Code, String)> = Vec::new();
    if let Some(why) = &f.cannot_tell {
        findings.push((Code::Unknown, format!("cannot check: {}", clean(why))));
    }
    if !f.agent_running {
        findings.push((Code::Critical, "agent not running".into()));
    }
    if let Some(why) = &f.spool_refused {
        findings.push((Code::Critical, format!("spool refused: {}", clean(why))));
    }
    if f.unreported_drops > 0 {
        findings.push((Code::Critical, format!("{} events dropped, not yet reported", f.unreported_drops)));
    }
    if let Some(age) = f.oldest_age {
        if age > f.crit_seconds as i64 {
            findings.push((Code::Critical, format!("oldest undelivered event {age} s old (> {} s)", f.crit_seconds)));
        } else if age > f.warn_seconds as i64 {
            findings.push((Code::Warning, format!("oldest undelivered event {age} s old (> {} s)", f.warn_seconds)));
        }
    }
    if f.failed_files > 0 {
        findings.push((Code::Warning, format!("{} file(s) in failed/", f.failed_files)));
    }
    for (path, age) in &f.stale_status {
        findings.push((Code::Warning, format!("{} not rewritten for {age} s", clean(path))));
    }
    match &f.metrics_stale {
        Some((path, None)) => findings.push((Code::Warning, format!("{} not written", clean(path)))),
        Some((path, Some(age))) => {
            findings.push((Code::Warning, format!("{} not rewritten for {age} s", clean(path))));
        }
        None => {}
    }
    for (what, left) in &f.pki {
        if *left <= 0 {
            findings.push((Code::Critical, format!("{} expired", clean(what))));
        } else if *left < DAY {
            findings.push((Code::Warning, format!("{} expires in {} h", clean(what), left / 3600)));
        } else {
            findings.push((Code::Warning, format!("{} expires in {} d", clean(what), left / DAY)));
        }
    }
    // The worst first; UNKNOWN outranks the rest only when nothing is
    // known to be CRITICAL (the guidelines' order of 2 over 3).
    findings.sort_by_key(|(c, _)| std::cmp::Reverse(rank(*c)));
    let code = findings.first().map_or(Code::Ok, |(c, _)| *c);
    let text = if findings.is_empty() {
        format!("delivering; {} chunk(s) pending", f.pending_chunks)
    } else {
        findings.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("; ")
    };
    let mut line = format!("OPENVPN-TELEMETRY {} - {text} |", code.word());
    // Nothing pending has no age: `U` (undetermined), which the
    // guidelines allow in place of a number (and without a unit). The
    // thresholds are ranges: `0` alerts above 0, as the verdict does.
    let age = f.oldest_age.map_or("U".to_string(), |a| format!("{}s", a.max(0)));
    let _ = write!(
        line,
        " oldest_pending_age={age};{};{};0 pending_chunks={};;;0 pending_bytes={}B;;;0 queue_bytes={}B;;;0 \
         failed_files={};0;;0 dropped_unreported={};;0;0 dropped_total={}c;;;0 consecutive_failures={};;;0",
        f.warn_seconds,
        f.crit_seconds,
        f.pending_chunks,
        f.pending_bytes,
        f.queue_bytes,
        f.failed_files,
        f.unreported_drops,
        f.dropped_total,
        f.consecutive_failures,
    );
    Verdict { code, line }
}

fn rank(c: Code) -> u8 {
    match c {
        Code::Ok => 0,
        Code::Warning => 1,
        Code::Unknown => 2,
        Code::Critical => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value or threshold number of the Monitoring Plugins guidelines.
    fn number(t: &str) -> Option<f64> {
        let ok = !t.is_empty()
            && t.trim_start_matches('-').chars().all(|c| c.is_ascii_digit() || c == '.')
            && t.trim_start_matches('-').starts_with(|c: char| c.is_ascii_digit());
        ok.then(|| t.parse().ok()).flatten()
    }

    /// A threshold range `[@][start:][end]` (`~` for minus infinity): whether
    /// `v` alerts. `None`: not a range.
    fn alerts(range: &str, v: f64) -> Option<bool> {
        let (inside, r) = match range.strip_prefix('@') {
            Some(r) => (true, r),
            None => (false, range),
        };
        let (start, end) = match r.split_once(':') {
            Some((s, e)) => (s, e),
            None => ("0", r),
        };
        let lo = if start == "~" { f64::NEG_INFINITY } else { number(start)? };
        let hi = if end.is_empty() { f64::INFINITY } else { number(end)? };
        let within = lo <= v && v <= hi;
        Some(if inside { within } else { !within })
    }

    /// Strictly parses the performance data after `|`:
    /// `'label'=value[UOM];[warn];[crit];[min];[max]`, space-separated;
    /// value a number or `U` (no unit then); UOM one the guidelines name.
    /// Returns (label, value, warn, crit) with value `None` for `U`.
    fn perfdata(text: &str) -> Vec<(String, Option<f64>, String, String)> {
        let mut out = Vec::new();
        for item in text.split(' ').filter(|i| !i.is_empty()) {
            let (label, rest) = item.split_once('=').unwrap_or_else(|| panic!("no '=' in {item:?}"));
            assert!(!label.is_empty() && !label.contains(['\'', '=']), "label {label:?}");
            let fields: Vec<&str> = rest.split(';').collect();
            assert!(fields.len() <= 5, "too many fields in {item:?}");
            let value = if fields[0] == "U" {
                None
            } else {
                let unit_at =
                    fields[0].find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(fields[0].len());
                let (num, uom) = fields[0].split_at(unit_at);
                assert!(
                    ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom),
                    "unit {uom:?} in {item:?}"
                );
                Some(number(num).unwrap_or_else(|| panic!("value {num:?} in {item:?}")))
            };
            let field = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
            for i in [1, 2] {
                let r = field(i);
                assert!(r.is_empty() || alerts(&r, 0.0).is_some(), "range {r:?} in {item:?}");
            }
            for i in [3, 4] {
                let n = field(i);
                assert!(n.is_empty() || number(&n).is_some(), "min/max {n:?} in {item:?}");
            }
            out.push((label.to_string(), value, field(1), field(2)));
        }
        out
    }

    /// The performance data parses strictly, and its thresholds alert
    /// exactly where the verdict does.
    #[test]
    fn performance_data_follows_the_plugin_guidelines() {
        let cases = [
            (healthy(), Code::Ok),
            (Facts { failed_files: 1, ..healthy() }, Code::Warning),
            (Facts { unreported_drops: 1, ..healthy() }, Code::Critical),
            (Facts { oldest_age: Some(601), pending_chunks: 1, ..healthy() }, Code::Warning),
            (Facts { oldest_age: Some(3601), pending_chunks: 1, ..healthy() }, Code::Critical),
        ];
        for (facts, code) in cases {
            let v = evaluate(&facts);
            assert_eq!(v.code, code, "{}", v.line);
            let (_, data) = v.line.split_once('|').unwrap();
            let items = perfdata(data.trim());
            assert_eq!(items.len(), 8, "{data}");
            let mut worst = Code::Ok;
            for (label, value, warn, crit) in &items {
                let Some(value) = value else {
                    assert_eq!(label, "oldest_pending_age", "{data}");
                    assert!(facts.oldest_age.is_none());
                    continue;
                };
                if !crit.is_empty() && alerts(crit, *value).unwrap() {
                    worst = worst.max(Code::Critical);
                } else if !warn.is_empty() && alerts(warn, *value).unwrap() {
                    worst = worst.max(Code::Warning);
                }
            }
            assert_eq!(worst, code, "the thresholds in {data}");
        }
    }

    fn healthy() -> Facts {
        Facts { agent_running: true, warn_seconds: 600, crit_seconds: 3600, ..Default::default() }
    }

    #[test]
    fn each_finding_gives_its_code() {
        let ok = evaluate(&healthy());
        assert_eq!(ok.code, Code::Ok);
        assert!(ok.line.starts_with("OPENVPN-TELEMETRY OK - ") && ok.line.matches('|').count() == 1, "{}", ok.line);
        let cases: Vec<(Facts, Code, &str)> = vec![
            (Facts { agent_running: false, ..healthy() }, Code::Critical, "agent not running"),
            (Facts { oldest_age: Some(601), ..healthy() }, Code::Warning, "601 s old"),
            (Facts { oldest_age: Some(600), ..healthy() }, Code::Ok, "delivering"),
            (Facts { oldest_age: Some(3601), ..healthy() }, Code::Critical, "3601 s old"),
            (Facts { failed_files: 2, ..healthy() }, Code::Warning, "2 file(s) in failed/"),
            (Facts { unreported_drops: 3, ..healthy() }, Code::Critical, "3 events dropped"),
            (Facts { spool_refused: Some("gone".into()), ..healthy() }, Code::Critical, "spool refused: gone"),
            (Facts { stale_status: vec![("/s|x\n".into(), 900)], ..healthy() }, Code::Warning, "/s\\x7cx\\u{a}"),
            (Facts { cannot_tell: Some("denied".into()), ..healthy() }, Code::Unknown, "cannot check: denied"),
            (
                Facts { pki: vec![("PKI server: CRL".into(), 6 * DAY + 5)], ..healthy() },
                Code::Warning,
                "CRL expires in 6 d",
            ),
            (Facts { pki: vec![("PKI server: CA".into(), 0)], ..healthy() }, Code::Critical, "CA expired"),
            (Facts { pki: vec![("PKI server: CA".into(), -1)], ..healthy() }, Code::Critical, "CA expired"),
            (Facts { pki: vec![("PKI server: CA".into(), DAY - 1)], ..healthy() }, Code::Warning, "CA expires in 23 h"),
            (Facts { pki: vec![("PKI server: CA".into(), 59)], ..healthy() }, Code::Warning, "CA expires in 0 h"),
            (
                Facts { metrics_stale: Some(("/m.prom".into(), None)), ..healthy() },
                Code::Warning,
                "/m.prom not written",
            ),
            (
                Facts { cannot_tell: Some("denied".into()), agent_running: false, ..healthy() },
                Code::Critical,
                "agent not running; cannot check",
            ),
        ];
        for (facts, code, text) in cases {
            let v = evaluate(&facts);
            assert_eq!(v.code, code, "{}", v.line);
            assert!(v.line.contains(text), "{text:?} in {}", v.line);
            assert_eq!(v.line.matches('|').count(), 1, "{}", v.line);
            assert!(!v.line.contains('\n'), "{}", v.line);
        }
    }
}
