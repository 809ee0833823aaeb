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
use crate::classify::{Class, Txn};
use crate::report::{Collector, Outcome, Ran, Report, Sample};

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
    /// `None`: a connection per captured session; `Some(n)`: sessions spread over `n` lanes
    /// (each session keeps its own connections; a lane runs its sessions' commands in
    /// captured order).
    pub lanes: Option<usize>,
}

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
    speed: Speed,
    /// When the replay started and the captured time of the first record.
    start: Instant,
    first_ts: i64,
    cancel: CancellationToken,
    /// Per class totals; lanes add their outcomes under the lock (a few histogram records).
    collector: std::sync::Mutex<Collector>,
    two_sides: bool,
}

impl Ctx {
    fn add(&self, o: Outcome) {
        if let Ok(mut c) = self.collector.lock() {
            c.add(o);
        }
    }

    /// One side's answer to a statement: compared and collected when it is the second.
    fn answered(&self, side: Side, job: &Job, answer: Option<Answer>) {
        if !self.two_sides {
            return self.add(outcome(job, answer, None));
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
        match b {
            Some(b) => self.add(outcome(job, t, Some(b))),
            None => self.add(outcome(job, None, None)),
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
    /// The answer of the side that finished first (`Some(None)`: it could not run it),
    /// until the other side's arrives: the two are compared by whichever lane comes second.
    half: std::sync::Mutex<Option<Option<Answer>>>,
}

struct Stmt {
    fingerprint: Arc<str>,
    class: Arc<Class>,
    after_skipped_write: bool,
    /// The prepared statement's text, for an execute.
    prepared: Option<String>,
}

impl Job {
    /// The statement's text (a prepared statement's for an execute).
    fn sql(&self) -> &str {
        match self.stmt.as_ref().and_then(|s| s.prepared.as_deref()) {
            Some(p) => p,
            None => self.rec.command.sql().unwrap_or(""),
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
        speed: opts.speed,
        start: Instant::now(),
        first_ts,
        cancel: cancel.clone(),
        collector: std::sync::Mutex::new(Collector::default()),
        two_sides,
    });

    let mut d = Dispatcher {
        ctx: ctx.clone(),
        lanes_opt: opts.lanes,
        lanes: HashMap::new(),
        handles: Vec::new(),
        sessions: HashMap::new(),
        classes: HashMap::new(),
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
    if !cancel.is_cancelled() {
        d.flush_all().await;
    }
    let handles = std::mem::take(&mut d.handles);
    drop(d);
    let _ = reader.await;
    let mut lag = report::hist();
    let mut session_errors = Vec::new();
    let mut session_ids = 0u64;
    for (side, h) in handles {
        if let Ok(done) = h.await {
            let _ = lag.add(&done.lag);
            session_errors.extend(done.errors);
            if side == Side::Target {
                session_ids += done.sessions;
            }
        }
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
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        statements: c.statements,
        replayed: c.replayed,
        skipped: c.skipped,
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
        classes: c.classes(),
    })
}

/// A lane's channel on the target and on the baseline.
type LaneTx = (mpsc::Sender<Arc<Job>>, Option<mpsc::Sender<Arc<Job>>>);

/// The outcome of a statement from its answers (`target` `None`: not replayed).
fn outcome(job: &Job, target: Option<Answer>, base: Option<Answer>) -> Outcome {
    let Some(st) = job.stmt.as_ref() else {
        return Outcome::Skipped {
            fingerprint: Arc::from(""),
        };
    };
    let Some(t) = target else {
        return Outcome::Skipped {
            fingerprint: st.fingerprint.clone(),
        };
    };
    let r = &job.rec;
    let kinds: Vec<Kind> = match (&base, &r.response) {
        (Some(b), _) => answer::compare(b, &t, st.class.ordered),
        (None, Some(captured)) => answer::compare_captured(captured, &t),
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
            after_skipped_write: st.after_skipped_write,
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
        fingerprint: st.fingerprint.clone(),
        nondeterministic: st.class.nondeterministic.clone(),
        after_skipped_write: st.after_skipped_write,
        kinds,
        baseline_us,
        target_us,
        sample,
    }))
}

type Lane = (Side, tokio::task::JoinHandle<LaneDone>);

/// Reads the records in order, numbers them per session, decides once per statement what
/// both sides do with it, and hands it to the session's lane on each side.
struct Dispatcher {
    ctx: Arc<Ctx>,
    lanes_opt: Option<usize>,
    lanes: HashMap<u64, LaneTx>,
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
        let st = self.sessions.entry(session).or_default();
        let pair = st.pair.get_or_insert_with(|| Arc::new(Pair::new())).clone();
        let mut stmt = None;
        match &r.command {
            Command::Query { sql } => {
                let (fp, class) = class_of(&mut self.classes, sql);
                if read_only && !class.read_only {
                    if st.in_txn {
                        st.skipped_write = true;
                    }
                    return self.skipped(fp).await;
                }
                stmt = Some(st.statement(fp, class, None));
            }
            Command::Execute { stmt: id, .. } => {
                let text = st.prepared.get(id).cloned();
                let shown = text.clone().unwrap_or_else(|| format!("EXECUTE stmt {id}"));
                let (fp, class) = class_of(&mut self.classes, &shown);
                if read_only && text.is_some() && !class.read_only {
                    if st.in_txn {
                        st.skipped_write = true;
                    }
                    return self.skipped(fp).await;
                }
                stmt = Some(st.statement(fp, class, Some(shown)));
            }
            Command::Prepare { stmt: id, sql } => {
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
        let seq = st.seq;
        st.seq += 1;
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
            half: std::sync::Mutex::new(None),
        });
        let (t, b) = self.lane(session);
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

    async fn skipped(&mut self, fp: Arc<str>) {
        self.ctx.add(Outcome::Skipped { fingerprint: fp });
    }

    fn lane(&mut self, session: u64) -> LaneTx {
        let key = match self.lanes_opt {
            None => session,
            Some(n) => session % n.max(1) as u64,
        };
        if let Some((t, b)) = self.lanes.get(&key) {
            return (t.clone(), b.clone());
        }
        let mut spawn = |side: Side| {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            self.handles
                .push((side, tokio::spawn(run_lane(side, rx, self.ctx.clone()))));
            tx
        };
        let t = spawn(Side::Target);
        let b = self.ctx.baseline.is_some().then(|| spawn(Side::Baseline));
        self.lanes.insert(key, (t.clone(), b.clone()));
        (t, b)
    }
}

/// A statement class by its fingerprint: the fingerprint shared (one allocation per class,
/// not per statement) and what the statement is, decided once per class.
type Classes = HashMap<String, (Arc<str>, Arc<Class>)>;

fn class_of(classes: &mut Classes, sql: &str) -> (Arc<str>, Arc<Class>) {
    let fp = fingerprint(sql);
    if let Some((f, c)) = classes.get(&fp) {
        return (f.clone(), c.clone());
    }
    let c = Arc::new(classify::classify(sql));
    let f: Arc<str> = Arc::from(fp.as_str());
    if classes.len() < 100_000 {
        classes.insert(fp, (f.clone(), c.clone()));
    }
    (f, c)
}

impl Disp {
    /// Transaction tracking for a statement both sides run.
    fn statement(
        &mut self,
        fingerprint: Arc<str>,
        class: Arc<Class>,
        prepared: Option<String>,
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
    stmts: HashMap<u32, mysql_async::Statement>,
    /// Captured (or baseline) generated IDs → this side's.
    ids: IdMap,
    /// This side's generated IDs → the baseline's, for result cells.
    unmap: IdMap,
    db: Option<String>,
    broken: bool,
    /// Target: statements that generated an ID whose baseline counterpart is not read yet:
    /// (seq, target's ID, captured ID).
    pending_ids: Vec<(u64, u64, Option<u64>)>,
}

/// At most this many generated IDs are remembered per session side.
const MAX_IDS: usize = 100_000;

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
    while let Some(job) = rx.recv().await {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if let Some(due) = ctx.due(job.at_us) {
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = ctx.cancel.cancelled() => break,
                }
                let _ = lag.record(0);
            } else {
                let _ = lag.record((now - due).as_micros() as u64);
            }
        }
        let s = sessions.entry(job.session).or_insert_with(|| {
            seen += 1;
            Session {
                db: job.rec.db.clone(),
                ..Session::default()
            }
        });
        let answer = if s.broken {
            None
        } else {
            match step(&ctx, &db, side, s, &job).await {
                Ok(a) => a,
                Err(_) if ctx.cancel.is_cancelled() => None,
                Err(e) => {
                    s.broken = true;
                    let role = match side {
                        Side::Target => "target",
                        Side::Baseline => "baseline",
                    };
                    errors.push(format!("session {} on the {role}: {e}", job.session));
                    None
                }
            }
        };
        if side == Side::Baseline {
            if let Some(id) = answer.as_ref().and_then(|a| a.last_insert_id) {
                if let Ok(mut m) = job.pair.base_ids.lock() {
                    if m.len() < MAX_IDS {
                        m.insert(job.seq, id);
                    }
                }
            }
            job.pair.base_done.send_replace(job.seq + 1);
        }
        if job.stmt.is_some() {
            ctx.answered(side, &job, answer);
        }
        if job.rec.command == Command::Quit {
            if let Some(mut s) = sessions.remove(&job.session) {
                close(&mut s).await;
            }
        }
    }
    for (_, mut s) in sessions.drain() {
        close(&mut s).await;
    }
    LaneDone {
        lag,
        errors,
        sessions: seen,
    }
}

async fn close(s: &mut Session) {
    if let Some(c) = s.conn.take() {
        let _ = c.disconnect().await;
    }
}

/// Opens a side's connection when the session first needs it.
async fn open(db: &Db, s: &mut Session, read_only: bool) -> Result<(), String> {
    if s.conn.is_some() {
        return Ok(());
    }
    let mut c = db.standalone().await.map_err(|e| e.to_string())?;
    if read_only {
        c.query_drop("SET SESSION TRANSACTION READ ONLY")
            .await
            .map_err(|e| format!("{} session set-up: {e}", db.role()))?;
    }
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
    job: &Job,
) -> Result<Option<Answer>, String> {
    let r = &job.rec;
    match &r.command {
        Command::Connect | Command::ChangeUser => {
            // Passwords are not captured: the replay logs in as the DSN's user. A change of
            // user resets the session like COM_CHANGE_USER does.
            if r.command == Command::ChangeUser {
                reset(s).await;
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
            reset(s).await;
            Ok(None)
        }
        Command::Quit => Ok(None),
        Command::Close { stmt } => {
            if let (Some(st), Some(c)) = (s.stmts.remove(stmt), s.conn.as_mut()) {
                let _ = c.close(st).await;
            }
            Ok(None)
        }
        Command::Prepare { stmt, sql } => {
            open(db, s, ctx.read_only).await?;
            if let Some(c) = s.conn.as_mut() {
                if let Ok(st) = c.prep(sql.as_str()).await {
                    s.stmts.insert(*stmt, st);
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

async fn reset(s: &mut Session) {
    if let Some(c) = s.conn.as_mut() {
        let _ = c.reset().await;
    }
    s.stmts.clear();
    s.ids.clear();
    s.unmap.clear();
    s.pending_ids.clear();
}

/// The target's ID wait: before a statement, the baseline's answers to the session's
/// earlier statements that generated an ID on the target, so the IDs map both ways.
async fn resolve_ids(ctx: &Ctx, s: &mut Session, job: &Job) -> Result<(), String> {
    let Some(last) = s.pending_ids.last().map(|p| p.0) else {
        return Ok(());
    };
    let mut done = job.pair.base_done.subscribe();
    tokio::select! {
        r = done.wait_for(|d| *d > last) => { r.map_err(|_| "the baseline stopped".to_string())?; }
        _ = ctx.cancel.cancelled() => return Err(INTERRUPTED.into()),
    }
    let mut base = match job.pair.base_ids.lock() {
        Ok(m) => m,
        Err(_) => return Err("the baseline's IDs are unreadable".into()),
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
    job: &Job,
) -> Result<Answer, String> {
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
        return Err("no connection".into());
    };
    let id = conn.id();
    let a = {
        let run = async {
            match &r.command {
                Command::Execute { stmt, params } => match s.stmts.get(stmt) {
                    Some(st) => {
                        answer::execute(conn, st, params::positional(params), &s.unmap).await
                    }
                    None => Answer {
                        error: Some(answer::ServerErr {
                            code: 1243,
                            state: "HY000".into(),
                            message: format!("unknown prepared statement {stmt}"),
                        }),
                        ..Answer::default()
                    },
                },
                _ => {
                    let sql = r.command.sql().unwrap_or("");
                    let text = answer::map_ids(sql, &s.ids);
                    answer::query(conn, text.as_deref().unwrap_or(sql), &s.unmap).await
                }
            }
        };
        tokio::pin!(run);
        tokio::select! {
            a = &mut run => a,
            _ = ctx.cancel.cancelled() => {
                // Interrupted with a statement in flight: the server stops it (`KILL QUERY`
                // from another connection, as `Db::kill_running` does for pooled ones), and
                // its answer is not compared.
                kill_query(db, id).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut run).await;
                return Err(INTERRUPTED.into());
            }
        }
    };
    if a.broken {
        return Err(a
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "connection lost".into()));
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
