//! The separator resolver: splits a row into its columns when a free
//! column (common name, username) may hold the separator itself.
//!
//! Rows are read by the fixed shapes of their columns, not by counting
//! separators: OpenVPN keeps every printable character of a name, so a row
//! with more fields than its header is split every way the free columns
//! allow, and the one reading whose other columns all have their shapes
//! (address:port, numbers, dates) is taken. A row with no such reading, or
//! with several that the routing table cannot tell apart (a crafted name
//! imitating the columns after it), is left out as a [`RowError`]: it
//! costs that row, never the file, and is never attributed to another
//! session.
//!
//! Guarantees: the search is bounded (it stops at the third reading that
//! fits), a row shorter than its header is [`Split::Short`] (the tail of an
//! old line, which the readers turn into a refused file), and a route
//! naming a client that is neither listed nor left out is an old tail.

use std::borrow::Cow;
use std::collections::HashSet;

use super::columns::{Shape, fits, text, text_ref};
use super::{Client, RowError, StatusError, bad};

/// A row split into its columns, one value each: the field itself, or
/// the fields a free column took joined back with the separator.
pub(super) type Reading<'a> = Vec<Cow<'a, [u8]>>;

/// Why a row was not split into its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Split<'a> {
    /// Fewer fields than the header: the tail of an old line.
    Short,
    /// No reading gives every column its shape.
    NoFit,
    /// These readings all fit.
    Ambiguous(Vec<Reading<'a>>),
}

/// Every reading of `fields` as the columns `shapes` (free columns take
/// one or more fields, joined back with `sep`) whose columns all fit.
pub(super) fn readings<'a>(fields: &[&'a [u8]], shapes: &[Shape], sep: u8) -> Result<Reading<'a>, Split<'a>> {
    if fields.len() < shapes.len() {
        return Err(Split::Short);
    }
    let extra = fields.len() - shapes.len();
    if extra == 0 {
        // As many fields as columns (no separator in a name, the common
        // case): one field a column is the only reading there is.
        return match fields.iter().zip(shapes).all(|(f, &shape)| fits(shape, f)) {
            true => Ok(fields.iter().map(|&f| Cow::Borrowed(f)).collect()),
            false => Err(Split::NoFit),
        };
    }
    let free = shapes.iter().filter(|s| **s == Shape::Free).count();
    if free == 0 {
        return Err(Split::NoFit);
    }
    let mut found = Vec::new();
    let mut cols = Vec::with_capacity(shapes.len());
    walk(fields, shapes, sep, extra, free, &mut cols, &mut found);
    match found.len() {
        0 => Err(Split::NoFit),
        1 => Ok(found.pop().unwrap_or_default()),
        _ => Err(Split::Ambiguous(found)),
    }
}

fn walk<'a>(
    fields: &[&'a [u8]],
    shapes: &[Shape],
    sep: u8,
    extra: usize,
    free_left: usize,
    cols: &mut Reading<'a>,
    found: &mut Vec<Reading<'a>>,
) {
    // Three readings are as good as a thousand: ambiguous.
    if found.len() > 2 {
        return;
    }
    let Some((&shape, rest)) = shapes.split_first() else {
        if fields.is_empty() {
            found.push(cols.clone());
        }
        return;
    };
    // How many fields this column may take: one, or for a free column all
    // that are left over (the last free column) or any number up to that.
    let takes = if shape != Shape::Free {
        1..=1
    } else if free_left == 1 {
        1 + extra..=1 + extra
    } else {
        1..=1 + extra
    };
    for take in takes {
        if take > fields.len() {
            break;
        }
        let value: Cow<'a, [u8]> = if take == 1 { fields[0].into() } else { fields[..take].join(&sep).into() };
        if !fits(shape, &value) {
            continue;
        }
        cols.push(value);
        let free = free_left - usize::from(shape == Shape::Free);
        walk(&fields[take..], rest, sep, extra + 1 - take, free, cols, found);
        cols.pop();
    }
}

/// A client row being read: its line, its raw text after the row tag (for
/// [`check_routes`] when it is left out), and its reading(s).
pub(super) struct Row<'a> {
    pub line: usize,
    pub raw: &'a [u8],
    pub result: Result<Reading<'a>, Split<'a>>,
}

/// A routing row: its line and the (common name, real address) it names.
pub(super) struct Route<'a> {
    pub line: usize,
    pub cn: Cow<'a, str>,
    pub real: Cow<'a, str>,
}

/// The (common name, real address) a reading gives, by header position,
/// as the clean text a [`Client`] gets.
pub(super) fn identity<'a>(reading: &[Cow<'a, [u8]>], cn: usize, real: usize) -> (Cow<'a, str>, Cow<'a, str>) {
    (value_text(&reading[cn]), value_text(&reading[real]))
}

/// A column's clean text, borrowed from the file when it can be.
fn value_text<'a>(value: &Cow<'a, [u8]>) -> Cow<'a, str> {
    match value {
        Cow::Borrowed(raw) => text_ref(raw),
        Cow::Owned(joined) => Cow::Owned(text(joined)),
    }
}

/// Chooses each client row's reading: the only one, or among several the
/// only one the routing table confirms (routing rows have one free column,
/// so they read one way only) and that no row read one way already is (an
/// address belongs to one instance: a reading naming another row's client
/// and address is a name imitating it). Other rows go to `unreadable`,
/// with the raw text kept so their routes are not taken for a stale tail.
pub(super) fn settle<'a>(
    rows: Vec<Row<'a>>,
    cn: usize,
    real: usize,
    routes: &[Route<'_>],
    unreadable: &mut Vec<RowError>,
    skipped: &mut Vec<String>,
) -> Result<Vec<(usize, Reading<'a>)>, StatusError> {
    // Only a row that reads several ways needs the routes and the rows
    // read one way; most files have none.
    let (mut routed, mut sure) = (HashSet::new(), HashSet::new());
    if rows.iter().any(|r| matches!(r.result, Err(Split::Ambiguous(_)))) {
        routed = routes.iter().map(|r| (r.cn.clone(), r.real.clone())).collect();
        sure = rows.iter().filter_map(|r| r.result.as_ref().ok()).map(|r| identity(r, cn, real)).collect();
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match row.result {
            Ok(r) => out.push((row.line, r)),
            Err(Split::Short) => {
                return Err(bad(row.line, "client row shorter than its header (file caught mid-rewrite?)"));
            }
            Err(Split::NoFit) => {
                unreadable.push(RowError { line: row.line, what: "client row whose columns do not fit".into() });
                skipped.push(text(row.raw));
            }
            Err(Split::Ambiguous(all)) => {
                let confirmed: Vec<_> = all
                    .into_iter()
                    .filter(|r| {
                        let id = identity(r, cn, real);
                        routed.contains(&id) && !sure.contains(&id)
                    })
                    .collect();
                if let [only] = &confirmed[..] {
                    out.push((row.line, only.clone()));
                } else {
                    unreadable.push(RowError {
                        line: row.line,
                        what: "client row that reads more than one way (separator in a name)".into(),
                    });
                    skipped.push(text(row.raw));
                }
            }
        }
    }
    Ok(out)
}

/// Every route belongs to a listed client (OpenVPN prints routes of live
/// instances only); a route naming an unknown client is an old tail,
/// unless the client's own row was left out as unreadable.
pub(super) fn check_routes(
    clients: &[Client],
    routes: &[Route<'_>],
    skipped: &[String],
    sep: char,
) -> Result<(), StatusError> {
    let known: HashSet<(&str, &str)> =
        clients.iter().map(|c| (c.common_name.as_str(), c.real_address.as_str())).collect();
    for Route { line, cn, real } in routes {
        if known.contains(&(&**cn, &**real)) {
            continue;
        }
        let head = format!("{cn}{sep}{real}{sep}");
        if !skipped.iter().any(|row| row.starts_with(&head)) {
            return Err(bad(*line, format!("route for {cn} {real} who is not in the client list (mid-rewrite?)")));
        }
    }
    Ok(())
}
