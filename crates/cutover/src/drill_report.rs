//! `cutover drill report`.

use anyhow::Result;

use crate::cli::DrillReportArgs;

pub fn run(_a: DrillReportArgs) -> Result<u8> {
    Err(anyhow::anyhow!("drill report: not yet"))
}
