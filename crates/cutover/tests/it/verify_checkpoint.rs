//! `cutover verify --checkpoint` (kill -9 and restart), `--shard` and `--metrics-addr`, on
//! the shared sandbox pair (no replication between its servers: every change made on the
//! source only is a difference, confirmed once grace has passed since it was read).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{conn, cutover, dsn, fresh_db, Side};
use mysql_async::prelude::Queryable;

const DEADLINE: Duration = Duration::from_secs(120);

/// The ids of the confirmed mismatches in `DIR/mismatches.jsonl` (each line once or more).
fn confirmed_ids(out: &Path) -> Vec<i64> {
    std::fs::read_to_string(out.join("mismatches.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["key"]["id"].as_i64().unwrap_or(-1)
        })
        .collect()
}

async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let until = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn source_position() -> String {
    let mut c = conn(Side::Source).await;
    let row: (String, u64, String, String) =
        c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let _ = c.disconnect().await;
    format!("{}:{}", row.0, row.1)
}

fn spawn_verify(args: &[&str]) -> Child {
    cutover()
        .args(["verify", "--source", &dsn(Side::Source)])
        .args(["--target", &dsn(Side::Target)])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn stop(child: Child) -> (i32, serde_json::Value, String) {
    let output = crate::harness::sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let v = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code().unwrap_or(-1), v, stderr)
}

/// Updates `ids` on the source only, one transaction each.
async fn touch(db: &str, ids: std::ops::RangeInclusive<i64>) {
    let mut c = conn(Side::Source).await;
    for id in ids {
        c.query_drop(format!("UPDATE {db}.t SET v = v + 1 WHERE id = {id}"))
            .await
            .unwrap();
    }
    let _ = c.disconnect().await;
}

#[tokio::test]
async fn verify_restarted_from_its_checkpoint_after_kill_9_misses_no_event() {
    let db = "vck";
    fresh_db(db).await;
    crate::harness::both(&format!(
        "USE {db}; CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v INT, s VARCHAR(20)); \
         INSERT INTO {db}.t SELECT seq, 0, CONCAT('row ', seq) FROM seq_1_to_300"
    ))
    .await;
    let start = source_position().await;
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("checkpoint");
    let out = dir.path().join("out");
    let common = [
        "--tables",
        "vck.*",
        "--grace",
        "1s",
        "--format",
        "json",
        "--checkpoint",
        cp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let mut first_args = common.to_vec();
    first_args.extend(["--start", &start]);
    let mut first = spawn_verify(&first_args);

    // Phase 1: verified and checkpointed before the crash.
    touch(db, 1..=100).await;
    wait_until("confirmations and a checkpoint before the crash", || {
        confirmed_ids(&out).len() >= 20 && cp.join("verify-checkpoint.json").exists()
    })
    .await;
    // Phase 2 is being written while verify is killed.
    let writer = tokio::spawn(touch(db, 101..=200));
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    writer.await.unwrap();
    // Phase 3: written while nothing verifies.
    touch(db, 201..=300).await;

    // The same command, without --start: it continues from the checkpoint.
    let second = spawn_verify(&common);
    wait_until("every changed key confirmed", || {
        confirmed_ids(&out).iter().collect::<BTreeSet<_>>().len() >= 300
    })
    .await;
    let (code, v, stderr) = stop(second).await;
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    let all: BTreeSet<i64> = confirmed_ids(&out).into_iter().collect();
    assert_eq!(all, (1..=300).collect::<BTreeSet<i64>>());
    assert!(v["resumed_from"].is_string(), "{v:#}");
    assert_eq!(v["restarts"], 1, "{v:#}");
    // The summary covers the whole verification: what the first run confirmed (and saved)
    // plus what the second did; a key confirmed after the last save may come twice.
    let summary_ids: BTreeSet<i64> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"]["id"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(summary_ids, all, "{v:#}");
    assert_eq!(v["pending"], 0, "{v:#}");

    // --start next to a checkpoint that holds a position is refused.
    let r = crate::harness::run(
        cutover()
            .args(["verify", "--source", &dsn(Side::Source)])
            .args(["--target", &dsn(Side::Target)])
            .args(["--checkpoint", cp.to_str().unwrap(), "--start", "now"]),
    );
    r.assert_clean_error("--checkpoint");
}

#[tokio::test]
async fn shards_split_the_keys_without_overlap_or_gaps() {
    let db = "vsh";
    fresh_db(db).await;
    crate::harness::both(&format!(
        "USE {db}; CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v INT); \
         INSERT INTO {db}.t SELECT seq, 0 FROM seq_1_to_60"
    ))
    .await;
    let start = source_position().await;
    let dir = tempfile::tempdir().unwrap();
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("out{i}"))).collect();
    let children: Vec<Child> = (0..2)
        .map(|i| {
            let shard = format!("{i}/2");
            spawn_verify(&[
                "--tables",
                "vsh.*",
                "--start",
                &start,
                "--grace",
                "1s",
                "--shard",
                &shard,
                "--format",
                "json",
                "--out",
                outs[i].to_str().unwrap(),
            ])
        })
        .collect();
    touch(db, 1..=60).await;
    wait_until("the shards together confirm every key", || {
        outs.iter()
            .flat_map(|o| confirmed_ids(o))
            .collect::<BTreeSet<_>>()
            .len()
            >= 60
    })
    .await;
    let mut sets = Vec::new();
    for (child, out) in children.into_iter().zip(&outs) {
        let (code, v, stderr) = stop(child).await;
        assert_eq!(code, 1, "{stderr}\n{v:#}");
        let ids: BTreeSet<i64> = confirmed_ids(out).into_iter().collect();
        assert!(!ids.is_empty(), "shard {out:?} checked nothing");
        assert_eq!(
            v["changes"].as_u64(),
            Some(ids.len() as u64),
            "a shard takes in only its own keys: {v:#}"
        );
        sets.push(ids);
    }
    assert!(sets[0].is_disjoint(&sets[1]), "{sets:?}");
    assert_eq!(sets[0].len() + sets[1].len(), 60);

    let r = crate::harness::run(
        cutover()
            .args(["verify", "--source", &dsn(Side::Source)])
            .args(["--target", &dsn(Side::Target), "--shard", "2/2"]),
    );
    r.assert_clean_error("--shard");
}

/// A free local port for `--metrics-addr`.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls the metrics on `port` until `cond` holds for them (within the deadline).
pub(crate) async fn wait_for_metrics<F: FnMut(&str) -> bool>(port: u16, what: &str, mut cond: F) {
    wait_until(what, || cond(&scrape(port).unwrap_or_default())).await;
}

/// `GET /metrics` from the exporter, `None` while it does not answer.
pub(crate) fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.contains("200 OK").then_some(text)
}

pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_events_checks_pending_and_confirmations() {
    let db = "vmx";
    fresh_db(db).await;
    crate::harness::both(&format!(
        "USE {db}; CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v INT); \
         INSERT INTO {db}.t SELECT seq, 0 FROM seq_1_to_10"
    ))
    .await;
    let start = source_position().await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = spawn_verify(&[
        "--tables",
        "vmx.*",
        "--start",
        &start,
        "--grace",
        "1s",
        "--metrics-addr",
        &addr,
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    // Two keys differ (changed on the source only), three are changed on both sides.
    touch(db, 1..=2).await;
    crate::harness::both(&format!("UPDATE {db}.t SET v = 5 WHERE id BETWEEN 3 AND 5")).await;
    let mut last = String::new();
    wait_until("the metrics to show two confirmed mismatches", || {
        last = scrape(port).unwrap_or_default();
        metric(&last, "cutover_verify_confirmed_total") == Some(2.0)
    })
    .await;
    assert!(
        metric(&last, "cutover_verify_events_total").unwrap_or(0.0) >= 5.0,
        "{last}"
    );
    assert!(
        metric(&last, "cutover_verify_changes_total").unwrap_or(0.0) >= 5.0,
        "{last}"
    );
    assert!(
        metric(&last, "cutover_verify_rows_checked_total").unwrap_or(0.0) >= 5.0,
        "{last}"
    );
    assert_eq!(metric(&last, "cutover_verify_pending"), Some(0.0), "{last}");
    assert!(
        metric(&last, "cutover_verify_binlog_position").unwrap_or(0.0) > 4.0,
        "{last}"
    );
    assert!(last.contains("cutover_verify_lag_seconds_bucket"), "{last}");
    assert!(last.contains("# HELP cutover_verify_pending"), "{last}");
    let (code, v, stderr) = stop(child).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(v["lag"]["count"].as_u64().unwrap_or(0) >= 3, "{v:#}");

    // The shipped dashboard uses only metrics the exporter serves.
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dashboards/cutover-verify.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let text = dash.to_string();
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("cutover_verify_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        used.insert(
            name.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_string(),
        );
    }
    assert!(used.len() >= 8, "{used:?}");
    for name in used {
        assert!(
            last.contains(&format!("# TYPE {name} ")),
            "the dashboard uses {name}, which is not served"
        );
    }
}

#[tokio::test]
async fn keyless_tables_are_checked_by_whole_row_image_with_duplicates() {
    use crate::harness::exec;
    let db = "vkl";
    fresh_db(db).await;
    // The same rows compare equal under either collation; case differences do not.
    exec(
        Side::Source,
        "CREATE TABLE vkl.log (at DATETIME NOT NULL, event VARCHAR(20) NOT NULL, note TEXT, \
         w DOUBLE) COLLATE utf8mb4_general_ci",
    )
    .await;
    exec(
        Side::Target,
        "CREATE TABLE vkl.log (at DATETIME NOT NULL, event VARCHAR(20) NOT NULL, note TEXT, \
         w DOUBLE) COLLATE utf8mb4_bin",
    )
    .await;
    crate::harness::both("INSERT INTO vkl.log VALUES ('2024-01-05', 'a', 'case', 0.1)").await;
    let start = source_position().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = spawn_verify(&[
        "--tables",
        "vkl.*",
        "--start",
        &start,
        "--grace",
        "1s",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    // Equal on both sides: three identical rows, and a row with NULL.
    crate::harness::both(
        "INSERT INTO vkl.log VALUES ('2024-01-01', 'login', 'x', 1.5), \
         ('2024-01-01', 'login', 'x', 1.5), ('2024-01-01', 'login', 'x', 1.5), \
         ('2024-01-03', 'n', NULL, NULL)",
    )
    .await;
    // One of the three identical rows deleted on the source only: 2 there, 3 on the target.
    exec(
        Side::Source,
        "DELETE FROM vkl.log WHERE event = 'login' LIMIT 1",
    )
    .await;
    // A row only the source has.
    exec(
        Side::Source,
        "INSERT INTO vkl.log VALUES ('2024-01-02', 'Logout', 'y', 2)",
    )
    .await;
    // A case change on the source only ('a' -> 'A'): the old row is extra on the target,
    // the new one missing there.
    exec(
        Side::Source,
        "UPDATE vkl.log SET event = 'A' WHERE event = 'a'",
    )
    .await;
    let wanted = 4;
    wait_until("the keyless differences confirmed", || {
        std::fs::read_to_string(out.join("mismatches.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
            >= wanted
    })
    .await;
    let (code, v, stderr) = stop(child).await;
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("mismatches.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<String> = lines
        .iter()
        .map(|m| {
            format!(
                "{} {} {}/{}",
                m["kind"].as_str().unwrap_or("?"),
                m["key"],
                m["counts"]["source"],
                m["counts"]["target"]
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"extra_in_target {"at":"2024-01-01 00:00:00","event":"login","note":"x","w":1.5} 2/3"#,
            r#"extra_in_target {"at":"2024-01-05 00:00:00","event":"a","note":"case","w":0.1} 0/1"#,
            r#"missing_in_target {"at":"2024-01-02 00:00:00","event":"Logout","note":"y","w":2.0} 1/0"#,
            r#"missing_in_target {"at":"2024-01-05 00:00:00","event":"A","note":"case","w":0.1} 1/0"#,
        ],
        "{v:#}"
    );
    assert_eq!(v["pending"], 0, "{v:#}");
    assert_eq!(v["unchecked_tables"], serde_json::json!({}), "{v:#}");
}
