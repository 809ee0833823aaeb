//! The cutover itself, rehearsed: the example runbook as a timed drill on the sandbox.

use anyhow::{anyhow, Context, Result};
use cutover_sandbox::Sandbox;
use tokio_util::sync::CancellationToken;

use super::{say, show};

/// The example runbook, shipped in the binary so the demo runs anywhere.
const RUNBOOK: &str = include_str!("../../../../examples/sandbox-cutover.toml");

/// Runs the example runbook on the sandbox (its `check` steps run this binary), then writes
/// the drill's report next to the others. The drill must complete.
pub(super) async fn drill(
    sb: &Sandbox,
    out: &std::path::Path,
    cancel: CancellationToken,
) -> Result<u8> {
    let dir = out.join("drill");
    let journal = dir.join("journal");
    // A demo run again over the same --out starts a new drill.
    let _ = std::fs::remove_dir_all(&journal);
    let path = dir.join("sandbox-cutover.toml");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, RUNBOOK).with_context(|| format!("writing {}", path.display()))?;
    let vars = [
        ("SOURCE", sb.source.dsn(None)),
        ("TARGET", sb.target.dsn(None)),
        (
            "SOURCE_SQL",
            format!(
                "mariadb --protocol=tcp -h127.0.0.1 -P{} -uroot",
                sb.source.port
            ),
        ),
    ];
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let rb = cutover_drill::runbook::parse(&path, RUNBOOK, &env).map_err(|e| anyhow!("{e}"))?;
    rb.check_commands(&crate::drill_cmd::parse_check)
        .map_err(|e| anyhow!("{e}"))?;
    say(&format!(
        "\n$ cutover drill run {} --journal {}   # the cutover, rehearsed\n",
        path.display(),
        journal.display()
    ));
    let opts = cutover_drill::executor::Options {
        journal: journal.clone(),
        dry_run: false,
        resume: false,
        kill_orphans: false,
        from: None,
        cutover_exe: std::env::current_exe().context("finding the cutover binary")?,
        cancel,
        poll: std::time::Duration::from_millis(200),
        backoff: cutover_drill::announce::Backoff::default(),
        kill_grace: std::time::Duration::from_secs(5),
        metrics: None,
        on_warning: std::sync::Arc::new(|m: &str| errln!("cutover: warning: {m}")),
    };
    let outcome = cutover_drill::executor::run(&rb, opts)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    match outcome {
        cutover_drill::executor::Outcome::Completed { failed: 0 } => {}
        cutover_drill::executor::Outcome::Interrupted => return Ok(130),
        other => {
            return Err(anyhow!(
                "the demo's drill did not complete ({other:?}); its journal is in {}",
                journal.display()
            ))
        }
    }
    let report = cutover_drill::report::load(&[journal.as_path()]).map_err(|e| anyhow!(e))?;
    show(&format!("\n{}", report.text()));
    let files = crate::out::report_files(
        "drill",
        0,
        crate::out::body(&report),
        Some(report.document()),
        false,
    );
    let written = crate::out::write_out(&dir, &files)
        .with_context(|| format!("writing the drill report to {}", dir.display()))?;
    say("drill reports:");
    for p in written {
        say(&format!("  {}", p.display()));
    }
    Ok(0)
}
