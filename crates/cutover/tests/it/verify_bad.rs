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
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
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
