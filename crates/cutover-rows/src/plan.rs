//! Table plans: which columns are compared, by which key, and the SQL each side runs over them.
//!
//! The checksum each side computes (the row string, the three row-hash forms, why they are
//! 64 bits and what they cost) is explained in [`crate::row_hash`], which renders the columns.

use cutover_core::schema::Table;
use cutover_core::sql::quote_ident;
use cutover_core::value::ColumnKind;

use crate::filter::ColumnFilter;
pub use crate::pair::{ColumnPair, Side};
use crate::row_hash::{is_single_byte, render, row_view, text_charset, text_view, SEPARATOR};
pub use crate::row_hash::{RowHash, TIDB_PUSHED_DOWN};

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
    /// How row hashes are computed; both sides must use the same.
    pub hash: RowHash,
    /// Per side (source, target): whether `crc32_reversed` may build the row string once and
    /// keep it in a user variable for its second half (about 10 % less server CPU). Only
    /// MariaDB: it evaluates an expression's user variables left to right, which
    /// `crc32_pair` relies on too, where MySQL leaves that order undefined, and TiDB would
    /// evaluate the checksum in the TiDB server instead of pushing it down to TiKV. Both
    /// forms hash the same bytes.
    pub row_variable: (bool, bool),
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
                hash: RowHash::Crc32Reversed,
                row_variable: (false, false),
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
            hash: RowHash::Crc32Reversed,
            row_variable: (false, false),
        })
    }

    /// The first checksum view of column `i` on one side (for reports).
    pub fn checksum_view(&self, i: usize, side: Side) -> String {
        row_view(&self.columns[i], side).0
    }

    /// The SQL expression that spreads rows over buckets by their key (all columns for a
    /// keyless table): the same on both sides for the same key, whatever the collations.
    pub fn bucket_expr(&self, side: Side, buckets: u64) -> String {
        let views: Vec<String> = self
            .key_columns
            .iter()
            .map(|i| render(&self.columns[*i], side))
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

    /// The row string `R` of one side (see the module docs): a binary string that decodes
    /// to exactly one row, the same on both sides for the same data.
    pub fn row_string(&self, side: Side) -> String {
        let mut fields = Vec::new();
        let mut lengths = Vec::new();
        for p in &self.columns {
            let (view, bytes) = row_view(p, side);
            if bytes {
                lengths.push(format!("LENGTH({view})"));
            }
            fields.push(view);
        }
        // One field that may hold the separator can be told from the others without its
        // length: every other field is delimited.
        lengths.pop();
        fields.extend(lengths);
        let nullable: Vec<String> = self
            .columns
            .iter()
            .filter(|p| p.source.nullable || p.target.nullable)
            .map(|p| format!("ISNULL({})", quote_ident(side.column(p).name.as_str())))
            .collect();
        if !nullable.is_empty() {
            fields.push(format!("CONCAT({})", nullable.join(", ")));
        }
        // MariaDB keeps a plain CHAR(255) as the byte 0xFF in a text result, and a text
        // result costs less than a binary one: for `crc32_pair` (MariaDB on both sides, no
        // REVERSE) where all text enters in one character set, nothing is converted per row.
        // `crc32_reversed` needs `REVERSE` to reverse bytes, which it does on a text result
        // only in a single-byte character set: there (all text latin1, say) the plain
        // separator gives the same bytes on every server (MySQL and TiDB make the result
        // binary, MariaDB latin1: either way each field's own bytes) for about 8 % less.
        let plain = match self.hash {
            RowHash::Crc32Pair => self.one_text_charset(side),
            RowHash::Crc32Reversed => self.one_single_byte_text_charset(side),
            RowHash::Crc32 => false,
        };
        let separator = if plain { "CHAR(255)" } else { SEPARATOR };
        format!("CONCAT_WS({separator}, {})", fields.join(", "))
    }

    /// The character set each text field of this side's row string enters in: its own
    /// where it enters as its bytes, utf8mb4 where it is converted.
    fn text_charsets(&self, side: Side) -> Vec<(String, bool)> {
        self.columns
            .iter()
            .filter(|p| {
                matches!(
                    side.column(p).kind,
                    ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json
                )
            })
            .map(|p| {
                let converted = !text_view(p, side, String::new()).0.is_empty();
                if converted {
                    ("utf8mb4".to_string(), true)
                } else {
                    (text_charset(side.column(p)), false)
                }
            })
            .collect()
    }

    /// Whether this side's row string has text, all of it entering as its bytes in one
    /// single-byte character set (latin1, cp1250, ...), where characters are bytes.
    fn one_single_byte_text_charset(&self, side: Side) -> bool {
        let sets = self.text_charsets(side);
        !sets.is_empty()
            && sets
                .iter()
                .all(|(set, converted)| !converted && is_single_byte(set) && *set == sets[0].0)
    }

    /// Whether every text field of this side's row string enters in the same character set
    /// (so that a text separator makes the server convert none of them).
    fn one_text_charset(&self, side: Side) -> bool {
        let sets = self.text_charsets(side);
        sets.iter().all(|(set, _)| *set == sets[0].0)
    }

    /// Whether this side's checksum may keep the row string in a user variable.
    fn variable(&self, side: Side) -> bool {
        match side {
            Side::Source => self.row_variable.0,
            Side::Target => self.row_variable.1,
        }
    }

    /// The checksum's select list for one side: `COUNT(*), SUM(…), 0` (the one sum holds the
    /// row hashes; the last column is kept for the engine's three-column reads).
    pub fn checksum_select(&self, side: Side) -> String {
        let row = self.row_string(side);
        match self.hash {
            RowHash::Crc32Pair => format!(
                "COUNT(*), COALESCE(SUM(CRC32(@cutover_row := {row}) \
                 + (CRC32C(@cutover_row) << 32)), 0), 0"
            ),
            RowHash::Crc32Reversed if self.variable(side) => format!(
                "COUNT(*), COALESCE(SUM(CRC32(@cutover_row := {row}) \
                 + (CRC32(REVERSE(@cutover_row)) << 32)), 0), 0"
            ),
            RowHash::Crc32Reversed => format!(
                "COUNT(*), COALESCE(SUM(CRC32({row}) + (CRC32(REVERSE({row})) << 32)), 0), 0"
            ),
            RowHash::Crc32 => format!("COUNT(*), COALESCE(SUM(CRC32({row})), 0), 0"),
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
    /// same character set on both sides is paged by ranges instead: cutover-diff's
    /// `engine/text_ranges.rs`.)
    HashBuckets,
    /// No usable key: rows are compared as a multiset (row → count), bucketed by a hash of
    /// the whole row.
    Multiset,
}

impl Side {
    /// This side's table of a plan.
    pub fn table<'a>(&self, plan: &'a Plan) -> &'a Table {
        match self {
            Side::Source => &plan.source,
            Side::Target => &plan.target,
        }
    }
}
