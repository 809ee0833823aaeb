//! What the demo checks of its own result: each step must find exactly what the data
//! planted, and nothing else.

use anyhow::{anyhow, Result};
use cutover_diff::report::DiffKind;

use super::data::{DRIFT, LOST};

/// Errors the readiness check must report on the sample schema: a keyless table TiDB's
/// replication cannot apply by key, and a uid-generator worker table whose worker IDs run out
/// within a few TiDB restarts (each one skips an `AUTO_ID_CACHE` batch of 30,000).
pub(super) const CHECK_FINDS: &[(&str, &str)] = &[
    ("schema.no_key", "shop.audit_log"),
    ("id.worker_table", "shop.WORKER_NODE"),
];

/// What `check --workload` must find in the sessions, and nothing else.
const WORKLOAD_FINDS: [&str; 3] = [
    "workload.lock_in_share_mode",
    "workload.prepared_churn",
    "workload.range_lock_insert",
];
const REPLAY_DIFFERS: [&str; 2] = [
    "SELECT COUNT(*) FROM customers WHERE name LIKE 'ana%'",
    "SELECT id FROM customers WHERE name = 'chen 2'",
];

/// A difference as the demo compares them: table, kind and key, the kind and the key as
/// JSON text.
type Difference = (String, String, String);

fn difference(table: &str, kind: &DiffKind, key: String) -> Difference {
    let kind = serde_json::to_string(kind).unwrap_or_default();
    (table.to_string(), kind, key)
}

fn sorted(mut differences: Vec<Difference>) -> Vec<Difference> {
    differences.sort();
    differences
}

/// The readiness check reported every error the sample schema plants.
pub(super) fn check_found_the_planted_errors(checked: &cutover_check::Report) -> Result<()> {
    for (rule, object) in CHECK_FINDS {
        let found = checked.findings.iter().any(|f| {
            f.rule == *rule
                && f.severity == cutover_check::Severity::Error
                && f.object.as_deref().is_some_and(|o| o.starts_with(object))
        });
        if !found {
            return Err(anyhow!(
                "the demo expected the check to report {rule} on {object} as an error"
            ));
        }
    }
    Ok(())
}

/// The diff found exactly the drift let into the target. Returns how many differences were
/// injected and how many found (the same).
pub(super) fn diff_found_the_drift(report: &cutover_diff::Report) -> Result<(usize, usize)> {
    let found = sorted(
        report
            .tables
            .iter()
            .flat_map(|t| {
                t.diffs.iter().map(move |d| {
                    let key = serde_json::Value::Object(d.key.clone()).to_string();
                    difference(t.source.trim_start_matches("shop."), &d.kind, key)
                })
            })
            .collect(),
    );
    let expected = sorted(
        DRIFT
            .iter()
            .map(|(_, t, k, key)| difference(t, k, key.to_string()))
            .collect(),
    );
    if found != expected {
        return Err(anyhow!(
            "the demo expected {expected:?} but the diff found {found:?}"
        ));
    }
    Ok((expected.len(), found.len()))
}

/// Verify confirmed exactly the rows of the transaction the replica lost. Returns how many.
pub(super) fn verify_confirmed_the_lost_rows(found: &[cutover_verify::Mismatch]) -> Result<usize> {
    let got = sorted(
        found
            .iter()
            .map(|m| {
                let key = serde_json::Value::Object(m.key.clone()).to_string();
                difference(&m.table, &m.kind, key)
            })
            .collect(),
    );
    let want = sorted(
        LOST.iter()
            .map(|(t, k, key)| difference(t, k, key.to_string()))
            .collect(),
    );
    if got != want {
        return Err(anyhow!(
            "the demo expected verify to confirm {want:?} but it confirmed {got:?}"
        ));
    }
    Ok(LOST.len())
}

/// The replay found exactly the statements whose answers the target's collation changes,
/// and skipped the UPDATE. Returns how many statements differed.
pub(super) fn replay_found_the_collation(report: &cutover_replay::report::Report) -> Result<usize> {
    let mut found: Vec<String> = report
        .classes
        .iter()
        .filter(|c| c.diffs > 0)
        .flat_map(|c| c.samples.iter().map(|s| s.sql.clone()))
        .collect();
    found.sort();
    let mut want: Vec<String> = REPLAY_DIFFERS.iter().map(|s| s.to_string()).collect();
    want.sort();
    // The UPDATE is dropped by --read-only (and so is the INSERT after the range lock).
    let update_skipped = report
        .classes
        .iter()
        .any(|c| c.fingerprint.starts_with("update orders") && c.skipped == 1 && c.count == 0);
    if found != want || !update_skipped {
        return Err(anyhow!(
            "the demo expected the replay to find {want:?} and skip the UPDATE, but it found {found:?}"
        ));
    }
    Ok(found.len())
}

/// `check --workload` named what the sessions will meet on TiDB, and nothing else.
pub(super) fn workload_check_found_the_sessions_habits(
    checked: &cutover_check::Report,
) -> Result<()> {
    let mut rules: Vec<&str> = checked.findings.iter().map(|f| f.rule).collect();
    rules.sort();
    rules.dedup();
    if rules != WORKLOAD_FINDS {
        return Err(anyhow!(
            "the demo expected the workload check to find {WORKLOAD_FINDS:?}, but it found {rules:?}"
        ));
    }
    Ok(())
}
