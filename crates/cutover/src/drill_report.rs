//! `cutover drill report --journal DIR...`: one drill, or several side by side.

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::cli::{DrillReportArgs, Format};

pub fn run(a: DrillReportArgs) -> Result<u8> {
    let dirs: Vec<&Path> = a
        .journals
        .iter()
        .chain(&a.journal_dirs)
        .map(|p| p.as_path())
        .collect();
    let report = cutover_drill::report::load(&dirs).map_err(|e| anyhow!(e))?;
    let printed = match a.format {
        Format::Human => crate::out::text(&(crate::out::provenance(0).text() + &report.text())),
        Format::Json => crate::out::json(0, crate::out::body(&report)),
    };
    printed.map_err(|e| anyhow!("writing the report: {e}"))?;
    if let Some(dir) = &a.out {
        let files = crate::out::report_files(
            "drill",
            0,
            crate::out::body(&report),
            Some(report.document()),
            false,
        );
        crate::out::write_reports(dir, &files)
            .map_err(|e| anyhow!("the reports could not be written to {}: {e}", dir.display()))?;
    }
    Ok(0)
}
