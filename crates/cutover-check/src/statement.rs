//! What one statement of a workload is, as far as the workload rules care: its kind (for
//! rebuilding transactions), the table it reads or writes, and the constructs TiDB treats
//! differently. Read from the tokens of `cutover_workload::tokenize` (the lexer the
//! fingerprints use, so a keyword inside a string or comment never counts), never from a
//! regular expression over the text.

use cutover_workload::{tokenize, Token, TokenKind};

/// How a statement moves a session's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `BEGIN`, `START TRANSACTION` (`read_only`: `START TRANSACTION READ ONLY`).
    Begin {
        read_only: bool,
    },
    Commit,
    /// `ROLLBACK` (not `ROLLBACK TO SAVEPOINT`).
    Rollback,
    /// `SET autocommit = …` of the session, with the value when the text shows it.
    SetAutocommit(Option<bool>),
    /// A schema change (`CREATE`/`ALTER`/`DROP`/`RENAME`/`TRUNCATE` of a database object;
    /// not temporary tables, users or roles): commits the session's open transaction.
    Ddl,
    Select,
    Insert,
    Update,
    Delete,
    Other,
}

/// TiDB's transaction mode as a statement names it: `BEGIN OPTIMISTIC` / `BEGIN PESSIMISTIC`
/// for one transaction, `SET [SESSION] tidb_txn_mode = …` for the session's next ones
/// (`''` is the cluster's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnMode {
    Optimistic,
    Pessimistic,
    Default,
}

/// Where the key of a single-row write is: a literal in the text or a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValue {
    Literal(String),
    /// The 0-based index of the `?` among the statement's parameters.
    Param(usize),
}

/// The key of `UPDATE … WHERE col = v` / `DELETE … WHERE col = v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteKey {
    pub column: String,
    pub value: KeyValue,
}

/// What the workload rules read from one statement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatementFacts {
    pub kind: Option<Kind>,
    /// The table read (`SELECT … FROM t`) or written (`INSERT INTO t`, `UPDATE t`,
    /// `DELETE FROM t`), unqualified and lowercased.
    pub table: Option<String>,
    pub for_update: bool,
    /// A locking read whose condition is a range (`<`, `>`, `BETWEEN`, `LIKE`, `<>`) or
    /// that has no `WHERE`: InnoDB locks the gaps, TiDB only the rows that exist.
    pub range: bool,
    pub share_lock: bool,
    pub skip_locked: bool,
    pub calc_found_rows: bool,
    /// `SET TRANSACTION READ ONLY`, `SET … transaction_read_only = ON`.
    pub set_txn_read_only: bool,
    /// A read-only system variable set to ON (or to a value the text does not show).
    pub read_only_variable: Option<String>,
    pub call: bool,
    pub xa: bool,
    pub spatial: bool,
    pub fulltext: bool,
    /// `LOAD DATA`: `Some(true)` with `LOCAL`.
    pub load_data: Option<bool>,
    /// `GET_LOCK(name, timeout)`: `Some(timeout)` when it is a number in the text.
    pub get_lock: Option<Option<f64>>,
    pub key: Option<WriteKey>,
    /// The transaction mode a `BEGIN` asks for, or a session-scope `SET tidb_txn_mode`
    /// sets (TiDB syntax: a workload recorded in front of TiDB may hold it).
    pub txn_mode: Option<TxnMode>,
}

/// Variables TiDB refuses to set to ON unless `tidb_enable_noop_functions` is on
/// (https://docs.pingcap.com/tidb/stable/system-variables#tidb_enable_noop_functions-new-in-v40).
const READ_ONLY_TXN_VARS: [&str; 2] = ["tx_read_only", "transaction_read_only"];
const READ_ONLY_VARS: [&str; 4] = [
    "read_only",
    "super_read_only",
    "offline_mode",
    "sql_auto_is_null",
];

/// Spatial constructors and functions outside the `ST_` prefix (MySQL's older names and
/// the `MBR` family).
const SPATIAL_FUNCTIONS: [&str; 16] = [
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomfromtext",
    "geomfromwkb",
    "pointfromtext",
    "astext",
    "asbinary",
    "mbrcontains",
    "mbrwithin",
    "mbrintersects",
    "mbroverlaps",
];

struct Lexed<'a> {
    sql: &'a str,
    tokens: &'a [Token],
    /// Lowercased text of word tokens; empty for the others.
    words: Vec<String>,
}

impl Lexed<'_> {
    fn word(&self, i: usize) -> &str {
        self.words.get(i).map(String::as_str).unwrap_or("")
    }
    fn punct(&self, i: usize) -> &str {
        match self.tokens.get(i) {
            Some(t) if t.kind == TokenKind::Punct => t.text(self.sql),
            _ => "",
        }
    }
    fn kind(&self, i: usize) -> Option<TokenKind> {
        self.tokens.get(i).map(|t| t.kind)
    }
    fn has_seq(&self, seq: &[&str]) -> bool {
        (0..self.tokens.len()).any(|i| seq.iter().enumerate().all(|(k, w)| self.word(i + k) == *w))
    }
    fn find_word(&self, from: usize, w: &str) -> Option<usize> {
        (from..self.tokens.len()).find(|&i| self.word(i) == w)
    }
    /// An identifier at `i` (a word or a quoted name), possibly `db.name`: the last part,
    /// lowercased, and the index after it.
    fn ident(&self, mut i: usize) -> Option<(String, usize)> {
        let mut name = None;
        loop {
            let t = self.tokens.get(i)?;
            let part = match t.kind {
                TokenKind::Word => self.word(i).to_string(),
                TokenKind::QuotedIdent => {
                    let s = t.text(self.sql);
                    s.get(1..s.len().saturating_sub(1))
                        .unwrap_or("")
                        .replace("``", "`")
                        .to_lowercase()
                }
                _ => return name.map(|n| (n, i)),
            };
            name = Some(part);
            i += 1;
            if self.punct(i) == "." {
                i += 1;
            } else {
                return name.map(|n| (n, i));
            }
        }
    }
}

/// Facts of every statement in `sql` (a query may hold several, separated by `;`).
pub fn analyse(sql: &str) -> Vec<StatementFacts> {
    let tokens = tokenize(sql);
    let mut out = Vec::with_capacity(1);
    let mut params_before = 0;
    for part in tokens.split(|t| t.kind == TokenKind::Punct && t.text(sql) == ";") {
        if part.is_empty() {
            continue;
        }
        out.push(one(sql, part, params_before));
        params_before += part
            .iter()
            .filter(|t| t.kind == TokenKind::Placeholder)
            .count();
    }
    out
}

fn one(sql: &str, tokens: &[Token], params_before: usize) -> StatementFacts {
    let words = tokens
        .iter()
        .map(|t| {
            if t.kind == TokenKind::Word {
                t.text(sql).to_ascii_lowercase()
            } else {
                String::new()
            }
        })
        .collect();
    let l = Lexed { sql, tokens, words };
    let mut f = StatementFacts::default();
    // The first word, past opening parentheses.
    let first = (0..tokens.len()).find(|&i| l.punct(i) != "(").unwrap_or(0);
    let w0 = l.word(first).to_string();
    let w1 = l.word(first + 1).to_string();
    f.kind = Some(match w0.as_str() {
        "begin" => {
            f.txn_mode = match w1.as_str() {
                "optimistic" => Some(TxnMode::Optimistic),
                "pessimistic" => Some(TxnMode::Pessimistic),
                _ => None,
            };
            Kind::Begin { read_only: false }
        }
        "start" if w1 == "transaction" => Kind::Begin {
            read_only: l.has_seq(&["read", "only"]),
        },
        "commit" => Kind::Commit,
        "rollback" if !l.has_seq(&["to"]) => Kind::Rollback,
        "set" => set_statement(&l, &mut f),
        "create" | "alter" | "drop" | "rename" | "truncate" => {
            if ["temporary", "user", "role", "server"].contains(&w1.as_str())
                || l.has_seq(&["temporary", "table"])
            {
                Kind::Other
            } else {
                Kind::Ddl
            }
        }
        "select" | "with" => Kind::Select,
        "insert" | "replace" => Kind::Insert,
        "update" => Kind::Update,
        "delete" => Kind::Delete,
        _ => Kind::Other,
    });
    f.call = w0 == "call";
    f.xa = w0 == "xa";
    if w0 == "load" && w1 == "data" {
        f.load_data = Some(l.word(first + 2) == "local");
    }
    f.calc_found_rows = l.words.iter().any(|w| w == "sql_calc_found_rows");
    f.for_update = l.has_seq(&["for", "update"]);
    f.share_lock = l.has_seq(&["lock", "in", "share", "mode"]) || l.has_seq(&["for", "share"]);
    f.skip_locked = l.has_seq(&["skip", "locked"]);
    for i in 0..tokens.len() {
        let w = l.word(i);
        if w.is_empty() || l.punct(i + 1) != "(" {
            continue;
        }
        if w.starts_with("st_") || SPATIAL_FUNCTIONS.contains(&w) {
            f.spatial = true;
        }
        if w == "match" && l.find_word(i, "against").is_some() {
            f.fulltext = true;
        }
        if w == "get_lock" {
            f.get_lock = Some(get_lock_timeout(&l, i + 2));
        }
    }
    match f.kind {
        Some(Kind::Select) => {
            if let Some(from) = l.find_word(first, "from") {
                f.table = l.ident(from + 1).map(|(n, _)| n);
            }
            if f.for_update || f.share_lock {
                f.range = is_range(&l, first);
            }
        }
        Some(Kind::Insert) => {
            let mut i = first + 1;
            while ["low_priority", "delayed", "high_priority", "ignore", "into"]
                .contains(&l.word(i))
            {
                i += 1;
            }
            f.table = l.ident(i).map(|(n, _)| n);
        }
        Some(Kind::Update) | Some(Kind::Delete) => {
            let mut i = first + 1;
            if f.kind == Some(Kind::Delete) {
                i = l.find_word(first, "from").map(|k| k + 1).unwrap_or(i);
            }
            while ["low_priority", "quick", "ignore"].contains(&l.word(i)) {
                i += 1;
            }
            if let Some((name, after)) = l.ident(i) {
                f.table = Some(name);
                // One table only: a join or a list of tables has no single key.
                if l.punct(after) != "," && l.find_word(after, "join").is_none() {
                    f.key = write_key(&l, params_before);
                }
            }
        }
        _ => {}
    }
    f
}

fn set_statement(l: &Lexed, f: &mut StatementFacts) -> Kind {
    let n = l.tokens.len();
    // `SET [GLOBAL|SESSION|LOCAL] TRANSACTION … READ ONLY`.
    if (1..=2).any(|i| l.word(i) == "transaction") {
        f.set_txn_read_only = l.has_seq(&["read", "only"]);
        return Kind::Other;
    }
    let mut kind = Kind::Other;
    let mut scope_global = false;
    let mut i = 1;
    while i < n {
        let t = l.tokens[i];
        let w = l.word(i);
        if w == "global" || w == "persist" {
            scope_global = true;
        } else if w == "session" || w == "local" {
            scope_global = false;
        }
        let name = match t.kind {
            TokenKind::Word => Some(w.to_string()),
            TokenKind::Variable => {
                let s = t.text(l.sql).to_ascii_lowercase();
                if let Some(rest) = s.strip_prefix("@@") {
                    let (scope, var) = match rest.split_once('.') {
                        Some((sc, v)) => (Some(sc.to_string()), v.to_string()),
                        None => (None, rest.to_string()),
                    };
                    if let Some(sc) = scope {
                        scope_global = sc == "global" || sc == "persist";
                    }
                    Some(var)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(name) = name {
            if matches!(l.punct(i + 1), "=" | ":=") {
                let v = value_at(l, i + 2);
                let on = match v.as_deref() {
                    Some("1" | "on" | "true") => Some(true),
                    Some("0" | "off" | "false") => Some(false),
                    _ => None,
                };
                if name == "autocommit" && !scope_global {
                    kind = Kind::SetAutocommit(on);
                }
                if name == "tidb_txn_mode" && !scope_global {
                    f.txn_mode = match v.as_deref() {
                        Some("optimistic") => Some(TxnMode::Optimistic),
                        Some("pessimistic") => Some(TxnMode::Pessimistic),
                        Some("") => Some(TxnMode::Default),
                        _ => None,
                    };
                }
                // A value the text does not show (redacted, or a variable) may be ON.
                if on != Some(false) {
                    if READ_ONLY_TXN_VARS.contains(&name.as_str()) {
                        f.set_txn_read_only = true;
                    } else if READ_ONLY_VARS.contains(&name.as_str()) {
                        f.read_only_variable = Some(name);
                    }
                }
                i += 2;
            }
        }
        i += 1;
    }
    kind
}

/// The value at `i` as lowercased text without quotes; `None` for a placeholder or an
/// expression.
fn value_at(l: &Lexed, i: usize) -> Option<String> {
    let t = l.tokens.get(i)?;
    let s = t.text(l.sql);
    match t.kind {
        TokenKind::Word | TokenKind::Number => Some(s.to_ascii_lowercase()),
        TokenKind::String => Some(unquote(s).to_ascii_lowercase()),
        _ => None,
    }
}

fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn get_lock_timeout(l: &Lexed, from: usize) -> Option<f64> {
    let mut depth = 0;
    let mut i = from;
    while i < l.tokens.len() {
        match l.punct(i) {
            "(" => depth += 1,
            ")" if depth == 0 => return None,
            ")" => depth -= 1,
            "," if depth == 0 => {
                let neg = l.punct(i + 1) == "-";
                let at = if neg { i + 2 } else { i + 1 };
                if l.kind(at) != Some(TokenKind::Number) {
                    return None;
                }
                let v: f64 = l.tokens[at].text(l.sql).parse().ok()?;
                return Some(if neg { -v } else { v });
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the condition of a locking read (after its `WHERE`) is a range.
fn is_range(l: &Lexed, first: usize) -> bool {
    let Some(w) = l.find_word(first, "where") else {
        return true;
    };
    for i in w + 1..l.tokens.len() {
        if ["for", "lock", "order", "limit", "group"].contains(&l.word(i)) {
            break;
        }
        if matches!(l.punct(i), "<" | ">" | "<=" | ">=" | "<>" | "!=")
            || ["between", "like"].contains(&l.word(i))
        {
            return true;
        }
    }
    false
}

/// `WHERE col = v` with nothing but `AND`s around it: the first such column and value.
fn write_key(l: &Lexed, params_before: usize) -> Option<WriteKey> {
    let w = l.find_word(0, "where")?;
    if l.find_word(w, "or").is_some() {
        return None;
    }
    let mut i = w + 1;
    while i < l.tokens.len() {
        if let Some((column, after)) = l.ident(i) {
            if l.punct(after) == "=" {
                let t = l.tokens.get(after + 1)?;
                let value = match t.kind {
                    k if t.is_literal() || k == TokenKind::Placeholder => {
                        if k == TokenKind::Placeholder {
                            let index = params_before
                                + l.tokens[..after + 1]
                                    .iter()
                                    .filter(|t| t.kind == TokenKind::Placeholder)
                                    .count();
                            KeyValue::Param(index)
                        } else {
                            KeyValue::Literal(unquote(t.text(l.sql)).to_string())
                        }
                    }
                    _ => return None,
                };
                return Some(WriteKey { column, value });
            }
            i = after;
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sql: &str) -> StatementFacts {
        analyse(sql).into_iter().next().unwrap_or_default()
    }

    #[test]
    fn transaction_statements() {
        assert_eq!(f("BEGIN").kind, Some(Kind::Begin { read_only: false }));
        assert_eq!(
            f("start transaction read only").kind,
            Some(Kind::Begin { read_only: true })
        );
        assert_eq!(f("ROLLBACK").kind, Some(Kind::Rollback));
        assert_eq!(f("ROLLBACK TO SAVEPOINT a").kind, Some(Kind::Other));
        assert_eq!(
            f("SET autocommit=0").kind,
            Some(Kind::SetAutocommit(Some(false)))
        );
        assert_eq!(
            f("set @@session.autocommit = ON").kind,
            Some(Kind::SetAutocommit(Some(true)))
        );
        assert_eq!(f("SET GLOBAL autocommit = 0").kind, Some(Kind::Other));
        assert_eq!(f("CREATE TABLE t (a int)").kind, Some(Kind::Ddl));
        assert_eq!(
            f("CREATE TEMPORARY TABLE t (a int)").kind,
            Some(Kind::Other)
        );
        assert_eq!(f("SELECT 'begin'").kind, Some(Kind::Select));
        assert_eq!(f("BEGIN OPTIMISTIC").txn_mode, Some(TxnMode::Optimistic));
        assert_eq!(f("begin pessimistic").txn_mode, Some(TxnMode::Pessimistic));
        assert_eq!(f("BEGIN").txn_mode, None);
        assert_eq!(
            f("SET SESSION tidb_txn_mode = 'optimistic'").txn_mode,
            Some(TxnMode::Optimistic)
        );
        assert_eq!(
            f("SET @@tidb_txn_mode = ''").txn_mode,
            Some(TxnMode::Default)
        );
        // The global mode is the cluster's: the profile of the target says it.
        assert_eq!(f("SET GLOBAL tidb_txn_mode = 'optimistic'").txn_mode, None);
    }

    #[test]
    fn locking_reads_and_ranges() {
        let s = f("SELECT * FROM `shop`.`Orders` WHERE id BETWEEN 1 AND 5 FOR UPDATE");
        assert!(s.for_update && s.range);
        assert_eq!(s.table.as_deref(), Some("orders"));
        let s = f("select * from t where id = ? for update");
        assert!(s.for_update && !s.range);
        assert!(f("SELECT * FROM t FOR UPDATE").range);
        assert!(f("SELECT * FROM t WHERE a = 1 LOCK IN SHARE MODE").share_lock);
        assert!(f("SELECT * FROM t FOR UPDATE SKIP LOCKED").skip_locked);
        assert!(!f("SELECT 'for update'").for_update);
        assert!(f("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1").calc_found_rows);
    }

    #[test]
    fn unsupported_constructs() {
        assert!(f("CALL p(1)").call);
        assert!(f("XA START 'x'").xa);
        assert!(f("SELECT ST_AsText(POINT(1, 2))").spatial);
        assert!(!f("SELECT point FROM t").spatial);
        assert!(f("SELECT * FROM t WHERE MATCH (a) AGAINST ('x')").fulltext);
        assert_eq!(
            f("LOAD DATA LOCAL INFILE 'x' INTO TABLE t").load_data,
            Some(true)
        );
        assert_eq!(f("SELECT GET_LOCK('a', -1)").get_lock, Some(Some(-1.0)));
        assert_eq!(f("SELECT GET_LOCK(?, ?)").get_lock, Some(None));
        assert!(f("SET SESSION TRANSACTION READ ONLY").set_txn_read_only);
        assert!(!f("SET SESSION TRANSACTION READ WRITE").set_txn_read_only);
        assert!(f("SET tx_read_only = 1").set_txn_read_only);
        assert_eq!(
            f("SET SESSION sql_auto_is_null = ON")
                .read_only_variable
                .as_deref(),
            Some("sql_auto_is_null")
        );
        assert_eq!(f("SET GLOBAL read_only = OFF").read_only_variable, None);
        assert_eq!(
            f("SET GLOBAL read_only = ?").read_only_variable.as_deref(),
            Some("read_only")
        );
    }

    proptest::proptest! {
        // Statement text is outside input: any text gives facts, never a panic.
        #[test]
        fn any_text_gives_facts(sql in "\\PC{0,80}", glue in "[ ;`'\"?()=<@.-]{0,6}") {
            let text = format!("{glue}{sql}{glue}");
            let facts = analyse(&text);
            proptest::prop_assert!(facts.len() <= text.len() + 1);
        }
    }

    #[test]
    fn write_keys() {
        let s = f("UPDATE t SET v = ? WHERE id = ?");
        assert_eq!(
            s.key,
            Some(WriteKey {
                column: "id".into(),
                value: KeyValue::Param(1)
            })
        );
        let s = f("DELETE FROM `t` WHERE t.id = 'a' AND x > 3");
        assert_eq!(s.table.as_deref(), Some("t"));
        assert_eq!(
            s.key,
            Some(WriteKey {
                column: "id".into(),
                value: KeyValue::Literal("a".into())
            })
        );
        assert_eq!(f("UPDATE t SET v = 1 WHERE id = 1 OR id = 2").key, None);
        assert_eq!(f("UPDATE t SET v = 1 WHERE id > 1").key, None);
        assert_eq!(f("INSERT INTO t VALUES (1)").table.as_deref(), Some("t"));
    }
}
