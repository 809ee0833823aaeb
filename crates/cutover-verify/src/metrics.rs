//! Prometheus metrics of a verification (`--metrics-addr`), through the `metrics` facade:
//! without an installed exporter every call is a no-op. Names and meanings are documented
//! here and in `dashboards/cutover-verify.json`, the Grafana dashboard over them.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `cutover_verify_events_total` | counter | binlog events read |
//! | `cutover_verify_changes_total` | counter | row changes of selected tables (this shard) taken in |
//! | `cutover_verify_merged_total` | counter | changes merged into a key already pending (checked once for all) |
//! | `cutover_verify_rows_checked_total` | counter | rows read and compared |
//! | `cutover_verify_rows_verified_total` | counter | changed rows seen equal on both sides |
//! | `cutover_verify_source_reads_total` | counter | rows re-read from the source (keys that kept failing against their binlog row) |
//! | `cutover_verify_pending` | gauge | keys waiting to be seen equal |
//! | `cutover_verify_busy` | gauge | pending keys that keep changing |
//! | `cutover_verify_confirmed_total` | gauge | mismatches confirmed (whole verification) |
//! | `cutover_verify_resolved_total` | gauge | mismatches that converged |
//! | `cutover_verify_check_errors_total` | counter | check rounds that failed and were retried |
//! | `cutover_verify_source_lag_seconds` | gauge | from a change's commit on the source to it being read |
//! | `cutover_verify_lag_seconds` | histogram | from a change being read to its row being seen equal |
//! | `cutover_verify_oldest_pending_seconds` | gauge | age of the oldest pending key |
//! | `cutover_verify_binlog_file` | gauge | number of the binlog file being read (`.000042` → 42) |
//! | `cutover_verify_binlog_position` | gauge | offset in that file |

use metrics::{counter, gauge, histogram};

use crate::position::BinlogPos;
use crate::Summary;

/// Describes every metric (the `# HELP` lines).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("cutover_verify_events_total", "Binlog events read");
    describe_counter!(
        "cutover_verify_changes_total",
        "Row changes of selected tables taken in"
    );
    describe_counter!(
        "cutover_verify_merged_total",
        "Row changes merged into a key already pending"
    );
    describe_counter!(
        "cutover_verify_rows_checked_total",
        "Rows read by key and compared"
    );
    describe_counter!(
        "cutover_verify_rows_verified_total",
        "Changed rows seen equal on both sides"
    );
    describe_counter!(
        "cutover_verify_source_reads_total",
        "Rows re-read from the source: keys that kept failing against their binlog row"
    );
    describe_gauge!("cutover_verify_pending", "Keys waiting to be seen equal");
    describe_gauge!("cutover_verify_busy", "Pending keys that keep changing");
    describe_gauge!(
        "cutover_verify_confirmed_total",
        "Mismatches confirmed after grace"
    );
    describe_gauge!(
        "cutover_verify_resolved_total",
        "Mismatches that converged while pending"
    );
    describe_counter!(
        "cutover_verify_check_errors_total",
        "Check rounds that failed and were retried"
    );
    describe_gauge!(
        "cutover_verify_source_lag_seconds",
        Unit::Seconds,
        "From a change's commit on the source to cutover reading it"
    );
    describe_histogram!(
        "cutover_verify_lag_seconds",
        Unit::Seconds,
        "From a change being read to its row being seen equal on both sides"
    );
    describe_gauge!(
        "cutover_verify_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest pending key"
    );
    describe_gauge!(
        "cutover_verify_binlog_file",
        "Number of the source binlog file being read"
    );
    describe_gauge!(
        "cutover_verify_binlog_position",
        "Offset in the source binlog file being read"
    );
    // Served from the start (as zero), so dashboards and alerts see them before they move.
    for name in [
        "cutover_verify_events_total",
        "cutover_verify_changes_total",
        "cutover_verify_merged_total",
        "cutover_verify_rows_checked_total",
        "cutover_verify_rows_verified_total",
        "cutover_verify_source_reads_total",
        "cutover_verify_check_errors_total",
    ] {
        counter!(name).increment(0);
    }
    for name in [
        "cutover_verify_pending",
        "cutover_verify_busy",
        "cutover_verify_confirmed_total",
        "cutover_verify_resolved_total",
        "cutover_verify_source_lag_seconds",
        "cutover_verify_oldest_pending_seconds",
        "cutover_verify_binlog_file",
        "cutover_verify_binlog_position",
    ] {
        gauge!(name).set(0.0);
    }
}

pub(crate) fn read(events: u64, changes: u64, position: &BinlogPos) {
    counter!("cutover_verify_events_total").increment(events);
    counter!("cutover_verify_changes_total").increment(changes);
    if let Some(n) = position
        .file
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u64>().ok())
    {
        gauge!("cutover_verify_binlog_file").set(n as f64);
    }
    gauge!("cutover_verify_binlog_position").set(position.pos as f64);
}

pub(crate) fn merged(n: u64) {
    counter!("cutover_verify_merged_total").increment(n);
}

pub(crate) fn source_reads(n: u64) {
    counter!("cutover_verify_source_reads_total").increment(n);
}

pub(crate) fn source_lag(seconds: u64) {
    gauge!("cutover_verify_source_lag_seconds").set(seconds as f64);
}

pub(crate) fn verified(lag_ms: u64) {
    counter!("cutover_verify_rows_verified_total").increment(1);
    histogram!("cutover_verify_lag_seconds").record(lag_ms as f64 / 1000.0);
}

pub(crate) fn check_error() {
    counter!("cutover_verify_check_errors_total").increment(1);
}

pub(crate) fn publish(s: &Summary, oldest: std::time::Duration) {
    counter!("cutover_verify_rows_checked_total").absolute(s.rows_checked);
    gauge!("cutover_verify_pending").set(s.pending as f64);
    gauge!("cutover_verify_busy").set(s.busy as f64);
    gauge!("cutover_verify_confirmed_total").set(s.mismatches.len() as f64);
    gauge!("cutover_verify_resolved_total").set(s.resolved as f64);
    gauge!("cutover_verify_oldest_pending_seconds").set(oldest.as_secs_f64());
}
