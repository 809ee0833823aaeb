//! One check from start to end: gather, sample, history, rules, report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cutover_core::{Db, DbError};

use crate::facts::SchemaAnswers;
use crate::finding::{Report, Summary};
use crate::forecast::{self, Reading};
use crate::gather::{self, Selection};
use crate::history::{Entry, History, HistoryError};
use crate::profile::{Profile, TargetFlavor};
use crate::rules::{self, Facts, RuleOptions};

/// What to check and how.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub selection: Selection,
    /// `--target-flavor` (used when no target is connected).
    pub target_flavor: TargetFlavor,
    /// `--sample`: a second reading of the counters this much later.
    pub sample: Option<Duration>,
    /// `--history FILE`.
    pub history: Option<PathBuf>,
    pub rules: RuleOptions,
}

/// What a check tells while it runs (engines never print).
#[derive(Clone, Debug)]
pub enum Event {
    /// The first reading is taken; the second follows after this long.
    Sampling(Duration),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    History(#[from] HistoryError),
    /// `--databases` named databases the source does not show to the user.
    #[error("database {databases} does not exist on the source or {user} may not see it (grant SELECT on it)")]
    MissingDatabases { databases: String, user: String },
    #[error("no table of the selection is visible to {user} on the source: information_schema shows only the tables a user has privileges on; grant SELECT on the databases to check")]
    NoTableVisible { user: String },
}

/// Seconds since the Unix epoch, as a float.
fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The counters of a schema: `db.table.column` → last value used (AUTO_INCREMENT − 1, or the
/// largest value of an integer key).
pub fn counters(a: &SchemaAnswers) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let tables: std::collections::HashMap<(&str, &str), &crate::facts::TableRow> = a
        .tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t))
        .collect();
    for c in a.columns.iter().filter(|c| c.is_auto_increment()) {
        if let Some(t) = tables.get(&(c.schema.as_str(), c.table.as_str())) {
            if let Some(next) = t.auto_increment {
                out.insert(
                    format!("{}.{}.{}", c.schema, c.table, c.name),
                    next.saturating_sub(1),
                );
            }
        }
    }
    for kv in &a.key_values {
        if let Some(max) = kv.max.and_then(|m| u64::try_from(m).ok()) {
            out.insert(format!("{}.{}.{}", kv.schema, kv.table, kv.column), max);
        }
    }
    out
}

pub async fn check(
    source: &Db,
    target: Option<&Db>,
    opts: &CheckOptions,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Report, CheckError> {
    let started = Instant::now();
    let sel = &opts.selection;
    // Bad input first: a corrupt history stops the check before it reads anything.
    let history = match &opts.history {
        Some(p) => Some(History::load(p)?),
        None => None,
    };
    let source_answers = gather::server_answers(source).await?;
    let mut schema = gather::schema_answers(source, sel).await?;
    let user = source_answers
        .current_user
        .clone()
        .unwrap_or_else(|| source.endpoint().user.clone());
    let missing: Vec<&String> = sel
        .databases
        .iter()
        .filter(|d| !schema.schemata.iter().any(|s| &s.name == *d))
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::MissingDatabases {
            databases: missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            user,
        });
    }
    if schema.tables.is_empty() {
        return Err(CheckError::NoTableVisible { user });
    }

    // Readings of every counter: now, and `--sample` later.
    let t0 = now_f64();
    let first = counters(&schema);
    let mut readings: BTreeMap<String, Vec<Reading>> = first
        .iter()
        .map(|(k, v)| (k.clone(), vec![Reading { at: t0, value: *v }]))
        .collect();
    let mut latest_at = t0;
    if let Some(wait) = opts.sample {
        on_event(Event::Sampling(wait));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = source.cancel_token().cancelled() => return Err(DbError::Interrupted.into()),
        }
        // The counters and the largest values of integer keys, read again.
        let second = gather::counters(source, sel).await?;
        schema.key_values = gather::key_values(source, &schema).await?;
        let t1 = now_f64();
        latest_at = t1;
        for t in schema.tables.iter_mut() {
            if let Some(next) = second.get(&format!("{}.{}", t.schema, t.name)) {
                t.auto_increment = Some(*next);
            }
        }
        for (k, v) in counters(&schema) {
            if first.contains_key(&k) {
                readings
                    .entry(k)
                    .or_default()
                    .push(Reading { at: t1, value: v });
            }
        }
    }
    let mut rates = BTreeMap::new();
    let server = source.endpoint().address();
    for (key, now_readings) in &readings {
        let mut all = now_readings.clone();
        let mut from = "sample";
        if let Some(h) = &history {
            let past = h.readings(&server, key);
            if !past.is_empty() {
                from = "history";
            }
            all.extend(past);
        }
        if all.len() >= 2 {
            if let Some(r) = forecast::rate(&all) {
                rates.insert(key.clone(), (r, from));
            }
        }
    }

    let (profile, target_side) = match target {
        Some(t) => {
            let answers = gather::server_answers(t).await?;
            let profile = Profile::from_answers(&answers);
            let names: Vec<(String, String)> = schema
                .tables
                .iter()
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect();
            let mut of = rules::worker_tables(&schema, &opts.rules);
            if profile.is_tidb() {
                of.extend(rules::cache_sensitive_tables(&schema, &opts.rules));
            }
            let ts = gather::target_tables(t, &names, &of).await?;
            (profile, Some((answers, ts)))
        }
        None => (Profile::assumed(opts.target_flavor), None),
    };
    let facts = Facts {
        source: source_answers,
        schema,
        profile,
        target: target_side,
        rates,
    };
    let (findings, forecasts) = rules::evaluate(&facts, &opts.rules);

    if let Some(path) = &opts.history {
        let values: BTreeMap<String, u64> = readings
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last()?.value)))
            .collect();
        History::append(
            path,
            &Entry {
                at: latest_at,
                server,
                values,
            },
        )?;
    }

    let mut rates_from: Vec<String> = facts.rates.values().map(|(_, f)| f.to_string()).collect();
    rates_from.sort();
    rates_from.dedup();
    let summary = Summary {
        source: source.endpoint().redacted(),
        source_server: facts.source.version.clone(),
        target: target.map(|t| t.endpoint().redacted()),
        target_server: facts.profile.describe(),
        target_flavor: facts.profile.flavor.name().to_string(),
        databases: facts.schema.schemata.len(),
        tables: facts.schema.tables.len(),
        id_spaces: readings.len(),
        horizon_days: opts.rules.horizon_secs / 86_400.0,
        tidb_restarts_per_day: opts.rules.tidb_restarts_per_day,
        rates_from,
        elapsed_ms: started.elapsed().as_millis() as u64,
        forecasts,
        ..Summary::default()
    };
    let mut report = Report {
        findings,
        summary,
        ..Report::default()
    };
    report.finish();
    Ok(report)
}
