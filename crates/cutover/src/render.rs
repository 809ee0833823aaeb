//! Human renderings of reports.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use cutover_diff::report::{DiffKind, Report, Status};

/// Causes shown in the human summary (JSON and `--out` list them all).
const GROUPS_SHOWN: usize = 20;

/// The summary a DBA reads: the differences grouped by cause, one row per table, then the
/// differences found per table, then totals.
pub fn diff_human(r: &Report) -> String {
    let mut out = String::new();
    for (name, dsn, c) in [
        ("source", &r.source, &r.connections.source),
        ("target", &r.target, &r.connections.target),
    ] {
        out.push_str(&format!(
            "{name}: {dsn} ({}, {})\n",
            c.server,
            c.tls
                .as_deref()
                .map(|t| format!("TLS {t}"))
                .unwrap_or_else(|| "no TLS".into())
        ));
    }
    // The causes first: "column `ts` differs in 400 tables" says in one line what 400 table
    // rows and 400 detail lines below would.
    if !r.groups.is_empty() {
        out.push_str("differences by cause:\n");
        for g in r.groups.iter().take(GROUPS_SHOWN) {
            out.push_str(&format!("  {}\n", g.describe()));
            let more = g.tables.saturating_sub(g.examples.len() as u64);
            if g.tables > 1 || g.kind.starts_with("schema.") {
                out.push_str(&format!(
                    "      e.g. {}{}\n",
                    g.examples.join(", "),
                    if more > 0 && !g.kind.starts_with("schema.") {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        if r.groups.len() > GROUPS_SHOWN {
            out.push_str(&format!(
                "  … and {} more causes (--format json lists them all in `groups`)\n",
                r.groups.len() - GROUPS_SHOWN
            ));
        }
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "table", "status", "rows", "missing", "extra", "changed", "time",
        ]);
    for tr in &r.tables {
        let name = if tr.source == tr.target {
            tr.source.clone()
        } else {
            format!("{} → {}", tr.source, tr.target)
        };
        t.add_row(vec![
            Cell::new(name),
            Cell::new(status(tr.status)),
            Cell::new(tr.rows_compared),
            Cell::new(tr.missing_in_target),
            Cell::new(tr.extra_in_target),
            Cell::new(tr.mismatched),
            Cell::new(format!("{:.2}s", tr.elapsed_ms as f64 / 1000.0)),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for tr in &r.tables {
        if let Some(e) = &tr.error {
            out.push_str(&format!("{}: error: {}\n", tr.source, e));
        }
        for s in &tr.schema {
            let object = if s.object.starts_with("index ") || s.object == "table" {
                s.object.clone()
            } else {
                format!("column {}", s.object)
            };
            out.push_str(&format!(
                "{}: schema: {} {}: source {} / target {}\n",
                tr.source,
                object,
                s.what,
                s.source.as_deref().unwrap_or("-"),
                s.target.as_deref().unwrap_or("-")
            ));
        }
        const SHOWN: usize = 20;
        for d in tr.diffs.iter().take(SHOWN) {
            let mut key = serde_json::Value::Object(d.key.clone()).to_string();
            if let Some(n) = d.count {
                key.push_str(&format!(" ×{n}"));
            }
            match d.kind {
                DiffKind::MissingInTarget => {
                    out.push_str(&format!("{}: missing in target {key}\n", tr.source))
                }
                DiffKind::ExtraInTarget => {
                    out.push_str(&format!("{}: extra in target {key}\n", tr.source))
                }
                DiffKind::Mismatched => {
                    let cols: Vec<String> = d
                        .columns
                        .iter()
                        .map(|c| format!("{}: {} → {}", c.column, c.source, c.target))
                        .collect();
                    out.push_str(&format!(
                        "{}: changed {key} {}\n",
                        tr.source,
                        cols.join(", ")
                    ))
                }
            }
        }
        let more = tr
            .differences()
            .saturating_sub(SHOWN.min(tr.diffs.len()) as u64);
        if more > 0 {
            out.push_str(&format!(
                "{}: … and {more} more differences (--format json lists up to --max-diffs)\n",
                tr.source
            ));
        }
    }
    let s = &r.summary;
    out.push_str(&format!(
        "{} tables: {} equal, {} different, {} errors, {} skipped; {} rows compared in {:.2}s{}\n",
        s.tables,
        s.equal,
        s.different,
        s.errors,
        s.skipped,
        s.rows_compared,
        s.elapsed_ms as f64 / 1000.0,
        if s.accepted > 0 {
            format!("; {} schema differences accepted", s.accepted)
        } else {
            String::new()
        }
    ));
    out
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Equal => "equal",
        Status::Different => "DIFFERENT",
        Status::Error => "ERROR",
        Status::Skipped => "skipped",
    }
}
