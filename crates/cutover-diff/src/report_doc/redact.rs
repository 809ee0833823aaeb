//! `--redact-values`: row values replaced by hashes, and the quotes of values in error
//! messages by `(redacted)`.

use cutover_core::json::{canonical_json, Numbers};
use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value as J;
use sha2::{Digest, Sha256};

use crate::report::Report;

const HASH_PREFIX: &str = "h:";
const REDACTED: &str = "(redacted)";

/// Replaces every row value in the report by [`hash_value`] of it: the values of diff keys
/// and both sides of changed columns. NULL stays NULL (it is no data, and telling NULL from
/// a value is often the whole finding). Column names, counts, schema differences (types,
/// defaults: definitions, not rows) and table names stay. Error messages can quote a value
/// (a value the server returned that could not be read, or a server error quoting one): such
/// quotes become `(redacted)`, keeping the names of tables and columns the report knows; so
/// do the quoted literals of a `--where` filter.
///
/// Apply it once: the hashes are values too.
///
/// The hashes are unkeyed, so the same value has the same hash in every report (rows can be
/// matched across runs and tables), and so a value from a small set (a flag, a small number,
/// a date) can be found by hashing candidates: use [`redact_with_key`] with a secret to stop
/// that.
pub fn redact(report: &mut Report) {
    redact_inner(report, None);
}

/// [`redact`] with hashes keyed by a secret: stable for everyone who uses the same key,
/// impossible to reverse by guessing values without it.
pub fn redact_with_key(report: &mut Report, key: &[u8]) {
    redact_inner(report, Some(key));
}

fn redact_inner(report: &mut Report, key: Option<&[u8]>) {
    let names = known_names(report);
    for t in &mut report.tables {
        for d in t.diffs.iter_mut().chain(t.converged.iter_mut()) {
            for v in d.key.values_mut() {
                redact_one(v, key);
            }
            for c in &mut d.columns {
                redact_one(&mut c.source, key);
                redact_one(&mut c.target, key);
            }
        }
        if let Some(e) = &mut t.error {
            *e = redact_error(e, &names);
        }
        // `--where` is the user's, but the literals it compares with can be row values.
        if let Some(f) = &mut t.filter {
            *f = redact_quoted(f, &names);
        }
    }
    // The groups quote error messages: made again from the redacted tables.
    report.groups = crate::report::group(&report.tables);
}

fn redact_one(v: &mut J, key: Option<&[u8]>) {
    if !v.is_null() {
        *v = J::String(hash_with(v, key));
    }
}

/// The stable hash that stands for a value in a redacted report: `h:` and 16 hex digits, the
/// first 64 bits of SHA-256 over `cutover-redact-v1\n` and the value's canonical JSON
/// (compact, object keys sorted). Equal values, including JSON documents whose keys come in
/// another order, hash alike; `"1"` and `1` do not.
pub fn hash_value(v: &J) -> String {
    hash_with(v, None)
}

fn hash_with(v: &J, key: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    match key {
        None => h.update(b"cutover-redact-v1\n"),
        Some(k) => {
            h.update(b"cutover-redact-keyed-v1\n");
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
        }
    }
    // Numbers as written: the hashes are pinned across versions.
    h.update(canonical_json(v, Numbers::AsWritten).as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(HASH_PREFIX.len() + 16);
    out.push_str(HASH_PREFIX);
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(super) fn is_hash(s: &str) -> bool {
    s.len() == HASH_PREFIX.len() + 16
        && s.starts_with(HASH_PREFIX)
        && s[HASH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True when the report has values and every one is NULL or a hash.
pub(super) fn is_redacted(report: &Report) -> bool {
    let mut any = false;
    for t in &report.tables {
        for d in t.diffs.iter().chain(&t.converged) {
            let values = d
                .key
                .values()
                .chain(d.columns.iter().flat_map(|c| [&c.source, &c.target]));
            for v in values {
                match v {
                    J::Null => {}
                    J::String(s) if is_hash(s) => any = true,
                    _ => return false,
                }
            }
        }
    }
    any
}

/// Names an error message may quote that are not data: tables, schemas, columns, and the
/// words MySQL quotes in its messages.
fn known_names(report: &Report) -> HashSet<String> {
    let mut names: HashSet<String> = [
        "field list",
        "where clause",
        "order clause",
        "group statement",
        "on clause",
        "having clause",
        "PRIMARY",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in &report.tables {
        for full in [&t.source, &t.target] {
            names.insert(full.clone());
            names.extend(full.split('.').map(str::to_string));
        }
        for d in t.diffs.iter().chain(&t.converged) {
            names.extend(d.key.keys().cloned());
            names.extend(d.columns.iter().map(|c| c.column.clone()));
        }
        for s in &t.schema {
            names.insert(s.object.trim_start_matches("index ").to_string());
        }
        names.extend(t.renderings.iter().map(|r| r.column.clone()));
    }
    names
}

/// An error message without the values it may quote: what follows ``value from ` `` and
/// ``key value ` `` (cutover's own messages about server values), and every `'…'` that is not
/// a known name (server messages quote values that way).
fn redact_error(msg: &str, names: &HashSet<String>) -> String {
    let mut msg = msg.to_string();
    for (open, close) in [
        ("value from `", "`"),
        ("unexpected key value `", "` from the server"),
    ] {
        if let Some(p) = msg.find(open) {
            let start = p + open.len();
            let end = msg[start..]
                .rfind(close)
                .map(|e| start + e)
                .unwrap_or(msg.len());
            msg.replace_range(start..end, REDACTED);
        }
    }
    redact_quoted(&msg, names)
}

/// Every `'…'` or `"…"` that is not a known name becomes `(redacted)`. A quote opens after a
/// non-alphanumeric character and closes before one, so the apostrophes of `can't` or
/// `O'Brien` neither open nor close.
fn redact_quoted(text: &str, names: &HashSet<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let alnum = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    while i < chars.len() {
        let q = chars[i];
        let opens = (q == '\'' || q == '"') && (i == 0 || !alnum(chars.get(i - 1)));
        if !opens {
            out.push(q);
            i += 1;
            continue;
        }
        let close = (i + 1..chars.len()).find(|&j| chars[j] == q && !alnum(chars.get(j + 1)));
        let end = close.unwrap_or(chars.len());
        let inner: String = chars[i + 1..end].iter().collect();
        out.push(q);
        if names.contains(&inner) {
            out.push_str(&inner);
        } else {
            out.push_str(REDACTED);
        }
        if close.is_some() {
            out.push(q);
        }
        i = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_stable_and_canonical() {
        let h = hash_value(&json!("secret"));
        assert!(is_hash(&h), "{h}");
        assert_eq!(h, hash_value(&json!("secret")));
        assert_ne!(h, hash_value(&json!("secret ")));
        assert_ne!(hash_value(&json!(1)), hash_value(&json!("1")));
        assert_eq!(
            hash_value(&json!({"a": 1, "b": [2, {"d": 3, "c": 4}]})),
            hash_value(&json!({"b": [2, {"c": 4, "d": 3}], "a": 1}))
        );
        // Pinned (computed independently): reports of different runs and versions agree.
        assert_eq!(h, "h:ac6a28ba4c1b7083");
        assert_eq!(
            hash_value(&json!({"b": [2, {"d": 3, "c": 4}], "a": 1})),
            "h:fd2208390c53c413"
        );
        let keyed = hash_with(&json!("secret"), Some(b"k1"));
        assert_ne!(keyed, h);
        assert_ne!(keyed, hash_with(&json!("secret"), Some(b"k2")));
        assert_eq!(keyed, hash_with(&json!("secret"), Some(b"k1")));
    }

    #[test]
    fn errors_lose_their_values() {
        let names: HashSet<String> = ["shop.orders", "shop", "orders", "field list", "total"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            redact_error(
                "source column `amount`: cannot read a Decimal value from `12ab'c`",
                &names
            ),
            "source column `amount`: cannot read a Decimal value from `(redacted)`"
        );
        assert_eq!(
            redact_error("unexpected key value `x` y` from the server", &names),
            "unexpected key value `(redacted)` from the server"
        );
        assert_eq!(
            redact_error(
                "source query failed: Table 'shop.orders' doesn't exist",
                &names
            ),
            "source query failed: Table 'shop.orders' doesn't exist"
        );
        assert_eq!(
            redact_error(
                "target query failed: Truncated incorrect DOUBLE value: 'O'Brien' in 'total'",
                &names
            ),
            "target query failed: Truncated incorrect DOUBLE value: '(redacted)' in 'total'"
        );
        assert_eq!(
            redact_error("Unknown column 'secret' in 'field list'", &names),
            "Unknown column '(redacted)' in 'field list'"
        );
        assert_eq!(
            redact_error("cut short: 'abc", &names),
            "cut short: '(redacted)"
        );
        assert_eq!(
            redact_quoted(
                r#"email = 'bob@example.com' AND `total` > 10 OR note = "it's""#,
                &names
            ),
            r#"email = '(redacted)' AND `total` > 10 OR note = "(redacted)""#
        );
        assert_eq!(
            redact_quoted("name = 'O''Brien'", &names),
            "name = '(redacted)''(redacted)'"
        );
        assert_eq!(
            redact_error("table missing on the target", &names),
            "table missing on the target"
        );
        assert_eq!(redact_error("Can't connect", &names), "Can't connect");
    }
}
