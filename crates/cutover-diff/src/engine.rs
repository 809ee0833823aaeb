//! The table differ: chunk → checksum on both sides → equal, or drill down → rows → compare.
//!
//! Read this top to bottom:
//!
//! 1. [`diff_table`] describes the table on both sides and makes a [`Plan`].
//! 2. It asks both sides for the smallest and largest key and starts `threads` workers that
//!    take ranges from a shared [`Splitter`].
//! 3. A worker checksums its range on both servers at once (`Ctx::check_range`), as the
//!    checksums of its `FIRST_PARTS` quarters in one statement per side. Equal counts and
//!    sums: the range is equal, and its source rows count as compared.
//! 4. Otherwise each differing quarter is split into `fanout` parts by key value (all parts'
//!    checksums come from one `UNION ALL` of range aggregates per side), and every part whose
//!    checksum differs is split again, until a part holds at most `row_threshold` rows on
//!    either side. Every bad part is followed, not only one, so several differences in one
//!    chunk are all found.
//! 5. Such a part is read from both servers in key order, streamed, and merge-compared
//!    (`Ctx::compare_rows`) with the value model, which alone decides what differs.
//!
//! A table with one CHAR/VARCHAR key is paged by ranges of that key on each side's own
//! index (`Ctx::text_range_diff` explains why that is exact across collations); other
//! keys, and keyless tables, by hash buckets (`Ctx::bucket_diff`).
//!
//! Memory is bounded by the number of workers times the row threshold (rows are streamed,
//! not collected) plus the kept diff samples (`max_diffs`); it does not grow with the table.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_core::schema::{describe, TableName};
use cutover_core::sql::quote_ident;
use cutover_core::throttle::Throttle;
use cutover_core::value::{ColumnKind, CompareOptions, Value};
use cutover_core::{Db, DbError};
use mysql_async::prelude::Queryable;

use crate::checkpoint::{Checkpoint, ChunkRecord};
use crate::chunk::{KeyRange, Splitter};
use crate::fix::FixSink;
use crate::plan::{Mode, Plan, RowHash, Side};
use crate::report::{DiffKind, Rendering, RowDiff, SchemaDiff, Status, TableReport};
use crate::schema_diff::{self, ColumnFilter};
use cutover_rows::fetch::{decode_row, fetch_by_key, read_error, RowsError};
use cutover_rows::{Judge, Tally};

/// Parts a chunk's checksum is computed in (see [`Ctx::check_range`]).
const FIRST_PARTS: usize = 4;

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
            ordered_above_rows: 4 * BUCKET_BATCH_ROWS,
            row_hash: None,
            keep_keys: 0,
            where_all: None,
            where_table: Default::default(),
            throttle: None,
        }
    }
}

/// A range of a text key: `[lo, hi)`, bounds as hex of the key's bytes, `None` open.
type TextRange = (Option<String>, Option<String>);

/// Keys looked up on the other side in one statement.
const CANDIDATE_BATCH: usize = 500;

/// Rows of differing buckets read and matched at a time (memory stays bounded by this).
const BUCKET_BATCH_ROWS: u64 = 100_000;

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
    #[error("{0}")]
    Other(String),
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

/// Compares one target table with its source table, or with the rows of several source
/// tables (shards merged into it) together. Never fails: a problem becomes the table's
/// `error` status.
pub async fn diff_table(
    source: &Db,
    target: &Db,
    source_names: &[TableName],
    target_name: &TableName,
    opts: &DiffOptions,
    progress: &dyn Progress,
    fix: Option<&dyn FixSink>,
) -> TableReport {
    diff_table_resumable(
        source,
        target,
        source_names,
        target_name,
        opts,
        progress,
        fix,
        None,
    )
    .await
}

/// [`diff_table`], journaling finished chunks to (and skipping those already in) a
/// checkpoint.
#[allow(clippy::too_many_arguments)]
pub async fn diff_table_resumable(
    source: &Db,
    target: &Db,
    source_names: &[TableName],
    target_name: &TableName,
    opts: &DiffOptions,
    progress: &dyn Progress,
    fix: Option<&dyn FixSink>,
    checkpoint: Option<&Checkpoint>,
) -> TableReport {
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

/// The two tables one `diff_table` compares.
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
    let mut s = s?.ok_or_else(|| TableError::Other("table not found on the source".into()))?;
    let t = t?.ok_or_else(|| TableError::Other("table missing on the target".into()))?;
    // Merged shards are read as one table: each must have the first one's columns.
    for other in shards.iter().skip(1) {
        let o = describe(source, other)
            .await?
            .ok_or_else(|| TableError::Other(format!("shard {other} not found on the source")))?;
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
            return Err(TableError::Other(format!(
                "shard {other} does not have the columns of {source_name} (names, types and \
                 order must match to merge shards)"
            )));
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
    let mut plan = Plan::new(s, t, &opts.columns).map_err(|e| TableError::Other(e.to_string()))?;
    plan.hash = opts
        .row_hash
        .unwrap_or_else(|| RowHash::for_servers(source.version(), target.version()));
    report.row_hash = Some(plan.hash);
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
                        .map_err(|e| TableError::Other(format!("writing the checkpoint: {e}")))?;
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

    async fn bounds(&self, side: Side) -> Result<Option<(i128, i128)>, TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(Option<String>, Option<String>)> = self
            .per_table(side, |t| {
                format!(
                    "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {t}",
                    k = sql.key
                )
            })
            .await?;
        let mut out: Option<(i128, i128)> = None;
        for row in rows {
            if let (Some(a), Some(b)) = row {
                let (a, b) = (parse_i128(&a)?, parse_i128(&b)?);
                out = Some(match out {
                    Some((lo, hi)) => (lo.min(a), hi.max(b)),
                    None => (a, b),
                });
            }
        }
        Ok(out)
    }

    /// One side's checksum of a range. The smallest and largest key are not part of it (the
    /// `MIN`/`MAX` aggregates would cost a comparison per row); [`Ctx::range_bounds`] reads
    /// them from the index when a range differs.
    async fn checksum(&self, side: Side, range: KeyRange) -> Result<Checksum, TableError> {
        let (_, sql) = self.side(side);
        self.checksum_where(side, &range.predicate(&sql.key)).await
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
            return Err(TableError::Other("checksum query returned no row".into()));
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

    /// The smallest and largest key of a range on one side (two index dives).
    async fn range_bounds(
        &self,
        side: Side,
        range: KeyRange,
    ) -> Result<(Option<i128>, Option<i128>), TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(Option<String>, Option<String>)> = self
            .per_table(side, |t| {
                format!(
                    "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {t} WHERE {w}",
                    k = sql.key,
                    w = range.predicate(&sql.key),
                )
            })
            .await?;
        let mut out = Checksum::default();
        for (min, max) in rows {
            out.add(&Checksum {
                min: min.as_deref().map(parse_i128).transpose()?,
                max: max.as_deref().map(parse_i128).transpose()?,
                ..Checksum::default()
            });
        }
        Ok((out.min, out.max))
    }

    async fn checksums(&self, range: KeyRange) -> Result<(Checksum, Checksum), TableError> {
        let (s, t) = tokio::join!(
            self.checksum(Side::Source, range),
            self.checksum(Side::Target, range)
        );
        Ok((s?, t?))
    }

    /// Checks one range; returns the number of source rows it covers.
    ///
    /// The range's checksum comes as the checksums of its first `FIRST_PARTS` parts (one
    /// statement per side, the same rows read once): a difference is then already narrowed
    /// to a part, and the drill-down re-reads that part instead of the whole range.
    async fn check_range(&self, range: KeyRange) -> Result<u64, TableError> {
        let parts = match (range.lo, range.hi) {
            (Some(lo), Some(hi)) => KeyRange::split(lo, hi, FIRST_PARTS),
            // The open ends (rows beyond the bounds seen at the start) stay one part.
            _ => vec![range],
        };
        let (s, t) = if parts.len() == 1 {
            let (s, t) = self.checksums(range).await?;
            (vec![s], vec![t])
        } else {
            let (s, t) = tokio::join!(
                self.part_checksums(Side::Source, &parts, false),
                self.part_checksums(Side::Target, &parts, false)
            );
            (s?, t?)
        };
        let count = s.iter().map(|c| c.count).sum();
        let mut stack = Vec::new();
        for (r, (mut s, mut t)) in parts.into_iter().zip(s.into_iter().zip(t)) {
            if s.same_rows(&t) {
                continue;
            }
            let (sb, tb) = tokio::join!(
                self.range_bounds(Side::Source, r),
                self.range_bounds(Side::Target, r)
            );
            (s.min, s.max) = sb?;
            (t.min, t.max) = tb?;
            stack.push((r, s, t));
        }
        while let Some((r, s, t)) = stack.pop() {
            let lo = min_opt(s.min, t.min);
            let hi = max_opt(s.max, t.max);
            let single_key = lo.is_some() && lo == hi;
            if s.count.max(t.count) <= self.opts.row_threshold || single_key {
                self.compare_rows(r).await?;
                continue;
            }
            let (Some(lo), Some(hi)) = (lo, hi) else {
                self.compare_rows(r).await?;
                continue;
            };
            stack.extend(self.differing_parts(lo, hi).await?);
        }
        Ok(count)
    }

    /// Cuts `[lo, hi]` into `fanout` parts by key value and returns the parts whose checksums
    /// differ. Each side computes all parts' checksums in one statement (a `UNION ALL` of
    /// range aggregates: each part is an index range scan, and no temporary table is needed,
    /// which a `GROUP BY` over the range would build), so a level of the drill-down reads the
    /// range once, not once per part.
    async fn differing_parts(
        &self,
        lo: i128,
        hi: i128,
    ) -> Result<Vec<(KeyRange, Checksum, Checksum)>, TableError> {
        // A long checksum text (a wide table) gets fewer parts, so that the statement stays
        // well under any `max_allowed_packet`.
        let text_len = self.source_sql.checksum_select.len() + 200;
        let parts = self.opts.fanout.clamp(2, (512 * 1024 / text_len).max(2));
        let ranges = KeyRange::split(lo, hi, parts);
        let (s, t) = tokio::join!(
            self.part_checksums(Side::Source, &ranges, true),
            self.part_checksums(Side::Target, &ranges, true)
        );
        let (s, t) = (s?, t?);
        Ok(ranges
            .into_iter()
            .zip(s.into_iter().zip(t))
            .filter(|(_, (ps, pt))| !ps.same_rows(pt))
            .map(|(r, (ps, pt))| (r, ps, pt))
            .collect())
    }

    /// The checksums of `ranges` on one side, in their order, from one statement; with the
    /// smallest and largest key of each when `bounds` (a comparison per row: the first level
    /// leaves them out and reads them from the index for the parts that differ).
    async fn part_checksums(
        &self,
        side: Side,
        ranges: &[KeyRange],
        bounds: bool,
    ) -> Result<Vec<Checksum>, TableError> {
        let (_, sql) = self.side(side);
        let minmax = if bounds {
            format!(
                "CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR)",
                k = sql.key
            )
        } else {
            "NULL, NULL".to_string()
        };
        let text = |t: &str| {
            ranges
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    format!(
                        "SELECT {i}, {sel}, {minmax} FROM {t} WHERE {w}",
                        sel = sql.checksum_select,
                        w = r.predicate(&sql.key),
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        };
        type Row = (usize, u64, String, String, Option<String>, Option<String>);
        let rows: Vec<Row> = self.per_table(side, text).await?;
        let mut out: Vec<Option<Checksum>> = vec![None; ranges.len()];
        for (i, count, s1, s2, min, max) in rows {
            let slot = out
                .get_mut(i)
                .ok_or_else(|| TableError::Other("part checksum out of range".into()))?;
            slot.get_or_insert_with(Checksum::default).add(&Checksum {
                count,
                sum1: parse_u128(&s1)?,
                sum2: parse_u128(&s2)?,
                min: min.as_deref().map(parse_i128).transpose()?,
                max: max.as_deref().map(parse_i128).transpose()?,
            });
        }
        out.into_iter()
            .map(|c| c.ok_or_else(|| TableError::Other("a part checksum is missing".into())))
            .collect()
    }

    /// Compares a table without an integer key: checksums per hash bucket of the key (one
    /// scan per side), then the rows of the buckets that differ, matched by their exact key
    /// (or, keyless, counted as a multiset).
    async fn bucket_diff(
        &self,
        estimated: u64,
        progress: &dyn Progress,
        source_name: &TableName,
    ) -> Result<(), TableError> {
        // About a thousand rows a bucket: a differing bucket costs little to read.
        let buckets = (estimated / 1000).clamp(16, 1 << 20);
        if let Some(t) = &self.opts.throttle {
            t.0.wait(0).await?;
        }
        let (s, t) = tokio::join!(
            self.bucket_sums(Side::Source, buckets),
            self.bucket_sums(Side::Target, buckets)
        );
        let (s, t) = (s?, t?);
        let rows: u64 = s.values().map(|c| c.count).sum();
        {
            let mut f = lock(&self.findings);
            f.report.rows_compared += rows;
            f.report.chunks += 1;
        }
        progress.rows_done(source_name, rows);
        if let Some(t) = &self.opts.throttle {
            t.0.wait(rows).await?;
        }
        let mut ids: Vec<u64> = s.keys().chain(t.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let differing: u64 = ids
            .iter()
            .filter(|b| !matches!((s.get(b), t.get(b)), (Some(x), Some(y)) if x.same_rows(y)))
            .map(|b| {
                let n = |m: &std::collections::HashMap<u64, Checksum>| {
                    m.get(b).map(|c| c.count).unwrap_or(0)
                };
                n(&s).max(n(&t))
            })
            .sum();
        // Each batch below is one more scan of the table: past a few batches, one ordered
        // pass per side is cheaper, and its cost does not grow with the differences.
        // JSON columns in the key (a keyless table) would be sorted by the server by their
        // stored text, which the client cannot reproduce from parsed JSON: those tables stay
        // on the order-free bucket matching.
        let orderable = !self.plan.key_columns.iter().any(|i| {
            let p = &self.plan.columns[*i];
            p.source.kind == ColumnKind::Json || p.target.kind == ColumnKind::Json
        });
        if orderable && differing > self.opts.ordered_above_rows {
            return self.compare_ordered().await;
        }
        let mut batch: Vec<u64> = Vec::new();
        let mut batch_rows = 0u64;
        for b in ids {
            let (x, y) = (s.get(&b), t.get(&b));
            let equal = matches!((x, y), (Some(x), Some(y)) if x.same_rows(y));
            if equal {
                continue;
            }
            let size = x
                .map(|c| c.count)
                .unwrap_or(0)
                .max(y.map(|c| c.count).unwrap_or(0));
            // Bounded batches keep memory flat however many buckets differ.
            if !batch.is_empty() && (batch_rows + size > BUCKET_BATCH_ROWS || batch.len() >= 500) {
                self.compare_buckets(buckets, &batch).await?;
                batch.clear();
                batch_rows = 0;
            }
            batch.push(b);
            batch_rows += size;
        }
        if !batch.is_empty() {
            self.compare_buckets(buckets, &batch).await?;
        }
        Ok(())
    }

    async fn bucket_sums(
        &self,
        side: Side,
        buckets: u64,
    ) -> Result<std::collections::HashMap<u64, Checksum>, TableError> {
        let (_, sql) = self.side(side);
        let rows: Vec<(u64, u64, String, String)> = self
            .per_table(side, |t| {
                format!(
                    // `ORDER BY NULL`: the groups need no sorting (MariaDB and MySQL 5.7 would
                    // sort them to honour the old implicit GROUP BY order).
                    "SELECT {b}, {sel} FROM {t} GROUP BY 1 ORDER BY NULL",
                    b = self.plan.bucket_expr(side, buckets),
                    sel = sql.checksum_select,
                )
            })
            .await?;
        let mut out: std::collections::HashMap<u64, Checksum> =
            std::collections::HashMap::with_capacity(rows.len());
        for (b, count, s1, s2) in rows {
            out.entry(b).or_default().add(&Checksum {
                count,
                sum1: parse_u128(&s1)?,
                sum2: parse_u128(&s2)?,
                min: None,
                max: None,
            });
        }
        Ok(out)
    }

    /// Reads the rows of some buckets from both sides at once and matches them by exact key
    /// as they arrive: a row waits only until its partner from the other side comes.
    async fn compare_buckets(&self, buckets: u64, ids: &[u64]) -> Result<(), TableError> {
        type Pending = std::collections::HashMap<Vec<u8>, Vec<Vec<Value>>>;
        let list: Vec<String> = ids.iter().map(|b| b.to_string()).collect();
        let q = |side: Side| {
            let (_, sql) = self.side(side);
            format!(
                "SELECT {cols} {from}",
                cols = sql.row_select,
                from = sql.rows_from(Some(&format!(
                    "{b} IN ({list})",
                    b = self.plan.bucket_expr(side, buckets),
                    list = list.join(", ")
                ))),
            )
        };
        let multiset = self.plan.mode == Mode::Multiset;
        let (sdb, tdb) = (&self.source, &self.target);
        let (mut sc, mut tc) = (sdb.conn().await?, tdb.conn().await?);
        let (sq, tq) = (q(Side::Source), q(Side::Target));
        let (sres, tres) = tokio::join!(
            sdb.until_cancelled(sc.raw().exec_iter(sq.as_str(), ())),
            tdb.until_cancelled(tc.raw().exec_iter(tq.as_str(), ()))
        );
        let mut sres = sres?.map_err(|e| read_error(sdb, e))?;
        let mut tres = tres?.map_err(|e| read_error(tdb, e))?;
        let (stx, mut srx) = tokio::sync::mpsc::channel::<Vec<Value>>(512);
        let (ttx, mut trx) = tokio::sync::mpsc::channel::<Vec<Value>>(512);
        let (mut sf, mut tf) = (0u64, 0u64);
        let produce_s = async {
            while let Some(row) = self.next_row(&mut sres, Side::Source, sdb, &mut sf).await? {
                if stx.send(row).await.is_err() {
                    break;
                }
            }
            drop(stx);
            Ok::<(), TableError>(())
        };
        let produce_t = async {
            while let Some(row) = self.next_row(&mut tres, Side::Target, tdb, &mut tf).await? {
                if ttx.send(row).await.is_err() {
                    break;
                }
            }
            drop(ttx);
            Ok::<(), TableError>(())
        };
        let matcher = async {
            let (mut pend_s, mut pend_t) = (Pending::new(), Pending::new());
            let (mut s_open, mut t_open) = (true, true);
            let take = |pending: &mut Pending, key: &[u8]| {
                let rows = pending.get_mut(key)?;
                let row = rows.pop();
                if rows.is_empty() {
                    pending.remove(key);
                }
                row
            };
            while s_open || t_open {
                tokio::select! {
                    r = srx.recv(), if s_open => match r {
                        None => s_open = false,
                        Some(row) => {
                            let key = self.plan.exact_key(&row);
                            match take(&mut pend_t, &key) {
                                Some(other) if !multiset => self.compare_pair(&row, &other),
                                Some(_) => {}
                                None => pend_s.entry(key).or_default().push(row),
                            }
                        }
                    },
                    r = trx.recv(), if t_open => match r {
                        None => t_open = false,
                        Some(row) => {
                            let key = self.plan.exact_key(&row);
                            match take(&mut pend_s, &key) {
                                Some(other) if !multiset => self.compare_pair(&other, &row),
                                Some(_) => {}
                                None => pend_t.entry(key).or_default().push(row),
                            }
                        }
                    },
                }
            }
            (pend_s, pend_t)
        };
        let (ps, pt, (pend_s, pend_t)) = tokio::join!(produce_s, produce_t, matcher);
        ps?;
        pt?;
        for (kind, pending) in [
            (DiffKind::MissingInTarget, pend_s),
            (DiffKind::ExtraInTarget, pend_t),
        ] {
            for (_, rows) in pending {
                if multiset {
                    if let Some(row) = rows.first() {
                        self.record_counted(kind, row, rows.len() as u64);
                    }
                } else {
                    for row in &rows {
                        self.record(kind, row);
                    }
                }
            }
        }
        lock(&self.findings).report.rows_fetched += sf + tf;
        Ok(())
    }

    /// A keyless row that is missing (or extra) `n` times: one entry with its count.
    fn record_counted(&self, kind: DiffKind, row: &[Value], n: u64) {
        if let Some(diff) = self.judge().counted(kind, row, n) {
            lock(&self.findings).add(diff, self.plan.key_of(row));
        }
    }

    /// Streams the range from both sides in key order and merge-compares the rows.
    async fn compare_rows(&self, range: KeyRange) -> Result<(), TableError> {
        let (_, ssql) = self.side(Side::Source);
        let (_, tsql) = self.side(Side::Target);
        let q = |sql: &TableSql| {
            format!(
                "SELECT {cols} {from} ORDER BY {k}",
                cols = sql.row_select,
                from = sql.rows_from(Some(&range.predicate(&sql.key))),
                k = sql.key
            )
        };
        self.merge_ordered(&q(ssql), &q(tsql)).await
    }

    /// Streams two result sets ordered by the key (binary order for text) and merges them:
    /// rows with equal keys are compared, the others are missing or extra. In a keyless
    /// table the key is the whole row, so equal keys consume one copy from each side, and a
    /// run of identical unmatched rows is reported once with its count.
    async fn merge_ordered(&self, sq: &str, tq: &str) -> Result<(), TableError> {
        self.merge_ordered_as(sq, tq, false).await
    }

    /// [`Ctx::merge_ordered`]; with `candidates`, a row without a partner is not yet a
    /// difference: it is looked up by its exact key on the other side first
    /// ([`Ctx::resolve_candidates`]), because the two sides' ranges may hold different rows
    /// when their collations order keys differently. The lookups run after both streams are
    /// closed, so a worker never holds two connections of one side (the snapshot has
    /// `threads + 2`).
    async fn merge_ordered_as(
        &self,
        sq: &str,
        tq: &str,
        candidates: bool,
    ) -> Result<(), TableError> {
        let (sdb, tdb) = (&self.source, &self.target);
        let (mut sc, mut tc) = (sdb.conn().await?, tdb.conn().await?);
        let cancel = sdb.cancel_token().clone();
        // The binary protocol: FLOAT and DOUBLE arrive as their exact bits.
        let (sres, tres) = tokio::join!(
            sdb.until_cancelled(sc.raw().exec_iter(sq, ())),
            tdb.until_cancelled(tc.raw().exec_iter(tq, ()))
        );
        let mut sres = sres?.map_err(|e| read_error(sdb, e))?;
        let mut tres = tres?.map_err(|e| read_error(tdb, e))?;
        let mut fetched = 0u64;
        let multiset = self.plan.mode == Mode::Multiset;
        // A run of identical unmatched rows in a keyless table: (kind, row, count).
        let mut run: Option<(DiffKind, Vec<Value>, u64)> = None;
        let mut unmatched = |this: &Self, kind: DiffKind, row: Vec<Value>| {
            if !multiset {
                this.record(kind, &row);
                return;
            }
            match &mut run {
                Some((k, r, n)) if *k == kind && this.key_order(r, &row).is_eq() => *n += 1,
                _ => {
                    if let Some((k, r, n)) = run.replace((kind, row, 1)) {
                        this.record_counted(k, &r, n);
                    }
                }
            }
        };
        let mut cands: Vec<(DiffKind, Vec<Value>)> = Vec::new();
        let mut a = self
            .next_row(&mut sres, Side::Source, sdb, &mut fetched)
            .await?;
        let mut b = self
            .next_row(&mut tres, Side::Target, tdb, &mut fetched)
            .await?;
        loop {
            if cancel.is_cancelled() {
                return Err(DbError::Interrupted.into());
            }
            let order = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => self.key_order(x, y),
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some(x) = a.take() {
                        if candidates {
                            cands.push((DiffKind::MissingInTarget, x));
                        } else {
                            unmatched(self, DiffKind::MissingInTarget, x);
                        }
                    }
                    a = self
                        .next_row(&mut sres, Side::Source, sdb, &mut fetched)
                        .await?;
                }
                std::cmp::Ordering::Greater => {
                    if let Some(y) = b.take() {
                        if candidates {
                            cands.push((DiffKind::ExtraInTarget, y));
                        } else {
                            unmatched(self, DiffKind::ExtraInTarget, y);
                        }
                    }
                    b = self
                        .next_row(&mut tres, Side::Target, tdb, &mut fetched)
                        .await?;
                }
                std::cmp::Ordering::Equal => {
                    if let (Some(x), Some(y), false) = (&a, &b, multiset) {
                        self.compare_pair(x, y);
                    }
                    a = self
                        .next_row(&mut sres, Side::Source, sdb, &mut fetched)
                        .await?;
                    b = self
                        .next_row(&mut tres, Side::Target, tdb, &mut fetched)
                        .await?;
                }
            }
        }
        if let Some((k, r, n)) = run {
            self.record_counted(k, &r, n);
        }
        lock(&self.findings).report.rows_fetched += fetched;
        // Both connections go back before the lookups take one of each side.
        drop((sres, tres));
        drop((sc, tc));
        if !cands.is_empty() {
            self.resolve_candidates(cands).await?;
        }
        Ok(())
    }

    /// The order of two rows by their key columns, as the servers' `ORDER BY` returns them.
    fn key_order(&self, x: &[Value], y: &[Value]) -> std::cmp::Ordering {
        for i in &self.plan.key_columns {
            let o = x[*i].key_cmp(&y[*i]);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    /// Compares a whole table in one ordered pass per side: for hash-bucketed tables where
    /// so many buckets differ that reading them bucket by bucket would scan the table again
    /// and again. Each server sorts once (by the key's bytes, whatever its collation); the
    /// client merges two streams in constant memory.
    async fn compare_ordered(&self) -> Result<(), TableError> {
        let q = |side: Side| {
            let (_, sql) = self.side(side);
            format!(
                "SELECT {cols} {from} ORDER BY {o}",
                cols = sql.row_select,
                from = sql.rows_from(None),
                o = self.binary_key_order(side)
            )
        };
        self.merge_ordered(&q(Side::Source), &q(Side::Target)).await
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

    /// The character set of a single `CHAR`/`VARCHAR` key stored in the same character set
    /// on both sides: such a key is paged by ranges ([`Ctx::text_range_diff`]). `None` for
    /// every other key.
    fn text_key_charset(&self) -> Option<String> {
        if self.plan.mode != Mode::HashBuckets || self.plan.key_columns.len() != 1 {
            return None;
        }
        let p = &self.plan.columns[self.plan.key_columns[0]];
        let paged = |c: &cutover_core::schema::Column| {
            matches!(c.data_type.as_str(), "char" | "varchar") && c.collation.is_some()
        };
        match (&p.source.kind, &p.target.kind) {
            (ColumnKind::Text { charset: a }, ColumnKind::Text { charset: b })
                if a.eq_ignore_ascii_case(b) && paged(&p.source) && paged(&p.target) =>
            {
                let cs = a.to_ascii_lowercase();
                // Character sets whose introducer every server knows.
                ["utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"]
                    .contains(&cs.as_str())
                    .then_some(cs)
            }
            _ => None,
        }
    }

    /// Compares a table with one text key by ranges of that key, read on each side through
    /// its own index (linear, whatever the two collations):
    ///
    /// 1. The source's index is walked (`WHERE key >= b ORDER BY key LIMIT 1 OFFSET n`: an
    ///    index range read) for boundaries about `first_chunk_rows` rows apart.
    /// 2. A boundary is kept only if the target, in its own collation, also finds it greater
    ///    than the previous one kept; otherwise it is skipped and its range joins the next.
    ///    The boundaries are then increasing in both collations, so the ranges `[b_i, b_i+1)`
    ///    partition each side's rows, each under its own collation: every row is in exactly
    ///    one range per side.
    /// 3. Workers checksum each range on both sides; a differing range is cut again the same
    ///    way into parts of about `row_threshold` rows (boundaries also checked against the
    ///    range's end), and each differing part is read in binary key order on both sides (a
    ///    sort of that part only) and merged. A row without a partner in
    ///    the other side's range is looked up there by its exact key: the collations may have
    ///    put it in another range. A source row found there is compared with it; a target
    ///    row found on the source is skipped (its source range compares it, and that range
    ///    differs too, since the row is missing from its target side). So each row is
    ///    reported once, and no row goes unseen.
    async fn text_range_diff(
        &self,
        progress: &dyn Progress,
        source_name: &TableName,
    ) -> Result<(), TableError> {
        if self.text_key_charset().is_none() {
            return Err(TableError::Other("not a text key".into()));
        }
        let step = self.opts.first_chunk_rows.max(1);
        let threads = self.opts.threads.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<TextRange>(threads * 2);
        let rx = tokio::sync::Mutex::new(rx);
        let failed: Mutex<Option<TableError>> = Mutex::new(None);

        let producer = async {
            // Owned here: the workers' channel closes when the walk ends.
            let tx = tx;
            // `lo`: the start of the range being cut; `from`: where the walk goes on.
            let (mut lo, mut from): (Option<String>, Option<String>) = (None, None);
            loop {
                if lock(&failed).is_some() {
                    return Ok::<(), TableError>(());
                }
                let Some(b) = self.next_boundary(from.as_deref(), None, step).await? else {
                    let _ = tx.send((lo, None)).await;
                    return Ok(());
                };
                let increasing = match &lo {
                    None => true,
                    Some(l) => self.target_orders(l, &b).await?,
                };
                from = Some(b.clone());
                if increasing {
                    if tx.send((lo.take(), Some(b.clone()))).await.is_err() {
                        return Ok(());
                    }
                    lo = Some(b);
                }
            }
        };
        let worker = || async {
            loop {
                if lock(&failed).is_some() {
                    return;
                }
                let next = rx.lock().await.recv().await;
                let Some((lo, hi)) = next else {
                    return;
                };
                let done = self.text_range(lo, hi).await;
                match done {
                    Ok(rows) => progress.rows_done(source_name, rows),
                    Err(e) => {
                        lock(&failed).get_or_insert(e);
                        return;
                    }
                }
            }
        };
        let workers = async {
            futures_util::future::join_all((0..threads).map(|_| worker())).await;
            // A failed worker stops the others; the walk must not wait for them.
            rx.lock().await.close();
        };
        let (walked, ()) = tokio::join!(producer, workers);
        if let Some(e) = lock(&failed).take() {
            return Err(e);
        }
        walked
    }

    /// A SQL literal of key bytes (hex) in the key's character set; it takes the key
    /// column's collation on each side.
    fn text_literal(&self, hex: &str) -> String {
        let cs = self.text_key_charset().unwrap_or_else(|| "utf8mb4".into());
        format!("_{cs} X'{hex}'")
    }

    /// `key >= lo AND key < hi` for one side (in that side's collation).
    fn text_predicate(&self, side: Side, lo: Option<&str>, hi: Option<&str>) -> String {
        let (_, sql) = self.side(side);
        let mut w = Vec::new();
        if let Some(l) = lo {
            w.push(format!("{} >= {}", sql.key, self.text_literal(l)));
        }
        if let Some(h) = hi {
            w.push(format!("{} < {}", sql.key, self.text_literal(h)));
        }
        if w.is_empty() {
            "1 = 1".to_string()
        } else {
            w.join(" AND ")
        }
    }

    /// The key `step` rows after `from` (or after the first) and below `hi` in the source's
    /// index, as hex: an index range read.
    async fn next_boundary(
        &self,
        from: Option<&str>,
        hi: Option<&str>,
        step: u64,
    ) -> Result<Option<String>, TableError> {
        let (_, sql) = self.side(Side::Source);
        let next: Vec<String> = self
            .source
            .query(&format!(
                "SELECT HEX({k}) FROM {t} WHERE {w} ORDER BY {k} LIMIT 1 OFFSET {step}",
                k = sql.key,
                t = sql.tables[0],
                w = self.text_predicate(Side::Source, from, hi),
            ))
            .await?;
        Ok(next.into_iter().next())
    }

    /// Whether the target's collation puts key `a` strictly before key `b`.
    async fn target_orders(&self, a: &str, b: &str) -> Result<bool, TableError> {
        let coll = self
            .plan
            .key_pair()
            .target
            .collation
            .clone()
            .unwrap_or_default();
        let r: Vec<Option<i64>> = self
            .target
            .query(&format!(
                "SELECT {} COLLATE {coll} < {} COLLATE {coll}",
                self.text_literal(a),
                self.text_literal(b)
            ))
            .await?;
        Ok(r.first() == Some(&Some(1)))
    }

    /// Cuts `[lo, hi)` into ranges of about `step` source rows whose boundaries increase in
    /// both collations (see [`Ctx::text_range_diff`]): they partition the range on each side.
    async fn cut_text_range(
        &self,
        lo: Option<String>,
        hi: Option<String>,
        step: u64,
    ) -> Result<Vec<TextRange>, TableError> {
        let mut out = Vec::new();
        let (mut start, mut from) = (lo.clone(), lo);
        while let Some(b) = self
            .next_boundary(from.as_deref(), hi.as_deref(), step)
            .await?
        {
            let after = match &start {
                Some(l) => self.target_orders(l, &b).await?,
                None => true,
            };
            let before = match &hi {
                Some(h) => self.target_orders(&b, h).await?,
                None => true,
            };
            from = Some(b.clone());
            if after && before {
                out.push((start.take(), Some(b.clone())));
                start = Some(b);
            }
        }
        out.push((start, hi));
        Ok(out)
    }

    /// One range `[lo, hi)` of a text key (hex of the key's bytes; `None`: open): checksums
    /// on both sides; when they differ, its parts of about `row_threshold` rows are
    /// checksummed and the rows of the differing ones merged. Returns the source rows.
    async fn text_range(&self, lo: Option<String>, hi: Option<String>) -> Result<u64, TableError> {
        if let Some(t) = &self.opts.throttle {
            t.0.wait(0).await?;
        }
        let checksums = |lo: Option<String>, hi: Option<String>| async move {
            let sp = self.text_predicate(Side::Source, lo.as_deref(), hi.as_deref());
            let tp = self.text_predicate(Side::Target, lo.as_deref(), hi.as_deref());
            let (s, t) = tokio::join!(
                self.checksum_where(Side::Source, &sp),
                self.checksum_where(Side::Target, &tp)
            );
            Ok::<_, TableError>((s?, t?, sp, tp))
        };
        let (s, t, sp, tp) = checksums(lo.clone(), hi.clone()).await?;
        if !s.same_rows(&t) {
            let parts = if s.count.max(t.count) > self.opts.row_threshold {
                self.cut_text_range(lo, hi, self.opts.row_threshold.max(1))
                    .await?
            } else {
                Vec::new()
            };
            let q = |side: Side, w: &str| {
                let (_, sql) = self.side(side);
                format!(
                    "SELECT {cols} {from} ORDER BY {o}",
                    cols = sql.row_select,
                    from = sql.rows_from(Some(w)),
                    o = self.binary_key_order(side)
                )
            };
            if parts.len() <= 1 {
                self.merge_ordered_as(&q(Side::Source, &sp), &q(Side::Target, &tp), true)
                    .await?;
            } else {
                for (plo, phi) in parts {
                    let (ps, pt, psp, ptp) = checksums(plo, phi).await?;
                    if !ps.same_rows(&pt) {
                        self.merge_ordered_as(&q(Side::Source, &psp), &q(Side::Target, &ptp), true)
                            .await?;
                    }
                }
            }
        }
        {
            let mut f = lock(&self.findings);
            f.report.rows_compared += s.count;
            f.report.chunks += 1;
        }
        if let Some(t) = &self.opts.throttle {
            t.0.wait(s.count).await?;
        }
        Ok(s.count)
    }

    /// Rows of a text range without a partner in the other side's range: each is looked up
    /// by its exact key on the other side (see [`Ctx::text_range_diff`]).
    async fn resolve_candidates(
        &self,
        cands: Vec<(DiffKind, Vec<Value>)>,
    ) -> Result<(), TableError> {
        let (missing, extra): (Vec<_>, Vec<_>) = cands
            .into_iter()
            .partition(|(k, _)| *k == DiffKind::MissingInTarget);
        for (rows, other) in [(missing, Side::Target), (extra, Side::Source)] {
            for batch in rows.chunks(CANDIDATE_BATCH) {
                let found = self.lookup(other, batch).await?;
                for (kind, row) in batch {
                    match (other, found.get(&self.plan.exact_key(row))) {
                        (Side::Target, Some(there)) => self.compare_pair(row, there),
                        // Compared from its source range.
                        (Side::Source, Some(_)) => {}
                        (_, None) => self.record(*kind, row),
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows of one side whose key is exactly (byte for byte) one of `rows`' keys.
    async fn lookup(
        &self,
        side: Side,
        rows: &[(DiffKind, Vec<Value>)],
    ) -> Result<std::collections::HashMap<Vec<u8>, Vec<Value>>, TableError> {
        let keys: Vec<Vec<Value>> = rows.iter().map(|(_, r)| self.plan.key_of(r)).collect();
        let (db, _) = self.side(side);
        let table = std::slice::from_ref(&side.table(&self.plan).name);
        let found = fetch_by_key(db, &self.plan, side, table, &keys).await?;
        lock(&self.findings).report.rows_fetched += found.read;
        Ok(found.rows)
    }

    /// `ORDER BY` text that sorts one side's rows by the key's bytes (UTF-8 for text),
    /// whatever the collation: the order [`Ctx::key_order`] merges in.
    fn binary_key_order(&self, side: Side) -> String {
        self.plan
            .key_columns
            .iter()
            .map(|i| {
                let c = side.column(&self.plan.columns[*i]);
                let q = quote_ident(&c.name);
                if c.kind.is_text_like() {
                    format!("CAST(CONVERT({q} USING utf8mb4) AS BINARY)")
                } else {
                    q
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
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
        .map_err(|_| TableError::Other(format!("unexpected key value `{s}` from the server")))
}

fn parse_u128(s: &str) -> Result<u128, TableError> {
    // A SUM over DECIMAL may print a scale (`123.0`) on some servers.
    let s = s.trim();
    let int = s.split('.').next().unwrap_or(s);
    int.parse()
        .map_err(|_| TableError::Other(format!("unexpected checksum `{s}` from the server")))
}
