//! How a value reads in the documents: strings quoted with escapes, numbers bare, `NULL`,
//! bytes as `0x…`, and a long value cut around its first difference from the other side.
use std::fmt::Write as _;

use serde_json::Value as J;

use super::redact::is_hash;
use super::{BEFORE, LIMIT};
use crate::report::RowDiff;

/// `id=1` or `a=1, b="x"`, `×n` for copies of a keyless row; whether a value was cut.
pub(super) fn key_text(d: &RowDiff, redacted: bool) -> (String, bool) {
    let mut clipped = false;
    let mut parts = Vec::with_capacity(d.key.len());
    for (k, v) in &d.key {
        let shown = show(v, redacted);
        let chars: Vec<char> = shown.chars().collect();
        clipped |= chars.len() > LIMIT;
        parts.push(format!("{k}={}", clip(&chars, 0)));
    }
    let mut s = if parts.is_empty() {
        "(no key)".to_string()
    } else {
        parts.join(", ")
    };
    if let Some(n) = d.count.filter(|&n| n > 1) {
        let _ = write!(s, " ×{n}");
    }
    (s, clipped)
}

/// A value as a DBA reads it.
pub(super) fn show(v: &J, redacted: bool) -> String {
    match v {
        J::Null => "NULL".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) if redacted && is_hash(s) => s.clone(),
        J::String(s) => quote(s),
        J::Object(m) => match (m.len(), m.get("hex")) {
            (1, Some(J::String(h))) if h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("0x{h}")
            }
            _ => v.to_string(),
        },
        J::Array(_) => v.to_string(),
    }
}

/// A string in double quotes, with `\\`, `\"`, `\n`, `\r`, `\t`, and every control, format or
/// unusual space character as `\u{…}`: what looks alike in a report is alike in the data.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invisible(c: char) -> bool {
    matches!(c,
        '\u{a0}' | '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{180e}' | '\u{2000}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}' | '\u{205f}'..='\u{206f}' | '\u{3000}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

/// Both values cut to a window that shows where they start to differ, when either is long.
pub(super) fn clip_pair(a: String, b: String) -> (String, String, bool) {
    let ac: Vec<char> = a.chars().collect();
    let bc: Vec<char> = b.chars().collect();
    if ac.len() <= LIMIT && bc.len() <= LIMIT {
        return (a, b, false);
    }
    let common = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let start = if common + 1 > LIMIT - BEFORE {
        common - BEFORE
    } else {
        0
    };
    (clip(&ac, start), clip(&bc, start), true)
}

fn clip(chars: &[char], start: usize) -> String {
    let start = start.min(chars.len());
    let end = (start + LIMIT).min(chars.len());
    let mut s = String::new();
    if start > 0 {
        s.push('…');
    }
    s.extend(&chars[start..end]);
    if end < chars.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_like_values() {
        assert_eq!(show(&J::Null, false), "NULL");
        assert_eq!(show(&json!(1.5), false), "1.5");
        assert_eq!(
            show(&json!("18446744073709551615"), false),
            "\"18446744073709551615\""
        );
        assert_eq!(show(&json!("a\"b\\c\nd\t"), false), r#""a\"b\\c\nd\t""#);
        assert_eq!(
            show(&json!("x\u{a0}y\u{200b}\u{0}"), false),
            r#""x\u{a0}y\u{200b}\u{0}""#
        );
        assert_eq!(show(&json!("trailing "), false), "\"trailing \"");
        assert_eq!(show(&json!({"hex": "ff00"}), false), "0xff00");
        assert_eq!(show(&json!({"hex": "zz"}), false), r#"{"hex":"zz"}"#);
        assert_eq!(show(&json!({"a": [1, null]}), false), r#"{"a":[1,null]}"#);
        assert_eq!(
            show(&json!("h:0123456789abcdef"), true),
            "h:0123456789abcdef"
        );
        assert_eq!(
            show(&json!("h:0123456789abcdef"), false),
            "\"h:0123456789abcdef\""
        );
    }

    #[test]
    fn long_values_are_cut_where_they_differ() {
        let a = format!("{}X{}", "a".repeat(500), "b".repeat(10));
        let b = format!("{}Y{}", "a".repeat(500), "b".repeat(10));
        let (l, r, cut) = clip_pair(a, b);
        assert!(cut);
        assert_eq!(l, format!("…{}X{}", "a".repeat(BEFORE), "b".repeat(10)));
        assert_eq!(r, format!("…{}Y{}", "a".repeat(BEFORE), "b".repeat(10)));
        let (l, _, cut) = clip_pair("Z".repeat(300), "short".into());
        assert!(cut);
        assert_eq!(l, format!("{}…", "Z".repeat(LIMIT)));
        let (l, r, cut) = clip_pair("same".into(), "other".into());
        assert_eq!((l.as_str(), r.as_str(), cut), ("same", "other", false));
        // Multi-byte characters are cut on character boundaries.
        let (l, r, _) = clip_pair("é".repeat(200), "é".repeat(199));
        assert_eq!(l, format!("…{}", "é".repeat(BEFORE + 1)));
        assert_eq!(r, format!("…{}", "é".repeat(BEFORE)));
    }
}
