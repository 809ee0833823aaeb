//! Each side's window of recent statements and each lane's current transaction, and the
//! conflict context taken from them when a statement fails with a concurrency error.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{touch, Conflict, ContextStatement, OtherStatement, Relation};
use crate::classify::Txn;
use crate::excerpt::one_line;
use crate::job::Job;

/// Finished statements remembered per side.
pub const WINDOW: usize = 1024;
/// Statements of one session's transaction kept for its context (the latest ones).
pub const TXN_KEPT: usize = 32;
/// Other sessions' statements shown per conflict.
const OTHERS_SHOWN: usize = 5;
/// Characters of a statement's text kept in a context.
const TEXT: usize = 500;

/// A statement as the window remembers it: times in µs on the replay's clock.
#[derive(Clone)]
struct Entry {
    job: Arc<Job>,
    start_us: u64,
    end_us: Option<u64>,
    error: Option<u16>,
}

/// One side's recent statements.
#[derive(Default)]
pub(crate) struct Window {
    running: HashMap<u64, Entry>,
    recent: VecDeque<Entry>,
    /// Sessions with an explicit transaction open: when it began.
    open_txn: HashMap<u64, u64>,
}

impl Window {
    /// A statement starts on this side.
    pub fn start(&mut self, job: &Arc<Job>, now_us: u64) {
        let class_txn = job.stmt.as_ref().map(|s| s.class.txn);
        if class_txn == Some(Txn::Begin) {
            self.open_txn.insert(job.session, now_us);
        }
        self.running.insert(
            job.session,
            Entry {
                job: job.clone(),
                start_us: now_us,
                end_us: None,
                error: None,
            },
        );
    }

    /// The statement of `session` ended (`error`: its error code).
    pub fn end(&mut self, session: u64, now_us: u64, error: Option<u16>) {
        let Some(mut e) = self.running.remove(&session) else {
            return;
        };
        e.end_us = Some(now_us);
        e.error = error;
        let txn = e.job.stmt.as_ref().map(|s| s.class.txn);
        // A deadlock rolls the whole transaction back; an end ends it.
        if txn == Some(Txn::End) || error == Some(1213) {
            self.open_txn.remove(&session);
        }
        if self.recent.len() >= WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(e);
    }

    /// The session is gone from this side (quit, reset, change of user).
    pub fn forget(&mut self, session: u64) {
        self.open_txn.remove(&session);
        self.running.remove(&session);
    }

    /// Other sessions' statements that may explain an error of `session` whose statement
    /// started at `failed_us` in a transaction that began at `since_us`.
    fn candidates(&self, session: u64, since_us: u64, now_us: u64) -> Vec<(Entry, Relation)> {
        let mut out = Vec::new();
        for e in self.running.values().filter(|e| e.job.session != session) {
            out.push((e.clone(), Relation::InFlight));
        }
        for e in self.recent.iter().rev() {
            if e.job.session == session {
                continue;
            }
            let end = e.end_us.unwrap_or(now_us);
            let open = self
                .open_txn
                .get(&e.job.session)
                .is_some_and(|b| *b <= e.start_us);
            if open {
                out.push((e.clone(), Relation::OpenTransaction));
            } else if end >= since_us {
                out.push((e.clone(), Relation::SameWindow));
            }
        }
        out
    }
}

/// A session's current transaction on one side, kept by its lane.
#[derive(Default)]
pub(crate) struct Transaction {
    open: bool,
    began_us: u64,
    stmts: VecDeque<(Arc<Job>, u64, Option<u16>)>,
    earlier: u64,
}

impl Transaction {
    /// A statement starts: it joins the explicit transaction, or is one on its own.
    pub fn start(&mut self, job: &Arc<Job>, now_us: u64) {
        let txn = job.stmt.as_ref().map(|s| s.class.txn);
        if txn == Some(Txn::Begin) || !self.open {
            self.stmts.clear();
            self.earlier = 0;
            self.began_us = now_us;
            self.open = txn == Some(Txn::Begin);
        }
        if self.stmts.len() >= TXN_KEPT {
            self.stmts.pop_front();
            self.earlier += 1;
        }
        self.stmts.push_back((job.clone(), now_us, None));
    }

    /// The statement ended with `error`.
    pub fn end(&mut self, error: Option<u16>) {
        if let Some(last) = self.stmts.back_mut() {
            last.2 = error;
            let txn = last.0.stmt.as_ref().map(|s| s.class.txn);
            if txn == Some(Txn::End) || error == Some(1213) {
                self.open = false;
            }
        }
    }

    pub fn clear(&mut self) {
        *self = Transaction::default();
    }
}

/// What the lanes share to describe a statement's times.
pub(crate) struct Clock {
    pub first_ts: i64,
}

impl Clock {
    fn statement(
        &self,
        job: &Job,
        start_us: u64,
        end_us: Option<u64>,
        error: Option<u16>,
    ) -> ContextStatement {
        ContextStatement {
            session: job.session,
            command: job.seq + 1,
            sql: one_line(job.sql(), TEXT),
            started_ms: start_us as f64 / 1000.0,
            ended_ms: end_us.map(|e| e as f64 / 1000.0),
            captured_s: (job.at_us - self.first_ts).max(0) as f64 / 1e6,
            error,
        }
    }
}

/// The context of a concurrency error, taken on its side right after it (the window still
/// holds what ran beside it). `txn` already holds the failing statement.
pub(crate) fn context(
    clock: &Clock,
    window: &Window,
    txn: &Transaction,
    side: &'static str,
    code: u16,
    message: &str,
    now_us: u64,
) -> Option<Conflict> {
    let (job, start_us, _) = txn.stmts.back()?;
    let session = job.session;
    // What the failing transaction touched: its tables and keys hold its locks.
    let mut tables = Vec::new();
    let mut keys = Vec::new();
    for (j, _, _) in &txn.stmts {
        let t = touch(j.sql());
        tables.extend(t.tables);
        keys.extend(t.keys);
    }
    tables.sort();
    tables.dedup();
    let mut others: Vec<OtherStatement> = window
        .candidates(session, txn.began_us, now_us)
        .into_iter()
        .filter_map(|(e, relation)| {
            let t = touch(e.job.sql());
            let shared: Vec<String> = t
                .tables
                .iter()
                .filter(|x| tables.contains(x))
                .cloned()
                .collect();
            if shared.is_empty() {
                return None;
            }
            let same_key = t.keys.iter().any(|k| keys.contains(k));
            Some(OtherStatement {
                statement: clock.statement(&e.job, e.start_us, e.end_us, e.error),
                relation,
                tables: shared,
                same_key,
            })
        })
        .collect();
    others.sort_by(|a, b| {
        b.same_key
            .cmp(&a.same_key)
            .then(a.relation.cmp(&b.relation))
            .then(
                b.statement
                    .started_ms
                    .partial_cmp(&a.statement.started_ms)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
    });
    others.truncate(OTHERS_SHOWN);
    let last = txn.stmts.len().saturating_sub(1);
    Some(Conflict {
        side,
        code,
        message: one_line(message, TEXT),
        statement: clock.statement(job, *start_us, Some(now_us), Some(code)),
        transaction: txn
            .stmts
            .iter()
            .enumerate()
            .map(|(i, (j, s, e))| {
                let end = (i == last).then_some(now_us);
                clock.statement(j, *s, end, if i == last { Some(code) } else { *e })
            })
            .collect(),
        transaction_earlier: txn.earlier,
        others,
        other_side: String::new(),
    })
}
