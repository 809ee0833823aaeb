//! The verify summary as a document to share (Markdown, HTML), in the look of every other
//! report: the verdict, what was read and checked, the confirmed mismatches with both rows
//! side by side, then what was not checked.

use cutover_report::{Badge, Block, Cell, Compare, CompareRow, Document, Section, Table, Tone};
use cutover_rows::DiffKind;
use serde_json::Value as J;

use crate::Summary;

/// Mismatches shown with both rows (`verify.json` and `mismatches.jsonl` hold every one).
const SHOWN: usize = 100;

/// The verdict, as the exit code decides it: mismatches (1), none (0).
pub fn verdict(s: &Summary) -> Badge {
    if !s.mismatches.is_empty() {
        Badge::new(
            match s.mismatches.len() {
                1 => "1 MISMATCH".to_string(),
                n => format!("{n} MISMATCHES"),
            },
            Tone::Bad,
        )
    } else if s.interrupted {
        Badge::new("NO MISMATCH (INTERRUPTED)", Tone::Warn)
    } else if !s.unchecked_tables.is_empty() || s.skipped_rows > 0 {
        Badge::new("NO MISMATCH, NOT ALL CHECKED", Tone::Warn)
    } else {
        Badge::new("NO MISMATCH", Tone::Ok)
    }
}

pub fn document(s: &Summary, source: &str, target: &str) -> Document {
    let mut d = Document::new("cutover verify report");
    d.badge = Some(verdict(s));
    d.summary.push(("Source".into(), Cell::code(source)));
    d.summary.push(("Target".into(), Cell::code(target)));
    d.summary.push((
        "Binlog".into(),
        Cell::text(format!(
            "{} events read, up to {}{}",
            s.events,
            s.position,
            s.resumed_from
                .as_ref()
                .map(|p| format!(" (resumed from {p}, {} restarts)", s.restarts))
                .unwrap_or_default()
        )),
    ));
    d.summary.push((
        "Checked".into(),
        Cell::text(format!(
            "{} row changes, {} rows checked ({} read from the source); {} pending, {} resolved, {} busy",
            s.changes, s.rows_checked, s.source_reads, s.pending, s.resolved, s.busy
        )),
    ));
    if s.lag.count > 0 {
        d.summary.push((
            "Verification lag".into(),
            Cell::text(format!(
                "read → seen equal: p50 {} ms, p99 {} ms, max {} ms",
                s.lag.p50_ms, s.lag.p99_ms, s.lag.max_ms
            )),
        ));
    }
    d.summary.push((
        "Mismatches".into(),
        Cell::text(s.mismatches.len().to_string()).with_tone(if s.mismatches.is_empty() {
            Tone::Ok
        } else {
            Tone::Bad
        }),
    ));
    if s.interrupted {
        d.summary.push((
            "Interrupted".into(),
            Cell::text("stopped by a signal: the summary covers what was read")
                .with_tone(Tone::Warn),
        ));
    }

    if !s.mismatches.is_empty() {
        // By table first: one table with every row wrong reads as one line.
        let mut by_table: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
        for m in &s.mismatches {
            let e = by_table.entry(m.table.as_str()).or_default();
            match m.kind {
                DiffKind::MissingInTarget => e.0 += 1,
                DiffKind::ExtraInTarget => e.1 += 1,
                DiffKind::Mismatched => e.2 += 1,
            }
        }
        let mut sec = Section::new("Mismatches by table")
            .with_badge(Badge::new(format!("{} tables", by_table.len()), Tone::Bad));
        let mut t = Table::new(["table", "missing in target", "extra in target", "changed"])
            .align_right([1, 2, 3]);
        for (table, (a, b, c)) in by_table {
            t.push(vec![
                Cell::code(table),
                Cell::text(a.to_string()),
                Cell::text(b.to_string()),
                Cell::text(c.to_string()),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);

        let mut sec = Section::new("Confirmed mismatches");
        if s.mismatches.len() > SHOWN {
            sec.push(Block::Paragraph(format!(
                "The first {SHOWN} of {}; verify.json and mismatches.jsonl list every one.",
                s.mismatches.len()
            )));
        }
        let mut c = Compare {
            labels: vec!["table".into(), "key".into(), "difference".into()],
            left: "source".into(),
            right: "target".into(),
            rows: Vec::new(),
        };
        for m in s.mismatches.iter().take(SHOWN) {
            let kind = match m.kind {
                DiffKind::MissingInTarget => "missing in target",
                DiffKind::ExtraInTarget => "extra in target",
                DiffKind::Mismatched => "changed",
            };
            let key = m
                .key
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let side = |v: &J| match v {
                J::Null => Cell::text("no row"),
                v => Cell::code(v.to_string()),
            };
            c.rows.push(CompareRow {
                labels: vec![
                    Cell::code(m.table.clone()),
                    Cell::code(key),
                    Cell::text(kind),
                ],
                left: side(&m.source),
                right: side(&m.target).with_tone(Tone::Bad),
            });
        }
        sec.push(Block::Compare(c));
        d.sections.push(sec);
    }

    if !s.unchecked_tables.is_empty() || s.skipped_rows > 0 || s.check_errors > 0 {
        let mut sec = Section::new("Not checked").with_badge(Badge::new("WARNING", Tone::Warn));
        let mut t = Table::new(["what", "why"]);
        for (table, why) in &s.unchecked_tables {
            t.push(vec![Cell::code(table.clone()), Cell::text(why.clone())]);
        }
        if s.skipped_rows > 0 {
            t.push(vec![
                Cell::text(format!("{} changed rows", s.skipped_rows)),
                Cell::text(format!(
                    "could not be read from the binlog; first: {}",
                    s.warnings.first().map(String::as_str).unwrap_or("?")
                )),
            ]);
        }
        if s.check_errors > 0 {
            t.push(vec![
                Cell::text(format!("{} check rounds", s.check_errors)),
                Cell::text("failed (a side unreachable) and were retried"),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{Lag, Mismatch};
    use serde_json::json;

    fn summary(mismatches: Vec<Mismatch>) -> Summary {
        Summary {
            events: 10,
            changes: 4,
            rows_checked: 4,
            source_reads: 1,
            pending: 0,
            resolved: 3,
            busy: 0,
            skipped_rows: 0,
            warnings: Vec::new(),
            position: "binlog.000001:2661".into(),
            mismatches,
            interrupted: false,
            check_errors: 0,
            reconnects: 0,
            unchecked_tables: Default::default(),
            lag: Lag::default(),
            resumed_from: None,
            restarts: 0,
        }
    }

    #[test]
    fn mismatches_are_shown_by_table_and_side_by_side() {
        let key = json!({"id": 7});
        let m = Mismatch {
            table: "shop.orders".into(),
            target_table: "shop.orders".into(),
            key: key.as_object().cloned().unwrap_or_default(),
            kind: DiffKind::Mismatched,
            source: json!({"id": 7, "note": "<b>x</b>"}),
            target: json!({"id": 7, "note": "y"}),
            counts: None,
            position: "binlog.000001:100".into(),
        };
        let d = document(&summary(vec![m]), "mysql://u:***@s", "mysql://u:***@t");
        assert_eq!(
            d.badge.as_ref().map(|b| b.label.as_str()),
            Some("1 MISMATCH")
        );
        let html = d.html();
        assert!(html.contains("Mismatches by table") && html.contains("shop.orders"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"));
        let md = document(&summary(Vec::new()), "s", "t").markdown();
        assert!(md.contains("NO MISMATCH"), "{md}");
    }
}
