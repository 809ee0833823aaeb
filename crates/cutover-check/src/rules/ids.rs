//! ID headroom: AUTO_INCREMENT counters, integer keys read with `MAX()`, snowflake layouts
//! and uid-generator worker tables, forecast against the horizon and TiDB's AUTO_ID_CACHE.

use std::collections::{BTreeSet, HashMap};

use super::tables::{views, TableView};
use super::Facts;
use super::{group, RuleOptions};
use crate::facts::*;
use crate::finding::{Finding, ForecastLine, Severity};
use crate::forecast::{self, IdSpace, TIDB_AUTO_ID_CACHE};
use crate::snowflake::Layout;
use crate::time;

use Severity::{Error, Info, Warning};

/// Single-column integer row keys without AUTO_INCREMENT, as `(db, table, column)`: the keys
/// whose largest value is read with `MAX()`.
pub fn integer_keys_without_counter(a: &SchemaAnswers) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for v in views(a) {
        if !v.is_base() || v.auto_increment_column().is_some() {
            continue;
        }
        let Some((_, parts)) = v.row_key() else {
            continue;
        };
        if parts.len() != 1 {
            continue;
        }
        let Some(col) = parts[0].column.as_deref().and_then(|c| v.column(c)) else {
            continue;
        };
        if forecast::type_max(&col.data_type, col.unsigned()).is_some() {
            out.push((v.row.schema.clone(), v.row.name.clone(), col.name.clone()));
        }
    }
    out
}

/// Whether a table has the shape of uid-generator's `WORKER_NODE`: an AUTO_INCREMENT id
/// beside host, port and type columns.
pub(super) fn is_worker_table(v: &TableView, opts: &RuleOptions) -> bool {
    if let Some((s, t)) = &opts.worker_table {
        return &v.row.schema == s && &v.row.name == t;
    }
    if v.auto_increment_column().is_none() {
        return false;
    }
    let has =
        |pred: &dyn Fn(&str) -> bool| v.columns.iter().any(|c| pred(&c.name.to_ascii_lowercase()));
    has(&|n| n.starts_with("host") || n == "ip") && has(&|n| n == "port") && has(&|n| n == "type")
}

/// The allocator tables among the selected ones (for the target's `SHOW CREATE TABLE`).
pub fn worker_tables(a: &SchemaAnswers, opts: &RuleOptions) -> Vec<(String, String)> {
    views(a)
        .iter()
        .filter(|v| v.is_base() && is_worker_table(v, opts))
        .map(|v| (v.row.schema.clone(), v.row.name.clone()))
        .collect()
}

/// AUTO_INCREMENT tables whose verdict depends on the target's AUTO_ID_CACHE: those a few
/// batches of 30,000 would exhaust within the horizon.
pub fn cache_sensitive_tables(a: &SchemaAnswers, opts: &RuleOptions) -> Vec<(String, String)> {
    let step = 1;
    views(a)
        .iter()
        .filter(|v| v.is_base())
        .filter_map(|v| {
            let c = v.auto_increment_column()?;
            let cap = forecast::type_max(&c.data_type, c.unsigned())?;
            let used = v.row.auto_increment?.saturating_sub(1);
            let space = IdSpace::new(cap, used, step);
            let batches = (opts.tidb_restarts_per_day * opts.horizon_secs / 86_400.0).max(1.0);
            (space.headroom as f64 <= TIDB_AUTO_ID_CACHE as f64 * batches)
                .then(|| (v.row.schema.clone(), v.row.name.clone()))
        })
        .collect()
}

/// Whether the target's copy of a table allocates one ID at a time (`AUTO_ID_CACHE 1`).
pub(super) fn target_cache_is_one(f: &Facts, table_id: &str) -> Option<bool> {
    let (_, ts) = f.target.as_ref()?;
    let ddl = ts.show_create.get(table_id)?;
    let norm: String = ddl
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let at = norm.find("AUTO_ID_CACHE=")? + "AUTO_ID_CACHE=".len();
    let digits: String = norm[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some(digits == "1")
}

pub(super) fn id_rules(
    f: &Facts,
    tables: &[TableView],
    opts: &RuleOptions,
    out: &mut Vec<Finding>,
) -> Vec<ForecastLine> {
    let mut lines = Vec::new();
    let horizon = opts.horizon_secs;
    let horizon_text = forecast::human_duration(horizon);
    let step = f
        .source
        .var("auto_increment_increment")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let tidb = f.profile.is_tidb();
    let burn = TIDB_AUTO_ID_CACHE as f64 * opts.tidb_restarts_per_day / 86_400.0;
    let now = opts.now;
    // "in 41 days (2027-01-07)"; beyond a thousand years the date says nothing more.
    let date_in = |secs: f64| {
        if secs > 1000.0 * 365.25 * 86_400.0 {
            "over 1,000 years".to_string()
        } else {
            format!(
                "{} ({})",
                forecast::human_duration(secs),
                time::format_date(now.saturating_add(secs as i64))
            )
        }
    };

    // Layout detection on BIGINT keys without a counter.
    let layouts = match &opts.snowflake {
        Some(l) => vec![l.clone()],
        None => Layout::known(),
    };
    let mut snowflake_keys = BTreeSet::new();
    let mut detected_worker_bits: Option<u32> = opts.snowflake.as_ref().map(|l| l.worker_bits);
    let columns: HashMap<(&str, &str, &str), &ColumnRow> = f
        .schema
        .columns
        .iter()
        .map(|c| ((c.schema.as_str(), c.table.as_str(), c.name.as_str()), c))
        .collect();
    let key_values: HashMap<(&str, &str), &KeyValueRow> = f
        .schema
        .key_values
        .iter()
        .map(|k| ((k.schema.as_str(), k.table.as_str()), k))
        .collect();
    for kv in &f.schema.key_values {
        let Some(col) = columns
            .get(&(kv.schema.as_str(), kv.table.as_str(), kv.column.as_str()))
            .copied()
        else {
            continue;
        };
        if col.data_type != "bigint" {
            continue;
        }
        let Some(max) = kv.max.and_then(|m| i64::try_from(m).ok()) else {
            continue;
        };
        let now_ms = now.saturating_mul(1000);
        let best = layouts
            .iter()
            .filter_map(|l| Some((l, l.decode(max)?)))
            .filter(|(_, d)| {
                d.time_ms >= now_ms - 3 * 365 * 86_400_000 && d.time_ms <= now_ms + 86_400_000
            })
            .min_by_key(|(_, d)| (d.time_ms - now_ms).abs());
        let Some((l, d)) = best else { continue };
        let cid = format!("{}.{}.{}", kv.schema, kv.table, kv.column);
        snowflake_keys.insert(cid.clone());
        if detected_worker_bits.is_none() && l.name == "uid-generator" {
            detected_worker_bits = Some(l.worker_bits);
        }
        let Some(end_ms) = l.exhausted_at_ms() else {
            continue;
        };
        let left = (end_ms - now_ms) as f64 / 1000.0;
        let sev = if left <= horizon {
            Error
        } else if d.worker as f64 >= 0.9 * l.max_worker() as f64 {
            Warning
        } else {
            Info
        };
        let ends = if left <= 0.0 {
            format!(
                "its time field ran out on {}: new IDs cannot be made (or wrap around and collide)",
                time::format_date(end_ms / 1000)
            )
        } else {
            format!(
                "its time field runs out on {} (in {})",
                time::format_date(end_ms / 1000),
                forecast::human_duration(left)
            )
        };
        out.push(Finding::new(
            "id.snowflake",
            sev,
            Some(cid.clone()),
            format!(
                "{cid} holds snowflake IDs, layout {}: the largest decodes to {} (worker {}, sequence {}); {ends}; {} worker IDs, {} IDs per worker per tick",
                l.describe(),
                time::format_instant(d.time_ms.div_euclid(1000)),
                d.worker,
                d.seq,
                group(l.max_worker() + 1),
                group(l.ids_per_tick()),
            ),
            if sev == Error {
                "move the generator to a layout with a later end (a new epoch, more time bits) before that date, and check that no two layouts can produce the same ID"
            } else if sev == Warning {
                "worker IDs are close to the layout's limit: reuse worker IDs or widen the worker field"
            } else {
                ""
            },
        ));
    }

    for v in tables.iter().filter(|v| v.is_base()) {
        let id = v.id();
        let worker = is_worker_table(v, opts);
        // The counter, or MAX() of an integer key.
        let (col, used, kind) = if let Some(c) = v.auto_increment_column() {
            let Some(next) = v.row.auto_increment else {
                continue;
            };
            (
                c,
                next.saturating_sub(1),
                if worker {
                    "worker_table"
                } else {
                    "auto_increment"
                },
            )
        } else {
            let Some(kv) = key_values
                .get(&(v.row.schema.as_str(), v.row.name.as_str()))
                .copied()
            else {
                continue;
            };
            let Some(c) = v.column(&kv.column) else {
                continue;
            };
            let Some(max) = kv.max else { continue };
            if max < 0 {
                continue;
            }
            (c, u64::try_from(max).unwrap_or(u64::MAX), "integer_key")
        };
        let cid = format!("{id}.{}", col.name);
        if snowflake_keys.contains(&cid) {
            continue;
        }
        let Some(type_cap) = forecast::type_max(&col.data_type, col.unsigned()) else {
            continue;
        };
        let worker_bits = detected_worker_bits.unwrap_or(22);
        let capacity = if worker {
            type_cap.min((1u64 << worker_bits) - 1)
        } else {
            type_cap
        };
        let space = IdSpace::new(capacity, used, if kind == "integer_key" { 1 } else { step });
        let rate = f.rates.get(&cid);
        let r_now = rate.map(|(r, _)| r.recent_per_second.unwrap_or(r.per_second));
        let eta = rate.and_then(|(r, _)| forecast::eta_linear(space.headroom, r.per_second));
        let eta_growth = rate.and_then(|(r, _)| {
            let k = r.growth_per_second?;
            forecast::eta_growth(
                space.headroom,
                r.recent_per_second.unwrap_or(r.per_second),
                k,
            )
        });
        let cache_one = target_cache_is_one(f, &id).unwrap_or(false);
        let tidb_alloc = tidb && kind != "integer_key" && !cache_one;
        let eta_tidb = if tidb_alloc {
            forecast::eta_linear(space.headroom, r_now.unwrap_or(0.0) + burn)
        } else {
            None
        };
        let mut reasons = Vec::new();
        let mut sev: Option<Severity> = None;
        let mut raise = |s: Severity, why: String| {
            sev = Some(sev.map_or(s, |x: Severity| x.min(s)));
            reasons.push(why);
        };
        if space.ratio >= 0.9 {
            raise(Error, "90 % or more of the space is used".into());
        } else if space.ratio >= 0.5 {
            raise(Warning, "half or more of the space is used".into());
        }
        if eta.is_some_and(|t| t <= horizon) || eta_growth.is_some_and(|t| t <= horizon) {
            raise(
                Error,
                format!("it runs out within the horizon of {horizon_text}"),
            );
        }
        if tidb_alloc && space.headroom < TIDB_AUTO_ID_CACHE {
            raise(
                Error,
                "on TiDB, fewer IDs are left than one AUTO_ID_CACHE batch of 30,000".into(),
            );
        } else if eta_tidb.is_some_and(|t| t <= horizon) {
            raise(Error, format!("on TiDB, with {} restart(s) a day each skipping up to 30,000 IDs, it runs out within the horizon of {horizon_text}", opts.tidb_restarts_per_day));
        } else if tidb_alloc && worker {
            raise(Warning, "on TiDB, every restart of a TiDB server (or an insert through another one) can skip up to 30,000 worker IDs".into());
        }
        if rate.is_some() && sev.is_none() {
            sev = Some(Info);
        }
        if worker && sev.is_none() {
            sev = Some(Info);
        }
        let Some(sev) = sev else { continue };
        let mut msg = if worker {
            format!(
                "{cid} allocates worker IDs (uid-generator WORKER_NODE shape): {} of {} used ({} worker bits), {} left",
                group(space.used),
                group(capacity),
                worker_bits,
                group(space.headroom)
            )
        } else {
            format!(
                "{cid} ({}{}) is at {} of {} ({:.1} % used), {} IDs left",
                col.column_type,
                if kind == "integer_key" {
                    ", largest value"
                } else {
                    " AUTO_INCREMENT"
                },
                group(space.used),
                group(capacity),
                space.ratio * 100.0,
                group(space.headroom)
            )
        };
        if let Some((r, from)) = rate {
            msg.push_str(&format!(
                "; consumption {:.3}/s ({:.0}/day, from {from})",
                r.per_second,
                r.per_second * 86_400.0
            ));
            match eta {
                Some(t) => msg.push_str(&format!(", runs out in {}", date_in(t))),
                None => msg.push_str(", not growing"),
            }
            if let (Some(t), Some(k)) = (eta_growth, r.growth_per_second) {
                msg.push_str(&format!(
                    "; with its growth of {:.1} %/day, in {}",
                    (k * 86_400.0).exp_m1() * 100.0,
                    date_in(t)
                ));
            }
        }
        if let Some(t) = eta_tidb.filter(|_| space.headroom >= TIDB_AUTO_ID_CACHE) {
            msg.push_str(&format!(
                "; on TiDB with {} restart(s)/day (30,000 IDs each), in {}",
                opts.tidb_restarts_per_day,
                date_in(t)
            ));
            if worker {
                msg.push_str(&format!(
                    ", {} restarts' worth left",
                    group(space.headroom / TIDB_AUTO_ID_CACHE)
                ));
            }
        }
        if cache_one {
            msg.push_str("; the target table allocates with AUTO_ID_CACHE 1");
        }
        if !reasons.is_empty() {
            msg.push_str(&format!(": {}", reasons.join("; ")));
        }
        let advice = if worker && tidb {
            "create the worker table on TiDB with AUTO_ID_CACHE 1 (one ID per insert, no jumps on restart), and reuse worker IDs (e.g. a fixed ID per host) instead of taking a new one at every start"
        } else if worker {
            "reuse worker IDs (e.g. a fixed ID per host, or recycle the IDs of stopped instances) instead of taking a new one at every start, or widen the worker field"
        } else if tidb_alloc
            && (space.headroom < TIDB_AUTO_ID_CACHE || eta_tidb.is_some_and(|t| t <= horizon))
        {
            "create the table on TiDB with AUTO_ID_CACHE 1 (MySQL-compatible allocation), or AUTO_RANDOM if the key need not increase; widen the column to BIGINT"
        } else if sev == Info {
            ""
        } else if kind == "integer_key" {
            "widen the column (BIGINT, UNSIGNED) before the migration, and check how the application generates the values"
        } else if tidb {
            "widen the column (BIGINT, UNSIGNED) before the migration; on TiDB create it with AUTO_ID_CACHE 1, or AUTO_RANDOM where order does not matter"
        } else {
            "widen the column (BIGINT, UNSIGNED) before the migration"
        };
        out.push(Finding::new(
            if worker {
                "id.worker_table"
            } else if kind == "integer_key" {
                "id.integer_key"
            } else {
                "id.auto_increment"
            },
            sev,
            Some(cid.clone()),
            msg,
            advice,
        ));
        lines.push(ForecastLine {
            object: cid,
            kind,
            capacity,
            used: space.used,
            headroom: space.headroom,
            ratio: space.ratio,
            rate_per_second: rate.map(|(r, _)| r.per_second),
            rate_from: rate.map(|(_, s)| *s),
            growth_per_day: rate
                .and_then(|(r, _)| r.growth_per_second)
                .map(|k| k * 86_400.0),
            eta_seconds: eta,
            eta_growth_seconds: eta_growth,
            eta_tidb_seconds: eta_tidb,
        });
    }
    lines
}
