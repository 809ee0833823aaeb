//! Whether a statement's answer may differ between two runs on the same data (its
//! differences are then reported apart, as noise).

use cutover_workload::{tokenize, TokenKind};

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
