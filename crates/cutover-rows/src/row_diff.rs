//! A row that differs between the two sides, as reports and checkpoints carry it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    MissingInTarget,
    ExtraInTarget,
    Mismatched,
}

/// One column that differs in a mismatched row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: serde_json::Value,
    pub target: serde_json::Value,
}

/// One row that differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowDiff {
    pub kind: DiffKind,
    /// The key columns and their values.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// For `mismatched`: the columns that differ, with both values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
    /// For a keyless table: how many copies of this row are missing (or extra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// A difference's key as typed values (every column of a keyless row).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub kind: DiffKind,
    pub key: Vec<cutover_core::value::Value>,
}

impl AsRef<[cutover_core::value::Value]> for KeyRecord {
    fn as_ref(&self) -> &[cutover_core::value::Value] {
        &self.key
    }
}
