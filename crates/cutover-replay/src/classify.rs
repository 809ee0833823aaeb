//! What a statement is, decided once per statement class (fingerprint).
//!
//! - Whether it can change data (`--read-only` keeps only those that cannot): decided by
//!   parsing with `sqlparser` (MySQL dialect), never by the first word, so
//!   `/* x */ DELETE …`, `WITH … DELETE` or `SELECT … INTO OUTFILE` are not taken for reads.
//!   A statement the parser does not understand counts as a write: dropping a read costs a
//!   comparison, replaying a write on a server the user wanted left alone costs much more.
//! - Whether its rows come in a defined order (a top-level `ORDER BY`): then the rows are
//!   compared in order; otherwise as a multiset.
//! - Whether its answer may differ from run to run (`NOW()`, `RAND()`, `UUID()`, `LIMIT`
//!   without `ORDER BY`, …): its differences are reported apart, as noise.
//! - Whether it opens or ends a transaction (for "after a skipped write").

use cutover_workload::{tokenize, TokenKind};
use sqlparser::ast::{ContextModifier, Set, SetExpr, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Txn {
    None,
    Begin,
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// Cannot change data (SELECT including locking reads, SHOW, DESCRIBE, EXPLAIN, SET of
    /// session variables, USE, transaction control).
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

/// Functions whose value differs from call to call or server to server.
const VOLATILE: [&str; 17] = [
    "now",
    "sysdate",
    "current_timestamp",
    "current_time",
    "current_date",
    "curdate",
    "curtime",
    "localtime",
    "localtimestamp",
    "utc_timestamp",
    "unix_timestamp",
    "rand",
    "uuid",
    "uuid_short",
    "connection_id",
    "found_rows",
    "row_count",
];

/// How a statement is classified; `Rules::default()` is the strict set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// `--assume-functions-read-only`: stored functions called from a read are taken as
    /// reads (otherwise a statement calling one is refused under `--read-only`).
    pub assume_functions_read_only: bool,
}

pub fn classify(sql: &str) -> Class {
    classify_with(sql, Rules::default())
}

pub fn classify_with(sql: &str, _rules: Rules) -> Class {
    let parsed = Parser::parse_sql(&MySqlDialect {}, &for_parser(sql));
    let (read_only, parsed_ok, ordered, txn) = match &parsed {
        Ok(stmts) if !stmts.is_empty() => {
            let ro = stmts.iter().all(read_only);
            let ordered = stmts.len() == 1
                && matches!(&stmts[0], Statement::Query(q) if q.order_by.is_some());
            let txn = match stmts.last() {
                Some(Statement::StartTransaction { .. }) => Txn::Begin,
                Some(Statement::Commit { .. } | Statement::Rollback { .. }) => Txn::End,
                _ => Txn::None,
            };
            (ro, true, ordered, txn)
        }
        _ => (false, false, false, fallback_txn(sql)),
    };
    Class {
        read_only,
        refusal: (!read_only).then(|| "can change data".to_string()),
        unlocked: None,
        parsed: parsed_ok,
        ordered,
        nondeterministic: nondeterminism(sql),
        txn,
    }
}

/// MySQL spellings the parser does not take, rewritten to equivalents it does (same
/// meaning for classification): `LOCK IN SHARE MODE` → `FOR SHARE`.
fn for_parser(sql: &str) -> std::borrow::Cow<'_, str> {
    let toks = tokenize(sql);
    let n = toks.len();
    if n >= 4 {
        let tail: Vec<String> = toks[n - 4..]
            .iter()
            .map(|t| t.text(sql).to_ascii_lowercase())
            .collect();
        if tail == ["lock", "in", "share", "mode"] {
            let mut s = sql[..toks[n - 4].start].to_string();
            s.push_str("FOR SHARE");
            s.push_str(&sql[toks[n - 1].end..]);
            return std::borrow::Cow::Owned(s);
        }
    }
    std::borrow::Cow::Borrowed(sql)
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

fn read_only(s: &Statement) -> bool {
    match s {
        Statement::Query(q) => query_reads(q),
        Statement::Set(set) => session_set(set),
        Statement::Use(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => true,
        // EXPLAIN ANALYZE runs the statement.
        Statement::Explain {
            analyze, statement, ..
        } => !*analyze || read_only(statement),
        _ => false,
    }
}

fn query_reads(q: &sqlparser::ast::Query) -> bool {
    // `WITH … ` may wrap a data-changing statement in some dialects.
    set_expr_reads(&q.body)
}

fn set_expr_reads(e: &SetExpr) -> bool {
    match e {
        // `SELECT … INTO` creates a table (or writes a file in MySQL's OUTFILE form).
        SetExpr::Select(s) => s.into.is_none(),
        SetExpr::Query(q) => query_reads(q),
        SetExpr::SetOperation { left, right, .. } => set_expr_reads(left) && set_expr_reads(right),
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        _ => false,
    }
}

/// `SET` of session or user variables only (never `GLOBAL`/`PERSIST`).
fn session_set(set: &Set) -> bool {
    let global_name = |n: &str| {
        let n = n.to_ascii_lowercase();
        n.starts_with("@@global.")
            || n.starts_with("global.")
            || n.starts_with("@@persist")
            || n.starts_with("persist")
    };
    match set {
        Set::SingleAssignment {
            scope, variable, ..
        } => scope != &Some(ContextModifier::Global) && !global_name(&variable.to_string()),
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .all(|a| a.scope != Some(ContextModifier::Global) && !global_name(&a.name.to_string())),
        Set::SetNames { .. } | Set::SetNamesDefault {} | Set::SetTransaction { .. } => true,
        _ => false,
    }
}

/// Why a statement's answer may differ between two runs on the same data.
pub fn nondeterminism(sql: &str) -> Option<String> {
    let toks = tokenize(sql);
    let words: Vec<String> = toks
        .iter()
        .map(|t| match t.kind {
            TokenKind::Word => t.text(sql).to_ascii_lowercase(),
            _ => t.text(sql).to_string(),
        })
        .collect();
    let mut has_order = false;
    let mut has_limit = false;
    for (i, w) in words.iter().enumerate() {
        if toks[i].kind != TokenKind::Word {
            continue;
        }
        let call = words.get(i + 1).is_some_and(|n| n == "(");
        let bare = matches!(
            w.as_str(),
            "current_timestamp" | "current_time" | "current_date" | "localtime" | "localtimestamp"
        );
        if VOLATILE.contains(&w.as_str()) && (call || bare) {
            // `unix_timestamp(col)` is deterministic; `unix_timestamp()` is not.
            if w == "unix_timestamp" && words.get(i + 2).is_some_and(|n| n != ")") {
                continue;
            }
            return Some(format!("{}()", w.to_uppercase()));
        }
        if w == "order"
            && words
                .get(i + 1)
                .is_some_and(|n| n.eq_ignore_ascii_case("by"))
        {
            has_order = true;
        }
        if w == "limit" {
            has_limit = true;
        }
    }
    let first = words.first().map(String::as_str).unwrap_or("");
    if has_limit && !has_order && matches!(first, "select" | "(" | "with") {
        return Some("LIMIT without ORDER BY".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_by_parsing() {
        let mut bad = Vec::new();
        for sql in [
            "SELECT * FROM t WHERE id = 1 FOR UPDATE",
            "select * from t lock in share mode",
            "SHOW TABLES",
            "DESCRIBE t",
            "EXPLAIN SELECT 1",
            "SET @x = 1",
            "SET SESSION sql_mode = ''",
            "SET autocommit = 0",
            "SET NAMES utf8mb4",
            "USE shop",
            "BEGIN",
            "START TRANSACTION",
            "COMMIT",
            "ROLLBACK",
            "/* delete */ SELECT 1",
            "SELECT a FROM t UNION SELECT b FROM u",
            "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
            "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
            "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 10",
            "SHOW WARNINGS",
            "SELECT @@session.autocommit",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET @@session.sql_mode = 'ANSI'",
        ] {
            let c = classify(sql);
            if !(c.read_only && c.parsed) {
                bad.push(format!("{sql}: {c:?}"));
            }
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "/* select */ DELETE FROM t",
            "UPDATE t SET a = 1",
            "REPLACE INTO t VALUES (1)",
            "CREATE TABLE x (a INT)",
            "DROP TABLE t",
            "SET GLOBAL max_connections = 10",
            "SET @@global.max_connections = 10",
            "TRUNCATE TABLE t",
            "this is not sql",
        ] {
            assert!(!classify(sql).read_only, "{sql}");
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn order_and_transactions() {
        assert!(classify("SELECT a FROM t ORDER BY a").ordered);
        assert!(!classify("SELECT a FROM (SELECT a FROM t ORDER BY a) x").ordered);
        assert_eq!(classify("BEGIN").txn, Txn::Begin);
        assert_eq!(classify("START TRANSACTION").txn, Txn::Begin);
        assert_eq!(classify("COMMIT").txn, Txn::End);
        assert_eq!(classify("SELECT 1").txn, Txn::None);
    }

    #[test]
    fn noise() {
        assert!(nondeterminism("SELECT NOW()").is_some());
        assert!(nondeterminism("select rand() from t").is_some());
        assert!(nondeterminism("INSERT INTO t VALUES (UUID())").is_some());
        assert!(nondeterminism("select * from t limit 5").is_some());
        assert!(nondeterminism("select * from t order by id limit 5").is_none());
        assert!(nondeterminism("select unix_timestamp(created) from t").is_none());
        assert!(nondeterminism("select 'now()' from t").is_none());
        assert!(nondeterminism("select * from t where id = 1").is_none());
    }
}
