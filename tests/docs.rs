//! The documentation stands on its own: every markdown link and every
//! backticked repository path in README.md, docs/*.md and
//! benches/baseline/README.md names a file or directory inside this
//! repository, and no user-facing text sends the reader outside it.
//!
//! What is checked, per file (fenced code blocks are left out, since they
//! show commands and output, not references):
//! - links `[text](target)`: a relative target (its `#anchor` dropped) must
//!   exist, resolved from the file's directory, and stay inside the
//!   repository; `http(s)://` and `mailto:` targets are not files;
//! - inline code that is a repository path (starting `src/`, `tests/`,
//!   `benches/`, `assets/`, `docs/`, `.ci/`, or a top-level file such as
//!   `Cargo.toml`): it must exist, from the repository's root. Installed
//!   paths (`/etc/…`), build outputs (`target/…`) and patterns (`*`, `<…>`,
//!   `…`) are not repository paths;
//! - no text names a directory outside the repository, and the old name of
//!   the default format appears only where the aliases are documented;
//! - the README's map links every file in docs/.
//!
//! Plain `cargo test`; needs no root and nothing installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Top-level directories whose paths in inline code are checked.
const REPO_DIRS: &[&str] = &["src/", "tests/", "benches/", "assets/", "docs/", ".ci/"];
/// Top-level files whose names in inline code are checked.
const REPO_FILES: &[&str] = &["Cargo.toml", "Cargo.lock", "Makefile", "README.md", "clippy.toml", "rustfmt.toml"];

/// Text that would send a reader outside the repository.
const OUTSIDE: &[&str] = &["shared/", "/work/", "peer-seed", "installer-README"];

/// The files where the earlier name of `TELEMETRY_FORMAT=json` may be named
/// (as an accepted alias): the upgrade notes, and the settings reference
/// generated from the table that accepts it.
const ALIASES_DOCS: &[&str] = &["docs/compatibility.md", "docs/configuration.md"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documentation files, relative to the root.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("benches/baseline/README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(root()).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// One reference found in a file: the 1-based line and the text.
#[derive(Debug, PartialEq)]
struct Ref {
    line: usize,
    target: String,
}

/// Markdown link targets and inline-code spans outside fenced blocks.
fn scan(text: &str) -> (Vec<Ref>, Vec<Ref>) {
    let (mut links, mut code) = (Vec::new(), Vec::new());
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (n, part) in line.split('`').enumerate() {
            if n % 2 == 1 {
                code.push(Ref { line: i + 1, target: part.to_string() });
                continue;
            }
            let mut rest = part;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let end = after.find(')').unwrap_or(after.len());
                links.push(Ref { line: i + 1, target: after[..end].trim().to_string() });
                rest = &after[end..];
            }
        }
    }
    (links, code)
}

/// Whether inline code is meant as a path in this repository.
fn repo_path(code: &str) -> bool {
    let plain = code.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
    plain && (REPO_DIRS.iter().any(|d| code.starts_with(d)) || REPO_FILES.contains(&code))
}

/// `base/target` with `.` and `..` resolved lexically; `None` when it
/// climbs above the repository's root.
fn inside(base: &Path, target: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in base.join(target).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Everything wrong with one file, as `file:line: what` lines.
fn problems(file: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let dir = file.parent().unwrap_or(Path::new(""));
    let (links, code) = scan(text);
    for Ref { line, target } in links {
        if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
            continue;
        }
        let path = target.split('#').next().unwrap_or("");
        if path.is_empty() {
            continue; // an anchor in the same file
        }
        match inside(dir, path) {
            None => bad.push(format!("{}:{line}: link {target:?} leaves the repository", file.display())),
            Some(rel) if !root().join(&rel).exists() => {
                bad.push(format!("{}:{line}: link {target:?}: {} does not exist", file.display(), rel.display()))
            }
            Some(_) => {}
        }
    }
    for Ref { line, target } in code {
        if repo_path(&target) && !root().join(&target).exists() {
            bad.push(format!("{}:{line}: `{target}` does not exist in the repository", file.display()));
        }
    }
    for (i, line) in text.lines().enumerate() {
        for word in OUTSIDE {
            if line.contains(word) {
                bad.push(format!("{}:{}: names {word:?}, outside the repository", file.display(), i + 1));
            }
        }
        let lower = line.to_ascii_lowercase();
        let seed = lower.match_indices("seed").any(|(at, _)| {
            let before = lower[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
            let after = lower[at + 4..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            !before && !after
        });
        if seed && !ALIASES_DOCS.iter().any(|d| file == Path::new(d)) {
            bad.push(format!(
                "{}:{}: says \"seed\": the default format is `json`, the original is \"the original bash installer\" \
                 (the alias is documented only in {ALIASES_DOCS:?})",
                file.display(),
                i + 1
            ));
        }
    }
    bad
}

#[test]
fn every_link_and_path_in_the_docs_resolves_inside_the_repository() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = fs::read_to_string(root().join(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (links, code) = scan(&text);
        checked += links.len() + code.iter().filter(|c| repo_path(&c.target)).count();
        bad.extend(problems(&file, &text));
    }
    assert!(bad.is_empty(), "documentation references that do not resolve:\n{}", bad.join("\n"));
    // Guards the scanner: the docs hold far more references than this.
    assert!(checked > 100, "only {checked} references found: is the scanner still reading the files?");
}

#[test]
fn the_readme_maps_every_file_in_docs() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let (links, _) = scan(&readme);
    let linked: Vec<PathBuf> = links.iter().filter_map(|l| inside(Path::new(""), &l.target)).collect();
    let missing: Vec<String> = doc_files()
        .into_iter()
        .filter(|f| f.starts_with("docs"))
        .filter(|f| !linked.contains(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "README.md's map does not link: {}", missing.join(", "));
    assert!(readme.len() <= 12 * 1024, "README.md is {} bytes: keep it a landing page (≤ 12 KiB)", readme.len());
}

#[test]
fn the_checker_catches_what_it_is_for() {
    let page = "See [ops](operations.md) and [gone](nowhere.md#x), [web](https://example.org/a).\n\
                Code `src/main.rs`, `src/nothing.rs`, `/etc/openvpn/x`, `target/debian/`, `tests/*.rs`.\n\
                ```\n[in a block](missing-but-fenced.md) `src/fenced.rs`\n```\n\
                Up [out](../../elsewhere.md), from shared/bench, TELEMETRY_FORMAT=seed; fixed-seeds are fine.\n";
    let found = problems(Path::new("docs/page.md"), page);
    let has = |s: &str| found.iter().any(|p| p.contains(s));
    assert!(has("nowhere.md"), "{found:#?}");
    assert!(has("`src/nothing.rs`"), "{found:#?}");
    assert!(has("leaves the repository"), "{found:#?}");
    assert!(has("\"shared/\""), "{found:#?}");
    assert!(has("says \"seed\""), "{found:#?}");
    assert_eq!(found.len(), 5, "nothing else is a problem: {found:#?}");
    // The same "seed" is allowed where the aliases are documented.
    assert!(
        !problems(Path::new(ALIASES_DOCS[0]), "`seed` is an alias of `json`.\n").iter().any(|p| p.contains("seed"))
    );
    // Targets that exist, files and directories, resolve.
    assert!(problems(Path::new("README.md"), "[s](docs/schema/) [c](docs/configuration.md)\n").is_empty());
}
