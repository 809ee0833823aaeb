//! The diff report as something a DBA shares: a [`cutover_report::Document`] rendered as
//! Markdown and HTML, and `--redact-values` ([`redact`]). The binary writes the files of
//! `--out DIR`.
//!
//! Values are shown the way a DBA reads them: strings quoted with escapes (so trailing
//! spaces, line breaks and invisible characters show), numbers bare, `NULL`, bytes that are
//! not UTF-8 as `0x…`, JSON documents as compact JSON. A long value is cut around its first
//! difference from the other side; `report.json` always holds the whole value.

use std::fmt::Write as _;

use cutover_report::{Badge, Block, Cell, Compare, CompareRow, Document, Section, Table, Tone};
use serde_json::Value as J;

use crate::report::{DiffKind, Report, RowDiff, SchemaDiff, Status, TableReport};

mod redact;
mod values;

use redact::is_redacted;
pub use redact::{hash_value, redact, redact_with_key};
use values::{clip_pair, key_text, show};

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
