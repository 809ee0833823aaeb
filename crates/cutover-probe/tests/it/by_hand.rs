//! The tests the probe finds differing between REPEATABLE READ and READ COMMITTED, run by
//! hand with two plain client connections (no runner, no judge), to measure what the server
//! does at each level. A blocking step is recognised the plain way: a lock wait timeout of
//! one second, error 1205.

use cutover_core::Role;
use mysql_async::prelude::*;

use crate::conn;

async fn pair(level: &str, db: &str) -> (mysql_async::Conn, mysql_async::Conn) {
    let mut setup = conn(Role::Source).await;
    setup
        .query_drop(format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
             CREATE TABLE {db}.test (id INT PRIMARY KEY, value INT) ENGINE=InnoDB; \
             INSERT INTO {db}.test (id, value) VALUES (1, 10), (2, 20)"
        ))
        .await
        .unwrap();
    let mut t1 = conn(Role::Source).await;
    let mut t2 = conn(Role::Source).await;
    for c in [&mut t1, &mut t2] {
        c.query_drop(format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL {level}; SET SESSION innodb_lock_wait_timeout = 1; USE {db}"
        ))
        .await
        .unwrap();
    }
    (t1, t2)
}

async fn rows(c: &mut mysql_async::Conn, sql: &str) -> Vec<(i64, i64)> {
    c.query(sql).await.unwrap()
}

async fn drop_db(db: &str) {
    conn(Role::Source)
        .await
        .query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

/// PMP with a read predicate: RC shows T2's insert to T1's second read, RR does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmp_read_predicate_by_hand() {
    for (level, db, expect) in [
        ("REPEATABLE READ", "hand_pmp_rr", vec![]),
        ("READ COMMITTED", "hand_pmp_rc", vec![(3, 30)]),
    ] {
        let (mut t1, mut t2) = pair(level, db).await;
        t1.query_drop("BEGIN").await.unwrap();
        t2.query_drop("BEGIN").await.unwrap();
        assert!(rows(&mut t1, "SELECT id, value FROM test WHERE value = 30")
            .await
            .is_empty());
        t2.query_drop("INSERT INTO test (id, value) VALUES (3, 30)")
            .await
            .unwrap();
        t2.query_drop("COMMIT").await.unwrap();
        let seen = rows(&mut t1, "SELECT id, value FROM test WHERE value % 3 = 0").await;
        t1.query_drop("COMMIT").await.unwrap();
        assert_eq!(seen, expect, "{level}");
        drop_db(db).await;
    }
}

/// Read skew, read-only: RC lets T1 see 1 => 10 and then 2 => 18; RR keeps 2 => 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_single_read_only_by_hand() {
    for (level, db, expect) in [
        ("REPEATABLE READ", "hand_gs_rr", 20),
        ("READ COMMITTED", "hand_gs_rc", 18),
    ] {
        let (mut t1, mut t2) = pair(level, db).await;
        t1.query_drop("BEGIN").await.unwrap();
        t2.query_drop("BEGIN").await.unwrap();
        assert_eq!(
            rows(&mut t1, "SELECT id, value FROM test WHERE id = 1").await,
            vec![(1, 10)]
        );
        rows(&mut t2, "SELECT id, value FROM test WHERE id = 1").await;
        rows(&mut t2, "SELECT id, value FROM test WHERE id = 2").await;
        t2.query_drop("UPDATE test SET value = 12 WHERE id = 1")
            .await
            .unwrap();
        t2.query_drop("UPDATE test SET value = 18 WHERE id = 2")
            .await
            .unwrap();
        t2.query_drop("COMMIT").await.unwrap();
        let seen = rows(&mut t1, "SELECT id, value FROM test WHERE id = 2").await;
        t1.query_drop("COMMIT").await.unwrap();
        assert_eq!(seen, vec![(2, expect)], "{level}");
        drop_db(db).await;
    }
}

/// A range FOR UPDATE: under RR the insert into the range waits (here: times out with
/// 1205); under RC it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_lock_by_hand() {
    for (level, db, blocks) in [
        ("REPEATABLE READ", "hand_gap_rr", true),
        ("READ COMMITTED", "hand_gap_rc", false),
    ] {
        let (mut t1, mut t2) = pair(level, db).await;
        t1.query_drop("BEGIN").await.unwrap();
        t2.query_drop("BEGIN").await.unwrap();
        rows(
            &mut t1,
            "SELECT id, value FROM test WHERE id BETWEEN 1 AND 10 ORDER BY id FOR UPDATE",
        )
        .await;
        let r = t2
            .query_drop("INSERT INTO test (id, value) VALUES (5, 50)")
            .await;
        let code = match &r {
            Err(mysql_async::Error::Server(e)) => Some(e.code),
            _ => None,
        };
        assert_eq!(code == Some(1205), blocks, "{level}: {r:?}");
        t1.query_drop("COMMIT").await.unwrap();
        t2.query_drop("ROLLBACK").await.unwrap();
        drop_db(db).await;
    }
}

/// Lost update at both levels (the probe says "same"): T2's update waits for T1, then
/// overwrites; both commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_update_at_both_levels_by_hand() {
    for (level, db) in [
        ("REPEATABLE READ", "hand_p4_rr"),
        ("READ COMMITTED", "hand_p4_rc"),
    ] {
        let (mut t1, mut t2) = pair(level, db).await;
        t1.query_drop("BEGIN").await.unwrap();
        t2.query_drop("BEGIN").await.unwrap();
        assert_eq!(
            rows(&mut t1, "SELECT id, value FROM test WHERE id = 1").await,
            vec![(1, 10)]
        );
        assert_eq!(
            rows(&mut t2, "SELECT id, value FROM test WHERE id = 1").await,
            vec![(1, 10)]
        );
        t1.query_drop("UPDATE test SET value = 11 WHERE id = 1")
            .await
            .unwrap();
        let waiting = tokio::spawn(async move {
            let r = t2
                .query_drop("UPDATE test SET value = 11 WHERE id = 1")
                .await;
            (t2, r)
        });
        t1.query_drop("COMMIT").await.unwrap();
        let (mut t2, r) = waiting.await.unwrap();
        r.unwrap_or_else(|e| panic!("{level}: {e}"));
        t2.query_drop("COMMIT").await.unwrap();
        drop_db(db).await;
    }
}
