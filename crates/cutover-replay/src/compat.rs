//! The report's client-compatibility section: each protocol-level difference between two
//! answers named in a form a client developer can act on ([`details`]), and what each kind
//! means for JDBC/Connector and connection-pool users ([`meaning`]).

use serde::Serialize;

use crate::answer::Answer;
use crate::compare::Kind;
use crate::protocol::{
    charset_differs, collation_name, flag_change, ColumnMeta, CLIENT_FLAGS, CLIENT_STATUS,
    FLAG_NAMES, STATUS_NAMES,
};

/// One protocol-level difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtoDiff {
    pub kind: Kind,
    pub detail: String,
}

/// The protocol-level kinds among `Kind`s, in report order.
pub const KINDS: [Kind; 9] = [
    Kind::Metadata,
    Kind::ColumnFlags,
    Kind::Decimals,
    Kind::Charset,
    Kind::StatusFlags,
    Kind::Warnings,
    Kind::SessionState,
    Kind::AffectedRows,
    Kind::LastInsertId,
];

/// Every protocol-level difference between the baseline's (or captured) answer and the
/// target's, with details; `a` and `b` are their column definitions.
pub fn details(
    base: &Answer,
    a: &[ColumnMeta],
    target: &Answer,
    b: &[ColumnMeta],
    base_side: &str,
) -> Vec<ProtoDiff> {
    let mut out = Vec::new();
    if base.error.is_some() || target.error.is_some() {
        return out;
    }
    if a.len() != b.len() {
        out.push(ProtoDiff {
            kind: Kind::Metadata,
            detail: format!("{} columns vs {}", a.len(), b.len()),
        });
    } else {
        for (x, y) in a.iter().zip(b) {
            let col = if x.name == y.name {
                format!("column `{}`", x.name)
            } else {
                format!("column `{}` / `{}`", x.name, y.name)
            };
            if x.name != y.name || x.type_name != y.type_name {
                out.push(ProtoDiff {
                    kind: Kind::Metadata,
                    detail: format!("{col}: {} vs {}", x.type_name, y.type_name),
                });
            }
            if x.flags & CLIENT_FLAGS != y.flags & CLIENT_FLAGS {
                out.push(ProtoDiff {
                    kind: Kind::ColumnFlags,
                    detail: format!(
                        "{col}: {}",
                        flag_change(x.flags, y.flags, &FLAG_NAMES, base_side)
                    ),
                });
            }
            if x.decimals != y.decimals {
                out.push(ProtoDiff {
                    kind: Kind::Decimals,
                    detail: format!("{col}: decimals {} vs {}", x.decimals, y.decimals),
                });
            }
            if charset_differs(x.charset, y.charset) {
                out.push(ProtoDiff {
                    kind: Kind::Charset,
                    detail: format!(
                        "{col}: collation {} vs {}",
                        collation_name(x.charset),
                        collation_name(y.charset)
                    ),
                });
            }
        }
    }
    if let (Some(x), Some(y)) = (base.status_flags, target.status_flags) {
        if x & CLIENT_STATUS != y & CLIENT_STATUS {
            out.push(ProtoDiff {
                kind: Kind::StatusFlags,
                detail: flag_change(x, y, &STATUS_NAMES, base_side),
            });
        }
    }
    if base.warnings != target.warnings {
        out.push(ProtoDiff {
            kind: Kind::Warnings,
            detail: format!("{} warnings vs {}", base.warnings, target.warnings),
        });
    }
    if base.session_state != target.session_state {
        out.push(ProtoDiff {
            kind: Kind::SessionState,
            detail: format!(
                "[{}] vs [{}]",
                base.session_state.join(", "),
                target.session_state.join(", ")
            ),
        });
    }
    if base.affected_rows != target.affected_rows {
        out.push(ProtoDiff {
            kind: Kind::AffectedRows,
            detail: format!(
                "{} affected rows vs {}",
                base.affected_rows, target.affected_rows
            ),
        });
    }
    if base.last_insert_id != target.last_insert_id {
        let id = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        out.push(ProtoDiff {
            kind: Kind::LastInsertId,
            detail: format!(
                "last insert id {} vs {}",
                id(base.last_insert_id),
                id(target.last_insert_id)
            ),
        });
    }
    out
}

/// What a difference of this kind means for applications, drivers and pools.
pub fn meaning(kind: Kind) -> &'static str {
    match kind {
        Kind::Metadata => {
            "Drivers map column types to language types: JDBC getObject() returns BigDecimal \
             for DECIMAL but Double for DOUBLE, Long or Integer by integer width; ORMs that \
             validate mappings (Hibernate) and ResultSetMetaData readers break or lose precision."
        }
        Kind::ColumnFlags => {
            "UNSIGNED decides whether Connector/J returns Long or BigInteger for BIGINT; \
             NOT_NULL, PRI_KEY and AUTO_INCREMENT feed ResultSetMetaData.isNullable() and \
             isAutoIncrement(), used by ORMs and code generators; BINARY decides text or bytes."
        }
        Kind::Decimals => {
            "The scale drivers report (getScale()) and use to format DECIMAL, DOUBLE and \
             fractional seconds: values render differently (1.50 vs 1.5, 12:00:00.000000 vs \
             12:00:00) and fixed-point code may round."
        }
        Kind::Charset => {
            "The collation id tells the driver how to decode bytes: Connector/J decodes text by \
             it, and binary (63) turns a string column into byte[]; a different collation also \
             changes ORDER BY, GROUP BY and = on the server."
        }
        Kind::StatusFlags => {
            "Drivers and pools track transaction state from SERVER_STATUS_IN_TRANS and \
             AUTOCOMMIT (Connector/J useLocalTransactionState, HikariCP's rollback on return); \
             NO_BACKSLASH_ESCAPES changes how clients escape strings."
        }
        Kind::Warnings => {
            "Connector/J chains warnings as SQLWarning and some frameworks log or fail on them; \
             a warning on one side only is often a value truncated, converted or rounded."
        }
        Kind::SessionState => {
            "Clients that use session tracking (Connector/J trackSessionState, MariaDB \
             Connector/J, ProxySQL) see different session changes: pooled connections can be \
             reused with the wrong state, or reset when they need not be."
        }
        Kind::AffectedRows => {
            "ORMs check affected rows for optimistic locking (UPDATE … WHERE version = ? must \
             report 1); useAffectedRows/CLIENT_FOUND_ROWS changes what unchanged rows count as."
        }
        Kind::LastInsertId => {
            "Generated keys (getGeneratedKeys(), LAST_INSERT_ID()) come from here: a different \
             value or none breaks code that inserts children with the parent's id."
        }
        Kind::Error | Kind::Rows => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::compare_columns;

    fn col(name: &str, t: &str, flags: u16, decimals: u8, charset: u16) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            type_name: t.into(),
            flags,
            decimals,
            charset,
        }
    }

    #[test]
    fn each_column_difference_is_named() {
        let a_cols = vec![
            col("id", "MYSQL_TYPE_LONGLONG", 0x0001 | 0x0002 | 0x0020, 0, 63),
            col("price", "MYSQL_TYPE_NEWDECIMAL", 0x0001, 2, 63),
            col("name", "MYSQL_TYPE_VAR_STRING", 0, 0, 45),
            col("note", "MYSQL_TYPE_VAR_STRING", 0, 0, 45),
        ];
        let b_cols = vec![
            col("id", "MYSQL_TYPE_LONGLONG", 0x0001 | 0x0002, 0, 63),
            col("price", "MYSQL_TYPE_NEWDECIMAL", 0x0001, 4, 63),
            col("name", "MYSQL_TYPE_VAR_STRING", 0, 0, 63),
            // Another utf8mb4 collation: decoded alike, not a difference.
            col("note", "MYSQL_TYPE_VAR_STRING", 0x0080, 0, 46),
        ];
        let a = Answer {
            status_flags: Some(0x0002),
            ..Answer::default()
        };
        let b = Answer {
            // In a transaction on the target only; the plan hint is not compared.
            status_flags: Some(0x0002 | 0x0001 | 0x0010),
            warnings: 1,
            ..Answer::default()
        };
        let bits = |c: &[ColumnMeta]| c.iter().map(|c| c.bits()).collect::<Vec<_>>();
        // Key flags, NOT NULL and BINARY are not compared.
        let mut c_cols = b_cols.clone();
        c_cols[0].flags |= 0x0004 | 0x0001;
        c_cols[3].flags &= !0x0080;
        assert!(compare_columns(&bits(&b_cols), &bits(&c_cols)).is_empty());
        let d = details(&a, &a_cols, &b, &b_cols, "baseline");
        let got: Vec<(Kind, &str)> = d.iter().map(|d| (d.kind, d.detail.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    Kind::ColumnFlags,
                    "column `id`: UNSIGNED on the baseline only"
                ),
                (Kind::Decimals, "column `price`: decimals 2 vs 4"),
                (
                    Kind::Charset,
                    "column `name`: collation 45 (utf8mb4_general_ci) vs 63 (binary)"
                ),
                (
                    Kind::StatusFlags,
                    "SERVER_STATUS_IN_TRANS on the target only"
                ),
                (Kind::Warnings, "0 warnings vs 1"),
            ]
        );
        assert_eq!(
            compare_columns(&bits(&a_cols), &bits(&b_cols)),
            vec![Kind::ColumnFlags, Kind::Decimals, Kind::Charset]
        );
        assert!(details(&a, &a_cols, &a.clone(), &a_cols, "baseline").is_empty());
        for k in KINDS {
            assert!(!meaning(k).is_empty(), "{k:?}");
        }
    }
}
