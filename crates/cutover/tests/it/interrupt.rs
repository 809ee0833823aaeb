//! Ctrl-C and time limits: queries on the servers are killed, progress is reported, and the
//! exit code says what happened.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::harness::*;

async fn locked_table(db: &str) -> mysql_async::Conn {
    fresh_db(db).await;
    both(&format!(
        "USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_1000"
    ))
    .await;
    // Holding a write lock on the target makes every read of the table wait.
    let mut holder = conn(Side::Target).await;
    holder
        .query_drop(format!("LOCK TABLES `{db}`.t WRITE"))
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn ctrl_c_kills_server_queries_and_exits_130() {
    let holder = locked_table("intr").await;
    let child = diff_command("intr.t", &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "cutover's query to wait on the lock",
        Duration::from_secs(60),
        || async { !our_queries(Side::Target, "intr").await.is_empty() },
    )
    .await;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["tables"][0]["error"], "interrupted");
    // Nothing of ours keeps running on the server, although the lock is still held.
    wait_for(
        "the killed query to be gone",
        Duration::from_secs(30),
        || async { our_queries(Side::Target, "intr").await.is_empty() },
    )
    .await;
    drop(holder);
}

#[tokio::test]
async fn query_time_limit_is_enforced_by_the_server() {
    let holder = locked_table("tlimit").await;
    let r = diff_json("tlimit.t", &["--query-timeout", "1s"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["tables"][0]["status"], "error");
    let err = v["tables"][0]["error"].as_str().unwrap();
    assert!(err.contains("time limit"), "{err}");
    drop(holder);
}
