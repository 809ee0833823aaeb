//! The protocol layer of an answer, as a driver sees it: column definitions (type, flags,
//! decimals, character set/collation id), the server status flags a client acts on, warnings,
//! session-state changes, affected rows and last insert id. [`details`] names each difference
//! in a form a client developer can act on, and [`meaning`] says what it means for
//! JDBC/Connector and connection-pool users (the report's "client compatibility" section).
//!
//! Session-state changes (session tracking) are compared between baseline and target as the
//! driver reports them; `mysql_async` does not negotiate `CLIENT_SESSION_TRACK`, so today both
//! sides report none and only proxy/pcap recordings (of clients that negotiate it, such as
//! libmariadb or Connector/J) hold them, for the record, not for comparison.
//!
//! Status flags that describe the *plan*, not the answer (`SERVER_QUERY_NO_INDEX_USED`,
//! `SERVER_QUERY_NO_GOOD_INDEX_USED`, `SERVER_QUERY_WAS_SLOW`) are not compared: TiDB never
//! sends them, and no driver changes its behaviour on them (Connector/J only logs them with
//! `useUsageAdvisor`).

use serde::Serialize;

use crate::answer::{Answer, Kind};

/// One column definition as the server sent it.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ColumnMeta {
    pub name: String,
    /// `MYSQL_TYPE_*`.
    #[serde(rename = "type")]
    pub type_name: String,
    pub flags: u16,
    pub decimals: u8,
    /// The character set / collation id (63: binary).
    pub charset: u16,
}

/// The status flags compared: those drivers and pools act on.
pub const CLIENT_STATUS: u16 = 0x0001 // SERVER_STATUS_IN_TRANS
    | 0x0002 // SERVER_STATUS_AUTOCOMMIT
    | 0x0200 // SERVER_STATUS_NO_BACKSLASH_ESCAPES
    | 0x1000 // SERVER_PS_OUT_PARAMS
    | 0x2000; // SERVER_STATUS_IN_TRANS_READONLY

const STATUS_NAMES: [(u16, &str); 5] = [
    (0x0001, "SERVER_STATUS_IN_TRANS"),
    (0x0002, "SERVER_STATUS_AUTOCOMMIT"),
    (0x0200, "SERVER_STATUS_NO_BACKSLASH_ESCAPES"),
    (0x1000, "SERVER_PS_OUT_PARAMS"),
    (0x2000, "SERVER_STATUS_IN_TRANS_READONLY"),
];

/// Column flags a driver reads (`NOT_NULL`, keys, `UNSIGNED`, `BINARY`, …).
const FLAG_NAMES: [(u16, &str); 12] = [
    (0x0001, "NOT_NULL"),
    (0x0002, "PRI_KEY"),
    (0x0004, "UNIQUE_KEY"),
    (0x0008, "MULTIPLE_KEY"),
    (0x0010, "BLOB"),
    (0x0020, "UNSIGNED"),
    (0x0040, "ZEROFILL"),
    (0x0080, "BINARY"),
    (0x0100, "ENUM"),
    (0x0200, "AUTO_INCREMENT"),
    (0x0400, "TIMESTAMP"),
    (0x0800, "SET"),
];

/// The column flags compared: those that change how a client reads the value (`UNSIGNED`,
/// `ZEROFILL`, `ENUM`, `SET`). Left out: the key flags and `NOT_NULL` (they follow the plan
/// and the server version for computed columns), `AUTO_INCREMENT`, `TIMESTAMP` and `BLOB`
/// (the type says it), and `BINARY`, which on a text column only says its collation is a
/// `_bin` one (MySQL 5.7 `_ci` → TiDB `_bin` would flag every string column); text against
/// bytes shows as the binary character set ([`Kind::Charset`]).
pub const CLIENT_FLAGS: u16 = 0x0020 | 0x0040 | 0x0100 | 0x0800;

/// What is compared of a column besides its name and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnBits {
    pub flags: u16,
    pub decimals: u8,
    pub charset: u16,
}

impl ColumnMeta {
    pub fn bits(&self) -> ColumnBits {
        ColumnBits {
            flags: self.flags,
            decimals: self.decimals,
            charset: self.charset,
        }
    }
}

/// The character set of a collation id where it is a common one (MySQL and MariaDB number
/// them alike below 256; MariaDB's UCA-14 collations above 2048 are utf8mb3/utf8mb4 by
/// range). Collations of one character set decode alike: a client sees a difference only
/// when the character set differs (text against bytes, utf8mb4 against latin1).
pub fn charset_of(id: u16) -> Option<&'static str> {
    Some(match id {
        63 => "binary",
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => "latin1",
        33 | 76 | 83 | 192..=215 | 223 => "utf8mb3",
        45 | 46 | 224..=247 | 255..=323 => "utf8mb4",
        2048..=2303 => "utf8mb3",
        2304..=2559 => "utf8mb4",
        _ => return None,
    })
}

/// Whether two collation ids make a client decode differently: different character sets
/// (unknown ids: different ids).
pub fn charset_differs(a: u16, b: u16) -> bool {
    match (charset_of(a), charset_of(b)) {
        (Some(x), Some(y)) => x != y,
        _ => a != b,
    }
}

fn names(bits: u16, table: &[(u16, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// `NOT_NULL on the baseline only, UNSIGNED on the target only`.
fn flag_change(a: u16, b: u16, table: &[(u16, &'static str)], a_side: &str) -> String {
    let mut parts = Vec::new();
    let only_a = names(a & !b, table);
    let only_b = names(b & !a, table);
    if !only_a.is_empty() {
        parts.push(format!("{} on the {a_side} only", only_a.join("|")));
    }
    if !only_b.is_empty() {
        parts.push(format!("{} on the target only", only_b.join("|")));
    }
    parts.join(", ")
}

/// The collation's name where it is one of the common ones.
pub fn collation_name(id: u16) -> String {
    let name = match id {
        8 => "latin1_swedish_ci",
        33 => "utf8mb3_general_ci",
        45 => "utf8mb4_general_ci",
        46 => "utf8mb4_bin",
        47 => "latin1_bin",
        63 => "binary",
        83 => "utf8mb3_bin",
        224 => "utf8mb4_unicode_ci",
        255 => "utf8mb4_0900_ai_ci",
        _ => return id.to_string(),
    };
    format!("{id} ({name})")
}

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

/// The column-definition differences between two answers (same statement), besides names
/// and types.
pub fn compare_columns(a: &[ColumnBits], b: &[ColumnBits]) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if a.len() != b.len() {
        return kinds; // count and names: `Kind::Metadata`, from the `name type` list
    }
    let mut add = |k| {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    };
    for (x, y) in a.iter().zip(b) {
        if x.flags & CLIENT_FLAGS != y.flags & CLIENT_FLAGS {
            add(Kind::ColumnFlags);
        }
        if x.decimals != y.decimals {
            add(Kind::Decimals);
        }
        if charset_differs(x.charset, y.charset) {
            add(Kind::Charset);
        }
    }
    kinds
}

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

/// An answer and its columns as far as a capture summary describes them (for [`details`]
/// without a baseline).
pub fn from_captured(r: &cutover_workload::Response) -> (Answer, Vec<ColumnMeta>) {
    let answer = Answer {
        error: r.error.as_ref().map(|e| crate::answer::ServerErr {
            code: e.code,
            state: e.state.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        }),
        status_flags: r.status_flags,
        session_state: r.session_state.clone().unwrap_or_default(),
        warnings: r.warnings.unwrap_or(0),
        affected_rows: r.affected_rows.unwrap_or(0),
        last_insert_id: r.last_insert_id.filter(|id| *id != 0),
        rows: r.rows.unwrap_or(0),
        ..Answer::default()
    };
    let columns = r
        .columns
        .iter()
        .flatten()
        .map(|c| ColumnMeta {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
            flags: c.flags.unwrap_or(0),
            decimals: c.decimals.unwrap_or(0),
            charset: c.charset.unwrap_or(0),
        })
        .collect();
    (answer, columns)
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
