//! The replay report: statements grouped by class (fingerprint), differences by kind,
//! latency on both sides, the first samples with both answers; JSON, human text and a
//! shareable document (Markdown/HTML through `cutover-report`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::answer::Answer;
use crate::compare::Kind;

mod collector;
mod human;

pub(crate) use collector::{hist, Collector, NotCompared, Outcome, Ran};
pub use human::human;

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
