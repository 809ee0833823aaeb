//! Table plans: which columns are compared, by which key, with which checksum expression.
//!
//! ## The checksum
//!
//! For a range of rows, each server computes
//!
//! ```sql
//! SELECT COUNT(*),
//!        SUM(CRC32(CONCAT_WS('#', a1, a2, …, nulls))),
//!        SUM(CRC32(CONCAT_WS('#', b1, b2, …, nulls))),
//!        MIN(key), MAX(key)
//! FROM t WHERE key >= ? AND key <= ?
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
//! Why this shape:
//! - **64 bits per row, really independent.** CRC32 is linear: a same-length change `d` goes
//!   unnoticed exactly when the CRC polynomial divides `d`, *wherever* `d` sits in the string.
//!   So two CRC32s over two layouts of the same bytes (say the fields forward and backward)
//!   miss the same changes and add no bits. The second hash therefore sees every value
//!   through `HEX`, which is not linear: a change that one CRC misses is, independently,
//!   missed by the other with probability 2^-32.
//! - **Separator-safe without escaping.** Strings enter as their CRC32 (a number), and no other
//!   rendering can contain `#`, so `('a#b','c')` and `('a','b#c')` give different fields.
//! - **NULL-safe.** `CONCAT_WS` skips NULLs; the `nulls` field (`CONCAT(ISNULL(a), …)` over the
//!   NULL-able columns) says which were skipped, so NULL and `''` differ.
//! - **`SUM`, not `BIT_XOR`**: XOR cancels a pair of duplicate rows; a sum (with the count) does
//!   not. Sums of 32-bit values are exact DECIMALs on every server.
//! - **Cheap.** Long strings are read by CRC32 and HEX without being concatenated into one long
//!   row string; the strings that are concatenated are short numbers.
//! - Only functions MySQL 5.7/8.0, Aurora, MariaDB and TiDB all document: `COUNT`, `SUM`,
//!   `CRC32`, `HEX`, `CONCAT_WS`, `CONCAT`, `ISNULL`, `CAST`, `CONVERT … USING`.
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
        })
    }

    /// The first checksum view of column `i` on one side (for reports).
    pub fn checksum_view(&self, i: usize, side: Side) -> String {
        render(&self.columns[i], side).0
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

    /// The checksum's select list for one side: `COUNT(*), SUM(…), SUM(…)`.
    pub fn checksum_select(&self, side: Side) -> String {
        let views: Vec<(String, String)> = self.columns.iter().map(|p| render(p, side)).collect();
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

/// How a table's rows are cut into comparable pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A single integer key: ranges of key values (cheap range scans, resumable, adaptive).
    IntegerRanges,
    /// Any other key (strings, several columns): buckets by a hash of the key's exact
    /// value, so the collations of the two sides cannot make them disagree on which rows a
    /// piece holds. Each pass is one linear scan per side.
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

fn fsp_pair(a: &ColumnKind, b: &ColumnKind) -> Option<(u32, u32)> {
    let f = |k: &ColumnKind| match k {
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } | ColumnKind::Time { fsp } => {
            Some(*fsp)
        }
        _ => None,
    };
    Some((f(a)?, f(b)?))
}
