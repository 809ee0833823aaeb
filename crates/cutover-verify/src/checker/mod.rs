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
use cutover_core::schema::TableName;
use cutover_core::value::{CompareOptions, Value};
use cutover_core::{Db, DbError};
use cutover_rows::fetch::fetch_by_key;
use cutover_rows::{encode, DiffKind, Judge, Plan, Side};
use serde_json::{Map, Value as Json};

use crate::change::RowChange;
use crate::pending::{Expected, PendingSet, SavedPending};

mod images;
mod plan;
mod progress;

use plan::TablePlan;
pub use progress::{dm_binlog_name, Progress, Replicated};

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
