//! The protocol layer of an answer, as a driver sees it: column definitions (type, flags,
//! decimals, character set/collation id), the server status flags a client acts on, warnings,
//! session-state changes, affected rows and last insert id. `compat::details` names each
//! difference in a form a client developer can act on, and `compat::meaning` says what it
//! means for JDBC/Connector and connection-pool users (the report's "client compatibility"
//! section).
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

pub(crate) const STATUS_NAMES: [(u16, &str); 5] = [
    (0x0001, "SERVER_STATUS_IN_TRANS"),
    (0x0002, "SERVER_STATUS_AUTOCOMMIT"),
    (0x0200, "SERVER_STATUS_NO_BACKSLASH_ESCAPES"),
    (0x1000, "SERVER_PS_OUT_PARAMS"),
    (0x2000, "SERVER_STATUS_IN_TRANS_READONLY"),
];

/// Column flags a driver reads (`NOT_NULL`, keys, `UNSIGNED`, `BINARY`, …).
pub(crate) const FLAG_NAMES: [(u16, &str); 12] = [
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
/// bytes shows as the binary character set (`Kind::Charset`).
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

pub(crate) fn names(bits: u16, table: &[(u16, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// `NOT_NULL on the baseline only, UNSIGNED on the target only`.
pub(crate) fn flag_change(a: u16, b: u16, table: &[(u16, &'static str)], a_side: &str) -> String {
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
