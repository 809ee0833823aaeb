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

use std::collections::BTreeMap;

use serde::Serialize;

use crate::excerpt::one_line;

mod touch;
mod window;

pub use touch::{touch, Touch};
pub(crate) use window::{context, Clock, Transaction, Window};
pub use window::{TXN_KEPT, WINDOW};

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
        one_line(&s.sql, 160),
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
            one_line(&st.sql, 160)
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
                one_line(&t.sql, 160),
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
}
