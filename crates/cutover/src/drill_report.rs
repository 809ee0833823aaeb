//! `cutover drill report JOURNAL_DIR...`: one drill, or several side by side.

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::cli::{DrillReportArgs, Format};

pub fn run(a: DrillReportArgs) -> Result<u8> {
    let dirs: Vec<&Path> = a.journals.iter().map(|p| p.as_path()).collect();
    let report = cutover_drill::report::load(&dirs).map_err(|e| anyhow!(e))?;
    let text = match a.format {
        Format::Human => report.text(),
        Format::Json => report.json(),
    };
    crate::out::text(&text).map_err(|e| anyhow!("writing the report: {e}"))?;
    if let Some(dir) = &a.out {
        match cutover_drill::report::write_out_dir(dir, &report) {
            Ok(written) => errln!(
                "reports written: {}",
                written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                return Err(anyhow!(
                    "the reports could not be written to {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    Ok(0)
}
