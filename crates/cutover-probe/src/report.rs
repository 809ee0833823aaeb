//! The probe's report: per test, how each side behaved and whether they differ; the human
//! table, the JSON form, and the shared document (`--out DIR`: `probe.json`, `probe.md`,
//! `probe.html`).

use cutover_report::{Badge, Block, Cell, Document, Section, Table, Tone};
use serde::Serialize;

use crate::anomaly::{Behaviour, Kind, StepRecord};
use crate::runner::Detection;

/// Who a side is and how its sessions ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideInfo {
    /// The endpoint, password shown as `***`.
    pub endpoint: String,
    /// `@@version`.
    pub server: String,
    pub flavor: String,
    /// The isolation level the test sessions ran at.
    pub isolation: String,
    /// TiDB's `tidb_txn_mode` (pessimistic / optimistic).
    pub txn_mode: Option<String>,
    /// Other session settings that change what an isolation level prevents (MariaDB's
    /// `innodb_snapshot_isolation`), as the sessions saw them.
    pub settings: std::collections::BTreeMap<String, String>,
    /// How blocked steps were recognised.
    pub detection: Detection,
}

impl SideInfo {
    pub fn is_tidb(&self) -> bool {
        self.server.to_ascii_lowercase().contains("tidb")
    }
}

/// One documented fact about a test's outcome on the target (see `flavor`), with where it
/// is documented.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub text: String,
    pub source: &'static str,
}

/// Both sides' evidence, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub source: String,
    pub target: String,
}

/// One test, both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnomalyResult {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub source: Behaviour,
    pub target: Behaviour,
    pub differs: bool,
    pub evidence: Evidence,
    /// What TiDB documents about this test (a TiDB target, a test that differs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// The steps as they ran on each side (JSON only).
    pub steps: Steps,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Steps {
    pub source: Vec<StepRecord>,
    pub target: Vec<StepRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub tests: usize,
    pub same: usize,
    pub differ: usize,
    /// Tests that could not be judged on at least one side.
    pub unknown: usize,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub source: SideInfo,
    pub target: SideInfo,
    pub scratch_db: String,
    pub anomalies: Vec<AnomalyResult>,
    pub summary: Summary,
}

impl Report {
    /// 0 every test behaved the same, 1 at least one differs, 2 a test could not be judged
    /// (never a "same" for what was not seen).
    pub fn exit_code(&self) -> u8 {
        if self.summary.unknown > 0 {
            2
        } else if self.summary.differ > 0 {
            1
        } else {
            0
        }
    }

    /// The human report: who ran at which level, then one line per test.
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "cutover probe isolation");
        for (label, s) in [("source", &self.source), ("target", &self.target)] {
            let _ = writeln!(out, "  {label}  {} ({})", s.endpoint, s.server);
            let _ = writeln!(out, "          {}", side_line(s));
        }
        let _ = writeln!(out);
        let mut t = plain_rows(&["test", "source", "target", ""]);
        for a in &self.anomalies {
            t.push(vec![
                a.id.clone(),
                a.source.label(),
                a.target.label(),
                if a.differs {
                    "DIFFERS".into()
                } else {
                    String::new()
                },
            ]);
        }
        out.push_str(&render_columns(&t));
        for a in self.anomalies.iter().filter(|a| a.differs) {
            let _ = writeln!(out, "\n{}: {}", a.id, a.name);
            let _ = writeln!(out, "  source: {}", a.evidence.source);
            let _ = writeln!(out, "  target: {}", a.evidence.target);
            for n in &a.notes {
                let _ = writeln!(out, "  note: {} ({})", n.text, n.source);
            }
        }
        let s = &self.summary;
        let verdict = if s.unknown > 0 {
            format!("{} test(s) could not run", s.unknown)
        } else if s.differ > 0 {
            "the sides behave differently under concurrency".into()
        } else {
            "same behaviour".into()
        };
        let _ = writeln!(
            out,
            "\n{verdict}: {} tests, {} same, {} differ, {} could not run ({:.1} s)",
            s.tests,
            s.same,
            s.differ,
            s.unknown,
            s.elapsed_ms as f64 / 1000.0
        );
        out
    }

    /// The report as a shared document (Markdown, HTML).
    pub fn document(&self) -> Document {
        let mut d = Document::new("cutover probe isolation");
        let s = &self.summary;
        d.badge = Some(if s.unknown > 0 {
            Badge::new("COULD NOT RUN EVERY TEST", Tone::Warn)
        } else if s.differ > 0 {
            Badge::new(format!("{} DIFFER", s.differ), Tone::Bad)
        } else {
            Badge::new("SAME BEHAVIOUR", Tone::Ok)
        });
        for (label, side) in [("Source", &self.source), ("Target", &self.target)] {
            d.summary
                .push((label.into(), Cell::code(side.endpoint.clone())));
            d.summary.push((
                format!("{label} server"),
                Cell::text(format!("{} — {}", side.server, side_line(side))),
            ));
        }
        d.summary.push((
            "Tests".into(),
            Cell::text(format!(
                "{} tests, {} same, {} differ, {} could not run",
                s.tests, s.same, s.differ, s.unknown
            )),
        ));
        let mut sec = Section::new("Tests");
        let mut t = Table::new(["test", "name", "source", "target", ""]);
        for a in &self.anomalies {
            let tone = if a.differs { Tone::Bad } else { Tone::Ok };
            t.push(vec![
                Cell::code(a.id.clone()),
                Cell::text(a.name.clone()),
                Cell::text(a.source.label()),
                Cell::text(a.target.label()),
                Cell::text(if a.differs { "differs" } else { "same" }).with_tone(tone),
            ]);
        }
        sec.push(Block::Table(t));
        d.sections.push(sec);
        for a in self.anomalies.iter().filter(|a| a.differs) {
            let mut sec = Section::new(format!("{}: {}", a.id, a.name))
                .with_badge(Badge::new("differs", Tone::Bad));
            sec.push(Block::Paragraph(format!(
                "Source: {} — {}",
                a.source.label(),
                a.evidence.source
            )));
            sec.push(Block::Paragraph(format!(
                "Target: {} — {}",
                a.target.label(),
                a.evidence.target
            )));
            let steps: Vec<String> = a
                .steps
                .source
                .iter()
                .map(|r| format!("T{}: {}", r.conn + 1, r.sql))
                .collect();
            sec.push(Block::Code(steps.join("\n")));
            for n in &a.notes {
                sec.push(Block::Paragraph(format!("TiDB: {} ({})", n.text, n.source)));
            }
            d.sections.push(sec);
        }
        d
    }
}

fn side_line(s: &SideInfo) -> String {
    let mut parts = vec![format!("isolation {}", s.isolation)];
    if let Some(m) = &s.txn_mode {
        parts.push(format!("tidb_txn_mode {m}"));
    }
    for (k, v) in &s.settings {
        parts.push(format!("{k} {v}"));
    }
    parts.push(match s.detection {
        Detection::LockWaitView => "blocking seen in the lock-wait view".into(),
        Detection::Deadline => format!(
            "blocking assumed after {} s without an answer (no PROCESS privilege)",
            crate::runner::DEADLINE.as_secs()
        ),
    });
    parts.join(", ")
}

/// Rows of plain columns for the terminal (no box drawing: it is read in logs and CI too).
fn plain_rows(header: &[&str]) -> Vec<Vec<String>> {
    vec![header.iter().map(|h| h.to_string()).collect()]
}

fn render_columns(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
