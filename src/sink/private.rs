//! The one place personal fields are treated before a batch is encoded:
//! [`Private`] wraps whatever delivers (the [`super::Sink`] in the agent)
//! and hands it each event line as [`Privacy::line`] made it, so the JSON
//! envelope, OTLP's attributes and body, and the file sink all get the
//! same pseudonymized, cut or shortened event, and nothing else.
//!
//! Guarantees:
//! - with nothing configured the lines are handed on as they are (no
//!   copy, no parse);
//! - a line that cannot be made safe (not a JSON object; delivery checks
//!   every line before, so this is a bug or a race) is never sent: the
//!   batch is set aside in `failed/`, on this host.

use super::{Deliver, Outcome};
use crate::privacy::Privacy;

pub struct Private<D> {
    inner: D,
    privacy: Privacy,
}

impl<D: Deliver> Private<D> {
    pub fn new(inner: D, privacy: Privacy) -> Private<D> {
        Private { inner, privacy }
    }
}

impl<D: Deliver> Deliver for Private<D> {
    fn send(&mut self, server_id: &str, events: &[&[u8]]) -> Outcome {
        if !self.privacy.active() {
            return self.inner.send(server_id, events);
        }
        // One buffer for the batch's treated lines, then slices of it.
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 64).sum());
        let mut ends = Vec::with_capacity(events.len());
        for e in events {
            if let Err(e) = self.privacy.line_into(e, &mut buf) {
                return Outcome::SetAside { status: 0, body_head: e.to_string() };
            }
            ends.push(buf.len());
        }
        let mut start = 0;
        let lines: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let line = &buf[start..end];
                start = end;
                line
            })
            .collect();
        self.inner.send(server_id, &lines)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn holds(&self) -> bool {
        self.inner.holds()
    }
    fn cost(&self, line: &[u8]) -> usize {
        self.inner.cost(line) + self.privacy.growth(line)
    }
    fn overhead(&self, server_id: &str) -> usize {
        self.inner.overhead(server_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{FieldSet, Key, PrivacySection};

    /// Keeps what it was given.
    struct Recorder(Vec<Vec<u8>>);
    impl Deliver for Recorder {
        fn send(&mut self, _: &str, events: &[&[u8]]) -> Outcome {
            self.0.extend(events.iter().map(|e| e.to_vec()));
            Outcome::Delivered
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
    }

    #[test]
    fn what_is_handed_on_is_the_treated_line() {
        let section = PrivacySection {
            pseudonymize: FieldSet::parse("common_name").unwrap(),
            drop_fields: FieldSet::parse("real_port").unwrap(),
            ..PrivacySection::default()
        };
        let mut p = Private::new(Recorder(Vec::new()), Privacy::with_key(&section, Key::new(&[7; 32])));
        let line = br#"{"event_id":"e","common_name":"alice","real_port":"5555","seq":1}"#;
        assert_eq!(p.send("vpn", &[line]), Outcome::Delivered);
        let sent = String::from_utf8(p.inner.0[0].clone()).unwrap();
        assert!(!sent.contains("alice") && !sent.contains("5555"), "{sent}");
        assert!(sent.starts_with(r#"{"event_id":"e","common_name":"pn_"#), "{sent}");
        assert!(p.cost(line) > line.len() + 1);
        assert!(matches!(p.send("vpn", &[b"{\"a\":"]), Outcome::SetAside { .. }));
        assert_eq!(p.inner.0.len(), 1, "a line that cannot be treated is not sent");

        let mut off = Private::new(Recorder(Vec::new()), Privacy::off());
        off.send("vpn", &[line]);
        assert_eq!(off.inner.0[0], line.to_vec());
    }
}
