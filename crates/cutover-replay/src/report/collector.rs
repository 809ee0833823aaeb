//! The collector: every statement's outcome added to per-class totals (counts, kinds,
//! latency histograms, samples), the reasons statements were not compared and the
//! protocol-level differences; memory grows with classes, not statements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::{
    explain_slowdown, is_slowdown, ClassLatency, ClassReport, CompatExample, CompatReport, Latency,
    NotComparedExample, Reason, ReasonReport, Sample, SAMPLES,
};
use crate::answer::{from_captured, Answer};
use crate::compare::Kind;

/// A statement that was not compared, as the collector gets it.
pub(crate) struct NotCompared<'a> {
    pub fingerprint: &'a Arc<str>,
    pub reason: Reason,
    pub session: u64,
    pub sql: &'a str,
    pub detail: &'a str,
}

/// One replayed statement, as the sessions report it to the collector.
pub(crate) enum Outcome {
    Ran(Box<Ran>),
}

pub(crate) struct Ran {
    pub fingerprint: Arc<str>,
    pub nondeterministic: Option<String>,
    pub after_skipped_write: bool,
    /// A locking read sent without its lock (`--read-only`).
    pub unlocked: bool,
    pub kinds: Vec<Kind>,
    pub baseline_us: Option<u64>,
    pub target_us: u64,
    /// Only when something differs.
    pub sample: Option<Sample>,
}

/// Examples kept per reason.
const REASON_EXAMPLES: usize = 3;

/// Examples kept per kind.
const COMPAT_EXAMPLES: usize = 3;

#[derive(Default)]
struct CompatAgg {
    statements: u64,
    classes: std::collections::HashSet<Arc<str>>,
    examples: Vec<CompatExample>,
}

struct ClassAgg {
    count: u64,
    diffs: u64,
    kinds: BTreeMap<&'static str, u64>,
    skipped: u64,
    not_compared: u64,
    unlocked: u64,
    nondeterministic: Option<String>,
    noise: u64,
    after_skipped_write: u64,
    baseline: Histogram<u64>,
    target: Histogram<u64>,
    baseline_total_us: u64,
    target_total_us: u64,
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
            not_compared: 0,
            unlocked: 0,
            nondeterministic: None,
            noise: 0,
            after_skipped_write: 0,
            baseline: hist(),
            target: hist(),
            baseline_total_us: 0,
            target_total_us: 0,
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
    reasons: BTreeMap<Reason, (u64, Vec<NotComparedExample>)>,
    pub concurrency: crate::concurrency::Collected,
    pub statements: u64,
    pub compared: u64,
    pub nondeterministic: u64,
    pub skipped: u64,
    pub not_compared: u64,
    pub unlocked: u64,
    pub with_diffs: u64,
    pub noise: u64,
    /// Every statement's latency, for the summary.
    all_target: Option<Histogram<u64>>,
    all_baseline: Option<Histogram<u64>>,
    all_target_total_us: u64,
    all_baseline_total_us: u64,
}

impl Collector {
    /// Latency over every statement that ran, on both sides.
    pub fn latency(&self) -> ClassLatency {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let target = self.all_target.as_ref();
        let baseline = self.all_baseline.as_ref().filter(|h| !h.is_empty());
        let t = Latency {
            p50: target.map(|h| ms(h, 0.5)).unwrap_or(0.0),
            p99: target.map(|h| ms(h, 0.99)).unwrap_or(0.0),
        };
        let b = baseline.map(|h| Latency {
            p50: ms(h, 0.5),
            p99: ms(h, 0.99),
        });
        let ratio = |t: f64, b: f64| (b > 0.0).then(|| (t / b * 100.0).round() / 100.0);
        ClassLatency {
            ratio_p50: b.as_ref().and_then(|b| ratio(t.p50, b.p50)),
            ratio_p99: b.as_ref().and_then(|b| ratio(t.p99, b.p99)),
            target_total: self.all_target_total_us as f64 / 1000.0,
            baseline_total: baseline.map(|_| self.all_baseline_total_us as f64 / 1000.0),
            baseline: b,
            target: t,
        }
    }

    /// A statement not compared, with why.
    pub fn not_compared(&mut self, x: NotCompared<'_>) {
        self.statements += 1;
        let n = self.classes.len() as u64;
        let c = self
            .classes
            .entry(x.fingerprint.clone())
            .or_insert_with(|| ClassAgg::new(n));
        if x.reason.counts() {
            self.not_compared += 1;
            c.not_compared += 1;
        } else {
            self.skipped += 1;
            c.skipped += 1;
        }
        let (count, examples) = self.reasons.entry(x.reason).or_default();
        *count += 1;
        if examples.len() < REASON_EXAMPLES {
            examples.push(NotComparedExample {
                session: x.session,
                sql: x.sql.chars().take(2000).collect(),
                detail: x.detail.to_string(),
            });
        }
    }

    /// The statements not compared, by reason, in the order of [`Reason::ALL`].
    pub fn reasons(&self) -> Vec<ReasonReport> {
        Reason::ALL
            .iter()
            .filter_map(|r| {
                let (n, examples) = self.reasons.get(r)?;
                Some(ReasonReport {
                    reason: *r,
                    meaning: r.meaning(),
                    counts: r.counts(),
                    statements: *n,
                    examples: examples.clone(),
                })
            })
            .collect()
    }

    pub fn add(&mut self, o: Outcome) {
        self.statements += 1;
        let n = self.classes.len() as u64;
        match o {
            Outcome::Ran(r) => {
                if r.nondeterministic.is_some() {
                    self.nondeterministic += 1;
                } else {
                    self.compared += 1;
                }
                let c = self
                    .classes
                    .entry(r.fingerprint.clone())
                    .or_insert_with(|| ClassAgg::new(n));
                c.count += 1;
                if r.unlocked {
                    c.unlocked += 1;
                    self.unlocked += 1;
                }
                c.nondeterministic = r.nondeterministic.clone();
                let _ = c.target.record(r.target_us.max(1));
                c.target_total_us = c.target_total_us.saturating_add(r.target_us);
                self.all_target_total_us = self.all_target_total_us.saturating_add(r.target_us);
                let _ = self
                    .all_target
                    .get_or_insert_with(hist)
                    .record(r.target_us.max(1));
                if let Some(b) = r.baseline_us {
                    let _ = c.baseline.record(b.max(1));
                    c.baseline_total_us = c.baseline_total_us.saturating_add(b);
                    self.all_baseline_total_us = self.all_baseline_total_us.saturating_add(b);
                    let _ = self.all_baseline.get_or_insert_with(hist).record(b.max(1));
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
                                let (a, cols) = from_captured(c);
                                (a, cols, "capture")
                            }
                            (None, None) => (Answer::default(), Vec::new(), "baseline"),
                        };
                        let target_cols = s.target.column_meta();
                        for d in
                            crate::compat::details(&base, &base_cols, &s.target, &target_cols, side)
                        {
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

    /// The protocol-level differences, in the order of [`crate::compat::KINDS`].
    pub fn compatibility(&self) -> Vec<CompatReport> {
        crate::compat::KINDS
            .iter()
            .filter_map(|k| {
                let agg = self.compat.get(k)?;
                Some(CompatReport {
                    kind: k.name(),
                    statements: agg.statements,
                    classes: agg.classes.len() as u64,
                    examples: agg.examples.clone(),
                    meaning: crate::compat::meaning(*k),
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
                    target_total: c.target_total_us as f64 / 1000.0,
                    baseline_total: baseline
                        .as_ref()
                        .map(|_| c.baseline_total_us as f64 / 1000.0),
                    baseline,
                    target,
                };
                let slowdown = is_slowdown(c.count, &latency_ms)
                    .then(|| explain_slowdown(c.count, &latency_ms))
                    .flatten();
                (
                    c.first_seen,
                    ClassReport {
                        fingerprint: fingerprint.to_string(),
                        count: c.count,
                        diffs: c.diffs,
                        kinds: c.kinds,
                        skipped: c.skipped,
                        not_compared: c.not_compared,
                        unlocked: c.unlocked,
                        nondeterministic: c.nondeterministic,
                        noise: c.noise,
                        after_skipped_write: c.after_skipped_write,
                        latency_ms,
                        slowdown,
                        samples: c.samples,
                    },
                )
            })
            .collect();
        // Differences first; then what costs most. A ratio alone would put classes run once
        // ahead of the one run thousands of times.
        v.sort_by(|(fa, a), (fb, b)| {
            b.diffs
                .cmp(&a.diffs)
                .then_with(|| {
                    b.latency_ms
                        .target_total
                        .total_cmp(&a.latency_ms.target_total)
                })
                .then_with(|| fa.cmp(fb))
        });
        v.into_iter().map(|(_, c)| c).collect()
    }
}
