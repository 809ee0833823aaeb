//! A lane: one connection per server that sessions hold in turn, and the task that runs a
//! session's records on it, each side at its own pace. A lane waits for each record's due
//! time, runs it on its connection to its server and leaves its half of the answer in the
//! statement's job; generated IDs are mapped per session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::Db;
use cutover_workload::Command;
use hdrhistogram::Histogram;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use crate::answer::{self, Answer, IdMap};
use crate::concurrency;
use crate::ctx::Ctx;
use crate::excerpt::one_line;
use crate::job::{role, Job, NotRun, Side, SideAnswer, Wire};
use crate::params;
use crate::report::{self, Reason};

/// What a lane hands back when its channel closes.
pub(crate) struct LaneDone {
    pub(crate) lag: Histogram<u64>,
    pub(crate) errors: Vec<String>,
    pub(crate) sessions: u64,
}

/// One session on one side.
#[derive(Default)]
pub(crate) struct Session {
    pub(crate) conn: Option<mysql_async::Conn>,
    /// Prepared statements by the workload's id: the server's statement, or the error the
    /// server answered the prepare with (the execute's answer on this side).
    pub(crate) stmts: HashMap<u32, Result<mysql_async::Statement, answer::ServerErr>>,
    /// Captured (or baseline) generated IDs → this side's.
    pub(crate) ids: IdMap,
    /// This side's generated IDs → the baseline's, for result cells.
    pub(crate) unmap: IdMap,
    pub(crate) db: Option<String>,
    /// Why the session stopped on this side: its later statements are not compared.
    pub(crate) ended: Option<NotRun>,
    /// The first statement not compared after it stopped has been named.
    pub(crate) named: bool,
    /// Target: statements that generated an ID whose baseline counterpart is not read yet:
    /// (seq, target's ID, captured ID).
    pub(crate) pending_ids: Vec<(u64, u64, Option<u64>)>,
    /// The current transaction's statements, for the context of a concurrency error.
    pub(crate) txn: concurrency::Transaction,
}

/// At most this many generated IDs are remembered per session side.
pub(crate) const MAX_IDS: usize = 100_000;

pub(crate) async fn run_lane(
    side: Side,
    mut rx: mpsc::Receiver<Arc<Job>>,
    ctx: Arc<Ctx>,
) -> LaneDone {
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
                            one_line(job.sql(), 120)
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
                            one_line(job.sql(), 120)
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
pub(crate) fn interrupted(ctx: &Ctx, side: Side, job: &Job) {
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
pub(crate) async fn reuse(
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

pub(crate) async fn close(s: &mut Session) {
    if let Some(c) = s.conn.take() {
        let _ = c.disconnect().await;
    }
}

/// Why a connection failed: refused by the server for its connection limit (1040 too many
/// connections, 1203 too many for the user), or another error.
pub(crate) fn connect_reason(message: &str) -> Reason {
    if message.contains("ERROR 1040 ") || message.contains("ERROR 1203 ") {
        Reason::ConnectionRefused
    } else {
        Reason::DriverError
    }
}

/// The `READ ONLY` guard on a session (`--read-only`): a second line of defence after the
/// classifier, applied at connect and again after every reset and change of user (both
/// drop it).
pub(crate) async fn guard(
    db: &Db,
    c: &mut mysql_async::Conn,
    read_only: bool,
) -> Result<(), NotRun> {
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
pub(crate) async fn open(db: &Db, s: &mut Session, read_only: bool) -> Result<(), NotRun> {
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
pub(crate) async fn step(
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

pub(crate) async fn use_db(s: &mut Session, db: &str) {
    let q = format!("USE {}", cutover_core::sql::quote_ident(db));
    if let Some(c) = s.conn.as_mut() {
        let _ = c.query_drop(q.as_str()).await;
    }
}

/// COM_RESET_CONNECTION (a `reset` record, or the reset a change of user implies): it drops
/// the `READ ONLY` guard with the rest of the session state, so the guard goes on again
/// before anything else is sent.
pub(crate) async fn reset(ctx: &Ctx, db: &Db, s: &mut Session) -> Result<(), NotRun> {
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
pub(crate) async fn resolve_ids(ctx: &Ctx, s: &mut Session, job: &Job) -> Result<(), NotRun> {
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
pub(crate) const INTERRUPTED: &str = "interrupted";

/// Stops the statement running on connection `id` (from a connection of its own).
pub(crate) async fn kill_query(db: &Db, id: u32) {
    let kill = async {
        if let Ok(mut c) = db.standalone().await {
            let _ = c.query_drop(format!("KILL QUERY {id}")).await;
            let _ = c.disconnect().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), kill).await;
}

/// Runs one statement (text, or an execute of a prepared one) on one side.
pub(crate) async fn statement(
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
