//! Texts rewritten before they are classified or sent: a locking read without its lock
//! (what `--read-only` sends instead), and MySQL spellings the parser does not take.

use cutover_workload::{tokenize, TokenKind};

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
pub(super) fn for_parser(sql: &str) -> std::borrow::Cow<'_, str> {
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
