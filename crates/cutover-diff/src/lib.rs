//! `cutover diff`: compare tables between a source and a target, exactly and fast.
//!
//! The pipeline: [`select_tables`] turns filters and routes into pairs of tables; for each,
//! [`Diff::table`] makes a [`plan::Plan`], cuts the key space into chunks
//! ([`chunk`]), checksums every chunk inside both servers, drills down into the chunks that
//! differ, and compares the rows of the small parts that still differ with the shared value
//! model. The result is a [`report::Report`].

pub mod checkpoint;
pub mod chunk;
pub mod engine;
pub mod recheck;
pub mod report;
pub mod report_doc;
pub mod schema_diff;

use std::time::Instant;

use cutover_core::config::{Pattern, Routes};
use cutover_core::schema::{list_schemas, list_tables, TableName};
use cutover_core::{Db, DbError, SYSTEM_SCHEMAS};

/// The table plan and the fix SQL are the keyed-row layer's, shared with `cutover verify`.
pub use cutover_rows::{fix, plan};
pub use engine::{Diff, DiffOptions, NoProgress, Progress};
pub use report::{Report, Status, TableReport};
pub use schema_diff::ColumnFilter;

/// A source table and the target table it is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePair {
    pub source: TableName,
    pub target: TableName,
    /// The user asked to skip it: reported as `skipped`.
    pub skipped: bool,
    /// When routes merge several source tables (shards) into `target`: all of them, in name
    /// order, `source` being the first. Their rows together are compared with the target's.
    pub shards: Vec<TableName>,
}

impl TablePair {
    pub fn new(source: TableName, target: TableName) -> TablePair {
        TablePair {
            source,
            target,
            skipped: false,
            shards: Vec::new(),
        }
    }

    /// The source tables compared with `target`: one, or the merged shards.
    pub fn sources(&self) -> &[TableName] {
        if self.shards.is_empty() {
            std::slice::from_ref(&self.source)
        } else {
            &self.shards
        }
    }

    /// How reports and checkpoints name the source side: `db.t`, or `a.t + b.t + c.t`.
    pub fn source_label(&self) -> String {
        self.sources()
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Which tables to compare.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `db.table` or `db.*` patterns; empty means every non-system schema.
    pub tables: Vec<Pattern>,
    /// Tables matched here are reported as `skipped`.
    pub skip: Vec<Pattern>,
    pub routes: Routes,
}

/// Lists the source tables the selection names, in name order, with their targets.
/// A table named exactly (no `*`) that does not exist on the source is still listed, so the
/// report says it is missing rather than silently dropping it.
///
/// Source tables that routes send into one target table become one pair with `shards`:
/// the target holds their rows together. Selecting one shard brings in the others (compared
/// alone, the others' rows would all look extra), and skipping one skips the merged table.
pub async fn select_tables(source: &Db, sel: &Selection) -> Result<Vec<TablePair>, DbError> {
    let pairs = select_single(source, sel).await?;
    if !pairs.iter().any(|p| p.source != p.target) {
        return Ok(pairs);
    }
    // Routes rename: find every source table that lands in a target table of the selection.
    let everything = Selection {
        tables: Vec::new(),
        skip: sel.skip.clone(),
        routes: sel.routes.clone(),
    };
    let all = select_single(source, &everything).await?;
    Ok(merge_shards(pairs, &all))
}

/// Groups pairs by target table: a target several source tables route into becomes one
/// pair holding all of them (from `all`, every routed source table), at the place of the
/// first.
fn merge_shards(pairs: Vec<TablePair>, all: &[TablePair]) -> Vec<TablePair> {
    let mut out: Vec<TablePair> = Vec::new();
    for p in pairs {
        if out.iter().any(|o| o.target == p.target) {
            continue;
        }
        let mut group: Vec<&TablePair> = all.iter().filter(|a| a.target == p.target).collect();
        if !group.iter().any(|a| a.source == p.source) {
            group.push(&p);
        }
        if group.len() < 2 {
            out.push(p);
            continue;
        }
        group.sort_by(|a, b| a.source.cmp(&b.source));
        let skipped = group.iter().any(|a| a.skipped);
        out.push(TablePair {
            source: group[0].source.clone(),
            target: p.target.clone(),
            skipped,
            shards: group.iter().map(|a| a.source.clone()).collect(),
        });
    }
    out
}

async fn select_single(source: &Db, sel: &Selection) -> Result<Vec<TablePair>, DbError> {
    let schemas = list_schemas(source).await?;
    let mut names: Vec<TableName> = Vec::new();
    for schema in &schemas {
        let wanted = if sel.tables.is_empty() {
            !SYSTEM_SCHEMAS.contains(&schema.to_ascii_lowercase().as_str())
        } else {
            sel.tables.iter().any(|p| p.matches_schema(schema))
        };
        if !wanted {
            continue;
        }
        for table in list_tables(source, schema).await? {
            let t = TableName::new(schema.clone(), table);
            if sel.tables.is_empty() || sel.tables.iter().any(|p| p.matches(&t)) {
                names.push(t);
            }
        }
    }
    for p in &sel.tables {
        if !p.schema.contains('*') && !p.table.contains('*') {
            let t = TableName::new(p.schema.clone(), p.table.clone());
            if !names.contains(&t) {
                names.push(t);
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|t| TablePair {
            target: sel.routes.target_of(&t),
            skipped: sel.skip.iter().any(|p| p.matches(&t)),
            source: t,
            shards: Vec::new(),
        })
        .collect())
}

impl Diff<'_> {
    /// Compares every pair, one table after another (each with `threads` workers). Stops
    /// starting new tables once the run is interrupted; the report says so. With a
    /// checkpoint, tables an earlier run finished are taken from it, finished chunks of the
    /// others are skipped, and progress is journaled as it is made.
    pub async fn run(self, pairs: &[TablePair]) -> Report {
        let Diff {
            source,
            target,
            progress,
            checkpoint,
            ..
        } = self;
        let started = Instant::now();
        let mut report = Report {
            version: env!("CARGO_PKG_VERSION").to_string(),
            source: source.endpoint().redacted(),
            target: target.endpoint().redacted(),
            connections: report::Connections {
                source: report::Connection {
                    server: source.version().to_string(),
                    tls: source.tls().map(str::to_string),
                },
                target: report::Connection {
                    server: target.version().to_string(),
                    tls: target.tls().map(str::to_string),
                },
            },
            tables: Vec::new(),
            summary: Default::default(),
            interrupted: false,
            snapshots: None,
            throttle: None,
            groups: Vec::new(),
        };
        let cancel = source.cancel_token().clone();
        for pair in pairs {
            if pair.skipped {
                let mut t = TableReport::for_sources(pair.sources(), &pair.target);
                t.status = Status::Skipped;
                report.tables.push(t);
                continue;
            }
            if cancel.is_cancelled() {
                report.interrupted = true;
                break;
            }
            if let Some(done) = checkpoint.and_then(|c| c.finished_table(&pair.source_label())) {
                progress.table_started(&pair.source, done.rows_compared);
                progress.rows_done(&pair.source, done.rows_compared);
                progress.table_finished(done);
                report.tables.push(done.clone());
                continue;
            }
            let t = self.table(pair.sources(), &pair.target).await;
            if cancel.is_cancelled() {
                report.interrupted = true;
            }
            if let (Some(cp), None, false) = (checkpoint, &t.error, report.interrupted) {
                if let Err(e) = cp.table_done(&t) {
                    let mut t = t;
                    t.error = Some(format!("writing the checkpoint: {e}"));
                    t.settle();
                    report.tables.push(t);
                    continue;
                }
            }
            report.tables.push(t);
        }
        report.summarize(started.elapsed().as_millis() as u64);
        report
    }
}
