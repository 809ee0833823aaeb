//! Statement classes: a token-based normaliser.
//!
//! Two statements are of one class when they differ only in literals. The text is cut into
//! tokens the way the server's lexer would (strings with escapes and doubled quotes, quoted
//! identifiers, numbers, hex and bit literals, comments, variables), so a `'--'` inside a
//! string or a `?` inside a comment cannot confuse it, as a regular-expression normaliser can
//! be confused. Then:
//! - every literal (string, number, hex, bit, `NULL`, `TRUE`, `FALSE`) becomes `?`;
//! - an `IN (...)` list of literals becomes `in (?+)`, and the rows of `VALUES (...), (...)`
//!   become `values (?+)`, so a statement with 3 or 300 values is one class;
//! - `LIMIT ?, ?` and `LIMIT ? OFFSET ?` become `limit ?`;
//! - comments go (the text inside executable comments `/*! ... */`, `/*M! ... */`,
//!   `/*T! ... */` stays: the server runs it), words are lowercased, whitespace is one space.
//!
//! The tokenizer is shared with the replayer, which rewrites generated IDs in statement text
//! (only number tokens, never digits inside strings or names) and looks for functions whose
//! answers differ from run to run.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier.
    Word,
    /// A `` `quoted` `` identifier.
    QuotedIdent,
    /// A string literal (`'…'` or `"…"`).
    String,
    /// A number literal (integer, decimal, float).
    Number,
    /// `0x…`, `X'…'`, `0b…`, `B'…'`.
    HexOrBit,
    /// `?` (a prepared statement's parameter).
    Placeholder,
    /// `@var`, `@@var`, `@@session.var`.
    Variable,
    /// Operators and punctuation.
    Punct,
}

/// A token: its kind and where it is in the text (byte offsets, on character boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    /// Whitespace or a comment came before it.
    pub spaced: bool,
}

impl Token {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or("")
    }

    /// A literal value (string, number, hex/bit), not counting `NULL`/`TRUE`/`FALSE`.
    pub fn is_literal(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::String | TokenKind::Number | TokenKind::HexOrBit
        )
    }
}

const MULTI_PUNCT: [&str; 11] = [
    "<=>", "->>", "<=", ">=", "<>", "!=", ":=", "||", "&&", "<<", ">>",
];

/// Cuts `sql` into tokens. Never fails: an unterminated string or comment runs to the end.
pub fn tokenize(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    // Inside `/*! … */`: the closing `*/` is skipped like whitespace.
    let mut exec_comment = false;
    while i < n {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            spaced = true;
            continue;
        }
        if exec_comment && c == b'*' && b.get(i + 1) == Some(&b'/') {
            exec_comment = false;
            i += 2;
            spaced = true;
            continue;
        }
        // Comments.
        if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-') && is_space_or_end(b, i + 2)) {
            while i < n && b[i] != b'\n' {
                i += 1;
            }
            spaced = true;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // `/*!`, MariaDB's `/*M!` and TiDB's `/*T!` (with `[feature_id]`): the server
            // that runs them runs their content.
            let exec = matches!(b.get(i + 2), Some(b'!'))
                || (matches!(b.get(i + 2), Some(b'M' | b'T')) && b.get(i + 3) == Some(&b'!'));
            if exec && !exec_comment {
                let tidb = b[i + 2] == b'T';
                i += if b[i + 2] == b'!' { 3 } else { 4 };
                if tidb && b.get(i) == Some(&b'[') {
                    while i < n && b[i] != b']' && b[i] != b'*' {
                        i += 1;
                    }
                    if b.get(i) == Some(&b']') {
                        i += 1;
                    }
                }
                while i < n && b[i].is_ascii_digit() {
                    i += 1;
                }
                exec_comment = true;
            } else {
                i += 2;
                while i < n && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(n);
            }
            spaced = true;
            continue;
        }
        let start = i;
        let kind = if c == b'\'' || c == b'"' {
            i = skip_quoted(b, i, c, true);
            TokenKind::String
        } else if c == b'`' {
            i = skip_quoted(b, i, b'`', false);
            TokenKind::QuotedIdent
        } else if (c == b'x' || c == b'X' || c == b'b' || c == b'B') && b.get(i + 1) == Some(&b'\'')
        {
            i = skip_quoted(b, i + 1, b'\'', false);
            TokenKind::HexOrBit
        } else if (c == b'n' || c == b'N') && b.get(i + 1) == Some(&b'\'') {
            i = skip_quoted(b, i + 1, b'\'', true);
            TokenKind::String
        } else if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) && {
            let j = word_end(b, i);
            let digits = &b[i + 2..j];
            !digits.is_empty()
                && if matches!(b[i + 1], b'x' | b'X') {
                    digits.iter().all(u8::is_ascii_hexdigit)
                } else {
                    digits.iter().all(|d| *d == b'0' || *d == b'1')
                }
        } {
            i = word_end(b, i);
            TokenKind::HexOrBit
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let j = number_end(b, i);
            // `1abc` is an identifier in MySQL: digits glued to letters are a word (`0.5a` is
            // the number `0.5` and the name `a`: a word never holds a `.`).
            if j < n && is_word_byte(b[j]) && b[i..j].iter().all(u8::is_ascii_digit) {
                i = word_end(b, i);
                TokenKind::Word
            } else {
                i = j;
                TokenKind::Number
            }
        } else if c == b'@' {
            i += 1;
            if b.get(i) == Some(&b'@') {
                i += 1;
            }
            if matches!(b.get(i), Some(b'\'' | b'"' | b'`')) {
                i = skip_quoted(b, i, b[i], true);
            } else {
                while i < n && (is_word_byte(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            TokenKind::Variable
        } else if c == b'?' {
            i += 1;
            TokenKind::Placeholder
        } else if is_word_byte(c) {
            i = word_end(b, i);
            TokenKind::Word
        } else {
            let rest = &sql[i..];
            let len = MULTI_PUNCT
                .iter()
                .find(|p| rest.starts_with(**p))
                .map(|p| p.len())
                .unwrap_or_else(|| rest.chars().next().map(char::len_utf8).unwrap_or(1));
            i += len;
            TokenKind::Punct
        };
        out.push(Token {
            kind,
            start,
            end: i.min(n),
            spaced,
        });
        spaced = false;
    }
    out
}

fn is_space_or_end(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|c| c.is_ascii_whitespace())
}

/// Letters, digits, `_`, `$` and every byte of a non-ASCII character.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn word_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_word_byte(b[i]) {
        i += 1;
    }
    i
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    let n = b.len();
    while i < n && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < n && b[i] == b'.' {
        i += 1;
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < n && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < n && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < n && b[j].is_ascii_digit() {
            while j < n && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// The end (exclusive) of the quoted token opening at `i`. A doubled quote stays inside;
/// with `backslash`, so does an escaped character.
fn skip_quoted(b: &[u8], i: usize, q: u8, backslash: bool) -> usize {
    let n = b.len();
    let mut j = i + 1;
    while j < n {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    n
}

/// The statement with every literal value (string, number, hex/bit) replaced by `?`, the
/// rest of the text (names, keywords, spacing, comments) kept: what `--redact-values`
/// records.
pub fn redact(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for t in tokenize(sql) {
        if t.is_literal() {
            out.push_str(sql.get(at..t.start).unwrap_or(""));
            out.push('?');
            at = t.end;
        }
    }
    out.push_str(sql.get(at..).unwrap_or(""));
    out
}

/// The class of a statement: see the module documentation.
pub fn fingerprint(sql: &str) -> String {
    let tokens = tokenize(sql);
    // Each token as its normalised word, with whether it is a literal.
    let mut words: Vec<(String, bool, bool)> = Vec::with_capacity(tokens.len());
    for t in &tokens {
        let text = t.text(sql);
        let (w, lit) = match t.kind {
            TokenKind::String | TokenKind::Number | TokenKind::HexOrBit => ("?".to_string(), true),
            TokenKind::Placeholder => ("?".to_string(), true),
            TokenKind::Word => {
                let l = text.to_lowercase();
                if matches!(l.as_str(), "null" | "true" | "false") {
                    ("?".to_string(), true)
                } else {
                    (l, false)
                }
            }
            TokenKind::QuotedIdent | TokenKind::Variable => (text.to_lowercase(), false),
            TokenKind::Punct => (text.to_string(), false),
        };
        words.push((w, lit, t.spaced));
    }
    // A `-` before a number after an operator or at the start of a list is a sign.
    let mut merged: Vec<(String, bool, bool)> = Vec::with_capacity(words.len());
    for (w, lit, spaced) in words {
        if lit {
            if let Some(last) = merged.last() {
                if (last.0 == "-" || last.0 == "+") && !last.1 {
                    let before = merged.len().checked_sub(2).map(|k| merged[k].0.as_str());
                    let is_sign = match before {
                        None => true,
                        Some(b) => {
                            matches!(
                                b,
                                "(" | "," | "=" | "<" | ">" | "<=" | ">=" | "<>" | "!=" | "<=>"
                            ) || b.eq_ignore_ascii_case("select")
                                || b.eq_ignore_ascii_case("values")
                                || b.eq_ignore_ascii_case("in")
                                || b.eq_ignore_ascii_case("and")
                                || b.eq_ignore_ascii_case("or")
                                || b.eq_ignore_ascii_case("between")
                        }
                    };
                    if is_sign {
                        let sp = last.2;
                        merged.pop();
                        merged.push((w, true, sp));
                        continue;
                    }
                }
            }
        }
        merged.push((w, lit, spaced));
    }
    let w = merged;
    let mut out: Vec<(String, bool)> = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        let word = w[i].0.as_str();
        if word == "in" && w.get(i + 1).is_some_and(|x| x.0 == "(") {
            // `in (?, ?, …)`: only literals and commas inside.
            let mut j = i + 2;
            let mut all_literals = true;
            while j < w.len() && w[j].0 != ")" {
                if !(w[j].1 || w[j].0 == ",") {
                    all_literals = false;
                    break;
                }
                j += 1;
            }
            if all_literals && j < w.len() && j > i + 2 {
                out.push(("in".into(), w[i].2));
                out.push(("(?+)".into(), true));
                i = j + 1;
                continue;
            }
        }
        if (word == "values" || word == "value") && w.get(i + 1).is_some_and(|x| x.0 == "(") {
            // Rows of balanced groups separated by commas.
            let mut j = i + 1;
            loop {
                match group_end(&w, j) {
                    Some(end) => {
                        j = end + 1;
                        if w.get(j).is_some_and(|x| x.0 == ",")
                            && w.get(j + 1).is_some_and(|x| x.0 == "(")
                        {
                            j += 1;
                            continue;
                        }
                        break;
                    }
                    None => {
                        j = w.len();
                        break;
                    }
                }
            }
            out.push((word.to_string(), w[i].2));
            out.push(("(?+)".into(), true));
            i = j;
            continue;
        }
        if word == "limit" && w.get(i + 1).is_some_and(|x| x.1) {
            let next = w.get(i + 2).map(|x| x.0.as_str());
            if (next == Some(",") || next == Some("offset")) && w.get(i + 3).is_some_and(|x| x.1) {
                out.push(("limit".into(), w[i].2));
                out.push(("?".into(), true));
                i += 4;
                continue;
            }
        }
        out.push((w[i].0.clone(), w[i].2));
        i += 1;
    }
    // Joined with single spaces, except where the source had none around brackets,
    // dots and commas (`count(*)`, `db.t`, `a, b`).
    let mut s = String::with_capacity(sql.len().min(4096));
    for (k, (word, spaced)) in out.iter().enumerate() {
        if k > 0 {
            let prev = out[k - 1].0.as_str();
            let tight = matches!(word.as_str(), "," | ")" | ".")
                || prev == "("
                || prev == "."
                || (word == "(" && !spaced);
            if !tight {
                s.push(' ');
            }
        }
        s.push_str(word);
    }
    s
}

/// The index of the `)` that closes the `(` at `i`.
fn group_end(w: &[(String, bool, bool)], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, x) in w.iter().enumerate().skip(i) {
        match x.0.as_str() {
            "(" => depth += 1,
            ")" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literals_and_lists_collapse() {
        assert_eq!(
            fingerprint("SELECT  c FROM sbtest1 WHERE id=42"),
            "select c from sbtest1 where id = ?"
        );
        assert_eq!(
            fingerprint("select * from t where a in (1, 2, 'x') and b = \"q\\\"\""),
            "select * from t where a in (?+) and b = ?"
        );
        assert_eq!(
            fingerprint("INSERT INTO t (a,b) VALUES (1,'a'),(2,'b'), (3, NULL)"),
            "insert into t (a, b) values (?+)"
        );
        assert_eq!(
            fingerprint("select a from t order by a limit 10, 20"),
            "select a from t order by a limit ?"
        );
        assert_eq!(
            fingerprint("SELECT COUNT(*) FROM `Db`.`T` -- trailing\n WHERE x = -5 # c"),
            "select count(*) from `db`.`t` where x = ?"
        );
        assert_eq!(
            fingerprint("select /* a comment with 'quote */ 1 /*!40001 SQL_NO_CACHE */"),
            "select ? sql_no_cache"
        );
        // What MariaDB (`/*M!`) or TiDB (`/*T!`) runs is part of the class.
        assert_eq!(
            fingerprint("/*T! DELETE FROM t WHERE id IN (*/ SELECT 13 /*T![auto_rand] ) */"),
            "delete from t where id in (select ?)"
        );
        assert_eq!(fingerprint("SELECT 1 /*M!100000 , 2 */"), "select ?, ?");
        assert_eq!(fingerprint("select a-1 from t"), "select a - ? from t");
        assert_eq!(
            fingerprint("select 0x1F, x'ab', b'01', 1e5, .5, 1abc, .5x"),
            "select ?, ?, ?, ?, ?, 1abc, ? x"
        );
    }

    #[test]
    fn strings_hide_comment_markers() {
        assert_eq!(
            fingerprint("select '-- no', 'a''b', '#', '/*' from t"),
            "select ?, ?, ?, ? from t"
        );
    }

    #[test]
    fn tokens_point_at_numbers_only() {
        let sql = "select 'id 7', `c7` from t7 where id = 7";
        let nums: Vec<&str> = tokenize(sql)
            .iter()
            .filter(|t| t.kind == TokenKind::Number)
            .map(|t| t.text(sql))
            .collect();
        assert_eq!(nums, ["7"]);
    }

    proptest! {
        #[test]
        fn never_panics_and_tokens_are_in_bounds(s in "\\PC{0,200}") {
            let _ = fingerprint(&s);
            for t in tokenize(&s) {
                prop_assert!(t.start < t.end && t.end <= s.len());
                prop_assert!(s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
            }
        }

        #[test]
        fn bytes_of_sql_never_panic(s in "[ -~\\n\\t'\"`\\\\#/*!@?.0-9xXbB-]{0,120}") {
            let _ = fingerprint(&s);
        }

        #[test]
        fn literals_do_not_change_the_class(
            a in any::<i64>(),
            s in "[^'\\\\]{0,20}",
            list in proptest::collection::vec(any::<u32>(), 1..20),
            rows in proptest::collection::vec((any::<u16>(), "[a-z ]{0,8}"), 1..10),
        ) {
            let l = list.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
            let q = format!("SELECT * FROM t WHERE a = {a} AND b = '{s}' AND c IN ({l}) LIMIT 5");
            prop_assert_eq!(
                fingerprint(&q),
                "select * from t where a = ? and b = ? and c in (?+) limit ?"
            );
            let v = rows.iter().map(|(n, t)| format!("({n}, '{t}')")).collect::<Vec<_>>().join(",");
            prop_assert_eq!(fingerprint(&format!("insert into t values {v}")), "insert into t values (?+)");
        }
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literals_become_placeholders_and_nothing_else_changes() {
        assert_eq!(
            redact("SELECT `a1`, 'x''y' FROM t2 WHERE id = 42 AND h = 0xFF -- 7\n LIMIT 3"),
            "SELECT `a1`, ? FROM t2 WHERE id = ? AND h = ? -- 7\n LIMIT ?"
        );
        assert_eq!(redact("SELECT ? FROM t"), "SELECT ? FROM t");
        assert_eq!(
            redact("INSERT INTO t VALUES (\"secret\", 1.5e3)"),
            "INSERT INTO t VALUES (?, ?)"
        );
    }

    proptest! {
        /// No literal survives, and the result has the same fingerprint.
        #[test]
        fn redacted_text_has_no_literal_and_the_same_class(sql in "[ -~]{0,80}") {
            let r = redact(&sql);
            prop_assert!(tokenize(&r).iter().all(|t| !t.is_literal()));
            prop_assert_eq!(fingerprint(&r), fingerprint(&sql));
        }
    }
}
