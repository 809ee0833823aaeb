//! The replay report: statements grouped by class (fingerprint), differences by kind,
//! latency on both sides, the first samples with both answers; JSON, human text and a
//! shareable document (Markdown/HTML through `cutover-report`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::answer::{Answer, Kind};

/// Samples kept per class.
pub const SAMPLES: usize = 3;

/// One replayed statement, as the sessions report it to the collector.
pub(crate) enum Outcome {
    /// Dropped by `--read-only`.
    Skipped {
        fingerprint: Arc<str>,
    },
    Ran(Box<Ran>),
}

pub(crate) struct Ran {
    pub fingerprint: Arc<str>,
    pub nondeterministic: Option<String>,
    pub after_skipped_write: bool,
    pub kinds: Vec<Kind>,
    pub baseline_us: Option<u64>,
    pub target_us: u64,
    /// Only when something differs.
    pub sample: Option<Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub session: u64,
    pub sql: String,
    pub kinds: Vec<Kind>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub after_skipped_write: bool,
    /// The baseline's answer, or what the capture saw (`captured`).
    pub baseline: Option<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured: Option<cutover_workload::Response>,
    pub target: Answer,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClassLatency {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Latency>,
    pub target: Latency,
    /// target p50 / baseline p50 (and p99): above 1, the target is slower.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_p99: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub fingerprint: String,
    /// Statements of this class replayed.
    pub count: u64,
    /// Of them, answered differently (not counting nondeterministic ones).
    pub diffs: u64,
    /// Differences by kind (a statement can differ in several ways).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Dropped by `--read-only`.
    pub skipped: u64,
    /// Why answers of this class may differ between runs; its differences are in `noise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nondeterministic: Option<String>,
    /// Differences of a nondeterministic class (not counted in `diffs`).
    pub noise: u64,
    /// Differences of reads that followed a write dropped by `--read-only` in the same
    /// transaction (counted in `diffs`).
    pub after_skipped_write: u64,
    pub latency_ms: ClassLatency,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Lag {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    /// Statements in the workload (queries and executes).
    pub statements: u64,
    pub replayed: u64,
    pub skipped: u64,
    pub statements_with_diffs: u64,
    /// Differences of nondeterministic statements, reported apart.
    pub noise: u64,
    pub sessions: u64,
    /// `baseline` or `capture` (what the target was compared with) or `none`.
    pub compared_with: &'static str,
    pub read_only: bool,
    /// `max` or the factor.
    pub speed: String,
    /// How late commands started against the captured timing (0 at `max`), measured at the
    /// commands whose captured time differs from their session's previous command.
    pub lag: Lag,
    pub elapsed_s: f64,
    /// The captured workload's duration.
    pub workload_s: f64,
    /// Sessions that could not go on (connection lost), with why.
    pub session_errors: Vec<String>,
    pub interrupted: bool,
    /// Protocol-level differences by kind, with what each means for drivers and pools.
    pub client_compatibility: Vec<CompatReport>,
    /// Worst classes first: most differences, then slowest target relative to baseline.
    pub classes: Vec<ClassReport>,
}

/// One kind of protocol-level difference across the replay.
#[derive(Clone, Debug, Serialize)]
pub struct CompatReport {
    pub kind: &'static str,
    /// Statements that differ in this way.
    pub statements: u64,
    /// Statement classes that do.
    pub classes: u64,
    /// A few of them: class and what differs.
    pub examples: Vec<CompatExample>,
    /// What it means for applications, drivers and connection pools.
    pub meaning: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompatExample {
    pub fingerprint: String,
    pub detail: String,
}

/// Examples kept per kind.
const COMPAT_EXAMPLES: usize = 3;

#[derive(Default)]
struct CompatAgg {
    statements: u64,
    classes: std::collections::HashSet<Arc<str>>,
    examples: Vec<CompatExample>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.statements_with_diffs > 0 {
            1
        } else {
            0
        }
    }
}

struct ClassAgg {
    count: u64,
    diffs: u64,
    kinds: BTreeMap<&'static str, u64>,
    skipped: u64,
    nondeterministic: Option<String>,
    noise: u64,
    after_skipped_write: u64,
    baseline: Histogram<u64>,
    target: Histogram<u64>,
    samples: Vec<Sample>,
    first_seen: u64,
}

impl ClassAgg {
    fn new(first_seen: u64) -> ClassAgg {
        ClassAgg {
            count: 0,
            diffs: 0,
            kinds: BTreeMap::new(),
            skipped: 0,
            nondeterministic: None,
            noise: 0,
            after_skipped_write: 0,
            baseline: hist(),
            target: hist(),
            samples: Vec::new(),
            first_seen,
        }
    }
}

pub(crate) fn hist() -> Histogram<u64> {
    // Auto-resizing, 2 significant digits: 1 % resolution at any latency.
    Histogram::new(2).unwrap_or_else(|_| unreachable_hist())
}

fn unreachable_hist() -> Histogram<u64> {
    // `new(2)` only fails for sigfig > 5; keep a bounded fallback rather than panic.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap_or_else(|_| std::process::abort())
}

/// Collects outcomes into per-class totals; memory grows with classes, not statements.
#[derive(Default)]
pub(crate) struct Collector {
    classes: HashMap<Arc<str>, ClassAgg>,
    compat: BTreeMap<Kind, CompatAgg>,
    pub statements: u64,
    pub replayed: u64,
    pub skipped: u64,
    pub with_diffs: u64,
    pub noise: u64,
}

impl Collector {
    pub fn add(&mut self, o: Outcome) {
        self.statements += 1;
        let n = self.classes.len() as u64;
        match o {
            Outcome::Skipped { fingerprint } => {
                self.skipped += 1;
                self.classes
                    .entry(fingerprint)
                    .or_insert_with(|| ClassAgg::new(n))
                    .skipped += 1;
            }
            Outcome::Ran(r) => {
                self.replayed += 1;
                let c = self
                    .classes
                    .entry(r.fingerprint.clone())
                    .or_insert_with(|| ClassAgg::new(n));
                c.count += 1;
                c.nondeterministic = r.nondeterministic.clone();
                let _ = c.target.record(r.target_us.max(1));
                if let Some(b) = r.baseline_us {
                    let _ = c.baseline.record(b.max(1));
                }
                if r.kinds.is_empty() {
                    return;
                }
                if r.nondeterministic.is_some() {
                    c.noise += 1;
                    self.noise += 1;
                } else {
                    c.diffs += 1;
                    self.with_diffs += 1;
                    for k in &r.kinds {
                        *c.kinds.entry(k.name()).or_default() += 1;
                    }
                    if r.after_skipped_write {
                        c.after_skipped_write += 1;
                    }
                }
                if r.nondeterministic.is_none() {
                    if let Some(s) = &r.sample {
                        let (base, base_cols, side) = match (&s.baseline, &s.captured) {
                            (Some(b), _) => (b.clone(), b.column_meta(), "baseline"),
                            (None, Some(c)) => {
                                let (a, cols) = crate::protocol::from_captured(c);
                                (a, cols, "capture")
                            }
                            (None, None) => (Answer::default(), Vec::new(), "baseline"),
                        };
                        let target_cols = s.target.column_meta();
                        for d in crate::protocol::details(
                            &base,
                            &base_cols,
                            &s.target,
                            &target_cols,
                            side,
                        ) {
                            if !r.kinds.contains(&d.kind) {
                                continue;
                            }
                            let agg = self.compat.entry(d.kind).or_default();
                            if agg
                                .examples
                                .iter()
                                .all(|e| *e.fingerprint != *r.fingerprint)
                                && agg.examples.len() < COMPAT_EXAMPLES
                            {
                                agg.examples.push(CompatExample {
                                    fingerprint: r.fingerprint.to_string(),
                                    detail: d.detail,
                                });
                            }
                            agg.classes.insert(r.fingerprint.clone());
                        }
                        for k in &r.kinds {
                            if let Some(agg) = self.compat.get_mut(k) {
                                agg.statements += 1;
                            }
                        }
                    }
                }
                if c.samples.len() < SAMPLES {
                    if let Some(s) = r.sample {
                        c.samples.push(s);
                    }
                }
            }
        }
    }

    /// The protocol-level differences, in the order of [`crate::protocol::KINDS`].
    pub fn compatibility(&self) -> Vec<CompatReport> {
        crate::protocol::KINDS
            .iter()
            .filter_map(|k| {
                let agg = self.compat.get(k)?;
                Some(CompatReport {
                    kind: k.name(),
                    statements: agg.statements,
                    classes: agg.classes.len() as u64,
                    examples: agg.examples.clone(),
                    meaning: crate::protocol::meaning(*k),
                })
            })
            .collect()
    }

    pub fn classes(self) -> Vec<ClassReport> {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut v: Vec<(u64, ClassReport)> = self
            .classes
            .into_iter()
            .map(|(fingerprint, c)| {
                let target = Latency {
                    p50: ms(&c.target, 0.5),
                    p99: ms(&c.target, 0.99),
                };
                let baseline = (!c.baseline.is_empty()).then(|| Latency {
                    p50: ms(&c.baseline, 0.5),
                    p99: ms(&c.baseline, 0.99),
                });
                let ratio = |t: f64, b: f64| (b > 0.0).then(|| (t / b * 100.0).round() / 100.0);
                let latency_ms = ClassLatency {
                    ratio_p50: baseline.as_ref().and_then(|b| ratio(target.p50, b.p50)),
                    ratio_p99: baseline.as_ref().and_then(|b| ratio(target.p99, b.p99)),
                    baseline,
                    target,
                };
                (
                    c.first_seen,
                    ClassReport {
                        fingerprint: fingerprint.to_string(),
                        count: c.count,
                        diffs: c.diffs,
                        kinds: c.kinds,
                        skipped: c.skipped,
                        nondeterministic: c.nondeterministic,
                        noise: c.noise,
                        after_skipped_write: c.after_skipped_write,
                        latency_ms,
                        samples: c.samples,
                    },
                )
            })
            .collect();
        v.sort_by(|(fa, a), (fb, b)| {
            b.diffs
                .cmp(&a.diffs)
                .then_with(|| {
                    let r = |c: &ClassReport| c.latency_ms.ratio_p99.unwrap_or(0.0);
                    r(b).partial_cmp(&r(a)).unwrap_or(std::cmp::Ordering::Equal)
                })
                .then_with(|| fa.cmp(fb))
        });
        v.into_iter().map(|(_, c)| c).collect()
    }
}

/// The human summary.
pub fn human(r: &Report) -> String {
    let mut out = format!(
        "replay: {} statements, {} replayed, {} skipped, {} sessions, compared with {}\n",
        r.statements, r.replayed, r.skipped, r.sessions, r.compared_with
    );
    out.push_str(&format!(
        "statements with differences: {}   (nondeterministic, reported apart: {})\n",
        r.statements_with_diffs, r.noise
    ));
    out.push_str(&format!(
        "speed {}: {:.1} s for a {:.1} s workload; scheduling lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.speed, r.elapsed_s, r.workload_s, r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms
    ));
    if !r.client_compatibility.is_empty() {
        out.push_str("\nclient compatibility (what drivers and pools would notice):\n");
        for k in &r.client_compatibility {
            out.push_str(&format!(
                "  {:<14} {} statements in {} classes",
                k.kind, k.statements, k.classes
            ));
            if let Some(e) = k.examples.first() {
                out.push_str(&format!(": {}", one_line(&e.detail, 100)));
            }
            out.push('\n');
        }
    }
    for c in r.classes.iter().filter(|c| c.diffs > 0) {
        let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!(
            "\n  {} of {}  {}\n    {}\n",
            c.diffs,
            c.count,
            kinds.join(", "),
            c.fingerprint
        ));
        if let Some(s) = c.samples.first() {
            out.push_str(&format!(
                "    e.g. session {}: {}\n",
                s.session,
                one_line(&s.sql, 160)
            ));
            let base = s
                .baseline
                .as_ref()
                .map(Answer::brief)
                .or_else(|| s.captured.as_ref().map(captured_brief))
                .unwrap_or_default();
            out.push_str(&format!(
                "      baseline: {}\n      target:   {}\n",
                one_line(&base, 160),
                one_line(&s.target.brief(), 160)
            ));
            if s.after_skipped_write {
                out.push_str("      (after a skipped write)\n");
            }
        }
    }
    for c in r.classes.iter().filter(|c| c.noise > 0) {
        out.push_str(&format!(
            "\n  nondeterministic ({}): {} of {} differ: {}\n",
            c.nondeterministic.as_deref().unwrap_or("?"),
            c.noise,
            c.count,
            c.fingerprint
        ));
    }
    for e in &r.session_errors {
        out.push_str(&format!("warning: {e}\n"));
    }
    if r.interrupted {
        out.push_str("interrupted: the report covers what was replayed\n");
    }
    out
}

pub(crate) fn captured_brief(r: &cutover_workload::Response) -> String {
    if let Some(e) = &r.error {
        return format!("ERROR {} (captured)", e.code);
    }
    let mut parts = Vec::new();
    if let Some(n) = r.rows {
        parts.push(format!("{n} rows"));
    }
    if let Some(n) = r.affected_rows {
        parts.push(format!("{n} affected"));
    }
    format!("{} (captured)", parts.join(", "))
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}
