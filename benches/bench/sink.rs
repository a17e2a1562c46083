//! The loopback telemetry server for the drain: HTTP/1.1 keep-alive, one
//! thread per connection, answers every request 200 as soon as the body is
//! read and keeps the bodies; the event ids are tallied after the run
//! ([`SinkState::tally`]), so checking costs the measured agent nothing.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::{Ctx, Res};

/// What the sink has received since it was last reset.
#[derive(Default)]
pub struct SinkState {
    /// Request bodies as received, and whether each is gzipped.
    bodies: Vec<(Vec<u8>, bool)>,
}

/// The events found in what the sink received.
pub struct Tally {
    pub ids: HashSet<String>,
    pub occurrences: u64,
    pub requests: u64,
}

impl SinkState {
    pub fn tally(&self) -> Res<Tally> {
        let mut t = Tally { ids: HashSet::new(), occurrences: 0, requests: self.bodies.len() as u64 };
        for (body, gzip) in &self.bodies {
            let mut plain = Vec::new();
            let body = if *gzip {
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).ctx("sink: gunzip")?;
                &plain
            } else {
                body
            };
            let (n, ids) = event_ids(body);
            t.occurrences += n;
            t.ids.extend(ids);
        }
        Ok(t)
    }
}

pub fn start() -> Res<(u16, Arc<Mutex<SinkState>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ctx("sink: bind 127.0.0.1:0")?;
    let port = listener.local_addr().ctx("sink")?.port();
    let state = Arc::new(Mutex::new(SinkState::default()));
    let st = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let st = st.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(conn, &st) {
                    eprintln!("bench sink: {e}");
                }
            });
        }
    });
    Ok((port, state))
}

fn serve(conn: TcpStream, state: &Mutex<SinkState>) -> Res<()> {
    let mut out = conn.try_clone().ctx("sink: clone")?;
    let mut rd = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).ctx("sink: request line")? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let (mut len, mut chunked, mut close, mut gzip) = (0usize, false, false, false);
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).ctx("sink: header")? == 0 {
                return Ok(());
            }
            let Some((k, v)) = h.trim_end().split_once(':') else { break };
            let (k, v) = (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => len = v.parse().ctx("sink: content-length")?,
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                "content-encoding" => gzip = v == "gzip",
                "expect" if v == "100-continue" => out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ctx("sink")?,
                _ => {}
            }
        }
        let mut body = if chunked { read_chunked(&mut rd)? } else { vec![0; len] };
        if !chunked {
            rd.read_exact(&mut body).ctx("sink: body")?;
        }
        state.lock().map_err(|_| "sink: poisoned")?.bodies.push((body, gzip));
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").ctx("sink: answer")?;
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(rd: &mut impl BufRead) -> Res<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        rd.read_line(&mut size).ctx("sink: chunk size")?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).ctx("sink: chunk size")?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if rd.read_line(&mut t).ctx("sink: trailer")? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size + 2, 0);
        rd.read_exact(&mut body[at..]).ctx("sink: chunk")?;
        body.truncate(at + size);
    }
}

/// Occurrences of the event id key and the ids they name: `"event_id"`
/// in the `json` envelope, the `openvpn.event_id` attribute in OTLP.
fn event_ids(body: &[u8]) -> (u64, Vec<String>) {
    const OTLP: &[u8] = b"\"key\":\"openvpn.event_id\",\"value\":{\"stringValue\"";
    let json: &[u8] = b"\"event_id\"";
    let key = if body.windows(OTLP.len()).any(|w| w == OTLP) { OTLP } else { json };
    ids_after(body, key)
}

fn ids_after(body: &[u8], key: &[u8]) -> (u64, Vec<String>) {
    let (mut n, mut ids, mut i) = (0, Vec::new(), 0);
    while let Some(off) = body[i..].windows(key.len()).position(|w| w == key) {
        n += 1;
        i += off + key.len();
        let rest = &body[i..];
        let start = rest.iter().position(|&c| c == b'"').map_or(rest.len(), |p| p + 1);
        let end = rest[start..].iter().position(|&c| c == b'"').map_or(rest.len(), |p| start + p);
        ids.push(String::from_utf8_lossy(&rest[start..end]).into_owned());
    }
    (n, ids)
}
