//! Concurrency errors in `cutover replay`: a lock wait timeout and a deadlock that happen
//! only on the target are reported in the concurrency section with the other session's
//! statement as their context; a workload without them has an empty section.
//!
//! A pair of its own: the target's `innodb_lock_wait_timeout` is set to 1 s (the baseline
//! keeps 50 s), and the test holds a table lock on the target from a connection of its own,
//! so one session of the workload runs later there than on the baseline.

use std::path::Path;
use std::time::{Duration, Instant};

use cutover_sandbox::{Sandbox, Settings};
use cutover_workload::{Command as C, Header, Record, Writer};
use mysql_async::prelude::Queryable;

use crate::harness::{cutover, Run};

const DEADLINE: Duration = Duration::from_secs(60);
/// The workload's first captured time (not a whole second: no spreading within it).
const T0: i64 = 1_700_000_000_100_000;

fn at(s: f64, session: u64, command: C) -> Record {
    Record {
        session,
        ts_us: T0 + (s * 1e6) as i64,
        db: Some("rp_conflict".into()),
        user: Some("root".into()),
        command,
        response: None,
    }
}

fn q(sql: &str) -> C {
    C::Query { sql: sql.into() }
}

/// Two sessions. Phase 1: A updates rows 1, then the gate row, then 2 in one transaction;
/// B, half a second later, rows 2 then 1. In the capture (and on the baseline) A has
/// committed before B begins; on the target A waits at the gate (a table the test keeps
/// locked) holding row 1 until B waits for row 1: A's next update closes the cycle, a
/// deadlock. Phase 2: A holds row 3 for 3 s in a transaction; B updates it 1 s after A
/// took it: on the baseline B waits 2 s and succeeds, on the target it gives up after 1 s
/// (1205).
fn workload(path: &Path) {
    let mut w = Writer::create(path, &Header::new("general-log", None)).unwrap();
    let records = [
        at(0.0, 1, C::Connect),
        at(0.0, 2, C::Connect),
        at(0.01, 1, q("BEGIN")),
        at(0.02, 1, q("UPDATE t SET v = v + 1 WHERE id = 1")),
        at(0.03, 1, q("UPDATE g SET v = v + 1 WHERE id = 1")),
        at(0.04, 1, q("UPDATE t SET v = v + 1 WHERE id = 2")),
        at(0.05, 1, q("COMMIT")),
        at(0.5, 2, q("BEGIN")),
        at(0.5, 2, q("UPDATE t SET v = v + 2 WHERE id = 2")),
        at(0.6, 2, q("UPDATE t SET v = v + 2 WHERE id = 1")),
        at(0.7, 2, q("COMMIT")),
        at(4.0, 1, q("BEGIN")),
        at(4.0, 1, q("UPDATE t SET v = v + 3 WHERE id = 3")),
        at(5.0, 2, q("UPDATE t SET v = v + 4 WHERE id = 3")),
        at(7.0, 1, q("COMMIT")),
        at(7.5, 1, C::Quit),
        at(7.5, 2, C::Quit),
    ];
    for r in &records {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

fn setup(sb: &Sandbox) {
    let make = "DROP DATABASE IF EXISTS rp_conflict; CREATE DATABASE rp_conflict; \
         CREATE TABLE rp_conflict.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO rp_conflict.t SELECT seq, 0 FROM rp_conflict.seq_1_to_9; \
         CREATE TABLE rp_conflict.g (id INT PRIMARY KEY, v INT); \
         INSERT INTO rp_conflict.g VALUES (1, 0)";
    for s in [&sb.source, &sb.target] {
        s.sql(make).unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn connect(port: u16) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .db_name(Some("rp_conflict"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("connection")
}

/// Starts the replay (read-write, captured timing), runs `meanwhile`, waits for the end.
async fn replay<F: std::future::Future<Output = ()>>(
    sb: &Sandbox,
    w: &Path,
    out: &Path,
    meanwhile: F,
) -> Run {
    let mut child = cutover()
        .arg("replay")
        .arg(w)
        .args(["--target", &sb.target.dsn(None)])
        .args(["--baseline", &sb.source.dsn(None)])
        .args(["--speed", "1", "--yes", "--format", "json", "--out"])
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cutover");
    meanwhile.await;
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > DEADLINE {
            let out = crate::harness::sigterm_and_wait(child).await;
            panic!(
                "the replay did not finish: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The concurrency section's entry for `side` and `code`.
fn entry<'a>(v: &'a serde_json::Value, side: &str, code: u64) -> Option<&'a serde_json::Value> {
    v["concurrency"]["by_code"]
        .as_array()?
        .iter()
        .find(|c| c["side"] == side && c["code"] == code)
}

#[tokio::test]
async fn a_deadlock_and_a_lock_wait_timeout_only_the_target_had_are_explained_by_the_other_session()
{
    let sb = Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    setup(&sb);
    sb.target
        .sql("SET GLOBAL innodb_lock_wait_timeout = 1")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("conflict.cwl");
    workload(&w);

    // The gate: the target's `g` stays locked (a table lock: its wait is not bounded by
    // innodb_lock_wait_timeout) until session B waits for row 1, which A then holds.
    let mut holder = connect(sb.target.port).await;
    holder.query_drop("LOCK TABLES g WRITE").await.unwrap();
    let mut watch = connect(sb.target.port).await;
    let out = dir.path().join("report");
    let r = replay(&sb, &w, &out, async {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let waiting: Vec<u64> = watch
                .query(
                    "SELECT COUNT(*) FROM information_schema.processlist \
                     WHERE info = 'UPDATE t SET v = v + 2 WHERE id = 1'",
                )
                .await
                .unwrap();
            if waiting.first().is_some_and(|n| *n > 0) {
                break;
            }
            if Instant::now() > end {
                let list: Vec<(Option<String>, Option<String>)> = watch
                    .query("SELECT state, info FROM information_schema.processlist")
                    .await
                    .unwrap();
                eprintln!("session B never waited for row 1: {list:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        holder.query_drop("UNLOCK TABLES").await.unwrap();
    })
    .await;
    let _ = holder.disconnect().await;
    let _ = watch.disconnect().await;

    // Both errors are error differences (exit 1) and in the concurrency section, on the
    // target only.
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let c = &v["concurrency"];
    assert_eq!(
        c["errors"],
        2,
        "{}",
        serde_json::to_string_pretty(c).unwrap()
    );
    let deadlock = entry(&v, "target", 1213).unwrap_or_else(|| panic!("no 1213: {c}"));
    assert_eq!(deadlock["class"], "deadlock");
    let ex = &deadlock["example"];
    // The victim's context names the other session's update of a row it wanted.
    let victim = ex["statement"]["session"].as_u64().unwrap();
    let others = ex["others"].as_array().unwrap();
    assert!(
        others.iter().any(|o| o["session"] != victim
            && o["same_key"] == true
            && o["sql"].as_str().unwrap().starts_with("UPDATE t SET")),
        "{ex}"
    );
    assert!(ex["transaction"].as_array().unwrap().len() >= 2, "{ex}");
    assert!(
        ex["other_side"].as_str().unwrap().contains("affected"),
        "{ex}"
    );

    let timeout = entry(&v, "target", 1205).unwrap_or_else(|| panic!("no 1205: {c}"));
    let ex = &timeout["example"];
    assert_eq!(
        ex["statement"]["sql"],
        "UPDATE t SET v = v + 4 WHERE id = 3"
    );
    let holder_stmt = &ex["others"][0];
    assert_eq!(holder_stmt["session"], 1, "{ex}");
    assert_eq!(holder_stmt["sql"], "UPDATE t SET v = v + 3 WHERE id = 3");
    assert_eq!(holder_stmt["relation"], "open_transaction");
    assert_eq!(holder_stmt["same_key"], true);

    // The document says so too.
    let md = std::fs::read_to_string(out.join("replay.md")).unwrap();
    assert!(md.contains("Concurrency"), "{md}");
    assert!(md.contains("Concurrency — 2 errors"), "{md}");
    assert!(md.contains("1213 ER\\_LOCK\\_DEADLOCK"), "{md}");
    assert!(md.contains("UPDATE t SET v = v + 3 WHERE id = 3"), "{md}");

    // The same workload without the gate and with the baseline's timeout on the target:
    // no concurrency error, an empty section, the same answers.
    setup(&sb);
    sb.target
        .sql("SET GLOBAL innodb_lock_wait_timeout = 50")
        .unwrap_or_else(|e| panic!("{e}"));
    let out2 = dir.path().join("report2");
    let r = replay(&sb, &w, &out2, async {}).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["concurrency"]["errors"], 0, "{}", r.stdout);
    assert_eq!(v["concurrency"]["by_code"], serde_json::json!([]));
    let md = std::fs::read_to_string(out2.join("replay.md")).unwrap();
    assert!(md.contains("Concurrency — NONE"), "{md}");
}
