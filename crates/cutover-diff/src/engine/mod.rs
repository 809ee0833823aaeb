//! The table differ: chunk → checksum on both sides → equal, or drill down → rows → compare.
//!
//! Read this top to bottom:
//!
//! 1. [`Diff::table`] describes the table on both sides and makes a [`Plan`].
//! 2. It asks both sides for the smallest and largest key and starts `threads` workers that
//!    take ranges from a shared [`Splitter`] (this file: the job, the worker loop and the
//!    checkpoint).
//! 3. A worker checksums its range on both servers at once (`Ctx::check_range`, `ranges.rs`), as the
//!    checksums of its `FIRST_PARTS` quarters in one statement per side. Equal counts and
//!    sums: the range is equal, and its source rows count as compared.
//! 4. Otherwise each differing quarter is split into `fanout` parts by key value (all parts'
//!    checksums come from one `UNION ALL` of range aggregates per side), and every part whose
//!    checksum differs is split again, until a part holds at most `row_threshold` rows on
//!    either side. Every bad part is followed, not only one, so several differences in one
//!    chunk are all found.
//! 5. Such a part is read from both servers in key order, streamed, and merge-compared
//!    (`Ctx::compare_rows`, over `merge.rs`) with the value model, which alone decides what
//!    differs ([`cutover_rows::Judge`]).
//!
//! A table with one CHAR/VARCHAR key is paged by ranges of that key on each side's own
//! index (`Ctx::text_range_diff` in `text_ranges.rs` explains why that is exact across
//! collations); other keys, and keyless tables, by hash buckets (`Ctx::bucket_diff` in
//! `buckets.rs`). Every strategy ends in the one merge (`merge.rs`) or, for buckets, in the
//! same matching by exact key.
//!
//! Memory is bounded by the number of workers times the row threshold (rows are streamed,
//! not collected) plus the kept diff samples (`max_diffs`); it does not grow with the table.

mod buckets;
mod merge;
mod ranges;
mod text_ranges;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_core::schema::{describe, TableName};
use cutover_core::sql::quote_ident;
use cutover_core::throttle::Throttle;
use cutover_core::value::{ColumnKind, CompareOptions, Value};
use cutover_core::{Db, DbError, Flavor};

use crate::checkpoint::{Checkpoint, ChunkRecord};
use crate::chunk::{KeyRange, Splitter};
use crate::fix::FixSink;
use crate::plan::{Mode, Plan, RowHash, Side};
use crate::report::{DiffKind, Rendering, RowDiff, SchemaDiff, Status, TableReport};
use crate::schema_diff::{self, ColumnFilter};
use cutover_rows::fetch::{decode_row, read_error, RowsError};
use cutover_rows::{Judge, Tally};

/// Options of a diff run.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Workers per table; each keeps one connection per side busy.
    pub threads: usize,
    /// The time one chunk's checksum should take; chunk widths adapt toward it.
    pub chunk_time: Duration,
    /// Rows of the first chunk, before any timing is known.
    pub first_chunk_rows: u64,
    /// A differing part with at most this many rows on each side is compared row by row.
    pub row_threshold: u64,
    /// How many parts a differing range is split into.
    pub fanout: usize,
    /// Row differences kept per table in the report (the counts are always complete).
    pub max_diffs: usize,
    pub compare: CompareOptions,
    /// Which columns take part (`--columns`, `--ignore-columns`).
    pub columns: ColumnFilter,
    /// Compare only the definitions (`--schema-only`): no rows are read.
    pub schema_only: bool,
    /// A hash-bucketed table with more differing rows than this is compared in one ordered
    /// pass per side instead of bucket by bucket (each batch of buckets is one more scan).
    pub ordered_above_rows: u64,
    /// The row hash to use; `None` picks the best both servers have.
    pub row_hash: Option<RowHash>,
    /// Keep the typed keys of up to this many differences per table (for `--recheck`).
    pub keep_keys: usize,
    /// Compare only rows matching a SQL condition: for every table (`--where`) …
    pub where_all: Option<String>,
    /// … or per source table `db.table` (config `[diff.where]`), which takes precedence.
    pub where_table: std::collections::BTreeMap<String, String>,
    /// Pauses work while a server is loaded or a replica lags, and limits the row rate.
    pub throttle: Option<ThrottleHandle>,
}

impl DiffOptions {
    /// Adds to a checkpoint's fingerprint every option that changes a comparison's result,
    /// named as the user gives it, whether it came from a flag or from the config file. Every
    /// field is named here (the destructuring is exhaustive): a new option does not compile
    /// until it says whether it changes the result.
    pub fn fingerprint(&self, f: &mut crate::checkpoint::Fingerprint) {
        let DiffOptions {
            // How fast and in which pieces: the same rows are compared the same way.
            threads: _,
            chunk_time: _,
            first_chunk_rows: _,
            row_threshold: _,
            fanout: _,
            ordered_above_rows: _,
            throttle: _,
            // Typed keys for `--recheck`, which runs after the pass and is not journaled.
            keep_keys: _,
            max_diffs,
            compare,
            columns,
            schema_only,
            row_hash,
            where_all,
            where_table,
        } = self;
        let CompareOptions { float_tolerance } = compare;
        let ColumnFilter { only, ignore } = columns;
        f.add("--max-diffs", serde_json::json!(max_diffs));
        f.add("--float-tolerance", serde_json::json!(float_tolerance));
        f.add("--columns", serde_json::json!(only));
        f.add("--ignore-columns", serde_json::json!(ignore));
        f.add("--schema-only", serde_json::json!(schema_only));
        f.add("--row-hash", serde_json::json!(row_hash));
        f.add("--where", serde_json::json!(where_all));
        f.add("[diff.where]", serde_json::json!(where_table));
    }
}

/// A shared [`Throttle`] (cloned into every worker).
#[derive(Clone)]
pub struct ThrottleHandle(pub Arc<Throttle>);

impl std::fmt::Debug for ThrottleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threads: 4,
            chunk_time: Duration::from_millis(100),
            first_chunk_rows: 20_000,
            row_threshold: 2_000,
            fanout: 64,
            max_diffs: 1_000,
            compare: CompareOptions::default(),
            columns: ColumnFilter::default(),
            schema_only: false,
            ordered_above_rows: 4 * buckets::BUCKET_BATCH_ROWS,
            row_hash: None,
            keep_keys: 0,
            where_all: None,
            where_table: Default::default(),
            throttle: None,
        }
    }
}

/// Progress events. The engine never prints; the binary turns these into a progress bar.
pub trait Progress: Send + Sync {
    fn table_started(&self, _source: &TableName, _estimated_rows: u64) {}
    fn rows_done(&self, _source: &TableName, _rows: u64) {}
    fn table_finished(&self, _report: &TableReport) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, thiserror::Error)]
enum TableError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Rows(RowsError),
    #[error("table not found on the source")]
    SourceMissing,
    #[error("table missing on the target")]
    TargetMissing,
    #[error("shard {0} not found on the source")]
    ShardMissing(TableName),
    #[error(
        "shard {shard} does not have the columns of {source_name} (names, types and \
         order must match to merge shards)"
    )]
    ShardColumns {
        shard: TableName,
        source_name: TableName,
    },
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error("writing the checkpoint: {0}")]
    Checkpoint(std::io::Error),
    #[error("checksum query returned no row")]
    NoChecksumRow,
    #[error("unexpected key value `{0}` from the server")]
    KeyValue(String),
    #[error("unexpected checksum `{0}` from the server")]
    ChecksumValue(String),
    #[error("part checksum out of range")]
    PartOutOfRange,
    #[error("a part checksum is missing")]
    PartMissing,
    #[error("not a text key")]
    NotTextKey,
}

impl From<RowsError> for TableError {
    fn from(e: RowsError) -> TableError {
        match e {
            RowsError::Db(e) => TableError::Db(e),
            other => TableError::Rows(other),
        }
    }
}

tokio::task_local! {
    /// What one chunk found, for its checkpoint record (set per worker future).
    static CHUNK: std::cell::RefCell<Tally>;
}

/// What the workers of one table find, merged under a lock.
struct Findings {
    report: TableReport,
    tally: Tally,
    max_diffs: usize,
    /// Typed keys kept at most (for `--recheck`).
    keep_keys: usize,
}

impl Findings {
    fn add(&mut self, diff: RowDiff, key: Vec<Value>) {
        let kept = self.tally.diffs.len() < self.max_diffs;
        let _ = CHUNK.try_with(|c| {
            let mut c = c.borrow_mut();
            // A chunk's record keeps the differences the table kept.
            c.count(diff.kind, diff.count.unwrap_or(1));
            if kept {
                c.diffs.push(diff.clone());
            }
        });
        if self.report.keys.len() < self.keep_keys {
            self.report.keys.push(crate::report::KeyRecord {
                kind: diff.kind,
                key,
            });
        }
        self.tally.add(diff, self.max_diffs);
    }

    /// The table's report, with the differences found so far.
    fn report(&self) -> TableReport {
        let mut report = self.report.clone();
        report.set_tally(self.tally.clone());
        report
    }
}

/// What a comparison works with: both servers, the options, and where its progress
/// events, fix SQL and checkpoint journal go. [`Diff::new`] sends them nowhere; set the
/// others by name (`Diff { fix: Some(&sink), ..Diff::new(&s, &t, &opts) }`).
#[derive(Clone, Copy)]
pub struct Diff<'a> {
    pub source: &'a Db,
    pub target: &'a Db,
    pub opts: &'a DiffOptions,
    pub progress: &'a dyn Progress,
    /// Where fix SQL goes, when asked for.
    pub fix: Option<&'a dyn FixSink>,
    /// Finished chunks are journaled to it, and those already in it are skipped.
    pub checkpoint: Option<&'a Checkpoint>,
}

impl<'a> Diff<'a> {
    pub fn new(source: &'a Db, target: &'a Db, opts: &'a DiffOptions) -> Diff<'a> {
        Diff {
            source,
            target,
            opts,
            progress: &NoProgress,
            fix: None,
            checkpoint: None,
        }
    }

    /// Compares one target table with its source table, or with the rows of several source
    /// tables (shards merged into it) together. Never fails: a problem becomes the table's
    /// `error` status.
    pub async fn table(self, source_names: &[TableName], target_name: &TableName) -> TableReport {
        let Diff {
            source,
            target,
            opts,
            progress,
            fix,
            checkpoint,
        } = self;
        let started = Instant::now();
        let mut report = TableReport::for_sources(source_names, target_name);
        let Some(source_name) = source_names.first() else {
            report.error = Some("no source table".into());
            report.settle();
            return report;
        };
        // The schema section is filled in first, so that it is there even when the rows cannot
        // be compared.
        let mut schema = Vec::new();
        let job = Job {
            source,
            target,
            source_name,
            shards: if source_names.len() > 1 {
                source_names
            } else {
                &[]
            },
            target_name,
            checkpoint,
        };
        match diff_table_inner(&job, opts, progress, fix, &mut schema).await {
            Ok(r) => report = r,
            Err(e) => {
                report.error = Some(match e {
                    TableError::Db(DbError::Interrupted) => "interrupted".to_string(),
                    other => other.to_string(),
                });
            }
        }
        report.schema = schema;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        report.settle();
        if opts.schema_only && report.status == Status::Equal && !report.schema.is_empty() {
            report.status = Status::Different;
        }
        if report.status != Status::Error {
            report.diffs.sort_by(|a, b| {
                let ka = serde_json::Value::Object(a.key.clone()).to_string();
                let kb = serde_json::Value::Object(b.key.clone()).to_string();
                key_order(&a.key, &b.key).then(ka.cmp(&kb))
            });
        }
        progress.table_finished(&report);
        report
    }
}

fn key_order(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> std::cmp::Ordering {
    let num = |m: &serde_json::Map<String, serde_json::Value>| {
        m.values().next().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        })
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// The two tables one [`Diff::table`] compares.
struct Job<'a> {
    source: &'a Db,
    target: &'a Db,
    source_name: &'a TableName,
    /// Every source table when several shards are merged into the target table (the first
    /// is `source_name`); empty otherwise.
    shards: &'a [TableName],
    target_name: &'a TableName,
    checkpoint: Option<&'a Checkpoint>,
}

async fn diff_table_inner(
    job: &Job<'_>,
    opts: &DiffOptions,
    progress: &dyn Progress,
    fix: Option<&dyn FixSink>,
    schema: &mut Vec<SchemaDiff>,
) -> Result<TableReport, TableError> {
    let Job {
        source,
        target,
        source_name,
        shards,
        target_name,
        checkpoint,
    } = *job;
    if let Some(t) = &opts.throttle {
        t.0.wait(0).await?;
    }
    let (s, t) = tokio::join!(describe(source, source_name), describe(target, target_name));
    let mut s = s?.ok_or(TableError::SourceMissing)?;
    let t = t?.ok_or(TableError::TargetMissing)?;
    // Merged shards are read as one table: each must have the first one's columns.
    for other in shards.iter().skip(1) {
        let o = describe(source, other)
            .await?
            .ok_or_else(|| TableError::ShardMissing(other.clone()))?;
        let cols = |d: &cutover_core::schema::Table| {
            d.columns
                .iter()
                .map(|c| {
                    (
                        c.name.to_ascii_lowercase(),
                        c.column_type.to_ascii_lowercase(),
                        c.collation.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if cols(&o) != cols(&s) {
            return Err(TableError::ShardColumns {
                shard: other.clone(),
                source_name: source_name.clone(),
            });
        }
        s.estimated_rows += o.estimated_rows;
    }
    *schema = schema_diff::compare(&s, &t, &opts.columns);
    let mut report = TableReport::for_sources(
        if shards.is_empty() {
            std::slice::from_ref(source_name)
        } else {
            shards
        },
        target_name,
    );
    if opts.schema_only {
        report.method = "schema".to_string();
        return Ok(report);
    }
    let estimated = s.estimated_rows.max(t.estimated_rows);
    let mut plan = Plan::new(s, t, &opts.columns)?;
    plan.hash = opts
        .row_hash
        .unwrap_or_else(|| RowHash::for_servers(source.version(), target.version()));
    report.row_hash = Some(plan.hash);
    plan.row_variable = (
        source.flavor() == Flavor::MariaDb,
        target.flavor() == Flavor::MariaDb,
    );
    let same_engine = source.flavor() == target.flavor();
    report.renderings = plan
        .columns
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            [&p.source.kind, &p.target.kind]
                .iter()
                .any(|k| matches!(k, ColumnKind::Float | ColumnKind::Double | ColumnKind::Json))
        })
        .map(|(i, p)| Rendering {
            column: p.name().to_string(),
            checksum: plan.checksum_view(i, Side::Source),
            settled_by: if same_engine && p.source.kind == p.target.kind {
                "identical".to_string()
            } else {
                "rows".to_string()
            },
        })
        .collect();
    progress.table_started(source_name, estimated);
    let filter = opts
        .where_table
        .get(&source_name.to_string())
        .or(opts.where_all.as_ref())
        .cloned();
    if let Some(f) = &filter {
        report.filter = Some(f.clone());
    }

    let ctx = Arc::new(Ctx {
        source: source.clone(),
        target: target.clone(),
        source_sql: TableSql::new(&plan, Side::Source, filter.as_deref(), shards),
        target_sql: TableSql::new(&plan, Side::Target, filter.as_deref(), &[]),
        plan,
        target_name: target_name.clone(),
        fix,
        opts: opts.clone(),
        findings: Mutex::new(Findings {
            report,
            tally: Tally::default(),
            max_diffs: opts.max_diffs,
            keep_keys: opts.keep_keys,
        }),
    });

    if filter.is_none() && shards.len() <= 1 && ctx.text_key_charset().is_some() {
        ctx.text_range_diff(progress, source_name).await?;
        let report = lock(&ctx.findings).report();
        return Ok(report);
    }
    if ctx.plan.mode != Mode::IntegerRanges {
        if ctx.plan.mode == Mode::Multiset {
            lock(&ctx.findings).report.method = "multiset".to_string();
        }
        ctx.bucket_diff(estimated, progress, source_name).await?;
        let report = lock(&ctx.findings).report();
        return Ok(report);
    }
    let (sb, tb) = tokio::join!(ctx.bounds(Side::Source), ctx.bounds(Side::Target));
    let bounds = match (sb?, tb?) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
    };
    let mut splitter = Splitter::new(bounds, opts.first_chunk_rows, opts.chunk_time);
    let table_key = lock(&ctx.findings).report.source.clone();
    if let Some(cp) = checkpoint {
        // Chunks an earlier run finished: their findings count, their ranges are skipped.
        let done = cp.finished_chunks(&table_key);
        let mut f = lock(&ctx.findings);
        for c in done {
            f.tally.merge(&c.tally(), opts.max_diffs);
            f.report.rows_compared += c.rows;
            f.report.chunks += 1;
        }
        drop(f);
        let ranges: Vec<KeyRange> = done
            .iter()
            .map(|c| KeyRange { lo: c.lo, hi: c.hi })
            .collect();
        splitter.skip(&ranges);
        let rows: u64 = done.iter().map(|c| c.rows).sum();
        if rows > 0 {
            progress.rows_done(source_name, rows);
        }
    }
    let splitter = Arc::new(Mutex::new(splitter));

    // Workers run on this task's runtime; the first error stops the others.
    let failed: Arc<Mutex<Option<TableError>>> = Arc::new(Mutex::new(None));
    let mut workers = Vec::new();
    for _ in 0..opts.threads.max(1) {
        let ctx = ctx.clone();
        let splitter = splitter.clone();
        let failed = failed.clone();
        let table_key = table_key.clone();
        workers.push(async move {
            loop {
                if lock(&failed).is_some() {
                    return;
                }
                let Some(range) = lock(&splitter).next_range() else {
                    return;
                };
                // Pauses while a limit is exceeded; the rows are paid for after the chunk.
                if let Some(t) = &ctx.opts.throttle {
                    if let Err(e) = t.0.wait(0).await {
                        let mut slot = lock(&failed);
                        if slot.is_none() {
                            *slot = Some(e.into());
                        }
                        return;
                    }
                }
                let started = Instant::now();
                let checked = CHUNK
                    .scope(Default::default(), async {
                        let rows = ctx.check_range(range).await?;
                        Ok::<_, TableError>((rows, CHUNK.with(|c| c.take())))
                    })
                    .await;
                let checked = checked.and_then(|(rows, found)| {
                    if let Some(cp) = checkpoint {
                        cp.chunk_done(
                            &table_key,
                            ChunkRecord {
                                lo: range.lo,
                                hi: range.hi,
                                rows,
                                missing_in_target: found.missing_in_target,
                                extra_in_target: found.extra_in_target,
                                mismatched: found.mismatched,
                                diffs: found.diffs,
                                rows_fetched: 0,
                            },
                        )
                        .map_err(TableError::Checkpoint)?;
                    }
                    Ok(rows)
                });
                let checked = match (checked, &ctx.opts.throttle) {
                    (Ok(rows), Some(t)) => t.0.wait(rows).await.map(|_| rows).map_err(Into::into),
                    (other, _) => other,
                };
                match checked {
                    Ok(rows) => {
                        lock(&splitter).feedback(&range, rows, started.elapsed());
                        {
                            let mut f = lock(&ctx.findings);
                            f.report.rows_compared += rows;
                            f.report.chunks += 1;
                        }
                        progress.rows_done(source_name, rows);
                    }
                    Err(e) => {
                        let mut slot = lock(&failed);
                        if slot.is_none() {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            }
        });
    }
    futures_util::future::join_all(workers).await;
    if let Some(e) = lock(&failed).take() {
        return Err(e);
    }
    let report = lock(&ctx.findings).report();
    Ok(report)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SQL texts of one side, built once per table.
struct TableSql {
    /// What a query reads `FROM`: one item per table of this side (several when source
    /// shards are merged into one target table).
    tables: Vec<String>,
    key: String,
    checksum_select: String,
    row_select: String,
}

impl TableSql {
    /// `filter` (`--where`) makes each table a derived table of the matching rows; servers
    /// merge it into each query, so key ranges still use the index. `names` are the tables of
    /// this side: the plan's own table, or every shard merged into the target table (all with
    /// the plan's columns).
    fn new(plan: &Plan, side: Side, filter: Option<&str>, names: &[TableName]) -> TableSql {
        let cols: Vec<String> = plan
            .columns
            .iter()
            .map(|p| quote_ident(&side.column(p).name))
            .collect();
        let own = std::slice::from_ref(&side.table(plan).name);
        let names = if names.is_empty() { own } else { names };
        TableSql {
            tables: names
                .iter()
                .map(|n| match filter {
                    Some(f) => {
                        format!("(SELECT * FROM {} WHERE {f}) AS `cutover_rows`", n.quoted())
                    }
                    None => n.quoted(),
                })
                .collect(),
            key: quote_ident(&side.column(plan.key_pair()).name),
            checksum_select: plan.checksum_select(side),
            row_select: cols.join(", "),
        }
    }

    /// `FROM … [WHERE w]` for a stream of rows (`row_select` columns) of every table of
    /// this side. Merged shards become a `UNION ALL` with the condition inside each branch,
    /// so each shard is read through its own index whatever the optimizer does with
    /// derived tables.
    fn rows_from(&self, w: Option<&str>) -> String {
        let cond = w.map(|w| format!(" WHERE {w}")).unwrap_or_default();
        match self.tables.as_slice() {
            [one] => format!("FROM {one}{cond}"),
            many => format!(
                "FROM ({}) AS `cutover_union`",
                many.iter()
                    .map(|t| format!("SELECT {} FROM {t}{cond}", self.row_select))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            ),
        }
    }
}

/// One side's checksum of a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Checksum {
    count: u64,
    sum1: u128,
    sum2: u128,
    min: Option<i128>,
    max: Option<i128>,
}

impl Checksum {
    /// Adds another table's checksum of the same range (merged shards). The row hash sums
    /// are additive, so the total equals the checksum of the tables' rows together.
    fn add(&mut self, other: &Checksum) {
        self.count += other.count;
        self.sum1 += other.sum1;
        self.sum2 += other.sum2;
        self.min = min_opt(self.min, other.min);
        self.max = max_opt(self.max, other.max);
    }

    fn same_rows(&self, other: &Checksum) -> bool {
        self.count == other.count && self.sum1 == other.sum1 && self.sum2 == other.sum2
    }
}

struct Ctx<'a> {
    source: Db,
    target: Db,
    plan: Plan,
    target_name: TableName,
    /// Where fix SQL goes, when asked for.
    fix: Option<&'a dyn FixSink>,
    source_sql: TableSql,
    target_sql: TableSql,
    opts: DiffOptions,
    findings: Mutex<Findings>,
}

impl Ctx<'_> {
    fn side(&self, side: Side) -> (&Db, &TableSql) {
        match side {
            Side::Source => (&self.source, &self.source_sql),
            Side::Target => (&self.target, &self.target_sql),
        }
    }

    /// Runs an aggregate query once per table of a side (`text` gets the `FROM` item) and
    /// returns every table's rows. Merged shards are aggregated one by one, each through its
    /// own index, and the caller adds the results up: counts and sums are additive.
    async fn per_table<T: mysql_async::prelude::FromRow + Send + 'static>(
        &self,
        side: Side,
        text: impl Fn(&str) -> String,
    ) -> Result<Vec<T>, TableError> {
        let (db, sql) = self.side(side);
        let mut out = Vec::new();
        for t in &sql.tables {
            out.extend(db.query::<T>(&text(t)).await?);
        }
        Ok(out)
    }

    /// One side's checksum of the rows matching `w`.
    async fn checksum_where(&self, side: Side, w: &str) -> Result<Checksum, TableError> {
        let (_, sql) = self.side(side);
        type Row = (u64, String, String);
        let rows: Vec<Row> = self
            .per_table(side, |t| {
                format!("SELECT {sel} FROM {t} WHERE {w}", sel = sql.checksum_select)
            })
            .await?;
        if rows.len() != sql.tables.len() {
            return Err(TableError::NoChecksumRow);
        }
        let mut sum = Checksum::default();
        for (count, s1, s2) in rows {
            sum.add(&Checksum {
                count,
                sum1: parse_u128(&s1)?,
                sum2: parse_u128(&s2)?,
                min: None,
                max: None,
            });
        }
        Ok(sum)
    }

    /// A keyless row that is missing (or extra) `n` times: one entry with its count.
    fn record_counted(&self, kind: DiffKind, row: &[Value], n: u64) {
        if let Some(diff) = self.judge().counted(kind, row, n) {
            lock(&self.findings).add(diff, self.plan.key_of(row));
        }
    }

    async fn next_row(
        &self,
        res: &mut mysql_async::QueryResult<'_, '_, mysql_async::BinaryProtocol>,
        side: Side,
        db: &Db,
        fetched: &mut u64,
    ) -> Result<Option<Vec<Value>>, TableError> {
        let row = db
            .until_cancelled(res.next())
            .await?
            .map_err(|e| read_error(db, e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        *fetched += 1;
        Ok(Some(decode_row(&self.plan, side, db.role(), row)?))
    }

    /// The judge of this table's rows, sending fix SQL when asked for.
    fn judge(&self) -> Judge<'_> {
        Judge::new(&self.plan, &self.opts.compare).with_fix(self.fix, &self.target_name)
    }

    /// Two rows with the same key: a mismatch unless every cell is the same.
    fn compare_pair(&self, x: &[Value], y: &[Value]) {
        if let Some(diff) = self.judge().rows(Some(x), Some(y)) {
            lock(&self.findings).add(diff, self.plan.key_of(x));
        }
    }

    /// A row without a partner on the other side.
    fn record(&self, kind: DiffKind, row: &[Value]) {
        if let Some(diff) = self.judge().unmatched(kind, row) {
            lock(&self.findings).add(diff, self.plan.key_of(row));
        }
    }
}

fn min_opt(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

fn max_opt(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

fn parse_i128(s: &str) -> Result<i128, TableError> {
    s.trim()
        .parse()
        .map_err(|_| TableError::KeyValue(s.to_string()))
}

fn parse_u128(s: &str) -> Result<u128, TableError> {
    // A SUM over DECIMAL may print a scale (`123.0`) on some servers.
    let s = s.trim();
    let int = s.split('.').next().unwrap_or(s);
    int.parse()
        .map_err(|_| TableError::ChecksumValue(s.to_string()))
}
