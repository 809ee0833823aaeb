//! The binlog reader and the checker against real MariaDB servers (a sandbox of their own).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cutover_core::value::Value;
use cutover_core::{Db, Endpoint, Role, SessionOptions};
use cutover_sandbox::{Sandbox, Settings};
use cutover_verify::reader::BinlogReader;
use cutover_verify::{table_filter, ChangeKind, RowChange, Start};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("{e}")))
}

async fn source_db() -> Db {
    let ep = Endpoint::parse(&sandbox().source.dsn(None)).expect("dsn");
    let opts = SessionOptions {
        read_only: true,
        ..SessionOptions::default()
    };
    Db::connect(&ep, Role::Source, opts, CancellationToken::new())
        .await
        .expect("connect")
}

/// Reads changes until `n` have come, within the deadline.
async fn read_changes(r: &mut BinlogReader, n: usize) -> Vec<RowChange> {
    let until = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r.next()).await {
            Ok(Ok(c)) => out.extend(c),
            Ok(Err(e)) => panic!("reader: {e}"),
            Err(_) => panic!(
                "only {} of {n} changes within {DEADLINE:?}: {out:?}",
                out.len()
            ),
        }
    }
    out
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

#[tokio::test]
async fn reader_turns_row_events_into_keys_and_images() {
    let sb = sandbox();
    sb.source
        .sql(
            "DROP DATABASE IF EXISTS rd; CREATE DATABASE rd; \
             CREATE TABLE rd.t (id INT UNSIGNED PRIMARY KEY, v VARCHAR(20), \
               ts TIMESTAMP(3) NULL, e ENUM('a','b') NULL, small TINYINT UNSIGNED); \
             CREATE TABLE rd.other (id INT PRIMARY KEY)",
        )
        .expect("schema");
    let db = source_db().await;
    let filter = table_filter(vec![
        cutover_core::config::Pattern::parse("rd.t").expect("p")
    ]);
    let mut r = BinlogReader::open(&db, &Start::Now, 4_000_001, filter)
        .await
        .expect("open");
    sb.source
        .sql(
            "INSERT INTO rd.t VALUES (4294967295, 'max', '2024-02-29 12:34:56.789', 'b', 255), \
             (2, 'two', NULL, NULL, 0); \
             INSERT INTO rd.other VALUES (1); \
             UPDATE rd.t SET v = 'TWO' WHERE id = 2; \
             UPDATE rd.t SET id = 3 WHERE id = 2; \
             DELETE FROM rd.t WHERE id = 3",
        )
        .expect("writes");
    let changes = read_changes(&mut r, 6).await;
    let got: Vec<(ChangeKind, Vec<Value>)> =
        changes.iter().map(|c| (c.kind, c.key.clone())).collect();
    assert_eq!(
        got,
        vec![
            (ChangeKind::Insert, vec![int(4_294_967_295)]),
            (ChangeKind::Insert, vec![int(2)]),
            (ChangeKind::Update, vec![int(2)]),
            // A key change: the old key goes, the new one comes.
            (ChangeKind::Delete, vec![int(2)]),
            (ChangeKind::Insert, vec![int(3)]),
            (ChangeKind::Delete, vec![int(3)]),
        ]
    );
    assert!(changes.iter().all(|c| c.table.to_string() == "rd.t"));
    let first = changes[0].image.clone().expect("a full image");
    let shown: Vec<String> = first.iter().map(|v| v.to_string()).collect();
    assert_eq!(first[1], Value::Text("max".into()));
    assert_eq!(first[3], Value::Text("b".into()));
    assert_eq!(first[4], int(255));
    assert!(shown[2].contains("2024-02-29 12:34:56.789"), "{shown:?}");
    assert_eq!(
        changes[2].image.as_ref().map(|i| i[1].clone()),
        Some(Value::Text("TWO".into()))
    );

    // The position reached is the source's: nothing more was written.
    let status = sb.source.sql("SHOW MASTER STATUS").expect("status");
    let expected = format!("{}:{}", status[0][0], status[0][1]);
    let until = Instant::now() + DEADLINE;
    while r.position().to_string() != expected {
        assert!(
            Instant::now() < until,
            "reader at {}, source at {expected}",
            r.position()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), r.next()).await;
    }
}

#[tokio::test]
async fn reader_rereads_a_definition_after_ddl() {
    let sb = sandbox();
    sb.source
        .sql(
            "DROP DATABASE IF EXISTS ddl; CREATE DATABASE ddl; \
             CREATE TABLE ddl.t (id INT PRIMARY KEY, a INT)",
        )
        .expect("schema");
    let db = source_db().await;
    let filter = table_filter(vec![
        cutover_core::config::Pattern::parse("ddl.*").expect("p")
    ]);
    let mut r = BinlogReader::open(&db, &Start::Now, 4_000_002, filter)
        .await
        .expect("open");
    sb.source
        .sql("INSERT INTO ddl.t VALUES (1, 10)")
        .expect("insert");
    let c = read_changes(&mut r, 1).await;
    assert_eq!(c[0].image.as_ref().map(Vec::len), Some(2));
    sb.source
        .sql(
            "ALTER TABLE ddl.t ADD COLUMN b VARCHAR(10) DEFAULT 'x'; \
             INSERT INTO ddl.t VALUES (2, 20, 'y'); \
             CREATE TABLE ddl.u (k VARCHAR(10) PRIMARY KEY); \
             INSERT INTO ddl.u VALUES ('new')",
        )
        .expect("ddl");
    let c = read_changes(&mut r, 2).await;
    assert_eq!(c[0].key, vec![int(2)]);
    assert_eq!(
        c[0].image.as_ref().map(|i| i[2].clone()),
        Some(Value::Text("y".into()))
    );
    assert_eq!(c[1].table.to_string(), "ddl.u");
    assert_eq!(c[1].key, vec![Value::Text("new".into())]);
    assert_eq!(r.skipped_rows().0, 0, "{:?}", r.skipped_rows().1);
}

#[tokio::test]
async fn a_purged_or_wrong_position_is_a_clear_error() {
    let db = source_db().await;
    let start = Start::parse("no-such-binlog.000042:4").expect("start");
    let mut r = match BinlogReader::open(&db, &start, 4_000_003, table_filter(vec![])).await {
        Ok(r) => r,
        Err(e) => {
            assert!(e.to_string().contains("not in the source's binlog"), "{e}");
            return;
        }
    };
    // The server may answer only once the stream is read.
    let e = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Err(e) = r.next().await {
                return e;
            }
        }
    })
    .await
    .expect("an error within the deadline");
    assert!(e.to_string().contains("not in the source's binlog"), "{e}");
}

#[tokio::test]
async fn a_source_without_a_row_binlog_is_refused_with_the_fix() {
    // The target of this sandbox also logs; no test here reads its binlog, so its format can
    // be changed for new sessions.
    let sb = sandbox();
    sb.target
        .sql("SET GLOBAL binlog_format = 'STATEMENT'")
        .expect("set format");
    let ep = Endpoint::parse(&sb.target.dsn(None)).expect("dsn");
    let db = Db::connect(
        &ep,
        Role::Source,
        SessionOptions::default(),
        CancellationToken::new(),
    )
    .await
    .expect("connect");
    let r = BinlogReader::open(&db, &Start::Now, 4_000_004, table_filter(vec![])).await;
    sb.target
        .sql("SET GLOBAL binlog_format = 'ROW'")
        .expect("reset format");
    let e = r.err().expect("refused").to_string();
    assert!(e.contains("binlog_format is STATEMENT"), "{e}");
    assert!(e.contains("binlog_format=ROW"), "{e}");
}

#[tokio::test]
async fn reader_starts_from_a_mariadb_gtid() {
    let sb = sandbox();
    sb.source
        .sql(
            "DROP DATABASE IF EXISTS gt; CREATE DATABASE gt; \
             CREATE TABLE gt.t (id INT PRIMARY KEY); INSERT INTO gt.t VALUES (1)",
        )
        .expect("schema");
    let gtid = sb.source.sql("SELECT @@gtid_binlog_pos").expect("gtid")[0][0].clone();
    // Changes after the GTID position are read, the ones before are not.
    sb.source
        .sql("INSERT INTO gt.t VALUES (2); INSERT INTO gt.t VALUES (3)")
        .expect("writes");
    let db = source_db().await;
    let filter = table_filter(vec![
        cutover_core::config::Pattern::parse("gt.*").expect("p")
    ]);
    let start = Start::parse(&gtid).expect("a GTID");
    let mut r = BinlogReader::open(&db, &start, 4_000_005, filter)
        .await
        .expect("open");
    let c = read_changes(&mut r, 2).await;
    let keys: Vec<Vec<Value>> = c.iter().map(|c| c.key.clone()).collect();
    assert_eq!(keys, vec![vec![int(2)], vec![int(3)]]);
    assert!(r.position().file.starts_with("binlog."), "{}", r.position());
    assert!(r.position().pos > 4, "{}", r.position());
}
