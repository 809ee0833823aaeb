//! The demo's last step: replication runs, a transaction is lost on the replica, and
//! `cutover verify` must confirm exactly its rows.

use anyhow::{anyhow, Context, Result};
use cutover_core::{Role, SessionOptions};
use cutover_sandbox::Sandbox;
use tokio_util::sync::CancellationToken;

use super::data::{workload_txn, LOST, LOST_TXN};
use super::{checks, connect, say};

/// Native replication from the source to the target, a workload, one transaction the replica
/// skips, and `cutover verify` following the source's binlog: it must confirm exactly that
/// transaction's rows. Returns how many.
pub(super) async fn verify_phase(sb: &Sandbox, cancel: &CancellationToken) -> Result<usize> {
    say("\nthe copy is equal; now replication runs until the cutover (target = replica of the source)…");
    {
        let sb = sb.clone();
        tokio::task::spawn_blocking(move || sb.start_replication())
            .await
            .context("starting replication")??;
    }
    say("\n$ cutover verify --source … --target … --tables 'shop.*' --grace 3s\n");
    let reader = SessionOptions {
        max_connections: 4,
        ..SessionOptions::default()
    };
    let src = connect(&sb.source.dsn(None), Role::Source, reader.clone(), cancel).await?;
    let tgt = connect(&sb.target.dsn(None), Role::Target, reader, cancel).await?;
    let filter = cutover_verify::table_filter(vec![
        cutover_core::config::Pattern::parse("shop.*").map_err(|e| anyhow!("{e}"))?
    ]);
    let mut opts = cutover_verify::VerifyOptions::new(
        cutover_verify::Start::Now,
        filter,
        cutover_core::config::Routes::default(),
    );
    opts.checker.grace = std::time::Duration::from_secs(3);
    let stop = cancel.child_token();
    let (tx, mut confirmed) = tokio::sync::mpsc::unbounded_channel::<cutover_verify::Mismatch>();
    let verifying = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut on_confirmed = |m: &cutover_verify::Mismatch| {
                let _ = tx.send(m.clone());
            };
            cutover_verify::run(&src, &tgt, opts, stop, &mut on_confirmed).await
        })
    };
    // The workload goes through the replica; one transaction in the middle is lost there.
    let writer = connect(
        &sb.source.dsn(None),
        Role::Source,
        SessionOptions {
            read_only: false,
            ..SessionOptions::default()
        },
        cancel,
    )
    .await?;
    say("  a workload: 300 transactions of orders, order lines, payments, balances, sessions");
    for i in 0..150 {
        writer.execute(&workload_txn(i)).await?;
    }
    sb.target.sql("STOP SLAVE SQL_THREAD")?;
    writer.execute(LOST_TXN).await?;
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")?;
    say("  the replica skips one transaction (sql_slave_skip_counter = 1): an order shipped, a coupon deleted, a customer added");
    for i in 150..300 {
        writer.execute(&workload_txn(i)).await?;
    }
    writer.disconnect().await;
    // Confirmations come once the replica is past the change and grace has passed.
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while found.len() < LOST.len() {
        tokio::select! {
            m = confirmed.recv() => match m {
                Some(m) => {
                    say(&format!("  confirmed: {} {} {}", m.table,
                        serde_json::to_value(m.kind).unwrap_or_default().as_str().unwrap_or("?"),
                        serde_json::Value::Object(m.key.clone())));
                    found.push(m);
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // A little longer, so any false alarm would show, then stop.
    let settle = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
    while let Ok(Some(m)) = tokio::time::timeout_at(settle, confirmed.recv()).await {
        found.push(m);
    }
    stop.cancel();
    let summary = verifying
        .await
        .map_err(|e| anyhow!("verify: {e}"))?
        .context("verify")?;
    say(&format!(
        "  {} row changes read, {} rows checked, {} resolved in flight, {} pending; lag p50 {} ms, p99 {} ms",
        summary.changes,
        summary.rows_checked,
        summary.resolved,
        summary.pending,
        summary.lag.p50_ms,
        summary.lag.p99_ms
    ));
    checks::verify_confirmed_the_lost_rows(&found)
}
