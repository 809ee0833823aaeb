//! What a statement's text shows it touches, for the conflict context: its tables and the
//! keys it names.

use cutover_workload::fingerprint::{tokenize, TokenKind};

/// What a statement's text shows it touches: table names (without their database,
/// lowercased) and `column = literal` keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touch {
    pub tables: Vec<String>,
    pub keys: Vec<(String, String)>,
}

/// Reads the tables after `FROM`, `JOIN`, `UPDATE`, `INTO`, `TABLE` and the keys written as
/// `column = literal` or `column IN (literal, …)`. A reading of the text, not a parse: it
/// never fails, and what it cannot read it leaves out (the context then shows fewer
/// statements, never a wrong table).
pub fn touch(sql: &str) -> Touch {
    let toks = tokenize(sql);
    let word = |i: usize| -> Option<&str> {
        toks.get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(sql))
    };
    let ident = |i: usize| -> Option<String> {
        let t = toks.get(i)?;
        match t.kind {
            TokenKind::Word => Some(t.text(sql).to_ascii_lowercase()),
            TokenKind::QuotedIdent => {
                let s = t.text(sql);
                let inner = s.get(1..s.len().saturating_sub(1)).unwrap_or("");
                Some(inner.replace("``", "`").to_lowercase())
            }
            _ => None,
        }
    };
    let punct = |i: usize, p: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == TokenKind::Punct && t.text(sql) == p)
    };
    let mut out = Touch::default();
    // Keys are read in conditions only (after WHERE or ON), not in `SET x = 1`.
    let mut condition = false;
    for i in 0..toks.len() {
        let Some(w) = word(i) else {
            if condition && punct(i, "=") {
                // `column = literal`
                let col = i.checked_sub(1).and_then(&ident);
                if let (Some(col), Some(v)) = (col, toks.get(i + 1)) {
                    if v.is_literal() && out.keys.len() < 64 {
                        out.keys.push((col, v.text(sql).to_string()));
                    }
                }
            }
            continue;
        };
        let w = w.to_ascii_lowercase();
        match w.as_str() {
            "where" | "on" | "having" => condition = true,
            "set" | "values" | "select" => condition = false,
            _ => {}
        }
        match w.as_str() {
            "from" | "join" | "update" | "into" | "table" => {
                let mut j = i + 1;
                // `DELETE FROM`, `INSERT IGNORE INTO`, `UPDATE LOW_PRIORITY IGNORE t`.
                while word(j).is_some_and(|x| {
                    matches!(
                        x.to_ascii_lowercase().as_str(),
                        "low_priority" | "ignore" | "only" | "if"
                    )
                }) {
                    j += 1;
                }
                let Some(mut name) = ident(j) else { continue };
                if punct(j + 1, ".") {
                    if let Some(n) = ident(j + 2) {
                        name = n;
                    }
                }
                if !is_keyword(&name) && !out.tables.contains(&name) && out.tables.len() < 64 {
                    out.tables.push(name);
                }
            }
            "in" if condition && punct(i + 1, "(") => {
                let Some(col) = i.checked_sub(1).and_then(&ident) else {
                    continue;
                };
                let mut j = i + 2;
                while let Some(t) = toks.get(j) {
                    if t.is_literal() {
                        if out.keys.len() < 64 {
                            out.keys.push((col.clone(), t.text(sql).to_string()));
                        }
                    } else if !punct(j, ",") {
                        break;
                    }
                    j += 1;
                }
            }
            _ => {}
        }
    }
    for k in &mut out.keys {
        // `t.id = 1` and `id = 1` name one key.
        if let Some((_, c)) = k.0.rsplit_once('.') {
            k.0 = c.to_string();
        }
    }
    out
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "select" | "dual" | "(" | "set" | "values" | "where")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(c: &str, v: &str) -> (String, String) {
        (c.to_string(), v.to_string())
    }

    #[test]
    fn tables_and_keys_are_read_from_the_text() {
        let t = touch("UPDATE `shop`.`Orders` SET v = v + 1 WHERE id = 7");
        assert_eq!(t.tables, vec!["orders"]);
        assert_eq!(t.keys, vec![key("id", "7")]);
        let t = touch("DELETE FROM t WHERE t.k IN (1, 2,3) AND s = 'x'");
        assert_eq!(t.tables, vec!["t"]);
        assert_eq!(
            t.keys,
            vec![key("k", "1"), key("k", "2"), key("k", "3"), key("s", "'x'")]
        );
        let t = touch("INSERT IGNORE INTO a (id) SELECT id FROM b JOIN c ON b.x = c.x");
        assert_eq!(t.tables, vec!["a", "b", "c"]);
        assert!(t.keys.is_empty());
        assert_eq!(touch("COMMIT"), Touch::default());
        // A table name in a string or a comment is not read.
        let t = touch("SELECT 'from x' /* from y */ FROM z");
        assert_eq!(t.tables, vec!["z"]);
    }

    proptest! {
        #[test]
        fn touch_never_panics_and_stays_bounded(s in "\\PC{0,300}") {
            let t = touch(&s);
            prop_assert!(t.tables.len() <= 64 && t.keys.len() <= 64);
            for name in &t.tables {
                prop_assert!(name.len() <= s.len());
            }
        }

        #[test]
        fn touch_reads_generated_updates(table in "[a-z][a-z0-9_]{0,10}", col in "[a-z][a-z_]{0,8}", v in 0u64..1_000_000) {
            prop_assume!(!is_keyword(&table) && !["low_priority", "ignore", "only", "if"].contains(&table.as_str()));
            let t = touch(&format!("UPDATE {table} SET x = 1 WHERE {col} = {v}"));
            prop_assert_eq!(t.tables, vec![table]);
            prop_assert!(t.keys.contains(&(col, v.to_string())));
        }
    }
}
