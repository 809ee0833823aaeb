//! The check report as a shared document (Markdown for `--out DIR`), and the files of
//! `--out DIR`.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use cutover_core::file::{write_atomic, Readers};
use cutover_report::{Badge, Block, Cell, Document, Section, Table, Tone};

use crate::finding::{Report, Severity};

pub fn document(r: &Report) -> Document {
    let mut d = Document::new("cutover check report");
    let s = &r.summary;
    d.badge = Some(if s.errors > 0 {
        Badge::new(
            format!("{} ERROR{}", s.errors, if s.errors == 1 { "" } else { "S" }),
            Tone::Bad,
        )
    } else if s.warnings > 0 {
        Badge::new("READY WITH WARNINGS", Tone::Warn)
    } else {
        Badge::new("READY", Tone::Ok)
    });
    // A workload checked alone has no source.
    let has_source = !s.source.is_empty();
    if has_source {
        d.summary
            .push(("Source".into(), Cell::code(s.source.clone())));
        d.summary
            .push(("Source server".into(), Cell::text(s.source_server.clone())));
    }
    if let Some(t) = &s.target {
        d.summary.push(("Target".into(), Cell::code(t.clone())));
    }
    d.summary
        .push(("Target server".into(), Cell::text(s.target_server.clone())));
    if has_source {
        d.summary.push((
            "Checked".into(),
            Cell::text(format!(
                "{} databases, {} tables, {} ID spaces; horizon {} days",
                s.databases, s.tables, s.id_spaces, s.horizon_days
            )),
        ));
    }
    if let Some(t) = &s.transactions {
        d.summary.push((
            "Binlog".into(),
            Cell::text(format!(
                "{} → {}: {} transactions with row changes, {:.1} MiB",
                t.from,
                t.to,
                t.transactions,
                t.bytes as f64 / 1048576.0
            )),
        ));
    }
    d.summary.push((
        "Findings".into(),
        Cell::text(format!(
            "{} errors, {} warnings, {} info",
            s.errors, s.warnings, s.infos
        )),
    ));
    if s.accepted > 0 {
        d.summary.push((
            "Accepted".into(),
            Cell::text(format!(
                "{} findings expected by [accept] or --accept (listed last, not counted)",
                s.accepted
            )),
        ));
    }
    // The groups first: hundreds of findings with one cause read as one line, so the one
    // that matters is not buried.
    if !r.groups.is_empty() {
        let mut sec = Section::new("Findings by cause").with_badge(Badge::new(
            format!("{} groups", r.groups.len()),
            if s.errors > 0 {
                Tone::Bad
            } else if s.warnings > 0 {
                Tone::Warn
            } else {
                Tone::Ok
            },
        ));
        sec.push(Block::Table(groups_table(&r.groups)));
        d.sections.push(sec);
    }
    for sev in [Severity::Error, Severity::Warning, Severity::Info] {
        let items: Vec<_> = r.findings.iter().filter(|f| f.severity == sev).collect();
        if items.is_empty() {
            continue;
        }
        let (title, tone) = match sev {
            Severity::Error => ("Errors", Tone::Bad),
            Severity::Warning => ("Warnings", Tone::Warn),
            Severity::Info => ("Info", Tone::Neutral),
        };
        let mut sec = Section::new(title).with_badge(Badge::new(items.len().to_string(), tone));
        let mut t = Table::new(["rule", "object", "finding", "advice"]);
        for f in items {
            t.push(vec![
                Cell::code(f.rule),
                Cell::code(f.object.clone().unwrap_or_default()),
                Cell::text(f.message.clone()),
                Cell::text(f.advice.clone()),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
    }
    if !r.accepted.is_empty() {
        let mut sec = Section::new("Accepted").with_badge(Badge::new(
            format!("{} expected", r.accepted.len()),
            Tone::Neutral,
        ));
        sec.push(Block::Paragraph(
            "Findings an [accept] entry of cutover.toml or --accept expected: reported here, not counted in the verdict.".into(),
        ));
        sec.push(Block::Table(groups_table(&r.accepted_groups)));
        let mut t = Table::new(["rule", "object", "finding", "accepted by"]);
        for a in &r.accepted {
            t.push(vec![
                Cell::code(a.finding.rule),
                Cell::code(a.finding.object.clone().unwrap_or_default()),
                Cell::text(a.finding.message.clone()),
                Cell::code(a.accepted_by.clone()),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
    }
    if let Some(w) = &s.workload {
        d.summary.push((
            "Workload".into(),
            Cell::text(format!(
                "{} ({}): {} statements, {} sessions, {} transactions{}",
                w.path,
                w.source,
                w.statements,
                w.sessions,
                w.transactions,
                if w.redacted {
                    "; values redacted: hot rows not checked"
                } else {
                    ""
                }
            )),
        ));
    }
    // The statements behind each workload finding: class, counts, examples.
    let with_evidence: Vec<_> = r.findings.iter().filter(|f| f.evidence.is_some()).collect();
    if !with_evidence.is_empty() {
        let mut sec = Section::new("Workload evidence");
        let mut t = Table::new([
            "rule",
            "statement class",
            "statements",
            "sessions",
            "examples (session, time, statement)",
            "fix",
        ])
        .align_right([2, 3]);
        for f in with_evidence {
            let Some(e) = &f.evidence else { continue };
            let examples: Vec<String> = e
                .examples
                .iter()
                .map(|x| format!("session {} at {}: {}", x.session, x.time, x.sql))
                .collect();
            t.push(vec![
                Cell::code(f.rule),
                Cell::code(e.class.clone()),
                Cell::text(e.statements.to_string()),
                Cell::text(e.sessions.to_string()),
                Cell::text(examples.join("\n")),
                Cell::text(
                    f.fix
                        .as_ref()
                        .map(|x| format!("{}: {}", x.kind, x.change))
                        .unwrap_or_default(),
                ),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
    }
    if !s.forecasts.is_empty() {
        let mut sec = Section::new("ID spaces");
        let mut t = Table::new([
            "object",
            "used",
            "capacity",
            "% used",
            "IDs/day",
            "runs out in",
        ])
        .align_right([1, 2, 3, 4, 5]);
        for l in &s.forecasts {
            t.push(vec![
                Cell::code(l.object.clone()),
                Cell::text(l.used.to_string()),
                Cell::text(l.capacity.to_string()),
                Cell::text(format!("{:.1}", l.ratio * 100.0)),
                Cell::text(
                    l.rate_per_second
                        .map(|r| format!("{:.0}", r * 86_400.0))
                        .unwrap_or_default(),
                ),
                Cell::text(
                    l.eta_seconds
                        .or(l.eta_tidb_seconds)
                        .map(crate::forecast::human_duration)
                        .unwrap_or_default(),
                ),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
    }
    d
}

/// Groups as a table: severity, rule, how many, the cause, the first objects, the advice.
fn groups_table(groups: &[crate::finding::Group]) -> Table {
    let mut t = Table::new(["severity", "rule", "objects", "cause", "e.g.", "advice"]);
    for g in groups {
        let tone = match g.severity {
            _ if g.accepted_by.is_some() => Tone::Neutral,
            Severity::Error => Tone::Bad,
            Severity::Warning => Tone::Warn,
            Severity::Info => Tone::Neutral,
        };
        let more = g.count - g.examples.len();
        t.push(vec![
            Cell::text(g.severity.name()).with_tone(tone),
            Cell::code(g.rule),
            Cell::text(g.counted()),
            Cell::text(g.cause.clone()),
            Cell::code(if more > 0 {
                format!("{} … (+{more})", g.examples.join(", "))
            } else {
                g.examples.join(", ")
            }),
            Cell::text(g.advice.clone()),
        ]);
    }
    t
}

/// Writes `check.json`, `check.md` and `check.html` into `dir` (created when missing).
pub fn write_out_dir(dir: &Path, r: &Report) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    let mut json = serde_json::to_string_pretty(r).map_err(io::Error::other)?;
    json.push('\n');
    let mut written = Vec::new();
    let doc = document(r);
    for (name, body) in [
        ("check.json", json),
        ("check.md", doc.markdown()),
        ("check.html", doc.html()),
    ] {
        let path = dir.join(name);
        // Owner-only: a check report names the schema's objects and its findings.
        write_atomic(&path, Readers::Owner, |f| f.write_all(body.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}
