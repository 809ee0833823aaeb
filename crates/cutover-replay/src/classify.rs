//! What a statement is, decided per statement text (never per class: two statements of one
//! fingerprint may differ in what they execute, e.g. in an executable comment).
//!
//! - Whether `--read-only` may send it ([`Class::refusal`]). The rule is an allow-list of
//!   statement forms, decided on the text the server will execute: every executable comment
//!   (`/*! */`, `/*!NNNNN */`, `/*M! */`, `/*M!NNNNNN */`, `/*T! */`, `/*T![feature] */`) is
//!   expanded, in every reading a server may make of it ([`exec_comments`]), and each
//!   reading is parsed (`sqlparser`, MySQL dialect). A statement is sent only when every
//!   reading is, statement by statement:
//!   - a query (`SELECT`, `VALUES`, `TABLE`, `WITH … SELECT`) without `INTO` (`OUTFILE`,
//!     `DUMPFILE`, `@var`, a table), without a locking clause (a trailing one is removed:
//!     [`Class::unlocked`]), calling only built-in functions known to be read-only
//!     ([`READ_ONLY_FUNCTIONS`]; a stored or unknown function is a write unless
//!     [`Rules::assume_functions_read_only`]), never a sequence (`NEXTVAL`, `NEXT VALUE FOR`,
//!     …), a user lock (`GET_LOCK`, …) or `LOAD_FILE` (it reads the server's files);
//!   - `SHOW`, `DESCRIBE`, `EXPLAIN` of a statement that is itself sent (the optimizer may
//!     evaluate constant subqueries, and `EXPLAIN ANALYZE` runs the statement);
//!   - `USE`; `BEGIN`/`START TRANSACTION` (never `READ WRITE`), `COMMIT`, `ROLLBACK`,
//!     `SAVEPOINT`, `RELEASE SAVEPOINT`;
//!   - `SET NAMES`, `SET` of user variables and of session variables on an allow-list
//!     ([`SESSION_VARIABLES`]); never `GLOBAL`/`PERSIST`, never `READ WRITE`, the isolation
//!     level, `tx_read_only`/`transaction_read_only` to anything but on, a role or a password.
//!
//!   Everything else is refused, with a short reason; so is a text the parser does not
//!   understand: dropping a read costs a comparison, replaying a write on a server the user
//!   wanted left alone costs much more. `SLEEP()` and `BENCHMARK()` are sent: they change no
//!   data and take no lock, and the replay reproduces load the application already made.
//!   `@var := …` is sent: a user variable is the session's own, not data.
//! - Whether its rows come in a defined order (a top-level `ORDER BY`): then the rows are
//!   compared in order; otherwise as a multiset.
//! - Whether its answer may differ from run to run (`NOW()`, `RAND()`, `UUID()`, `LIMIT`
//!   without `ORDER BY`, …): its differences are reported apart, as noise.
//! - Whether it opens or ends a transaction (for "after a skipped write").
//!
//! The order, noise and transaction are read from the expanded text as MariaDB runs it.

use cutover_workload::{tokenize, TokenKind};
use sqlparser::ast::Statement;
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

mod allow_list;
pub mod exec_comments;
mod nondeterminism;
mod refusal;
mod rewrite;
#[cfg(test)]
mod tests;

pub use allow_list::{READ_ONLY_FUNCTIONS, SESSION_VARIABLES};
use exec_comments::Executed;
pub use nondeterminism::nondeterminism;
use refusal::refusal_of;
use rewrite::for_parser;
pub use rewrite::strip_lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Txn {
    None,
    Begin,
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// Cannot change data: `--read-only` may send it (as `unlocked` when that is set). The
    /// same as `refusal.is_none()`.
    pub read_only: bool,
    /// Under `--read-only`: why this statement is not sent (`None`: it may be sent, as
    /// `unlocked` when that is set). Decided for this exact text, never for its class.
    pub refusal: Option<String>,
    /// A locking read (`FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE`) rewritten without its
    /// lock: what `--read-only` sends instead of the statement, so it is still compared.
    pub unlocked: Option<String>,
    /// The parser understood it.
    pub parsed: bool,
    /// Rows are compared in order (a top-level ORDER BY).
    pub ordered: bool,
    /// Why the answer may differ between runs, if it may.
    pub nondeterministic: Option<String>,
    pub txn: Txn,
}

/// How a statement is classified; `Rules::default()` is the strict set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// `--assume-functions-read-only`: stored functions called from a read are taken as
    /// reads (otherwise a statement calling one is refused under `--read-only`). Sequences,
    /// user locks and `LOAD_FILE` are refused all the same.
    pub assume_functions_read_only: bool,
}

/// Refusal reasons (the report counts statements by them).
pub const WRITES: &str = "writes";
pub const LOCKING_READ: &str = "locking read";
pub const SEQUENCE: &str = "sequence";
pub const USER_LOCK: &str = "user lock";
pub const NOT_UNDERSTOOD: &str = "not understood";
pub const READ_ONLY_STATE: &str = "changes the session's read-only state";

pub fn classify(sql: &str) -> Class {
    classify_with(sql, Rules::default())
}

pub fn classify_with(sql: &str, rules: Rules) -> Class {
    let executed = Executed::parse(sql);
    let expanded = match &executed {
        Ok(e) => e.expanded(),
        Err(_) => sql.to_string(),
    };
    // The expanded text is parsed once: for its shape, and as the first reading.
    let first = parse(&expanded);
    let (parsed, ordered, txn) = shape(&first, &expanded);
    let mut refusal = match &executed {
        Err(a) => Some(format!("{NOT_UNDERSTOOD}: {}", a.0)),
        Ok(e) => match e.texts() {
            Err(a) => Some(format!("{NOT_UNDERSTOOD}: {}", a.0)),
            Ok(texts) => texts.iter().find_map(|t| {
                let pre = (*t == expanded).then_some(&first);
                refusal_of(t, pre, rules)
            }),
        },
    };
    let mut unlocked = None;
    // A locking read is sent without its lock when that text is, by itself, sent: the
    // lock is only removed where no executable comment could move it.
    if refusal.is_some() && executed.as_ref().is_ok_and(|e| !e.has_executable()) {
        if let Some(u) = strip_lock(sql) {
            let c = classify_with(&u, rules);
            if c.refusal.is_none() && c.unlocked.is_none() {
                unlocked = Some(u);
                refusal = None;
            } else if let Some(r) = c.refusal {
                // What keeps the statement from being sent even without its lock.
                refusal = Some(r);
            }
        }
    }
    Class {
        read_only: refusal.is_none(),
        refusal,
        unlocked,
        parsed,
        ordered,
        nondeterministic: nondeterminism(&expanded),
        txn,
    }
}

type Parsed = Result<Vec<Statement>, sqlparser::parser::ParserError>;

fn parse(text: &str) -> Parsed {
    Parser::parse_sql(&MySqlDialect {}, &for_parser(text))
}

/// From the parsed expanded text: whether the parser understood it, whether its rows are
/// ordered, how it moves the transaction.
fn shape(parsed: &Parsed, expanded: &str) -> (bool, bool, Txn) {
    match parsed {
        Ok(stmts) if !stmts.is_empty() => {
            let ordered = stmts.len() == 1
                && matches!(&stmts[0], Statement::Query(q) if q.order_by.is_some());
            let txn = match stmts.last() {
                Some(Statement::StartTransaction { .. }) => Txn::Begin,
                Some(Statement::Commit { .. } | Statement::Rollback { .. }) => Txn::End,
                _ => Txn::None,
            };
            (true, ordered, txn)
        }
        _ => (false, false, fallback_txn(expanded)),
    }
}

/// `BEGIN`/`COMMIT` spellings the parser may not take (`BEGIN WORK`, `COMMIT AND CHAIN`…):
/// only used to track transactions, never to decide what is replayed.
fn fallback_txn(sql: &str) -> Txn {
    let toks = tokenize(sql);
    let first = toks
        .first()
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| t.text(sql).to_ascii_lowercase());
    match first.as_deref() {
        Some("begin") | Some("start") => Txn::Begin,
        Some("commit") | Some("rollback") => Txn::End,
        _ => Txn::None,
    }
}
