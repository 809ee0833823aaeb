//! The application's sessions: recorded through `cutover proxy`, replayed read-only against
//! the target with the source as baseline, and checked for what they will meet on TiDB.

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use cutover_core::Db;
use cutover_sandbox::Sandbox;
use tokio_util::sync::CancellationToken;

use super::data::{POOLED, POOLED_LOOKUPS, RANGE_INSERT, SESSIONS};
use super::{checks, say, show};

/// Records a few application sessions through the proxy, replays them read-only against the
/// target with the source as baseline, and checks what they will meet on TiDB. Returns the
/// statements the replay found different.
pub(super) async fn replay_story(
    sb: &Sandbox,
    src: &Db,
    tgt: &Db,
    out: &std::path::Path,
    cancel: CancellationToken,
) -> Result<usize> {
    let workload = out.join("workload.cwl");
    record_sessions(sb, src, &workload, &cancel).await?;
    say("\n$ cutover replay workload.cwl --target … --baseline … --read-only --speed max\n");
    let opts = cutover_replay::ReplayOptions {
        read_only: true,
        speed: cutover_replay::Speed::Max,
        lanes: None,
        ..cutover_replay::ReplayOptions::default()
    };
    let reader = cutover_workload::Reader::open(&workload)?;
    let report =
        cutover_replay::run(reader, tgt.clone(), Some(src.clone()), opts, cancel.clone()).await?;
    show(&cutover_replay::human(&report));
    let doc = cutover_replay::report_doc::document(
        &report,
        &sb.target.dsn(None),
        Some(&sb.source.dsn(None)),
    );
    let files = crate::out::report_files(
        "replay",
        report.exit_code(),
        crate::out::body(&report),
        Some(doc),
        true,
    );
    crate::out::write_out(out, &files)?;
    say(&format!("  {}", out.join("replay.html").display()));
    let differing = checks::replay_found_the_collation(&report)?;

    // What the same sessions will meet on TiDB.
    say("\n$ cutover check --workload workload.cwl --target-flavor tidb\n");
    let profile = cutover_check::Profile::assumed(cutover_check::TargetFlavor::TiDb);
    let (findings, summary) = cutover_check::check_workload(
        &workload,
        &profile,
        &cutover_check::WorkloadOptions::default(),
        &|| cancel.is_cancelled(),
    )
    .map_err(|e| anyhow!("checking the workload: {e}"))?;
    let mut checked = cutover_check::Report {
        summary: cutover_check::Summary {
            target_server: profile.describe(),
            target_flavor: profile.flavor.name().to_string(),
            workload: Some(summary),
            ..Default::default()
        },
        findings,
        ..Default::default()
    };
    checked.finish();
    out!("{}", crate::check_cmd::human(&checked));
    checks::workload_check_found_the_sessions_habits(&checked)?;
    Ok(differing)
}

/// Runs the application's sessions through `cutover proxy` in front of the source, recording
/// them to `workload`: the text sessions of [`SESSIONS`], and a pooled session that prepares
/// and closes [`POOLED`] around every execute (the binary protocol, which only the proxy
/// and a packet capture see; a general log shows no statement ids).
async fn record_sessions(
    sb: &Sandbox,
    src: &Db,
    workload: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<()> {
    use mysql_async::prelude::Queryable;
    let upstream = format!("127.0.0.1:{}", sb.source.port);
    say(&format!(
        "\n$ cutover proxy --listen 127.0.0.1:0 --upstream {upstream} --output {}",
        workload.display()
    ));
    let stop = cancel.child_token();
    let opts = cutover_proxy::ProxyOptions {
        listen: "127.0.0.1:0".to_string(),
        upstream,
        record: workload.to_path_buf(),
        queue: 100_000,
        tls: None,
        rotate_bytes: u64::MAX,
        max_files: 1,
        redact: false,
    };
    let (listening_tx, listening) = tokio::sync::oneshot::channel();
    let proxy = cutover_proxy::run(
        opts,
        stop.clone(),
        move |addr| {
            let _ = listening_tx.send(addr);
        },
        |warning| say(&format!("  proxy: warning: {warning}")),
    );
    let sessions = async {
        // Whatever happens to the sessions, the proxy stops and finishes its file.
        let _stop = stop.clone().drop_guard();
        let addr = listening
            .await
            .map_err(|_| anyhow!("the proxy did not start listening"))?;
        say("# the application's sessions, through the proxy");
        let through = |cache: usize| {
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(addr.ip().to_string())
                .tcp_port(addr.port())
                .user(Some("root"))
                .db_name(Some("shop"))
                // Through the proxy, never the server's socket.
                .prefer_socket(false)
                .stmt_cache_size(cache)
        };
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(mysql_async::Conn::new(through(32)).await?);
        }
        for (i, sql) in SESSIONS {
            say(&format!("  session {}: {sql}", i + 1));
            conns[*i].query_drop(*sql).await?;
        }
        say(&format!(
            "  session 5 (a pool without a statement cache): prepare, execute, close `{POOLED}`, {POOLED_LOOKUPS} times"
        ));
        let mut pooled = mysql_async::Conn::new(through(0)).await?;
        for id in 1..=POOLED_LOOKUPS {
            let stmt = pooled.prep(POOLED).await?;
            pooled.exec_drop(&stmt, (id,)).await?;
            pooled.close(stmt).await?;
        }
        conns.push(pooled);
        let ids: Vec<String> = conns.iter().map(|c| c.id().to_string()).collect();
        for c in conns {
            let _ = c.disconnect().await;
        }
        // The proxy has seen every answer once the server has closed the sessions.
        let gone = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({})",
            ids.join(", ")
        );
        let until = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left: Vec<u64> = src.query(&gone).await?;
            if left.first() == Some(&0) || Instant::now() > until {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok::<(), anyhow::Error>(())
    };
    let (summary, sessions) = tokio::join!(proxy, sessions);
    let summary = summary.context("the recording proxy")?;
    sessions?;
    say(&format!(
        "  proxy: {} connections, {} records written to {}",
        summary.connections,
        summary.records,
        workload.display()
    ));
    // The application's writes reach the target too, as replication would carry them, so
    // the pair stays equal for the drill's final diff.
    sb.target
        .sql(&format!(
            "UPDATE shop.orders SET note = 'gift' WHERE id = 42; USE shop; {RANGE_INSERT}"
        ))
        .map_err(|e| anyhow!("carrying the sessions' writes to the target: {e}"))?;
    Ok(())
}
