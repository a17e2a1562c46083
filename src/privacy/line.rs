//! One event line as it may leave the host, in one pass over its bytes:
//! every member is copied as it is except those of treated fields, whose
//! value is replaced (or which are left out); objects and arrays are walked
//! to any depth. No tree is built: with three pseudonymized fields the
//! drain must stay at least half as fast as without (docs/benchmarks.md).
//!
//! Guarantees:
//! - the output is one compact JSON object (whitespace between tokens is
//!   not kept), with the members that stay in their order;
//! - a treated value is replaced by what [`Privacy::field`] makes of its
//!   text (a string decoded from its JSON escapes; a number or anything
//!   else as written); `null` stays `null`;
//! - delivery checked every line is one JSON object before it gets here
//!   (deliver/read.rs); whatever the scanner still cannot follow is
//!   refused, never passed on: a value half-understood is not sent.

use std::borrow::Cow;

use super::{NotAnEvent, Privacy, Treatment};

/// Where the scanner is in a line.
struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl Privacy {
    /// One event line (without its newline) as it may leave the host; the
    /// line itself when nothing is configured.
    #[cfg(test)]
    pub fn line<'a>(&self, line: &'a [u8]) -> Result<Cow<'a, [u8]>, NotAnEvent> {
        if !self.active() {
            return Ok(Cow::Borrowed(line));
        }
        let mut out = Vec::with_capacity(line.len() + 64);
        self.line_into(line, &mut out)?;
        Ok(Cow::Owned(out))
    }

    /// [`Privacy::line`] appended to `out` (a batch's lines share one
    /// buffer); on an error `out` is as it was.
    pub fn line_into(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        let start = out.len();
        match self.flat(line, out) {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => {
                out.truncate(start);
                return Err(e);
            }
            // Not the common shape: the general scanner decides.
            None => out.truncate(start),
        }
        let mut scan = Scan { s: line, i: 0 };
        scan.ws();
        let done = if scan.peek() == Some(b'{') {
            self.object(&mut scan, out).and_then(|()| {
                scan.ws();
                if scan.i == line.len() { Ok(()) } else { Err(NotAnEvent("text after the object")) }
            })
        } else {
            Err(NotAnEvent("it does not start with {"))
        };
        if done.is_err() {
            out.truncate(start);
        }
        done
    }

    /// The fast path for the common event line: one compact, flat object
    /// with no backslash anywhere (`{"k":v,...}`, no nested `{` or `[`).
    /// Without a backslash every `"` delimits a string, so each member is
    /// found by jumping from quote to quote and copied whole, and only
    /// the treated values are looked at. `None` (output to be discarded)
    /// when the line is not exactly of that shape, whitespace included:
    /// the general scanner then takes it, and refuses what is malformed.
    fn flat(&self, line: &[u8], out: &mut Vec<u8>) -> Option<Result<(), NotAnEvent>> {
        let n = line.len();
        if n < 2 || line[0] != b'{' || line[n - 1] != b'}' || memchr::memchr3(b'\\', b'[', b'{', &line[1..]).is_some() {
            return None;
        }
        out.push(b'{');
        if n == 2 {
            out.push(b'}');
            return Some(Ok(()));
        }
        let mut first = true;
        let mut i = 1;
        loop {
            // A key: `"name":`, then its value up to `,` or the final `}`.
            if line.get(i) != Some(&b'"') {
                return None;
            }
            let close = i + 1 + memchr::memchr(b'"', line.get(i + 1..)?)?;
            if line.get(close + 1) != Some(&b':') {
                return None;
            }
            let v = close + 2;
            let end = match line.get(v)? {
                b'"' => v + 1 + memchr::memchr(b'"', line.get(v + 1..)?)? + 1,
                b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                    let mut j = v;
                    while matches!(line.get(j), Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')) {
                        j += 1;
                    }
                    j
                }
                _ => return None,
            };
            let last = match line.get(end)? {
                b',' => false,
                b'}' if end == n - 1 => true,
                _ => return None,
            };
            let name = &line[i + 1..close];
            match self.treatment_bytes(name) {
                Treatment::Dropped => {}
                t => {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    let value = &line[v..end];
                    if t == Treatment::Clear || value == b"null" {
                        out.extend_from_slice(&line[i..end]);
                    } else {
                        let (Ok(key), Ok(text)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
                            return Some(Err(NotAnEvent("not UTF-8")));
                        };
                        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
                        out.extend_from_slice(&line[i..v]);
                        self.made(key, text, |made| put_made(out, made));
                    }
                }
            }
            if last {
                out.push(b'}');
                return Some(Ok(()));
            }
            i = end + 1;
        }
    }

    fn object(&self, scan: &mut Scan, out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        scan.expect(b'{')?;
        out.push(b'{');
        let mut first = true;
        scan.ws();
        if scan.peek() == Some(b'}') {
            scan.i += 1;
            out.push(b'}');
            return Ok(());
        }
        loop {
            scan.ws();
            let key_span = scan.string()?;
            let inner = &key_span[1..key_span.len() - 1];
            // Keys are plain names; one with an escape is decoded first.
            let escaped = inner.contains(&b'\\');
            let treatment = if escaped { self.treatment(&decode(key_span)?) } else { self.treatment_bytes(inner) };
            scan.ws();
            scan.expect(b':')?;
            scan.ws();
            match treatment {
                Treatment::Dropped => {
                    scan.value()?;
                }
                t => {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(key_span);
                    out.push(b':');
                    if t == Treatment::Clear {
                        self.clear_value(scan, out)?;
                    } else {
                        self.treated_value(&decode(key_span)?, scan, out)?;
                    }
                }
            }
            scan.ws();
            match scan.next() {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return Err(NotAnEvent("expected , or } in an object")),
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn array(&self, scan: &mut Scan, out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        scan.expect(b'[')?;
        out.push(b'[');
        scan.ws();
        if scan.peek() == Some(b']') {
            scan.i += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            scan.ws();
            self.clear_value(scan, out)?;
            scan.ws();
            match scan.next() {
                Some(b',') => out.push(b','),
                Some(b']') => break,
                _ => return Err(NotAnEvent("expected , or ] in an array")),
            }
        }
        out.push(b']');
        Ok(())
    }

    /// A value of a field sent in clear: copied, but objects and arrays are
    /// walked, since they may hold personal fields (a snapshot's sessions).
    fn clear_value(&self, scan: &mut Scan, out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        match scan.peek() {
            Some(b'{') => self.object(scan, out),
            Some(b'[') => self.array(scan, out),
            _ => {
                out.extend_from_slice(scan.value()?);
                Ok(())
            }
        }
    }

    fn treated_value(&self, key: &str, scan: &mut Scan, out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        let span = scan.value()?;
        if span == b"null" {
            out.extend_from_slice(span);
            return Ok(());
        }
        let text = if span.first() == Some(&b'"') {
            decode(span)?
        } else {
            Cow::Borrowed(std::str::from_utf8(span).map_err(|_| NotAnEvent("not UTF-8"))?)
        };
        self.made(key, &text, |made| put_made(out, made));
        Ok(())
    }
}

/// Writes what a treated value became, as a JSON string ("" when it is not
/// sent). What it becomes is a pseudonym, a UUID, an address or "": written
/// as it is it needs no escaping, but anything else goes through
/// serde_json so nothing can break the line.
fn put_made(out: &mut Vec<u8>, made: Option<&str>) {
    let made = made.unwrap_or_default();
    if made.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(made.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, made);
    }
}

/// A JSON string's text: its bytes when it has no escape, else decoded.
fn decode(span: &[u8]) -> Result<Cow<'_, str>, NotAnEvent> {
    let inner = &span[1..span.len() - 1];
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner).map(Cow::Borrowed).map_err(|_| NotAnEvent("not UTF-8"));
    }
    serde_json::from_slice::<String>(span).map(Cow::Owned).map_err(|_| NotAnEvent("a bad string escape"))
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), NotAnEvent> {
        if self.next() == Some(b) { Ok(()) } else { Err(NotAnEvent("unexpected character")) }
    }

    /// A string with its quotes; its escapes are not decoded here (nor are
    /// control characters looked for: delivery has checked the line is
    /// JSON, where a string cannot hold one).
    fn string(&mut self) -> Result<&'a [u8], NotAnEvent> {
        let start = self.i;
        self.expect(b'"')?;
        loop {
            let Some(at) = self.s.get(self.i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) else {
                return Err(NotAnEvent("an unterminated string"));
            };
            self.i += at + 1;
            if self.s[self.i - 1] == b'"' {
                return Ok(&self.s[start..self.i]);
            }
            // A backslash: the next byte is escaped.
            self.i += 1;
        }
    }

    /// Any value, skipped; its bytes.
    fn value(&mut self) -> Result<&'a [u8], NotAnEvent> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return Err(NotAnEvent("an unterminated object or array")),
                    }
                    self.i += 1;
                }
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')) {
                    self.i += 1;
                }
            }
            _ => return Err(NotAnEvent("expected a value")),
        }
        Ok(&self.s[start..self.i])
    }
}
