//! Replay: each captured session on its own connection, its commands in order, sessions
//! concurrent as captured, every statement on the target and (when given) the baseline,
//! every answer compared.
//!
//! Data flow: workload file → reader thread (blocking, decompresses) → dispatcher → one
//! *lane* per session (or `--sessions N` lanes, sessions spread over them) over a bounded
//! channel → the lane waits for the command's captured time (scaled by `speed`), runs it on
//! both sides at once, compares → [`report::Outcome`] → collector (per class totals,
//! histograms, samples) → [`Report`].
//!
//! Memory stays flat: the reader holds one record, channels are bounded, the collector keeps
//! totals per statement class, and an answer is a count and two hashes plus a few rows.
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
pub mod protocol;
pub mod report;
pub mod report_doc;

use std::collections::HashMap;
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
    outcomes: mpsc::Sender<Outcome>,
}

impl Ctx {
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

/// Replays `records` (in file order) against `target`, comparing with `baseline`.
pub async fn run(
    records: impl Iterator<Item = Result<Record, cutover_workload::WorkloadError>> + Send + 'static,
    target: Db,
    baseline: Option<Db>,
    opts: ReplayOptions,
    cancel: CancellationToken,
) -> Result<Report, ReplayError> {
    // The reader thread: decompression and JSON decoding off the async workers.
    let (rec_tx, mut rec_rx) =
        mpsc::channel::<Result<Record, cutover_workload::WorkloadError>>(4096);
    let reader = tokio::task::spawn_blocking(move || {
        for r in records {
            let stop = r.is_err();
            if rec_tx.blocking_send(r).is_err() || stop {
                break;
            }
        }
    });

    let first = match rec_rx.recv().await {
        Some(r) => Some(r?),
        None => None,
    };
    let first_ts = first.as_ref().map(|r| r.ts_us).unwrap_or(0);
    let (out_tx, mut out_rx) = mpsc::channel::<Outcome>(8192);
    let compared_with = if baseline.is_some() {
        "baseline"
    } else {
        "capture"
    };
    let ctx = Arc::new(Ctx {
        target,
        baseline,
        read_only: opts.read_only,
        speed: opts.speed,
        start: Instant::now(),
        first_ts,
        cancel: cancel.clone(),
        outcomes: out_tx,
    });
    let collector = tokio::spawn(async move {
        let mut c = Collector::default();
        while let Some(o) = out_rx.recv().await {
            c.add(o);
        }
        c
    });

    let mut lanes: HashMap<u64, mpsc::Sender<Record>> = HashMap::new();
    let mut handles = Vec::new();
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
        if cancel.is_cancelled() {
            break;
        }
        workload_end = workload_end.max(r.ts_us);
        let lane = match opts.lanes {
            None => r.session,
            Some(n) => r.session % n.max(1) as u64,
        };
        let tx = match lanes.get(&lane) {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = mpsc::channel(4096);
                handles.push(tokio::spawn(run_lane(rx, ctx.clone())));
                lanes.insert(lane, tx.clone());
                tx
            }
        };
        if tx.send(r).await.is_err() {
            break;
        }
    }
    drop(lanes);
    let _ = reader.await;
    let mut lag = report::hist();
    let mut session_errors = Vec::new();
    let mut session_ids = 0u64;
    for h in handles {
        if let Ok(done) = h.await {
            let _ = lag.add(&done.lag);
            session_errors.extend(done.errors);
            session_ids += done.sessions;
        }
    }
    let elapsed = ctx.start.elapsed();
    let speed = match opts.speed {
        Speed::Max => "max".to_string(),
        Speed::Factor(f) => format!("{f}"),
    };
    drop(ctx);
    let c = collector.await.unwrap_or_default();
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

/// What a lane hands back when its channel closes.
struct LaneDone {
    lag: Histogram<u64>,
    errors: Vec<String>,
    sessions: u64,
}

/// One side of one session.
#[derive(Default)]
struct Side {
    conn: Option<mysql_async::Conn>,
    stmts: HashMap<u32, mysql_async::Statement>,
    /// Captured (or baseline) generated IDs → this side's.
    ids: IdMap,
    /// This side's generated IDs → the baseline's, for result cells.
    unmap: IdMap,
}

struct Session {
    base: Option<Side>,
    target: Side,
    db: Option<String>,
    in_txn: bool,
    skipped_write: bool,
    broken: bool,
}

/// At most this many generated IDs are remembered per session side.
const MAX_IDS: usize = 100_000;

async fn run_lane(mut rx: mpsc::Receiver<Record>, ctx: Arc<Ctx>) -> LaneDone {
    let mut lag = report::hist();
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    let mut classes: HashMap<String, Arc<Class>> = HashMap::new();
    let mut errors = Vec::new();
    let mut seen = 0u64;
    // The captured time of each open session's previous command.
    let mut last_ts: HashMap<u64, i64> = HashMap::new();
    while let Some(r) = rx.recv().await {
        if ctx.cancel.is_cancelled() {
            break;
        }
        // Lag is measured where the capture's clock advanced for the session: logs with
        // whole-second times (MariaDB's) give every command of a second one time, and the
        // later ones cannot start before the earlier ones end, so only the first of them is
        // a measure of keeping pace.
        let anchored = last_ts.insert(r.session, r.ts_us) != Some(r.ts_us);
        if let Some(due) = ctx.due(r.ts_us) {
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = ctx.cancel.cancelled() => break,
                }
                if anchored {
                    let _ = lag.record(0);
                }
            } else if anchored {
                let _ = lag.record((now - due).as_micros() as u64);
            }
        }
        if r.command == Command::Quit {
            last_ts.remove(&r.session);
        }
        let s = match sessions.get_mut(&r.session) {
            Some(s) => s,
            None => {
                seen += 1;
                let s = Session {
                    base: ctx.baseline.as_ref().map(|_| Side::default()),
                    target: Side::default(),
                    db: r.db.clone(),
                    in_txn: false,
                    skipped_write: false,
                    broken: false,
                };
                sessions.entry(r.session).or_insert(s)
            }
        };
        if s.broken {
            if let Some(sql) = r.command.sql() {
                // A session that lost its connection: its statements count as not replayed.
                let _ = ctx
                    .outcomes
                    .send(Outcome::Skipped {
                        fingerprint: fingerprint(sql),
                    })
                    .await;
            }
            if r.command == Command::Quit {
                sessions.remove(&r.session);
            }
            continue;
        }
        if let Err(e) = step(&ctx, s, &r, &mut classes).await {
            s.broken = true;
            errors.push(format!("session {}: {e}", r.session));
        }
        if r.command == Command::Quit {
            if let Some(mut s) = sessions.remove(&r.session) {
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
    for side in [s.base.as_mut(), Some(&mut s.target)].into_iter().flatten() {
        if let Some(c) = side.conn.take() {
            let _ = c.disconnect().await;
        }
    }
}

/// Opens a side's connection when the session first needs it.
async fn open(
    db: &Db,
    side: &mut Side,
    read_only: bool,
    schema: Option<&str>,
) -> Result<(), String> {
    if side.conn.is_some() {
        return Ok(());
    }
    let mut c = db.standalone().await.map_err(|e| e.to_string())?;
    if read_only {
        c.query_drop("SET SESSION TRANSACTION READ ONLY")
            .await
            .map_err(|e| format!("{} session set-up: {e}", db.role()))?;
    }
    if let Some(d) = schema {
        // A database missing on one side is an answer to compare, not a set-up failure:
        // the statements that follow will say so.
        let _ = c
            .query_drop(format!("USE {}", cutover_core::sql::quote_ident(d)))
            .await;
    }
    side.conn = Some(c);
    Ok(())
}

async fn step(
    ctx: &Ctx,
    s: &mut Session,
    r: &Record,
    classes: &mut HashMap<String, Arc<Class>>,
) -> Result<(), String> {
    match &r.command {
        Command::Connect | Command::ChangeUser => {
            // Passwords are not captured: the replay logs in as the DSN's user. A change of
            // user resets the session like COM_CHANGE_USER does.
            if r.command == Command::ChangeUser {
                reset(s).await;
            }
            s.db = r.db.clone();
            ensure_open(ctx, s).await?;
            if r.command == Command::ChangeUser {
                if let Some(d) = r.db.clone() {
                    use_db(s, &d).await;
                }
            }
            Ok(())
        }
        Command::InitDb { db } => {
            ensure_open(ctx, s).await?;
            s.db = Some(db.clone());
            use_db(s, db).await;
            Ok(())
        }
        Command::Reset => {
            reset(s).await;
            Ok(())
        }
        Command::Quit => Ok(()),
        Command::Close { stmt } => {
            for side in [s.base.as_mut(), Some(&mut s.target)].into_iter().flatten() {
                if let (Some(st), Some(c)) = (side.stmts.remove(stmt), side.conn.as_mut()) {
                    let _ = c.close(st).await;
                }
            }
            Ok(())
        }
        Command::Query { sql } => statement(ctx, s, r, sql, None, classes).await,
        Command::Prepare { stmt, sql } => {
            ensure_open(ctx, s).await?;
            for side in [s.base.as_mut(), Some(&mut s.target)].into_iter().flatten() {
                if let Some(c) = side.conn.as_mut() {
                    if let Ok(st) = c.prep(sql.as_str()).await {
                        side.stmts.insert(*stmt, st);
                    }
                }
            }
            Ok(())
        }
        Command::Execute { stmt, params } => {
            let sql = s
                .target
                .stmts
                .get(stmt)
                .or_else(|| s.base.as_ref().and_then(|b| b.stmts.get(stmt)))
                .map(|_| format!("EXECUTE stmt {stmt}"))
                .unwrap_or_default();
            statement(ctx, s, r, &sql, Some((*stmt, params)), classes).await
        }
    }
}

async fn ensure_open(ctx: &Ctx, s: &mut Session) -> Result<(), String> {
    let schema = s.db.clone();
    if let (Some(db), Some(side)) = (ctx.baseline.as_ref(), s.base.as_mut()) {
        open(db, side, ctx.read_only, schema.as_deref()).await?;
    }
    open(&ctx.target, &mut s.target, ctx.read_only, schema.as_deref()).await
}

async fn use_db(s: &mut Session, db: &str) {
    let q = format!("USE {}", cutover_core::sql::quote_ident(db));
    for side in [s.base.as_mut(), Some(&mut s.target)].into_iter().flatten() {
        if let Some(c) = side.conn.as_mut() {
            let _ = c.query_drop(q.as_str()).await;
        }
    }
}

async fn reset(s: &mut Session) {
    for side in [s.base.as_mut(), Some(&mut s.target)].into_iter().flatten() {
        if let Some(c) = side.conn.as_mut() {
            let _ = c.reset().await;
        }
        side.stmts.clear();
        side.ids.clear();
        side.unmap.clear();
    }
    s.in_txn = false;
    s.skipped_write = false;
}

fn json_param(v: &serde_json::Value) -> mysql_async::Value {
    match v {
        serde_json::Value::Null => mysql_async::Value::NULL,
        serde_json::Value::Bool(b) => mysql_async::Value::Int(*b as i64),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                mysql_async::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                mysql_async::Value::UInt(u)
            } else {
                mysql_async::Value::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
        other => mysql_async::Value::Bytes(other.to_string().into_bytes()),
    }
}

/// Runs one statement (text, or an execute of a prepared one) on both sides and reports it.
async fn statement(
    ctx: &Ctx,
    s: &mut Session,
    r: &Record,
    sql: &str,
    exec: Option<(u32, &Vec<serde_json::Value>)>,
    classes: &mut HashMap<String, Arc<Class>>,
) -> Result<(), String> {
    let fp = fingerprint(sql);
    let class = match classes.get(&fp) {
        Some(c) => c.clone(),
        None => {
            let c = Arc::new(classify::classify(sql));
            if classes.len() < 100_000 {
                classes.insert(fp.clone(), c.clone());
            }
            c
        }
    };
    if ctx.read_only && !class.read_only && exec.is_none() {
        if s.in_txn {
            s.skipped_write = true;
        }
        let _ = ctx
            .outcomes
            .send(Outcome::Skipped { fingerprint: fp })
            .await;
        return Ok(());
    }
    if class.txn == Txn::Begin {
        s.in_txn = true;
        s.skipped_write = false;
    }
    ensure_open(ctx, s).await?;
    // The slow log says which database a statement ran in but not the `USE` that chose it.
    if let Some(d) = &r.db {
        if s.db.as_deref() != Some(d.as_str()) {
            use_db(s, d).await;
            s.db = Some(d.clone());
        }
    }
    let after_skipped_write = s.in_txn && s.skipped_write;

    let run_side = |side: &mut Side, unmap_cells: bool| {
        let text = answer::map_ids(sql, &side.ids);
        let unmap = if unmap_cells {
            std::mem::take(&mut side.unmap)
        } else {
            IdMap::new()
        };
        let stmt = exec.and_then(|(id, _)| side.stmts.get(&id).cloned());
        let params =
            exec.map(|(_, p)| mysql_async::Params::Positional(p.iter().map(json_param).collect()));
        let conn = side.conn.take();
        async move {
            let mut conn = conn;
            let a = match conn.as_mut() {
                None => Answer::default(),
                Some(c) => match (exec, stmt) {
                    (Some(_), Some(st)) => {
                        answer::execute(
                            c,
                            &st,
                            params.unwrap_or(mysql_async::Params::Empty),
                            &unmap,
                        )
                        .await
                    }
                    (Some((id, _)), None) => Answer {
                        error: Some(answer::ServerErr {
                            code: 1243,
                            state: "HY000".into(),
                            message: format!("unknown prepared statement {id}"),
                        }),
                        ..Answer::default()
                    },
                    (None, _) => answer::query(c, text.as_deref().unwrap_or(sql), &unmap).await,
                },
            };
            (conn, a, unmap)
        }
    };
    let target_fut = run_side(&mut s.target, true);
    let ((tconn, t, tunmap), base) = match s.base.as_mut() {
        Some(b) => {
            let base_fut = run_side(b, false);
            let (t, (bconn, ba, _)) = tokio::join!(target_fut, base_fut);
            if let Some(b) = s.base.as_mut() {
                b.conn = bconn;
            }
            (t, Some(ba))
        }
        None => (target_fut.await, None),
    };
    s.target.conn = tconn;
    s.target.unmap = tunmap;
    if class.txn == Txn::End {
        s.in_txn = false;
        s.skipped_write = false;
    }
    if t.broken || base.as_ref().is_some_and(|b| b.broken) {
        let which = if t.broken {
            &t
        } else {
            base.as_ref().unwrap_or(&t)
        };
        return Err(which
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "connection lost".into()));
    }

    // Generated IDs: remember how this session's IDs correspond on each side.
    let captured_id = r.response.as_ref().and_then(|x| x.last_insert_id);
    let base_id = base.as_ref().and_then(|b| b.last_insert_id);
    if let Some(tid) = t.last_insert_id {
        let reference = captured_id.or(base_id);
        if let Some(from) = reference.filter(|f| *f != tid) {
            if s.target.ids.len() < MAX_IDS {
                s.target.ids.insert(from, tid);
                if let Some(b) = base_id {
                    s.target.unmap.insert(tid, b);
                }
            }
        }
    }
    if let (Some(c), Some(b), Some(side)) = (captured_id, base_id, s.base.as_mut()) {
        if c != b && side.ids.len() < MAX_IDS {
            side.ids.insert(c, b);
        }
    }

    let kinds: Vec<Kind> = match (&base, &r.response) {
        (Some(b), _) => answer::compare(b, &t, class.ordered),
        (None, Some(captured)) => answer::compare_captured(captured, &t),
        (None, None) => Vec::new(),
    };
    let sample = (!kinds.is_empty()).then(|| Sample {
        session: r.session,
        sql: sql.to_string(),
        kinds: kinds.clone(),
        after_skipped_write,
        captured: if base.is_none() {
            r.response.clone()
        } else {
            None
        },
        baseline: base.clone(),
        target: t.clone(),
    });
    let _ = ctx
        .outcomes
        .send(Outcome::Ran(Box::new(Ran {
            fingerprint: fp,
            nondeterministic: class.nondeterministic.clone(),
            after_skipped_write,
            kinds,
            baseline_us: base.as_ref().map(|b| b.latency.as_micros() as u64),
            target_us: t.latency.as_micros() as u64,
            sample,
        })))
        .await;
    Ok(())
}
