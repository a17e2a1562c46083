//! One round of the status files: each configured file read once (under
//! the read capability, see [`super::files`]), its sessions turned into
//! `SESSION_UPDATE`s and a `SESSION_SNAPSHOT`, and what it says handed to
//! the health board (the metrics file and the heartbeat).
//!
//! Guarantees: a file that cannot be read, is being rewritten or has rows
//! that cannot be read costs only itself (logged once per change, counted
//! for `status`); the others are read and reported as usual.

use super::files::{Got, read_stable, save_state};
use super::{Error, SESSIONS_STATE, STALE_STATUS_SECONDS, Sources, Stored, conf, sessions, status_file, views};
use crate::health::InstanceView;

impl Sources<'_> {
    /// Reads every status file once and writes the updates and/or the
    /// snapshot. `Ok(false)`: some file was skipped (logged).
    pub(super) fn status_round(&mut self, snapshot: bool, update: bool, now: i64) -> Result<bool, Vec<Error>> {
        let mut views = Vec::new();
        let result = self.status_files(snapshot, update, now, &mut views);
        if let Some(board) = self.board {
            board.publish_instances(views);
        }
        result
    }

    /// [`Self::status_round`]'s work; `views` gets every status file as read.
    fn status_files(
        &mut self,
        snapshot: bool,
        update: bool,
        now: i64,
        views: &mut Vec<InstanceView>,
    ) -> Result<bool, Vec<Error>> {
        let (found, problems) = conf::status_sources(self.settings);
        if found.is_empty() && !problems.is_empty() {
            self.noise.warn("config", format!("sessions off: {}", problems.join("; ")));
        } else {
            for p in &problems {
                log::debug!("sessions: {p}");
            }
            self.noise.over("config");
        }
        if found.is_empty() {
            // Not configured (or no `status` directive): nothing to retry soon.
            return Ok(true);
        }
        let mut complete = true;
        let mut errors = Vec::new();
        // A status file no longer configured is forgotten, so that
        // `status --check` does not warn about it for ever.
        if problems.is_empty() {
            let configured = found.iter().map(|s| s.path.display().to_string()).collect();
            if self.sessions.keep_only(&configured)
                && let Err(e) = save_state(&self.settings.spool.spool_dir.join(SESSIONS_STATE), &self.sessions)
            {
                errors.push(e);
            }
        }
        for src in &found {
            let path = src.path.display();
            let key = path.to_string();
            let parsed = match read_stable(&src.path, &self.source_owners) {
                Ok(Got::Data(bytes, mtime)) => status_file::parse(&bytes, Some(mtime)).map_err(|e| e.to_string()),
                Ok(Got::Skip(why)) => Err(why),
                Err(e) => {
                    errors.push(e);
                    views.push(views::instance_view(src, None));
                    continue;
                }
            };
            views.push(views::instance_view(src, parsed.as_ref().ok()));
            let status = match parsed {
                Ok(s) => {
                    self.noise.over(&key);
                    self.rows_left_out(&key, &s);
                    s
                }
                Err(why) => {
                    self.noise.warn(&key, format!("{path}: {why}; session round skipped"));
                    complete = false;
                    continue;
                }
            };
            if update {
                let result = self.sessions.update(&status, src, &self.sink, now);
                let saved = save_state(&self.settings.spool.spool_dir.join(SESSIONS_STATE), &self.sessions);
                match result {
                    Ok(sessions::Updated::Written(n)) => log::debug!("{path}: {n} SESSION_UPDATE written"),
                    Ok(sessions::Updated::Unchanged) => log::debug!("{path}: not rewritten since the last update"),
                    Ok(sessions::Updated::SpoolFull(n)) => {
                        log::warn!("{path}: spool full after {n} SESSION_UPDATE; the rest carry over");
                        complete = false;
                    }
                    Err(source) => errors.push(Error::Spool { file: src.path.clone(), source }),
                }
                if let Err(e) = saved {
                    errors.push(e);
                }
            }
            let age = status.written_at.map_or(0, |t| now - t);
            if snapshot && age > STALE_STATUS_SECONDS {
                let msg = format!("{path}: not rewritten for {age} s (is OpenVPN running?); no SESSION_SNAPSHOT");
                self.noise.warn(&format!("stale {key}"), msg);
                complete = false;
            } else if snapshot {
                self.noise.over(&format!("stale {key}"));
                for ev in sessions::snapshot_events(&status, src) {
                    match self.sink.append(&ev) {
                        Ok(Stored::Yes) => {}
                        Ok(Stored::Dropped) => {
                            log::warn!("{path}: spool full; SESSION_SNAPSHOT left incomplete");
                            complete = false;
                            break;
                        }
                        Err(source) => {
                            errors.push(Error::Spool { file: src.path.clone(), source });
                            break;
                        }
                    }
                }
            }
        }
        if errors.is_empty() { Ok(complete) } else { Err(errors) }
    }

    /// Reports rows of a status file that were left out as unreadable: a
    /// warning when that starts or changes (so at most once per version of
    /// the file, and a crafted name cannot flood the journal), debug while
    /// it lasts; the count goes into `sessions.state` for `status`.
    fn rows_left_out(&mut self, key: &str, status: &status_file::Status) {
        let bad = &status.unreadable;
        let noise_key = format!("rows {key}");
        if bad.is_empty() {
            self.noise.over(&noise_key);
        } else {
            let lines: Vec<String> = bad.iter().take(5).map(|e| e.line.to_string()).collect();
            let more = if bad.len() > 5 { ", ..." } else { "" };
            let msg = format!(
                "{key}: {} unreadable row(s) left out (line {}{more}: {}); the other clients are read",
                bad.len(),
                lines.join(", "),
                bad[0].what
            );
            self.noise.warn(&noise_key, msg);
        }
        let before = self.sessions.unreadable.get(key).copied().unwrap_or(0);
        if before != bad.len() {
            if bad.is_empty() {
                self.sessions.unreadable.remove(key);
            } else {
                self.sessions.unreadable.insert(key.to_string(), bad.len());
            }
            if let Err(e) = save_state(&self.settings.spool.spool_dir.join(SESSIONS_STATE), &self.sessions) {
                log::warn!("{e}");
            }
        }
    }
}
