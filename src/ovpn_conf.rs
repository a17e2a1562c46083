//! OpenVPN config files read the way OpenVPN reads them (`parse_line` in
//! its options.c): whitespace-separated words, `"..."` with `\\` escapes and
//! `'...'` quoting, `#`/`;` comments, a leading `--` allowed, and inline
//! files (`<ca>` … `</ca>`) that hold no directives. The installer (which
//! patches the conf) and the sources (which find its `status` file) share
//! this one reader.

/// One directive: its 1-based line, the line as written, its words (the
/// first is the option name, without `--`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub line: usize,
    pub raw: String,
    pub words: Vec<String>,
}

impl Directive {
    pub fn name(&self) -> &str {
        &self.words[0]
    }
    /// The first argument, or "" when there is none.
    pub fn arg(&self) -> &str {
        self.words.get(1).map_or("", String::as_str)
    }
}

/// Every directive of a config text, in order.
pub fn directives(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut inline: Option<String> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(tag) = &inline {
            if line == format!("</{tag}>") {
                inline = None;
            }
            continue;
        }
        if let Some(tag) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
            if !tag.starts_with('/') {
                inline = Some(tag.to_string());
            }
            continue;
        }
        let mut words = words(line);
        let Some(first) = words.first_mut() else { continue };
        if let Some(name) = first.strip_prefix("--") {
            *first = name.to_string();
        }
        out.push(Directive { line: idx + 1, raw: raw.to_string(), words });
    }
    out
}

/// Splits a config line as OpenVPN does: whitespace-separated words,
/// `"..."` (with `\` escapes) and `'...'`; `#` or `;` start a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' | ';' if !in_word => break,
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(c),
                    }
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_openvpn_splits_them() {
        assert_eq!(words(r#"status "/run/a b.log" 10 # note"#), ["status", "/run/a b.log", "10"]);
        assert_eq!(words(r"status '/x y' a\ b"), ["status", "/x y", "a b"]);
        assert_eq!(words("; all comment"), Vec::<String>::new());
        let text = "--client-connect /x.sh\n<ca>\nstatus /not/this\n</ca>\n\nstatus /yes 5\n";
        let d = directives(text);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].name(), d[0].arg(), d[0].line), ("client-connect", "/x.sh", 1));
        assert_eq!((d[1].name(), d[1].arg(), d[1].line), ("status", "/yes", 6));
    }
}
