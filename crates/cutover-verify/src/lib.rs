//! `cutover verify`: continuous, binlog-driven verification of a live migration.
//!
//! The pipeline: the source's binlog ([`reader::BinlogReader`], in a task of its own, so a
//! slow check never loses its place in the stream) → row changes over a bounded channel (the
//! back-pressure that keeps memory bounded) → the pending set ([`pending::PendingSet`], merged
//! by key) → batched reads by key from both sides and the shared comparator
//! ([`checker::Checker`]) → pending / resolved / confirmed. Confirmed mismatches go to a
//! sink the moment they are confirmed; the run ends on cancellation or after `run_for`, and
//! returns a [`Summary`].

pub mod change;
pub mod checker;
pub mod checkpoint;
pub mod heartbeat;
pub mod metrics;
pub mod pending;
pub mod position;
pub mod reader;
pub mod report_doc;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cutover_core::config::Routes;
use cutover_core::schema::TableName;
use cutover_core::{Db, DbError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use change::{ChangeKind, RowChange};
pub use checker::{CheckStats, Checker, CheckerOptions, Lag, Mismatch, Progress};
pub use checkpoint::{Checkpoint, CheckpointError, SourceId};
pub use position::{BinlogPos, Start};
pub use reader::{BinlogReader, ReaderError, TableFilter};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
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
    /// `--checkpoint DIR`: resume from it when it holds a checkpoint, and keep it current.
    pub checkpoint: Option<Checkpoint>,
    /// How often the checkpoint is saved at least (more rarely when saving a large pending
    /// set takes long: never more than a tenth of the time).
    pub checkpoint_every: Duration,
    /// `--shard I/N`: only keys whose hash falls in shard `I` of `N`.
    pub shard: Option<Shard>,
    /// `--heartbeat DB.TABLE`: a writable session on the source and the table verify may
    /// write its heartbeat row to (the only write verify ever does, and only when asked).
    pub heartbeat: Option<(Db, TableName)>,
    /// Told the figures as the run goes, and warnings that do not stop it.
    pub observer: Option<std::sync::Arc<dyn Observer>>,
}

/// What a running verification tells as it goes; the library never prints, the binary shows
/// these as progress and warnings. Calls come from the run's own task: an observer only
/// takes note (a few stores), it never waits.
pub trait Observer: Send + Sync {
    /// The figures so far, after every check round (about ten times a second).
    fn figures(&self, _summary: &Summary) {}
    /// Something that does not stop the run but that the user should know.
    fn warning(&self, _message: &str) {}
}

/// Why a `--shard` text is not a shard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    #[error("`{0}` is not a shard (expected I/N, e.g. 0/4)")]
    NotAShard(String),
    #[error("`{0}` is not a shard number (expected I/N, e.g. 0/4)")]
    Number(String),
    #[error("`{0}` is not a shard count (expected I/N, e.g. 0/4)")]
    Count(String),
    #[error("`{spec}`: the shard number must be below the count (0/{count} … {last}/{count})", last = count.saturating_sub(1))]
    OutOfRange { spec: String, count: u32 },
}

/// One of `N` disjoint parts of the keys, by a stable hash of table and key, so `N`
/// processes (on `N` machines) share one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::NotAShard(s.to_string()))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| ShardError::Number(i.to_string()))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| ShardError::Count(n.to_string()))?;
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange {
                spec: s.to_string(),
                count,
            });
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard checks `key` of `table` (the canonical key encoding, so equal
    /// keys always fall in the same shard).
    pub fn owns(&self, table: &TableName, key: &[cutover_core::value::Value]) -> bool {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(table.schema.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(table.table.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&pending::key_id(key));
        xxhash_rust::xxh3::xxh3_64(&bytes) % u64::from(self.count) == u64::from(self.index)
    }
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
            checkpoint: None,
            checkpoint_every: Duration::from_secs(1),
            shard: None,
            heartbeat: None,
            observer: None,
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
    /// Rows read from the source: keys that kept failing against the row their binlog event
    /// carried, or whose event carried no whole row (the rest are verified on the target alone).
    pub source_reads: u64,
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
    /// From a change being read to its row being seen equal (or confirmed different).
    pub lag: Lag,
    /// The position a checkpoint resumed from, when it did.
    pub resumed_from: Option<String>,
    /// Times this verification was resumed from its checkpoint.
    pub restarts: u64,
}

/// What the reader task sends: the changes of one event, and where it got to.
struct Batch {
    changes: Vec<RowChange>,
    position: BinlogPos,
    /// The last transaction boundary: every change before it is in this or an earlier batch.
    boundary: BinlogPos,
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
    mut opts: VerifyOptions,
    cancel: CancellationToken,
    on_confirmed: &mut (dyn FnMut(&Mismatch) + Send),
) -> Result<Summary, VerifyError> {
    let mut checker = Checker::new(
        source.clone(),
        target.clone(),
        opts.routes.clone(),
        opts.checker.clone(),
    );
    // A checkpoint of this source: read again from its position, with its pending keys.
    let mut base = checkpoint::Totals::default();
    let mut mismatches = Vec::new();
    let mut resumed_from = None;
    let source_id = match &opts.checkpoint {
        Some(cp) => {
            let id = source_identity(source).await?;
            if let Some(saved) = cp.load(&id)? {
                let now = Instant::now();
                for (table, key, k) in saved.keys().unwrap_or_default() {
                    let saved = pending::SavedPending {
                        table,
                        key,
                        position: k.position.clone(),
                        changes: k.changes,
                    };
                    checker.restore(saved, now);
                }
                base = saved.totals.clone();
                base.restarts += 1;
                mismatches = saved.mismatches.clone();
                resumed_from = Some(saved.position.to_string());
                opts.start = Start::At(saved.position.clone());
            }
            Some(id)
        }
        None => None,
    };
    let mut filter = opts.filter;
    let mut beating = None;
    if let Some((writer, table)) = opts.heartbeat.take() {
        // The heartbeat table's own changes are not verified.
        let own = table.clone();
        filter = Box::new(move |t: &TableName| *t != own && filter(t));
        heartbeat::create(&writer, &table).await?;
        beating = Some(tokio::spawn(heartbeat::beat(
            writer,
            table,
            cancel.clone(),
            opts.observer.clone(),
        )));
    }
    let reader = BinlogReader::open(source, &opts.start, opts.server_id, filter).await;
    let mut reader = match reader {
        Ok(r) => r,
        Err(e) => {
            if let Some(b) = beating {
                b.abort();
            }
            return Err(e.into());
        }
    };
    let mut summary = Summary {
        events: base.events,
        changes: base.changes,
        rows_checked: 0,
        source_reads: base.source_reads,
        pending: 0,
        resolved: 0,
        busy: 0,
        skipped_rows: 0,
        warnings: Vec::new(),
        position: reader.position().to_string(),
        mismatches,
        interrupted: false,
        check_errors: base.check_errors,
        reconnects: base.reconnects,
        unchecked_tables: Default::default(),
        lag: Lag::default(),
        resumed_from,
        restarts: base.restarts,
    };
    // Where a restart may begin: every change before it has been taken in.
    let mut boundary = reader.boundary().clone();
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
                    boundary: reader.boundary().clone(),
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
    let mut schema_changes = 0;
    // Since when check rounds have been failing (a side unreachable).
    let mut failing_since: Option<Instant> = None;
    let deadline = opts.run_for.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saver = Saver {
        every: opts.checkpoint_every,
        last: Instant::now(),
        took: Duration::ZERO,
        dirty: false,
    };
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
                            saver.dirty = true;
                        }
                    }
                    Err(e) if e.is_interrupted() => {
                        summary.interrupted = true;
                        break Ok(());
                    }
                    // The keys stay pending; the next tick tries again, until `retry_for`.
                    Err(e) => {
                        summary.check_errors += 1;
                        metrics::check_error();
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= opts.retry_for {
                            break Err(VerifyError::Db(e));
                        }
                    }
                }
                fill(&mut summary, &checker, &base);
                if let Some(o) = &opts.observer {
                    o.figures(&summary);
                }
                metrics::publish(&summary, checker.pending().oldest_age(Instant::now()));
                if let (Some(cp), Some(id)) = (&opts.checkpoint, &source_id) {
                    if saver.due() {
                        if let Err(e) = saver.save(cp, id, &boundary, &summary, &checker) {
                            break Err(e.into());
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
                        let (mut taken, mut merged) = (0u64, 0u64);
                        for c in &b.changes {
                            if opts.shard.is_none_or(|s| s.owns(&c.table, &c.key)) {
                                merged += u64::from(checker.add(c, now));
                                taken += 1;
                            }
                        }
                        metrics::merged(merged);
                        if let Some(c) = b.changes.last() {
                            metrics::source_lag(unix_now().saturating_sub(u64::from(c.timestamp)));
                        }
                        metrics::read((base.events + b.events).saturating_sub(summary.events), taken, &b.position);
                        summary.changes += taken;
                        summary.events = base.events + b.events;
                        summary.reconnects = base.reconnects + b.reconnects;
                        summary.position = b.position.to_string();
                        summary.skipped_rows = b.skipped_rows;
                        summary.warnings = b.warnings;
                        if b.boundary != boundary {
                            boundary = b.boundary;
                        }
                        saver.dirty = true;
                    }
                    Some(Err(e)) => break Err(VerifyError::Reader(e)),
                    None => break Ok(()),
                }
            }
        }
    };
    reader_task.abort();
    if let Some(b) = beating {
        b.abort();
    }
    fill(&mut summary, &checker, &base);
    // Whatever ended the run, what was done is kept.
    if let (Some(cp), Some(id)) = (&opts.checkpoint, &source_id) {
        saver.dirty = true;
        let saved = saver.save(cp, id, &boundary, &summary, &checker);
        result?;
        saved?;
    } else {
        result?;
    }
    Ok(summary)
}

/// The summary's counters from the checker, on top of what earlier runs did.
fn fill(summary: &mut Summary, checker: &Checker, base: &checkpoint::Totals) {
    let stats = checker.stats();
    summary.rows_checked = base.rows_checked + stats.rows_checked;
    summary.source_reads = base.source_reads + stats.source_reads;
    summary.resolved = base.resolved + stats.resolved;
    summary.pending = checker.pending().len() as u64;
    summary.busy = checker.busy();
    summary.unchecked_tables = checker.unchecked().clone();
    summary.lag = checker.lag();
}

/// Saves the checkpoint now and then: never more often than `every`, and never spending more
/// than a tenth of the time on it.
struct Saver {
    every: Duration,
    last: Instant,
    took: Duration,
    dirty: bool,
}

impl Saver {
    fn due(&self) -> bool {
        self.dirty && self.last.elapsed() >= self.every.max(self.took * 10)
    }

    fn save(
        &mut self,
        cp: &Checkpoint,
        id: &SourceId,
        boundary: &BinlogPos,
        summary: &Summary,
        checker: &Checker,
    ) -> Result<(), CheckpointError> {
        if !self.dirty {
            return Ok(());
        }
        let t0 = Instant::now();
        let saved = checkpoint::Saved {
            format: checkpoint::FORMAT,
            version: env!("CARGO_PKG_VERSION").into(),
            source: id.clone(),
            position: boundary.clone(),
            totals: checkpoint::Totals {
                events: summary.events,
                changes: summary.changes,
                rows_checked: summary.rows_checked,
                source_reads: summary.source_reads,
                resolved: summary.resolved,
                check_errors: summary.check_errors,
                reconnects: summary.reconnects,
                restarts: summary.restarts,
            },
            pending: checker
                .pending()
                .iter()
                .map(|(t, e)| checkpoint::SavedKey {
                    schema: t.schema.clone(),
                    table: t.table.clone(),
                    key: e.key.iter().map(checkpoint::Part::from_value).collect(),
                    position: e.position.clone(),
                    changes: e.changes,
                })
                .collect(),
            mismatches: summary.mismatches.clone(),
        };
        cp.save(&saved)?;
        self.last = Instant::now();
        self.took = t0.elapsed();
        self.dirty = false;
        Ok(())
    }
}

/// Which source this is, for the checkpoint: `@@server_id` and `@@hostname`.
async fn source_identity(source: &Db) -> Result<SourceId, DbError> {
    let rows: Vec<(u64, String)> = source.query("SELECT @@server_id, @@hostname").await?;
    let (server_id, hostname) = rows.into_iter().next().unwrap_or_default();
    Ok(SourceId {
        server_id,
        hostname,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_core::value::Value;
    use proptest::prelude::*;

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "-1/2", "a/b", "0/0", "1/", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let t = TableName::new("db", "t");
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for id in 0..3000i64 {
            let key = [Value::Int(id)];
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&t, &key)).collect();
            assert_eq!(owners.len(), 1, "key {id} has one shard");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 800), "{sizes:?}");
    }

    proptest! {
        #[test]
        fn shard_parse_never_panics(s in ".{0,20}") {
            if let Ok(sh) = Shard::parse(&s) {
                prop_assert!(sh.index < sh.count);
            }
        }
    }
}
