//! `cutover verify` when things go wrong: no binlog, no replication privilege, a purged
//! position, and a target that is unreachable for a while.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{cutover, run};
use crate::verify_checkpoint::{free_port, metric, wait_for_metrics};
use cutover_sandbox::{Sandbox, Settings};

const DEADLINE: Duration = Duration::from_secs(120);

fn verify_cmd(source: &str, target: &str, extra: &[&str]) -> std::process::Command {
    let mut c = cutover();
    c.args(["verify", "--source", source, "--target", target])
        .args(["--for", "30s"])
        .args(extra);
    c
}

#[test]
fn a_source_without_a_binlog_is_refused_with_the_fix() {
    let settings = Settings {
        extra_args: vec!["--skip-log-bin".into()],
        ..Settings::default()
    };
    let sb = Sandbox::start_owned(&settings).unwrap();
    let r = run(&mut verify_cmd(
        &sb.source.dsn(None),
        &sb.target.dsn(None),
        &[],
    ));
    r.assert_clean_error("log_bin");
    assert!(r.stderr.contains("--log-bin"), "{}", r.stderr);
}

#[tokio::test]
async fn no_replication_privilege_purged_position_and_an_unreachable_target() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'pw-reader-secret'; \
             GRANT SELECT ON *.* TO 'reader'@'127.0.0.1'; \
             CREATE DATABASE vu; USE vu; CREATE TABLE vu.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vu.t SELECT seq, 0 FROM seq_1_to_50",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();

    // A user without REPLICATION SLAVE / BINLOG MONITOR: one line that names the grant, and
    // no password in it.
    let reader = format!(
        "mysql://reader:pw-reader-secret@127.0.0.1:{}",
        sb.source.port
    );
    let r = run(&mut verify_cmd(&reader, &sb.target.dsn(None), &[]));
    r.assert_clean_error("REPLICATION");
    assert!(!r.stderr.contains("pw-reader-secret"), "{}", r.stderr);

    // A position in a file that was purged: refused at once, with what to do.
    let old = sb.source.sql("SHOW MASTER STATUS").unwrap();
    let old_pos = format!("{}:{}", old[0][0], old[0][1]);
    sb.source.sql("FLUSH BINARY LOGS").unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    let now = sb.source.sql("SHOW MASTER STATUS").unwrap();
    // A file a replica still reads is not purged: purge until the old file is gone.
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        sb.source
            .sql(&format!("PURGE BINARY LOGS TO '{}'", now[0][0]))
            .unwrap();
        let logs = sb.source.sql("SHOW BINARY LOGS").unwrap();
        if !logs.iter().any(|l| l[0] == old[0][0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{} not purged",
            old[0][0]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = run(&mut verify_cmd(
        &sb.source.dsn(None),
        &sb.target.dsn(None),
        &["--start", &old_pos],
    ));
    r.assert_clean_error(&old[0][0]);

    // The target becomes unreachable for a while (its verify account locked and its
    // sessions killed), a change is lost meanwhile; verify keeps the keys pending, retries,
    // and once the target answers again reports exactly the lost change.
    sb.target
        .sql(
            "CREATE USER 'vt'@'127.0.0.1' IDENTIFIED BY 'vt-pw'; \
             GRANT ALL ON *.* TO 'vt'@'127.0.0.1'",
        )
        .unwrap();
    let target = format!("mysql://vt:vt-pw@127.0.0.1:{}", sb.target.port);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let start = format!("{}:{}", now[0][0], now[0][1]);
    let child = cutover()
        .args([
            "verify",
            "--source",
            &sb.source.dsn(None),
            "--target",
            &target,
        ])
        .args(["--tables", "vu.*", "--start", &start, "--grace", "1s"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--format", "json", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metrics(port, "verify to start", |m| {
        metric(m, "cutover_verify_pending").is_some()
    })
    .await;
    sb.target
        .sql("ALTER USER 'vt'@'127.0.0.1' ACCOUNT LOCK")
        .unwrap();
    let ids = sb
        .target
        .sql("SELECT id FROM information_schema.processlist WHERE user = 'vt'")
        .unwrap();
    for id in ids {
        let _ = sb.target.sql(&format!("KILL CONNECTION {}", id[0]));
    }
    // Lost on the target: the replica skips this transaction.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE vu.t SET v = 9 WHERE id = 9; UPDATE vu.t SET v = 1 WHERE id BETWEEN 1 AND 3")
        .unwrap();
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    wait_for_metrics(port, "failed check rounds while the target is away", |m| {
        metric(m, "cutover_verify_check_errors_total").unwrap_or(0.0) >= 3.0
            && metric(m, "cutover_verify_pending").unwrap_or(0.0) >= 1.0
    })
    .await;
    sb.target
        .sql("ALTER USER 'vt'@'127.0.0.1' ACCOUNT UNLOCK")
        .unwrap();
    wait_for_metrics(
        port,
        "the lost change confirmed and the rest verified",
        |m| {
            metric(m, "cutover_verify_confirmed_total") == Some(1.0)
                && metric(m, "cutover_verify_pending") == Some(0.0)
        },
    )
    .await;
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: BTreeSet<String> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m["key"], m["kind"]))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([r#"{"id":9} "mismatched""#.to_string()]),
        "{v:#}"
    );
    assert!(v["check_errors"].as_u64().unwrap_or(0) >= 3, "{v:#}");
    assert!(!stderr.contains("vt-pw"), "{stderr}");
}

/// Where the target cannot tell (a user that may not see the replica status), a heartbeat
/// row written on the source and read back on the target tells how far replication got.
#[tokio::test]
async fn a_heartbeat_table_keeps_lagging_changes_pending_until_replication_passes_them() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE vh; USE vh; CREATE TABLE vh.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO vh.t SELECT seq, 0 FROM seq_1_to_20",
        )
        .unwrap();
    sb.wait_replica_caught_up(DEADLINE).unwrap();
    // No REPLICATION CLIENT / SLAVE MONITOR: SHOW SLAVE STATUS is refused to this user.
    sb.target
        .sql(
            "CREATE USER 'ro'@'127.0.0.1' IDENTIFIED BY 'ro-pw'; \
             GRANT SELECT ON *.* TO 'ro'@'127.0.0.1'",
        )
        .unwrap();
    let target = format!("mysql://ro:ro-pw@127.0.0.1:{}", sb.target.port);
    let start = sb.source.sql("SHOW MASTER STATUS").unwrap();
    let start = format!("{}:{}", start[0][0], start[0][1]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = cutover()
        .args([
            "verify",
            "--source",
            &sb.source.dsn(None),
            "--target",
            &target,
        ])
        .args(["--tables", "vh.*", "--start", &start, "--grace", "1s"])
        .args(["--heartbeat", "vh.cutover_heartbeat"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--format", "json", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metrics(port, "verify to start", |m| {
        metric(m, "cutover_verify_pending").is_some()
    })
    .await;
    // The heartbeat arrives on the target through replication.
    let until = std::time::Instant::now() + DEADLINE;
    while sb
        .target
        .sql("SELECT beats FROM vh.cutover_heartbeat")
        .map(|r| r.is_empty())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < until,
            "no heartbeat on the target"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE vh.t SET v = 5 WHERE id = 5; UPDATE vh.t SET v = 1 WHERE id <= 3")
        .unwrap();
    // Lagging for longer than grace, checked again and again: nothing is confirmed, because
    // the heartbeat on the target has not passed these changes.
    wait_for_metrics(port, "the lagging keys checked past grace", |m| {
        metric(m, "cutover_verify_changes_total").unwrap_or(0.0) >= 4.0
            && metric(m, "cutover_verify_rows_checked_total").unwrap_or(0.0) >= 8.0
            && metric(m, "cutover_verify_oldest_pending_seconds").unwrap_or(0.0) > 2.5
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(out.join("mismatches.jsonl")).unwrap_or_default(),
        "",
        "nothing may be confirmed while replication lags"
    );
    sb.target
        .sql("SET GLOBAL sql_slave_skip_counter = 1; START SLAVE SQL_THREAD")
        .unwrap();
    wait_for_metrics(
        port,
        "the skipped change confirmed, the rest verified",
        |m| {
            metric(m, "cutover_verify_confirmed_total") == Some(1.0)
                && metric(m, "cutover_verify_pending") == Some(0.0)
        },
    )
    .await;
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vh.t", "target": "vh.t"}, "key": {"id": 5},
            "kind": "mismatched"}]),
        "{v:#}"
    );
    // The heartbeat table is not itself verified, and it is the only thing verify wrote.
    assert_eq!(v["unchecked_tables"], serde_json::json!({}), "{v:#}");
    let row = sb
        .source
        .sql("SELECT server_id, beats > 0 FROM vh.cutover_heartbeat")
        .unwrap();
    assert_eq!(row, vec![vec!["1".to_string(), "1".to_string()]]);
}

/// DM's syncer checkpoint on the target says how far DM has applied the source's binlog
/// (recorded format: `dm_meta.<task>_syncer_checkpoint`, relay file names `base|suffix.N`).
#[tokio::test]
async fn a_dm_checkpoint_keeps_changes_pending_until_it_passes_them() {
    use crate::harness::{dsn, exec, fresh_db, Side};
    fresh_db("vdm").await;
    crate::harness::both(
        "USE vdm; CREATE TABLE vdm.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO vdm.t SELECT seq, 0 FROM seq_1_to_10",
    )
    .await;
    let mut c = crate::harness::conn(Side::Source).await;
    use mysql_async::prelude::Queryable;
    let (file, pos): (String, u64) = c
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|r: (String, u64, String, String)| (r.0, r.1))
        .unwrap();
    let (base, num) = file.rsplit_once('.').unwrap();
    exec(
        Side::Target,
        &format!(
            "CREATE DATABASE IF NOT EXISTS vdm_meta; DROP TABLE IF EXISTS vdm_meta.task_syncer_checkpoint; \
             CREATE TABLE vdm_meta.task_syncer_checkpoint (id VARCHAR(32) NOT NULL, \
             cp_schema VARCHAR(128) NOT NULL, cp_table VARCHAR(128) NOT NULL, \
             binlog_name VARCHAR(128), binlog_pos INT UNSIGNED, binlog_gtid TEXT, \
             exit_safe_binlog_name VARCHAR(128) DEFAULT '', exit_safe_binlog_pos INT UNSIGNED DEFAULT 0, \
             exit_safe_binlog_gtid TEXT, table_info JSON NOT NULL, is_global BOOLEAN, \
             create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             update_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
             UNIQUE KEY uk_id_schema_table (id, cp_schema, cp_table)); \
             INSERT INTO vdm_meta.task_syncer_checkpoint (id, cp_schema, cp_table, binlog_name, \
             binlog_pos, table_info, is_global) VALUES \
             ('mysql-replica-01', '', '', '{base}|000001.{num}', {pos}, '{{}}', 1)"
        ),
    )
    .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = cutover()
        .args([
            "verify",
            "--source",
            &dsn(Side::Source),
            "--target",
            &dsn(Side::Target),
        ])
        .args([
            "--tables",
            "vdm.*",
            "--start",
            &format!("{file}:{pos}"),
            "--grace",
            "1s",
        ])
        .args(["--dm-checkpoint", "vdm_meta.task_syncer_checkpoint"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--format", "json", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A change DM has not applied (the checkpoint is before it): pending, however long.
    exec(Side::Source, "UPDATE vdm.t SET v = 7 WHERE id = 7").await;
    wait_for_metrics(port, "the change checked past grace", |m| {
        metric(m, "cutover_verify_rows_checked_total").unwrap_or(0.0) >= 3.0
            && metric(m, "cutover_verify_oldest_pending_seconds").unwrap_or(0.0) > 2.5
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(out.join("mismatches.jsonl")).unwrap_or_default(),
        ""
    );
    // DM's checkpoint moves past it (and the target still lacks it): confirmed.
    let (file2, pos2): (String, u64) = c
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|r: (String, u64, String, String)| (r.0, r.1))
        .unwrap();
    let _ = c.disconnect().await;
    let num2 = file2.rsplit_once('.').unwrap().1;
    exec(
        Side::Target,
        &format!(
            "UPDATE vdm_meta.task_syncer_checkpoint SET binlog_name = '{base}|000001.{num2}', \
             binlog_pos = {pos2} WHERE is_global = 1"
        ),
    )
    .await;
    wait_for_metrics(port, "the change confirmed", |m| {
        metric(m, "cutover_verify_confirmed_total") == Some(1.0)
    })
    .await;
    let output = crate::harness::sigterm_and_wait(child).await;
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        v["mismatches"],
        serde_json::json!([{"table": {"source": "vdm.t", "target": "vdm.t"}, "key": {"id": 7},
            "kind": "mismatched"}]),
        "{v:#}"
    );
}
