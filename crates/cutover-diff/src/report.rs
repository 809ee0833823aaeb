//! The diff report: what `--format json` prints and what the human summary is made from.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Equal,
    Different,
    Error,
    Skipped,
}

pub use cutover_rows::row_diff::{ColumnDiff, DiffKind, KeyRecord, RowDiff};

/// A difference in table definitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemaDiff {
    /// The column (or `table` for table-level facts).
    pub object: String,
    /// What differs: `missing_in_target`, `extra_in_target`, `type`, `nullable`, …
    pub what: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

impl SchemaDiff {
    /// A column on one side only: its data is not on the other side. Other definition
    /// differences (type, collation, indexes, …) are reported, and the rows decide the
    /// verdict.
    pub fn loses_data(&self) -> bool {
        !self.object.starts_with("index ")
            && (self.what == "missing_in_target" || self.what == "extra_in_target")
    }
}

/// How a column whose text form differs between engines enters the checksum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rendering {
    pub column: String,
    /// The expression the checksum hashes on the source.
    pub checksum: String,
    /// `identical`: both servers render it alike (same engine). `rows`: the engines may
    /// render equal values differently; a chunk that differs only by that is settled from the
    /// rows, compared by value.
    pub settled_by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// `db.table`; for shards merged into one target table, their names joined by ` + `.
    pub source: String,
    pub target: String,
    /// The source tables when several shards are merged into the target table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    pub status: Status,
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub mismatched: u64,
    /// At most `--max-diffs` rows; the counts above are always complete.
    pub diffs: Vec<RowDiff>,
    pub diffs_truncated: bool,
    pub schema: Vec<SchemaDiff>,
    /// Columns of types that engines render differently (FLOAT, DOUBLE, JSON): how the
    /// checksum treats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renderings: Vec<Rendering>,
    pub error: Option<String>,
    pub rows_compared: u64,
    pub chunks: u64,
    /// Rows read from the servers to compare them one by one (both sides together): what the
    /// checksums could not settle.
    pub rows_fetched: u64,
    /// How rows were compared: `checksum` (pushed down, rows fetched only under a bad
    /// checksum) or `rows` (every row downloaded).
    pub method: String,
    /// The row hash of the checksums (`crc32_pair`, `crc32_reversed` or `crc32`); none when no
    /// checksum ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_hash: Option<crate::plan::RowHash>,
    /// The `--where` condition the rows were filtered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `--recheck`: how the differences found by the pass fared when compared again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<RecheckSummary>,
    /// `--recheck`: differences of the pass that were gone when compared again (rows in
    /// flight during a live migration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub converged: Vec<RowDiff>,
    pub elapsed_ms: u64,
    /// The typed keys of the differences (kept for `--recheck`; not part of the report).
    #[serde(skip)]
    pub keys: Vec<KeyRecord>,
}

/// What `--recheck` did for one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecheckSummary {
    pub rounds: u32,
    pub delay_ms: u64,
    /// Differences of the pass that were re-compared.
    pub rechecked: u64,
    pub converged: u64,
    pub persisting: u64,
    /// More differences than could be kept: the rest were not re-compared and still count.
    pub partial: bool,
}

impl TableReport {
    pub fn new(source: String, target: String) -> TableReport {
        TableReport {
            source,
            target,
            sources: Vec::new(),
            status: Status::Equal,
            missing_in_target: 0,
            extra_in_target: 0,
            mismatched: 0,
            diffs: Vec::new(),
            diffs_truncated: false,
            schema: Vec::new(),
            renderings: Vec::new(),
            error: None,
            rows_compared: 0,
            chunks: 0,
            rows_fetched: 0,
            method: "checksum".to_string(),
            row_hash: None,
            filter: None,
            recheck: None,
            converged: Vec::new(),
            elapsed_ms: 0,
            keys: Vec::new(),
        }
    }

    /// A report for a target table and the source table (or merged shards) it is compared
    /// with.
    pub fn for_sources(
        sources: &[cutover_core::schema::TableName],
        target: &cutover_core::schema::TableName,
    ) -> TableReport {
        let names: Vec<String> = sources.iter().map(|t| t.to_string()).collect();
        let mut r = TableReport::new(names.join(" + "), target.to_string());
        if names.len() > 1 {
            r.sources = names;
        }
        r
    }

    /// The source tables this report covers (one, or the merged shards).
    pub fn source_tables(&self) -> Vec<String> {
        if self.sources.is_empty() {
            vec![self.source.clone()]
        } else {
            self.sources.clone()
        }
    }

    /// Takes the counts and kept differences of a tally.
    pub fn set_tally(&mut self, t: cutover_rows::Tally) {
        self.missing_in_target = t.missing_in_target;
        self.extra_in_target = t.extra_in_target;
        self.mismatched = t.mismatched;
        self.diffs = t.diffs;
        self.diffs_truncated = t.diffs_truncated;
    }

    pub fn differences(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.mismatched
    }

    /// Sets the status from what was found.
    pub fn settle(&mut self) {
        self.status = if self.error.is_some() {
            Status::Error
        } else if self.status == Status::Skipped {
            Status::Skipped
        } else if self.differences() > 0 || self.schema.iter().any(SchemaDiff::loses_data) {
            Status::Different
        } else {
            Status::Equal
        };
    }
}

/// The snapshots the two sides were read from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshots {
    pub source: cutover_core::SnapshotInfo,
    pub target: cutover_core::SnapshotInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    pub source: Connection,
    pub target: Connection,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tables: u64,
    pub equal: u64,
    pub different: u64,
    pub errors: u64,
    pub skipped: u64,
    pub rows_compared: u64,
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub mismatched: u64,
    pub elapsed_ms: u64,
}

/// What a side's connections looked like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// `VERSION()` of the server.
    pub server: String,
    /// The TLS cipher, `null` when the connections are not encrypted.
    pub tls: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: String,
    pub source: String,
    pub target: String,
    pub connections: Connections,
    pub tables: Vec<TableReport>,
    pub summary: Summary,
    /// True when the run was interrupted (Ctrl-C) before every table was compared.
    pub interrupted: bool,
    /// How each side's reads were made consistent (`--consistency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Snapshots>,
    /// Throttling (`--max-load`, `--max-lag`, `--rate`): pauses and time spent waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<serde_json::Value>,
}

impl Report {
    pub fn summarize(&mut self, elapsed_ms: u64) {
        let mut s = Summary {
            elapsed_ms,
            ..Summary::default()
        };
        for t in &self.tables {
            s.tables += 1;
            match t.status {
                Status::Equal => s.equal += 1,
                Status::Different => s.different += 1,
                Status::Error => s.errors += 1,
                Status::Skipped => s.skipped += 1,
            }
            s.rows_compared += t.rows_compared;
            s.missing_in_target += t.missing_in_target;
            s.extra_in_target += t.extra_in_target;
            s.mismatched += t.mismatched;
        }
        self.summary = s;
    }

    /// The `diff(1)`-like exit code: 0 equal, 1 differences, 2 could not compare, 130
    /// interrupted.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.summary.errors > 0 {
            2
        } else if self.summary.different > 0 {
            1
        } else {
            0
        }
    }
}
