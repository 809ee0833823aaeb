//! Replay: each captured session on its own connection, its commands in order, sessions
//! concurrent as captured, every statement on the target and (when given) the baseline,
//! every answer compared.
//!
//! Data flow: workload file → reader thread (blocking, decompresses) → dispatcher (numbers
//! each session's records, fingerprints and classifies statements once, reconstructs due
//! times within whole-second log times: [`spread`]) → for **each side** its own *lanes*, one
//! per session (or `--sessions N` lanes, sessions spread over them), over bounded channels →
//! a lane waits for the command's captured time (scaled by `speed`), runs it on its own
//! server, and leaves its half of the answer in the statement's job (the record numbered
//! (session, sequence number) that both sides' lanes got); the lane that answers second
//! compares the two and adds the outcome to the collector (per class totals, histograms,
//! samples, under a lock) → [`Report`].
//!
//! The two sides run independently, each at its own pace: a lane never waits for the other
//! server's answer to the same statement. (When they ran in lockstep, session A waiting for
//! B's row lock on the baseline while B waited for A's on the target was a cycle neither
//! server could see: it ended only at `innodb_lock_wait_timeout`.) The one exception is
//! generated IDs: see `Pair`. Why this cannot deadlock and why memory stays bounded: see
//! [`run`].
//!
//! Memory stays flat: the reader holds one record, channels are bounded, a whole-second
//! group is one session's second of records, the collector keeps totals per statement class,
//! a half not yet matched lives in its job (bounded by the channels), and an answer is a count and
//! two hashes plus a few rows.
//!
//! What is compared: [`compare::compare`] (errors, rows as a multiset unless the statement
//! has a top-level ORDER BY, column names and types, affected rows, last insert id,
//! warnings). Generated IDs: when the two sides (or the capture and a side) generate
//! different AUTO_INCREMENT values, the session maps them, so later statements of the
//! session that use the ID are sent with each side's own value, and result cells holding the
//! target's ID are read as the baseline's.
//!
//! Writes: without `read_only`, writes run on the target and the baseline (the caller says
//! so before starting); with it, statements that can change data are dropped
//! ([`classify`]) and the sessions are opened `READ ONLY` as a second guard.

pub mod answer;
pub mod classify;
pub mod compare;
pub mod compat;
pub mod concurrency;
mod ctx;
mod dispatch;
mod excerpt;
mod job;
mod lane;
pub mod params;
pub mod protocol;
pub mod report;
pub mod report_doc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::{Db, DbError};
use cutover_workload::Record;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::classify::Rules;
use crate::ctx::Ctx;
use crate::job::Side;
use crate::report::{Collector, Report};

pub use dispatch::spread;
pub use report::human;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error(transparent)]
    Workload(#[from] cutover_workload::WorkloadError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How fast to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as possible; each session still runs its commands in order.
    Max,
    /// The captured timing divided by this factor (2 = twice as fast).
    Factor(f64),
}

/// A `--speed` that is neither `max` nor a factor above 0 (at most a million).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a speed: give `max` or a factor such as 1, 0.5 or 4")]
pub struct SpeedError {
    pub given: String,
}

impl Speed {
    pub fn parse(s: &str) -> Result<Speed, SpeedError> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1e6 => Ok(Speed::Factor(f)),
            _ => Err(SpeedError {
                given: s.to_string(),
            }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub read_only: bool,
    pub speed: Speed,
    /// `None`: a connection per captured session (as many at once as `max_connections`
    /// allows); `Some(n)`: at most `n` lanes. A session holds a lane (one connection per
    /// server) from its first command to its end; sessions beyond the lanes wait for one.
    pub lanes: Option<usize>,
    /// Connections the replay may hold per server (`--max-connections`): the lanes and one
    /// for control. `None`: [`default_max_connections`] of the servers' own limits.
    pub max_connections: Option<usize>,
    /// Statements not compared do not change the exit code (`--allow-skipped`).
    pub allow_skipped: bool,
    /// How `--read-only` classifies (`--assume-functions-read-only`).
    pub rules: Rules,
    /// Told the figures as the replay goes (the library never prints).
    pub progress: Option<ProgressHandle>,
}

/// What a running replay tells as it goes; the binary shows it as progress. Calls come from
/// the lanes: an implementation only takes note (a few stores), it never waits.
pub trait Progress: Send + Sync {
    /// The totals so far, each time a statement's outcome is collected.
    fn tally(&self, _tally: &Tally) {}
    /// A session opened (`true`) or ended on the target.
    fn session(&self, _opened: bool) {}
    /// How far behind the recorded timeline (scaled by the speed) the target's latest
    /// statement started; zero when on time. Only at a speed factor.
    fn behind(&self, _lag: Duration) {}
}

/// The replay's totals so far, as the report will count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Statements with an outcome (compared, or not compared).
    pub statements: u64,
    pub compared: u64,
    pub statements_with_diffs: u64,
    /// Not compared, and counted against the verdict.
    pub not_compared: u64,
    /// Not sent on purpose (`--read-only`'s writes).
    pub skipped: u64,
}

/// A [`Progress`] in [`ReplayOptions`] (which are `Debug`).
#[derive(Clone)]
pub struct ProgressHandle(pub Arc<dyn Progress>);

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            read_only: true,
            speed: Speed::Factor(1.0),
            lanes: None,
            max_connections: None,
            allow_skipped: false,
            rules: Rules::default(),
            progress: None,
        }
    }
}

/// The default `--max-connections` for a server whose `@@max_connections` is `server`:
/// half of it, at most 200 (TiDB's 0, no limit, counts as 400): well under what the server
/// allows, so the application and administrators keep their connections.
pub fn default_max_connections(server: u64) -> usize {
    let server = if server == 0 { 400 } else { server };
    (server / 2).clamp(2, 200) as usize
}

/// SERVER_STATUS_IN_TRANS_READONLY: set by the `READ ONLY` guard `--read-only` puts on
/// every session, which the captured application never had.
const GUARD_STATUS: u16 = 0x2000;

/// Replays `records` (in file order) against `target`, comparing with `baseline`.
///
/// Why the independent sides cannot deadlock. The waits are: (1) a lane waits for its
/// next record; (2) a statement waits for row locks on its own server; (3) a target lane
/// waits for the baseline lane of the same session to finish an earlier record (the ID
/// wait of `Pair`); (4) the dispatcher waits for room in a lane's channel. Baseline lanes
/// wait only on (1) and (2), never on the target, so lock waits on the baseline are waits
/// the baseline server sees (and breaks, if they form a cycle, as a deadlock error).
/// (3) points from the target to the baseline only, and to a record that is with the
/// baseline lane or the next one handed to it: the dispatcher hands each record to the
/// target lane and then to the baseline lane before it reads the next one, and a baseline
/// lane drains its channel without waiting for the target, so a wait (4) on a baseline
/// channel ends. So no cycle passes through both servers; what remains is
/// what any replayer of one ordered stream has: a session whose next record lies beyond a
/// full channel (about `LANE_QUEUE` records of another session queued behind a lock
/// the capture did not see), which the server's lock wait timeout ends.
///
/// Why the connection limit adds no wait that can deadlock. A lane is one connection per
/// server; there are at most `max_connections - 1` of them (the last connection is the
/// pool's control one, which read `@@max_connections`; only an interruption opens more, a
/// short-lived `KILL QUERY` connection per statement in flight). A session holds a lane from its first
/// record to its `quit` (or the end of the workload) and runs only on it, so it never holds
/// one connection while waiting for another. A session that finds no lane free does not
/// wait at all: the dispatcher keeps its records (`Lanes`) and goes on reading, so the
/// sessions that hold lanes still get their records, reach their ends and free their lanes,
/// and the waiting sessions get them in the order they started. The dispatcher never
/// waits for a lane to become free, only for room in a lane's channel (4), which that lane
/// drains as above. Waiting records are bounded (`MAX_HELD`): beyond it a waiting session
/// is not replayed and its statements are counted as not compared (`connection_limit`), a
/// visible outcome instead of a wait. At the end of the workload every session still
/// holding a lane is ended (its connection closed), and the waiting ones run in turn.
///
/// Why memory stays bounded when one side runs ahead. The faster side gets ahead of the
/// slower one only by what the slower side's channel holds: once that channel is full, the
/// dispatcher stops, and the faster side runs out of records (back-pressure). So the halves
/// waiting in their jobs for the other half are at most `LANE_QUEUE` (plus one
/// statement in flight) per session, and the baseline IDs the target has not read yet are
/// fewer still.
pub async fn run(
    records: impl Iterator<Item = Result<Record, cutover_workload::WorkloadError>> + Send + 'static,
    target: Db,
    baseline: Option<Db>,
    opts: ReplayOptions,
    cancel: CancellationToken,
) -> Result<Report, ReplayError> {
    // The connection limit: given, or half the servers' own (the lower of the two).
    let max_connections = match opts.max_connections {
        Some(n) => n.max(2),
        None => {
            let mut n = default_max_connections(server_max_connections(&target).await?);
            if let Some(b) = &baseline {
                n = n.min(default_max_connections(server_max_connections(b).await?));
            }
            n
        }
    };
    let lane_limit = (max_connections - 1)
        .min(opts.lanes.unwrap_or(usize::MAX))
        .max(1);
    let (mut rec_rx, reader) = dispatch::read_ahead(records);

    let first = match rec_rx.recv().await {
        Some(r) => Some(r?),
        None => None,
    };
    let first_ts = first.as_ref().map(|r| r.ts_us).unwrap_or(0);
    let compared_with = if baseline.is_some() {
        "baseline"
    } else {
        "capture"
    };
    let two_sides = baseline.is_some();
    let ctx = Arc::new(Ctx {
        target,
        baseline,
        read_only: opts.read_only,
        status_mask: if opts.read_only { GUARD_STATUS } else { 0 },
        speed: opts.speed,
        start: Instant::now(),
        first_ts,
        cancel: cancel.clone(),
        collector: std::sync::Mutex::new(Collector::default()),
        two_sides,
        windows: Default::default(),
        clock: concurrency::Clock { first_ts },
        progress: opts.progress.as_ref().map(|p| p.0.clone()),
    });

    let dispatch::Dispatched {
        read_error,
        lanes_used,
        handles,
        workload_end,
    } = dispatch::dispatch(&mut rec_rx, first, ctx.clone(), opts.rules, lane_limit).await;
    // The reader thread may be blocked on a full channel (the dispatch stopped early: Ctrl-C,
    // a read error): closing the receiving end lets it end before it is waited for.
    drop(rec_rx);
    let _ = reader.await;
    let mut lag = report::hist();
    let mut session_errors = Vec::new();
    let mut session_ids = 0u64;
    let mut more_errors = 0usize;
    for (side, h) in handles {
        if let Ok(done) = h.await {
            let _ = lag.add(&done.lag);
            for e in done.errors {
                if session_errors.len() < MAX_SESSION_ERRORS {
                    session_errors.push(e);
                } else {
                    more_errors += 1;
                }
            }
            if side == Side::Target {
                session_ids += done.sessions;
            }
        }
    }
    if more_errors > 0 {
        session_errors.push(format!(
            "… and {more_errors} more sessions stopped (their statements are counted by reason)"
        ));
    }
    let elapsed = ctx.start.elapsed();
    let speed = match opts.speed {
        Speed::Max => "max".to_string(),
        Speed::Factor(f) => format!("{f}"),
    };
    let c = match ctx.collector.lock() {
        Ok(mut c) => std::mem::take(&mut *c),
        Err(_) => Collector::default(),
    };
    drop(ctx);
    if let Some(e) = read_error {
        return Err(e.into());
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut report = Report {
        version: env!("CARGO_PKG_VERSION"),
        statements: c.statements,
        compared: c.compared,
        nondeterministic: c.nondeterministic,
        replayed: c.compared + c.nondeterministic,
        skipped: c.skipped,
        not_compared: c.not_compared,
        not_compared_by_reason: c.reasons(),
        allow_skipped: opts.allow_skipped,
        unlocked: c.unlocked,
        max_connections: max_connections as u64,
        lanes: lanes_used,
        statements_with_diffs: c.with_diffs,
        noise: c.noise,
        sessions: session_ids,
        compared_with,
        read_only: opts.read_only,
        speed,
        lag: report::Lag {
            p50_ms: ms(&lag, 0.5),
            p99_ms: ms(&lag, 0.99),
            max_ms: lag.max() as f64 / 1000.0,
        },
        elapsed_s: elapsed.as_secs_f64(),
        workload_s: (workload_end - first_ts).max(0) as f64 / 1e6,
        session_errors,
        interrupted: cancel.is_cancelled(),
        client_compatibility: c.compatibility(),
        concurrency: c.concurrency.report(),
        latency_ms: c.latency(),
        ranking: report::Ranking::default(),
        classes: c.classes(),
    };
    report.rank();
    Ok(report)
}

/// Sessions that stopped named in the report, at most (the rest are counted).
const MAX_SESSION_ERRORS: usize = 100;

/// A server's own connection limit (`@@max_connections`; 0 on TiDB: none).
async fn server_max_connections(db: &Db) -> Result<u64, ReplayError> {
    let mut c = db.conn().await?;
    let v: Vec<u64> = c.query("SELECT @@max_connections").await?;
    Ok(v.first().copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_limit_is_half_the_servers_at_most_200() {
        assert_eq!(default_max_connections(151), 75);
        assert_eq!(default_max_connections(20), 10);
        assert_eq!(default_max_connections(100_000), 200);
        // TiDB: 0 is no limit.
        assert_eq!(default_max_connections(0), 200);
        assert_eq!(default_max_connections(1), 2);
    }

    #[test]
    fn a_speed_is_max_or_a_positive_factor() {
        assert_eq!(Speed::parse("MAX"), Ok(Speed::Max));
        assert_eq!(Speed::parse("0.5"), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "fast", "NaN", "1e7"] {
            let e = Speed::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad:?} is not a speed: give `max` or a factor such as 1, 0.5 or 4")
            );
        }
    }
}
