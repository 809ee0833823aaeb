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

/// Why a statement was not compared. Every statement of the workload is compared, not
/// compared for one of these reasons, or nondeterministic (compared, its differences
/// reported apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not sent under `--read-only` because it can change data (or cannot be shown not to):
    /// what the user asked for, so it does not count against the verdict.
    ReadOnlyWrite,
    /// An execute whose prepare is not in the recording (prepared before the capture began);
    /// never sent.
    PrepareMissing,
    /// Its session stopped earlier on one side (a lost connection, a driver error): this
    /// statement and every later one of the session are not compared.
    SessionEnded,
    /// The driver or the connection failed on this statement (not a server error, which is
    /// an answer and compared).
    DriverError,
    /// The server refused the session's connection (1040 too many connections, 1203).
    ConnectionRefused,
    /// No connection free within `--max-connections` and too many records already waiting
    /// for one.
    ConnectionLimit,
    /// The replay was interrupted before both answers arrived.
    Interrupted,
}

impl Reason {
    /// In the order reports list them: the cause before its consequence.
    pub const ALL: [Reason; 7] = [
        Reason::ReadOnlyWrite,
        Reason::PrepareMissing,
        Reason::DriverError,
        Reason::ConnectionRefused,
        Reason::SessionEnded,
        Reason::ConnectionLimit,
        Reason::Interrupted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::ReadOnlyWrite => "read_only_write",
            Reason::PrepareMissing => "prepare_missing",
            Reason::SessionEnded => "session_ended",
            Reason::DriverError => "driver_error",
            Reason::ConnectionRefused => "connection_refused",
            Reason::ConnectionLimit => "connection_limit",
            Reason::Interrupted => "interrupted",
        }
    }

    /// What the reason means, for the summary and the report.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::ReadOnlyWrite => {
                "not sent under --read-only: it can change data (expected, not counted against the verdict)"
            }
            Reason::PrepareMissing => "an execute whose prepare is not in the recording",
            Reason::SessionEnded => "its session had stopped earlier on one side",
            Reason::DriverError => "the driver or the connection failed on it",
            Reason::ConnectionRefused => "the server refused the connection",
            Reason::ConnectionLimit => {
                "no connection free within --max-connections, and too many records waiting"
            }
            Reason::Interrupted => "the replay was interrupted",
        }
    }

    /// Whether it makes the replay's verdict incomplete (exit 1 unless `--allow-skipped`).
    pub fn counts(self) -> bool {
        self != Reason::ReadOnlyWrite
    }
}

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
    /// Time spent on all executions, on the target (and the baseline): what a class costs.
    pub target_total: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_total: Option<f64>,
}

/// Executions a class needs before its latency ratio ranks it: a class run once or twice
/// says little about its p99.
pub const MIN_EXECUTIONS: u64 = 5;
/// A class at least this much slower (target p99 / baseline p99) is a slowdown…
pub const SLOWDOWN_RATIO: f64 = 2.0;
/// …when its target p99 is at least this long (ms): below it, the ratio is noise.
pub const SLOWDOWN_MIN_P99_MS: f64 = 1.0;
/// Classes listed in each ranking.
pub const RANKED: usize = 10;

/// The classes a latency review starts from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ranking {
    pub min_executions: u64,
    pub slowdown_ratio: f64,
    pub slowdown_min_p99_ms: f64,
    /// The costliest classes: most total time on the target first.
    pub by_total_time: Vec<RankedClass>,
    /// The most frequent classes.
    pub by_count: Vec<RankedClass>,
    /// Classes with at least `min_executions` whose target p99 is `slowdown_ratio` times the
    /// baseline's or more (and at least `slowdown_min_p99_ms`), most time lost first.
    pub slowdowns: Vec<RankedClass>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RankedClass {
    pub fingerprint: String,
    pub count: u64,
    pub latency_ms: ClassLatency,
    /// For a slowdown: what it is, target against baseline, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// "p99 11.9x: 35.2 ms on the target against 2.96 ms on the baseline (p50 0.41 → 0.52 ms),
/// 2393 executions".
pub fn explain_slowdown(count: u64, l: &ClassLatency) -> Option<String> {
    let b = l.baseline.as_ref()?;
    let ratio = l.ratio_p99?;
    Some(format!(
        "p99 {ratio:.1}x: {} on the target against {} on the baseline (p50 {} → {}), {count} executions",
        ms_text(l.target.p99),
        ms_text(b.p99),
        ms_text(b.p50),
        ms_text(l.target.p50),
    ))
}

/// A duration in ms with the digits that matter.
pub fn ms_text(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Whether a class is a slowdown by the thresholds above.
pub fn is_slowdown(count: u64, l: &ClassLatency) -> bool {
    count >= MIN_EXECUTIONS
        && l.baseline.is_some()
        && l.ratio_p99.is_some_and(|r| r >= SLOWDOWN_RATIO)
        && l.target.p99 >= SLOWDOWN_MIN_P99_MS
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub fingerprint: String,
    /// Statements of this class compared (answered by every side).
    pub count: u64,
    /// Of them, answered differently (not counting nondeterministic ones). `differences` in
    /// JSON: `diffs` is a list of rows everywhere else (diff).
    #[serde(rename = "differences")]
    pub diffs: u64,
    /// Differences by kind (a statement can differ in several ways).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Not sent under `--read-only` (they can change data).
    pub skipped: u64,
    /// Not compared for another reason (see the report's `not_compared`).
    pub not_compared: u64,
    /// Locking reads compared without their lock (`--read-only`).
    pub unlocked: u64,
    /// Why answers of this class may differ between runs; its differences are in `noise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nondeterministic: Option<String>,
    /// Differences of a nondeterministic class (not counted in `diffs`).
    pub noise: u64,
    /// Differences of reads that followed a write dropped by `--read-only` in the same
    /// transaction (counted in `diffs`).
    pub after_skipped_write: u64,
    pub latency_ms: ClassLatency,
    /// Set when the class is a slowdown ([`is_slowdown`]): target against baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slowdown: Option<String>,
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
    /// Statements in the workload (queries and executes): `compared` + `nondeterministic`
    /// + `skipped` + `not_compared`.
    pub statements: u64,
    /// Compared, answered by every side (deterministic statements).
    pub compared: u64,
    /// Compared, but their answers may differ from run to run: differences are `noise`.
    pub nondeterministic: u64,
    /// `compared` + `nondeterministic`.
    pub replayed: u64,
    /// Not sent under `--read-only` because they can change data (expected; not counted
    /// against the verdict).
    pub skipped: u64,
    /// Not compared for any other reason: makes the exit code 1 unless `allow_skipped`.
    pub not_compared: u64,
    /// Every reason a statement was not compared (`skipped` included), with examples.
    pub not_compared_by_reason: Vec<ReasonReport>,
    /// `--allow-skipped`: statements not compared do not change the exit code.
    pub allow_skipped: bool,
    /// Locking reads compared without their lock (`--read-only`).
    pub unlocked: u64,
    /// Connections the replay may hold per server (`--max-connections`), and the lanes
    /// (one connection each per server) the sessions shared.
    pub max_connections: u64,
    pub lanes: u64,
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
    /// Concurrency errors (lock wait timeout, deadlock, write conflict, …) one side had and
    /// the other did not, by side and code, each with one example in its context.
    pub concurrency: crate::concurrency::ConcurrencyReport,
    /// Latency over every statement compared, on both sides.
    pub latency_ms: ClassLatency,
    /// The classes ranked by total time and by count, and the slowdowns.
    pub ranking: Ranking,
    /// Classes with differences first (most first), then by total time on the target.
    pub classes: Vec<ClassReport>,
}

/// The statements not compared for one reason.
#[derive(Clone, Debug, Serialize)]
pub struct ReasonReport {
    pub reason: Reason,
    pub meaning: &'static str,
    /// Whether these make the verdict incomplete (all but `read_only_write`).
    pub counts: bool,
    pub statements: u64,
    pub examples: Vec<NotComparedExample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotComparedExample {
    pub session: u64,
    pub sql: String,
    pub detail: String,
}

/// Examples kept per reason.
const REASON_EXAMPLES: usize = 3;

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
    /// Fills [`Report::ranking`] from the classes.
    pub fn rank(&mut self) {
        let ranked = |c: &ClassReport, explain: bool| RankedClass {
            fingerprint: c.fingerprint.clone(),
            count: c.count,
            latency_ms: c.latency_ms.clone(),
            explanation: if explain { c.slowdown.clone() } else { None },
        };
        let mut by_total: Vec<&ClassReport> = self.classes.iter().filter(|c| c.count > 0).collect();
        by_total.sort_by(|a, b| {
            b.latency_ms
                .target_total
                .total_cmp(&a.latency_ms.target_total)
        });
        let mut by_count: Vec<&ClassReport> = self.classes.iter().filter(|c| c.count > 0).collect();
        by_count.sort_by_key(|c| std::cmp::Reverse(c.count));
        let mut slow: Vec<&ClassReport> = self
            .classes
            .iter()
            .filter(|c| c.slowdown.is_some())
            .collect();
        let lost = |c: &ClassReport| {
            c.latency_ms.target_total - c.latency_ms.baseline_total.unwrap_or(0.0)
        };
        slow.sort_by(|a, b| lost(b).total_cmp(&lost(a)));
        self.ranking = Ranking {
            min_executions: MIN_EXECUTIONS,
            slowdown_ratio: SLOWDOWN_RATIO,
            slowdown_min_p99_ms: SLOWDOWN_MIN_P99_MS,
            by_total_time: by_total
                .iter()
                .take(RANKED)
                .map(|c| ranked(c, false))
                .collect(),
            by_count: by_count
                .iter()
                .take(RANKED)
                .map(|c| ranked(c, false))
                .collect(),
            slowdowns: slow.iter().map(|c| ranked(c, true)).collect(),
        };
    }

    /// 130 interrupted; 2 when the workload had statements and none could be compared; 1
    /// for differences, or for statements not compared (unless `--allow-skipped`; those
    /// left out by `--read-only` because they write never count); 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.statements > 0 && self.replayed == 0 {
            2
        } else if self.statements_with_diffs > 0 || (self.not_compared > 0 && !self.allow_skipped) {
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

/// The human summary.
pub fn human(r: &Report) -> String {
    let mut out = format!(
        "replay: {} statements in {} sessions, compared with {}: {} compared, {} nondeterministic, {} not sent (--read-only: they can change data), {} not compared\n",
        r.statements,
        r.sessions,
        r.compared_with,
        r.compared,
        r.nondeterministic,
        r.skipped,
        r.not_compared
    );
    if r.unlocked > 0 {
        out.push_str(&format!(
            "{} locking reads compared without their lock (--read-only)\n",
            r.unlocked
        ));
    }
    out.push_str(&format!(
        "statements with differences: {}   (nondeterministic, reported apart: {})\n",
        r.statements_with_diffs, r.noise
    ));
    out.push_str(&format!(
        "speed {}: {:.1} s for a {:.1} s workload; scheduling lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.speed, r.elapsed_s, r.workload_s, r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms
    ));
    out.push_str(&latency_line(&r.latency_ms));
    if !r.ranking.slowdowns.is_empty() {
        out.push_str(&format!(
            "\nslowdowns (at least {} executions, target p99 >= {} ms and >= {}x the baseline):\n",
            r.ranking.min_executions, r.ranking.slowdown_min_p99_ms, r.ranking.slowdown_ratio
        ));
        for c in r.ranking.slowdowns.iter().take(RANKED) {
            out.push_str(&format!(
                "  {}\n    {}\n",
                one_line(&c.fingerprint, 150),
                c.explanation.as_deref().unwrap_or_default()
            ));
        }
        if r.ranking.slowdowns.len() > RANKED {
            out.push_str(&format!(
                "  … and {} more (--format json, --out)\n",
                r.ranking.slowdowns.len() - RANKED
            ));
        }
    }
    if !r.ranking.by_total_time.is_empty() {
        out.push_str("\nclasses by total time on the target:\n");
        out.push_str(&ranked_table(&r.ranking.by_total_time));
    }
    if r.ranking.by_count.len() > 1 {
        out.push_str("\nclasses by executions:\n");
        out.push_str(&ranked_table(&r.ranking.by_count));
    }
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
        let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        out.push_str(&format!(
            "\n  {}\n    {} of {} executions answered differently ({})\n",
            c.fingerprint,
            c.diffs,
            c.count,
            kinds.join(", ")
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
    out.push_str(&crate::concurrency::human(&r.concurrency));
    for c in r.classes.iter().filter(|c| c.noise > 0) {
        out.push_str(&format!(
            "\n  nondeterministic ({}): {} of {} differ: {}\n",
            c.nondeterministic.as_deref().unwrap_or("?"),
            c.noise,
            c.count,
            c.fingerprint
        ));
    }
    for x in r.not_compared_by_reason.iter().filter(|x| x.counts) {
        out.push_str(&format!(
            "\nnot compared ({}): {} statements: {}\n",
            x.reason.name(),
            x.statements,
            x.reason.meaning()
        ));
        for e in &x.examples {
            out.push_str(&format!(
                "    e.g. session {}: {}\n      {}\n",
                e.session,
                one_line(&e.sql, 160),
                one_line(&e.detail, 200)
            ));
        }
    }
    for e in &r.session_errors {
        out.push_str(&format!("warning: {e}\n"));
    }
    if r.statements > 0 && r.replayed == 0 && !r.interrupted {
        out.push_str("nothing could be compared\n");
    } else if r.not_compared > 0 {
        out.push_str(&format!(
            "{} statements not compared: {}\n",
            r.not_compared,
            if r.allow_skipped {
                "accepted (--allow-skipped)"
            } else {
                "the replay is incomplete (exit 1; --allow-skipped accepts it)"
            }
        ));
    }
    if r.interrupted {
        out.push_str("interrupted: the report covers what was replayed\n");
    }
    out
}

/// "latency  baseline p50 0.21 ms, p99 1.30 ms; target p50 0.35 ms, p99 2.10 ms (p99 1.6x)".
fn latency_line(l: &ClassLatency) -> String {
    let target = format!(
        "target p50 {}, p99 {}",
        ms_text(l.target.p50),
        ms_text(l.target.p99)
    );
    match &l.baseline {
        Some(b) => format!(
            "latency: baseline p50 {}, p99 {}; {target}{}\n",
            ms_text(b.p50),
            ms_text(b.p99),
            l.ratio_p99
                .map(|x| format!(" (p99 {x:.2}x)"))
                .unwrap_or_default()
        ),
        None => format!("latency: {target}\n"),
    }
}

/// Ranked classes as aligned columns: total, executions, p50/p99 on both sides, the class.
fn ranked_table(classes: &[RankedClass]) -> String {
    let mut out = format!(
        "  {:>10} {:>8} {:>19} {:>19}  class\n",
        "total ms", "count", "baseline p50/p99", "target p50/p99"
    );
    let pair = |l: &Latency| format!("{:.2}/{:.2}", l.p50, l.p99);
    for c in classes {
        let l = &c.latency_ms;
        out.push_str(&format!(
            "  {:>10.1} {:>8} {:>19} {:>19}  {}\n",
            l.target_total,
            c.count,
            l.baseline.as_ref().map(pair).unwrap_or_else(|| "-".into()),
            pair(&l.target),
            one_line(&c.fingerprint, 100)
        ));
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

pub(crate) fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}
