//! The names the binary answers to, taken from its role table
//! (`src/roles.rs`, `ROLES`) rather than written again here: an
//! integration test cannot import the binary's modules, so it reads the
//! table's rows from the source (`program: "…"`, `link: "…"` per row), and
//! a renamed or added role reaches every test that links or calls the hooks.
#![allow(dead_code)]

const TABLE: &str = include_str!("../../src/roles.rs");

/// One row: the subcommand, the program name, the installed link.
pub struct Role {
    pub subcommand: &'static str,
    pub program: &'static str,
    pub link: &'static str,
}

fn field(row: &'static str, key: &str) -> &'static str {
    let start =
        row.find(&format!("{key}: \"")).unwrap_or_else(|| panic!("src/roles.rs: a row without {key}")) + key.len() + 3;
    let len = row[start..].find('"').unwrap();
    &row[start..start + len]
}

/// Every row of `ROLES`, in table order.
pub fn all() -> Vec<Role> {
    let table = TABLE.split("pub const ROLES").nth(1).expect("src/roles.rs has ROLES");
    let table = &table[..table.find("];").expect("ROLES ends")];
    let rows: Vec<Role> = table
        .split("Name {")
        .skip(1)
        .map(|row| Role {
            subcommand: field(row, "subcommand"),
            program: field(row, "program"),
            link: field(row, "link"),
        })
        .collect();
    assert!(rows.len() >= 4, "src/roles.rs: ROLES read as {} rows", rows.len());
    rows
}

fn row(subcommand: &str) -> Role {
    all().into_iter().find(|r| r.subcommand == subcommand).unwrap_or_else(|| panic!("no role {subcommand}"))
}

/// The program name OpenVPN (or systemd) runs `subcommand` by.
pub fn program(subcommand: &str) -> &'static str {
    row(subcommand).program
}

/// Where `install` puts that link, as an absolute path.
pub fn installed(subcommand: &str) -> &'static str {
    row(subcommand).link
}

/// Where `install` puts that link, without the leading `/` (below a root).
pub fn link(subcommand: &str) -> &'static str {
    row(subcommand).link.trim_start_matches('/')
}

/// The client-connect and client-disconnect hooks' names.
pub fn connect() -> &'static str {
    program("connect")
}
pub fn disconnect() -> &'static str {
    program("disconnect")
}
pub fn write_event() -> &'static str {
    program("write-event")
}
