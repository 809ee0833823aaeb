//! Table plans: which columns are compared, by which key, with which checksum expression.
//!
//! ## The checksum
//!
//! For a range of rows, each server computes a count and a sum of 64-bit row hashes:
//!
//! ```sql
//! SELECT COUNT(*), SUM(<row hash>), …, MIN(key), MAX(key) FROM t WHERE key >= ? AND key <= ?
//! ```
//!
//! The row hash has two forms ([`RowHash`]); the engine picks the first when both servers have
//! it, and the second everywhere else.
//!
//! **`crc32_pair`** (both sides MariaDB ≥ 10.8):
//!
//! ```sql
//! SUM(CRC32(@cutover_row := CONCAT_WS(CHAR(255), v1, …, vn, LENGTH(b1), …, LENGTH(bk-1), nulls))
//!     + (CRC32C(@cutover_row) << 32)), 0
//! ```
//!
//! One row string `R`, built once, hashed by two CRCs with *different polynomials*
//! (IEEE and Castagnoli). CRCs are linear: a change `d` to `R` goes unnoticed by one exactly
//! when its polynomial divides `d`; by both only when their product, of degree 64, does. So
//! the two halves are independent bits, and every burst change of up to 32 bits is certain to
//! be seen. Both are in the row's one expression, evaluated left to right, so the second reads
//! the variable the first has just set for this row.
//!
//! **`hex_views`** (portable: MySQL 5.7/8.0, Aurora, TiDB, mixed pairs):
//!
//! ```sql
//! SUM(CRC32(CONCAT_WS('#', a1, …, an, nulls))), SUM(CRC32(CONCAT_WS('#', b1, …, bn, nulls)))
//! ```
//!
//! where `a_i` and `b_i` are two *different views* of column `i`:
//!
//! | column | `a` (first hash) | `b` (second hash) |
//! |---|---|---|
//! | text, bytes, JSON, ENUM/SET | `CRC32(c)` | `CRC32(HEX(c))` |
//! | integers | `c` | `HEX(c)` |
//! | everything else | its text `t` | `HEX(CAST(t AS CHAR))` |
//!
//! Two CRC32s (one polynomial) over two layouts of the same bytes would miss the same
//! changes and add no bits, so the second hash sees every value through `HEX`, which is not
//! linear: a change that one CRC misses is, independently, missed by the other with
//! probability 2^-32. It costs about a third more than `crc32_pair` (measured in `bench/`).
//!
//! Common to both:
//! - **Separator-safe without escaping.** In `crc32_pair` the separator is the byte 0xFF,
//!   which no number, date or utf8mb4 text contains (the server stores only well-formed
//!   text, and text in other charsets is converted to utf8mb4). Only raw bytes (BINARY, BLOB,
//!   …) can hold it; the byte length `LENGTH(b)` of each such field but one is part of `R`.
//!   So `R` decodes to exactly one row: `('a#b','c')` and `('a','b#c')` differ, and so do
//!   binary values cut at a 0xFF elsewhere. (Reading a CHAR column strips its pad; each
//!   `LENGTH` reads the column again, which is why text gets none.) In `hex_views` strings
//!   enter as their CRC32, a number, and the separator is `#`.
//! - **NULL-safe.** `CONCAT_WS` skips NULLs; the `nulls` field (`CONCAT(ISNULL(a), …)` over the
//!   NULL-able columns) says which were skipped, so NULL and `''` differ.
//! - **`SUM`, not `BIT_XOR`**: XOR cancels a pair of duplicate rows; a sum (with the count) does
//!   not. Sums are exact DECIMALs on every server.
//! - Only functions the servers document: `COUNT`, `SUM`, `CRC32`, `HEX`, `CONCAT_WS`, `CONCAT`,
//!   `ISNULL`, `LENGTH`, `CAST`, `CONVERT … USING`; `CRC32C` and user variables only where
//!   both sides are MariaDB ≥ 10.8.
//!
//! Renderings are chosen per column so that *identical data renders identically on both
//! sides*; where it might not (a FLOAT text form, JSON text), a mismatch only costs a
//! drill-down: the rows are then fetched and compared with the value model, which has the
//! last word. The one thing a rendering must never do is render different data alike, so:
//! FLOAT is widened to DOUBLE (`f + 0e0`: FLOAT's own text has 6 digits and is not
//! injective), BIT is read as a number, text whose charset differs between the sides is
//! converted to utf8mb4 on both, DECIMAL or temporal columns whose declared scale differs are
//! cast to the larger one, and `HEX` is only applied to integers or text (`HEX(1.5)` would
//! round to an integer).

use cutover_core::schema::{Column, Table};
use cutover_core::sql::quote_ident;
use cutover_core::value::ColumnKind;

use crate::report::SchemaDiff;
use crate::schema_diff::{self, ColumnFilter};

/// A column compared on both sides (names may differ in case).
#[derive(Clone, Debug)]
pub struct ColumnPair {
    pub source: Column,
    pub target: Column,
}

impl ColumnPair {
    pub fn name(&self) -> &str {
        &self.source.name
    }
}

/// How a table is compared.
#[derive(Clone, Debug)]
pub struct Plan {
    pub source: Table,
    pub target: Table,
    /// The first key column (index into `columns`); the integer key in `IntegerRanges`.
    pub key: usize,
    /// The columns that identify a row (indexes into `columns`): the key, or every column of
    /// a keyless table.
    pub key_columns: Vec<usize>,
    pub mode: Mode,
    /// Common columns, in source order.
    pub columns: Vec<ColumnPair>,
    /// Definition differences, reported as such.
    pub schema: Vec<SchemaDiff>,
    /// How row hashes are computed; both sides must use the same.
    pub hash: RowHash,
}

/// The form of the row hash (see the module docs). The first two are 64-bit; `Crc32` is
/// the 32-bit opt-in (`--row-hash crc32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowHash {
    /// `CRC32` and `CRC32C` of one row string: both sides MariaDB ≥ 10.8.
    Crc32Pair,
    /// `CRC32` of two views of the row, the second through `HEX`: any server.
    HexViews,
    /// `CRC32` of the same row string as `Crc32Pair`, alone: any server, about a quarter less
    /// server CPU, and a differing chunk whose sums collide by chance once in 2^32 (the
    /// 64-bit forms: once in 2^64). Only when asked for.
    Crc32,
}

impl RowHash {
    /// The best form both servers can compute, from their version strings.
    pub fn for_servers(source_version: &str, target_version: &str) -> RowHash {
        if has_crc32c(source_version) && has_crc32c(target_version) {
            RowHash::Crc32Pair
        } else {
            RowHash::HexViews
        }
    }
}

/// MariaDB has `CRC32C` from 10.8 on; MySQL and TiDB do not have it.
fn has_crc32c(version: &str) -> bool {
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (10, 8)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("key column `{0}` is missing on the target")]
    KeyMissingOnTarget(String),
    #[error("key column `{0}` is excluded by --columns/--ignore-columns; it identifies the rows")]
    KeyExcluded(String),
    #[error("no column in common between source and target")]
    NoCommonColumns,
}

impl Plan {
    pub fn new(source: Table, target: Table, filter: &ColumnFilter) -> Result<Plan, PlanError> {
        let schema = schema_diff::compare(&source, &target, filter);
        let table = source.name.to_string();
        let columns: Vec<ColumnPair> = source
            .columns
            .iter()
            .filter(|c| filter.keeps(&table, &c.name))
            .filter_map(|sc| {
                target.column(&sc.name).map(|tc| ColumnPair {
                    source: sc.clone(),
                    target: tc.clone(),
                })
            })
            .collect();
        if columns.is_empty() {
            return Err(PlanError::NoCommonColumns);
        }
        let Some(key) = source.row_key() else {
            // No key: the rows are a multiset, identified by all their values.
            let key_columns = (0..columns.len()).collect();
            return Ok(Plan {
                source,
                target,
                key: 0,
                key_columns,
                mode: Mode::Multiset,
                columns,
                schema,
                hash: RowHash::HexViews,
            });
        };
        let mut key_columns = Vec::new();
        for name in &key.columns {
            if !filter.keeps(&table, name) {
                return Err(PlanError::KeyExcluded(name.clone()));
            }
            key_columns.push(
                columns
                    .iter()
                    .position(|c| c.source.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| PlanError::KeyMissingOnTarget(name.clone()))?,
            );
        }
        let integer = key_columns.len() == 1
            && columns[key_columns[0]].source.kind.is_integer()
            && columns[key_columns[0]].target.kind.is_integer();
        Ok(Plan {
            source,
            target,
            key: key_columns[0],
            key_columns,
            mode: if integer {
                Mode::IntegerRanges
            } else {
                Mode::HashBuckets
            },
            columns,
            schema,
            hash: RowHash::HexViews,
        })
    }

    /// The first checksum view of column `i` on one side (for reports).
    pub fn checksum_view(&self, i: usize, side: Side) -> String {
        match self.hash {
            RowHash::Crc32Pair | RowHash::Crc32 => row_view(&self.columns[i], side).0,
            RowHash::HexViews => render(&self.columns[i], side).0,
        }
    }

    /// The SQL expression that spreads rows over buckets by their key (all columns for a
    /// keyless table): the same on both sides for the same key, whatever the collations.
    pub fn bucket_expr(&self, side: Side, buckets: u64) -> String {
        let views: Vec<String> = self
            .key_columns
            .iter()
            .map(|i| render(&self.columns[*i], side).0)
            .collect();
        match views.as_slice() {
            // One text key is already a CRC32: no need to hash its hash.
            [one] if one.starts_with("CRC32(") => format!("{one} % {buckets}"),
            _ => format!("CRC32(CONCAT_WS('#', {})) % {buckets}", views.join(", ")),
        }
    }

    pub fn key_pair(&self) -> &ColumnPair {
        &self.columns[self.key]
    }

    /// The checksum's select list for one side: `COUNT(*), SUM(…), SUM(…)` (the second sum is
    /// `0` in the `crc32_pair` form, whose one sum holds both hashes).
    pub fn checksum_select(&self, side: Side) -> String {
        let nullable: Vec<String> = self
            .columns
            .iter()
            .filter(|p| p.source.nullable || p.target.nullable)
            .map(|p| format!("ISNULL({})", quote_ident(side.column(p).name.as_str())))
            .collect();
        let nulls = if nullable.is_empty() {
            String::new()
        } else {
            format!(", CONCAT({})", nullable.join(", "))
        };
        match self.hash {
            RowHash::Crc32Pair | RowHash::Crc32 => {
                let mut fields = Vec::new();
                let mut lengths = Vec::new();
                for p in &self.columns {
                    let (view, bytes) = row_view(p, side);
                    if bytes {
                        lengths.push(format!("LENGTH({view})"));
                    }
                    fields.push(view);
                }
                // One field that may hold the separator can be told from the others without
                // its length: every other field is delimited.
                lengths.pop();
                fields.extend(lengths);
                if self.hash == RowHash::Crc32 {
                    return format!(
                        "COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(CHAR(255), {}{nulls}))), 0), 0",
                        fields.join(", ")
                    );
                }
                format!(
                    "COUNT(*), COALESCE(SUM(CRC32(@cutover_row := CONCAT_WS(CHAR(255), {}{nulls})) \
                     + (CRC32C(@cutover_row) << 32)), 0), 0",
                    fields.join(", ")
                )
            }
            RowHash::HexViews => {
                let views: Vec<(String, String)> =
                    self.columns.iter().map(|p| render(p, side)).collect();
                let first: Vec<&str> = views.iter().map(|v| v.0.as_str()).collect();
                let second: Vec<&str> = views.iter().map(|v| v.1.as_str()).collect();
                format!(
                    "COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('#', {}{nulls}))), 0), \
                     COALESCE(SUM(CRC32(CONCAT_WS('#', {}{nulls}))), 0)",
                    first.join(", "),
                    second.join(", ")
                )
            }
        }
    }
}

/// How a table's rows are cut into comparable pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A single integer key: ranges of key values (cheap range scans, resumable, adaptive).
    IntegerRanges,
    /// Any other key (strings, several columns): buckets by a hash of the key's exact
    /// value, so the collations of the two sides cannot make them disagree on which rows a
    /// piece holds. Each pass is one linear scan per side. (A single CHAR/VARCHAR key in the
    /// same character set on both sides is paged by ranges instead: `Ctx::text_range_diff`.)
    HashBuckets,
    /// No usable key: rows are compared as a multiset (row → count), bucketed by a hash of
    /// the whole row.
    Multiset,
}

/// Which side a SQL text is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn column<'a>(&self, p: &'a ColumnPair) -> &'a Column {
        match self {
            Side::Source => &p.source,
            Side::Target => &p.target,
        }
    }
    pub fn table<'a>(&self, plan: &'a Plan) -> &'a Table {
        match self {
            Side::Source => &plan.source,
            Side::Target => &plan.target,
        }
    }
}

/// One column's two views in the checksum text, for one side. See the module docs.
fn render(p: &ColumnPair, side: Side) -> (String, String) {
    let c = side.column(p);
    let q = quote_ident(&c.name);
    let (sk, tk) = (&p.source.kind, &p.target.kind);
    let text = |t: String| {
        let second = format!("HEX(CAST({t} AS CHAR))");
        (t, second)
    };
    match &c.kind {
        ColumnKind::Int { .. } | ColumnKind::Year => (q.clone(), format!("HEX({q})")),
        ColumnKind::Bit { .. } => {
            let n = format!("CAST({q} AS UNSIGNED)");
            (n.clone(), format!("HEX({n})"))
        }
        ColumnKind::Float => text(format!("({q} + 0e0)")),
        ColumnKind::Decimal { .. } => match (sk, tk) {
            (ColumnKind::Decimal { scale: a, .. }, ColumnKind::Decimal { scale: b, .. })
                if a != b =>
            {
                text(format!(
                    "CAST({q} AS DECIMAL(65, {}))",
                    (*a).max(*b).min(30)
                ))
            }
            _ => text(q),
        },
        ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => match fsp_pair(sk, tk) {
            Some((a, b)) if a != b => text(format!("CAST({q} AS DATETIME({}))", a.max(b))),
            _ => text(q),
        },
        ColumnKind::Time { .. } => match fsp_pair(sk, tk) {
            Some((a, b)) if a != b => text(format!("CAST({q} AS TIME({}))", a.max(b))),
            _ => text(q),
        },
        ColumnKind::Double | ColumnKind::Date => text(q),
        ColumnKind::Text { .. }
        | ColumnKind::Enum
        | ColumnKind::Set
        | ColumnKind::Json
        | ColumnKind::Binary
        | ColumnKind::Other { .. } => {
            let x = if p.source.charset != p.target.charset && c.kind.is_text_like() {
                format!("CONVERT({q} USING utf8mb4)")
            } else {
                q
            };
            (format!("CRC32({x})"), format!("CRC32(HEX({x}))"))
        }
    }
}

/// One column in the `crc32_pair` row string, for one side, and whether it is raw bytes
/// (which may hold the separator byte; its byte length then goes into the row string too).
fn row_view(p: &ColumnPair, side: Side) -> (String, bool) {
    let c = side.column(p);
    let q = quote_ident(&c.name);
    match &c.kind {
        ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json => {
            // Text is in the row string as utf8mb4, where no character has a 0xFF byte.
            if p.source.charset != p.target.charset || !utf8mb4_bytes(c.charset.as_deref()) {
                (format!("CONVERT({q} USING utf8mb4)"), false)
            } else {
                (q, false)
            }
        }
        ColumnKind::Binary | ColumnKind::Other { .. } => (q, true),
        _ => (render(p, side).0, false),
    }
}

/// Whether text in this charset is already stored as utf8mb4 bytes.
fn utf8mb4_bytes(charset: Option<&str>) -> bool {
    matches!(
        charset.map(|c| c.to_ascii_lowercase()).as_deref(),
        Some("utf8mb4" | "utf8mb3" | "utf8" | "ascii")
    )
}

fn fsp_pair(a: &ColumnKind, b: &ColumnKind) -> Option<(u32, u32)> {
    let f = |k: &ColumnKind| match k {
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } | ColumnKind::Time { fsp } => {
            Some(*fsp)
        }
        _ => None,
    };
    Some((f(a)?, f(b)?))
}
