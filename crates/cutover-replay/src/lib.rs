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
//! generated IDs: see [`Pair`]. Why this cannot deadlock and why memory stays bounded: see
//! [`run`].
//!
//! Memory stays flat: the reader holds one record, channels are bounded, a whole-second
//! group is one session's second of records, the collector keeps totals per statement class,
//! a half not yet matched lives in its job (bounded by the channels), and an answer is a count and
//! two hashes plus a few rows.
//!
//! What is compared: [`answer::compare`] (errors, rows as a multiset unless the statement
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
pub mod concurrency;
pub mod params;
pub mod protocol;
pub mod report;
pub mod report_doc;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::{Db, DbError};
use cutover_workload::{fingerprint, Command, Record};
use hdrhistogram::Histogram;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::answer::{Answer, IdMap, Kind};
use crate::classify::{Class, Rules, Txn};
use crate::report::{Collector, NotCompared, Outcome, Ran, Reason, Report, Sample};

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

impl Speed {
    pub fn parse(s: &str) -> Result<Speed, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1e6 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "{s:?} is not a speed: give `max` or a factor such as 1, 0.5 or 4"
            )),
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

/// Which server a lane replays on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Target,
    Baseline,
}

/// Shared by every lane.
struct Ctx {
    target: Db,
    baseline: Option<Db>,
    read_only: bool,
    /// Status flags cutover's own session set-up causes (the `READ ONLY` guard), masked on
    /// every side before comparing: they are not the target's behaviour.
    status_mask: u16,
    speed: Speed,
    /// When the replay started and the captured time of the first record.
    start: Instant,
    first_ts: i64,
    cancel: CancellationToken,
    /// Per class totals; lanes add their outcomes under the lock (a few histogram records).
    collector: std::sync::Mutex<Collector>,
    two_sides: bool,
    /// Each side's recent statements, for the context of a concurrency error (target,
    /// baseline).
    windows: [std::sync::Mutex<concurrency::Window>; 2],
    clock: concurrency::Clock,
    progress: Option<Arc<dyn Progress>>,
}

impl Ctx {
    fn add(&self, o: Outcome) {
        if let Ok(mut c) = self.collector.lock() {
            c.add(o);
            self.tell(&c);
        }
    }

    /// The totals to the progress display, if any.
    fn tell(&self, c: &Collector) {
        if let Some(p) = &self.progress {
            p.tally(&Tally {
                statements: c.statements,
                compared: c.compared,
                statements_with_diffs: c.with_diffs,
                not_compared: c.not_compared,
                skipped: c.skipped,
            });
        }
    }

    /// A statement not compared, with why.
    fn not_compared(&self, fingerprint: &Arc<str>, session: u64, sql: &str, why: &NotRun) {
        if let Ok(mut c) = self.collector.lock() {
            c.not_compared(NotCompared {
                fingerprint,
                reason: why.reason,
                session,
                sql,
                detail: &why.detail,
            });
            self.tell(&c);
        }
    }

    /// One side's answer to a statement: compared and collected when it is the second.
    fn answered(&self, side: Side, job: &Job, answer: SideAnswer) {
        if !self.two_sides {
            return self.finish(job, answer, None);
        }
        let other = match job.half.lock() {
            Ok(mut h) => match h.take() {
                Some(other) => other,
                None => {
                    *h = Some(answer);
                    return;
                }
            },
            Err(_) => return,
        };
        let (t, b) = match side {
            Side::Target => (answer, other),
            Side::Baseline => (other, answer),
        };
        self.finish(job, t, Some(b))
    }

    /// Both answers are in: compared, or not compared with the first side's reason.
    fn finish(&self, job: &Job, target: SideAnswer, baseline: Option<SideAnswer>) {
        let Some(st) = job.stmt.as_ref() else {
            return;
        };
        let why = |side: &str, e: NotRun| NotRun {
            reason: e.reason,
            detail: format!("on the {side}: {}", e.detail),
        };
        match (target, baseline) {
            (Err(e), _) => {
                self.not_compared(&st.fingerprint, job.session, job.sql(), &why("target", e))
            }
            (Ok(_), Some(Err(e))) => {
                self.not_compared(&st.fingerprint, job.session, job.sql(), &why("baseline", e))
            }
            (Ok(t), Some(Ok(b))) => {
                self.conflicts(job, &t, Some(&b));
                self.add(outcome(self, job, t, Some(b)))
            }
            (Ok(t), None) => {
                self.conflicts(job, &t, None);
                self.add(outcome(self, job, t, None))
            }
        }
    }

    /// The statement's concurrency errors (taken with their context by the lanes) that the
    /// other side, or the capture, did not answer with the same code.
    fn conflicts(&self, job: &Job, target: &Answer, baseline: Option<&Answer>) {
        let taken = match job.conflicts.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => return,
        };
        for mut c in taken {
            let (code, brief) = match (c.side, baseline) {
                ("target", Some(b)) => (b.error.as_ref().map(|e| e.code), b.brief()),
                ("target", None) => match &job.rec.response {
                    Some(r) => (r.error.as_ref().map(|e| e.code), report::captured_brief(r)),
                    // Nothing to compare with: not an error only one side had.
                    None => continue,
                },
                _ => (target.error.as_ref().map(|e| e.code), target.brief()),
            };
            if code == Some(c.code) {
                continue;
            }
            c.other_side = report::one_line(&brief, 200);
            if let Ok(mut col) = self.collector.lock() {
                col.concurrency.add(c);
            }
        }
    }

    /// Microseconds since the replay started: the clock of the concurrency windows.
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn window(&self, side: Side) -> &std::sync::Mutex<concurrency::Window> {
        &self.windows[(side == Side::Baseline) as usize]
    }

    /// A statement starts on `side`: it enters that side's window.
    fn started(&self, side: Side, job: &Arc<Job>) {
        let now = self.now_us();
        if let Ok(mut w) = self.window(side).lock() {
            w.start(job, now);
        }
    }

    /// A statement ended on `side`; a concurrency error takes its context now, while the
    /// window still holds what ran beside it.
    fn ended(
        &self,
        side: Side,
        job: &Job,
        txn: &mut concurrency::Transaction,
        error: Option<&answer::ServerErr>,
    ) {
        let now = self.now_us();
        let code = error.map(|e| e.code);
        let Ok(mut w) = self.window(side).lock() else {
            return;
        };
        w.end(job.session, now, code);
        let conflict = error
            .filter(|e| concurrency::code(e.code).is_some())
            .and_then(|e| {
                concurrency::context(&self.clock, &w, txn, role(side), e.code, &e.message, now)
            });
        drop(w);
        txn.end(code);
        if let (Some(c), Ok(mut slot)) = (conflict, job.conflicts.lock()) {
            slot.push(c);
        }
    }

    /// The session is gone from `side` (quit, reset, change of user).
    fn forget(&self, side: Side, session: u64) {
        if let Ok(mut w) = self.window(side).lock() {
            w.forget(session);
        }
    }

    fn due(&self, ts_us: i64) -> Option<Instant> {
        match self.speed {
            Speed::Max => None,
            Speed::Factor(f) => {
                let offset = (ts_us.saturating_sub(self.first_ts)).max(0) as f64 / f;
                Some(self.start + Duration::from_micros(offset as u64))
            }
        }
    }
}

/// A session's state shared by its two sides: how far the baseline has got, and the IDs it
/// generated. The target needs the baseline's generated ID of a statement before it can
/// send a later statement of the session that may use it (mapped to the target's own ID);
/// it waits for that, per session, and for nothing else of the baseline's.
struct Pair {
    /// Records of the session the baseline lane has finished (the next `seq` it runs).
    base_done: tokio::sync::watch::Sender<u64>,
    /// The baseline's generated IDs by `seq`, until the target has read them.
    base_ids: std::sync::Mutex<BTreeMap<u64, u64>>,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            base_done: tokio::sync::watch::Sender::new(0),
            base_ids: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

/// One record of the workload as both sides' lanes get it.
struct Job {
    session: u64,
    /// The record's place in its session (0, 1, …).
    seq: u64,
    /// Its captured time, reconstructed within the second for whole-second logs.
    at_us: i64,
    rec: Record,
    /// For a statement (query or execute): what the dispatcher decided once for both sides.
    stmt: Option<Stmt>,
    pair: Arc<Pair>,
    /// What goes on the wire for a query or a prepare.
    wire: Wire,
    /// The answer of the side that finished first (`Err`: it could not run it), until the
    /// other side's arrives: the two are compared by whichever lane comes second.
    half: std::sync::Mutex<Option<SideAnswer>>,
    /// Concurrency errors of this statement with their context, per side that had one,
    /// until both answers are in.
    conflicts: std::sync::Mutex<Vec<concurrency::Conflict>>,
}

/// One side's answer to a statement, or why it has none.
type SideAnswer = Result<Answer, NotRun>;

/// Why one side has no answer to a statement.
#[derive(Clone, Debug)]
struct NotRun {
    reason: Reason,
    detail: String,
}

impl NotRun {
    fn new(reason: Reason, detail: impl Into<String>) -> NotRun {
        NotRun {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a lane sends for a query or a prepare.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wire {
    /// The recorded text.
    Recorded,
    /// `--read-only`: a locking read without its lock, instead of the recorded text.
    Unlocked(String),
    /// `--read-only`: a prepare of a statement that may not be sent is not sent either.
    Withheld,
}

struct Stmt {
    fingerprint: Arc<str>,
    class: Arc<Class>,
    after_skipped_write: bool,
    /// Sent without its lock (`--read-only`), directly or as the prepared text.
    unlocked: bool,
    /// The prepared statement's text, for an execute.
    prepared: Option<String>,
}

impl Job {
    /// The statement's text as recorded (a prepared statement's for an execute).
    fn sql(&self) -> &str {
        match self.stmt.as_ref().and_then(|s| s.prepared.as_deref()) {
            Some(p) => p,
            None => self.rec.command.sql().unwrap_or(""),
        }
    }

    /// The text to send for a query or a prepare.
    fn wire_sql(&self) -> &str {
        match &self.wire {
            Wire::Unlocked(s) => s,
            _ => self.rec.command.sql().unwrap_or(""),
        }
    }
}

/// Captured times for the commands one session ran within one logged second, in order.
///
/// MariaDB's logs (and MySQL's slow log `SET timestamp`) give whole seconds, so every
/// command of a second would be due at its start, and the later ones, which cannot start
/// before the earlier ones end, would all count as late. The rule: the commands keep their
/// order and their durations (`latencies_us`: the slow log's `Query_time`; none from the
/// general log), and the rest of the second (think time, which the log does not show) is
/// spread evenly between them: command `i` is due at
/// `second + Σ_{k<i} latency_k + i × (1 s − Σ latency) / n`. When the durations add up to
/// more than the second, they are scaled into it. Every time stays within the second, so
/// commands of different seconds keep their order.
pub fn spread(second_us: i64, latencies_us: &[Option<u64>]) -> Vec<i64> {
    const SECOND: i64 = 1_000_000;
    let n = latencies_us.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    let lat: Vec<i64> = latencies_us
        .iter()
        .map(|l| l.unwrap_or(0).min(SECOND as u64) as i64)
        .collect();
    let busy: i64 = lat.iter().sum();
    let gap = (SECOND - busy).max(0) / n;
    let mut out = Vec::with_capacity(lat.len());
    let mut t = 0i64;
    for l in lat {
        out.push(second_us + t.min(SECOND - 1));
        let l = if busy > SECOND {
            ((l as i128 * SECOND as i128) / busy as i128) as i64
        } else {
            l
        };
        t += l + gap;
    }
    out
}

/// The dispatcher's state for one session.
#[derive(Default)]
struct Disp {
    seq: u64,
    pair: Option<Arc<Pair>>,
    in_txn: bool,
    skipped_write: bool,
    /// Prepared statements' texts, by id.
    prepared: HashMap<u32, String>,
    /// Records of the current whole second (when due times matter), not yet sent.
    group: Vec<Record>,
    quit: bool,
}

/// At most this many records wait in one lane's channel.
const LANE_QUEUE: usize = 1024;

type ReadResult = Result<Record, cutover_workload::WorkloadError>;

/// Records read ahead of the dispatcher, and how many go over at once.
const READ_QUEUE: usize = 4096;
const READ_BATCH: usize = 128;

/// The reader's batches, one record at a time.
struct Batches {
    rx: mpsc::Receiver<Vec<ReadResult>>,
    batch: std::vec::IntoIter<ReadResult>,
}

impl Batches {
    async fn recv(&mut self) -> Option<ReadResult> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }
}

/// Sends a job to a lane. When the lane's channel is full, waits for room for a quarter of
/// it rather than for one slot: the dispatcher wakes once per batch of records the lane
/// has taken, not once per record.
async fn send_job(tx: &mpsc::Sender<Arc<Job>>, job: Arc<Job>) -> bool {
    match tx.try_send(job) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(job)) => {
            // The permits are given back at once; this task is the channel's only sender,
            // so the room stays.
            if tx.reserve_many(LANE_QUEUE / 4).await.is_err() {
                return false;
            }
            tx.send(job).await.is_ok()
        }
    }
}

/// Replays `records` (in file order) against `target`, comparing with `baseline`.
///
/// Why the independent sides cannot deadlock. The waits are: (1) a lane waits for its
/// next record; (2) a statement waits for row locks on its own server; (3) a target lane
/// waits for the baseline lane of the same session to finish an earlier record (the ID
/// wait of [`Pair`]); (4) the dispatcher waits for room in a lane's channel. Baseline lanes
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
/// wait at all: the dispatcher keeps its records ([`Lanes`]) and goes on reading, so the
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

    // The reader thread: decompression and JSON decoding off the async workers. Records go
    // over in batches: one wake-up per batch, not per record.
    let (rec_tx, rx) = mpsc::channel::<Vec<ReadResult>>(READ_QUEUE / READ_BATCH);
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(READ_BATCH);
        for r in records {
            let stop = r.is_err();
            batch.push(r);
            if batch.len() == READ_BATCH || stop {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
                if rec_tx.blocking_send(full).is_err() || stop {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = rec_tx.blocking_send(batch);
        }
    });
    let mut rec_rx = Batches {
        rx,
        batch: Vec::new().into_iter(),
    };

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

    let mut d = Dispatcher {
        ctx: ctx.clone(),
        rules: opts.rules,
        lanes: Lanes::new(lane_limit),
        handles: Vec::new(),
        sessions: HashMap::new(),
        classes: Classes::new(opts.read_only),
        grouped: Vec::new(),
        closed: false,
    };
    // Due times matter only at a speed factor; then whole-second times are spread.
    let spreading = matches!(opts.speed, Speed::Factor(_));
    let mut current_second = first_ts.div_euclid(1_000_000);
    let mut workload_end = first_ts;
    let mut pending = first.map(Ok);
    let mut read_error = None;
    loop {
        let r = match pending.take() {
            Some(r) => r,
            None => match rec_rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        if cancel.is_cancelled() || d.closed {
            break;
        }
        workload_end = workload_end.max(r.ts_us);
        if !spreading {
            let at = r.ts_us;
            d.dispatch(r, at).await;
            continue;
        }
        // A new second closes every session's group of an earlier one.
        let second = r.ts_us.div_euclid(1_000_000);
        if second > current_second {
            current_second = second;
            d.flush_all().await;
        }
        let s = r.session;
        let same_group = d
            .sessions
            .get(&s)
            .and_then(|st| st.group.first())
            .map(|g| g.ts_us == r.ts_us);
        if same_group == Some(false) {
            d.flush(s).await;
        }
        if r.ts_us.rem_euclid(1_000_000) == 0 {
            let st = d.sessions.entry(s).or_default();
            if st.group.is_empty() {
                d.grouped.push(s);
            }
            st.group.push(r);
        } else {
            let at = r.ts_us;
            d.dispatch(r, at).await;
        }
    }
    if !cancel.is_cancelled() && read_error.is_none() {
        d.flush_all().await;
        d.end_all().await;
    }
    let lanes_used = d.lanes.all.len() as u64;
    let handles = std::mem::take(&mut d.handles);
    drop(d);
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

/// A lane's channel on the target and on the baseline.
type LaneTx = (mpsc::Sender<Arc<Job>>, Option<mpsc::Sender<Arc<Job>>>);

/// The outcome of a statement from its answers.
fn outcome(ctx: &Ctx, job: &Job, mut t: Answer, mut base: Option<Answer>) -> Outcome {
    // The caller only passes jobs that hold a statement.
    let (fingerprint, class, after_skipped_write, unlocked) = match job.stmt.as_ref() {
        Some(st) => (
            st.fingerprint.clone(),
            st.class.clone(),
            st.after_skipped_write,
            st.unlocked,
        ),
        None => (
            Arc::from(""),
            Arc::new(classify::classify("")),
            false,
            false,
        ),
    };
    // What cutover's own session set-up causes is not the target's behaviour.
    if ctx.status_mask != 0 {
        for a in std::iter::once(&mut t).chain(base.as_mut()) {
            if let Some(f) = a.status_flags.as_mut() {
                *f &= !ctx.status_mask;
            }
        }
    }
    let r = &job.rec;
    let kinds: Vec<Kind> = match (&base, &r.response) {
        (Some(b), _) => answer::compare(b, &t, class.ordered),
        (None, Some(captured)) => answer::compare_captured(captured, &t, ctx.status_mask),
        (None, None) => Vec::new(),
    };
    let baseline_us = base.as_ref().map(|b| b.latency.as_micros() as u64);
    let target_us = t.latency.as_micros() as u64;
    let sample = (!kinds.is_empty()).then(|| {
        let mut t = t;
        t.render_columns();
        let base = base.map(|mut b| {
            b.render_columns();
            b
        });
        Sample {
            session: r.session,
            sql: job.sql().to_string(),
            kinds: kinds.clone(),
            after_skipped_write,
            captured: if base.is_none() {
                r.response.clone()
            } else {
                None
            },
            baseline: base,
            target: t,
        }
    });
    Outcome::Ran(Box::new(Ran {
        fingerprint,
        nondeterministic: class.nondeterministic.clone(),
        after_skipped_write,
        unlocked,
        kinds,
        baseline_us,
        target_us,
        sample,
    }))
}

type Lane = (Side, tokio::task::JoinHandle<LaneDone>);

/// Records waiting for a lane, at most (all waiting sessions together).
const MAX_HELD: usize = 200_000;

/// The lanes and which session holds each. A session holds a lane from its first record
/// to its end; a session that finds none free waits with its records here (see [`run`] on
/// why this cannot deadlock).
struct Lanes {
    limit: usize,
    all: Vec<LaneTx>,
    free: Vec<usize>,
    bound: HashMap<u64, usize>,
    /// Sessions waiting for a lane, in the order they started.
    waiting: std::collections::VecDeque<u64>,
    held: HashMap<u64, Vec<Arc<Job>>>,
    held_total: usize,
    /// Sessions dropped for `MAX_HELD`: their later statements are not compared either.
    dropped: std::collections::HashSet<u64>,
}

impl Lanes {
    fn new(limit: usize) -> Lanes {
        Lanes {
            limit,
            all: Vec::new(),
            free: Vec::new(),
            bound: HashMap::new(),
            waiting: Default::default(),
            held: HashMap::new(),
            held_total: 0,
            dropped: Default::default(),
        }
    }
}

/// Reads the records in order, numbers them per session, decides once per statement what
/// both sides do with it, and hands it to the session's lane on each side.
struct Dispatcher {
    ctx: Arc<Ctx>,
    rules: Rules,
    lanes: Lanes,
    handles: Vec<Lane>,
    sessions: HashMap<u64, Disp>,
    classes: Classes,
    /// Sessions with a whole-second group waiting.
    grouped: Vec<u64>,
    /// A lane is gone (cancelled): stop.
    closed: bool,
}

impl Dispatcher {
    async fn flush_all(&mut self) {
        for s in std::mem::take(&mut self.grouped) {
            self.flush(s).await;
        }
    }

    /// Sends a session's whole-second group with its due times spread over the second.
    async fn flush(&mut self, session: u64) {
        let Some(st) = self.sessions.get_mut(&session) else {
            return;
        };
        let group = std::mem::take(&mut st.group);
        let Some(first) = group.first() else {
            return;
        };
        let lat: Vec<Option<u64>> = group
            .iter()
            .map(|r| r.response.as_ref().and_then(|x| x.latency_us))
            .collect();
        let times = spread(first.ts_us, &lat);
        for (r, at) in group.into_iter().zip(times) {
            self.dispatch(r, at).await;
        }
    }

    async fn dispatch(&mut self, r: Record, at_us: i64) {
        let session = r.session;
        let read_only = self.ctx.read_only;
        if self.lanes.dropped.contains(&session) {
            return self.dropped(r);
        }
        let st = self.sessions.entry(session).or_default();
        let pair = st.pair.get_or_insert_with(|| Arc::new(Pair::new())).clone();
        // Every record of the session is numbered, sent or not, so messages can name it.
        let seq = st.seq;
        st.seq += 1;
        let mut stmt = None;
        let mut wire = Wire::Recorded;
        match &r.command {
            Command::Query { sql } => {
                let (fp, class) = self.classes.get(sql, self.rules);
                if read_only {
                    if let Some(why) = &class.refusal {
                        if st.in_txn {
                            st.skipped_write = true;
                        }
                        let why = NotRun::new(Reason::ReadOnlyWrite, why.clone());
                        return self.ctx.not_compared(&fp, session, sql, &why);
                    }
                    if let Some(u) = &class.unlocked {
                        wire = Wire::Unlocked(u.clone());
                    }
                }
                let unlocked = wire != Wire::Recorded;
                stmt = Some(st.statement(fp, class, None, unlocked));
            }
            Command::Execute { stmt: id, .. } => {
                let Some(text) = st.prepared.get(id).cloned() else {
                    // Never sent, with or without --read-only: what it is cannot be known.
                    let shown = format!("EXECUTE stmt {id}");
                    let (fp, _) = self.classes.get(&shown, self.rules);
                    let why = NotRun::new(
                        Reason::PrepareMissing,
                        format!("statement {id} was not prepared in the recording (prepared before the capture began?)"),
                    );
                    return self.ctx.not_compared(&fp, session, &shown, &why);
                };
                let (fp, class) = self.classes.get(&text, self.rules);
                if read_only {
                    if let Some(why) = &class.refusal {
                        if st.in_txn {
                            st.skipped_write = true;
                        }
                        let why = NotRun::new(Reason::ReadOnlyWrite, why.clone());
                        return self.ctx.not_compared(&fp, session, &text, &why);
                    }
                }
                // Under --read-only a locking read was prepared without its lock.
                let unlocked = read_only && class.unlocked.is_some();
                stmt = Some(st.statement(fp, class, Some(text), unlocked));
            }
            Command::Prepare { stmt: id, sql } => {
                if read_only {
                    let (_, class) = self.classes.get(sql, self.rules);
                    if class.refusal.is_some() {
                        wire = Wire::Withheld;
                    } else if let Some(u) = &class.unlocked {
                        wire = Wire::Unlocked(u.clone());
                    }
                }
                if st.prepared.len() < 100_000 {
                    st.prepared.insert(*id, sql.clone());
                }
            }
            Command::Close { stmt: id } => {
                st.prepared.remove(id);
            }
            Command::Reset | Command::ChangeUser => {
                st.prepared.clear();
                st.in_txn = false;
                st.skipped_write = false;
            }
            Command::Quit => st.quit = true,
            Command::Connect | Command::InitDb { .. } => {}
        }
        if st.quit && st.group.is_empty() {
            self.sessions.remove(&session);
        }
        let job = Arc::new(Job {
            session,
            seq,
            at_us,
            rec: r,
            stmt,
            pair,
            wire,
            half: std::sync::Mutex::new(None),
            conflicts: std::sync::Mutex::new(Vec::new()),
        });
        self.route(job).await;
    }

    /// A record of a session dropped for the connection limit.
    fn dropped(&mut self, r: Record) {
        if r.command == Command::Quit {
            self.lanes.dropped.remove(&r.session);
        }
        let sql = match &r.command {
            Command::Query { sql } => sql.clone(),
            Command::Execute { stmt, .. } => format!("EXECUTE stmt {stmt}"),
            _ => return,
        };
        let (fp, _) = self.classes.get(&sql, self.rules);
        self.ctx.not_compared(&fp, r.session, &sql, &dropped_why());
    }

    /// Hands a job to its session's lane, or keeps it while the session waits for one.
    async fn route(&mut self, job: Arc<Job>) {
        let session = job.session;
        if let Some(&k) = self.lanes.bound.get(&session) {
            let quit = job.rec.command == Command::Quit;
            self.send(k, job).await;
            if quit {
                self.lanes.bound.remove(&session);
                self.release(k).await;
            }
            return;
        }
        if let Some(held) = self.lanes.held.get_mut(&session) {
            if self.lanes.held_total >= MAX_HELD {
                return self.drop_waiting(session, Some(job));
            }
            held.push(job);
            self.lanes.held_total += 1;
            return;
        }
        match self.take_lane() {
            Some(k) => {
                self.lanes.bound.insert(session, k);
                let quit = job.rec.command == Command::Quit;
                self.send(k, job).await;
                if quit {
                    self.lanes.bound.remove(&session);
                    self.release(k).await;
                }
            }
            None => {
                if self.lanes.held_total >= MAX_HELD {
                    self.lanes.waiting.push_back(session);
                    self.lanes.held.insert(session, Vec::new());
                    return self.drop_waiting(session, Some(job));
                }
                self.lanes.waiting.push_back(session);
                self.lanes.held.insert(session, vec![job]);
                self.lanes.held_total += 1;
            }
        }
    }

    /// A waiting session is given up (too many records waiting): every statement it holds
    /// and every later one is counted as not compared.
    fn drop_waiting(&mut self, session: u64, job: Option<Arc<Job>>) {
        self.lanes.waiting.retain(|s| *s != session);
        let mut jobs = self.lanes.held.remove(&session).unwrap_or_default();
        self.lanes.held_total -= jobs.len();
        jobs.extend(job);
        let mut quit = false;
        for j in jobs {
            quit |= j.rec.command == Command::Quit;
            if let Some(st) = &j.stmt {
                self.ctx
                    .not_compared(&st.fingerprint, session, j.sql(), &dropped_why());
            }
        }
        if !quit {
            self.lanes.dropped.insert(session);
        }
    }

    /// A free lane, or a new one while there are fewer than the limit.
    fn take_lane(&mut self) -> Option<usize> {
        if let Some(k) = self.lanes.free.pop() {
            return Some(k);
        }
        if self.lanes.all.len() >= self.lanes.limit {
            return None;
        }
        let mut spawn = |side: Side| {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            self.handles
                .push((side, tokio::spawn(run_lane(side, rx, self.ctx.clone()))));
            tx
        };
        let t = spawn(Side::Target);
        let b = self.ctx.baseline.is_some().then(|| spawn(Side::Baseline));
        self.lanes.all.push((t, b));
        Some(self.lanes.all.len() - 1)
    }

    /// Lane `k`'s session has ended: the first waiting session takes it (its records queue
    /// behind the end of the previous one, whose connection the lane closes first).
    async fn release(&mut self, k: usize) {
        while let Some(session) = self.lanes.waiting.pop_front() {
            if self.hand_over(session, k).await {
                self.lanes.bound.insert(session, k);
                return;
            }
        }
        self.lanes.free.push(k);
    }

    /// Sends a waiting session's records to lane `k`; whether the session goes on there
    /// (its `quit` is not among them).
    async fn hand_over(&mut self, session: u64, k: usize) -> bool {
        let jobs = self.lanes.held.remove(&session).unwrap_or_default();
        self.lanes.held_total -= jobs.len();
        let mut quit = false;
        for j in jobs {
            quit |= j.rec.command == Command::Quit;
            self.send(k, j).await;
        }
        !quit
    }

    /// At the end of the workload: sessions still holding a lane are ended (the workload
    /// has no more of them), then the waiting ones run, spread over the lanes.
    async fn end_all(&mut self) {
        let mut bound: Vec<(u64, usize)> = self.lanes.bound.drain().collect();
        bound.sort_by_key(|(_, k)| *k);
        for (session, k) in bound {
            let end = self.end_job(session);
            self.send(k, end).await;
            self.lanes.free.push(k);
        }
        let mut next = 0usize;
        while let Some(session) = self.lanes.waiting.pop_front() {
            if self.closed {
                break;
            }
            let k = match self.lanes.all.len() {
                0 => match self.take_lane() {
                    Some(k) => k,
                    None => break,
                },
                n => next % n,
            };
            next += 1;
            if self.hand_over(session, k).await {
                let end = self.end_job(session);
                self.send(k, end).await;
            }
        }
    }

    /// A `quit` the workload does not hold, ending a session at the end of the workload.
    fn end_job(&mut self, session: u64) -> Arc<Job> {
        let (seq, pair) = match self.sessions.remove(&session) {
            Some(st) => (st.seq, st.pair.unwrap_or_else(|| Arc::new(Pair::new()))),
            None => (0, Arc::new(Pair::new())),
        };
        Arc::new(Job {
            session,
            seq,
            at_us: self.ctx.first_ts,
            rec: Record {
                session,
                ts_us: self.ctx.first_ts,
                db: None,
                user: None,
                command: Command::Quit,
                response: None,
            },
            stmt: None,
            pair,
            wire: Wire::Recorded,
            half: std::sync::Mutex::new(None),
            conflicts: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn send(&mut self, k: usize, job: Arc<Job>) {
        let Some((t, b)) = self.lanes.all.get(k).cloned() else {
            return;
        };
        // The target's lane first, then the baseline's: see `run` on why this order.
        if !send_job(&t, job.clone()).await {
            self.closed = true;
        }
        if let Some(b) = b {
            if !send_job(&b, job).await {
                self.closed = true;
            }
        }
    }
}

fn dropped_why() -> NotRun {
    NotRun::new(
        Reason::ConnectionLimit,
        format!(
            "no lane free within --max-connections while {MAX_HELD} records already waited for one"
        ),
    )
}

/// Statements classified so far, with their fingerprints shared (one allocation per class,
/// not per statement). Under `--read-only` by their exact text, never by fingerprint: two
/// texts of one fingerprint can differ in what they do (an executable comment, a literal
/// in `INTO OUTFILE`), and what may be sent is decided for the text that is sent. Without
/// it (everything is sent) the rest of a class (order, nondeterminism, transaction edges)
/// follows the fingerprint, and one classification per class saves a parse per statement.
#[derive(Default)]
struct Classes {
    by_text: HashMap<String, (Arc<str>, Arc<Class>)>,
    fingerprints: HashMap<String, (Arc<str>, Option<Arc<Class>>)>,
    per_text: bool,
}

/// Texts and fingerprints remembered, at most.
const MAX_CLASSES: usize = 100_000;

impl Classes {
    fn new(per_text: bool) -> Classes {
        Classes {
            per_text,
            ..Classes::default()
        }
    }

    fn get(&mut self, sql: &str, rules: Rules) -> (Arc<str>, Arc<Class>) {
        if self.per_text {
            if let Some((f, c)) = self.by_text.get(sql) {
                return (f.clone(), c.clone());
            }
        }
        let fp = fingerprint(sql);
        let (f, known) = match self.fingerprints.get(&fp) {
            Some((f, c)) => (f.clone(), c.clone()),
            None => (Arc::from(fp.as_str()), None),
        };
        if !self.per_text {
            if let Some(c) = known {
                return (f, c);
            }
        }
        let c = Arc::new(classify::classify_with(sql, rules));
        if self.fingerprints.len() < MAX_CLASSES {
            let class = (!self.per_text).then(|| c.clone());
            self.fingerprints.entry(fp).or_insert((f.clone(), class));
        }
        if self.per_text && self.by_text.len() < MAX_CLASSES {
            self.by_text.insert(sql.to_string(), (f.clone(), c.clone()));
        }
        (f, c)
    }
}

impl Disp {
    /// Transaction tracking for a statement both sides run.
    fn statement(
        &mut self,
        fingerprint: Arc<str>,
        class: Arc<Class>,
        prepared: Option<String>,
        unlocked: bool,
    ) -> Stmt {
        if class.txn == Txn::Begin {
            self.in_txn = true;
            self.skipped_write = false;
        }
        let after_skipped_write = self.in_txn && self.skipped_write;
        if class.txn == Txn::End {
            self.in_txn = false;
            self.skipped_write = false;
        }
        Stmt {
            fingerprint,
            class,
            after_skipped_write,
            unlocked,
            prepared,
        }
    }
}

/// What a lane hands back when its channel closes.
struct LaneDone {
    lag: Histogram<u64>,
    errors: Vec<String>,
    sessions: u64,
}

/// One session on one side.
#[derive(Default)]
struct Session {
    conn: Option<mysql_async::Conn>,
    /// Prepared statements by the workload's id: the server's statement, or the error the
    /// server answered the prepare with (the execute's answer on this side).
    stmts: HashMap<u32, Result<mysql_async::Statement, answer::ServerErr>>,
    /// Captured (or baseline) generated IDs → this side's.
    ids: IdMap,
    /// This side's generated IDs → the baseline's, for result cells.
    unmap: IdMap,
    db: Option<String>,
    /// Why the session stopped on this side: its later statements are not compared.
    ended: Option<NotRun>,
    /// The first statement not compared after it stopped has been named.
    named: bool,
    /// Target: statements that generated an ID whose baseline counterpart is not read yet:
    /// (seq, target's ID, captured ID).
    pending_ids: Vec<(u64, u64, Option<u64>)>,
    /// The current transaction's statements, for the context of a concurrency error.
    txn: concurrency::Transaction,
}

/// At most this many generated IDs are remembered per session side.
const MAX_IDS: usize = 100_000;

fn role(side: Side) -> &'static str {
    match side {
        Side::Target => "target",
        Side::Baseline => "baseline",
    }
}

async fn run_lane(side: Side, mut rx: mpsc::Receiver<Arc<Job>>, ctx: Arc<Ctx>) -> LaneDone {
    let db = match side {
        Side::Target => ctx.target.clone(),
        Side::Baseline => match ctx.baseline.clone() {
            Some(b) => b,
            None => ctx.target.clone(),
        },
    };
    let mut lag = report::hist();
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    let mut errors = Vec::new();
    let mut seen = 0u64;
    // The connection of the lane's previous session, reset for the next one: a lane keeps
    // one connection, so the server never sees one closing while the next opens.
    let mut spare: Option<mysql_async::Conn> = None;
    while let Some(job) = rx.recv().await {
        if ctx.cancel.is_cancelled() {
            interrupted(&ctx, side, &job);
            break;
        }
        if let Some(due) = ctx.due(job.at_us) {
            let now = Instant::now();
            // The lag is the statements': the session ends the replay adds at the end of the
            // workload carry the first record's time and are always "late" by all of it.
            let measured = job.stmt.is_some();
            if let (Side::Target, Some(p), true) = (side, &ctx.progress, measured) {
                p.behind(now.saturating_duration_since(due));
            }
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = ctx.cancel.cancelled() => {
                        interrupted(&ctx, side, &job);
                        break;
                    }
                }
                if measured {
                    let _ = lag.record(0);
                }
            } else if measured {
                let _ = lag.record((now - due).as_micros() as u64);
            }
        }
        let s = match sessions.entry(job.session) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                seen += 1;
                if let (Side::Target, Some(p)) = (side, &ctx.progress) {
                    p.session(true);
                }
                let conn = match spare.take() {
                    Some(c) => reuse(&db, c, job.rec.db.as_deref(), ctx.read_only).await,
                    None => None,
                };
                e.insert(Session {
                    db: job.rec.db.clone(),
                    conn,
                    ..Session::default()
                })
            }
        };
        let answer: Option<SideAnswer> = match &s.ended {
            Some(ended) => {
                let why = ended.detail.clone();
                // A refused connection stays the reason for every statement it kept out.
                let reason = match ended.reason {
                    Reason::ConnectionRefused => Reason::ConnectionRefused,
                    _ => Reason::SessionEnded,
                };
                job.stmt.as_ref().map(|_| {
                    if !s.named {
                        s.named = true;
                        errors.push(format!(
                            "session {} on the {}: {why}; first statement not compared: command {} of the session: {}; nor any later one of the session",
                            job.session,
                            role(side),
                            job.seq + 1,
                            report::one_line(job.sql(), 120)
                        ));
                    }
                    Err(NotRun::new(
                        reason,
                        format!("session {} stopped earlier: {why}", job.session),
                    ))
                })
            }
            None => match step(&ctx, &db, side, s, &job).await {
                Ok(a) => a.map(Ok),
                // Not the session's end: the next statements still run.
                Err(e) if matches!(e.reason, Reason::Interrupted | Reason::PrepareMissing) => {
                    Some(Err(e))
                }
                Err(e) => {
                    s.ended = Some(e.clone());
                    if job.stmt.is_some() {
                        s.named = true;
                        errors.push(format!(
                            "session {} on the {}: {}; first statement not compared: command {} of the session: {}; nor any later one of the session",
                            job.session,
                            role(side),
                            e.detail,
                            job.seq + 1,
                            report::one_line(job.sql(), 120)
                        ));
                        Some(Err(e))
                    } else {
                        None
                    }
                }
            },
        };
        if side == Side::Baseline {
            if let Some(id) = answer
                .as_ref()
                .and_then(|a| a.as_ref().ok())
                .and_then(|a| a.last_insert_id)
            {
                if let Ok(mut m) = job.pair.base_ids.lock() {
                    if m.len() < MAX_IDS {
                        m.insert(job.seq, id);
                    }
                }
            }
            job.pair.base_done.send_replace(job.seq + 1);
        }
        if job.stmt.is_some() {
            let answer =
                answer.unwrap_or_else(|| Err(NotRun::new(Reason::DriverError, "no answer")));
            ctx.answered(side, &job, answer);
        }
        if job.rec.command == Command::Quit {
            ctx.forget(side, job.session);
            if let Some(mut s) = sessions.remove(&job.session) {
                if let (Side::Target, Some(p)) = (side, &ctx.progress) {
                    p.session(false);
                }
                match s.conn.take() {
                    Some(c) if !ctx.cancel.is_cancelled() => {
                        if let Some(old) = spare.replace(c) {
                            let _ = old.disconnect().await;
                        }
                    }
                    c => {
                        if let Some(c) = c {
                            let _ = c.disconnect().await;
                        }
                    }
                }
            }
        }
    }
    if let Some(c) = spare.take() {
        let _ = c.disconnect().await;
    }
    // Interrupted: what is left in the channel is not compared either.
    if ctx.cancel.is_cancelled() {
        while let Ok(job) = rx.try_recv() {
            interrupted(&ctx, side, &job);
        }
    }
    for (_, mut s) in sessions.drain() {
        if let (Side::Target, Some(p)) = (side, &ctx.progress) {
            p.session(false);
        }
        close(&mut s).await;
    }
    LaneDone {
        lag,
        errors,
        sessions: seen,
    }
}

/// A statement the replay was interrupted before running.
fn interrupted(ctx: &Ctx, side: Side, job: &Job) {
    if job.stmt.is_some() {
        ctx.answered(
            side,
            job,
            Err(NotRun::new(Reason::Interrupted, INTERRUPTED)),
        );
    }
}

/// The lane's previous connection made ready for a new session: COM_RESET_CONNECTION
/// (session variables, temporary tables, prepared statements and any transaction go), the
/// guard again, and the session's database; without one, a change of user back to the
/// DSN's database (a reset keeps the current one). `None`: it could not be reused.
async fn reuse(
    db: &Db,
    mut c: mysql_async::Conn,
    session_db: Option<&str>,
    read_only: bool,
) -> Option<mysql_async::Conn> {
    let ready = async {
        match session_db {
            Some(d) => {
                c.reset().await.ok()?;
                if c.query_drop(format!("USE {}", cutover_core::sql::quote_ident(d)))
                    .await
                    .is_err()
                {
                    // Missing on this side: as on a fresh connection, in none of the
                    // previous session's databases.
                    c.change_user(Default::default()).await.ok()?;
                }
            }
            None => c.change_user(Default::default()).await.ok()?,
        }
        guard(db, &mut c, read_only).await.ok()?;
        Some(())
    };
    match ready.await {
        Some(()) => Some(c),
        None => {
            let _ = c.disconnect().await;
            None
        }
    }
}

async fn close(s: &mut Session) {
    if let Some(c) = s.conn.take() {
        let _ = c.disconnect().await;
    }
}

/// Why a connection failed: refused by the server for its connection limit (1040 too many
/// connections, 1203 too many for the user), or another error.
fn connect_reason(message: &str) -> Reason {
    if message.contains("ERROR 1040 ") || message.contains("ERROR 1203 ") {
        Reason::ConnectionRefused
    } else {
        Reason::DriverError
    }
}

/// The `READ ONLY` guard on a session (`--read-only`): a second line of defence after the
/// classifier, applied at connect and again after every reset and change of user (both
/// drop it).
async fn guard(db: &Db, c: &mut mysql_async::Conn, read_only: bool) -> Result<(), NotRun> {
    let mut setup = Vec::new();
    if read_only {
        setup.push("SET SESSION TRANSACTION READ ONLY".to_string());
    }
    // `--query-timeout`: the Db's own session set-up is not on these connections.
    if let Some(limit) = db.options().query_timeout {
        setup.push(db.flavor().query_timeout_sql(limit));
    }
    for sql in setup {
        c.query_drop(sql).await.map_err(|e| {
            NotRun::new(
                Reason::DriverError,
                format!("{} session set-up: {e}", db.role()),
            )
        })?;
    }
    Ok(())
}

/// Opens a side's connection when the session first needs it.
async fn open(db: &Db, s: &mut Session, read_only: bool) -> Result<(), NotRun> {
    if s.conn.is_some() {
        return Ok(());
    }
    let mut c = db.standalone().await.map_err(|e| {
        let m = e.to_string();
        NotRun::new(connect_reason(&m), m)
    })?;
    guard(db, &mut c, read_only).await?;
    if let Some(d) = &s.db {
        // A database missing on one side is an answer to compare, not a set-up failure:
        // the statements that follow will say so.
        let _ = c
            .query_drop(format!("USE {}", cutover_core::sql::quote_ident(d)))
            .await;
    }
    s.conn = Some(c);
    Ok(())
}

/// Runs one record on one side; for a statement, its answer.
async fn step(
    ctx: &Ctx,
    db: &Db,
    side: Side,
    s: &mut Session,
    job: &Arc<Job>,
) -> Result<Option<Answer>, NotRun> {
    let r = &job.rec;
    match &r.command {
        Command::Connect | Command::ChangeUser => {
            // Passwords are not captured: the replay logs in as the DSN's user. A change of
            // user resets the session like COM_CHANGE_USER does.
            if r.command == Command::ChangeUser {
                reset(ctx, db, s).await?;
                ctx.forget(side, job.session);
            }
            s.db = r.db.clone();
            open(db, s, ctx.read_only).await?;
            if r.command == Command::ChangeUser {
                if let Some(d) = r.db.clone() {
                    use_db(s, &d).await;
                }
            }
            Ok(None)
        }
        Command::InitDb { db: name } => {
            open(db, s, ctx.read_only).await?;
            s.db = Some(name.clone());
            use_db(s, name).await;
            Ok(None)
        }
        Command::Reset => {
            reset(ctx, db, s).await?;
            ctx.forget(side, job.session);
            Ok(None)
        }
        Command::Quit => Ok(None),
        Command::Close { stmt } => {
            if let (Some(Ok(st)), Some(c)) = (s.stmts.remove(stmt), s.conn.as_mut()) {
                let _ = c.close(st).await;
            }
            Ok(None)
        }
        Command::Prepare { stmt, .. } => {
            if job.wire == Wire::Withheld {
                return Ok(None);
            }
            open(db, s, ctx.read_only).await?;
            if let Some(c) = s.conn.as_mut() {
                match c.prep(job.wire_sql()).await {
                    Ok(st) => {
                        s.stmts.insert(*stmt, Ok(st));
                    }
                    Err(mysql_async::Error::Server(e)) => {
                        s.stmts.insert(
                            *stmt,
                            Err(answer::ServerErr {
                                code: e.code,
                                state: e.state,
                                message: e.message,
                            }),
                        );
                    }
                    Err(e) => {
                        return Err(NotRun::new(
                            Reason::DriverError,
                            format!("prepare of statement {stmt}: {e}"),
                        ))
                    }
                }
            }
            Ok(None)
        }
        Command::Query { .. } | Command::Execute { .. } => {
            statement(ctx, db, side, s, job).await.map(Some)
        }
    }
}

async fn use_db(s: &mut Session, db: &str) {
    let q = format!("USE {}", cutover_core::sql::quote_ident(db));
    if let Some(c) = s.conn.as_mut() {
        let _ = c.query_drop(q.as_str()).await;
    }
}

/// COM_RESET_CONNECTION (a `reset` record, or the reset a change of user implies): it drops
/// the `READ ONLY` guard with the rest of the session state, so the guard goes on again
/// before anything else is sent.
async fn reset(ctx: &Ctx, db: &Db, s: &mut Session) -> Result<(), NotRun> {
    if let Some(c) = s.conn.as_mut() {
        c.reset().await.map_err(|e| {
            NotRun::new(Reason::DriverError, format!("reset of the connection: {e}"))
        })?;
        guard(db, c, ctx.read_only).await?;
    }
    s.stmts.clear();
    s.ids.clear();
    s.unmap.clear();
    s.pending_ids.clear();
    s.txn.clear();
    Ok(())
}

/// The target's ID wait: before a statement, the baseline's answers to the session's
/// earlier statements that generated an ID on the target, so the IDs map both ways.
async fn resolve_ids(ctx: &Ctx, s: &mut Session, job: &Job) -> Result<(), NotRun> {
    let Some(last) = s.pending_ids.last().map(|p| p.0) else {
        return Ok(());
    };
    let mut done = job.pair.base_done.subscribe();
    tokio::select! {
        r = done.wait_for(|d| *d > last) => {
            r.map_err(|_| NotRun::new(Reason::SessionEnded, "the baseline stopped"))?;
        }
        _ = ctx.cancel.cancelled() => return Err(NotRun::new(Reason::Interrupted, INTERRUPTED)),
    }
    let mut base = match job.pair.base_ids.lock() {
        Ok(m) => m,
        Err(_) => {
            return Err(NotRun::new(
                Reason::DriverError,
                "the baseline's IDs are unreadable",
            ))
        }
    };
    for (seq, tid, captured) in s.pending_ids.drain(..) {
        let b = base.get(&seq).copied();
        if let Some(from) = captured.or(b).filter(|f| *f != tid) {
            if s.ids.len() < MAX_IDS {
                s.ids.insert(from, tid);
            }
        }
        if let Some(b) = b.filter(|b| *b != tid) {
            if s.unmap.len() < MAX_IDS {
                s.unmap.insert(tid, b);
            }
        }
    }
    // What the target has passed is never needed again.
    *base = base.split_off(&(last + 1));
    Ok(())
}

/// What a statement interrupted in flight reports (not a session error).
const INTERRUPTED: &str = "interrupted";

/// Stops the statement running on connection `id` (from a connection of its own).
async fn kill_query(db: &Db, id: u32) {
    let kill = async {
        if let Ok(mut c) = db.standalone().await {
            let _ = c.query_drop(format!("KILL QUERY {id}")).await;
            let _ = c.disconnect().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), kill).await;
}

/// Runs one statement (text, or an execute of a prepared one) on one side.
async fn statement(
    ctx: &Ctx,
    db: &Db,
    side: Side,
    s: &mut Session,
    job: &Arc<Job>,
) -> Result<Answer, NotRun> {
    let r = &job.rec;
    if side == Side::Target && ctx.baseline.is_some() {
        resolve_ids(ctx, s, job).await?;
    }
    open(db, s, ctx.read_only).await?;
    // The slow log says which database a statement ran in but not the `USE` that chose it.
    if let Some(d) = &r.db {
        if s.db.as_deref() != Some(d.as_str()) {
            use_db(s, d).await;
            s.db = Some(d.clone());
        }
    }
    let Some(conn) = s.conn.as_mut() else {
        return Err(NotRun::new(Reason::DriverError, "no connection"));
    };
    let id = conn.id();
    ctx.started(side, job);
    s.txn.start(job, ctx.now_us());
    let a = {
        let run = async {
            match &r.command {
                Command::Execute { stmt, params } => match s.stmts.get(stmt) {
                    Some(Ok(st)) => {
                        Ok(answer::execute(conn, st, params::positional(params), &s.unmap).await)
                    }
                    // The prepare failed on this side: that is its answer.
                    Some(Err(e)) => Ok(Answer {
                        error: Some(e.clone()),
                        ..Answer::default()
                    }),
                    None => Err(NotRun::new(
                        Reason::PrepareMissing,
                        format!("statement {stmt} is not prepared on this connection"),
                    )),
                },
                _ => {
                    let sql = job.wire_sql();
                    let text = answer::map_ids(sql, &s.ids);
                    Ok(answer::query(conn, text.as_deref().unwrap_or(sql), &s.unmap).await)
                }
            }
        };
        tokio::pin!(run);
        tokio::select! {
            a = &mut run => {
                let a = a.inspect_err(|_| ctx.ended(side, job, &mut s.txn, None))?;
                ctx.ended(side, job, &mut s.txn, a.error.as_ref());
                a
            }
            _ = ctx.cancel.cancelled() => {
                // Interrupted with a statement in flight: the server stops it (`KILL QUERY`
                // from another connection, as `Db::kill_running` does for pooled ones), and
                // its answer is not compared.
                kill_query(db, id).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut run).await;
                ctx.ended(side, job, &mut s.txn, None);
                return Err(NotRun::new(Reason::Interrupted, INTERRUPTED));
            }
        }
    };
    if a.broken {
        return Err(NotRun::new(
            Reason::DriverError,
            a.error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "connection lost".into()),
        ));
    }
    // Generated IDs: remember how this session's IDs correspond.
    let captured = r.response.as_ref().and_then(|x| x.last_insert_id);
    if let Some(id) = a.last_insert_id {
        match side {
            // With a baseline, the target maps after the baseline's answer (`resolve_ids`).
            Side::Target if ctx.baseline.is_some() => {
                if s.pending_ids.len() < MAX_IDS {
                    s.pending_ids.push((job.seq, id, captured));
                }
            }
            _ => {
                if let Some(c) = captured.filter(|c| *c != id) {
                    if s.ids.len() < MAX_IDS {
                        s.ids.insert(c, id);
                    }
                }
            }
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_second_is_spread_by_order_and_duration() {
        // Three commands, 100 ms of work: 900 ms of think time, 300 ms after each.
        let t = spread(5_000_000, &[Some(50_000), Some(50_000), None]);
        assert_eq!(t, vec![5_000_000, 5_350_000, 5_700_000]);
        // Without durations (the general log): evenly.
        assert_eq!(spread(0, &[None, None]), vec![0, 500_000]);
        // Longer than the second: durations scaled into it.
        let t = spread(0, &[Some(900_000), Some(300_000), Some(0)]);
        assert_eq!(t, vec![0, 750_000, 999_999]);
        assert!(spread(7, &[]).is_empty());
    }

    #[test]
    fn a_statement_is_classified_by_its_own_text_not_by_its_fingerprint() {
        // The fingerprint expands MariaDB's executable comment, so both texts are one
        // class; once the first (a read, to a classifier that does not expand it) is
        // known, the second must still be judged by itself.
        let hidden = "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */";
        let plain = "DELETE FROM t WHERE id IN (SELECT 21)";
        let mut c = Classes::new(true);
        let (f1, _) = c.get(hidden, Rules::default());
        let (f2, class) = c.get(plain, Rules::default());
        assert_eq!(f1, f2);
        assert!(
            Arc::ptr_eq(&f1, &f2),
            "one fingerprint allocation per class"
        );
        assert!(class.refusal.is_some(), "{class:?}");
        // And the other way round, from the cache.
        let (_, again) = c.get(plain, Rules::default());
        assert!(again.refusal.is_some());
        let (_, read) = c.get("SELECT 13", Rules::default());
        assert!(read.refusal.is_none());
    }

    #[test]
    fn the_default_connection_limit_is_half_the_servers_at_most_200() {
        assert_eq!(default_max_connections(151), 75);
        assert_eq!(default_max_connections(20), 10);
        assert_eq!(default_max_connections(100_000), 200);
        // TiDB: 0 is no limit.
        assert_eq!(default_max_connections(0), 200);
        assert_eq!(default_max_connections(1), 2);
    }

    proptest! {
        #[test]
        fn spread_keeps_order_and_stays_in_the_second(
            second in -1_000_000i64..1_000_000_000,
            lat in proptest::collection::vec(proptest::option::of(0u64..3_000_000), 0..200),
        ) {
            let second = second * 1_000_000;
            let t = spread(second, &lat);
            prop_assert_eq!(t.len(), lat.len());
            if let Some(f) = t.first() {
                prop_assert_eq!(*f, second);
            }
            for w in t.windows(2) {
                prop_assert!(w[0] <= w[1]);
            }
            for x in &t {
                prop_assert!(*x >= second && *x < second + 1_000_000);
            }
        }
    }
}
