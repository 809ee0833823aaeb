//! How two answers to one statement differ: the [`Kind`]s of difference between the
//! baseline's and the target's answers, or between what the capture saw and the target's.

use serde::Serialize;

use crate::answer::{from_captured, Answer};
use crate::protocol::{charset_differs, ColumnBits, CLIENT_FLAGS, CLIENT_STATUS};

/// How two answers differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One side failed, or both with different error codes.
    Error,
    /// Different rows (as a multiset, or as a sequence under ORDER BY).
    Rows,
    /// Column count, names or types.
    Metadata,
    AffectedRows,
    LastInsertId,
    Warnings,
    /// Column flags (`NOT_NULL`, `UNSIGNED`, `BINARY`, keys, …).
    ColumnFlags,
    /// Column decimals (scale, fractional seconds).
    Decimals,
    /// Column character set / collation id.
    Charset,
    /// Status flags drivers act on (transaction state, autocommit, escaping).
    StatusFlags,
    /// Session-state changes (session tracking).
    SessionState,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Rows => "rows",
            Kind::Metadata => "metadata",
            Kind::AffectedRows => "affected_rows",
            Kind::LastInsertId => "last_insert_id",
            Kind::Warnings => "warnings",
            Kind::ColumnFlags => "column_flags",
            Kind::Decimals => "decimals",
            Kind::Charset => "charset",
            Kind::StatusFlags => "status_flags",
            Kind::SessionState => "session_state",
        }
    }
}

/// The ways `target` answers differently from `baseline`.
pub fn compare(baseline: &Answer, target: &Answer, ordered: bool) -> Vec<Kind> {
    let mut kinds = Vec::new();
    match (&baseline.error, &target.error) {
        (Some(a), Some(b)) => {
            if a.code != b.code {
                kinds.push(Kind::Error);
            }
            return kinds;
        }
        (None, None) => {}
        _ => {
            kinds.push(Kind::Error);
            return kinds;
        }
    }
    if baseline.columns_hash != target.columns_hash || baseline.columns != target.columns {
        kinds.push(Kind::Metadata);
    }
    kinds.extend(compare_columns(
        &baseline.column_bits(),
        &target.column_bits(),
    ));
    let rows_differ = baseline.rows != target.rows
        || baseline.multiset != target.multiset
        || (ordered && baseline.sequence != target.sequence);
    if rows_differ {
        kinds.push(Kind::Rows);
    }
    if baseline.affected_rows != target.affected_rows {
        kinds.push(Kind::AffectedRows);
    }
    if baseline.last_insert_id != target.last_insert_id {
        kinds.push(Kind::LastInsertId);
    }
    if baseline.warnings != target.warnings {
        kinds.push(Kind::Warnings);
    }
    if let (Some(a), Some(b)) = (baseline.status_flags, target.status_flags) {
        if a & CLIENT_STATUS != b & CLIENT_STATUS {
            kinds.push(Kind::StatusFlags);
        }
    }
    if baseline.session_state != target.session_state {
        kinds.push(Kind::SessionState);
    }
    kinds
}

/// The ways `target` differs from what the capture saw (no baseline): only what the
/// workload holds is compared. `status_mask`: status flags cutover's own session set-up
/// causes (the `READ ONLY` guard), which the captured application never had: not compared.
pub fn compare_captured(
    captured: &cutover_workload::Response,
    target: &Answer,
    status_mask: u16,
) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if let Some(e) = &captured.error {
        if target.error.as_ref().map(|t| t.code) != Some(e.code) {
            kinds.push(Kind::Error);
        }
        return kinds;
    }
    if target.error.is_some() {
        // The capture saw this statement succeed only when it recorded an outcome.
        if captured.rows.is_some() || captured.affected_rows.is_some() {
            kinds.push(Kind::Error);
        }
        return kinds;
    }
    if let Some(n) = captured.rows {
        if n != target.rows {
            kinds.push(Kind::Rows);
        }
    }
    if let Some(n) = captured.affected_rows {
        if n != target.affected_rows {
            kinds.push(Kind::AffectedRows);
        }
    }
    if let (Some(a), Some(b)) = (captured.last_insert_id, target.last_insert_id) {
        if a != b {
            kinds.push(Kind::LastInsertId);
        }
    }
    // The protocol layer, where the capture saw it (proxy, pcap): column definitions with
    // their flags, status flags, warnings.
    if let Some(cols) = &captured.columns {
        let target_cols = target.columns_iter().count();
        if target_cols > 0 {
            let types_differ = cols.len() != target_cols
                || cols.iter().zip(target.columns_iter()).any(|(c, t)| {
                    c.name.as_bytes() != t.name_ref()
                        || c.type_name != format!("{:?}", t.column_type())
                });
            if types_differ {
                kinds.push(Kind::Metadata);
            }
            if cols.len() == target_cols && cols.iter().all(|c| c.flags.is_some()) {
                let (_, captured_cols) = from_captured(captured);
                let bits: Vec<_> = captured_cols.iter().map(|c| c.bits()).collect();
                kinds.extend(compare_columns(&bits, &target.column_bits()));
            }
        }
    }
    if let (Some(a), Some(b)) = (captured.status_flags, target.status_flags) {
        let compared = CLIENT_STATUS & !status_mask;
        if a & compared != b & compared {
            kinds.push(Kind::StatusFlags);
        }
    }
    if let Some(w) = captured.warnings {
        if w != target.warnings {
            kinds.push(Kind::Warnings);
        }
    }
    // Session-state changes are not compared with a capture: the replayer's driver does not
    // negotiate session tracking, so the target never reports any (see `protocol.rs`).
    kinds
}

/// The column-definition differences between two answers (same statement), besides names
/// and types.
pub fn compare_columns(a: &[ColumnBits], b: &[ColumnBits]) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if a.len() != b.len() {
        return kinds; // count and names: `Kind::Metadata`, from the `name type` list
    }
    let mut add = |k| {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    };
    for (x, y) in a.iter().zip(b) {
        if x.flags & CLIENT_FLAGS != y.flags & CLIENT_FLAGS {
            add(Kind::ColumnFlags);
        }
        if x.decimals != y.decimals {
            add(Kind::Decimals);
        }
        if charset_differs(x.charset, y.charset) {
            add(Kind::Charset);
        }
    }
    kinds
}
