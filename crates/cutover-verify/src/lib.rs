//! `cutover verify`: continuous, binlog-driven verification of a live migration.
//!
//! The pipeline: the source's binlog ([`reader::BinlogReader`], in a task of its own, so a
//! slow check never loses its place in the stream) → row changes over a bounded channel (the
//! back-pressure that keeps memory bounded) → the pending set ([`pending::PendingSet`], merged
//! by key) → batched reads by key from both sides and the shared comparator
//! ([`checker::Checker`]) → pending / resolved / confirmed. Confirmed mismatches go to a
//! sink the moment they are confirmed; the run ends on cancellation or after `run_for`, and
//! returns a [`Summary`].

pub mod checker;
pub mod pending;
pub mod position;
pub mod reader;

use std::time::{Duration, Instant};

use cutover_core::config::Routes;
use cutover_core::schema::TableName;
use cutover_core::{Db, DbError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use checker::{CheckStats, Checker, CheckerOptions, Mismatch};
pub use position::{BinlogPos, Start};
pub use reader::{BinlogReader, ChangeKind, ReaderError, RowChange, TableFilter};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What to verify and how.
pub struct VerifyOptions {
    pub start: Start,
    /// The server id the reader registers with (distinct from every real replica's).
    pub server_id: u32,
    pub filter: TableFilter,
    pub routes: Routes,
    pub checker: CheckerOptions,
    /// Stop after this long (`--for`); `None` runs until cancelled.
    pub run_for: Option<Duration>,
    /// How often due keys are checked.
    pub tick: Duration,
    /// Row changes in flight between the reader and the checker; the reader waits beyond.
    pub channel: usize,
    /// Pending keys beyond which no more changes are taken in until checks catch up.
    pub max_pending: usize,
    /// How long a side may keep failing (checks, or the binlog stream) before the run gives
    /// up; meanwhile keys stay pending and the stream is reopened where it left off.
    pub retry_for: Duration,
}

impl VerifyOptions {
    pub fn new(start: Start, filter: TableFilter, routes: Routes) -> VerifyOptions {
        VerifyOptions {
            start,
            server_id: default_server_id(),
            filter,
            routes,
            checker: CheckerOptions::default(),
            run_for: None,
            tick: Duration::from_millis(100),
            channel: 64,
            max_pending: 1_000_000,
            retry_for: Duration::from_secs(300),
        }
    }
}

/// A server id unlikely to collide with a real replica's: high, and varied by process.
pub fn default_server_id() -> u32 {
    0xC000_0000 | (std::process::id() & 0x00FF_FFFF)
}

/// The run's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Binlog events read (of every kind).
    pub events: u64,
    /// Row changes of selected tables.
    pub changes: u64,
    pub rows_checked: u64,
    pub pending: u64,
    pub resolved: u64,
    pub busy: u64,
    /// Rows of selected tables the reader could not turn into keys (see `warnings`).
    pub skipped_rows: u64,
    pub warnings: Vec<String>,
    /// Where the reader got to.
    pub position: String,
    pub mismatches: Vec<Mismatch>,
    /// The run was stopped by a signal (not by `--for`).
    pub interrupted: bool,
    /// Check rounds that failed (a side unreachable) and were retried.
    pub check_errors: u64,
    /// Times the binlog stream was reopened after failing.
    pub reconnects: u64,
    /// Tables whose changes were not checked, with the reason (keyless tables, for now).
    pub unchecked_tables: std::collections::BTreeMap<String, String>,
}

/// What the reader task sends: the changes of one event, and where it got to.
struct Batch {
    changes: Vec<RowChange>,
    position: BinlogPos,
    events: u64,
    reconnects: u64,
    schema_changes: u64,
    skipped_rows: u64,
    warnings: Vec<String>,
}

/// Verifies until `cancel` or `opts.run_for`. `on_confirmed` sees each confirmed mismatch at
/// once (to append it to a file); a failing sink must not stop the run, so it returns nothing.
pub async fn run(
    source: &Db,
    target: &Db,
    opts: VerifyOptions,
    cancel: CancellationToken,
    on_confirmed: &mut (dyn FnMut(&Mismatch) + Send),
) -> Result<Summary, VerifyError> {
    let mut reader = BinlogReader::open(source, &opts.start, opts.server_id, opts.filter).await?;
    let mut summary = Summary {
        events: 0,
        changes: 0,
        rows_checked: 0,
        pending: 0,
        resolved: 0,
        busy: 0,
        skipped_rows: 0,
        warnings: Vec::new(),
        position: reader.position().to_string(),
        mismatches: Vec::new(),
        interrupted: false,
        check_errors: 0,
        reconnects: 0,
        unchecked_tables: Default::default(),
    };
    let (tx, mut rx) = mpsc::channel::<Result<Batch, ReaderError>>(opts.channel.max(1));
    let retry_for = opts.retry_for;
    let reader_task = tokio::spawn(async move {
        let mut reconnects = 0u64;
        loop {
            let mut r = reader.next().await;
            // A dropped stream is reopened from the last transaction boundary, with backoff,
            // for up to `retry_for`; nothing is skipped (some changes may be read twice).
            if let Err(e) = &r {
                if e.is_transient() {
                    let until = Instant::now() + retry_for;
                    let mut wait = Duration::from_millis(100);
                    loop {
                        tokio::time::sleep(wait).await;
                        match reader.reopen().await {
                            Ok(()) => {
                                reconnects += 1;
                                r = Ok(Vec::new());
                                break;
                            }
                            Err(e) if e.is_transient() && Instant::now() < until => {
                                wait = (wait * 2).min(Duration::from_secs(5));
                            }
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                }
            }
            let r = r.map(|changes| {
                let (skipped_rows, warnings) = reader.skipped_rows();
                Batch {
                    changes,
                    position: reader.position().clone(),
                    events: reader.events(),
                    reconnects,
                    schema_changes: reader.schema_changes(),
                    skipped_rows,
                    warnings: warnings.to_vec(),
                }
            });
            let failed = r.is_err();
            if tx.send(r).await.is_err() || failed {
                break;
            }
        }
    });
    let mut checker = Checker::new(
        source.clone(),
        target.clone(),
        opts.routes.clone(),
        opts.checker.clone(),
    );
    let mut schema_changes = 0;
    // Since when check rounds have been failing (a side unreachable).
    let mut failing_since: Option<Instant> = None;
    let deadline = opts.run_for.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        let accepting = checker.pending().len() < opts.max_pending;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                summary.interrupted = true;
                break Ok(());
            }
            _ = sleep_until(deadline) => break Ok(()),
            _ = tick.tick() => {
                match checker.check_due(Instant::now()).await {
                    Ok(confirmed) => {
                        failing_since = None;
                        for m in confirmed {
                            on_confirmed(&m);
                            summary.mismatches.push(m);
                        }
                    }
                    Err(e) if e.is_interrupted() => {
                        summary.interrupted = true;
                        break Ok(());
                    }
                    // The keys stay pending; the next tick tries again, until `retry_for`.
                    Err(e) => {
                        summary.check_errors += 1;
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= opts.retry_for {
                            break Err(VerifyError::Db(e));
                        }
                    }
                }
            }
            batch = rx.recv(), if accepting => {
                match batch {
                    Some(Ok(b)) => {
                        // A DDL passed: the checker reads both definitions again, so a new
                        // column is compared too.
                        if b.schema_changes != schema_changes {
                            schema_changes = b.schema_changes;
                            checker.forget_plans();
                        }
                        let now = Instant::now();
                        for c in &b.changes {
                            checker.add(c, now);
                        }
                        summary.changes += b.changes.len() as u64;
                        summary.events = b.events;
                        summary.reconnects = b.reconnects;
                        summary.position = b.position.to_string();
                        summary.skipped_rows = b.skipped_rows;
                        summary.warnings = b.warnings;
                    }
                    Some(Err(e)) => break Err(VerifyError::Reader(e)),
                    None => break Ok(()),
                }
            }
        }
    };
    reader_task.abort();
    result?;
    let stats = checker.stats();
    summary.rows_checked = stats.rows_checked;
    summary.resolved = stats.resolved;
    summary.pending = checker.pending().len() as u64;
    summary.busy = checker.busy();
    summary.unchecked_tables = checker.unchecked().clone();
    Ok(summary)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A filter from `db.table` patterns (`--tables`); no patterns select every table outside
/// the system schemas.
pub fn table_filter(patterns: Vec<cutover_core::config::Pattern>) -> TableFilter {
    table_filter_excluding(patterns, Vec::new())
}

/// [`table_filter`] less the tables that match `exclude` (`[filter] exclude`).
pub fn table_filter_excluding(
    patterns: Vec<cutover_core::config::Pattern>,
    exclude: Vec<cutover_core::config::Pattern>,
) -> TableFilter {
    Box::new(move |t: &TableName| {
        if cutover_core::SYSTEM_SCHEMAS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&t.schema))
            || exclude.iter().any(|p| p.matches(t))
        {
            return false;
        }
        patterns.is_empty() || patterns.iter().any(|p| p.matches(t))
    })
}
