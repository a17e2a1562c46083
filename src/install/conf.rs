//! Patching an OpenVPN server conf, and undoing it exactly.
//!
//! `install` appends one marked block with whatever of `script-security 2`,
//! `client-connect` and `client-disconnect` is missing; `uninstall` removes
//! that block and nothing else, so the rest of the file comes back byte for
//! byte. A conf that already names *another* client-connect or
//! client-disconnect (OpenVPN runs only one of each) is refused unless
//! `FORCE=1`; then those lines are commented out with a marker that
//! `uninstall` takes off again. These functions only transform text; the
//! installer does the file work (backup, temp + rename, mode and owner).

/// The hooks as OpenVPN must name them.
pub const CONNECT: &str = crate::roles::link(crate::roles::Role::Connect);
pub const DISCONNECT: &str = crate::roles::link(crate::roles::Role::Disconnect);

const BEGIN: &str = "# BEGIN openvpn-telemetry (added by `openvpn-telemetry install`; `uninstall` removes it)";
/// Appended to the BEGIN line when install had to end the file's last line.
const NEWLINE_ADDED: &str = " +newline";
const END: &str = "# END openvpn-telemetry";
/// Prefix of a conflicting line that `FORCE=1` disabled.
const DISABLED: &str = "#openvpn-telemetry-disabled# ";

/// The lines to add by hand when no conf is given.
pub fn wanted_lines() -> [String; 3] {
    ["script-security 2".into(), format!("client-connect {CONNECT}"), format!("client-disconnect {DISCONNECT}")]
}

/// What patching a conf comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// The conf already does what telemetry needs.
    Unchanged,
    /// The new text, and notes for the operator.
    Changed { text: String, notes: Vec<String> },
    /// Refused: each entry names a line and what is wrong with it.
    Conflict(Vec<String>),
}

use crate::ovpn_conf::{Directive, directives};

/// Works out the patched text. Idempotent: patching patched text gives
/// [`Patch::Unchanged`]; an earlier block is recomputed, not duplicated.
pub fn patch(current: &str, force: bool) -> Patch {
    let base = unpatch(current).unwrap_or_else(|| current.to_string());
    // Lines an earlier `FORCE=1` install disabled stay disabled without it.
    let forced_before: Vec<&str> = current.lines().filter_map(|l| l.strip_prefix(DISABLED)).collect();
    let dirs = directives(&base);
    let mut block = Vec::new();
    let mut notes = Vec::new();
    let mut conflicts = Vec::new();
    let mut disable = Vec::new();

    match dirs.iter().rev().find(|d| d.name() == "script-security") {
        Some(d) if d.arg().parse::<u32>().is_ok_and(|n| n >= 2) => {}
        Some(d) => {
            notes.push(format!(
                "line {}: `script-security {}` does not allow hooks; the `script-security 2` added after it wins",
                d.line,
                d.arg()
            ));
            block.push("script-security 2".to_string());
        }
        None => block.push("script-security 2".to_string()),
    }
    for (name, ours) in [("client-connect", CONNECT), ("client-disconnect", DISCONNECT)] {
        let found: Vec<&Directive> = dirs.iter().filter(|d| d.name() == name).collect();
        let others: Vec<&&Directive> = found.iter().filter(|d| d.arg() != ours).collect();
        for d in &others {
            if force || forced_before.contains(&d.raw.as_str()) {
                disable.push(d.line);
                notes.push(format!("line {}: `{name} {}` commented out (FORCE=1)", d.line, d.arg()));
            } else {
                conflicts.push(format!(
                    "line {}: `{name} {}` is already set and OpenVPN runs only one {name}; chain the \
                     telemetry hook from that script ({ours}), or set FORCE=1 (in .env or the environment) \
                     to comment it out and use the telemetry hook",
                    d.line,
                    d.arg()
                ));
            }
        }
        if found.len() == others.len() {
            block.push(format!("{name} {ours}"));
        }
    }
    if !conflicts.is_empty() {
        return Patch::Conflict(conflicts);
    }

    let mut text = String::with_capacity(base.len() + 300);
    for (idx, line) in base.split_inclusive('\n').enumerate() {
        if disable.contains(&(idx + 1)) {
            text.push_str(DISABLED);
        }
        text.push_str(line);
    }
    if !block.is_empty() {
        let mut begin = BEGIN.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
            begin.push_str(NEWLINE_ADDED);
        }
        text.push_str(&begin);
        text.push('\n');
        for l in &block {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str(END);
        text.push('\n');
    }
    if text == current { Patch::Unchanged } else { Patch::Changed { text, notes } }
}

/// The text without what [`patch`] added; `None` when there is nothing to
/// remove.
pub fn unpatch(current: &str) -> Option<String> {
    let mut out = String::with_capacity(current.len());
    let mut inside = false;
    let mut changed = false;
    let mut strip_newline = false;
    for line in current.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if !inside && bare.starts_with(BEGIN) {
            inside = true;
            changed = true;
            strip_newline = bare.ends_with(NEWLINE_ADDED);
            continue;
        }
        if inside {
            if bare == END {
                inside = false;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(DISABLED) {
            out.push_str(rest);
            changed = true;
        } else {
            out.push_str(line);
        }
    }
    if strip_newline && out.ends_with('\n') {
        out.pop();
    }
    changed.then_some(out)
}

/// Whether a conf runs the telemetry hooks (for `check`): the lines
/// missing, as they should be added.
pub fn missing(text: &str) -> Vec<String> {
    let dirs = directives(text);
    let mut missing = Vec::new();
    let level = dirs.iter().rev().find(|d| d.name() == "script-security").and_then(|d| d.arg().parse::<u32>().ok());
    if level.is_none_or(|n| n < 2) {
        missing.push("script-security 2".to_string());
    }
    for (name, ours) in [("client-connect", CONNECT), ("client-disconnect", DISCONNECT)] {
        if !dirs.iter().any(|d| d.name() == name && d.arg() == ours) {
            missing.push(format!("{name} {ours}"));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_once_and_undoes_byte_for_byte() {
        for original in ["port 1194\nproto udp\n", "port 1194\nproto udp", "", "dev tun\r\n"] {
            let Patch::Changed { text, .. } = patch(original, false) else { panic!("{original:?}") };
            assert_eq!(missing(&text), Vec::<String>::new());
            assert_eq!(patch(&text, false), Patch::Unchanged);
            assert_eq!(unpatch(&text).as_deref(), Some(original));
        }
    }

    #[test]
    fn keeps_what_is_already_right() {
        let conf = format!("script-security 3\nclient-connect \"{CONNECT}\"\nclient-disconnect {DISCONNECT}\n");
        assert_eq!(patch(&conf, false), Patch::Unchanged);
        let conf = "script-security 3\n";
        let Patch::Changed { text, .. } = patch(conf, false) else { panic!() };
        assert!(!text[conf.len()..].contains("script-security"), "{text}");
    }

    #[test]
    fn conflicts_refused_unless_forced() {
        let conf = "client-connect /usr/local/bin/other.sh\n;client-disconnect /x\n";
        match patch(conf, false) {
            Patch::Conflict(c) => assert!(c.len() == 1 && c[0].contains("line 1") && c[0].contains("FORCE=1")),
            other => panic!("{other:?}"),
        }
        let Patch::Changed { text, notes } = patch(conf, true) else { panic!() };
        assert!(text.starts_with(DISABLED) && notes.len() == 1);
        assert_eq!(patch(&text, true), Patch::Unchanged);
        assert_eq!(patch(&text, false), Patch::Unchanged, "FORCE is remembered by the marker");
        assert_eq!(missing(&text), Vec::<String>::new());
        assert_eq!(unpatch(&text).as_deref(), Some(conf));
    }

    #[test]
    fn low_script_security_is_overridden_later() {
        let Patch::Changed { text, notes } = patch("script-security 1\n", false) else { panic!() };
        assert!(text.ends_with(&format!(
            "script-security 2\nclient-connect {CONNECT}\nclient-disconnect {DISCONNECT}\n{END}\n"
        )));
        assert_eq!(notes.len(), 1);
    }
}
