//! Drill reports: one drill (its timeline, each step's actual against expected time, who
//! acted and reviewed, failures and rollbacks, the window) or several side by side (step by
//! step, with the trend from the first drill to the last and the steps that got slower or
//! failed). The same model renders as text, JSON, Markdown and HTML.

use std::path::Path;

use cutover_report::{Badge, Block, Cell, Chart, Document, Section, Table, Tone};
use serde::Serialize;

use crate::duration::human;
use crate::journal::{self, Event, Record};
use crate::state::{Run, StepState};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub runs: Vec<RunReport>,
    /// Several drills: the comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub runbook: String,
    pub status: String,
    pub dry_run: bool,
    pub started_at: String,
    pub total_s: f64,
    pub expected_s: f64,
    pub window: Option<WindowReport>,
    pub steps: Vec<StepReport>,
    pub rollbacks: Vec<RollbackReport>,
    pub resumed: u32,
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub timeline: Vec<(f64, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub from: String,
    pub to: String,
    pub expected_s: f64,
    /// `None` when the window's steps did not both run.
    pub actual_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub dri: String,
    pub reviewer: String,
    /// `ok`, `failed`, `skipped`, `not_run`, `running`, `waiting`.
    pub status: String,
    pub expected_s: f64,
    pub actual_s: Option<f64>,
    pub overrun: bool,
    pub attempts: u32,
    /// Acks and approval decisions: `alice acked`, `carol approved`, with the OS user.
    pub acted: Vec<String>,
    pub error: Option<String>,
    /// Whether its rollback ran, and how it ended.
    pub rolled_back: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub step: String,
    pub ok: Option<bool>,
    pub actual_s: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub steps: Vec<StepTrend>,
    pub totals_s: Vec<f64>,
    pub windows_s: Vec<Option<f64>>,
    /// Steps whose trend is `slower`.
    pub slower: Vec<String>,
    /// Steps that failed in any drill, with the drills (1-based) they failed in.
    pub failed: Vec<(String, Vec<usize>)>,
    /// Drills that ended `completed` without a failed step.
    pub clean_runs: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTrend {
    pub id: String,
    pub expected_s: f64,
    pub actual_s: Vec<Option<f64>>,
    pub status: Vec<String>,
    /// From the first drill in which the step succeeded to the last: `slower`, `faster`
    /// (by more than 10 % and 1 s), `same`, or `n/a` (it succeeded in fewer than two).
    pub trend: String,
}

/// Why a drill report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("{} holds no drill (no journal.jsonl with a run)", .0.display())]
    NoDrill(std::path::PathBuf),
}

/// Reads each journal directory (oldest drill first) into a report.
pub fn load(dirs: &[&Path]) -> Result<Report, LoadError> {
    let mut runs = Vec::new();
    for d in dirs {
        let records = journal::read(d)?;
        let run = Run::from_records(&records).ok_or_else(|| LoadError::NoDrill(d.to_path_buf()))?;
        runs.push(run_report(&run, &records));
    }
    Ok(build(runs))
}

/// A report from runs already read.
pub fn build(runs: Vec<RunReport>) -> Report {
    let comparison = (runs.len() > 1).then(|| compare(&runs));
    Report { runs, comparison }
}

pub fn run_report(run: &Run, records: &[Record]) -> RunReport {
    let t = |ms: u64| ms.saturating_sub(run.started_ms) as f64 / 1000.0;
    let mut timeline = Vec::new();
    for r in records {
        let line = match &r.event {
            Event::RunStarted {
                os_user, dry_run, ..
            } => Some(format!(
                "drill started by {os_user}{}",
                if *dry_run { " (dry run)" } else { "" }
            )),
            Event::Resumed {
                at_step, os_user, ..
            } => Some(format!("resumed at {at_step} by {os_user}")),
            Event::StepStarted { step } => Some(format!("{step} started")),
            Event::StepWaiting {
                step,
                waiting_for,
                who,
                min,
                ..
            } => Some(match waiting_for {
                journal::Waiting::Ack => format!("{step} waits for {}'s ack", who.join(", ")),
                journal::Waiting::Approval => {
                    format!("{step} waits for {min} approval(s) of {}", who.join(", "))
                }
            }),
            Event::Ack { step, by, os_user } => Some(format!("{step} acked by {by} ({os_user})")),
            Event::Approval {
                step,
                by,
                approve,
                os_user,
            } => Some(format!(
                "{step} {} by {by} ({os_user})",
                if *approve { "approved" } else { "rejected" }
            )),
            Event::Approved { step, by } => Some(format!("{step} approved ({})", by.join(", "))),
            Event::Overrun {
                step, expected_s, ..
            } => Some(format!(
                "{step} overran its estimate of {}",
                human(*expected_s)
            )),
            Event::StepFinished {
                step,
                status,
                elapsed_s,
                error,
                ..
            } => Some(format!(
                "{step} {} after {}{}",
                match status {
                    journal::StepStatus::Ok => "done",
                    journal::StepStatus::Failed => "FAILED",
                    journal::StepStatus::Skipped => "skipped",
                },
                human(*elapsed_s),
                error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            )),
            Event::RollbackStarted { cause, steps } => {
                Some(format!("rollback ({cause}): {}", steps.join(" → ")))
            }
            Event::RollbackStepStarted { step } => Some(format!("rollback of {step} started")),
            Event::RollbackStepFinished {
                step,
                ok,
                elapsed_s,
                error,
            } => Some(format!(
                "rollback of {step} {} after {}{}",
                if *ok { "done" } else { "FAILED" },
                human(*elapsed_s),
                error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            )),
            Event::RunFinished { status } => Some(format!(
                "drill ended: {}",
                serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )),
            Event::Interrupted { step } => Some(format!(
                "interrupted{}",
                step.as_ref()
                    .map(|s| format!(" during {s}"))
                    .unwrap_or_default()
            )),
            Event::Warning { message } => Some(format!("warning: {message}")),
            Event::CommandStarted { .. } => None,
            Event::OrphanEnded {
                step,
                rollback,
                pid,
                how,
            } => Some(format!(
                "{}{step}'s command (pid {pid}) from before the resume {}; exit status unknown",
                if *rollback { "the rollback of " } else { "" },
                match how.as_str() {
                    "killed" => "was ended (--kill-orphans)",
                    "waited" => "still ran and was waited for",
                    _ => "had ended",
                }
            )),
            Event::Output { .. } => None,
        };
        if let Some(l) = line {
            timeline.push((t(r.ms), l));
        }
    }
    let steps: Vec<StepReport> = run
        .steps
        .iter()
        .map(|s| {
            let mut acted: Vec<String> = s
                .acks
                .iter()
                .map(|(by, os)| format!("{by} acked ({os})"))
                .collect();
            acted.extend(s.decisions.iter().map(|d| {
                format!(
                    "{} {} ({})",
                    d.by,
                    if d.approve { "approved" } else { "rejected" },
                    d.os_user
                )
            }));
            StepReport {
                id: s.info.id.clone(),
                title: s.info.title.clone(),
                dri: s.info.dri.clone(),
                reviewer: s.info.reviewer.clone(),
                status: s.state.as_str().into(),
                expected_s: s.info.expected_s,
                actual_s: match s.state {
                    StepState::Ok | StepState::Failed => s.elapsed_s,
                    _ => None,
                },
                overrun: s.overran,
                attempts: s.attempts,
                acted,
                error: s.error.clone(),
                rolled_back: s.rollback.as_ref().and_then(|r| r.ok),
            }
        })
        .collect();
    let mut rollbacks: Vec<(u64, RollbackReport)> = run
        .steps
        .iter()
        .filter_map(|s| {
            s.rollback.as_ref().map(|r| {
                (
                    r.started_ms,
                    RollbackReport {
                        step: s.info.id.clone(),
                        ok: r.ok,
                        actual_s: r.elapsed_s,
                        error: r.error.clone(),
                    },
                )
            })
        })
        .collect();
    rollbacks.sort_by_key(|(ms, _)| *ms);
    RunReport {
        run_id: run.run_id.clone(),
        runbook: run.runbook.clone(),
        status: run.status.as_str().into(),
        dry_run: run.dry_run,
        started_at: journal::rfc3339(run.started_ms),
        total_s: run.total_s(),
        expected_s: run.steps.iter().map(|s| s.info.expected_s).sum(),
        window: run.window.as_ref().and_then(|(a, b)| {
            run.window_s().map(|(actual, expected)| WindowReport {
                from: a.clone(),
                to: b.clone(),
                expected_s: expected,
                actual_s: actual,
            })
        }),
        steps,
        rollbacks: rollbacks.into_iter().map(|(_, r)| r).collect(),
        resumed: run.resumes,
        warnings: run.warnings.clone(),
        timeline,
    }
}

fn compare(runs: &[RunReport]) -> Comparison {
    // Steps in the order of the last drill, then any only earlier drills had.
    let mut ids: Vec<(String, f64)> = Vec::new();
    for r in runs.iter().rev() {
        for s in &r.steps {
            if !ids.iter().any(|(i, _)| i == &s.id) {
                ids.push((s.id.clone(), s.expected_s));
            }
        }
    }
    let last_order: Vec<String> = runs
        .last()
        .map(|r| r.steps.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    ids.sort_by_key(|(id, _)| {
        last_order
            .iter()
            .position(|x| x == id)
            .unwrap_or(usize::MAX)
    });
    let mut steps = Vec::new();
    let mut slower = Vec::new();
    let mut failed = Vec::new();
    for (id, expected) in ids {
        let per: Vec<Option<&StepReport>> = runs
            .iter()
            .map(|r| r.steps.iter().find(|s| s.id == id))
            .collect();
        let actual: Vec<Option<f64>> = per.iter().map(|s| s.and_then(|s| s.actual_s)).collect();
        let status: Vec<String> = per
            .iter()
            .map(|s| {
                s.map(|s| s.status.clone())
                    .unwrap_or_else(|| "absent".into())
            })
            .collect();
        // The first and the last drill in which the step succeeded: a failed attempt's
        // duration says nothing about the step's speed.
        let ok: Vec<f64> = actual
            .iter()
            .zip(&status)
            .filter(|(_, st)| *st == "ok")
            .filter_map(|(a, _)| *a)
            .collect();
        let trend = match (
            ok.first().copied(),
            ok.last().copied().filter(|_| ok.len() > 1),
        ) {
            (Some(a), Some(b)) if b > a * 1.1 && b - a > 1.0 => "slower",
            (Some(a), Some(b)) if b < a * 0.9 && a - b > 1.0 => "faster",
            (Some(_), Some(_)) => "same",
            _ => "n/a",
        };
        if trend == "slower" {
            slower.push(id.clone());
        }
        let failed_in: Vec<usize> = status
            .iter()
            .enumerate()
            .filter(|(_, s)| *s == "failed")
            .map(|(i, _)| i + 1)
            .collect();
        if !failed_in.is_empty() {
            failed.push((id.clone(), failed_in));
        }
        steps.push(StepTrend {
            id,
            expected_s: expected,
            actual_s: actual,
            status,
            trend: trend.into(),
        });
    }
    Comparison {
        steps,
        totals_s: runs.iter().map(|r| r.total_s).collect(),
        windows_s: runs
            .iter()
            .map(|r| r.window.as_ref().and_then(|w| w.actual_s))
            .collect(),
        slower,
        failed,
        clean_runs: runs
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.status == "completed" && r.steps.iter().all(|s| s.status != "failed")
            })
            .map(|(i, _)| i + 1)
            .collect(),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(human).unwrap_or_else(|| "—".into())
}

fn tone_of(status: &str) -> Tone {
    match status {
        "completed" | "ok" => Tone::Ok,
        "failed" | "rolled_back" => Tone::Bad,
        "incomplete" | "running" | "waiting" => Tone::Warn,
        _ => Tone::Neutral,
    }
}

fn status_label(s: &str) -> String {
    s.replace('_', " ").to_uppercase()
}

impl Report {
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }

    /// The plain-text report for a terminal.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        if let Some(c) = &self.comparison {
            let _ = writeln!(
                o,
                "{} drills of {}",
                self.runs.len(),
                self.runs.last().map(|r| r.runbook.as_str()).unwrap_or("")
            );
            for (i, r) in self.runs.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "  drill {}: run {} {}, {} (expected {}){}",
                    i + 1,
                    r.run_id,
                    r.status,
                    human(r.total_s),
                    human(r.expected_s),
                    r.window
                        .as_ref()
                        .map(|w| format!(", window {}", secs(w.actual_s)))
                        .unwrap_or_default()
                );
            }
            let mut header = vec!["step".to_string(), "expected".to_string()];
            header.extend((1..=self.runs.len()).map(|i| format!("drill {i}")));
            header.push("trend".into());
            let mut rows = vec![header];
            for s in &c.steps {
                let mut row = vec![s.id.clone(), human(s.expected_s)];
                for (a, st) in s.actual_s.iter().zip(&s.status) {
                    row.push(match st.as_str() {
                        "failed" => format!("✖ {}", secs(*a)),
                        "ok" => secs(*a),
                        other => other.replace('_', " "),
                    });
                }
                row.push(s.trend.clone());
                rows.push(row);
            }
            o.push_str(&columns(&rows));
            let _ = writeln!(
                o,
                "slower in its last successful drill than in its first: {}",
                if c.slower.is_empty() {
                    "none".into()
                } else {
                    c.slower.join(", ")
                }
            );
            let _ = writeln!(
                o,
                "failed: {}",
                if c.failed.is_empty() {
                    "none".into()
                } else {
                    c.failed
                        .iter()
                        .map(|(s, d)| {
                            format!(
                                "{s} (drill {})",
                                d.iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            );
            let _ = writeln!(
                o,
                "drills without an error: {}",
                if c.clean_runs.is_empty() {
                    "none".into()
                } else {
                    c.clean_runs
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            return o;
        }
        for r in &self.runs {
            let _ = writeln!(
                o,
                "drill {} — run {}: {}{}",
                r.runbook,
                r.run_id,
                r.status,
                if r.dry_run { " (dry run)" } else { "" }
            );
            let _ = writeln!(
                o,
                "  started {}, took {} (expected {})",
                r.started_at,
                human(r.total_s),
                human(r.expected_s)
            );
            if let Some(w) = &r.window {
                let _ = writeln!(
                    o,
                    "  window {} → {}: {} (expected {})",
                    w.from,
                    w.to,
                    secs(w.actual_s),
                    human(w.expected_s)
                );
            }
            let mut rows = vec![vec![
                "step".to_string(),
                "DRI".into(),
                "reviewer".into(),
                "expected".into(),
                "actual".into(),
                "status".into(),
            ]];
            for s in &r.steps {
                rows.push(vec![
                    s.id.clone(),
                    s.dri.clone(),
                    s.reviewer.clone(),
                    human(s.expected_s),
                    secs(s.actual_s),
                    format!(
                        "{}{}{}",
                        s.status.replace('_', " "),
                        if s.overrun { ", overran" } else { "" },
                        s.error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                ]);
            }
            o.push_str(&columns(&rows));
            for rb in &r.rollbacks {
                let _ = writeln!(
                    o,
                    "  rollback of {}: {} in {}",
                    rb.step,
                    match rb.ok {
                        Some(true) => "done",
                        Some(false) => "FAILED",
                        None => "did not finish",
                    },
                    secs(rb.actual_s)
                );
            }
            let _ = writeln!(o, "  timeline:");
            for (at, what) in &r.timeline {
                let s = at.max(0.0).round() as u64;
                let _ = writeln!(
                    o,
                    "    T+{}:{:02}:{:02}  {what}",
                    s / 3600,
                    (s % 3600) / 60,
                    s % 60
                );
            }
        }
        o
    }

    /// The shared report document (Markdown and HTML).
    pub fn document(&self) -> Document {
        let last = self.runs.last();
        let runbook = last.map(|r| r.runbook.clone()).unwrap_or_default();
        let mut d = Document::new(match &self.comparison {
            Some(_) => format!("Drills of {runbook}: {} compared", self.runs.len()),
            None => format!("Drill of {runbook}"),
        });
        if let Some(l) = last {
            d.badge = Some(Badge::new(status_label(&l.status), tone_of(&l.status)));
        }
        if let Some(c) = &self.comparison {
            for (i, r) in self.runs.iter().enumerate() {
                d.summary.push((
                    format!("Drill {}", i + 1),
                    Cell::text(format!(
                        "{} — {}, {} (expected {}){}",
                        r.run_id,
                        r.status.replace('_', " "),
                        human(r.total_s),
                        human(r.expected_s),
                        r.window
                            .as_ref()
                            .map(|w| format!(", window {}", secs(w.actual_s)))
                            .unwrap_or_default()
                    ))
                    .with_tone(tone_of(&r.status)),
                ));
            }
            let mut s = Section::new("Step by step");
            let mut header = vec!["step".to_string(), "expected".to_string()];
            header.extend((1..=self.runs.len()).map(|i| format!("drill {i}")));
            header.push("trend".into());
            let n = self.runs.len();
            let mut t = Table::new(header).align_right(1..=n + 1);
            for st in &c.steps {
                let mut row = vec![Cell::code(st.id.clone()), Cell::text(human(st.expected_s))];
                for (a, status) in st.actual_s.iter().zip(&st.status) {
                    row.push(match status.as_str() {
                        "ok" => Cell::text(secs(*a)).with_tone(
                            if a.is_some_and(|a| a > st.expected_s) {
                                Tone::Warn
                            } else {
                                Tone::Neutral
                            },
                        ),
                        "failed" => Cell::text(format!("failed {}", secs(*a))).with_tone(Tone::Bad),
                        other => Cell::text(other.replace('_', " ")),
                    });
                }
                row.push(
                    Cell::text(st.trend.clone()).with_tone(match st.trend.as_str() {
                        "slower" => Tone::Bad,
                        "faster" => Tone::Ok,
                        _ => Tone::Neutral,
                    }),
                );
                t.push(row);
            }
            let mut totals = vec![
                Cell::text("total"),
                Cell::text(human(
                    self.runs.first().map(|r| r.expected_s).unwrap_or(0.0),
                )),
            ];
            totals.extend(c.totals_s.iter().map(|v| Cell::text(human(*v))));
            t.push(totals);
            if c.windows_s.iter().any(Option::is_some) {
                let mut w = vec![
                    Cell::text("window"),
                    Cell::text(
                        last.and_then(|l| l.window.as_ref())
                            .map(|w| human(w.expected_s))
                            .unwrap_or_default(),
                    ),
                ];
                w.extend(c.windows_s.iter().map(|v| Cell::text(secs(*v))));
                t.push(w);
            }
            s.push(Block::Table(t));
            s.push(Block::Paragraph(format!(
                "Slower in its last successful drill than in its first: {}. Failed: {}. Drills without an error: {}.",
                if c.slower.is_empty() { "none".into() } else { c.slower.join(", ") },
                if c.failed.is_empty() { "none".into() } else {
                    c.failed.iter().map(|(s, d)| format!("{s} (drill {})", d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join("; ")
                },
                if c.clean_runs.is_empty() { "none".into() } else { c.clean_runs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ") }
            )));
            d.sections.push(s);
            let mut chart = Section::new("Step durations per drill");
            chart.push(Block::Chart(Chart {
                unit: "seconds".into(),
                series: (1..=n).map(|i| format!("drill {i}")).collect(),
                groups: c
                    .steps
                    .iter()
                    .map(|s| (s.id.clone(), s.actual_s.clone()))
                    .collect(),
            }));
            d.sections.push(chart);
        } else if let Some(r) = last {
            d.summary.push(("Run".into(), Cell::code(r.run_id.clone())));
            d.summary
                .push(("Started".into(), Cell::text(r.started_at.clone())));
            d.summary.push((
                "Took".into(),
                Cell::text(format!(
                    "{} (expected {})",
                    human(r.total_s),
                    human(r.expected_s)
                )),
            ));
            if let Some(w) = &r.window {
                d.summary.push((
                    format!("Window {} → {}", w.from, w.to),
                    Cell::text(format!(
                        "{} (expected {})",
                        secs(w.actual_s),
                        human(w.expected_s)
                    )),
                ));
            }
            if r.dry_run {
                d.summary.push((
                    "Dry run".into(),
                    Cell::text("yes: steps with side effects were skipped"),
                ));
            }
            if r.resumed > 0 {
                d.summary.push((
                    "Resumed".into(),
                    Cell::text(format!("{} time(s)", r.resumed)),
                ));
            }
            let mut chart = Section::new("Step durations");
            chart.push(Block::Chart(Chart {
                unit: "seconds".into(),
                series: vec!["expected".into(), "actual".into()],
                groups: r
                    .steps
                    .iter()
                    .map(|s| (s.id.clone(), vec![Some(s.expected_s), s.actual_s]))
                    .collect(),
            }));
            let mut more = Vec::new();
            let steps = run_sections(r, &mut more);
            d.sections.push(steps);
            d.sections.push(chart);
            d.sections.extend(more);
        }
        if self.comparison.is_some() {
            for (i, r) in self.runs.iter().enumerate() {
                // Side by side, the timelines would drown the comparison: steps only.
                let mut s = run_sections(r, &mut Vec::new());
                s.heading = format!("Drill {}: {}", i + 1, s.heading);
                d.sections.push(s);
            }
        }
        d
    }
}

/// The steps section of a run (returned) and its timeline and rollbacks (pushed to `more`).
fn run_sections(r: &RunReport, more: &mut Vec<Section>) -> Section {
    let mut s = Section::new(format!("Steps of run {}", r.run_id))
        .with_badge(Badge::new(status_label(&r.status), tone_of(&r.status)));
    let mut t = Table::new([
        "step", "title", "DRI", "reviewer", "expected", "actual", "status", "acted",
    ])
    .align_right([4, 5]);
    for st in &r.steps {
        t.push(vec![
            Cell::code(st.id.clone()),
            Cell::text(st.title.clone()),
            Cell::text(st.dri.clone()),
            Cell::text(st.reviewer.clone()),
            Cell::text(human(st.expected_s)),
            Cell::text(secs(st.actual_s)).with_tone(if st.overrun {
                Tone::Warn
            } else {
                Tone::Neutral
            }),
            Cell::text(format!(
                "{}{}{}",
                st.status.replace('_', " "),
                if st.attempts > 1 {
                    format!(" ({} attempts)", st.attempts)
                } else {
                    String::new()
                },
                st.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))
            .with_tone(tone_of(&st.status)),
            Cell::text(st.acted.join("; ")),
        ]);
    }
    s.push(Block::Table(t));
    if !r.rollbacks.is_empty() {
        s.push(Block::Heading("Rollbacks".into()));
        let mut t = Table::new(["step", "took", "result"]).align_right([1]);
        for rb in &r.rollbacks {
            t.push(vec![
                Cell::code(rb.step.clone()),
                Cell::text(secs(rb.actual_s)),
                match rb.ok {
                    Some(true) => Cell::text("rolled back").with_tone(Tone::Ok),
                    Some(false) => {
                        Cell::text(format!("FAILED: {}", rb.error.clone().unwrap_or_default()))
                            .with_tone(Tone::Bad)
                    }
                    None => Cell::text("did not finish").with_tone(Tone::Warn),
                },
            ]);
        }
        s.push(Block::Table(t));
    }
    if !r.timeline.is_empty() {
        let mut tl = Section::new(format!("Timeline of run {}", r.run_id));
        let mut t = Table::new(["T+", "event"]).align_right([0]);
        for (at, what) in &r.timeline {
            let secs = at.max(0.0).round() as u64;
            t.push(vec![
                Cell::text(format!(
                    "{}:{:02}:{:02}",
                    secs / 3600,
                    (secs % 3600) / 60,
                    secs % 60
                )),
                Cell::text(what.clone()),
            ]);
        }
        tl.push(Block::Table(t));
        more.push(tl);
    }
    s
}

/// Left-aligned text columns.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    for r in rows {
        o.push_str("  ");
        for (i, c) in r.iter().enumerate() {
            o.push_str(c);
            if i + 1 < r.len() {
                o.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        o.push('\n');
    }
    o
}
