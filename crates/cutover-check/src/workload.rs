//! `cutover check --workload FILE`: a workload file (from `cutover capture` or
//! `cutover proxy --record`) read record by record through [`crate::transactions`], its
//! findings and what was read.

use std::path::Path;

use cutover_workload::{Command, Reader, WorkloadError};

use crate::finding::{Finding, WorkloadSummary};
use crate::profile::Profile;
use crate::transactions::{Analyzer, WorkloadOptions};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadCheckError {
    #[error(transparent)]
    Read(#[from] WorkloadError),
    /// `interrupted` said so (Ctrl-C): the workload was not read to the end.
    #[error("interrupted")]
    Interrupted,
}

/// The findings of a workload file against `target`, and what was read. A damaged file
/// (not a workload, truncated, a bad line) is an error naming the file and line: a
/// workload read only in part is never reported as checked.
pub fn check_workload(
    path: &Path,
    target: &Profile,
    opts: &WorkloadOptions,
    interrupted: &dyn Fn() -> bool,
) -> Result<(Vec<Finding>, WorkloadSummary), WorkloadCheckError> {
    let reader = Reader::open(path)?;
    let header = reader.header.clone();
    let mut a = Analyzer::new(target, header.redacted, opts);
    for (i, r) in reader.enumerate() {
        if i % 4096 == 0 && interrupted() {
            return Err(WorkloadCheckError::Interrupted);
        }
        a.record(&r?);
    }
    let mut findings = Vec::new();
    let mut summary = a.finish(&mut findings);
    summary.path = path.display().to_string();
    summary.source = header.source;
    Ok((findings, summary))
}

// The parameters of an execute are read only here, so a change of how a workload file
// encodes them is a change of these two functions.

/// Parameter `index` of an execute as text (a string without quotes, a number as written);
/// `None` for NULL, a redacted value, a missing parameter or another command. A DOUBLE that
/// holds an integer (some drivers bind every JavaScript number as DOUBLE) reads as that
/// integer, so the same key is the same text whichever way a session bound it.
pub fn execute_param(c: &Command, index: usize) -> Option<String> {
    use cutover_workload::ParamValue;
    match c {
        Command::Execute { params, .. } => {
            let p = params.get(index)?;
            match &p.value {
                ParamValue::Null | ParamValue::Redacted => None,
                ParamValue::Double(bits) => {
                    let f = f64::from_bits(*bits);
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        Some(format!("{}", f as i64))
                    } else {
                        Some(p.display())
                    }
                }
                _ => Some(p.display()),
            }
        }
        _ => None,
    }
}

/// An execute's parameters for an example, as JSON.
pub fn execute_params_text(c: &Command) -> String {
    match c {
        Command::Execute { params, .. } => {
            let shown: Vec<String> = params.iter().map(|p| p.display()).collect();
            serde_json::to_string(&shown).unwrap_or_else(|_| "[]".into())
        }
        _ => String::new(),
    }
}
