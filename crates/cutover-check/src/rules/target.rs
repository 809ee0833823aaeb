//! A connected target: its version, the migration user's privileges there, tables that
//! already hold rows, and the TiDB settings a migration meets (collation framework,
//! transaction mode, GC life time, AUTO_ID_CACHE of allocator tables).

use std::collections::BTreeSet;

use super::ids::{is_worker_table, target_cache_is_one};
use super::privileges::Privileges;
use super::tables::TableView;
use super::{bytes, Facts, RuleOptions};
use crate::finding::{Finding, Severity};
use crate::forecast;
use crate::profile::parse_go_duration;

use Severity::{Error, Info, Warning};

/// Throughput assumed for a full diff, to judge TiDB's GC life time (bytes per second of
/// table data; the field notes measured ~1 GB/s for one checksum pass on the sandbox, and a
/// production diff is throttled well below that).
const DIFF_BYTES_PER_SECOND: f64 = 64.0 * 1024.0 * 1024.0;

pub(super) fn target_rules(
    f: &Facts,
    tables: &[TableView],
    opts: &RuleOptions,
    out: &mut Vec<Finding>,
) {
    let p = &f.profile;
    let Some((ta, ts)) = &f.target else {
        out.push(Finding::new(
            "target.version",
            Info,
            None,
            format!("no --target given: checked against {}", p.describe()),
            "pass --target to check the target's version, settings, privileges and existing tables",
        ));
        return;
    };
    out.push(Finding::new(
        "target.version",
        Info,
        None,
        format!("target is {} ({})", p.describe(), ta.version),
        "",
    ));
    let user = ta
        .current_user
        .clone()
        .unwrap_or_else(|| "this user".into());
    match &ta.grants {
        None => out.push(Finding::new(
            "target.privileges",
            Warning,
            None,
            format!("the target refused SHOW GRANTS for {user}; privileges could not be checked"),
            "run the check as the user the migration will write with",
        )),
        Some(g) => {
            let priv_ = Privileges::from(g);
            let needed = [
                "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX",
            ];
            let mut missing = BTreeSet::new();
            for db in f.schema.schemata.iter().map(|s| s.name.as_str()) {
                for n in needed {
                    if !priv_.has_on(db, n) {
                        missing.insert(n);
                    }
                }
            }
            if !missing.is_empty() {
                let m: Vec<&str> = missing.into_iter().collect();
                out.push(Finding::new(
                    "target.privileges",
                    Error,
                    None,
                    format!("{user} lacks {} on the migrated databases of the target: the load and replication cannot write", m.join(", ")),
                    format!("GRANT {} ON <db>.* TO {user}", m.join(", ")),
                ));
            }
        }
    }
    let non_empty: BTreeSet<&String> = ts.non_empty.iter().collect();
    for t in &ts.tables {
        let tid = format!("{}.{}", t.schema, t.name);
        if non_empty.contains(&tid) {
            out.push(Finding::new(
                "target.non_empty",
                Warning,
                Some(tid.clone()),
                format!("{tid} already exists on the target and holds rows"),
                "a full load into it conflicts with what is there: empty it (or confirm this is a resumed load)",
            ));
        }
    }
    if !p.is_tidb() {
        return;
    }
    if !p.new_collation {
        out.push(Finding::new(
            "target.collation_framework",
            Warning,
            None,
            "the TiDB cluster runs the old collation framework (new_collation_enabled = False): every _ci collation compares as binary",
            "the framework is fixed when a cluster is bootstrapped: create the cluster with new_collations_enabled_on_first_bootstrap = true, or accept exact comparison",
        ));
    }
    if let Some(mode) = ta.var("tidb_txn_mode") {
        if mode.eq_ignore_ascii_case("optimistic") {
            out.push(Finding::new(
                "target.txn_mode",
                Warning,
                None,
                "tidb_txn_mode is optimistic: concurrent writes to the same rows fail at COMMIT (error 9007, write conflict) where MySQL would wait",
                "SET GLOBAL tidb_txn_mode = 'pessimistic' (the default since v3.0.8) unless the application retries every transaction",
            ));
        }
    }
    if let Some(gc) = ta.var("tidb_gc_life_time") {
        if let Ok(secs) = parse_go_duration(gc) {
            let data: u64 = f.schema.tables.iter().filter_map(|t| t.data_length).sum();
            let expected = data as f64 / DIFF_BYTES_PER_SECOND;
            if secs < expected {
                out.push(Finding::new(
                    "target.gc_life_time",
                    Warning,
                    None,
                    format!(
                        "tidb_gc_life_time is {gc}, shorter than a full diff of the {} selected is expected to take (~{}): a diff reading TiDB at one snapshot would lose it to GC",
                        bytes(data),
                        forecast::human_duration(expected)
                    ),
                    "raise tidb_gc_life_time for the duration of the diff (and lower it afterwards)",
                ));
            }
        }
    }
    // Allocator tables that already exist on the TiDB target.
    for tid in ts.show_create.keys() {
        let Some(v) = tables.iter().find(|v| v.id() == *tid) else {
            continue;
        };
        let is_worker = is_worker_table(v, opts);
        let one = target_cache_is_one(f, tid).unwrap_or(false);
        out.push(Finding::new(
            "target.auto_id_cache",
            if one { Info } else if is_worker { Error } else { Warning },
            Some(tid.clone()),
            if one {
                format!("{tid} on the target allocates with AUTO_ID_CACHE 1: no jumps on restart")
            } else {
                format!("{tid} on the target uses TiDB's default AUTO_ID_CACHE: every TiDB server takes 30,000 IDs at a time and loses the rest on restart")
            },
            if one { "" } else { "ALTER TABLE … AUTO_ID_CACHE 1 is not possible: recreate the table with AUTO_ID_CACHE 1 and copy the rows" },
        ));
    }
}
