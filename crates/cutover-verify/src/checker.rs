//! The checker: pending keys read by key from both sides and compared, with grace.
//!
//! A due key is read from the source and from the target (the target table by the routes)
//! with the same by-key read as `cutover diff --recheck` ([`fetch_by_key`]) and compared
//! with the same rule ([`Judge`], i.e. [`cutover_core::same`]). Both sides are
//! read fresh, so the source's *current* row is the reference: a key changed again later is
//! pending again anyway, and a row the binlog image would give differently from the source
//! (a decoding error) cannot raise a false alarm.
//!
//! Equal (or absent on both sides): the key leaves the set; if an earlier check had found it
//! different it counts as *resolved*. Different: it stays, and is checked again with
//! exponential backoff. It is *confirmed* only once `grace` has passed since the replicator
//! was known to be past the key's latest change: from the target's replica status when the
//! target is a MySQL/MariaDB replica (`Relay_Master_Log_File`/`Exec_Master_Log_Pos`), else
//! from when the change was read from the binlog (no later than the event's own time plus
//! the reader's lag, so never earlier than the event). A key changed more than `busy_after`
//! times while pending is *busy*: it stays pending and is never confirmed while it keeps
//! changing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::config::Routes;
use cutover_core::schema::{describe, TableName};
use cutover_core::value::{CompareOptions, Value};
use cutover_core::{Db, DbError};
use cutover_rows::fetch::{count_images, fetch_by_key, image_filterable};
use cutover_rows::{encode, ColumnFilter, DiffKind, Judge, Mode, Plan, RowsError, Side};
use serde_json::{Map, Value as Json};

use crate::change::RowChange;
use crate::pending::{Expected, PendingSet, SavedPending};
use crate::position::BinlogPos;

/// How the checker paces itself.
#[derive(Clone, Debug)]
pub struct CheckerOptions {
    /// How long a mismatch may persist after the replicator caught up before it is confirmed.
    pub grace: Duration,
    /// Delay before a changed key is first checked.
    pub first_delay: Duration,
    /// The longest wait between two checks of a key.
    pub max_backoff: Duration,
    /// Keys read per statement.
    pub batch: usize,
    /// Keys checked per round at most (the rest wait for the next round).
    pub per_round: usize,
    /// Changes merged into one pending key beyond which it is busy.
    pub busy_after: u32,
    pub compare: CompareOptions,
    /// Where the replicator's progress is read from.
    pub progress: Progress,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            grace: Duration::from_secs(60),
            first_delay: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            batch: 100,
            per_round: 5_000,
            busy_after: 20,
            compare: CompareOptions::default(),
            progress: Progress::Auto,
        }
    }
}

/// A confirmed mismatch.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Mismatch {
    /// The source table (`db.t`).
    pub table: String,
    pub target_table: String,
    pub key: Map<String, Json>,
    pub kind: DiffKind,
    /// Both rows as read at the confirming check (`null` when absent), by column name.
    pub source: Json,
    pub target: Json,
    /// A keyless table's row: how often it occurs on each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// The position just after the key's latest change.
    pub position: String,
}

/// How often a keyless table's row occurs on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub source: u64,
    pub target: u64,
}

/// How a mismatch is shown: its key and both sides.
struct Shown {
    key: Map<String, Json>,
    source: Json,
    target: Json,
    counts: Option<Counts>,
}

/// Counters for the summary and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckStats {
    pub rows_checked: u64,
    /// Rows read from the source (keys that kept failing against their binlog row, or whose
    /// row the binlog did not carry).
    pub source_reads: u64,
    pub resolved: u64,
    pub confirmed: u64,
}

/// Verification lag: from a change being read from the binlog to its row being seen equal
/// on both sides (or confirmed different), in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lag {
    pub count: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// How far the replicator has got, as far as the target can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicated {
    /// The target is a replica that has executed the source's binlog up to here.
    UpTo(BinlogPos),
    /// Nothing on the target tells: grace counts from when a change was read.
    Unknown,
    /// The progress marker the user named cannot be read (yet): nothing is past it.
    Behind,
}

/// Where the replicator's progress is read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// The target's replica status when it replicates this source, else nothing.
    #[default]
    Auto,
    /// `--heartbeat DB.TABLE`: a row verify writes on the source every second with the
    /// source's binlog position before the write; read back on the target, it says the
    /// replicator has applied everything before that position (replication applies in order).
    Heartbeat(TableName),
    /// `--dm-checkpoint DB.TABLE`: DM's syncer checkpoint table on the target
    /// (`dm_meta.<task>_syncer_checkpoint`), its global row's `binlog_name`/`binlog_pos`.
    DmCheckpoint(TableName),
}

/// DM names relay files `mysql-bin|000001.000003` (relay directory suffix, then the
/// upstream file number): the upstream file is `mysql-bin.000003`.
pub fn dm_binlog_name(name: &str) -> String {
    match (name.split_once('|'), name.rsplit_once('.')) {
        (Some((base, _)), Some((_, n))) => format!("{base}.{n}"),
        _ => name.to_string(),
    }
}

/// A table's comparison plan; `target_missing` when the target table does not exist (yet):
/// every row is then absent there.
struct TablePlan {
    plan: Plan,
    target: TableName,
    target_missing: bool,
    /// For each compared column, its place in the binlog's whole-row image (the source
    /// table's columns in order); `None` when some column is not in it.
    image: Option<Vec<usize>>,
    /// Checked by whole-row image (no key).
    keyless: bool,
}

impl TablePlan {
    /// What `read` finds on the target table; nothing (the empty answer) while the target
    /// table does not exist, without asking the target.
    async fn on_target<T: Default, F>(&self, read: impl FnOnce() -> F) -> Result<T, RowsError>
    where
        F: std::future::Future<Output = Result<T, RowsError>>,
    {
        if self.target_missing {
            Ok(T::default())
        } else {
            read().await
        }
    }
}

pub struct Checker {
    source: Db,
    target: Db,
    routes: Routes,
    opts: CheckerOptions,
    pending: PendingSet,
    plans: HashMap<TableName, Option<Arc<TablePlan>>>,
    stats: CheckStats,
    /// Whether the target answers `SHOW SLAVE STATUS` with a row that replicates this
    /// source; learned on first use.
    replica: Option<bool>,
    /// The source's `@@server_id`, once read.
    source_id: Option<u64>,
    /// Tables whose changes are not checked, and why (keyless, no comparable plan).
    unchecked: BTreeMap<String, String>,
    /// Verification lag in milliseconds (1 ms to 1 day, 3 significant digits).
    lag: Option<hdrhistogram::Histogram<u64>>,
}

impl Checker {
    pub fn new(source: Db, target: Db, routes: Routes, opts: CheckerOptions) -> Checker {
        Checker {
            source,
            target,
            routes,
            opts,
            pending: PendingSet::default(),
            plans: HashMap::new(),
            stats: CheckStats::default(),
            replica: None,
            source_id: None,
            unchecked: BTreeMap::new(),
            lag: hdrhistogram::Histogram::new_with_bounds(1, 86_400_000, 3).ok(),
        }
    }

    /// Takes in a key saved in a checkpoint.
    pub fn restore(&mut self, saved: SavedPending, now: Instant) {
        self.pending.restore(saved, now, self.opts.first_delay);
    }

    /// Verification lag so far.
    pub fn lag(&self) -> Lag {
        match &self.lag {
            Some(h) if !h.is_empty() => Lag {
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5),
                p99_ms: h.value_at_quantile(0.99),
                max_ms: h.max(),
            },
            _ => Lag::default(),
        }
    }

    fn record_lag(&mut self, since: Instant, now: Instant) {
        let ms = now.saturating_duration_since(since).as_millis() as u64;
        if let Some(h) = self.lag.as_mut() {
            h.saturating_record(ms.max(1));
        }
        crate::metrics::verified(ms);
    }

    /// Takes in a change; true when it merged into a key already pending.
    pub fn add(&mut self, change: &RowChange, now: Instant) -> bool {
        self.pending.add(change, now, self.opts.first_delay)
    }

    /// Forgets every table's plan (after DDL, the definitions are read again).
    pub fn forget_plans(&mut self) {
        self.plans.clear();
    }

    pub fn pending(&self) -> &PendingSet {
        &self.pending
    }

    /// Tables left out, with the reason.
    pub fn unchecked(&self) -> &BTreeMap<String, String> {
        &self.unchecked
    }

    pub fn stats(&self) -> &CheckStats {
        &self.stats
    }

    /// Pending keys that changed more than `busy_after` times.
    pub fn busy(&self) -> u64 {
        self.pending
            .iter()
            .filter(|(_, e)| e.changes > self.opts.busy_after)
            .count() as u64
    }

    /// The replicator's progress as the target tells it: from the heartbeat table or the
    /// DM checkpoint when given, else from the target's replica status when it replicates
    /// this source.
    pub async fn replicated(&mut self) -> Replicated {
        match self.opts.progress.clone() {
            Progress::Heartbeat(t) => {
                let sql = format!(
                    "SELECT source_file, source_pos FROM {} WHERE server_id = {}",
                    t.quoted(),
                    self.source_server_id().await.unwrap_or(0)
                );
                // Not there yet (the table or its row still in flight): nothing is past.
                match self.target.query::<(String, u64)>(&sql).await {
                    Ok(rows) => rows
                        .into_iter()
                        .next()
                        .map_or(Replicated::Behind, |(f, p)| {
                            Replicated::UpTo(BinlogPos::new(f, p))
                        }),
                    Err(_) => Replicated::Behind,
                }
            }
            Progress::DmCheckpoint(t) => {
                let sql = format!(
                    "SELECT binlog_name, binlog_pos FROM {} WHERE is_global = 1 LIMIT 1",
                    t.quoted()
                );
                match self.target.query::<(String, u64)>(&sql).await {
                    Ok(rows) => rows
                        .into_iter()
                        .next()
                        .map_or(Replicated::Behind, |(f, p)| {
                            Replicated::UpTo(BinlogPos::new(dm_binlog_name(&f), p))
                        }),
                    Err(_) => Replicated::Behind,
                }
            }
            Progress::Auto => self.replica_status().await,
        }
    }

    /// The source's `@@server_id`, read once.
    async fn source_server_id(&mut self) -> Option<u64> {
        if self.source_id.is_none() {
            let rows: Vec<u64> = self.source.query("SELECT @@server_id").await.ok()?;
            self.source_id = rows.into_iter().next();
        }
        self.source_id
    }

    /// `SHOW SLAVE STATUS` on the target, when it replicates this source (its
    /// `Master_Server_Id` is the source's `@@server_id`).
    async fn replica_status(&mut self) -> Replicated {
        if self.replica == Some(false) {
            return Replicated::Unknown;
        }
        let rows: Vec<mysql_async::Row> = match self.target.query("SHOW SLAVE STATUS").await {
            Ok(r) => r,
            Err(_) => {
                // No privilege, or a server without replicas (TiDB): nothing tells.
                self.replica = Some(false);
                return Replicated::Unknown;
            }
        };
        let source_id = self.source_server_id().await;
        // A replica of several sources (multi-source) has a row per source: this one's.
        let col = |row: &mysql_async::Row, name: &str| {
            row.columns_ref()
                .iter()
                .position(|c| c.name_str() == name)
                .and_then(|i| row.get_opt::<String, _>(i))
                .and_then(Result::ok)
        };
        let Some(row) = rows.into_iter().find(|r| {
            col(r, "Master_Server_Id").and_then(|v| v.parse::<u64>().ok()) == source_id
                && source_id.is_some()
        }) else {
            self.replica = Some(false);
            return Replicated::Unknown;
        };
        self.replica = Some(true);
        let file = col(&row, "Relay_Master_Log_File");
        let pos = col(&row, "Exec_Master_Log_Pos").and_then(|p| p.parse::<u64>().ok());
        match (file, pos) {
            (Some(f), Some(p)) if !f.is_empty() => Replicated::UpTo(BinlogPos::new(f, p)),
            _ => Replicated::Unknown,
        }
    }

    /// Checks the keys that are due. Returns the mismatches confirmed in this round.
    pub async fn check_due(&mut self, now: Instant) -> Result<Vec<Mismatch>, DbError> {
        let due = self.pending.due(now, self.opts.per_round);
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let replicated = self.replicated().await;
        let mut confirmed = Vec::new();
        for (table, ids) in due {
            let Some(plan) = self.plan(&table).await? else {
                // The table is gone from the source, or cannot be compared (see
                // `unchecked`): nothing to check.
                for id in &ids {
                    self.pending.remove(&table, id);
                }
                continue;
            };
            if plan.keyless {
                for chunk in ids.chunks(self.opts.batch.max(1)) {
                    self.check_images(&table, &plan, chunk, &replicated, &mut confirmed)
                        .await?;
                }
                continue;
            }
            for chunk in ids.chunks(self.opts.batch.max(1)) {
                // Keys whose binlog row is known and whose replicator is not known to be past
                // them yet: the target alone is compared with that row. Equal: verified
                // without touching the source. Keys that keep failing (the replicator is past
                // them, or no row is known) are read from both sides.
                let mut by_image: Vec<(Vec<Value>, Expected)> = Vec::new();
                let mut keys: Vec<Vec<Value>> = Vec::new();
                for id in chunk {
                    let Some(e) = self.pending.get_mut(&table, id) else {
                        continue;
                    };
                    match (&e.expected, e.caught_up_at, plan.image.is_some()) {
                        (Some(x), None, true) => by_image.push((e.key.clone(), x.clone())),
                        _ => keys.push(e.key.clone()),
                    }
                }
                if !by_image.is_empty() {
                    let wanted: Vec<&Vec<Value>> = by_image.iter().map(|(k, _)| k).collect();
                    let t = plan
                        .on_target(|| {
                            fetch_by_key(
                                &self.target,
                                &plan.plan,
                                Side::Target,
                                std::slice::from_ref(&plan.target),
                                &wanted,
                            )
                        })
                        .await?
                        .rows;
                    let now = Instant::now();
                    for (key, expected) in &by_image {
                        self.stats.rows_checked += 1;
                        let id = encode(key);
                        let equal = match (expected, t.get(&id)) {
                            (Expected::Absent, None) => true,
                            (Expected::Row(row), Some(y)) => plan.image.as_ref().is_some_and(|m| {
                                let x: Option<Vec<Value>> =
                                    m.iter().map(|&i| row.get(i).cloned()).collect();
                                x.is_some_and(|x| {
                                    Judge::new(&plan.plan, &self.opts.compare)
                                        .differing(&x, y)
                                        .is_empty()
                                })
                            }),
                            _ => false,
                        };
                        if equal {
                            let _ = self.judge(
                                &table,
                                &plan,
                                &id,
                                None,
                                unreachable_shown,
                                &replicated,
                                now,
                                false,
                            );
                            continue;
                        }
                        // Not (yet) as the binlog says: in flight, or lost. Judged without
                        // confirming; once the replicator is past it, the source is read too.
                        let kind = Some(DiffKind::Mismatched);
                        let _ = self.judge(
                            &table,
                            &plan,
                            &id,
                            kind,
                            unreachable_shown,
                            &replicated,
                            now,
                            false,
                        );
                        if let Some(e) = self.pending.get_mut(&table, &id) {
                            if e.caught_up_at.is_some() {
                                keys.push(key.clone());
                            }
                        }
                    }
                }
                if keys.is_empty() {
                    continue;
                }
                self.stats.source_reads += keys.len() as u64;
                crate::metrics::source_reads(keys.len() as u64);
                let (s, t) = tokio::join!(
                    fetch_by_key(
                        &self.source,
                        &plan.plan,
                        Side::Source,
                        std::slice::from_ref(&table),
                        &keys
                    ),
                    plan.on_target(|| fetch_by_key(
                        &self.target,
                        &plan.plan,
                        Side::Target,
                        std::slice::from_ref(&plan.target),
                        &keys,
                    ))
                );
                let (s, t) = (s?.rows, t?.rows);
                let now = Instant::now();
                for key in &keys {
                    self.stats.rows_checked += 1;
                    let id = encode(key);
                    let (a, b) = (s.get(&id), t.get(&id));
                    let verdict = Judge::new(&plan.plan, &self.opts.compare)
                        .verdict(a.map(Vec::as_slice), b.map(Vec::as_slice));
                    let shown = || Shown {
                        key: plan.plan.key_json(key),
                        source: row_json(&plan.plan, a),
                        target: row_json(&plan.plan, b),
                        counts: None,
                    };
                    if let Some(m) =
                        self.judge(&table, &plan, &id, verdict, shown, &replicated, now, true)
                    {
                        confirmed.push(m);
                    }
                }
            }
        }
        Ok(confirmed)
    }

    /// The verdict of one check on a pending key: equal (`None`) takes it out of the set;
    /// a difference keeps it pending with backoff, or confirms it once grace has passed
    /// since the replicator was past its latest change. `shown` renders the mismatch.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        table: &TableName,
        plan: &TablePlan,
        id: &[u8],
        verdict: Option<DiffKind>,
        shown: impl FnOnce() -> Shown,
        replicated: &Replicated,
        now: Instant,
        may_confirm: bool,
    ) -> Option<Mismatch> {
        let Some(kind) = verdict else {
            if let Some(e) = self.pending.remove(table, id) {
                if e.mismatch_since.is_some() {
                    self.stats.resolved += 1;
                }
                self.record_lag(e.seen, now);
            }
            return None;
        };
        let e = self.pending.get_mut(table, id)?;
        e.mismatch_since.get_or_insert(now);
        e.attempts = e.attempts.saturating_add(1);
        if e.caught_up_at.is_none() {
            let past = match replicated {
                Replicated::UpTo(p) => *p >= e.position,
                Replicated::Unknown => true,
                Replicated::Behind => false,
            };
            if past {
                e.caught_up_at = Some(match replicated {
                    Replicated::Unknown => e.seen,
                    _ => now,
                });
            }
        }
        let busy = e.changes > self.opts.busy_after;
        let due_to_confirm = e
            .caught_up_at
            .is_some_and(|c| now.saturating_duration_since(c) >= self.opts.grace);
        if due_to_confirm && !busy && may_confirm {
            let position = e.position.to_string();
            self.pending.remove(table, id);
            self.stats.confirmed += 1;
            let shown = shown();
            return Some(Mismatch {
                table: table.to_string(),
                target_table: plan.target.to_string(),
                key: shown.key,
                kind,
                source: shown.source,
                target: shown.target,
                counts: shown.counts,
                position,
            });
        }
        let shift = e.attempts.min(16);
        let backoff = self
            .opts
            .first_delay
            .saturating_mul(1u32 << shift)
            .min(self.opts.max_backoff);
        // Once grace is counting, the confirming check comes right on time.
        let mut next = now + backoff;
        if let (Some(c), false) = (e.caught_up_at, busy) {
            next = next.min((c + self.opts.grace).max(now));
        }
        e.next_check = next;
        None
    }

    /// Checks whole-row images of a keyless table. Each side is read once for the batch:
    /// the rows that match any image on the columns that can be matched exactly (a
    /// predicate that depends only on the canonical value, so equal rows match on both
    /// sides alike), grouped by their canonical encoding. An image is equal when its row
    /// occurs as often on the target as on the source (absent on both counts as equal).
    async fn check_images(
        &mut self,
        table: &TableName,
        plan: &Arc<TablePlan>,
        ids: &[Vec<u8>],
        replicated: &Replicated,
        confirmed: &mut Vec<Mismatch>,
    ) -> Result<(), DbError> {
        let Some(image) = plan.image.as_ref() else {
            return Ok(());
        };
        // The images, in the plan's column order.
        let rows: Vec<(Vec<u8>, Vec<Value>)> = ids
            .iter()
            .filter_map(|id| {
                let e = self.pending.get_mut(table, id)?;
                let row: Option<Vec<Value>> =
                    image.iter().map(|&i| e.key.get(i).cloned()).collect();
                Some((id.clone(), row?))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let images: Vec<&[Value]> = rows.iter().map(|(_, r)| r.as_slice()).collect();
        let (s, t) = tokio::join!(
            count_images(&self.source, &plan.plan, Side::Source, table, &images),
            plan.on_target(|| count_images(
                &self.target,
                &plan.plan,
                Side::Target,
                &plan.target,
                &images
            ))
        );
        let (s, t) = (s?, t?);
        let now = Instant::now();
        for (id, row) in &rows {
            self.stats.rows_checked += 1;
            let group = encode(row);
            let (a, b) = (
                s.get(&group).map_or(0, |g| g.0),
                t.get(&group).map_or(0, |g| g.0),
            );
            let verdict = match a.cmp(&b) {
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(DiffKind::MissingInTarget),
                std::cmp::Ordering::Less => Some(DiffKind::ExtraInTarget),
            };
            let found = s.get(&group).or_else(|| t.get(&group)).map(|g| &g.1);
            let shown = || {
                let r = found.unwrap_or(row);
                Shown {
                    key: match row_json(&plan.plan, Some(r)) {
                        Json::Object(m) => m,
                        _ => Map::new(),
                    },
                    source: if a > 0 {
                        row_json(&plan.plan, Some(r))
                    } else {
                        Json::Null
                    },
                    target: if b > 0 {
                        row_json(&plan.plan, Some(r))
                    } else {
                        Json::Null
                    },
                    counts: Some(Counts {
                        source: a,
                        target: b,
                    }),
                }
            };
            if let Some(m) = self.judge(table, plan, id, verdict, shown, replicated, now, true) {
                confirmed.push(m);
            }
        }
        Ok(())
    }

    async fn plan(&mut self, table: &TableName) -> Result<Option<Arc<TablePlan>>, DbError> {
        if let Some(p) = self.plans.get(table) {
            return Ok(p.clone());
        }
        let target = self.routes.target_of(table);
        let (s, t) = tokio::join!(
            describe(&self.source, table),
            describe(&self.target, &target)
        );
        let (s, t) = (s?, t?);
        let plan = match s {
            None => None,
            Some(s) => {
                let target_missing = t.is_none();
                if target_missing {
                    self.confirm_missing(&target).await?;
                }
                let t = t.unwrap_or_else(|| s.clone());
                // A table that cannot be compared is left out with the reason (reported in
                // the summary), never a reason to stop verifying the others.
                match Plan::new(s, t, &ColumnFilter::default()) {
                    Err(e) => {
                        self.unchecked.insert(table.to_string(), e.to_string());
                        None
                    }
                    Ok(plan) if plan.mode == Mode::Multiset => {
                        let image = image_map(&plan);
                        let usable = plan
                            .columns
                            .iter()
                            .any(|c| image_filterable(&c.source.kind));
                        match image {
                            Some(image) if usable => Some(Arc::new(TablePlan {
                                plan,
                                target,
                                target_missing,
                                image: Some(image),
                                keyless: true,
                            })),
                            _ => {
                                self.unchecked.insert(
                                    table.to_string(),
                                    "a keyless table whose columns are all FLOAT, DOUBLE, \
                                     JSON or BIT: its rows cannot be looked up by image"
                                        .into(),
                                );
                                None
                            }
                        }
                    }
                    Ok(plan) => {
                        let image = image_map(&plan);
                        Some(Arc::new(TablePlan {
                            plan,
                            target,
                            target_missing,
                            image,
                            keyless: false,
                        }))
                    }
                }
            }
        };
        // A target table that does not exist yet (its CREATE still in flight) is looked up
        // again next time.
        if !plan.as_ref().is_some_and(|p| p.target_missing) {
            self.plans.insert(table.clone(), plan.clone());
        }
        Ok(plan)
    }
}

impl Checker {
    /// `information_schema` hides tables a user may not read, so "not described" is not
    /// "missing": only the server's own "doesn't exist" (1146) is. Anything else (no
    /// privilege, 1142) is an error, so the rows are never reported missing for it.
    async fn confirm_missing(&self, target: &TableName) -> Result<(), DbError> {
        match self
            .target
            .execute(&format!("SELECT 1 FROM {} LIMIT 0", target.quoted()))
            .await
        {
            Err(DbError::Query { message, .. }) if message.starts_with("ERROR 1146 ") => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Err(DbError::Query {
                role: cutover_core::Role::Target,
                message: format!(
                    "{target} exists but information_schema does not show its columns to \
                     this user; grant it SELECT on the table"
                ),
            }),
        }
    }
}

/// For [`Checker::judge`] calls that never confirm, so never show.
fn unreachable_shown() -> Shown {
    Shown {
        key: Map::new(),
        source: Json::Null,
        target: Json::Null,
        counts: None,
    }
}

/// Each compared column's place in the binlog's whole-row image (the source table's
/// columns in order), `None` when one is missing.
fn image_map(plan: &Plan) -> Option<Vec<usize>> {
    plan.columns
        .iter()
        .map(|c| {
            plan.source
                .columns
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(c.name()))
        })
        .collect()
}

fn row_json(plan: &Plan, row: Option<&Vec<Value>>) -> Json {
    match row {
        None => Json::Null,
        Some(r) => Json::Object(
            plan.columns
                .iter()
                .zip(r)
                .map(|(c, v)| (c.name().to_string(), v.to_json()))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_relay_file_names_map_to_upstream_files() {
        assert_eq!(
            dm_binlog_name("mysql-bin|000001.000003"),
            "mysql-bin.000003"
        );
        assert_eq!(dm_binlog_name("mysql-bin.000003"), "mysql-bin.000003");
        assert_eq!(dm_binlog_name(""), "");
    }
}
