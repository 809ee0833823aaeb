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

use std::ops::ControlFlow;

use cutover_workload::{tokenize, Token, TokenKind};
use sqlparser::ast::{
    Expr, ObjectName, Query, Select, Set, SetExpr, Statement, TableFactor, TransactionAccessMode,
    TransactionMode, Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

pub mod exec_comments;

use exec_comments::Executed;

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

/// Why one reading of the text (comments gone, executable comments chosen) may not be sent;
/// `pre`: the reading already parsed.
fn refusal_of(text: &str, pre: Option<&Parsed>, rules: Rules) -> Option<String> {
    let toks = tokenize(text);
    if toks
        .iter()
        .all(|t| t.kind == TokenKind::Punct && t.text(text) == ";")
    {
        // Nothing runs (the server answers "Query was empty").
        return None;
    }
    if let Some(r) = token_refusal(text, &toks) {
        return Some(r);
    }
    let own;
    let parsed = match pre {
        Some(p) => p,
        None => {
            own = parse(text);
            &own
        }
    };
    let Ok(stmts) = parsed else {
        return Some(unparsed_reason(text, &toks));
    };
    for st in stmts {
        if let Some(r) = statement_refusal(st) {
            return Some(r);
        }
        let mut check = Check { rules };
        if let ControlFlow::Break(r) = st.visit(&mut check) {
            return Some(r);
        }
    }
    None
}

/// Reserved words that begin or make a write. MySQL takes none of them as an unquoted name,
/// so wherever one is code (not a function call: `INSERT(…)`, `REPLACE(…)`, `TRUNCATE(…)`
/// are string and number functions), the statement is refused even where the parser would
/// take it for a name (`SELECT delete FROM t` parses as a read).
const WRITE_WORDS: &[&str] = &[
    "alter", "call", "create", "delete", "drop", "grant", "handler", "insert", "load", "lock",
    "rename", "replace", "revoke", "truncate", "update",
];

/// What the tokens alone show, whatever the parser makes of them: write keywords,
/// sequences, user locks, `LOAD_FILE`, a `SET` of a global variable.
fn token_refusal(text: &str, toks: &[Token]) -> Option<String> {
    let word = |i: usize| -> Option<String> {
        toks.get(i).and_then(|t| match t.kind {
            TokenKind::Word => Some(t.text(text).to_ascii_lowercase()),
            TokenKind::QuotedIdent => Some(
                t.text(text)
                    .trim_matches('`')
                    .replace("``", "`")
                    .to_ascii_lowercase(),
            ),
            _ => None,
        })
    };
    let mut in_set = false;
    for (i, t) in toks.iter().enumerate() {
        let prev_ends = i == 0 || toks[i - 1].text(text) == ";";
        if t.kind == TokenKind::Punct && t.text(text) == ";" {
            in_set = false;
            continue;
        }
        if t.kind == TokenKind::Variable {
            let v = t.text(text).to_ascii_lowercase();
            if in_set && (v.starts_with("@@global.") || v.starts_with("@@persist")) {
                return Some("sets a global variable".into());
            }
            continue;
        }
        let Some(w) = word(i) else { continue };
        if prev_ends && w == "set" {
            in_set = true;
        }
        let call = toks
            .get(i + 1)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(text) == "(");
        if t.kind == TokenKind::Word && WRITE_WORDS.contains(&w.as_str()) && !call {
            let prev = |p: &str| i > 0 && toks[i - 1].text(text).eq_ignore_ascii_case(p);
            if (w == "update" && prev("for"))
                || (w == "lock" && word(i + 1).as_deref() == Some("in"))
            {
                return Some(LOCKING_READ.into());
            }
            if !(w == "create" && prev("show")) {
                return Some(WRITES.into());
            }
        }
        match w.as_str() {
            "nextval" | "lastval" | "setval" | "currval" => return Some(SEQUENCE.into()),
            "next" | "previous" if word(i + 1).as_deref() == Some("value") => {
                return Some(SEQUENCE.into())
            }
            "get_lock" | "release_lock" | "release_all_locks" | "is_used_lock" | "is_free_lock" => {
                return Some(USER_LOCK.into())
            }
            "load_file" => return Some("reads a server file (LOAD_FILE)".into()),
            "outfile" if t.kind == TokenKind::Word => return Some("INTO OUTFILE".into()),
            "dumpfile" if t.kind == TokenKind::Word => return Some("INTO DUMPFILE".into()),
            "global" | "persist" | "persist_only" if in_set => {
                return Some("sets a global variable".into())
            }
            _ => {}
        }
    }
    None
}

/// The reason for a text the parser did not take: the write it names if it names one.
fn unparsed_reason(text: &str, toks: &[Token]) -> String {
    let words: Vec<String> = toks
        .iter()
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| t.text(text).to_ascii_lowercase())
        .collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    if has("into") && has("outfile") {
        "INTO OUTFILE".into()
    } else if has("into") && has("dumpfile") {
        "INTO DUMPFILE".into()
    } else if has("into") && matches!(words.first().map(String::as_str), Some("select" | "with")) {
        "INTO".into()
    } else {
        NOT_UNDERSTOOD.into()
    }
}

/// Why a parsed statement's form is not on the allow-list (its parts are checked by
/// [`Check`]).
fn statement_refusal(s: &Statement) -> Option<String> {
    match s {
        Statement::Query(q) => query_refusal(q),
        Statement::Set(set) => set_refusal(set),
        Statement::Explain { statement, .. } => {
            // Not sent unless the statement explained would be: `EXPLAIN ANALYZE` runs it,
            // and the optimizer may evaluate constant subqueries of any `EXPLAIN`.
            statement_refusal(statement)
        }
        Statement::StartTransaction {
            modes, statements, ..
        } => {
            if !statements.is_empty() {
                Some(NOT_UNDERSTOOD.into())
            } else {
                modes_refusal(modes)
            }
        }
        Statement::Use(_)
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
        | Statement::ShowCollation { .. } => None,
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_)
        | Statement::Truncate(_)
        | Statement::Load { .. }
        | Statement::LoadData { .. }
        | Statement::Copy { .. }
        | Statement::RenameTable(_)
        | Statement::Drop { .. } => Some(WRITES.into()),
        Statement::LockTables { .. } | Statement::Lock(_) => Some("takes a lock".into()),
        other => {
            let shown = other.to_string();
            let first = shown
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if first.starts_with("CREATE") || first.starts_with("ALTER") {
                Some(WRITES.into())
            } else {
                Some(format!("not a read ({first})"))
            }
        }
    }
}

fn modes_refusal(modes: &[TransactionMode]) -> Option<String> {
    modes.iter().find_map(|m| match m {
        TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => None,
        TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
            Some(READ_ONLY_STATE.into())
        }
        TransactionMode::IsolationLevel(_) => Some("changes the isolation level".into()),
    })
}

fn query_refusal(q: &Query) -> Option<String> {
    set_expr_refusal(&q.body)
}

fn set_expr_refusal(e: &SetExpr) -> Option<String> {
    match e {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => None,
        SetExpr::Query(q) => query_refusal(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_refusal(left).or_else(|| set_expr_refusal(right))
        }
        // `WITH … DELETE`, `WITH … INSERT`.
        _ => Some(WRITES.into()),
    }
}

/// Session variables a replayed `SET` may change: the client's character sets, SQL mode,
/// time zone, limits and timeouts, optimizer and buffer settings. None of them lets a
/// statement change data that it could not change otherwise. `tx_read_only` and
/// `transaction_read_only` may only be set on; see [`set_refusal`].
pub const SESSION_VARIABLES: &[&str] = &[
    "autocommit",
    "big_tables",
    "block_encryption_mode",
    "character_set_client",
    "character_set_connection",
    "character_set_database",
    "character_set_filesystem",
    "character_set_results",
    "collation_connection",
    "collation_database",
    "completion_type",
    "cte_max_recursion_depth",
    "default_week_format",
    "div_precision_increment",
    "eq_range_index_dive_limit",
    "explicit_defaults_for_timestamp",
    "foreign_key_checks",
    "group_concat_max_len",
    "innodb_lock_wait_timeout",
    "interactive_timeout",
    "join_buffer_size",
    "lc_messages",
    "lc_time_names",
    "lock_wait_timeout",
    "max_execution_time",
    "max_heap_table_size",
    "max_join_size",
    "max_length_for_sort_data",
    "max_recursive_iterations",
    "max_sort_length",
    "max_statement_time",
    "net_buffer_length",
    "net_read_timeout",
    "net_write_timeout",
    "optimizer_prune_level",
    "optimizer_search_depth",
    "optimizer_switch",
    "profiling",
    "profiling_history_size",
    "query_cache_type",
    "read_buffer_size",
    "read_rnd_buffer_size",
    "session_track_gtids",
    "session_track_schema",
    "session_track_state_change",
    "session_track_system_variables",
    "session_track_transaction_info",
    "sort_buffer_size",
    "sql_auto_is_null",
    "sql_big_selects",
    "sql_buffer_result",
    "sql_mode",
    "sql_notes",
    "sql_quote_show_create",
    "sql_safe_updates",
    "sql_select_limit",
    "sql_warnings",
    "time_zone",
    "tmp_table_size",
    "unique_checks",
    "wait_timeout",
];

fn set_refusal(set: &Set) -> Option<String> {
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            if matches!(scope, Some(sqlparser::ast::ContextModifier::Global)) {
                return Some("sets a global variable".into());
            }
            assignment_refusal(variable, values)
        }
        Set::MultipleAssignments { assignments } => assignments.iter().find_map(|a| {
            if matches!(a.scope, Some(sqlparser::ast::ContextModifier::Global)) {
                return Some("sets a global variable".into());
            }
            assignment_refusal(&a.name, std::slice::from_ref(&a.value))
        }),
        Set::SetNames { .. } | Set::SetNamesDefault {} | Set::SetTimeZone { .. } => None,
        Set::SetTransaction {
            modes, snapshot, ..
        } => {
            if snapshot.is_some() {
                return Some(NOT_UNDERSTOOD.into());
            }
            modes_refusal(modes)
        }
        Set::SetRole { .. } => Some("changes the session's role".into()),
        _ => Some(NOT_UNDERSTOOD.into()),
    }
}

/// `SET name = value`: a user variable, or a session variable on the allow-list.
fn assignment_refusal(name: &ObjectName, values: &[Expr]) -> Option<String> {
    let full = name.to_string().to_ascii_lowercase().replace('`', "");
    if full.starts_with('@') && !full.starts_with("@@") {
        return None;
    }
    let bare = full.trim_start_matches("@@");
    let var = ["session.", "local."]
        .iter()
        .find_map(|p| bare.strip_prefix(p))
        .unwrap_or(bare);
    if var.contains('.') || var.starts_with("global") || var.starts_with("persist") {
        return Some("sets a global variable".into());
    }
    match var {
        "tx_read_only" | "transaction_read_only" => {
            let on = values.len() == 1 && {
                let v = values[0].to_string().to_ascii_lowercase();
                matches!(v.as_str(), "1" | "on" | "true" | "'on'" | "'1'")
            };
            (!on).then(|| READ_ONLY_STATE.to_string())
        }
        "tx_isolation" | "transaction_isolation" => Some("changes the isolation level".into()),
        v if SESSION_VARIABLES.contains(&v) => None,
        v => Some(format!("sets {v}, not on the allow-list")),
    }
}

/// Walks every part of a statement: function calls, `INTO`, locking clauses, table
/// functions.
struct Check {
    rules: Rules,
}

impl Visitor for Check {
    type Break = String;

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<String> {
        if !q.locks.is_empty() {
            return ControlFlow::Break(LOCKING_READ.into());
        }
        if q.for_clause.is_some() || q.settings.is_some() || q.format_clause.is_some() {
            return ControlFlow::Break(NOT_UNDERSTOOD.into());
        }
        if let Some(r) = set_expr_refusal(&q.body) {
            return ControlFlow::Break(r);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<String> {
        if s.into.is_some() {
            return ControlFlow::Break("INTO".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<String> {
        match t {
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::JsonTable { .. } => ControlFlow::Continue(()),
            TableFactor::Table { name, .. } => {
                ControlFlow::Break(format!("calls stored function {name}"))
            }
            _ => ControlFlow::Break(NOT_UNDERSTOOD.into()),
        }
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
        match e {
            Expr::Function(f) => match function_refusal(&f.name, self.rules) {
                Some(r) => ControlFlow::Break(r),
                None => ControlFlow::Continue(()),
            },
            Expr::Lambda(_) => ControlFlow::Break(NOT_UNDERSTOOD.into()),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Why a call of function `name` may not be sent.
fn function_refusal(name: &ObjectName, rules: Rules) -> Option<String> {
    let parts: Vec<(String, bool)> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => (i.value.to_ascii_lowercase(), i.quote_style.is_some()),
            None => (p.to_string().to_ascii_lowercase(), true),
        })
        .collect();
    let shown = name.to_string();
    let denied = |n: &str| -> Option<String> {
        match n {
            "nextval" | "lastval" | "setval" | "currval" => Some(SEQUENCE.into()),
            "get_lock" | "release_lock" | "release_all_locks" | "is_used_lock" | "is_free_lock" => {
                Some(USER_LOCK.into())
            }
            "load_file" => Some("reads a server file (LOAD_FILE)".into()),
            "master_pos_wait"
            | "master_gtid_wait"
            | "source_pos_wait"
            | "wait_for_executed_gtid_set"
            | "wait_until_sql_thread_after_gtids" => Some("waits for replication".into()),
            _ => None,
        }
    };
    if let Some((last, _)) = parts.last() {
        if let Some(r) = denied(last) {
            return Some(r);
        }
    }
    // A built-in is named by one unquoted word; `db.f` and `` `f` `` name stored functions.
    let builtin = match parts.as_slice() {
        [(n, false)] => READ_ONLY_FUNCTIONS.binary_search(&n.as_str()).is_ok(),
        _ => false,
    };
    if builtin || rules.assume_functions_read_only {
        None
    } else {
        Some(format!("calls stored function {shown}"))
    }
}

/// Built-in functions of MySQL, MariaDB and TiDB that change no data, take no lock and
/// read no file (sorted: looked up by binary search). Not here, so refused: sequences,
/// user locks, `LOAD_FILE`, replication waits, and every name not known.
pub const READ_ONLY_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "adddate",
    "addtime",
    "aes_decrypt",
    "aes_encrypt",
    "any_value",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "avg",
    "benchmark",
    "bin",
    "bin_to_uuid",
    "binary",
    "bit_and",
    "bit_count",
    "bit_length",
    "bit_or",
    "bit_xor",
    "cast",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "character_length",
    "charset",
    "chr",
    "coalesce",
    "coercibility",
    "collation",
    "column_check",
    "column_create",
    "column_exists",
    "column_get",
    "column_json",
    "column_list",
    "compress",
    "concat",
    "concat_ws",
    "connection_id",
    "conv",
    "convert",
    "convert_tz",
    "cos",
    "cot",
    "count",
    "crc32",
    "crc32c",
    "cume_dist",
    "curdate",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "curtime",
    "database",
    "date",
    "date_add",
    "date_format",
    "date_sub",
    "datediff",
    "day",
    "dayname",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "decode",
    "default",
    "degrees",
    "dense_rank",
    "des_decrypt",
    "des_encrypt",
    "elt",
    "encode",
    "encrypt",
    "exp",
    "export_set",
    "extract",
    "extractvalue",
    "field",
    "find_in_set",
    "first_value",
    "floor",
    "format",
    "format_bytes",
    "format_pico_time",
    "found_rows",
    "from_base64",
    "from_days",
    "from_unixtime",
    "get_format",
    "greatest",
    "group_concat",
    "grouping",
    "hex",
    "hour",
    "if",
    "ifnull",
    "inet6_aton",
    "inet6_ntoa",
    "inet_aton",
    "inet_ntoa",
    "insert",
    "instr",
    "interval",
    "is_ipv4",
    "is_ipv4_compat",
    "is_ipv4_mapped",
    "is_ipv6",
    "is_uuid",
    "isnull",
    "json_array",
    "json_array_append",
    "json_array_insert",
    "json_arrayagg",
    "json_compact",
    "json_contains",
    "json_contains_path",
    "json_depth",
    "json_detailed",
    "json_equals",
    "json_exists",
    "json_extract",
    "json_insert",
    "json_keys",
    "json_length",
    "json_loose",
    "json_merge",
    "json_merge_patch",
    "json_merge_preserve",
    "json_normalize",
    "json_object",
    "json_objectagg",
    "json_overlaps",
    "json_pretty",
    "json_query",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_schema_valid",
    "json_search",
    "json_set",
    "json_storage_free",
    "json_storage_size",
    "json_type",
    "json_unquote",
    "json_valid",
    "json_value",
    "lag",
    "last_day",
    "last_insert_id",
    "last_value",
    "lcase",
    "lead",
    "least",
    "left",
    "length",
    "lengthb",
    "ln",
    "localtime",
    "localtimestamp",
    "locate",
    "log",
    "log10",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "make_set",
    "makedate",
    "maketime",
    "max",
    "md5",
    "median",
    "microsecond",
    "mid",
    "min",
    "minute",
    "mod",
    "month",
    "monthname",
    "name_const",
    "natural_sort_key",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "nvl",
    "nvl2",
    "oct",
    "octet_length",
    "ord",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "period_add",
    "period_diff",
    "pi",
    "position",
    "pow",
    "power",
    "quarter",
    "quote",
    "radians",
    "rand",
    "random_bytes",
    "rank",
    "regexp_instr",
    "regexp_like",
    "regexp_replace",
    "regexp_substr",
    "release_version",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_count",
    "row_number",
    "rpad",
    "rtrim",
    "schema",
    "sec_to_time",
    "second",
    "session_user",
    "sformat",
    "sha",
    "sha1",
    "sha2",
    "sign",
    "sin",
    "sleep",
    "soundex",
    "space",
    "sqrt",
    "statement_digest",
    "statement_digest_text",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "str_to_date",
    "strcmp",
    "subdate",
    "substr",
    "substring",
    "substring_index",
    "subtime",
    "sum",
    "sys_guid",
    "sysdate",
    "system_user",
    "tan",
    "tidb_decode_key",
    "tidb_decode_plan",
    "tidb_is_ddl_owner",
    "tidb_parse_tso",
    "tidb_version",
    "time",
    "time_format",
    "time_to_sec",
    "timediff",
    "timestamp",
    "timestampadd",
    "timestampdiff",
    "to_base64",
    "to_char",
    "to_days",
    "to_seconds",
    "trim",
    "truncate",
    "ucase",
    "uncompress",
    "uncompressed_length",
    "unhex",
    "unix_timestamp",
    "updatexml",
    "upper",
    "user",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "uuid",
    "uuid_short",
    "uuid_to_bin",
    "validate_password_strength",
    "values",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "week",
    "weekday",
    "weekofyear",
    "weight_string",
    "year",
    "yearweek",
];

/// A locking read's text without its trailing locking clauses (`FOR UPDATE`, `FOR SHARE`,
/// `LOCK IN SHARE MODE`, each with `OF …`, `NOWAIT`, `SKIP LOCKED`, `WAIT n`), or `None`
/// when there is none or something follows it.
pub fn strip_lock(sql: &str) -> Option<String> {
    let toks = tokenize(sql);
    let low = |i: usize| -> String {
        toks.get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(sql).to_ascii_lowercase())
            .unwrap_or_default()
    };
    let punct = |i: usize, p: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(sql) == p)
    };
    // The first locking clause at the top level.
    let mut depth = 0i32;
    let mut first = None;
    for i in 0..toks.len() {
        if punct(i, "(") {
            depth += 1;
        } else if punct(i, ")") {
            depth -= 1;
        } else if depth == 0
            && ((low(i) == "for" && matches!(low(i + 1).as_str(), "update" | "share"))
                || (low(i) == "lock" && low(i + 1) == "in" && low(i + 2) == "share"))
        {
            first = Some(i);
            break;
        }
    }
    let first = first?;
    let mut i = first;
    let mut last;
    loop {
        if low(i) == "for" && matches!(low(i + 1).as_str(), "update" | "share") {
            i += 2;
        } else if low(i) == "lock" && low(i + 1) == "in" && low(i + 2) == "share" {
            if low(i + 3) != "mode" {
                return None;
            }
            i += 4;
        } else {
            return None;
        }
        if low(i) == "of" {
            i += 1;
            loop {
                // A table name: `t`, `` `t` ``, `db.t`.
                let is_name = |k: usize| {
                    toks.get(k)
                        .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
                };
                if !is_name(i) {
                    return None;
                }
                i += 1;
                while punct(i, ".") && is_name(i + 1) {
                    i += 2;
                }
                if punct(i, ",") {
                    i += 1;
                } else {
                    break;
                }
            }
        }
        match low(i).as_str() {
            "nowait" => i += 1,
            "skip" if low(i + 1) == "locked" => i += 2,
            "wait" if toks.get(i + 1).is_some_and(|t| t.kind == TokenKind::Number) => i += 2,
            _ => {}
        }
        last = i - 1;
        if i >= toks.len() || (punct(i, ";") && i + 1 == toks.len()) {
            break;
        }
    }
    let mut out = sql[..toks[first].start].trim_end().to_string();
    out.push_str(&sql[toks[last].end..]);
    Some(out)
}

/// MySQL spellings the parser does not take, rewritten to equivalents it does (same
/// meaning for classification): `LOCK IN SHARE MODE` → `FOR SHARE`; `START TRANSACTION
/// [mode,] WITH CONSISTENT SNAPSHOT` without the snapshot (it only chooses when the read
/// view starts); `SET CHARACTER SET x` → `SET NAMES x`.
fn for_parser(sql: &str) -> std::borrow::Cow<'_, str> {
    let toks = tokenize(sql);
    let n = toks.len();
    let low = |i: usize| toks[i].text(sql).to_ascii_lowercase();
    // `SET CHARACTER SET x` / `SET CHARSET x` set the client's character sets, as `SET NAMES`.
    if n >= 3 && low(0) == "set" {
        let skip = if low(1) == "charset" {
            Some(toks[1].end)
        } else if low(1) == "character" && low(2) == "set" {
            Some(toks[2].end)
        } else {
            None
        };
        if let Some(end) = skip {
            return std::borrow::Cow::Owned(format!("SET NAMES{}", &sql[end..]));
        }
    }
    if n >= 5 && low(0) == "start" && low(1) == "transaction" {
        if let Some(i) = (2..n - 2)
            .find(|&i| low(i) == "with" && low(i + 1) == "consistent" && low(i + 2) == "snapshot")
        {
            let mut from = toks[i].start;
            let mut to = toks[i + 2].end;
            if i + 3 < n && low(i + 3) == "," {
                to = toks[i + 3].end;
            } else if low(i - 1) == "," {
                from = toks[i - 1].start;
            }
            let s = format!("{}{}", &sql[..from], &sql[to..]);
            return std::borrow::Cow::Owned(for_parser(&s).into_owned());
        }
    }
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
    use proptest::prelude::*;

    /// Statements `--read-only` must not send, in every form the issue names (each a
    /// vector seen to write through the earlier classifier, or a variant of one).
    pub const WRITES_CORPUS: &[&str] = &[
        "INSERT INTO t VALUES (1)",
        "/* select */ DELETE FROM t",
        "UPDATE t SET a = 1",
        "REPLACE INTO t VALUES (1)",
        "CREATE TABLE x (a INT)",
        "DROP TABLE t",
        "TRUNCATE TABLE t",
        "RENAME TABLE a TO b",
        "GRANT ALL ON *.* TO u",
        "this is not sql",
        "SELECT 1; DELETE FROM t",
        "SHOW TABLES; DELETE FROM t",
        "WITH x AS (SELECT 1) DELETE FROM t",
        "INSERT INTO t SELECT * FROM u",
        // Executable comments of every form.
        "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */",
        "SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */",
        "/*! DELETE FROM t */",
        "/*!50000 DELETE FROM t */",
        "/*!100000 DELETE FROM t */",
        "/*!99999 DELETE FROM t */",
        "/*M! DELETE FROM t */",
        "/*M!100100 DELETE FROM t */",
        "/*T! DELETE FROM t */",
        "/*T![auto_rand] DELETE FROM t */",
        "SELECT 1 /*!, f() */",
        "SELECT 1 /*M! ; DELETE FROM t */",
        "SELECT 1 /*T! ; UPDATE t SET a = 2 */",
        "/*!40101 SET @x = 1 */; DELETE FROM t",
        "SELECT 1 /*!99999 ' */ ; DELETE FROM t; -- ' */",
        // Quoting that reads otherwise under NO_BACKSLASH_ESCAPES.
        "SELECT 'a\\' ; DELETE FROM t; -- '",
        // INTO.
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "SELECT a FROM t INTO OUTFILE '/tmp/x'",
        "SELECT 1 INTO DUMPFILE '/tmp/x'",
        "SELECT 1 INTO @v",
        "SELECT a INTO @v FROM t",
        "SELECT * INTO t2 FROM t",
        // Stored (or unknown) functions.
        "SELECT f(1)",
        "SELECT shop.f(1)",
        "SELECT `now`()",
        "SELECT * FROM t WHERE a = f()",
        "SELECT (SELECT f())",
        "SELECT a FROM t ORDER BY f(a)",
        "SET @x = f()",
        "EXPLAIN SELECT f()",
        "SELECT * FROM f(1)",
        // Sequences.
        "SELECT NEXTVAL(s)",
        "SELECT NEXT VALUE FOR s",
        "SELECT PREVIOUS VALUE FOR s",
        "SELECT LASTVAL(s)",
        "SELECT SETVAL(s, 100)",
        "SELECT s.nextval",
        "SELECT `s`.`nextval`",
        // User locks and server files.
        "SELECT GET_LOCK('a', 0)",
        "SELECT RELEASE_LOCK('a')",
        "SELECT RELEASE_ALL_LOCKS()",
        "SELECT IS_USED_LOCK('a')",
        "SELECT LOAD_FILE('/etc/passwd')",
        "DO GET_LOCK('a', 0)",
        // The session's read-only state, isolation, globals, roles, passwords.
        "SET SESSION TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "START TRANSACTION READ WRITE",
        "START TRANSACTION READ ONLY, READ WRITE",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
        "SET SESSION tx_read_only = 0",
        "SET tx_read_only = OFF",
        "SET @@session.transaction_read_only=OFF",
        "SET @@transaction_read_only = 0",
        "SET transaction_read_only = DEFAULT",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET tx_isolation = 'READ-COMMITTED'",
        "SET GLOBAL max_connections = 10",
        "SET @@global.max_connections = 10",
        "SET GLOBAL TRANSACTION READ WRITE",
        "SET GLOBAL TRANSACTION READ ONLY",
        "SET PERSIST max_connections = 10",
        "SET @@persist.max_connections = 10",
        "SET autocommit = 1, GLOBAL read_only = 0",
        "SET PASSWORD = 'x'",
        "SET ROLE ALL",
        "SET CHARACTER SET utf8, GLOBAL read_only = 0",
        "SET CHARSET utf8; DELETE FROM t",
        "SET sql_log_bin = 0",
        "SET sql_log_off = 1",
        "SET STATEMENT max_statement_time = 1 FOR DELETE FROM t",
        // Statements that are not reads.
        "CALL p()",
        "DO 1",
        "HANDLER t OPEN",
        "LOCK TABLES t READ",
        "XA START 'x'",
        "FLUSH TABLES",
        "KILL 1",
        "INSTALL PLUGIN x SONAME 'y'",
        "CHECK TABLE t",
        "ANALYZE TABLE t",
        "OPTIMIZE TABLE t",
        "ANALYZE SELECT * FROM t",
        "EXPLAIN ANALYZE DELETE FROM t",
        "EXPLAIN DELETE FROM t",
        "LOAD DATA INFILE 'x' INTO TABLE t",
        "PREPARE s FROM 'DELETE FROM t'",
        "EXECUTE s",
        "BEGIN NOT ATOMIC DELETE FROM t; END",
        // Locking reads that cannot be sent without their lock.
        "SELECT * FROM (SELECT * FROM t FOR UPDATE) x",
        "SELECT a FROM t /*!50000 FOR UPDATE */",
        "SELECT f() FROM t FOR UPDATE",
        "SELECT * FROM t FOR UPDATE; DELETE FROM t",
        "SELECT * FROM t FOR UPDATE INTO @x",
    ];

    /// Statements `--read-only` sends as they are: what applications and drivers send.
    const READS_CORPUS: &[&str] = &[
        "SHOW TABLES",
        "DESCRIBE t",
        "EXPLAIN SELECT 1",
        "EXPLAIN SELECT * FROM t WHERE id = 1",
        "SET @x = 1",
        "SET SESSION sql_mode = ''",
        "SET autocommit = 0",
        "SET autocommit=1",
        "SET NAMES utf8mb4",
        "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
        "SET character_set_results = NULL",
        "SET sql_mode='STRICT_TRANS_TABLES'",
        "SET @@session.sql_mode = 'ANSI'",
        "SET time_zone = '+00:00'",
        "SET SESSION TRANSACTION READ ONLY",
        "SET TRANSACTION READ ONLY",
        "SET SESSION tx_read_only = 1",
        "SET @@session.transaction_read_only = ON",
        "USE shop",
        "BEGIN",
        "START TRANSACTION",
        "START TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "ROLLBACK TO SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "/* delete */ SELECT 1",
        "/* ApplicationName=DBeaver */ SELECT 1",
        "SELECT 1 -- delete\n",
        "SELECT 1 # delete",
        "SELECT 'DELETE FROM t', '/*! DELETE */'",
        "SELECT a FROM t UNION SELECT b FROM u",
        // sysbench oltp_read_only.
        "SELECT c FROM sbtest1 WHERE id=5",
        "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 10",
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 10",
        "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
        "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c",
        // JDBC (Connector/J) and other drivers.
        "SELECT @@max_allowed_packet,@@system_time_zone,@@time_zone,@@auto_increment_increment",
        "SELECT @@session.autocommit",
        "SELECT @@session.transaction_read_only",
        "SHOW WARNINGS",
        "SHOW VARIABLES LIKE 'sql_mode'",
        "SHOW FULL PROCESSLIST",
        "SHOW CREATE TABLE t",
        "SHOW COLUMNS FROM t",
        "SELECT DATABASE()",
        "/* mysql-connector-java-8.0.33 */SELECT @@session.auto_increment_increment AS \
         auto_increment_increment, @@character_set_client AS character_set_client, \
         @@character_set_connection AS character_set_connection, @@wait_timeout AS wait_timeout",
        "SET SQL_SELECT_LIMIT=DEFAULT",
        "SET @@SQL_SELECT_LIMIT = DEFAULT",
        "SET AUTOCOMMIT = 0",
        "SET NAMES utf8mb4 COLLATE 'utf8mb4_general_ci'",
        "SET CHARACTER SET utf8",
        "SET CHARSET utf8mb4",
        "SET character_set_client = utf8mb4, character_set_results = utf8mb4",
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')",
        "SET @@session.max_execution_time = 1000",
        "SHOW VARIABLES WHERE Variable_name = 'language' OR Variable_name = 'net_write_timeout'",
        "SHOW FULL TABLES FROM `shop` LIKE 't%'",
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop'",
        "SELECT * FROM t WHERE a = ? AND b IN (?, ?)",
        "SELECT 1 FROM DUAL",
        "SELECT CONNECTION_ID()",
        "SELECT VERSION(), CURRENT_USER(), CONNECTION_ID()",
        // Executable comments that only read.
        "SELECT /*! STRAIGHT_JOIN */ a FROM t, u",
        "SELECT 1 /*!50000 , 2 */",
        "SELECT 1 /*M!100000 , 2 */",
        "SELECT 1 /*T![clustered_index] , 2 */",
        "/*!40101 SET NAMES utf8 */",
        "/*!40101 SET character_set_client = utf8 */",
        // Built-in functions.
        "SELECT NOW(), UUID(), RAND()",
        "SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1",
        "SELECT JSON_EXTRACT(j, '$.a') FROM t",
        "SELECT CAST(a AS CHAR) FROM t",
        "SELECT CONCAT('a', b), IFNULL(c, 0), COALESCE(d, 1) FROM t",
        "SELECT DATE_FORMAT(NOW(), '%Y')",
        "SELECT COUNT(DISTINCT a) FROM t",
        "SELECT ROW_NUMBER() OVER (ORDER BY a) FROM t",
        "SELECT SLEEP(0)",
        "SELECT REPLACE(a, 'x', 'y'), INSERT(a, 1, 1, 'z') FROM t",
        "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "SELECT * FROM t LIMIT 10 OFFSET 5",
        // Backslash escapes (readings under NO_BACKSLASH_ESCAPES are syntax errors).
        "SELECT 'it\\'s'",
        "SELECT * FROM t WHERE name = 'O\\'Brien'",
        "SELECT \"a\" FROM t",
        "",
        "/* only a comment */",
    ];

    #[test]
    fn writes_are_refused() {
        let sent: Vec<String> = WRITES_CORPUS
            .iter()
            .filter_map(|sql| {
                let c = classify(sql);
                (c.refusal.is_none() || c.read_only).then(|| format!("{sql}: {c:?}"))
            })
            .collect();
        assert!(sent.is_empty(), "sent under --read-only: {sent:#?}");
    }

    #[test]
    fn reads_are_sent() {
        let bad: Vec<String> = READS_CORPUS
            .iter()
            .filter_map(|sql| {
                let c = classify(sql);
                (c.refusal.is_some() || c.unlocked.is_some() || !c.read_only)
                    .then(|| format!("{sql}: {c:?}"))
            })
            .collect();
        assert!(bad.is_empty(), "refused: {bad:#?}");
    }

    #[test]
    fn reasons() {
        for (sql, reason) in [
            ("SELECT NEXTVAL(s)", SEQUENCE),
            ("SELECT NEXT VALUE FOR s", SEQUENCE),
            ("SELECT GET_LOCK('a', 0)", USER_LOCK),
            ("SELECT f(1)", "calls stored function f"),
            ("SELECT shop.f(1)", "calls stored function shop.f"),
            ("SET SESSION TRANSACTION READ WRITE", READ_ONLY_STATE),
            ("START TRANSACTION READ WRITE", READ_ONLY_STATE),
            ("SET SESSION tx_read_only = 0", READ_ONLY_STATE),
            ("SET @@session.transaction_read_only=OFF", READ_ONLY_STATE),
            ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
            (
                "SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */",
                "INTO OUTFILE",
            ),
            ("DELETE FROM t", WRITES),
            (
                "/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */",
                WRITES,
            ),
            ("SELECT * FROM (SELECT * FROM t FOR UPDATE) x", LOCKING_READ),
            ("SELECT 1 /*! /* */ */", NOT_UNDERSTOOD),
            ("this is not sql", NOT_UNDERSTOOD),
        ] {
            let r = classify(sql).refusal.unwrap_or_default();
            assert!(r.starts_with(reason), "{sql}: {r}");
        }
    }

    #[test]
    fn stored_functions_under_assume() {
        let rules = Rules {
            assume_functions_read_only: true,
        };
        assert_eq!(classify_with("SELECT f(1)", rules).refusal, None);
        assert_eq!(
            classify_with("SELECT shop.f(a) FROM t", rules).refusal,
            None
        );
        // Never sequences, user locks or server files.
        for sql in [
            "SELECT NEXTVAL(s)",
            "SELECT GET_LOCK('a', 0)",
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
        ] {
            assert!(classify_with(sql, rules).refusal.is_some(), "{sql}");
        }
    }

    #[test]
    fn locking_reads_are_sent_unlocked() {
        for (sql, unlocked) in [
            (
                "SELECT * FROM t WHERE id = 1 FOR UPDATE",
                "SELECT * FROM t WHERE id = 1",
            ),
            ("select * from t lock in share mode", "select * from t"),
            ("SELECT * FROM t FOR SHARE NOWAIT", "SELECT * FROM t"),
            ("SELECT * FROM t FOR UPDATE SKIP LOCKED", "SELECT * FROM t"),
            (
                "SELECT * FROM t FOR UPDATE OF t, `u` NOWAIT",
                "SELECT * FROM t",
            ),
            ("SELECT * FROM t FOR UPDATE WAIT 5", "SELECT * FROM t"),
            (
                "SELECT * FROM t LOCK IN SHARE MODE NOWAIT",
                "SELECT * FROM t",
            ),
            ("SELECT * FROM t FOR UPDATE;", "SELECT * FROM t;"),
            (
                "SELECT c FROM sbtest1 WHERE id = 5 FOR UPDATE /* app */",
                "SELECT c FROM sbtest1 WHERE id = 5 /* app */",
            ),
            (
                "EXPLAIN SELECT * FROM t FOR UPDATE",
                "EXPLAIN SELECT * FROM t",
            ),
        ] {
            let c = classify(sql);
            assert_eq!(c.refusal, None, "{sql}");
            assert!(c.read_only, "{sql}");
            assert_eq!(c.unlocked.as_deref(), Some(unlocked), "{sql}");
        }
    }

    #[test]
    fn order_and_transactions_on_the_expanded_text() {
        assert!(classify("SELECT a FROM t /*!50000 ORDER BY a */").ordered);
        assert_eq!(classify("/*!40101 BEGIN */").txn, Txn::Begin);
        assert!(classify("SELECT /*M! NOW() */").nondeterministic.is_some());
        assert!(classify("SELECT /*T! RAND() */").nondeterministic.is_some());
    }

    /// Executable-comment openings of every form, run or skipped by some server.
    const OPENINGS: &[&str] = &[
        "/*!",
        "/*! ",
        "/*!50000 ",
        "/*!99999 ",
        "/*!100000 ",
        "/*!800000 ",
        "/*M!",
        "/*M! ",
        "/*M!100000 ",
        "/*M!999999 ",
        "/*T!",
        "/*T! ",
        "/*T![auto_rand] ",
        "/*m! ",
    ];

    /// A write of the corpus in random letter case (outside quotes, so a quoted value is
    /// the same value), with random whitespace for its spaces.
    fn disguised(sql: &str, upper: &[bool], ws: &[&str]) -> String {
        let mut out = String::new();
        let mut quote: Option<char> = None;
        let mut k = 0;
        let mut prev = '\0';
        for ch in sql.chars() {
            k += 1;
            match quote {
                Some(q) => {
                    out.push(ch);
                    if ch == q && prev != '\\' {
                        quote = None;
                    }
                }
                None if ch == '\'' || ch == '"' || ch == '`' => {
                    quote = Some(ch);
                    out.push(ch);
                }
                None if ch == ' ' => out.push_str(ws[k % ws.len()]),
                None if upper[k % upper.len()] => out.push(ch.to_ascii_uppercase()),
                None => out.push(ch.to_ascii_lowercase()),
            }
            prev = ch;
        }
        out
    }

    proptest! {
        /// The property (ARCHITECTURE.md, replay): for every statement of the corpus of
        /// writes, in any letter case and whitespace, after or before any comment, whole in
        /// an executable comment of any form, or following a read as a second statement,
        /// `classify` refuses it: `refusal` is `Some` and no `unlocked` form is sent.
        #[test]
        fn no_write_in_any_disguise_is_sent(
            w in prop::sample::select(WRITES_CORPUS),
            upper in prop::collection::vec(any::<bool>(), 1..8),
            ws in prop::collection::vec(prop::sample::select(&[" ", "  ", "\t", "\n", " \r\n "][..]), 1..4),
            opening in prop::sample::select(OPENINGS),
            wrap in 0..5u8,
            note in "[a-zA-Z0-9 =,.;'()]{0,12}",
        ) {
            let d = disguised(w, &upper, &ws);
            let note = note.replace('\'', "");
            let sql = match wrap {
                0 => d,
                1 => format!("/* {note} */ {d} -- {note}\n"),
                // A write that has a `*/` or a quote in it may not be wrapped whole: then the
                // comment ends early or becomes ambiguous, and is refused as not understood.
                2 => format!("{opening}{d} */"),
                3 => format!("SELECT 1; {opening}{d} */"),
                _ => format!("# {note}\n{d}"),
            };
            let c = classify(&sql);
            prop_assert!(c.refusal.is_some() && !c.read_only, "sent: {:?}: {:?}", sql, c);
            prop_assert!(c.unlocked.is_none(), "sent unlocked: {:?}: {:?}", sql, c);
        }

        /// The fuzzed property: a statement assembled from random read fragments, string
        /// literals and executable-comment openings and ends, with no plain comment, with at
        /// least one write fragment inserted anywhere (so every write fragment is code, or
        /// inside an executable comment some server runs, or breaks the text), is refused.
        #[test]
        fn fuzzed_statements_with_a_write_are_refused(
            parts in prop::collection::vec(prop::sample::select(&[
                "SELECT", "1", "a", "FROM", "t", "WHERE", "=", ",", "(", ")", "'x'",
                "'it''s'", "\"y\"", "`c`", ";", " ", "\n", "UNION", "ALL", "AS", "ORDER BY a",
                "LIMIT 1", "NOW()", "/*!", "/*! ", "/*M!", "/*!50000 ", "/*M!100000 ", "/*T! ",
                "/*T![f] ", "*/", "@v", ":=",
            ][..]), 0..24),
            writes in prop::collection::vec(prop::sample::select(&[
                "DELETE FROM t", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1",
                "DROP TABLE t", "CALL p()", "INTO OUTFILE '/tmp/o'", "INTO @v", "f()",
                "NEXTVAL(s)", "NEXT VALUE FOR s", "GET_LOCK('a', 0)", "LOAD_FILE('/x')",
                "SET SESSION TRANSACTION READ WRITE", "SET tx_read_only = 0",
            ][..]), 1..3),
            at in prop::collection::vec(any::<prop::sample::Index>(), 3),
            sep in prop::collection::vec(prop::sample::select(&[" ", "", "\n"][..]), 32),
        ) {
            let mut parts: Vec<&str> = parts;
            for (i, w) in writes.iter().enumerate() {
                let pos = at[i].index(parts.len() + 1);
                parts.insert(pos, w);
            }
            let mut sql = String::new();
            for (i, p) in parts.iter().enumerate() {
                sql.push_str(p);
                sql.push_str(sep[i % sep.len()]);
            }
            let c = classify(&sql);
            prop_assert!(c.refusal.is_some(), "sent: {:?}: {:?}", sql, c);
        }

        /// Any text at all: classifying never panics, and what is sent unlocked is itself
        /// sent as it is.
        #[test]
        fn any_text(sql in "\\PC{0,80}") {
            let c = classify(&sql);
            if let Some(u) = &c.unlocked {
                let cu = classify(u);
                prop_assert!(cu.refusal.is_none() && cu.unlocked.is_none());
            }
        }
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
