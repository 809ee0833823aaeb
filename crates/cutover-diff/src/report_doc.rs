//! The diff report as something a DBA shares: a [`cutover_report::Document`] rendered as
//! Markdown and HTML, the files of `--out DIR`, and `--redact-values`.
//!
//! Values are shown the way a DBA reads them: strings quoted with escapes (so trailing
//! spaces, line breaks and invisible characters show), numbers bare, `NULL`, bytes that are
//! not UTF-8 as `0x…`, JSON documents as compact JSON. A long value is cut around its first
//! difference from the other side; `report.json` always holds the whole value.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use cutover_core::file::{self, Readers};
use cutover_core::json::{canonical_json, Numbers};
use cutover_report::{Badge, Block, Cell, Compare, CompareRow, Document, Section, Table, Tone};
use serde_json::Value as J;
use sha2::{Digest, Sha256};

use crate::report::{DiffKind, Report, RowDiff, SchemaDiff, Status, TableReport};

/// Differences shown per table (the JSON lists up to `--max-diffs`).
const SHOWN: usize = 50;
/// Characters of a value shown.
const LIMIT: usize = 120;
/// Characters kept before the first difference when a long value is cut.
const BEFORE: usize = 30;

/// The whole report as a document: verdict, endpoints and totals, every table, then a
/// section per table with differences, schema differences or an error.
pub fn document(report: &Report) -> Document {
    let redacted = is_redacted(report);
    let mut d = Document::new("cutover diff report");
    let verdict = verdict(report);
    let s = &report.summary;
    d.badge = Some(verdict);
    if report.interrupted {
        d.summary.push((
            "Interrupted".into(),
            Cell::text(
                "the run stopped before every table was compared; the tables below are those compared so far",
            )
            .with_tone(Tone::Warn),
        ));
    }
    for (name, dsn, c) in [
        ("Source", &report.source, &report.connections.source),
        ("Target", &report.target, &report.connections.target),
    ] {
        d.summary.push((name.into(), Cell::code(dsn.clone())));
        let tls = c
            .tls
            .as_deref()
            .map(|t| format!("TLS {t}"))
            .unwrap_or_else(|| "no TLS".into());
        d.summary.push((
            format!("{name} server"),
            Cell::text(format!("{}, {tls}", c.server)),
        ));
    }
    if let Some(snap) = &report.snapshots {
        for (name, info) in [("Source", &snap.source), ("Target", &snap.target)] {
            d.summary
                .push((format!("{name} snapshot"), Cell::text(facts(info))));
        }
    }
    if let Some(t) = &report.throttle {
        d.summary.push(("Throttle".into(), Cell::text(facts(t))));
    }
    d.summary.push((
        "Tables".into(),
        Cell::text(format!(
            "{}: {} equal, {} different, {} {}, {} skipped",
            s.tables,
            s.equal,
            s.different,
            s.errors,
            if s.errors == 1 { "error" } else { "errors" },
            s.skipped
        )),
    ));
    d.summary.push((
        "Rows compared".into(),
        Cell::text(s.rows_compared.to_string()),
    ));
    let found = s.missing_in_target + s.extra_in_target + s.mismatched;
    d.summary.push((
        "Differences".into(),
        Cell::text(format!(
            "{} missing in target, {} extra in target, {} changed",
            s.missing_in_target, s.extra_in_target, s.mismatched
        ))
        .with_tone(if found > 0 { Tone::Bad } else { Tone::Neutral }),
    ));
    d.summary
        .push(("Elapsed".into(), Cell::text(seconds(s.elapsed_ms))));
    if redacted {
        d.summary.push((
            "Values".into(),
            Cell::text("redacted: each value is shown as a stable hash (h:…); equal values have equal hashes"),
        ));
    }
    d.summary
        .push(("cutover".into(), Cell::text(report.version.clone())));

    if s.accepted > 0 {
        d.summary.push((
            "Accepted".into(),
            Cell::text(format!(
                "{} schema differences expected by [accept] or --accept (listed, not counted)",
                s.accepted
            )),
        ));
    }
    if !report.groups.is_empty() {
        d.sections.push(groups_section(report));
    }

    let mut all = Section::new("Tables");
    if report.tables.is_empty() {
        all.push(Block::Paragraph("No table was compared.".into()));
    } else {
        let mut t = Table::new([
            "table",
            "verdict",
            "rows compared",
            "missing",
            "extra",
            "changed",
            "time",
        ])
        .align_right(2..=6);
        for tr in &report.tables {
            let b = table_verdict(tr.status);
            t.push(vec![
                Cell::code(table_name(tr)),
                Cell::text(b.label).with_tone(b.tone),
                Cell::text(tr.rows_compared.to_string()),
                count(tr.missing_in_target),
                count(tr.extra_in_target),
                count(tr.mismatched),
                Cell::text(seconds(tr.elapsed_ms)),
            ]);
        }
        all.push(Block::Table(t));
    }
    d.sections.push(all);

    for tr in &report.tables {
        // Accepted differences alone make no section: the causes above list them.
        if tr.differences() > 0 || tr.error.is_some() || !tr.schema.is_empty() {
            d.sections.push(table_section(tr, redacted));
        }
    }
    d
}

/// The differences of all tables by cause, before the tables one by one.
fn groups_section(report: &Report) -> Section {
    let mut sec = Section::new("Differences by cause");
    let mut t = Table::new(["kind", "cause", "tables", "count", "e.g."]).align_right([2, 3]);
    for g in &report.groups {
        let tone = match g.kind.as_str() {
            _ if g.accepted_by.is_some() => Tone::Neutral,
            "error" => Tone::Warn,
            k if k.starts_with("rows.") => Tone::Bad,
            _ => Tone::Neutral,
        };
        let mut cause = g.cause.clone();
        if let Some(a) = &g.accepted_by {
            let _ = write!(cause, " (accepted: {a})");
        }
        t.push(vec![
            Cell::code(g.kind.clone()).with_tone(tone),
            Cell::text(cause),
            Cell::text(g.tables.to_string()),
            Cell::text(format!(
                "{}{}",
                if g.count_at_least { "≥ " } else { "" },
                g.count
            )),
            Cell::code(g.examples.join(", ")),
        ]);
    }
    sec.push(Block::Table(t));
    sec
}

/// The report as GitHub-flavoured Markdown.
pub fn markdown(report: &Report) -> String {
    document(report).markdown()
}

/// The report as a self-contained HTML page.
pub fn html(report: &Report) -> String {
    document(report).html()
}

/// The verdict of the run, in the order of the exit code: INTERRUPTED, ERROR, DIFFERENT,
/// EQUAL.
pub fn verdict(report: &Report) -> Badge {
    let s = &report.summary;
    if report.interrupted {
        Badge::new("INTERRUPTED", Tone::Neutral)
    } else if s.errors > 0 {
        Badge::new("ERROR", Tone::Warn)
    } else if s.different > 0 {
        Badge::new("DIFFERENT", Tone::Bad)
    } else {
        Badge::new("EQUAL", Tone::Ok)
    }
}

/// `name value, …` of the fields of a serializable record that are set.
fn facts<T: serde::Serialize>(record: &T) -> String {
    match serde_json::to_value(record) {
        Ok(J::Object(m)) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                J::String(s) => format!("{} {s}", k.replace('_', " ")),
                v => format!("{} {v}", k.replace('_', " ")),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn table_verdict(s: Status) -> Badge {
    match s {
        Status::Equal => Badge::new("equal", Tone::Ok),
        Status::Different => Badge::new("DIFFERENT", Tone::Bad),
        Status::Error => Badge::new("ERROR", Tone::Warn),
        Status::Skipped => Badge::new("skipped", Tone::Neutral),
    }
}

fn table_name(t: &TableReport) -> String {
    if t.source == t.target {
        t.source.clone()
    } else {
        format!("{} → {}", t.source, t.target)
    }
}

fn count(n: u64) -> Cell {
    let c = Cell::text(n.to_string());
    if n > 0 {
        c.with_tone(Tone::Bad)
    } else {
        c
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

fn schema_object(sd: &SchemaDiff) -> String {
    if sd.object.starts_with("index ") || sd.object == "table" {
        sd.object.clone()
    } else {
        format!("column {}", sd.object)
    }
}

fn table_section(t: &TableReport, redacted: bool) -> Section {
    let mut s = Section::new(table_name(t)).with_badge(table_verdict(t.status));
    let mut how = String::new();
    if t.rows_compared > 0 || t.chunks > 0 {
        let _ = write!(how, "{} rows compared by {}", t.rows_compared, t.method);
        if let Some(h) = t.row_hash {
            let h = serde_json::to_value(h)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = write!(how, " ({h})");
        }
        let _ = write!(
            how,
            " in {} chunks, {} rows fetched, {}.",
            t.chunks,
            t.rows_fetched,
            seconds(t.elapsed_ms)
        );
    }
    if let Some(f) = &t.filter {
        let _ = write!(how, "\nOnly rows where {f}.");
    }
    if let Some(r) = &t.recheck {
        let _ = write!(
            how,
            "\nRecheck: {} differences compared again ({} rounds, {} apart): {} converged, {} persisting{}.",
            r.rechecked,
            r.rounds,
            seconds(r.delay_ms),
            r.converged,
            r.persisting,
            if r.partial {
                "; more differences than could be kept, the rest were not compared again"
            } else {
                ""
            }
        );
    }
    let how = how.trim_start_matches('\n');
    if !how.is_empty() {
        s.push(Block::Paragraph(how.to_string()));
    }

    if let Some(e) = &t.error {
        s.push(Block::Heading("Error".into()));
        s.push(Block::Code(e.clone()));
    }

    if t.differences() > 0 {
        s.push(Block::Heading("Differences".into()));
        let shown: Vec<&RowDiff> = t.diffs.iter().take(SHOWN).collect();
        let shown_rows: u64 = shown.iter().map(|d| d.count.unwrap_or(1)).sum();
        let mut p = format!(
            "{} missing in target, {} extra in target, {} changed.",
            t.missing_in_target, t.extra_in_target, t.mismatched
        );
        if shown_rows < t.differences() {
            let _ = write!(
                p,
                " Showing {shown_rows} of {} differences",
                t.differences()
            );
            if t.diffs.len() > shown.len() {
                let _ = write!(p, "; report.json lists {}", t.diffs.len());
            }
            if t.diffs_truncated {
                p.push_str(" (at most --max-diffs are kept)");
            }
            p.push('.');
        }
        s.push(Block::Paragraph(p));
        let mut clipped = false;
        let mut c = Compare {
            labels: vec!["difference".into(), "key".into(), "column".into()],
            left: "source".into(),
            right: "target".into(),
            rows: Vec::new(),
        };
        for d in shown {
            let (key, cut) = key_text(d, redacted);
            clipped |= cut;
            let present = || Cell::text("row present");
            let absent = || Cell::text("no row").with_tone(Tone::Bad);
            match d.kind {
                DiffKind::MissingInTarget => c.rows.push(CompareRow {
                    labels: vec![
                        Cell::text("missing in target"),
                        Cell::code(key),
                        Cell::default(),
                    ],
                    left: present(),
                    right: absent(),
                }),
                DiffKind::ExtraInTarget => c.rows.push(CompareRow {
                    labels: vec![
                        Cell::text("extra in target"),
                        Cell::code(key),
                        Cell::default(),
                    ],
                    left: absent(),
                    right: present(),
                }),
                DiffKind::Mismatched if d.columns.is_empty() => c.rows.push(CompareRow {
                    labels: vec![Cell::text("changed"), Cell::code(key), Cell::default()],
                    left: Cell::default(),
                    right: Cell::default(),
                }),
                DiffKind::Mismatched => {
                    for col in &d.columns {
                        let (l, r, cut) =
                            clip_pair(show(&col.source, redacted), show(&col.target, redacted));
                        clipped |= cut;
                        c.rows.push(CompareRow {
                            labels: vec![
                                Cell::text("changed"),
                                Cell::code(key.clone()),
                                Cell::code(col.column.clone()),
                            ],
                            left: Cell::code(l),
                            right: Cell::code(r),
                        });
                    }
                }
            }
        }
        s.push(Block::Compare(c));
        if clipped {
            s.push(Block::Paragraph(
                "Long values are cut (…) around their first difference; report.json holds them whole."
                    .into(),
            ));
        }
    }

    if !t.schema.is_empty() {
        s.push(Block::Heading("Schema".into()));
        if t.schema.iter().any(SchemaDiff::loses_data) {
            s.push(Block::Paragraph(
                "A column on one side only holds data the other side does not have: the table is different. Other definition differences are reported; the rows decide the verdict."
                    .into(),
            ));
        }
        let mut tbl = Table::new(["object", "difference", "source", "target"]);
        for sd in &t.schema {
            let object = if sd.object.starts_with("index ") || sd.object == "table" {
                sd.object.clone()
            } else {
                format!("column {}", sd.object)
            };
            let side = |v: &Option<String>| match v {
                Some(v) => Cell::code(v.clone()),
                None => Cell::text("—"),
            };
            tbl.push(vec![
                Cell::text(object),
                Cell::text(sd.what.replace('_', " ")).with_tone(if sd.loses_data() {
                    Tone::Bad
                } else {
                    Tone::Neutral
                }),
                side(&sd.source),
                side(&sd.target),
            ]);
        }
        s.push(Block::Table(tbl));
    }

    if !t.accepted.is_empty() {
        s.push(Block::Heading("Accepted schema differences".into()));
        let mut tbl = Table::new(["object", "difference", "source", "target", "accepted by"]);
        for a in &t.accepted {
            let sd = &a.diff;
            tbl.push(vec![
                Cell::text(schema_object(sd)),
                Cell::text(sd.what.replace('_', " ")),
                Cell::code(sd.source.clone().unwrap_or_else(|| "—".into())),
                Cell::code(sd.target.clone().unwrap_or_else(|| "—".into())),
                Cell::code(a.accepted_by.clone()),
            ]);
        }
        s.push(Block::Table(tbl));
    }

    if !t.renderings.is_empty() {
        s.push(Block::Heading("Checksum renderings".into()));
        s.push(Block::Paragraph(
            "These columns have types that engines may write differently as text (FLOAT, DOUBLE, JSON). The checksum hashes the expression shown; when settled by rows, a chunk that differs only by how the engines write equal values is settled by comparing its rows by value."
                .into(),
        ));
        let mut tbl = Table::new(["column", "checksum expression", "settled by"]);
        for r in &t.renderings {
            tbl.push(vec![
                Cell::code(r.column.clone()),
                Cell::code(r.checksum.clone()),
                Cell::text(r.settled_by.clone()),
            ]);
        }
        s.push(Block::Table(tbl));
    }
    s
}

/// `id=1` or `a=1, b="x"`, `×n` for copies of a keyless row; whether a value was cut.
fn key_text(d: &RowDiff, redacted: bool) -> (String, bool) {
    let mut clipped = false;
    let mut parts = Vec::with_capacity(d.key.len());
    for (k, v) in &d.key {
        let shown = show(v, redacted);
        let chars: Vec<char> = shown.chars().collect();
        clipped |= chars.len() > LIMIT;
        parts.push(format!("{k}={}", clip(&chars, 0)));
    }
    let mut s = if parts.is_empty() {
        "(no key)".to_string()
    } else {
        parts.join(", ")
    };
    if let Some(n) = d.count.filter(|&n| n > 1) {
        let _ = write!(s, " ×{n}");
    }
    (s, clipped)
}

/// A value as a DBA reads it.
fn show(v: &J, redacted: bool) -> String {
    match v {
        J::Null => "NULL".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) if redacted && is_hash(s) => s.clone(),
        J::String(s) => quote(s),
        J::Object(m) => match (m.len(), m.get("hex")) {
            (1, Some(J::String(h))) if h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("0x{h}")
            }
            _ => v.to_string(),
        },
        J::Array(_) => v.to_string(),
    }
}

/// A string in double quotes, with `\\`, `\"`, `\n`, `\r`, `\t`, and every control, format or
/// unusual space character as `\u{…}`: what looks alike in a report is alike in the data.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invisible(c: char) -> bool {
    matches!(c,
        '\u{a0}' | '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{180e}' | '\u{2000}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}' | '\u{205f}'..='\u{206f}' | '\u{3000}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

/// Both values cut to a window that shows where they start to differ, when either is long.
fn clip_pair(a: String, b: String) -> (String, String, bool) {
    let ac: Vec<char> = a.chars().collect();
    let bc: Vec<char> = b.chars().collect();
    if ac.len() <= LIMIT && bc.len() <= LIMIT {
        return (a, b, false);
    }
    let common = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let start = if common + 1 > LIMIT - BEFORE {
        common - BEFORE
    } else {
        0
    };
    (clip(&ac, start), clip(&bc, start), true)
}

fn clip(chars: &[char], start: usize) -> String {
    let start = start.min(chars.len());
    let end = (start + LIMIT).min(chars.len());
    let mut s = String::new();
    if start > 0 {
        s.push('…');
    }
    s.extend(&chars[start..end]);
    if end < chars.len() {
        s.push('…');
    }
    s
}

// ---------------------------------------------------------------------------------------
// --redact-values

const HASH_PREFIX: &str = "h:";
const REDACTED: &str = "(redacted)";

/// Replaces every row value in the report by [`hash_value`] of it: the values of diff keys
/// and both sides of changed columns. NULL stays NULL (it is no data, and telling NULL from
/// a value is often the whole finding). Column names, counts, schema differences (types,
/// defaults: definitions, not rows) and table names stay. Error messages can quote a value
/// (a value the server returned that could not be read, or a server error quoting one): such
/// quotes become `(redacted)`, keeping the names of tables and columns the report knows; so
/// do the quoted literals of a `--where` filter.
///
/// Apply it once: the hashes are values too.
///
/// The hashes are unkeyed, so the same value has the same hash in every report (rows can be
/// matched across runs and tables), and so a value from a small set (a flag, a small number,
/// a date) can be found by hashing candidates: use [`redact_with_key`] with a secret to stop
/// that.
pub fn redact(report: &mut Report) {
    redact_inner(report, None);
}

/// [`redact`] with hashes keyed by a secret: stable for everyone who uses the same key,
/// impossible to reverse by guessing values without it.
pub fn redact_with_key(report: &mut Report, key: &[u8]) {
    redact_inner(report, Some(key));
}

fn redact_inner(report: &mut Report, key: Option<&[u8]>) {
    let names = known_names(report);
    for t in &mut report.tables {
        for d in t.diffs.iter_mut().chain(t.converged.iter_mut()) {
            for v in d.key.values_mut() {
                redact_one(v, key);
            }
            for c in &mut d.columns {
                redact_one(&mut c.source, key);
                redact_one(&mut c.target, key);
            }
        }
        if let Some(e) = &mut t.error {
            *e = redact_error(e, &names);
        }
        // `--where` is the user's, but the literals it compares with can be row values.
        if let Some(f) = &mut t.filter {
            *f = redact_quoted(f, &names);
        }
    }
    // The groups quote error messages: made again from the redacted tables.
    report.groups = crate::report::group(&report.tables);
}

fn redact_one(v: &mut J, key: Option<&[u8]>) {
    if !v.is_null() {
        *v = J::String(hash_with(v, key));
    }
}

/// The stable hash that stands for a value in a redacted report: `h:` and 16 hex digits, the
/// first 64 bits of SHA-256 over `cutover-redact-v1\n` and the value's canonical JSON
/// (compact, object keys sorted). Equal values, including JSON documents whose keys come in
/// another order, hash alike; `"1"` and `1` do not.
pub fn hash_value(v: &J) -> String {
    hash_with(v, None)
}

fn hash_with(v: &J, key: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    match key {
        None => h.update(b"cutover-redact-v1\n"),
        Some(k) => {
            h.update(b"cutover-redact-keyed-v1\n");
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
        }
    }
    // Numbers as written: the hashes are pinned across versions.
    h.update(canonical_json(v, Numbers::AsWritten).as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(HASH_PREFIX.len() + 16);
    out.push_str(HASH_PREFIX);
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn is_hash(s: &str) -> bool {
    s.len() == HASH_PREFIX.len() + 16
        && s.starts_with(HASH_PREFIX)
        && s[HASH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True when the report has values and every one is NULL or a hash.
fn is_redacted(report: &Report) -> bool {
    let mut any = false;
    for t in &report.tables {
        for d in t.diffs.iter().chain(&t.converged) {
            let values = d
                .key
                .values()
                .chain(d.columns.iter().flat_map(|c| [&c.source, &c.target]));
            for v in values {
                match v {
                    J::Null => {}
                    J::String(s) if is_hash(s) => any = true,
                    _ => return false,
                }
            }
        }
    }
    any
}

/// Names an error message may quote that are not data: tables, schemas, columns, and the
/// words MySQL quotes in its messages.
fn known_names(report: &Report) -> HashSet<String> {
    let mut names: HashSet<String> = [
        "field list",
        "where clause",
        "order clause",
        "group statement",
        "on clause",
        "having clause",
        "PRIMARY",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in &report.tables {
        for full in [&t.source, &t.target] {
            names.insert(full.clone());
            names.extend(full.split('.').map(str::to_string));
        }
        for d in t.diffs.iter().chain(&t.converged) {
            names.extend(d.key.keys().cloned());
            names.extend(d.columns.iter().map(|c| c.column.clone()));
        }
        for s in &t.schema {
            names.insert(s.object.trim_start_matches("index ").to_string());
        }
        names.extend(t.renderings.iter().map(|r| r.column.clone()));
    }
    names
}

/// An error message without the values it may quote: what follows ``value from ` `` and
/// ``key value ` `` (cutover's own messages about server values), and every `'…'` that is not
/// a known name (server messages quote values that way).
fn redact_error(msg: &str, names: &HashSet<String>) -> String {
    let mut msg = msg.to_string();
    for (open, close) in [
        ("value from `", "`"),
        ("unexpected key value `", "` from the server"),
    ] {
        if let Some(p) = msg.find(open) {
            let start = p + open.len();
            let end = msg[start..]
                .rfind(close)
                .map(|e| start + e)
                .unwrap_or(msg.len());
            msg.replace_range(start..end, REDACTED);
        }
    }
    redact_quoted(&msg, names)
}

/// Every `'…'` or `"…"` that is not a known name becomes `(redacted)`. A quote opens after a
/// non-alphanumeric character and closes before one, so the apostrophes of `can't` or
/// `O'Brien` neither open nor close.
fn redact_quoted(text: &str, names: &HashSet<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let alnum = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    while i < chars.len() {
        let q = chars[i];
        let opens = (q == '\'' || q == '"') && (i == 0 || !alnum(chars.get(i - 1)));
        if !opens {
            out.push(q);
            i += 1;
            continue;
        }
        let close = (i + 1..chars.len()).find(|&j| chars[j] == q && !alnum(chars.get(j + 1)));
        let end = close.unwrap_or(chars.len());
        let inner: String = chars[i + 1..end].iter().collect();
        out.push(q);
        if names.contains(&inner) {
            out.push_str(&inner);
        } else {
            out.push_str(REDACTED);
        }
        if close.is_some() {
            out.push(q);
        }
        i = end + 1;
    }
    out
}

// ---------------------------------------------------------------------------------------
// --out DIR

/// Writes the report files into `dir` (created when missing): `report.json` (the JSON of
/// `--format json`), `report.md`, `report.html`, and `fix.sql`, a copy of the file `fix_sql`
/// when given. Each file is written to a temporary file in `dir`, flushed to disk, then
/// renamed over its name, so a reader never sees half a file. The files are readable by
/// their owner only (they may hold row values). Returns the paths written, in that order.
///
/// The fix SQL holds the rows' values: do not pass it for a redacted report.
pub fn write_out_dir(
    dir: &Path,
    report: &Report,
    fix_sql: Option<&Path>,
) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| with_path(e, "creating", dir))?;
    let mut json = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    json.push('\n');
    let doc = document(report);
    let mut written = Vec::new();
    for (name, body) in [
        ("report.json", json),
        ("report.md", doc.markdown()),
        ("report.html", doc.html()),
    ] {
        let path = dir.join(name);
        write_atomic(&path, |f| f.write_all(body.as_bytes()))?;
        written.push(path);
    }
    if let Some(src) = fix_sql {
        let mut from = File::open(src).map_err(|e| with_path(e, "reading", src))?;
        let path = dir.join("fix.sql");
        write_atomic(&path, |f| io::copy(&mut from, f).map(|_| ()))?;
        written.push(path);
    }
    Ok(written)
}

fn write_atomic(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    // Owner-only: the reports and the fix SQL may hold row values.
    file::write_atomic(path, Readers::Owner, fill).map_err(|e| with_path(e, "writing", path))
}

fn with_path(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_like_values() {
        assert_eq!(show(&J::Null, false), "NULL");
        assert_eq!(show(&json!(1.5), false), "1.5");
        assert_eq!(
            show(&json!("18446744073709551615"), false),
            "\"18446744073709551615\""
        );
        assert_eq!(show(&json!("a\"b\\c\nd\t"), false), r#""a\"b\\c\nd\t""#);
        assert_eq!(
            show(&json!("x\u{a0}y\u{200b}\u{0}"), false),
            r#""x\u{a0}y\u{200b}\u{0}""#
        );
        assert_eq!(show(&json!("trailing "), false), "\"trailing \"");
        assert_eq!(show(&json!({"hex": "ff00"}), false), "0xff00");
        assert_eq!(show(&json!({"hex": "zz"}), false), r#"{"hex":"zz"}"#);
        assert_eq!(show(&json!({"a": [1, null]}), false), r#"{"a":[1,null]}"#);
        assert_eq!(
            show(&json!("h:0123456789abcdef"), true),
            "h:0123456789abcdef"
        );
        assert_eq!(
            show(&json!("h:0123456789abcdef"), false),
            "\"h:0123456789abcdef\""
        );
    }

    #[test]
    fn long_values_are_cut_where_they_differ() {
        let a = format!("{}X{}", "a".repeat(500), "b".repeat(10));
        let b = format!("{}Y{}", "a".repeat(500), "b".repeat(10));
        let (l, r, cut) = clip_pair(a, b);
        assert!(cut);
        assert_eq!(l, format!("…{}X{}", "a".repeat(BEFORE), "b".repeat(10)));
        assert_eq!(r, format!("…{}Y{}", "a".repeat(BEFORE), "b".repeat(10)));
        let (l, _, cut) = clip_pair("Z".repeat(300), "short".into());
        assert!(cut);
        assert_eq!(l, format!("{}…", "Z".repeat(LIMIT)));
        let (l, r, cut) = clip_pair("same".into(), "other".into());
        assert_eq!((l.as_str(), r.as_str(), cut), ("same", "other", false));
        // Multi-byte characters are cut on character boundaries.
        let (l, r, _) = clip_pair("é".repeat(200), "é".repeat(199));
        assert_eq!(l, format!("…{}", "é".repeat(BEFORE + 1)));
        assert_eq!(r, format!("…{}", "é".repeat(BEFORE)));
    }

    #[test]
    fn hashes_are_stable_and_canonical() {
        let h = hash_value(&json!("secret"));
        assert!(is_hash(&h), "{h}");
        assert_eq!(h, hash_value(&json!("secret")));
        assert_ne!(h, hash_value(&json!("secret ")));
        assert_ne!(hash_value(&json!(1)), hash_value(&json!("1")));
        assert_eq!(
            hash_value(&json!({"a": 1, "b": [2, {"d": 3, "c": 4}]})),
            hash_value(&json!({"b": [2, {"c": 4, "d": 3}], "a": 1}))
        );
        // Pinned (computed independently): reports of different runs and versions agree.
        assert_eq!(h, "h:ac6a28ba4c1b7083");
        assert_eq!(
            hash_value(&json!({"b": [2, {"d": 3, "c": 4}], "a": 1})),
            "h:fd2208390c53c413"
        );
        let keyed = hash_with(&json!("secret"), Some(b"k1"));
        assert_ne!(keyed, h);
        assert_ne!(keyed, hash_with(&json!("secret"), Some(b"k2")));
        assert_eq!(keyed, hash_with(&json!("secret"), Some(b"k1")));
    }

    #[test]
    fn errors_lose_their_values() {
        let names: HashSet<String> = ["shop.orders", "shop", "orders", "field list", "total"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            redact_error(
                "source column `amount`: cannot read a Decimal value from `12ab'c`",
                &names
            ),
            "source column `amount`: cannot read a Decimal value from `(redacted)`"
        );
        assert_eq!(
            redact_error("unexpected key value `x` y` from the server", &names),
            "unexpected key value `(redacted)` from the server"
        );
        assert_eq!(
            redact_error(
                "source query failed: Table 'shop.orders' doesn't exist",
                &names
            ),
            "source query failed: Table 'shop.orders' doesn't exist"
        );
        assert_eq!(
            redact_error(
                "target query failed: Truncated incorrect DOUBLE value: 'O'Brien' in 'total'",
                &names
            ),
            "target query failed: Truncated incorrect DOUBLE value: '(redacted)' in 'total'"
        );
        assert_eq!(
            redact_error("Unknown column 'secret' in 'field list'", &names),
            "Unknown column '(redacted)' in 'field list'"
        );
        assert_eq!(
            redact_error("cut short: 'abc", &names),
            "cut short: '(redacted)"
        );
        assert_eq!(
            redact_quoted(
                r#"email = 'bob@example.com' AND `total` > 10 OR note = "it's""#,
                &names
            ),
            r#"email = '(redacted)' AND `total` > 10 OR note = "(redacted)""#
        );
        assert_eq!(
            redact_quoted("name = 'O''Brien'", &names),
            "name = '(redacted)''(redacted)'"
        );
        assert_eq!(
            redact_error("table missing on the target", &names),
            "table missing on the target"
        );
        assert_eq!(redact_error("Can't connect", &names), "Can't connect");
    }
}
