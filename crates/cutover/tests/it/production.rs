//! `cutover diff` against servers that keep changing: consistent snapshots, `--where`,
//! checkpoints and resume.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::harness::*;

/// Runs a diff that is held on a target table lock until the source has changed, then
/// returns its exit code and JSON. The source changes after every snapshot is open.
async fn diff_with_writes_during_the_run(db: &str, consistency: &str) -> (i32, serde_json::Value) {
    fresh_db(db).await;
    both(&format!(
        "USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000"
    ))
    .await;
    let mut holder = conn(Side::Target).await;
    holder
        .query_drop(format!("LOCK TABLES `{db}`.t WRITE"))
        .await
        .unwrap();
    let child = diff_command(
        &format!("{db}.t"),
        &["--consistency", consistency, "--threads", "2"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Once a query waits on the target's lock, both sides' snapshots are open.
    wait_for(
        "the diff to wait on the target lock",
        Duration::from_secs(60),
        || async { !our_queries(Side::Target, db).await.is_empty() },
    )
    .await;
    // Writes on the source after the snapshot: updates, deletes and inserts all over.
    exec(
        Side::Source,
        &format!(
            "USE {db}; UPDATE t SET v = 'changed' WHERE id % 100 = 7;
             DELETE FROM t WHERE id % 250 = 3; INSERT INTO t VALUES (30000, 'new'), (5, 'x')
             ON DUPLICATE KEY UPDATE v = 'dup'"
        ),
    )
    .await;
    holder.query_drop("UNLOCK TABLES").await.unwrap();
    drop(holder);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap_or(-1), v)
}

#[tokio::test]
async fn snapshot_reads_ignore_writes_made_after_the_snapshot() {
    let (code, v) = diff_with_writes_during_the_run("cons_snap", "snapshot").await;
    let t = &v["tables"][0];
    assert_eq!(
        (code, t["status"].as_str(), t["rows_compared"].as_u64()),
        (0, Some("equal"), Some(20000)),
        "{v:#}"
    );
    assert_eq!(v["snapshots"]["source"]["consistency"], "snapshot");
    assert!(
        v["snapshots"]["source"]["position"].is_string(),
        "the source snapshot names its binlog position: {v:#}"
    );
}

#[tokio::test]
async fn without_a_snapshot_the_same_writes_show_up() {
    // The control: the test above would catch a diff that reads fresh data.
    let (code, v) = diff_with_writes_during_the_run("cons_none", "none").await;
    let t = &v["tables"][0];
    assert_eq!(code, 1, "{v:#}");
    assert!(t["mismatched"].as_u64().unwrap_or(0) >= 100, "{v:#}");
}

#[tokio::test]
async fn locked_consistency_opens_snapshots_under_a_read_lock() {
    fresh_db("cons_lock").await;
    both("USE cons_lock; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_1000").await;
    let r = diff_json("cons_lock.t", &["--consistency", "locked"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["snapshots"]["source"]["consistency"], "locked");
    assert!(v["snapshots"]["source"]["lock_ms"].is_u64(), "{v:#}");
    // A TSO is for TiDB only: a clear error elsewhere.
    diff_json("cons_lock.t", &["--target-snapshot", "449846234001932289"])
        .assert_clean_error("TiDB");
    diff_json("cons_lock.t", &["--consistency", "sometimes"]).assert_clean_error("consistency");
}

#[tokio::test]
async fn where_limits_the_rows_compared() {
    fresh_db("wh").await;
    both("USE wh; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_1000;
          CREATE TABLE s (k VARCHAR(10) PRIMARY KEY, v INT); INSERT INTO s SELECT CONCAT('k', seq), seq FROM seq_1_to_1000").await;
    exec(
        Side::Target,
        "USE wh; UPDATE t SET v = 0 WHERE id IN (50, 500); UPDATE s SET v = 0 WHERE v IN (50, 500)",
    )
    .await;
    let r = diff_json("wh.*", &["--where", "v > 100"]);
    let v = r.json();
    // Only the row with v = 500 is inside the filter (on the source; on the target the
    // changed rows have v = 0, so each side's filtered row set differs by that row).
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["filter"], "v > 100", "{v:#}");
        assert_eq!(t["status"], "different", "{v:#}");
        assert_eq!(t["missing_in_target"], 1, "{v:#}");
        assert_eq!(t["rows_compared"], 900, "{v:#}");
    }
    let r = diff_json("wh.*", &["--where", "v > 600"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Chunk records in a checkpoint journal: `(lo, hi)` per finished chunk.
fn journal_chunks(dir: &std::path::Path) -> Vec<(Option<i64>, Option<i64>)> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["t"] == "chunk" && v["table"] == "resume.t")
        .map(|v| (v["chunk"]["lo"].as_i64(), v["chunk"]["hi"].as_i64()))
        .collect()
}

#[tokio::test]
async fn a_killed_diff_resumes_from_its_checkpoint_with_the_same_result() {
    fresh_db("resume").await;
    both("USE resume; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_60000;
          CREATE TABLE u (id INT PRIMARY KEY, v INT); INSERT INTO u SELECT seq, seq FROM seq_1_to_100").await;
    exec(
        Side::Target,
        "USE resume; UPDATE t SET v = 'x' WHERE id IN (10, 25000, 59999); DELETE FROM t WHERE id = 40000;
         INSERT INTO t VALUES (70000, 'extra'); UPDATE u SET v = 0 WHERE id = 1",
    )
    .await;
    let full = diff_json("resume.*", &[]);
    assert_eq!(full.code, 1, "{}", full.stderr);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let cp_arg = cp.to_str().unwrap().to_string();
    // Slow enough (a row rate) to be killed half-way.
    let args = [
        "--checkpoint",
        cp_arg.as_str(),
        "--rate",
        "20000",
        "--chunk-time",
        "20ms",
        "--threads",
        "2",
    ];
    let mut child = diff_command("resume.*", &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "a few chunks in the journal",
        Duration::from_secs(60),
        || async { journal_chunks(&cp).len() >= 3 },
    )
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = journal_chunks(&cp);
    assert!(!before.is_empty());
    let resumed = diff_json("resume.*", &args);
    assert!(
        resumed.stderr.contains("resuming from"),
        "{}",
        resumed.stderr
    );
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for t in v["tables"].as_array_mut().unwrap() {
            for k in ["elapsed_ms", "chunks", "rows_fetched"] {
                t[k] = serde_json::json!(0);
            }
        }
        (v["tables"].clone(), resumed.code)
    };
    assert_eq!(strip(&resumed.json()), (strip(&full.json()).0, 1));
    // No finished chunk was compared twice: the journal's ranges are disjoint.
    let all = journal_chunks(&cp);
    assert!(all.len() > before.len());
    let mut ranges: Vec<(i64, i64)> = all
        .iter()
        .map(|(lo, hi)| (lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX)))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "overlapping chunks {:?} {:?}", w[0], w[1]);
    }
    // Other options: the checkpoint is refused.
    let mut other: Vec<&str> = args.to_vec();
    other.extend(["--float-tolerance", "0.5"]);
    diff_json("resume.*", &other).assert_clean_error("different comparison");
}

#[tokio::test]
async fn no_chunk_runs_while_the_server_is_loaded() {
    fresh_db("thr").await;
    both("USE thr; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_5000").await;
    exec(Side::Target, "USE thr; UPDATE t SET v = 0 WHERE id = 77").await;
    // Load: sleeping queries count in Threads_running.
    let mut load = Vec::new();
    for _ in 0..12 {
        let mut c = conn(Side::Source).await;
        let fut = async move {
            let _ = c.query_drop("SELECT SLEEP(600) /* thr-load */").await;
            c
        };
        load.push(tokio::spawn(fut));
    }
    wait_for("the load to run", Duration::from_secs(60), || async {
        let mut c = conn(Side::Source).await;
        let n: Option<(String, u64)> = c
            .query_first("SHOW GLOBAL STATUS LIKE 'Threads_running'")
            .await
            .unwrap();
        n.map(|x| x.1 >= 12).unwrap_or(false)
    })
    .await;
    let child = diff_command("thr.t", &["--max-load", "Threads_running=8"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While loaded: cutover says it is paused, and none of its queries reads the table.
    for _ in 0..20 {
        assert!(
            our_queries(Side::Source, "thr").await.is_empty()
                && our_queries(Side::Target, "thr").await.is_empty(),
            "a query ran while the server was loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Remove the load: the diff goes on and finds the difference.
    let mut c = conn(Side::Source).await;
    let ids: Vec<(u64,)> = c
        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%thr-load%' AND ID <> CONNECTION_ID()")
        .await
        .unwrap();
    for (id,) in ids {
        let _ = c.query_drop(format!("KILL {id}")).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("paused: Threads_running="), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tables"][0]["mismatched"], 1, "{v:#}");
    assert!(v["throttle"]["pauses"].as_u64().unwrap_or(0) >= 1, "{v:#}");
    for h in load {
        let _ = h.await;
    }
}

#[tokio::test]
async fn recheck_reports_only_the_lost_change_while_replication_catches_up() {
    use std::io::BufRead;
    let sb = cutover_sandbox::Sandbox::start_owned(&cutover_sandbox::Settings::default()).unwrap();
    sb.start_replication().unwrap();
    sb.source
        .sql(
            "CREATE DATABASE rc; USE rc; CREATE TABLE rc.t (id INT PRIMARY KEY, v INT);
             INSERT INTO rc.t SELECT seq, seq FROM seq_1_to_5000",
        )
        .unwrap();
    sb.wait_replica_caught_up(Duration::from_secs(120)).unwrap();
    // A change replication never sees: lost.
    sb.source
        .sql("SET SESSION sql_log_bin = 0; UPDATE rc.t SET v = -1 WHERE id = 777")
        .unwrap();
    // Changes in flight: replicated, but not applied until the pass is over.
    sb.target.sql("STOP SLAVE SQL_THREAD").unwrap();
    sb.source
        .sql("UPDATE rc.t SET v = v + 1 WHERE id % 500 = 1")
        .unwrap();
    let mut child = cutover()
        .args(["diff", "--source", &sb.source.dsn(None)])
        .args(["--target", &sb.target.dsn(None)])
        .args(["--tables", "rc.t", "--format", "json"])
        .args(["--recheck", "300ms", "--recheck-rounds", "40"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let target = sb.target.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("rechecking the differences") {
                // The pass is over: let replication apply what is in flight.
                target.sql("START SLAVE SQL_THREAD").unwrap();
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = watcher.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tables"][0];
    assert_eq!(
        t["diffs"],
        serde_json::json!([{"kind": "mismatched", "key": {"id": 777},
            "columns": [{"column": "v", "source": -1, "target": 777}]}]),
        "{v:#}"
    );
    assert_eq!(
        (
            t["mismatched"].as_u64(),
            t["missing_in_target"].as_u64(),
            t["extra_in_target"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{v:#}"
    );
    assert_eq!(t["recheck"]["converged"], 10, "{v:#}");
    assert_eq!(t["recheck"]["persisting"], 1, "{v:#}");
    assert_eq!(t["converged"].as_array().map(Vec::len), Some(10), "{v:#}");
}

#[tokio::test]
async fn reports_in_a_directory_and_redaction_leaves_no_value_anywhere() {
    fresh_db("rep").await;
    both("USE rep; CREATE TABLE t (id INT PRIMARY KEY, secret VARCHAR(40)); INSERT INTO t VALUES (1, 'alpha-secret'), (2, 'bravo-secret'), (3, 'charlie-secret')").await;
    exec(
        Side::Target,
        "USE rep; UPDATE t SET secret = 'zulu-secret' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (98765, 'yankee-secret')",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = diff_json(
        "rep.t",
        &["--out", out.to_str().unwrap(), "--redact-values"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let mut texts = vec![r.stdout.clone(), r.stderr.clone()];
    for f in ["report.json", "report.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains("rep.t"), "{f} names the table");
        texts.push(text);
    }
    for t in &texts {
        for value in ["alpha", "bravo", "zulu", "yankee", "98765"] {
            assert!(!t.contains(value), "`{value}` leaked:\n{t}");
        }
    }
    let v = r.json();
    assert_eq!(v["tables"][0]["mismatched"], 1);
    assert_eq!(v["tables"][0]["missing_in_target"], 1);
    assert_eq!(v["tables"][0]["extra_in_target"], 1);
    // Without redaction the values are there, in every report.
    let r = diff_json("rep.t", &["--out", out.to_str().unwrap()]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("zulu-secret") && r.stdout.contains("zulu-secret"),
        "{md}"
    );
    diff_json("rep.t", &["--redact-values", "--fix-sql", "/tmp/x.sql"])
        .assert_clean_error("redact");
}

/// Three source shards with disjoint rows, routed into one target table each (integer key,
/// string key, no key): their rows together are compared with the target's.
#[tokio::test]
async fn shards_merged_into_one_target_table() {
    let mut setup = String::new();
    for i in 0..3 {
        setup.push_str(&format!(
            "DROP DATABASE IF EXISTS shm_s{i}; CREATE DATABASE shm_s{i}; USE shm_s{i};
             CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(20));
             CREATE TABLE users (name VARCHAR(20) PRIMARY KEY, n INT);
             CREATE TABLE events (a INT, b VARCHAR(10));
             INSERT INTO orders SELECT seq, CONCAT('o', seq) FROM seq_1_to_3000 WHERE seq % 3 = {i};
             INSERT INTO users SELECT CONCAT('u', seq), seq FROM seq_1_to_900 WHERE seq % 3 = {i};
             INSERT INTO events SELECT seq % 7, 'e' FROM seq_1_to_300 WHERE seq % 3 = {i};"
        ));
    }
    exec(Side::Source, &setup).await;
    exec(
        Side::Target,
        "DROP DATABASE IF EXISTS shm_t; CREATE DATABASE shm_t; USE shm_t;
         CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TABLE users (name VARCHAR(20) PRIMARY KEY, n INT);
         CREATE TABLE events (a INT, b VARCHAR(10));
         INSERT INTO orders SELECT seq, CONCAT('o', seq) FROM seq_1_to_3000;
         INSERT INTO users SELECT CONCAT('u', seq), seq FROM seq_1_to_900;
         INSERT INTO events SELECT seq % 7, 'e' FROM seq_1_to_300;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(
        &cfg,
        "[[route]]\nsource = \"shm_s*.*\"\ntarget = \"shm_t.*\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let config = ["--config", cfg.as_str(), "--threads", "2"];
    let r = diff_json("shm_s*.*", &config);
    let v = r.json();
    assert_eq!(r.code, 0, "{v:#}");
    let tables = v["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3, "one entry per target table: {v:#}");
    let by_target = |v: &serde_json::Value, t: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["target"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} in {v:#}"))
    };
    for (t, rows) in [
        ("shm_t.orders", 3000),
        ("shm_t.users", 900),
        ("shm_t.events", 300),
    ] {
        let e = by_target(&v, t);
        assert_eq!(e["status"], "equal", "{e:#}");
        assert_eq!(e["rows_compared"], rows, "{e:#}");
        let table = t.split('.').nth(1).unwrap();
        let want: Vec<String> = (0..3).map(|i| format!("shm_s{i}.{table}")).collect();
        assert_eq!(e["sources"], serde_json::json!(want), "{e:#}");
    }

    // Naming one shard brings in its siblings: alone, their rows would look extra.
    let r = diff_json("shm_s1.orders", &config);
    let v1 = r.json();
    assert_eq!(
        (r.code, v1["tables"].as_array().unwrap().len()),
        (0, 1),
        "{v1:#}"
    );
    assert_eq!(v1["tables"][0]["sources"].as_array().unwrap().len(), 3);

    // Differences anywhere are found, each once, and attributed to the target table.
    exec(
        Side::Target,
        "USE shm_t; DELETE FROM orders WHERE id = 5; UPDATE orders SET v = 'x' WHERE id = 7;
         INSERT INTO orders VALUES (99999, 'extra'); UPDATE users SET n = -1 WHERE name = 'u301';
         DELETE FROM events WHERE a = 3 LIMIT 1;",
    )
    .await;
    exec(
        Side::Source,
        "UPDATE shm_s0.orders SET v = 'changed' WHERE id = 2400",
    )
    .await;
    let r = diff_json("shm_s*.*", &config);
    let v = r.json();
    assert_eq!(r.code, 1, "{v:#}");
    let orders = by_target(&v, "shm_t.orders");
    assert_eq!(
        pairs(&orders["diffs"], "kind", "key"),
        vec![
            ("missing_in_target".to_string(), r#"{"id":5}"#.to_string()),
            ("mismatched".to_string(), r#"{"id":7}"#.to_string()),
            ("mismatched".to_string(), r#"{"id":2400}"#.to_string()),
            ("extra_in_target".to_string(), r#"{"id":99999}"#.to_string()),
        ],
        "{orders:#}"
    );
    let users = by_target(&v, "shm_t.users");
    assert_eq!(
        (
            users["mismatched"].as_u64(),
            users["missing_in_target"].as_u64()
        ),
        (Some(1), Some(0)),
        "{users:#}"
    );
    let events = by_target(&v, "shm_t.events");
    assert_eq!(
        (
            events["missing_in_target"].as_u64(),
            events["extra_in_target"].as_u64()
        ),
        (Some(1), Some(0)),
        "{events:#}"
    );

    // A shard whose columns differ cannot be merged: that table is an error, not a verdict.
    exec(
        Side::Source,
        "ALTER TABLE shm_s2.users ADD COLUMN extra INT",
    )
    .await;
    let r = diff_json("shm_s*.users", &config);
    let v = r.json();
    assert_eq!(r.code, 2, "{v:#}");
    assert!(
        v["tables"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not have the columns"),
        "{v:#}"
    );
}
