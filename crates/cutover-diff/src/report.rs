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

/// A schema difference an `[accept]` entry expected, and that entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptedSchemaDiff {
    #[serde(flatten)]
    pub diff: SchemaDiff,
    pub accepted_by: String,
}

impl SchemaDiff {
    /// The rule `[accept]` entries name: `schema.` and what differs (`schema.collation`).
    pub fn rule(&self) -> String {
        format!("schema.{}", self.what)
    }

    /// The object in a table: `db.table.column`, `db.table.index name` or `db.table`.
    pub fn object_in(&self, table: &str) -> String {
        if self.object == "table" {
            table.to_string()
        } else {
            format!("{table}.{}", self.object)
        }
    }

    /// The change, `source -> target` (`-` for a side without it).
    pub fn change(&self) -> String {
        format!(
            "{} -> {}",
            self.source.as_deref().unwrap_or("-"),
            self.target.as_deref().unwrap_or("-")
        )
    }

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
    /// Schema differences `[accept] diff` / `--accept` expected: reported, no longer in
    /// `schema`, and a column on one side only accepted no longer makes the table different.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<AcceptedSchemaDiff>,
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
            accepted: Vec::new(),
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
    /// Schema differences `[accept]` / `--accept` expected.
    #[serde(default)]
    pub accepted: u64,
    pub elapsed_ms: u64,
}

/// Tables (or columns) differing for one cause: "column `ts` differs in 400 tables".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffGroup {
    /// `error`, `rows.missing_in_target`, `rows.extra_in_target`, `rows.changed` (the values
    /// of one column), or `schema.` and what differs (`schema.collation`).
    pub kind: String,
    /// What the group's members share: `column ts differs`, `utf8mb4_general_ci ->
    /// utf8mb4_bin`, an error message.
    pub cause: String,
    /// The column, for `rows.changed` and column-level schema differences on one side only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub tables: u64,
    /// Rows (`rows.*`) or objects (`schema.*`) in the group; for `rows.changed`, the
    /// differences listed (`rows_at_least`: some tables listed only `--max-diffs`).
    pub count: u64,
    #[serde(default)]
    pub count_at_least: bool,
    /// The first tables (`schema.*`: objects), at most [`GROUP_EXAMPLES`].
    pub examples: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
}

/// Examples kept per group.
pub const GROUP_EXAMPLES: usize = 3;

impl DiffGroup {
    /// One line: "column `ts` differs in 400 tables (400 rows)".
    pub fn describe(&self) -> String {
        let tables = plural(self.tables, "table");
        let rows = |n: u64, at_least: bool| {
            format!(
                "{}{}",
                if at_least { "at least " } else { "" },
                plural(n, "row")
            )
        };
        let mut s = match self.kind.as_str() {
            "error" => format!("error in {tables}: {}", self.cause),
            "rows.changed" => format!(
                "{} in {tables} ({})",
                self.cause,
                rows(self.count, self.count_at_least)
            ),
            "rows.missing_in_target" | "rows.extra_in_target" => {
                format!("{} in {tables} ({})", self.cause, rows(self.count, false))
            }
            _ => format!(
                "{} {}: {} in {tables}",
                self.kind,
                self.cause,
                plural(self.count, "object")
            ),
        };
        if let Some(a) = &self.accepted_by {
            s.push_str(&format!(" (accepted: {a})"));
        }
        s
    }
}

fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The differences of every table grouped by cause, the most telling first: errors, then row
/// differences (rows missing or extra, the columns whose values differ), the cause found in
/// most tables first, then schema differences (a column on one side only first), then
/// accepted ones.
pub fn group(tables: &[TableReport]) -> Vec<DiffGroup> {
    use std::collections::{BTreeSet, HashMap};
    // (rank, kind, cause, accepted_by) → group.
    type Key = (u8, String, String, Option<String>);
    let mut groups: Vec<(Key, DiffGroup, BTreeSet<usize>)> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut add = |key: Key,
                   column: Option<String>,
                   table: usize,
                   example: String,
                   count: u64,
                   at_least: bool| {
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((
                key.clone(),
                DiffGroup {
                    kind: key.1.clone(),
                    cause: key.2.clone(),
                    column,
                    tables: 0,
                    count: 0,
                    count_at_least: false,
                    examples: Vec::new(),
                    accepted_by: key.3.clone(),
                },
                BTreeSet::new(),
            ));
            groups.len() - 1
        });
        let (_, g, seen) = &mut groups[at];
        g.count += count;
        g.count_at_least |= at_least;
        if seen.insert(table) {
            g.tables += 1;
        }
        if g.examples.len() < GROUP_EXAMPLES && !g.examples.contains(&example) {
            g.examples.push(example);
        }
    };
    for (i, t) in tables.iter().enumerate() {
        if let Some(e) = &t.error {
            add(
                (0, "error".into(), e.clone(), None),
                None,
                i,
                t.source.clone(),
                1,
                false,
            );
        }
        for (n, kind, cause) in [
            (
                t.missing_in_target,
                "rows.missing_in_target",
                "rows missing in target",
            ),
            (
                t.extra_in_target,
                "rows.extra_in_target",
                "rows extra in target",
            ),
        ] {
            if n > 0 {
                add(
                    (1, kind.into(), cause.into(), None),
                    None,
                    i,
                    t.source.clone(),
                    n,
                    false,
                );
            }
        }
        // The columns of the differences listed: a table keeps at most --max-diffs, so the
        // counts are lower bounds when it kept fewer than it found.
        let mut per_column: std::collections::BTreeMap<&str, u64> = Default::default();
        for d in &t.diffs {
            if d.kind == DiffKind::Mismatched {
                for c in &d.columns {
                    *per_column.entry(c.column.as_str()).or_default() += 1;
                }
            }
        }
        let listed = t.diffs.len() as u64;
        for (column, n) in per_column {
            add(
                (
                    1,
                    "rows.changed".into(),
                    format!("column `{column}` differs"),
                    None,
                ),
                Some(column.to_string()),
                i,
                t.source.clone(),
                n,
                t.diffs_truncated || listed < t.differences(),
            );
        }
        let schema = t.schema.iter().map(|s| (s, None)).chain(
            t.accepted
                .iter()
                .map(|a| (&a.diff, Some(a.accepted_by.clone()))),
        );
        for (s, by) in schema {
            let rank = match (&by, s.loses_data()) {
                (Some(_), _) => 4,
                (None, true) => 2,
                (None, false) => 3,
            };
            // A column on one side only is named; other changes group across columns.
            let (cause, column) = if s.what == "missing_in_target" || s.what == "extra_in_target" {
                (
                    format!("{} {}", s.object, s.change()),
                    (s.object != "table" && !s.object.starts_with("index "))
                        .then(|| s.object.clone()),
                )
            } else {
                (s.change(), None)
            };
            add(
                (rank, s.rule(), cause, by),
                column,
                i,
                s.object_in(&t.source),
                1,
                false,
            );
        }
    }
    let mut out: Vec<(Key, DiffGroup, BTreeSet<usize>)> = groups;
    out.sort_by(|(ka, a, _), (kb, b, _)| {
        let kind = |k: &str| match k {
            "rows.missing_in_target" => 0,
            "rows.extra_in_target" => 1,
            "rows.changed" => 2,
            _ => 3,
        };
        ka.0.cmp(&kb.0)
            .then_with(|| b.tables.cmp(&a.tables))
            .then_with(|| kind(&ka.1).cmp(&kind(&kb.1)))
            .then_with(|| ka.1.cmp(&kb.1))
            .then_with(|| ka.2.cmp(&kb.2))
    });
    out.into_iter().map(|(_, g, _)| g).collect()
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
    /// The differences of all tables grouped by cause ([`group`]), next to the full list in
    /// `tables`.
    #[serde(default)]
    pub groups: Vec<DiffGroup>,
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
            s.accepted += t.accepted.len() as u64;
        }
        self.summary = s;
        self.groups = group(&self.tables);
    }

    /// Moves the schema differences an entry of `accept` matches (the first that does) to
    /// each table's `accepted`, settles the tables again and sums up. Row differences are
    /// never accepted: their counts are the verdict.
    pub fn accept(&mut self, accept: &[cutover_core::config::Accept]) {
        if accept.is_empty() {
            return;
        }
        for t in &mut self.tables {
            let table = t.source.clone();
            let before = t.schema.len();
            let mut kept = Vec::with_capacity(before);
            for s in std::mem::take(&mut t.schema) {
                let object = s.object_in(&table);
                match accept
                    .iter()
                    .find(|a| a.matches(&s.rule(), Some(object.as_str()), &s.change()))
                {
                    Some(a) => t.accepted.push(AcceptedSchemaDiff {
                        diff: s,
                        accepted_by: a.text.clone(),
                    }),
                    None => kept.push(s),
                }
            }
            let changed = kept.len() != before;
            t.schema = kept;
            if changed {
                t.settle();
            }
        }
        let elapsed = self.summary.elapsed_ms;
        self.summarize(elapsed);
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
