//! `cutover check --workload FILE`: a workload file (from `cutover capture` or
//! `cutover proxy --record`) read record by record through [`crate::transactions`], its
//! findings and what was read.

use std::path::Path;

use cutover_workload::{Reader, WorkloadError};

use crate::finding::{Finding, WorkloadSummary};
use crate::profile::Profile;
pub use crate::transactions::{execute_param, execute_params_text};
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
