//! The rules: pure functions from [`Facts`] to [`Finding`]s. Nothing here talks to a server,
//! so every rule runs the same on live answers and on recorded ones.
//!
//! One module per family: [`source`] (server settings, binlog, retention), [`privileges`]
//! (the migration user's grants on either side), [`schema`] (tables, columns, indexes and
//! stored code the target treats differently), [`ids`] (ID headroom: counters, integer keys,
//! snowflake layouts, worker tables) and [`target`] (a connected target's settings and
//! tables); [`tables`] is the view of a table they share.

mod ids;
mod privileges;
mod schema;
mod source;
mod tables;
mod target;

pub use ids::{cache_sensitive_tables, integer_keys_without_counter, worker_tables};

use std::collections::BTreeMap;

use crate::facts::{SchemaAnswers, ServerAnswers};
use crate::finding::{Finding, ForecastLine};
use crate::forecast::Rate;
use crate::profile::Profile;
use crate::snowflake::Layout;
use crate::time;

/// Everything the rules look at.
#[derive(Clone, Debug)]
pub struct Facts {
    pub source: ServerAnswers,
    pub schema: SchemaAnswers,
    pub profile: Profile,
    /// A connected target's answers, and its side of the selected tables.
    pub target: Option<(ServerAnswers, SchemaAnswers)>,
    /// Consumption per `db.table.column`, and where it comes from.
    pub rates: BTreeMap<String, (Rate, &'static str)>,
}

/// Knobs of the rules.
#[derive(Clone, Debug)]
pub struct RuleOptions {
    /// `--horizon`, in seconds.
    pub horizon_secs: f64,
    /// `--tidb-restarts-per-day`.
    pub tidb_restarts_per_day: f64,
    /// `--snowflake`: tried instead of the known layouts.
    pub snowflake: Option<Layout>,
    /// `--worker-table db.t`.
    pub worker_table: Option<(String, String)>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            horizon_secs: 90.0 * 86_400.0,
            tidb_restarts_per_day: 1.0,
            snowflake: None,
            worker_table: None,
            now: time::now_secs(),
        }
    }
}

/// Runs every rule.
pub fn evaluate(f: &Facts, opts: &RuleOptions) -> (Vec<Finding>, Vec<ForecastLine>) {
    let mut out = Vec::new();
    source::source_rules(f, &mut out);
    privileges::privilege_rules(f, &mut out);
    let tables = tables::views(&f.schema);
    schema::schema_rules(f, &tables, &mut out);
    let forecasts = ids::id_rules(f, &tables, opts, &mut out);
    target::target_rules(f, &tables, opts, &mut out);
    (out, forecasts)
}

pub(super) fn is_on(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.to_ascii_uppercase()).as_deref(),
        Some("ON" | "1" | "TRUE")
    )
}

pub(super) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
