//! Concurrency errors in a replay, explained by what ran beside them.
//!
//! A lock wait timeout or a deadlock on one side that the other side did not have says that
//! the sessions met differently there; the error alone does not say with which statements.
//! So each side keeps a **window** of its recent statements (the ones running now, and the
//! last [`WINDOW`] that finished, with their start and end on the replay's clock, and which
//! sessions have an explicit transaction open), and each lane keeps the statements of its
//! session's current transaction (at most [`TXN_KEPT`]). When a statement fails with a code
//! of [`CODES`], the lane takes at once, before the window moves on, its **conflict
//! context**: the statements of other sessions on that side that were in flight at that
//! moment, or ran earlier in a transaction of theirs still open then, or ran while the
//! failing transaction was open, and touched a table the failing transaction touched (and
//! whether the same key, where both texts show one as `column = literal`), with their
//! sessions and times; and the failing transaction. When both answers are in, an error the
//! other side (or the capture) did not have with the same code is collected: by side and
//! code, with one explained example each ([`CodeReport`]).
//!
//! Memory: the window is bounded per side ([`WINDOW`] finished statements, plus one running
//! statement per lane), a transaction is bounded per session ([`TXN_KEPT`]), and the report
//! keeps a count and one example per side and code.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use cutover_workload::fingerprint::{tokenize, TokenKind};
use serde::Serialize;

use crate::classify::Txn;
use crate::Job;

/// One concurrency error code: what it means and what usually fixes it.
#[derive(Clone, Copy, Debug)]
pub struct Code {
    pub code: u16,
    pub name: &'static str,
    /// `lock_wait`, `deadlock`, `write_conflict`, `snapshot`, `schema_changed`.
    pub class: &'static str,
    pub meaning: &'static str,
    pub fix: &'static str,
    /// Where the code is documented.
    pub source: &'static str,
}

const MYSQL_ERRORS: &str =
    "MySQL 8.0 Error Message Reference (server errors); MariaDB Error Codes (mariadb.com/kb)";
const TIDB_ERRORS: &str = "TiDB Error Codes and Troubleshooting (docs.pingcap.com/tidb/stable/error-codes); TiDB Troubleshoot Write Conflicts";

/// The concurrency errors the replay explains. MySQL/MariaDB codes first, then TiDB's own.
pub const CODES: &[Code] = &[
    Code {
        code: 1205,
        name: "ER_LOCK_WAIT_TIMEOUT",
        class: "lock_wait",
        meaning: "the statement waited longer than innodb_lock_wait_timeout for a row lock another transaction held; only the statement is rolled back (the whole transaction with innodb_rollback_on_timeout), its transaction stays open",
        fix: "shorten the transaction that holds the lock (commit sooner, no user think time inside it), take locks in one order, or raise innodb_lock_wait_timeout on this side to what the application expects",
        source: MYSQL_ERRORS,
    },
    Code {
        code: 1213,
        name: "ER_LOCK_DEADLOCK",
        class: "deadlock",
        meaning: "two transactions each waited for a lock the other held; the server rolled back this one (the whole transaction) so the other could go on",
        fix: "take row locks in one order in every transaction (e.g. update rows by ascending key), keep transactions short, and retry the whole transaction on 1213",
        source: MYSQL_ERRORS,
    },
    Code {
        code: 1020,
        name: "ER_CHECKREAD",
        class: "snapshot",
        meaning: "record has changed since last read: under MariaDB's innodb_snapshot_isolation (REPEATABLE READ) the transaction tried to lock or change a row another transaction changed after its snapshot",
        fix: "retry the whole transaction, or read the rows it changes with SELECT ... FOR UPDATE first",
        source: MYSQL_ERRORS,
    },
    Code {
        code: 3572,
        name: "ER_LOCK_NOWAIT",
        class: "lock_wait",
        meaning: "a FOR UPDATE / FOR SHARE NOWAIT found the row locked by another transaction",
        fix: "expected under contention for NOWAIT: the application must handle it (retry or skip); compare with SKIP LOCKED",
        source: MYSQL_ERRORS,
    },
    Code {
        code: 9007,
        name: "ErrWriteConflict (TiKV)",
        class: "write_conflict",
        meaning: "an optimistic transaction found at commit that another transaction had written the same key after it started",
        fix: "use pessimistic transactions (tidb_txn_mode = 'pessimistic', the default since v3.0.8) or retry the whole transaction; look at the key in the message",
        source: TIDB_ERRORS,
    },
    Code {
        code: 8005,
        name: "ErrWriteConflictInTiDB",
        class: "write_conflict",
        meaning: "write conflict, txnStartTS is stale: the transaction met a write conflict inside TiDB",
        fix: "retry the whole transaction; check the application logic that writes the same rows concurrently",
        source: TIDB_ERRORS,
    },
    Code {
        code: 8002,
        name: "ErrForUpdateCantRetry",
        class: "write_conflict",
        meaning: "a transaction with SELECT ... FOR UPDATE met a commit conflict and cannot be retried automatically: TiDB rolled it back",
        fix: "the application can safely retry the whole transaction; in pessimistic mode FOR UPDATE locks at read time instead",
        source: TIDB_ERRORS,
    },
    Code {
        code: 8022,
        name: "ErrTxnRetryable",
        class: "write_conflict",
        meaning: "the transaction's commit failed and it was rolled back; it is safe to retry",
        fix: "retry the whole transaction",
        source: TIDB_ERRORS,
    },
    Code {
        code: 8028,
        name: "ErrInfoSchemaChanged",
        class: "schema_changed",
        meaning: "a table the transaction used had its schema (or metadata lock) changed by DDL while the transaction ran",
        fix: "retry the transaction; run DDL outside busy periods (TiDB v6.3+ metadata locking makes DML wait for it instead)",
        source: TIDB_ERRORS,
    },
    Code {
        code: 8027,
        name: "ErrInfoSchemaExpired",
        class: "schema_changed",
        meaning: "the TiDB server's schema version is out of date (it could not reach PD to load the new one)",
        fix: "check the network between this TiDB server and the PD leader; retry",
        source: TIDB_ERRORS,
    },
    Code {
        code: 9004,
        name: "ErrResolveLockTimeout",
        class: "lock_wait",
        meaning: "resolving another transaction's locks timed out: many transactions conflict on the same keys",
        fix: "find the hot rows (the other statements below) and spread or serialise the writes to them",
        source: TIDB_ERRORS,
    },
    Code {
        code: 9006,
        name: "ErrGCTooEarly",
        class: "snapshot",
        meaning: "the transaction ran longer than the GC life time: data its snapshot needs may have been cleaned",
        fix: "shorten the transaction or raise tidb_gc_life_time",
        source: TIDB_ERRORS,
    },
];

/// The code's entry in [`CODES`], if it is a concurrency error.
pub fn code(c: u16) -> Option<&'static Code> {
    CODES.iter().find(|x| x.code == c)
}

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

/// How another session's statement relates to the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Running on that side when the error came.
    InFlight,
    /// Ran earlier in a transaction of its session still open when the error came (it may
    /// hold the lock).
    OpenTransaction,
    /// Ran (and its transaction ended) while the failing transaction was open.
    SameWindow,
}

/// One statement of a conflict context.
#[derive(Clone, Debug, Serialize)]
pub struct ContextStatement {
    pub session: u64,
    /// Its place in its session (1 = first command).
    pub command: u64,
    pub sql: String,
    /// When it started and ended on that side, ms since the replay started (no end: still
    /// running).
    pub started_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<f64>,
    /// Its captured time, s from the workload's first record.
    pub captured_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<u16>,
}

/// Another session's statement in a conflict context.
#[derive(Clone, Debug, Serialize)]
pub struct OtherStatement {
    #[serde(flatten)]
    pub statement: ContextStatement,
    pub relation: Relation,
    /// Tables it shares with the failing transaction.
    pub tables: Vec<String>,
    /// It names the same key (`column = value`) as the failing transaction.
    pub same_key: bool,
}

/// A concurrency error on one side, with what ran beside it there.
#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    pub side: &'static str,
    pub code: u16,
    pub message: String,
    pub statement: ContextStatement,
    /// The failing session's transaction up to this statement (the latest [`TXN_KEPT`]),
    /// or the statement alone outside an explicit transaction.
    pub transaction: Vec<ContextStatement>,
    /// Earlier statements of the transaction not kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub transaction_earlier: u64,
    /// Other sessions' statements on that side that touched the same tables, same key and
    /// in flight first.
    pub others: Vec<OtherStatement>,
    /// What the other side (or the capture) answered.
    pub other_side: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
            sql: crate::report::one_line(job.sql(), TEXT),
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
        message: crate::report::one_line(message, TEXT),
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

/// What a statement's text shows it touches: table names (without their database,
/// lowercased) and `column = literal` keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touch {
    pub tables: Vec<String>,
    pub keys: Vec<(String, String)>,
}

/// Reads the tables after `FROM`, `JOIN`, `UPDATE`, `INTO`, `TABLE` and the keys written as
/// `column = literal` or `column IN (literal, …)`. A reading of the text, not a parse: it
/// never fails, and what it cannot read it leaves out (the context then shows fewer
/// statements, never a wrong table).
pub fn touch(sql: &str) -> Touch {
    let toks = tokenize(sql);
    let word = |i: usize| -> Option<&str> {
        toks.get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(sql))
    };
    let ident = |i: usize| -> Option<String> {
        let t = toks.get(i)?;
        match t.kind {
            TokenKind::Word => Some(t.text(sql).to_ascii_lowercase()),
            TokenKind::QuotedIdent => {
                let s = t.text(sql);
                let inner = s.get(1..s.len().saturating_sub(1)).unwrap_or("");
                Some(inner.replace("``", "`").to_lowercase())
            }
            _ => None,
        }
    };
    let punct = |i: usize, p: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(sql) == p)
    };
    let mut out = Touch::default();
    // Keys are read in conditions only (after WHERE or ON), not in `SET x = 1`.
    let mut condition = false;
    for i in 0..toks.len() {
        let Some(w) = word(i) else {
            if condition && punct(i, "=") {
                // `column = literal`
                let col = i.checked_sub(1).and_then(&ident);
                if let (Some(col), Some(v)) = (col, toks.get(i + 1)) {
                    if v.is_literal() && out.keys.len() < 64 {
                        out.keys.push((col, v.text(sql).to_string()));
                    }
                }
            }
            continue;
        };
        let w = w.to_ascii_lowercase();
        match w.as_str() {
            "where" | "on" | "having" => condition = true,
            "set" | "values" | "select" => condition = false,
            _ => {}
        }
        match w.as_str() {
            "from" | "join" | "update" | "into" | "table" => {
                let mut j = i + 1;
                // `DELETE FROM`, `INSERT IGNORE INTO`, `UPDATE LOW_PRIORITY IGNORE t`.
                while word(j).is_some_and(|x| {
                    matches!(
                        x.to_ascii_lowercase().as_str(),
                        "low_priority" | "ignore" | "only" | "if"
                    )
                }) {
                    j += 1;
                }
                let Some(mut name) = ident(j) else { continue };
                if punct(j + 1, ".") {
                    if let Some(n) = ident(j + 2) {
                        name = n;
                    }
                }
                if !is_keyword(&name) && !out.tables.contains(&name) && out.tables.len() < 64 {
                    out.tables.push(name);
                }
            }
            "in" if condition && punct(i + 1, "(") => {
                let Some(col) = i.checked_sub(1).and_then(&ident) else {
                    continue;
                };
                let mut j = i + 2;
                while let Some(t) = toks.get(j) {
                    if t.is_literal() {
                        if out.keys.len() < 64 {
                            out.keys.push((col.clone(), t.text(sql).to_string()));
                        }
                    } else if !punct(j, ",") {
                        break;
                    }
                    j += 1;
                }
            }
            _ => {}
        }
    }
    for k in &mut out.keys {
        // `t.id = 1` and `id = 1` name one key.
        if let Some((_, c)) = k.0.rsplit_once('.') {
            k.0 = c.to_string();
        }
    }
    out
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "select" | "dual" | "(" | "set" | "values" | "where")
}

/// The concurrency errors of a replay: per side and code.
#[derive(Default)]
pub(crate) struct Collected {
    by_code: BTreeMap<(&'static str, u16), (u64, Conflict)>,
}

impl Collected {
    pub fn add(&mut self, c: Conflict) {
        match self.by_code.entry((c.side, c.code)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((1, c));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let (n, ex) = o.get_mut();
                *n += 1;
                // The example with the most context explains best.
                if ex.others.is_empty() && !c.others.is_empty() {
                    *ex = c;
                }
            }
        }
    }

    pub fn report(&self) -> ConcurrencyReport {
        let by_code: Vec<CodeReport> = self
            .by_code
            .iter()
            .map(|((side, c), (n, ex))| {
                let info = code(*c);
                CodeReport {
                    side,
                    code: *c,
                    name: info.map(|i| i.name).unwrap_or(""),
                    class: info.map(|i| i.class).unwrap_or(""),
                    errors: *n,
                    meaning: info.map(|i| i.meaning).unwrap_or(""),
                    fix: info.map(|i| i.fix).unwrap_or(""),
                    source: info.map(|i| i.source).unwrap_or(""),
                    example: ex.clone(),
                }
            })
            .collect();
        ConcurrencyReport {
            errors: by_code.iter().map(|c| c.errors).sum(),
            by_code,
        }
    }
}

/// The report's concurrency section: errors one side had and the other did not.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConcurrencyReport {
    pub errors: u64,
    pub by_code: Vec<CodeReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CodeReport {
    pub side: &'static str,
    pub code: u16,
    pub name: &'static str,
    pub class: &'static str,
    pub errors: u64,
    pub meaning: &'static str,
    pub fix: &'static str,
    pub source: &'static str,
    pub example: Conflict,
}

/// The human text of the section (empty when there were none).
pub fn human(r: &ConcurrencyReport) -> String {
    let mut out = String::new();
    if r.errors == 0 {
        return out;
    }
    out.push_str(&format!(
        "\nconcurrency errors only one side had: {}\n",
        r.errors
    ));
    for c in &r.by_code {
        out.push_str(&format!(
            "  on the {}: {} {} ({}), {} {}: {}\n",
            c.side,
            c.code,
            c.name,
            c.class,
            c.errors,
            if c.errors == 1 { "error" } else { "errors" },
            c.meaning
        ));
        out.push_str(&explain(&c.example, "    "));
        out.push_str(&format!("    likely fix: {}\n", c.fix));
    }
    out
}

/// One conflict as lines of text.
pub fn explain(c: &Conflict, indent: &str) -> String {
    let s = &c.statement;
    let mut out = format!(
        "{indent}e.g. session {} command {} at {:.0} ms: {}\n{indent}  {} answered: {}\n",
        s.session,
        s.command,
        s.started_ms,
        crate::report::one_line(&s.sql, 160),
        if c.side == "target" {
            "the baseline"
        } else {
            "the other side"
        },
        c.other_side
    );
    if c.others.is_empty() {
        out.push_str(&format!("{indent}  no statement of another replayed session on the {} touched its tables in the window (the lock was held by a connection outside the replay, or by statements whose tables the text does not show)\n", c.side));
    }
    for o in &c.others {
        let st = &o.statement;
        out.push_str(&format!(
            "{indent}  other: session {} command {} ({}{}, {}): {}\n",
            st.session,
            st.command,
            match o.relation {
                Relation::InFlight => "in flight then",
                Relation::OpenTransaction => "earlier in its transaction, still open then",
                Relation::SameWindow => "ran while this transaction was open",
            },
            if o.same_key { ", same key" } else { "" },
            match st.ended_ms {
                Some(e) => format!("{:.0}–{:.0} ms", st.started_ms, e),
                None => format!("from {:.0} ms", st.started_ms),
            },
            crate::report::one_line(&st.sql, 160)
        ));
    }
    if c.transaction.len() > 1 || c.transaction_earlier > 0 {
        out.push_str(&format!("{indent}  its transaction:"));
        if c.transaction_earlier > 0 {
            out.push_str(&format!(" ({} earlier statements)", c.transaction_earlier));
        }
        out.push('\n');
        for t in &c.transaction {
            out.push_str(&format!(
                "{indent}    {:.0} ms: {}{}\n",
                t.started_ms,
                crate::report::one_line(&t.sql, 160),
                t.error
                    .map(|e| format!("  → ERROR {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(c: &str, v: &str) -> (String, String) {
        (c.to_string(), v.to_string())
    }

    #[test]
    fn tables_and_keys_are_read_from_the_text() {
        let t = touch("UPDATE `shop`.`Orders` SET v = v + 1 WHERE id = 7");
        assert_eq!(t.tables, vec!["orders"]);
        assert_eq!(t.keys, vec![key("id", "7")]);
        let t = touch("DELETE FROM t WHERE t.k IN (1, 2,3) AND s = 'x'");
        assert_eq!(t.tables, vec!["t"]);
        assert_eq!(
            t.keys,
            vec![key("k", "1"), key("k", "2"), key("k", "3"), key("s", "'x'")]
        );
        let t = touch("INSERT IGNORE INTO a (id) SELECT id FROM b JOIN c ON b.x = c.x");
        assert_eq!(t.tables, vec!["a", "b", "c"]);
        assert!(t.keys.is_empty());
        assert_eq!(touch("COMMIT"), Touch::default());
        // A table name in a string or a comment is not read.
        let t = touch("SELECT 'from x' /* from y */ FROM z");
        assert_eq!(t.tables, vec!["z"]);
    }

    #[test]
    fn every_code_is_explained_and_listed_once() {
        for c in CODES {
            assert!(!c.meaning.is_empty() && !c.fix.is_empty() && !c.source.is_empty());
            assert_eq!(CODES.iter().filter(|x| x.code == c.code).count(), 1);
        }
        for c in [1205, 1213, 1020, 3572, 9007, 8022, 8028, 8002, 9004] {
            assert!(code(c).is_some(), "{c}");
        }
        assert!(code(1146).is_none());
    }

    proptest! {
        #[test]
        fn touch_never_panics_and_stays_bounded(s in "\\PC{0,300}") {
            let t = touch(&s);
            prop_assert!(t.tables.len() <= 64 && t.keys.len() <= 64);
            for name in &t.tables {
                prop_assert!(name.len() <= s.len());
            }
        }

        #[test]
        fn touch_reads_generated_updates(table in "[a-z][a-z0-9_]{0,10}", col in "[a-z][a-z_]{0,8}", v in 0u64..1_000_000) {
            prop_assume!(!is_keyword(&table) && !["low_priority", "ignore", "only", "if"].contains(&table.as_str()));
            let t = touch(&format!("UPDATE {table} SET x = 1 WHERE {col} = {v}"));
            prop_assert_eq!(t.tables, vec![table]);
            prop_assert!(t.keys.contains(&(col, v.to_string())));
        }
    }
}
