//! The text a server executes: comments removed, executable comments expanded.
//!
//! MySQL, MariaDB and TiDB run the content of some comments as SQL (sources: MariaDB
//! "Comment Syntax", <https://mariadb.com/kb/en/comment-syntax/>; TiDB "Comment Syntax",
//! <https://docs.pingcap.com/tidb/stable/comment-syntax>; MariaDB's lexer, `sql_lex.cc`):
//! - `/*! … */`: run by MySQL, MariaDB and TiDB.
//! - `/*!NNNNN … */` (and six digits, `/*!NNNNNN`): run by a server of that version or newer.
//!   MariaDB reads five or six digits; MariaDB ignores the MySQL versions 50700–99999; TiDB
//!   runs the content whatever the version.
//! - `/*M! … */`, `/*M!NNNNNN … */`: run by MariaDB only (a plain comment elsewhere).
//! - `/*T! … */`, `/*T![feature] … */`: run by TiDB only (and `[feature]` only when that TiDB
//!   has the feature).
//!
//! Which of them a server runs depends on the server, its version and its features, none of
//! which the replay can prove for a server it was merely pointed at. So an executable comment
//! has several readings (not run; run with its content starting after five digits, after six,
//! after all digits) and the text has one reading per combination of them ([`Executed::texts`]):
//! a statement is a read only if every reading is. Comments with the same opening (`/*!50100`)
//! are read alike, as one server would.
//!
//! Whatever is ambiguous is refused rather than guessed: a comment inside a comment, an
//! unterminated comment or string, an executable comment whose end differs between a server
//! that runs it (the first `*/` outside strings) and one that skips it (the first `*/`), and
//! quoting that reads differently with `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES` (the sql_mode a
//! recorded session may have set). A comment marker inside a string is text, not a comment.

use std::collections::BTreeMap;
use std::ops::Range;

/// At most this many readings of one statement are classified; more is refused.
pub const MAX_READINGS: usize = 64;

/// One piece of the statement text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Text the server lexes as code.
    Code(Range<usize>),
    /// A string or quoted identifier; `odd` when this reading of its quotes differs from the
    /// parser's (backslash escapes, `"` strings): it is then given to the parser as a
    /// placeholder of the same kind, `'_'` or `` `_` ``.
    Quoted {
        range: Range<usize>,
        odd: Option<&'static str>,
    },
    /// A comment: whitespace to the server.
    Blank,
    /// An executable comment: `group` is its opening (`/*!50100`), `starts` where its content
    /// may begin (one per reading that runs it), `end` where the content ends (before `*/`).
    Exec {
        group: String,
        starts: Vec<usize>,
        end: usize,
    },
}

/// A statement text cut into code, comments and executable comments, once per way a server
/// may read its quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed<'a> {
    sql: &'a str,
    /// The default reading first.
    readings: Vec<Vec<Piece>>,
}

/// Why the executed text cannot be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ambiguous(pub &'static str);

/// How a server may read quotes: whether `'…'` and `"…"` take backslash escapes, whether
/// `"…"` is an identifier.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Quoting {
    single_backslash: bool,
    double_backslash: bool,
    ansi_quotes: bool,
}

/// The server's default (as the parser reads it), then `NO_BACKSLASH_ESCAPES`, then
/// `ANSI_QUOTES`, then both (a `"` identifier takes no escapes).
const QUOTINGS: [Quoting; 4] = [
    Quoting {
        single_backslash: true,
        double_backslash: true,
        ansi_quotes: false,
    },
    Quoting {
        single_backslash: false,
        double_backslash: false,
        ansi_quotes: false,
    },
    Quoting {
        single_backslash: true,
        double_backslash: false,
        ansi_quotes: true,
    },
    Quoting {
        single_backslash: false,
        double_backslash: false,
        ansi_quotes: true,
    },
];

impl<'a> Executed<'a> {
    /// Cuts `sql` into pieces; refuses what a server could read in ways this cannot follow.
    ///
    /// The default reading must be well formed. A recorded session may have set
    /// `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES`, under which a string such as `'it\'s'` ends
    /// elsewhere and what was text may be code: when the text has a backslash, those
    /// readings are cut too (an unterminated string or comment then runs to the end, where
    /// the server would stop with an error), and each is classified as well.
    pub fn parse(sql: &'a str) -> Result<Executed<'a>, Ambiguous> {
        let mut readings = vec![scan(sql, QUOTINGS[0], false)?];
        if sql.contains('\\') || sql.contains('"') {
            for q in &QUOTINGS[1..] {
                let r = scan(sql, *q, true)?;
                if !readings.contains(&r) {
                    readings.push(r);
                }
            }
        }
        Ok(Executed { sql, readings })
    }

    /// Whether the text has an executable comment.
    pub fn has_executable(&self) -> bool {
        self.readings
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::Exec { .. }))
    }

    /// The text with every executable comment run (content after MariaDB's reading of the
    /// version: six digits if there are six, else five), every other comment a space, as
    /// the server reads it by default.
    pub fn expanded(&self) -> String {
        render(self.sql, &self.readings[0], &BTreeMap::new())
    }

    /// Every reading of the text a server may execute (the first is [`Executed::expanded`]),
    /// or `Err` when there are more than [`MAX_READINGS`].
    pub fn texts(&self) -> Result<Vec<String>, Ambiguous> {
        let mut out: Vec<String> = Vec::new();
        for pieces in &self.readings {
            // Readings per group: index 0.. = run with that content start, `len` = not run.
            let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
            for p in pieces {
                if let Piece::Exec { group, starts, .. } = p {
                    let n = groups.entry(group.as_str()).or_insert(0);
                    *n = (*n).max(starts.len());
                }
            }
            let mut total: usize = 1;
            for n in groups.values() {
                total = total.saturating_mul(n + 1);
            }
            if total.saturating_add(out.len()) > MAX_READINGS {
                return Err(Ambiguous("too many executable comments"));
            }
            for k in 0..total {
                let mut choice = BTreeMap::new();
                let mut rest = k;
                for (name, n) in &groups {
                    choice.insert(name.to_string(), rest % (n + 1));
                    rest /= n + 1;
                }
                let text = render(self.sql, pieces, &choice);
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
        Ok(out)
    }
}

/// The text under one choice per group (missing: 0, run as MariaDB reads it).
fn render(sql: &str, pieces: &[Piece], choice: &BTreeMap<String, usize>) -> String {
    let mut s = String::with_capacity(sql.len() + 8);
    for p in pieces {
        match p {
            Piece::Code(r) => s.push_str(&sql[r.clone()]),
            Piece::Quoted { range, odd: None } => s.push_str(&sql[range.clone()]),
            Piece::Quoted { odd: Some(ph), .. } => s.push_str(ph),
            Piece::Blank => s.push(' '),
            Piece::Exec { group, starts, end } => {
                let c = choice.get(group).copied().unwrap_or(0);
                s.push(' ');
                if let Some(start) = starts.get(c) {
                    // Strings inside the content are read as in the rest of the text: the
                    // content was checked to lex alike, and odd quoting is not re-rendered
                    // here, so a reading with odd strings in executed content is refused
                    // when cut (see `scan`).
                    s.push_str(&sql[*start..*end]);
                    s.push(' ');
                }
            }
        }
    }
    s
}

/// Cuts the text into pieces under one way of reading quotes. With `lenient`, an
/// unterminated string or comment runs to the end of the text.
fn scan(sql: &str, q: Quoting, lenient: bool) -> Result<Vec<Piece>, Ambiguous> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut pieces = Vec::new();
    let mut code_start = 0;
    let mut i = 0;
    let flush = |pieces: &mut Vec<Piece>, from: usize, to: usize| {
        if from < to {
            pieces.push(Piece::Code(from..to));
        }
    };
    while i < n {
        let c = b[i];
        if c == b'\'' || c == b'"' || c == b'`' {
            flush(&mut pieces, code_start, i);
            let end = match quoted_end(b, i, q) {
                Ok(e) => e,
                Err(_) if lenient => return Ok(before_last_semicolon(sql, pieces)),
                Err(e) => return Err(e),
            };
            pieces.push(Piece::Quoted {
                range: i..end,
                odd: odd_quoting(&b[i..end], q),
            });
            i = end;
            code_start = i;
            continue;
        }
        if let Some(end) = line_comment_end(b, i)? {
            flush(&mut pieces, code_start, i);
            pieces.push(Piece::Blank);
            i = end;
            code_start = i;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            flush(&mut pieces, code_start, i);
            let (piece, next) = match block_comment(sql, i, q) {
                Err(Ambiguous("unterminated comment")) if lenient => {
                    return Ok(before_last_semicolon(sql, pieces))
                }
                r => r?,
            };
            if let Piece::Exec { starts, end, .. } = &piece {
                // Content whose strings this reading reads unlike the parser cannot be
                // given to the parser as it is.
                if q != QUOTINGS[0]
                    && starts
                        .iter()
                        .any(|s| b[*s..*end].contains(&b'\\') || b[*s..*end].contains(&b'"'))
                {
                    return Err(Ambiguous(
                        "an executable comment whose strings depend on sql_mode",
                    ));
                }
            }
            pieces.push(piece);
            i = next;
            code_start = i;
            continue;
        }
        i += 1;
    }
    flush(&mut pieces, code_start, n);
    Ok(pieces)
}

/// The statements before a syntax error: the pieces up to the last `;` of code.
fn before_last_semicolon(sql: &str, mut pieces: Vec<Piece>) -> Vec<Piece> {
    while let Some(p) = pieces.pop() {
        if let Piece::Code(r) = p {
            if let Some(k) = sql[r.clone()].rfind(';') {
                pieces.push(Piece::Code(r.start..r.start + k + 1));
                return pieces;
            }
        }
    }
    pieces
}

/// The placeholder for a quoted token this reading takes otherwise than the parser does
/// (the parser reads `'` and `"` as strings with backslash escapes).
fn odd_quoting(tok: &[u8], q: Quoting) -> Option<&'static str> {
    match tok.first() {
        Some(b'"') if q.ansi_quotes => Some("`_`"),
        Some(b'\'') if !q.single_backslash && tok.contains(&b'\\') => Some("'_'"),
        Some(b'"') if !q.double_backslash && tok.contains(&b'\\') => Some("'_'"),
        _ => None,
    }
}

/// The end (exclusive) of the string or quoted identifier opening at `i`.
fn quoted_end(b: &[u8], i: usize, q: Quoting) -> Result<usize, Ambiguous> {
    let quote = b[i];
    let backslash = match quote {
        b'\'' => q.single_backslash,
        b'"' => q.double_backslash,
        _ => false,
    };
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Ok(j + 1);
        }
        j += 1;
    }
    Err(Ambiguous("unterminated string"))
}

/// At `i`, a `#` or `-- ` comment: where it ends (at the newline, which stays code).
fn line_comment_end(b: &[u8], i: usize) -> Result<Option<usize>, Ambiguous> {
    let dash = b[i] == b'-' && b.get(i + 1) == Some(&b'-');
    if dash {
        match b.get(i + 2) {
            // MySQL and MariaDB take a space or a control character after `--`; TiDB asks
            // for whitespace: a control character that is not whitespace is read both ways.
            Some(c) if c.is_ascii_whitespace() => {}
            None => {}
            Some(c) if c.is_ascii_control() => {
                return Err(Ambiguous("`--` followed by a control character"))
            }
            Some(_) => return Ok(None),
        }
    } else if b[i] != b'#' {
        return Ok(None);
    }
    let mut j = i;
    while j < b.len() && b[j] != b'\n' {
        j += 1;
    }
    Ok(Some(j))
}

/// The comment opening at `i` (`/*`): what it is and where the text after it starts.
fn block_comment(sql: &str, i: usize, q: Quoting) -> Result<(Piece, usize), Ambiguous> {
    let b = sql.as_bytes();
    let close = find(b, i + 2, b"*/").ok_or(Ambiguous("unterminated comment"))?;
    let after = close + 2;
    let marker = |off: usize| b.get(i + off).copied();
    // `/*!`, `/*M!`, `/*T!` (either case: a lexer that takes the other case would only add
    // a reading).
    let (kind, mut h) = match (marker(2), marker(3)) {
        (Some(b'!'), _) => (b'!', i + 3),
        (Some(b'M' | b'm'), Some(b'!')) => (b'M', i + 4),
        (Some(b'T' | b't'), Some(b'!')) => (b'T', i + 4),
        _ => {
            if find(&b[..close], i + 2, b"/*").is_some() {
                return Err(Ambiguous("a comment inside a comment"));
            }
            return Ok((Piece::Blank, after));
        }
    };
    let mut starts = Vec::new();
    if kind == b'T' {
        // `/*T![feature_id] … */`: the content follows the bracket.
        if b.get(h) == Some(&b'[') {
            let Some(rb) = b[h..close].iter().position(|c| *c == b']') else {
                return Err(Ambiguous("`/*T![` without `]`"));
            };
            h += rb + 1;
        }
        starts.push(h);
    } else {
        let digits = b[h..close]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits >= 5 {
            // MariaDB reads six digits when there are six; MySQL reads five (`/*M!` is
            // MariaDB's only); a lexer that skips every digit is covered by the last reading.
            if digits >= 6 {
                starts.push(h + 6);
            }
            if kind == b'!' || digits == 5 {
                starts.push(h + 5);
            }
            if digits > 6 {
                starts.push(h + digits);
            }
        } else {
            // Fewer than five digits are no version: they are content.
            starts.push(h);
            if digits > 0 {
                starts.push(h + digits);
            }
        }
        h += digits;
    }
    let group = sql[i..h].to_ascii_uppercase();
    // The content, lexed as a server that runs it does: its end must be the first `*/`.
    for s in &starts {
        let end = content_end(b, *s, q)?;
        if end != close {
            return Err(Ambiguous(
                "an executable comment that ends differently when run and when skipped",
            ));
        }
    }
    Ok((
        Piece::Exec {
            group,
            starts,
            end: close,
        },
        after,
    ))
}

/// Where the content of an executed comment starting at `i` ends (the `*/` outside strings).
fn content_end(b: &[u8], mut i: usize, q: Quoting) -> Result<usize, Ambiguous> {
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' || c == b'`' {
            i = quoted_end(b, i, q)?;
            continue;
        }
        if c == b'*' && b.get(i + 1) == Some(&b'/') {
            return Ok(i);
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            return Err(Ambiguous("a comment inside a comment"));
        }
        if let Some(end) = line_comment_end(b, i)? {
            i = end;
            continue;
        }
        i += 1;
    }
    Err(Ambiguous("unterminated comment"))
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        Executed::parse(sql)
            .and_then(|e| e.texts())
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .into_iter()
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn every_form_is_expanded_and_skipped() {
        assert_eq!(texts("SELECT 1"), ["SELECT 1"]);
        assert_eq!(texts("SELECT /*! 1 */"), ["SELECT 1", "SELECT"]);
        assert_eq!(
            texts("/*M! DELETE FROM t WHERE id IN (*/ SELECT 13 /*M! ) */"),
            ["DELETE FROM t WHERE id IN ( SELECT 13 )", "SELECT 13"]
        );
        assert_eq!(
            texts("SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */"),
            ["SELECT 1 INTO OUTFILE '/tmp/x'", "SELECT 1"]
        );
        // Five digits (MySQL) read the sixth as content.
        assert_eq!(
            texts("SELECT 1 /*!100000 INTO OUTFILE 'x' */"),
            [
                "SELECT 1 INTO OUTFILE 'x'",
                "SELECT 1 0 INTO OUTFILE 'x'",
                "SELECT 1"
            ]
        );
        assert_eq!(
            texts("SELECT 1 /*!50100 , 2 */"),
            ["SELECT 1 , 2", "SELECT 1"]
        );
        assert_eq!(
            texts("SELECT 1 /*T![clustered_index] , 2 */ /*T! , 3 */"),
            [
                "SELECT 1 , 2 , 3",
                "SELECT 1 , 2",
                "SELECT 1 , 3",
                "SELECT 1"
            ]
        );
        assert_eq!(
            texts("SELECT 1 /*!12 + 1 */"),
            ["SELECT 1 12 + 1", "SELECT 1 + 1", "SELECT 1"]
        );
        // The same opening is read alike.
        assert_eq!(texts("/*!50000 SELECT */ 1 /*!50000 , 2 */").len(), 2);
        // Lower case markers are taken as executable too (one more reading, never fewer).
        assert_eq!(texts("SELECT 1 /*m! , 2 */").len(), 2);
    }

    #[test]
    fn comments_and_strings() {
        assert_eq!(
            texts("SELECT '/*! x */' -- /*! DELETE */\n, 2"),
            ["SELECT '/*! x */' , 2"]
        );
        assert_eq!(texts("SELECT 1 # /*!\n"), ["SELECT 1"]);
        assert_eq!(texts("SELECT 1 /* a comment */ + 1"), ["SELECT 1 + 1"]);
        assert_eq!(texts("SELECT 1--1"), ["SELECT 1--1"]);
        assert_eq!(texts("SELECT `a/*!`"), ["SELECT `a/*!`"]);
        assert_eq!(texts("SELECT 'it''s /*'"), ["SELECT 'it''s /*'"]);
    }

    #[test]
    fn ambiguous_is_refused() {
        for sql in [
            "SELECT 1 /*! /* nested */ */",
            "SELECT 1 /* a /* nested */",
            "SELECT 1 /*! , 2",
            "SELECT 1 /* open",
            "SELECT 'open",
            "SELECT 1 /*!99999 ' */ ; DELETE FROM t; -- ' */",
            "SELECT 1 /*! -- */ , 2 */",
            "SELECT 1 /*! # */ , 2 */",
            "SELECT 1 /*T![open , 2 */",
            "SELECT 1 --\u{1}DELETE",
        ] {
            assert!(
                Executed::parse(sql).and_then(|e| e.texts()).is_err(),
                "{sql}"
            );
        }
        // Escapes that read the same under every sql_mode are fine.
        assert_eq!(texts("SELECT 'a\\nb'"), ["SELECT 'a\\nb'", "SELECT '_'"]);
        // Under NO_BACKSLASH_ESCAPES a string ends at `\'`: what follows is code, and a
        // string left open is a syntax error after the statements before it.
        assert_eq!(
            texts("SELECT 'a\\' ; DELETE FROM t; -- '"),
            [
                "SELECT 'a\\' ; DELETE FROM t; -- '",
                "SELECT '_' ; DELETE FROM t;"
            ]
        );
        assert_eq!(texts("SELECT 'it\\'s'"), ["SELECT 'it\\'s'", ""]);
        assert_eq!(
            texts("SELECT '\\' /*! , 2 */ '"),
            ["SELECT '\\' /*! , 2 */ '", ""]
        );
        // Under ANSI_QUOTES `"…"` is a name.
        assert_eq!(texts("SELECT \"a\""), ["SELECT \"a\"", "SELECT `_`"]);
        let many: String = (0..7).map(|i| format!("/*!5000{i} 1 */")).collect();
        assert!(Executed::parse(&many).unwrap().texts().is_err());
    }
}
