//! The replay report as a document to share (Markdown, HTML): the verdict, the totals, the
//! latency charts, then every class with differences, worst first, with both answers side
//! by side; nondeterministic classes last.

use cutover_report::{
    Badge, Bars, Block, Cell, Compare, CompareRow, Document, Section, Table, Tone,
};

use crate::answer::{captured_brief, Answer};
use crate::report::{ms_text, ClassLatency, ClassReport, RankedClass, Report, Sample};

/// Classes drawn in the latency charts.
const CHARTED: usize = 15;

pub fn document(r: &Report, target: &str, baseline: Option<&str>) -> Document {
    let mut d = Document::new("cutover replay");
    d.badge = Some(if r.statements_with_diffs > 0 {
        Badge::new("DIFFERENT", Tone::Bad)
    } else if r.interrupted {
        Badge::new("INTERRUPTED", Tone::Warn)
    } else if r.statements > 0 && r.replayed == 0 {
        Badge::new("NOTHING COMPARED", Tone::Bad)
    } else if r.not_compared > 0 {
        Badge::new("NOT ALL COMPARED", Tone::Warn)
    } else {
        Badge::new("SAME ANSWERS", Tone::Ok)
    });
    d.summary.push(("Target".into(), Cell::code(target)));
    if let Some(b) = baseline {
        d.summary.push(("Baseline".into(), Cell::code(b)));
    }
    d.summary.push((
        "Statements".into(),
        Cell::text(format!(
            "{} in the workload: {} compared, {} nondeterministic, {} not sent (--read-only: they can change data), {} not compared{}",
            r.statements,
            r.compared,
            r.nondeterministic,
            r.skipped,
            r.not_compared,
            if r.unlocked > 0 {
                format!("; {} locking reads compared without their lock", r.unlocked)
            } else {
                String::new()
            }
        ))
        .with_tone(if r.not_compared > 0 && !r.allow_skipped {
            Tone::Bad
        } else {
            Tone::Ok
        }),
    ));
    d.summary.push((
        "Differences".into(),
        Cell::text(format!(
            "{} statements answered differently; {} more in nondeterministic classes",
            r.statements_with_diffs, r.noise
        ))
        .with_tone(if r.statements_with_diffs > 0 {
            Tone::Bad
        } else {
            Tone::Ok
        }),
    ));
    d.summary.push((
        "Pace".into(),
        Cell::text(format!(
            "speed {}, {} sessions, {:.1} s for a {:.1} s workload; scheduling lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.speed, r.sessions, r.elapsed_s, r.workload_s, r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms
        )),
    ));

    let l = &r.latency_ms;
    d.summary.push((
        "Latency".into(),
        Cell::text(match &l.baseline {
            Some(b) => format!(
                "baseline p50 {}, p99 {}; target p50 {}, p99 {}{}",
                ms_text(b.p50),
                ms_text(b.p99),
                ms_text(l.target.p50),
                ms_text(l.target.p99),
                l.ratio_p99
                    .map(|x| format!(" (p99 {x:.2}x)"))
                    .unwrap_or_default()
            ),
            None => format!(
                "target p50 {}, p99 {}",
                ms_text(l.target.p50),
                ms_text(l.target.p99)
            ),
        })
        .with_tone(if r.ranking.slowdowns.is_empty() {
            Tone::Neutral
        } else {
            Tone::Bad
        }),
    ));

    // What a latency review starts from: the slowdowns, explained, then the classes that
    // cost most and run most.
    let rk = &r.ranking;
    if r.latency_ms.baseline.is_some() {
        let mut s = Section::new("Slowdowns");
        s = s.with_badge(if rk.slowdowns.is_empty() {
            Badge::new("NONE", Tone::Ok)
        } else {
            Badge::new(
                match rk.slowdowns.len() {
                    1 => "1 class".to_string(),
                    n => format!("{n} classes"),
                },
                Tone::Bad,
            )
        });
        s.push(Block::Paragraph(format!(
            "Classes run at least {} times whose p99 on the target is at least {}x the baseline's and at least {} ms, most time lost first.",
            rk.min_executions, rk.slowdown_ratio, rk.slowdown_min_p99_ms
        )));
        if !rk.slowdowns.is_empty() {
            let mut t = ranked_table(&rk.slowdowns);
            t.header.push("why".into());
            for (row, c) in t.rows.iter_mut().zip(&rk.slowdowns) {
                row.push(
                    Cell::text(c.explanation.clone().unwrap_or_default()).with_tone(Tone::Bad),
                );
            }
            s.push(Block::Table(t));
        }
        d.sections.push(s);
    }
    if !rk.by_total_time.is_empty() {
        let mut s = Section::new("Classes by total time on the target");
        s.push(Block::Table(ranked_table(&rk.by_total_time)));
        d.sections.push(s);
        let mut s = Section::new("Classes by executions");
        s.push(Block::Table(ranked_table(&rk.by_count)));
        d.sections.push(s);
    }

    if !r.not_compared_by_reason.is_empty() {
        let mut s = Section::new("Not compared");
        s = s.with_badge(if r.not_compared == 0 {
            Badge::new("only writes left out by --read-only", Tone::Ok)
        } else if r.allow_skipped {
            Badge::new(
                format!("{} accepted (--allow-skipped)", r.not_compared),
                Tone::Warn,
            )
        } else {
            Badge::new(format!("{} statements", r.not_compared), Tone::Bad)
        });
        let mut t = Table::new(["reason", "statements", "counts", "what it means", "example"])
            .align_right([1]);
        for x in &r.not_compared_by_reason {
            let example = x
                .examples
                .first()
                .map(|e| {
                    format!(
                        "session {}: {} — {}",
                        e.session,
                        short(&e.sql, 100),
                        e.detail
                    )
                })
                .unwrap_or_default();
            t.push(vec![
                Cell::text(x.reason.name()),
                Cell::text(x.statements.to_string()),
                Cell::text(if x.counts { "yes" } else { "no (expected)" }).with_tone(if x.counts {
                    Tone::Bad
                } else {
                    Tone::Ok
                }),
                Cell::text(x.reason.meaning()),
                Cell::text(example),
            ]);
        }
        s.push(Block::Table(t));
        d.sections.push(s);
    }

    let mut overview = Section::new("Classes");
    overview.push(Block::Paragraph(
        "Classes with differences first, then by total time on the target.".into(),
    ));
    let mut t = Table::new([
        "class",
        "count",
        "diffs",
        "kinds",
        "not sent",
        "not compared",
        "total ms",
        "baseline p50",
        "baseline p99",
        "target p50",
        "target p99",
        "p99 ratio",
    ])
    .align_right([1, 2, 4, 5, 6, 7, 8, 9, 10, 11]);
    for c in &r.classes {
        let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let mut row = vec![
            Cell::code(c.fingerprint.clone()),
            Cell::text(c.count.to_string()),
            Cell::text(c.diffs.to_string()).with_tone(if c.diffs > 0 {
                Tone::Bad
            } else {
                Tone::Ok
            }),
            Cell::text(kinds.join(", ")),
            Cell::text(c.skipped.to_string()),
            Cell::text(c.not_compared.to_string()),
        ];
        row.extend(latency_cells(&c.latency_ms, c.slowdown.is_some()));
        t.push(row);
    }
    overview.push(Block::Table(t));
    d.sections.push(overview);

    // What a driver or a pool would notice: protocol-level differences by kind.
    let mut s = Section::new("Client compatibility");
    if r.client_compatibility.is_empty() {
        s = s.with_badge(Badge::new("SAME", Tone::Ok));
        s.push(Block::Paragraph(
            "Column definitions (type, flags, decimals, collation), status flags, warnings, \
             session-state changes, affected rows and last insert ids were the same for every \
             statement compared."
                .into(),
        ));
    } else {
        s = s.with_badge(Badge::new(
            format!("{} kinds differ", r.client_compatibility.len()),
            Tone::Bad,
        ));
        let mut t = Table::new(["kind", "statements", "classes", "example", "what it means"])
            .align_right([1, 2]);
        for k in &r.client_compatibility {
            let example = k
                .examples
                .first()
                .map(|e| format!("{} — {}", e.detail, short(&e.fingerprint, 80)))
                .unwrap_or_default();
            t.push(vec![
                Cell::text(k.kind),
                Cell::text(k.statements.to_string()),
                Cell::text(k.classes.to_string()),
                Cell::text(example),
                Cell::text(k.meaning),
            ]);
        }
        s.push(Block::Table(t));
    }
    d.sections.push(s);

    d.sections.push(concurrency_section(&r.concurrency));

    let charted: Vec<&ClassReport> = r
        .classes
        .iter()
        .filter(|c| c.latency_ms.baseline.is_some() && c.count > 0)
        .take(CHARTED)
        .collect();
    if !charted.is_empty() {
        let mut s = Section::new("Latency, baseline vs target");
        for (q, name) in [(0, "p50"), (1, "p99")] {
            s.push(Block::Bars(Bars {
                unit: format!("{name} latency (ms)"),
                left: "baseline".into(),
                right: "target".into(),
                rows: charted
                    .iter()
                    .map(|c| {
                        let b = c.latency_ms.baseline.clone().unwrap_or_default();
                        let t = &c.latency_ms.target;
                        let (bv, tv) = if q == 0 {
                            (b.p50, t.p50)
                        } else {
                            (b.p99, t.p99)
                        };
                        (short(&c.fingerprint, 80), bv, tv)
                    })
                    .collect(),
            }));
        }
        d.sections.push(s);
    }

    for c in r.classes.iter().filter(|c| c.diffs > 0) {
        let mut s = Section::new(short(&c.fingerprint, 120)).with_badge(Badge::new(
            format!("{} of {} executions differ", c.diffs, c.count),
            Tone::Bad,
        ));
        s.push(Block::Code(c.fingerprint.clone()));
        if c.after_skipped_write > 0 {
            s.push(Block::Paragraph(format!(
                "{} of these followed a write skipped by --read-only in the same transaction.",
                c.after_skipped_write
            )));
        }
        for sample in &c.samples {
            sample_blocks(&mut s, sample);
        }
        d.sections.push(s);
    }
    let noisy: Vec<&ClassReport> = r.classes.iter().filter(|c| c.noise > 0).collect();
    if !noisy.is_empty() {
        let mut s = Section::new("Nondeterministic statements (not counted as differences)");
        let mut t = Table::new(["class", "why", "differ", "count"]).align_right([2, 3]);
        for c in noisy {
            t.push(vec![
                Cell::code(c.fingerprint.clone()),
                Cell::text(c.nondeterministic.clone().unwrap_or_default()),
                Cell::text(c.noise.to_string()),
                Cell::text(c.count.to_string()),
            ]);
        }
        s.push(Block::Table(t));
        d.sections.push(s);
    }
    if !r.session_errors.is_empty() {
        let mut s =
            Section::new("Sessions that stopped").with_badge(Badge::new("WARNING", Tone::Warn));
        s.push(Block::Code(r.session_errors.join("\n")));
        d.sections.push(s);
    }
    d
}

fn sample_blocks(s: &mut Section, sample: &Sample) {
    let kinds: Vec<&str> = sample.kinds.iter().map(|k| k.name()).collect();
    s.push(Block::Heading(format!(
        "session {}: {}{}",
        sample.session,
        kinds.join(", "),
        if sample.after_skipped_write {
            " (after a skipped write)"
        } else {
            ""
        }
    )));
    s.push(Block::Code(sample.sql.clone()));
    let left = match (&sample.baseline, &sample.captured) {
        (Some(b), _) => Some(b.clone()),
        _ => None,
    };
    let mut rows = vec![CompareRow {
        labels: vec![Cell::text("answer")],
        left: Cell::text(
            left.as_ref()
                .map(Answer::brief)
                .or_else(|| sample.captured.as_ref().map(captured_brief))
                .unwrap_or_default(),
        ),
        right: Cell::text(sample.target.brief()).with_tone(Tone::Bad),
    }];
    if let Some(b) = &left {
        let t = &sample.target;
        if b.columns != t.columns {
            rows.push(CompareRow {
                labels: vec![Cell::text("columns")],
                left: Cell::code(b.columns.join(", ")),
                right: Cell::code(t.columns.join(", ")).with_tone(Tone::Bad),
            });
        }
        let n = b.sample.len().max(t.sample.len());
        for i in 0..n {
            let show = |a: &Answer| {
                a.sample
                    .get(i)
                    .map(|r| {
                        r.iter()
                            .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    })
                    .unwrap_or_default()
            };
            let (l, rr) = (show(b), show(t));
            let cell = Cell::code(rr.clone());
            rows.push(CompareRow {
                labels: vec![Cell::text(format!("row {}", i + 1))],
                left: Cell::code(l.clone()),
                right: if l != rr {
                    cell.with_tone(Tone::Bad)
                } else {
                    cell
                },
            });
        }
        if b.warnings != t.warnings {
            rows.push(CompareRow {
                labels: vec![Cell::text("warnings")],
                left: Cell::text(b.warnings.to_string()),
                right: Cell::text(t.warnings.to_string()).with_tone(Tone::Bad),
            });
        }
    }
    s.push(Block::Compare(Compare {
        labels: vec!["".into()],
        left: if sample.baseline.is_some() {
            "baseline".into()
        } else {
            "captured".into()
        },
        right: "target".into(),
        rows,
    }));
}

/// Total, baseline p50/p99, target p50/p99 and the p99 ratio, highlighted for a slowdown.
fn latency_cells(l: &ClassLatency, slow: bool) -> Vec<Cell> {
    let num = |v: f64| Cell::text(format!("{v:.3}"));
    let (bp50, bp99) = match &l.baseline {
        Some(b) => (num(b.p50), num(b.p99)),
        None => (Cell::text("—"), Cell::text("—")),
    };
    let tone = if slow { Tone::Bad } else { Tone::Neutral };
    vec![
        Cell::text(format!("{:.1}", l.target_total)),
        bp50,
        bp99,
        num(l.target.p50),
        num(l.target.p99).with_tone(tone),
        Cell::text(l.ratio_p99.map(|x| format!("{x:.2}x")).unwrap_or_default()).with_tone(tone),
    ]
}

/// Ranked classes: the class, executions, then [`latency_cells`].
fn ranked_table(classes: &[RankedClass]) -> Table {
    let mut t = Table::new([
        "class",
        "count",
        "total ms",
        "baseline p50",
        "baseline p99",
        "target p50",
        "target p99",
        "p99 ratio",
    ])
    .align_right(1..=7);
    for c in classes {
        let slow = crate::report::is_slowdown(c.count, &c.latency_ms);
        let mut row = vec![
            Cell::code(short(&c.fingerprint, 160)),
            Cell::text(c.count.to_string()),
        ];
        row.extend(latency_cells(&c.latency_ms, slow));
        t.push(row);
    }
    t
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// Concurrency errors one side had and the other did not, by side and code, each with its
/// meaning, one example in its context and the likely fix.
fn concurrency_section(c: &crate::concurrency::ConcurrencyReport) -> Section {
    let mut s = Section::new("Concurrency");
    if c.errors == 0 {
        s = s.with_badge(Badge::new("NONE", Tone::Ok));
        s.push(Block::Paragraph(
            "No lock wait timeout, deadlock, write conflict or other concurrency error on one \
             side that the other side did not have."
                .into(),
        ));
        return s;
    }
    s = s.with_badge(Badge::new(format!("{} errors", c.errors), Tone::Bad));
    let mut t = Table::new([
        "side",
        "code",
        "class",
        "errors",
        "what it means",
        "likely fix",
    ])
    .align_right([3]);
    for x in &c.by_code {
        t.push(vec![
            Cell::text(x.side),
            Cell::text(format!("{} {}", x.code, x.name)),
            Cell::text(x.class),
            Cell::text(x.errors.to_string()),
            Cell::text(x.meaning),
            Cell::text(x.fix),
        ]);
    }
    s.push(Block::Table(t));
    for x in &c.by_code {
        s.push(Block::Heading(format!(
            "{} {} on the {}: an example",
            x.code, x.name, x.side
        )));
        s.push(Block::Code(crate::concurrency::explain(&x.example, "")));
        s.push(Block::Paragraph(format!("Source: {}.", x.source)));
    }
    s
}
