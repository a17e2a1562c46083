//! The crate is layers that only look down, checked from the source:
//! entry (main, rt, cli) → commands (hook, agent, install, status,
//! check) → domain (spool, deliver, sources, sinks and what they share) →
//! foundations (config, event, fsutil, accounts, getent, state, url, exit, and
//! roles, the table of names).
//!
//! Reads every `src/**/*.rs`, builds the module graph from `crate::…`
//! paths, `super::…` paths and (in the crate root) bare `module::…`
//! paths, leaving out test-only code (`#[cfg(test)]` items and the files
//! they declare), and fails on:
//! - a top-level module missing from [`LAYERS`] (place it there);
//! - an edge to a higher layer;
//! - an import cycle (a strongly connected component of more than one
//!   module), directly or through others.
//!
//! The rule inside a module directory: a parent (`deliver/mod.rs`) and the
//! modules below it are one room. A child may use what its parent defines
//! (`super::Delivery`), and the parent declares and uses its children;
//! those edges are not counted. Between siblings (`deliver::backlog` and
//! `deliver::failed`), and between any modules that are not one another's
//! ancestors, the import goes one way only.
//!
//! Needs no root and no network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module's layer: 0 entry, 1 commands, 2 domain,
/// 3 foundations. An import may go to the same layer or a lower one (a
/// higher number), never up.
const LAYERS: &[(&str, u8)] = &[
    // Entry: the exported entry point, the role table, argument routing.
    ("main", 0),
    ("rt", 0),
    ("cli", 0),
    // Commands.
    ("hook", 1),
    ("agent", 1),
    ("install", 1),
    ("status", 1),
    ("check", 1),
    // Domain: the spool, delivery, sources and sinks, and what they share.
    ("spool", 2),
    ("deliver", 2),
    ("sources", 2),
    ("sink", 2),
    ("http", 2),
    ("otlp", 2),
    ("resolve", 2),
    ("notify", 2),
    ("privilege", 2),
    ("ovpn_conf", 2),
    // The agent's health: heartbeat, status --check's verdict, metrics file.
    ("health", 2),
    // Foundations.
    // OpenVPN's `Real Address` split into ip and port.
    ("real_address", 3),
    ("config", 3),
    // The table of names this binary answers to: data only, read by the
    // entry to route and by the installer to link.
    ("roles", 3),
    ("event", 3),
    // Pseudonyms and dropped fields: pure, read by config for its field
    // names and applied by the sink.
    ("privacy", 3),
    ("fsutil", 3),
    ("accounts", 3),
    ("getent", 3),
    ("state", 3),
    ("url", 3),
    ("exit", 3),
];

type Module = String;

/// `src/a/b.rs` and `src/a/b/mod.rs` → `a::b`; `src/main.rs` → `main`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and string literals' contents (so a
/// `crate::` in a doc line or a message is no edge).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if b.get(i + 1).is_some_and(|&c| c == b'"' || c == b'#')
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"…" / r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('x', '\n', '\u{..}'); a lifetime has no closing quote.
                let mut j = i + 1;
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            }
            _ => {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// Removes every item marked `#[cfg(test)]` and returns the names of the
/// `mod x;` files so marked (test-only files).
fn drop_test_items(code: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let brace = after.find('{');
        let semi = after.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => {
                let head = after[..s].trim();
                if let Some(name) = head.strip_prefix("mod ").or_else(|| head.strip_prefix("pub mod ")) {
                    test_mods.push(name.trim().to_string());
                }
                s + 1
            }
            (Some(b), _) => {
                let mut depth = 0;
                let mut e = b;
                for (k, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                e = b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                e
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

fn ident(s: &str) -> (&str, &str) {
    let n = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (&s[..n], &s[n..])
}

/// The paths named by a use-tree or path that starts at `s` (just after
/// `crate::`/`super::`): `a::b::C`, `{a, b::{c, d}}`, each as segments.
fn paths(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths(&inner[start..k], prefix, out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths(&inner[start..k], prefix, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let (name, rest) = ident(s);
    if name.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix.to_vec());
        }
        return;
    }
    let mut p = prefix.to_vec();
    p.push(name.to_string());
    match rest.trim_start().strip_prefix("::") {
        Some(more) => paths(more, &p, out),
        None => out.push(p),
    }
}

struct Graph {
    /// (from, to) → the files that make the edge.
    edges: BTreeMap<(Module, Module), BTreeSet<String>>,
    modules: BTreeSet<Module>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut code = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for f in &files {
        let m = module_of(&src, f);
        let (text, tests) = drop_test_items(&strip(&fs::read_to_string(f).unwrap()));
        let parent = if m == "main" { String::new() } else { format!("{m}::") };
        for t in tests {
            test_only.insert(format!("{parent}{t}"));
        }
        code.insert(m, (f.strip_prefix(root).unwrap().display().to_string(), text));
    }
    // A file below a test-only module is test-only too.
    let is_test = |m: &str| test_only.iter().any(|t| m == t || m.starts_with(&format!("{t}::")));
    let modules: BTreeSet<Module> = code.keys().filter(|m| !is_test(m)).cloned().collect();
    let top: BTreeSet<&str> = modules.iter().map(|m| m.split("::").next().unwrap()).collect();
    let resolve = |segs: &[String]| -> Option<Module> {
        (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<(Module, Module), BTreeSet<String>> = BTreeMap::new();
    for (m, (file, text)) in &code {
        if is_test(m) {
            continue;
        }
        let own: Vec<String> = if m == "main" { vec![] } else { m.split("::").map(String::from).collect() };
        let mut found = Vec::new();
        for (at, _) in text.match_indices("crate::") {
            if at > 0 && text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            paths(&text[at + 7..], &[], &mut found);
        }
        for (at, _) in text.match_indices("super::") {
            if at > 0 && text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base = own.clone();
            let mut rest = &text[at..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            paths(rest, &base, &mut found);
        }
        if m == "main" {
            // The crate root names its modules without `crate::`.
            for t in &top {
                for (at, _) in text.match_indices(&format!("{t}::")) {
                    if at > 0 && text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    paths(&text[at..], &[], &mut found);
                }
            }
        }
        for p in found {
            let Some(to) = resolve(&p) else { continue };
            let related = to == *m || to.starts_with(&format!("{m}::")) || m.starts_with(&format!("{to}::"));
            if related {
                continue;
            }
            edges.entry((m.clone(), to)).or_default().insert(file.clone());
        }
    }
    Graph { edges, modules }
}

fn top_of(m: &str) -> &str {
    m.split("::").next().unwrap()
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    let names: Vec<&Module> = g.modules.iter().collect();
    let index_of: BTreeMap<&Module, usize> = names.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (a, b) in g.edges.keys() {
        next[index_of[a]].push(index_of[b]);
    }
    struct T {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        n: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, next: &[Vec<usize>], t: &mut T) {
        t.index[v] = Some(t.n);
        t.low[v] = t.n;
        t.n += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &next[v] {
            match t.index[w] {
                None => {
                    visit(w, next, t);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(i) if t.on[w] => t.low[v] = t.low[v].min(i),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.out.push(scc);
            }
        }
    }
    let n = names.len();
    let mut t = T { index: vec![None; n], low: vec![0; n], on: vec![false; n], stack: vec![], n: 0, out: vec![] };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(v, &next, &mut t);
        }
    }
    t.out
        .into_iter()
        .map(|scc| {
            let mut s: Vec<Module> = scc.into_iter().map(|i| names[i].clone()).collect();
            s.sort();
            s
        })
        .collect()
}

fn layer(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == top_of(m)).map(|(_, l)| *l)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let g = graph();
    let missing: BTreeSet<&str> = g.modules.iter().map(|m| top_of(m)).filter(|m| layer(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer: {missing:?}; place each in LAYERS in tests/layers.rs \
         (0 entry, 1 commands, 2 domain, 3 foundations)"
    );
}

#[test]
fn nothing_reaches_up() {
    let g = graph();
    let mut bad = Vec::new();
    for ((a, b), files) in &g.edges {
        if let (Some(la), Some(lb)) = (layer(a), layer(b))
            && lb < la
        {
            for f in files {
                bad.push(format!("{f}: {a} → {b} (layer {la} reaches up to layer {lb})"));
            }
        }
    }
    assert!(bad.is_empty(), "imports that reach up a layer:\n{}", bad.join("\n"));
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let g = graph();
    let mut bad = Vec::new();
    for scc in cycles(&g) {
        let inside: BTreeSet<&Module> = scc.iter().collect();
        let mut lines = Vec::new();
        for ((a, b), files) in &g.edges {
            if inside.contains(a) && inside.contains(b) {
                for f in files {
                    lines.push(format!("  {f}: {a} → {b}"));
                }
            }
        }
        bad.push(format!("cycle {{{}}}:\n{}", scc.join(", "), lines.join("\n")));
    }
    assert!(bad.is_empty(), "import cycles:\n{}", bad.join("\n"));
}

/// The checker itself: it sees grouped imports, `super::` and ignores
/// comments, strings and test code.
#[test]
fn the_checker_reads_paths_the_way_rust_does() {
    let mut found = Vec::new();
    paths("{a::{b, c::D}, e}; x", &[], &mut found);
    assert_eq!(found, vec![vec!["a", "b"], vec!["a", "c", "D"], vec!["e"]]);
    let code = strip("// crate::x\nlet s = \"crate::y\"; crate::z::W; r#\"crate::q\"#;");
    assert!(code.contains("crate::z") && !code.contains("crate::x") && !code.contains("crate::y"));
    assert!(!code.contains("crate::q"));
    let (code, tests) =
        drop_test_items("use crate::a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod t { use crate::b; }\n");
    assert!(code.contains("crate::a") && !code.contains("crate::b"));
    assert_eq!(tests, vec!["tests"]);
}
