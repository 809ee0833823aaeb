//! `--recheck`: compare the differing rows again after a delay, for live migrations.
//!
//! While replication still applies changes, a diff sees rows in flight: written on the source,
//! not yet on the target. Those differences go away by themselves; a lost change does not.
//! After the pass, every difference found (by its typed key) is read again from both sides,
//! fresh (no snapshot), after `delay`, for up to `rounds` rounds. A difference that is gone
//! is reported as *converged*; one that is still there after the last round *persists* and is
//! the table's verdict, with its current values. Fix SQL, when asked for, is written from the
//! persisting differences only.
//!
//! Keyed tables are read back by key (`WHERE key IN (…)`, matched on the client by the exact
//! key, so a `_ci` collation cannot pair `'a'` with `'A'`). A keyless table is compared again
//! as a whole (its rows have no identity to read back by).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cutover_core::schema::{describe, TableName};
use cutover_core::value::Value;
use cutover_core::{Db, DbError};
use cutover_rows::{encode, fetch_by_key, Judge, Tally};

use crate::engine::{Diff, DiffOptions};
use crate::fix::FixSink;
use crate::plan::{Mode, Plan, Side};
use crate::report::{DiffKind, KeyRecord, RecheckSummary, Report, RowDiff, Status, TableReport};

/// How to recheck.
#[derive(Clone, Copy, Debug)]
pub struct Recheck {
    pub delay: Duration,
    pub rounds: u32,
}

type Row = Vec<Value>;

/// Keys read back per statement.
const BATCH: usize = 500;

/// Rechecks every table of the report that has differences. Tables that cannot be rechecked
/// keep their verdict and get an error note.
pub async fn recheck(
    source: &Db,
    target: &Db,
    report: &mut Report,
    opts: &DiffOptions,
    rc: Recheck,
    fix: Option<&dyn FixSink>,
) {
    let cancel = source.cancel_token().clone();
    for t in report.tables.iter_mut() {
        if t.status != Status::Different || t.differences() == 0 {
            continue;
        }
        if cancel.is_cancelled() {
            report.interrupted = true;
            break;
        }
        let result = if t.method == "multiset" {
            recheck_whole(source, target, t, opts, rc).await
        } else {
            recheck_keys(source, target, t, opts, rc, fix).await
        };
        if let Err(e) = result {
            if e.is_interrupted() {
                report.interrupted = true;
                break;
            }
            t.error = Some(format!("recheck failed: {e}"));
        }
        t.settle();
    }
    let elapsed = report.summary.elapsed_ms;
    report.summarize(elapsed);
}

async fn sleep(db: &Db, d: Duration) -> Result<(), DbError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = db.cancel_token().cancelled() => Err(DbError::Interrupted),
    }
}

fn table_name(s: &str) -> TableName {
    match s.split_once('.') {
        Some((a, b)) => TableName::new(a, b),
        None => TableName::new("", s),
    }
}

/// A keyless table: diffed again as a whole, each round.
async fn recheck_whole(
    source: &Db,
    target: &Db,
    t: &mut TableReport,
    opts: &DiffOptions,
    rc: Recheck,
) -> Result<(), DbError> {
    let before = t.diffs.clone();
    let rechecked = t.differences();
    let sn: Vec<TableName> = t.source_tables().iter().map(|s| table_name(s)).collect();
    let tn = table_name(&t.target);
    let mut latest = None;
    for round in 1..=rc.rounds.max(1) {
        sleep(source, rc.delay).await?;
        let again = Diff::new(source, target, opts).table(&sn, &tn).await;
        if let Some(e) = &again.error {
            return Err(DbError::Query {
                role: cutover_core::Role::Source,
                message: e.clone(),
            });
        }
        let done = again.differences() == 0;
        latest = Some((round, again));
        if done {
            break;
        }
    }
    let Some((rounds, again)) = latest else {
        return Ok(());
    };
    let still: HashSet<String> = again.diffs.iter().map(diff_identity).collect();
    t.converged = before
        .into_iter()
        .filter(|d| !still.contains(&diff_identity(d)))
        .collect();
    t.recheck = Some(RecheckSummary {
        rounds,
        delay_ms: rc.delay.as_millis() as u64,
        rechecked,
        converged: rechecked.saturating_sub(again.differences()),
        persisting: again.differences(),
        partial: false,
    });
    t.missing_in_target = again.missing_in_target;
    t.extra_in_target = again.extra_in_target;
    t.mismatched = again.mismatched;
    t.diffs = again.diffs;
    t.diffs_truncated = again.diffs_truncated;
    Ok(())
}

fn diff_identity(d: &RowDiff) -> String {
    format!("{:?}{}", d.kind, serde_json::Value::Object(d.key.clone()))
}

/// A keyed table: the differing keys are read back from both sides.
async fn recheck_keys(
    source: &Db,
    target: &Db,
    t: &mut TableReport,
    opts: &DiffOptions,
    rc: Recheck,
    fix: Option<&dyn FixSink>,
) -> Result<(), DbError> {
    let shards: Vec<TableName> = t.source_tables().iter().map(|s| table_name(s)).collect();
    let (sn, tn) = (shards[0].clone(), table_name(&t.target));
    let (s, tt) = tokio::join!(describe(source, &sn), describe(target, &tn));
    let (Some(s), Some(tt)) = (s?, tt?) else {
        return Err(DbError::Query {
            role: cutover_core::Role::Source,
            message: "the table is gone".into(),
        });
    };
    let plan = Plan::new(s, tt, &opts.columns).map_err(|e| DbError::Query {
        role: cutover_core::Role::Source,
        message: e.to_string(),
    })?;
    if plan.mode == Mode::Multiset {
        return recheck_whole(source, target, t, opts, rc).await;
    }
    let total = t.differences();
    let partial = (t.keys.len() as u64) < total;
    let mut pending: Vec<KeyRecord> = std::mem::take(&mut t.keys);
    let rechecked = pending.len() as u64;
    let mut converged_keys: Vec<KeyRecord> = Vec::new();
    let mut rounds = 0;
    let mut last: HashMap<Vec<u8>, (Option<Row>, Option<Row>)> = HashMap::new();
    let judge = Judge::new(&plan, &opts.compare);
    for _ in 0..rc.rounds.max(1) {
        rounds += 1;
        sleep(source, rc.delay).await?;
        last.clear();
        let mut still = Vec::new();
        for batch in pending.chunks(BATCH) {
            let (srows, trows) = tokio::join!(
                fetch_by_key(source, &plan, Side::Source, &shards, batch),
                fetch_by_key(
                    target,
                    &plan,
                    Side::Target,
                    std::slice::from_ref(&tn),
                    batch
                )
            );
            let (srows, trows) = (srows?.rows, trows?.rows);
            for k in batch {
                let id = encode(&k.key);
                let a = srows.get(&id).cloned();
                let b = trows.get(&id).cloned();
                if judge.verdict(a.as_deref(), b.as_deref()).is_none() {
                    converged_keys.push(k.clone());
                } else {
                    still.push(k.clone());
                    last.insert(id, (a, b));
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
    }
    // The table's differences are now the persisting ones, with their current values.
    t.converged = converged_keys
        .iter()
        .map(|k| RowDiff {
            kind: k.kind,
            key: plan.key_json(&k.key),
            columns: Vec::new(),
            count: None,
        })
        .collect();
    // Fix SQL from the persisting differences only, with their current values.
    let judge = judge.with_fix(fix, &tn);
    let mut tally = Tally::default();
    for k in &pending {
        let Some((a, b)) = last.get(&encode(&k.key)) else {
            continue;
        };
        if let Some(d) = judge.keyed(&k.key, a.as_deref(), b.as_deref()) {
            tally.add(d, opts.max_diffs);
        }
    }
    let (mut missing, mut extra, mut mismatched) = (
        tally.missing_in_target,
        tally.extra_in_target,
        tally.mismatched,
    );
    // Differences beyond the kept keys were not re-read: they still count, by kind.
    if partial {
        let kept = |kind: DiffKind| {
            pending.iter().filter(|k| k.kind == kind).count() as u64
                + converged_keys.iter().filter(|k| k.kind == kind).count() as u64
        };
        missing += t
            .missing_in_target
            .saturating_sub(kept(DiffKind::MissingInTarget));
        extra += t
            .extra_in_target
            .saturating_sub(kept(DiffKind::ExtraInTarget));
        mismatched += t.mismatched.saturating_sub(kept(DiffKind::Mismatched));
    }
    t.diffs_truncated = partial || (missing + extra + mismatched) as usize > tally.diffs.len();
    t.diffs = tally.diffs;
    t.missing_in_target = missing;
    t.extra_in_target = extra;
    t.mismatched = mismatched;
    t.recheck = Some(RecheckSummary {
        rounds,
        delay_ms: rc.delay.as_millis() as u64,
        rechecked,
        converged: converged_keys.len() as u64,
        persisting: total.saturating_sub(converged_keys.len() as u64),
        partial,
    });
    Ok(())
}
