//! Why one reading of a statement may not be sent under `--read-only`: what its tokens
//! show (write keywords, sequences, user locks, a global `SET`), whether its form is on the
//! allow-list, and every part of it (functions, `INTO`, locking clauses, table functions).

use std::ops::ControlFlow;

use cutover_workload::{tokenize, Token, TokenKind};
use sqlparser::ast::{
    Expr, ObjectName, Query, Select, Set, SetExpr, Statement, TableFactor, TransactionAccessMode,
    TransactionMode, Visit, Visitor,
};

use super::allow_list::{READ_ONLY_FUNCTIONS, SESSION_VARIABLES};
use super::{
    parse, Parsed, Rules, LOCKING_READ, NOT_UNDERSTOOD, READ_ONLY_STATE, SEQUENCE, USER_LOCK,
    WRITES,
};

/// Why one reading of the text (comments gone, executable comments chosen) may not be sent;
/// `pre`: the reading already parsed.
pub(super) fn refusal_of(text: &str, pre: Option<&Parsed>, rules: Rules) -> Option<String> {
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
