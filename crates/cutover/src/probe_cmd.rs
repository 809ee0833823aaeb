//! `cutover probe isolation`: the concurrency suite on both sides, compared. Its only write
//! is the scratch database it creates, works in and drops (see ARCHITECTURE.md).

use std::path::Path;

use anyhow::{anyhow, Result};
use cutover_core::SessionOptions;
use cutover_probe::{Isolation, Options, ProbeError, SideOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::{ProbeAction, ProbeArgs, ProbeIsolationArgs};
use crate::diff_cmd::{connect_pair, load_config, spawn_ctrl_c};

pub async fn run(config: Option<&Path>, args: ProbeArgs) -> Result<u8> {
    match args.action {
        ProbeAction::Isolation(a) => isolation(config, *a).await,
    }
}

async fn isolation(config: Option<&Path>, args: ProbeIsolationArgs) -> Result<u8> {
    // Everything the user typed is checked before any connection is made.
    let cfg = load_config(config)?;
    let level = match &args.isolation {
        Some(l) => Some(Isolation::parse(l).map_err(|e| anyhow!("--isolation: {e}"))?),
        None => None,
    };
    cutover_probe::scratch::check_name(&args.scratch_db)
        .map_err(|e| anyhow!("--scratch-db: {e}"))?;
    let only: Vec<String> = args
        .tests
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(bad) = only
        .iter()
        .find(|t| cutover_probe::anomaly::find(t).is_none())
    {
        let ids: Vec<&str> = cutover_probe::anomaly::suite()
            .iter()
            .map(|t| t.id)
            .collect();
        return Err(anyhow!(
            "--tests: no test `{bad}` (the suite: {})",
            ids.join(", ")
        ));
    }
    let side = SideOptions {
        isolation: level,
        session: Vec::new(),
    };
    let opts = Options {
        scratch_db: args.scratch_db.clone(),
        source: side.clone(),
        target: side,
        only,
    };

    let cancel = CancellationToken::new();
    spawn_ctrl_c(cancel.clone());
    // The pools only read (server version, lock-wait views); the test sessions are
    // connections of their own that write in the scratch database only.
    let session = SessionOptions {
        read_only: true,
        query_timeout: None,
        max_connections: 4,
    };
    let (source, target) = connect_pair(&cfg, &args.endpoints, session, cancel.clone()).await?;
    let report = match cutover_probe::probe(&source, &target, &opts, cancel).await {
        Ok(r) => r,
        Err(ProbeError::Interrupted) => {
            errln!(
                "cutover: interrupted; the scratch database `{}` was dropped on both sides",
                args.scratch_db
            );
            return Ok(130);
        }
        Err(e) => return Err(anyhow!(e)),
    };
    let code = report.exit_code();
    crate::out::print_and_write(
        "probe",
        matches!(args.format, crate::cli::Format::Json),
        args.out.as_deref(),
        code,
        &report,
        || report.human(),
        || report.document(),
    )?;
    Ok(code)
}
