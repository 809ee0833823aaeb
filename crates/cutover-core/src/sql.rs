//! SQL text: identifiers and literals, safe for any bytes and any `sql_mode`.
//!
//! A string literal is written with doubled quotes when it holds nothing a server could read
//! two ways; a backslash means an escape under the default `sql_mode` and a plain character
//! under `NO_BACKSLASH_ESCAPES`, so text with a backslash or a control character, and every
//! byte string, is written in hex instead.

/// `` `name` ``, with backticks inside doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A UTF-8 string literal that means the same under every `sql_mode`.
pub fn quote_str(s: &str) -> String {
    if s.chars().any(|c| c == '\\' || c.is_control()) {
        format!("_utf8mb4 X'{}'", crate::value::hex(s.as_bytes()))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A binary string literal: `X'…'` (or `''` when empty, since `X''` is fine too but reads
/// oddly).
pub fn quote_bytes(b: &[u8]) -> String {
    format!("X'{}'", crate::value::hex(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }

    #[test]
    fn strings() {
        assert_eq!(quote_str("it's"), "'it''s'");
        assert_eq!(quote_str("a\\b"), "_utf8mb4 X'615c62'");
        assert_eq!(quote_bytes(&[0, 255]), "X'00ff'");
    }
}
