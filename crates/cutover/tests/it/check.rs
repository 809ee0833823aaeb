//! `cutover check` on real MariaDB servers: each rule MariaDB can show, triggered and not
//! triggered; the ID-space forecast from `--sample` and from `--history`; bad input.
//! (Facts only MySQL 8, Aurora or TiDB can show are tested against recorded answers in
//! `crates/cutover-check/tests/`.)

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cutover_sandbox::{Sandbox, Settings};
use serde_json::Value;

use crate::harness::*;

fn check(extra: &[&str]) -> Run {
    let mut c = cutover();
    c.args(["check", "--source", &dsn(Side::Source), "--format", "json"])
        .args(extra);
    run(&mut c)
}

/// Findings as `(rule, severity, object)`.
fn findings(v: &Value) -> Vec<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {v}"))
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["object"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(v: &Value, rule: &str, severity: &str, object: &str) -> bool {
    findings(v)
        .iter()
        .any(|(r, s, o)| r == rule && s == severity && o == object)
}

fn message<'a>(v: &'a Value, rule: &str, object: &str) -> &'a str {
    v["findings"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["rule"] == rule && f["object"].as_str().unwrap_or("") == object)
        })
        .and_then(|f| f["message"].as_str())
        .unwrap_or_else(|| panic!("no {rule} on {object} in {v:#}"))
}

/// Errors and warnings about objects of database `db`.
fn problems_in(v: &Value, db: &str) -> Vec<(String, String, String)> {
    findings(v)
        .into_iter()
        .filter(|(_, s, o)| s != "info" && (o == db || o.starts_with(&format!("{db}."))))
        .collect()
}

#[tokio::test]
async fn a_clean_database_yields_no_error_or_warning() {
    fresh_db("chk_clean").await;
    exec(
        Side::Source,
        "USE chk_clean;
         CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY,
           customer VARCHAR(100) COLLATE utf8mb4_bin NOT NULL, total DECIMAL(12,2),
           created DATETIME NOT NULL, KEY (created));
         INSERT INTO orders (customer, total, created) VALUES ('a', 1.5, NOW()), ('b', 2, NOW())",
    )
    .await;
    let r = check(&["--databases", "chk_clean"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert!(problems_in(&v, "chk_clean").is_empty(), "{v:#}");
    // The sandbox source replicates cleanly: none of the server rules fire.
    for rule in [
        "source.binlog",
        "source.binlog_format",
        "source.binlog_row_image",
        "source.server_id",
        "source.binlog_filter",
        "source.privileges",
        "source.online_ddl",
    ] {
        assert!(
            !findings(&v).iter().any(|(r, _, _)| r == rule),
            "{rule}: {v:#}"
        );
    }
    assert!(has(&v, "source.version", "info", ""), "{v:#}");
    assert!(has(&v, "source.gtid", "info", ""), "{v:#}");
    assert!(has(&v, "source.binlog_retention", "info", ""), "{v:#}");
    // Not even an info about the clean table: no view, generated column, engine, collation,
    // or ID space worth a word.
    let about: Vec<_> = findings(&v)
        .into_iter()
        .filter(|(_, _, o)| o.starts_with("chk_clean"))
        .collect();
    assert!(about.is_empty(), "{about:?}");
    assert_eq!(v["summary"]["errors"], 0);
    assert_eq!(v["summary"]["tables"], 1);
}

const SCHEMA_PROBLEMS: &str = "
CREATE TABLE nokey (a INT, b INT);
CREATE TABLE parent (id INT PRIMARY KEY);
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id));
CREATE TRIGGER trg_child BEFORE INSERT ON child FOR EACH ROW SET NEW.parent_id = NEW.parent_id;
CREATE PROCEDURE proc_a() SELECT 1;
CREATE FUNCTION fn_a() RETURNS INT DETERMINISTIC RETURN 1;
CREATE EVENT ev_a ON SCHEDULE EVERY 1 DAY DO SELECT 1;
CREATE TABLE docs (id INT PRIMARY KEY, body TEXT COLLATE utf8mb4_bin, FULLTEXT KEY ft_body (body));
CREATE TABLE places (id INT PRIMARY KEY, p POINT NOT NULL, SPATIAL KEY sp_p (p));
CREATE TABLE legacy (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin2, note VARCHAR(20) CHARACTER SET latin1);
CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
CREATE TABLE ranked (id INT PRIMARY KEY, score INT, KEY score_desc (score DESC));
CREATE TABLE blobs (id INT PRIMARY KEY, payload LONGBLOB);
CREATE TABLE gen (id INT PRIMARY KEY, a INT, b INT AS (a + 1) VIRTUAL);
CREATE TABLE parts (id INT NOT NULL, d INT NOT NULL, PRIMARY KEY (id, d))
  PARTITION BY RANGE (id) SUBPARTITION BY HASH (d) SUBPARTITIONS 2
  (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE);
CREATE TABLE hashed (id INT PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 4;
CREATE VIEW v_people AS SELECT id, name FROM people;
CREATE TABLE _orders_gho (id INT PRIMARY KEY);
CREATE TABLE myisam_t (id INT PRIMARY KEY) ENGINE=MyISAM;
CREATE TABLE versioned (id INT PRIMARY KEY) WITH SYSTEM VERSIONING;
CREATE SEQUENCE seq_a;
CREATE TABLE nets (id INT PRIMARY KEY, ip INET6);
CREATE TABLE fine (id INT PRIMARY KEY, v VARBINARY(10))";

#[tokio::test]
async fn schema_rules_against_tidb_and_not_against_mariadb() {
    fresh_db("chk_schema").await;
    exec(Side::Source, &format!("USE chk_schema; {SCHEMA_PROBLEMS}")).await;
    let r = check(&["--databases", "chk_schema"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let expect = [
        ("schema.no_key", "error", "chk_schema.nokey"),
        ("schema.foreign_key", "warning", "chk_schema.child"),
        ("schema.trigger", "error", "chk_schema.trg_child"),
        ("schema.routine", "error", "chk_schema.proc_a"),
        ("schema.routine", "error", "chk_schema.fn_a"),
        ("schema.event", "error", "chk_schema.ev_a"),
        ("schema.fulltext", "error", "chk_schema.docs"),
        ("schema.spatial", "error", "chk_schema.places"),
        ("schema.spatial", "error", "chk_schema.places.p"),
        ("schema.charset", "error", "chk_schema.legacy.name"),
        // MariaDB's latin1 default, latin1_swedish_ci, is not among TiDB's collations.
        ("schema.collation", "error", "chk_schema.legacy.note"),
        ("schema.collation_change", "warning", "chk_schema.people"),
        ("schema.descending_index", "warning", "chk_schema.ranked"),
        ("schema.row_size", "warning", "chk_schema.blobs"),
        ("schema.generated_column", "info", "chk_schema.gen.b"),
        ("schema.partitioning", "error", "chk_schema.parts"),
        ("schema.view", "warning", "chk_schema.v_people"),
        ("source.online_ddl", "warning", "chk_schema._orders_gho"),
        ("schema.engine", "warning", "chk_schema.myisam_t"),
        ("schema.table_type", "error", "chk_schema.versioned"),
        ("schema.column_type", "error", "chk_schema.nets.ip"),
    ];
    for (rule, sev, obj) in expect {
        assert!(
            has(&v, rule, sev, obj),
            "expected {rule} {sev} on {obj}:\n{v:#}"
        );
    }
    // Tables without a problem are not mentioned.
    for clean in ["chk_schema.fine", "chk_schema.parent", "chk_schema.hashed"] {
        assert!(
            !findings(&v)
                .iter()
                .any(|(_, s, o)| s != "info" && o == clean),
            "{clean}: {v:#}"
        );
    }
    assert!(message(&v, "schema.collation_change", "chk_schema.people")
        .contains("name (utf8mb4_general_ci → utf8mb4_bin)"));

    // MariaDB to MariaDB: stored code, FULLTEXT, SPATIAL, charsets, collations and
    // partitions all carry over.
    let r = check(&["--databases", "chk_schema", "--target-flavor", "mariadb"]);
    let v = r.json();
    for rule in [
        "schema.foreign_key",
        "schema.trigger",
        "schema.routine",
        "schema.event",
        "schema.fulltext",
        "schema.spatial",
        "schema.charset",
        "schema.collation",
        "schema.collation_change",
        "schema.descending_index",
        "schema.row_size",
        "schema.partitioning",
    ] {
        assert!(
            !findings(&v).iter().any(|(r, _, _)| r == rule),
            "{rule}: {v:#}"
        );
    }
    // Replication still needs a key, whatever the target.
    assert!(has(&v, "schema.no_key", "error", "chk_schema.nokey"));
    assert!(
        !findings(&v)
            .iter()
            .any(|(r, _, _)| r == "schema.table_type" || r == "schema.column_type"),
        "{v:#}"
    );
    // MySQL has no sequences (TiDB has).
    assert!(!has(
        &check(&["--databases", "chk_schema"]).json(),
        "schema.table_type",
        "error",
        "chk_schema.seq_a"
    ));
    let v = check(&["--databases", "chk_schema", "--target-flavor", "mysql"]).json();
    assert!(
        has(&v, "schema.table_type", "error", "chk_schema.seq_a"),
        "{v:#}"
    );
}

#[tokio::test]
async fn id_spaces_on_the_source() {
    fresh_db("chk_ids").await;
    exec(
        Side::Source,
        "USE chk_ids;
         CREATE TABLE tiny (id TINYINT AUTO_INCREMENT PRIMARY KEY, v INT) AUTO_INCREMENT = 121;
         CREATE TABLE half (id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT = 40000;
         CREATE TABLE roomy (id BIGINT AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT = 1000;
         CREATE TABLE plain (id INT PRIMARY KEY); INSERT INTO plain VALUES (1), (2000000000);
         CREATE TABLE small_plain (id INT PRIMARY KEY); INSERT INTO small_plain VALUES (1), (5)",
    )
    .await;
    let r = check(&["--databases", "chk_ids", "--target-flavor", "mysql"]);
    let v = r.json();
    assert_eq!(r.code, 1, "{v:#}");
    assert!(
        has(&v, "id.auto_increment", "error", "chk_ids.tiny.id"),
        "{v:#}"
    );
    assert!(message(&v, "id.auto_increment", "chk_ids.tiny.id").contains("120 of 127"));
    assert!(
        has(&v, "id.auto_increment", "warning", "chk_ids.half.id"),
        "{v:#}"
    );
    assert!(
        has(&v, "id.integer_key", "error", "chk_ids.plain.id"),
        "{v:#}"
    );
    for clean in ["chk_ids.roomy.id", "chk_ids.small_plain.id"] {
        assert!(
            !findings(&v).iter().any(|(_, _, o)| o == clean),
            "{clean}: {v:#}"
        );
    }
    // On TiDB, an AUTO_INCREMENT with less headroom than one AUTO_ID_CACHE batch breaks.
    let r = check(&["--databases", "chk_ids"]);
    let v = r.json();
    assert!(
        has(&v, "id.auto_increment", "error", "chk_ids.half.id"),
        "{v:#}"
    );
    assert!(message(&v, "id.auto_increment", "chk_ids.half.id").contains("AUTO_ID_CACHE"));
    assert!(
        !findings(&v).iter().any(|(_, _, o)| o == "chk_ids.roomy.id"),
        "{v:#}"
    );
    // cutover.toml's [filter] exclude leaves tables out.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(&cfg, "[filter]\nexclude = [\"chk_ids.tiny\"]\n").unwrap();
    let mut c = cutover();
    c.args(["check", "--source", &dsn(Side::Source), "--format", "json"])
        .args(["--databases", "chk_ids", "--config"])
        .arg(&cfg);
    let v = run(&mut c).json();
    assert!(
        !findings(&v).iter().any(|(_, _, o)| o == "chk_ids.tiny.id"),
        "{v:#}"
    );
    assert!(
        has(&v, "id.integer_key", "error", "chk_ids.plain.id"),
        "{v:#}"
    );
}

#[tokio::test]
async fn snowflake_keys_and_worker_tables() {
    fresh_db("chk_sf").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let twitter = ((now_ms - 1_288_834_974_657) << 22) | (5 << 12) | 7;
    // uid-generator: 28 bits of seconds since 2016-05-20, 22 bits of worker, 13 of sequence;
    // an ID of 2024-11-01, worker 812.
    let uid = ((1_730_419_200i64 - 1_463_702_400) << 35) | (812 << 13) | 3;
    exec(
        Side::Source,
        &format!(
            "USE chk_sf;
             CREATE TABLE tweets (id BIGINT PRIMARY KEY, body VARBINARY(10));
             INSERT INTO tweets VALUES ({}, 'a'), ({twitter}, 'b');
             CREATE TABLE uids (id BIGINT PRIMARY KEY); INSERT INTO uids VALUES ({uid});
             CREATE TABLE counters (id BIGINT PRIMARY KEY); INSERT INTO counters VALUES (1), (99999);
             CREATE TABLE WORKER_NODE (ID BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
               HOST_NAME VARCHAR(64) COLLATE utf8mb4_bin NOT NULL, PORT VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
               TYPE INT NOT NULL, LAUNCH_DATE DATE NOT NULL) AUTO_INCREMENT = 4100000;
             CREATE TABLE nodes (id BIGINT AUTO_INCREMENT PRIMARY KEY, addr VARBINARY(64)) AUTO_INCREMENT = 100",
            twitter - 1000
        ),
    )
    .await;
    let r = check(&["--databases", "chk_sf"]);
    let v = r.json();
    assert!(has(&v, "id.snowflake", "info", "chk_sf.tweets.id"), "{v:#}");
    let m = message(&v, "id.snowflake", "chk_sf.tweets.id");
    assert!(
        m.contains("twitter") && m.contains("worker 5") && m.contains("2080-07-10"),
        "{m}"
    );
    assert!(has(&v, "id.snowflake", "error", "chk_sf.uids.id"), "{v:#}");
    assert!(message(&v, "id.snowflake", "chk_sf.uids.id").contains("ran out on 2024-11-"));
    assert!(!findings(&v)
        .iter()
        .any(|(r, _, o)| r == "id.snowflake" && o == "chk_sf.counters.id"));
    // 94,304 worker IDs left: three TiDB restarts' worth.
    assert!(
        has(&v, "id.worker_table", "error", "chk_sf.WORKER_NODE.ID"),
        "{v:#}"
    );
    let m = message(&v, "id.worker_table", "chk_sf.WORKER_NODE.ID");
    assert!(m.contains("94,304 left") && m.contains("3 restarts"), "{m}");
    // An allocator of another shape is found when named.
    assert!(
        !findings(&v).iter().any(|(_, _, o)| o == "chk_sf.nodes.id"),
        "{v:#}"
    );
    let v = check(&["--databases", "chk_sf", "--worker-table", "chk_sf.nodes"]).json();
    assert!(
        has(&v, "id.worker_table", "warning", "chk_sf.nodes.id"),
        "{v:#}"
    );
    // A custom layout replaces the known ones.
    let v = check(&[
        "--tables",
        "chk_sf.uids",
        "--snowflake",
        "epoch=2016-05-20,time_bits=28,worker_bits=22,seq_bits=13,unit=s,name=ours",
    ])
    .json();
    assert!(
        message(&v, "id.snowflake", "chk_sf.uids.id").contains("ours"),
        "{v:#}"
    );
}

fn forecast<'a>(v: &'a Value, object: &str) -> &'a Value {
    v["summary"]["forecasts"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["object"] == object))
        .unwrap_or_else(|| panic!("no forecast of {object} in {v:#}"))
}

#[tokio::test]
async fn forecast_from_two_samples() {
    fresh_db("chk_rate").await;
    exec(
        Side::Source,
        "CREATE TABLE chk_rate.t (id INT AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT = 1001;
         CREATE TABLE chk_rate.k (id INT PRIMARY KEY); INSERT INTO chk_rate.k VALUES (1000)",
    )
    .await;
    let mut cmd = cutover();
    cmd.args(["check", "--source", &dsn(Side::Source), "--format", "json"])
        .args([
            "--databases",
            "chk_rate",
            "--target-flavor",
            "mysql",
            "--sample",
            "3s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cutover check");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // The first reading is taken when the check says so; 30,000 IDs are then used before
    // the second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no sampling line");
        match lines.next() {
            Some(Ok(l)) if l.starts_with("sampling:") => break,
            Some(Ok(_)) => {}
            other => panic!("stderr ended before sampling: {other:?}"),
        }
    }
    exec(
        Side::Source,
        "ALTER TABLE chk_rate.t AUTO_INCREMENT = 31001; INSERT INTO chk_rate.k VALUES (16000)",
    )
    .await;
    let out = child.wait_with_output().expect("check output");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let f = forecast(&v, "chk_rate.t.id");
    assert_eq!(f["rate_from"], "sample");
    assert_eq!(f["used"], 31_000);
    let rate = f["rate_per_second"].as_f64().unwrap();
    // 30,000 IDs over a little more than 3 s.
    assert!((30_000.0 / 6.0..=10_000.0).contains(&rate), "{rate}");
    let headroom = (2_147_483_647u64 - 31_000) as f64;
    assert_eq!(f["headroom"].as_f64().unwrap(), headroom);
    let eta = f["eta_ms"].as_f64().unwrap() / 1000.0;
    assert!((eta - headroom / rate).abs() < 1e-6 * eta, "{eta}");
    // About 2.5 days: inside the 90-day horizon.
    assert!(
        has(&v, "id.auto_increment", "error", "chk_rate.t.id"),
        "{v:#}"
    );
    assert!(message(&v, "id.auto_increment", "chk_rate.t.id").contains("runs out in"));
    assert_eq!(out.status.code(), Some(1));
    // A key without a counter: its largest value is read twice too.
    let k = forecast(&v, "chk_rate.k.id");
    assert_eq!(
        (k["rate_from"].as_str(), k["used"].as_u64()),
        (Some("sample"), Some(16_000))
    );
    let krate = k["rate_per_second"].as_f64().unwrap();
    assert!((15_000.0 / 6.0..=5_000.0).contains(&krate), "{krate}");
}

#[tokio::test]
async fn forecast_from_the_history_file() {
    fresh_db("chk_hist").await;
    exec(
        Side::Source,
        "CREATE TABLE chk_hist.t (id INT AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT = 3592001",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let day = 86_400.0;
    let server = format!("127.0.0.1:{}", port(Side::Source));
    // 10 IDs/s two days ago, 20/s over the last day (the run itself is the last reading).
    let mut f = std::fs::File::create(&path).unwrap();
    for (at, value) in [(now - 2.0 * day, 1_000_000u64), (now - day, 1_864_000)] {
        writeln!(
            f,
            "{}",
            serde_json::json!({"at": at, "server": server, "values": {"chk_hist.t.id": value}})
        )
        .unwrap();
    }
    // Another server's line is ignored.
    writeln!(f, "{}", serde_json::json!({"at": now - day, "server": "elsewhere:3306", "values": {"chk_hist.t.id": 1}})).unwrap();
    drop(f);
    let hist = path.to_str().unwrap();
    let r = check(&[
        "--tables",
        "chk_hist.t",
        "--target-flavor",
        "mysql",
        "--history",
        hist,
    ]);
    let v = r.json();
    let fc = forecast(&v, "chk_hist.t.id");
    assert_eq!(fc["rate_from"], "history");
    let rate = fc["rate_per_second"].as_f64().unwrap();
    assert!((rate - 15.0).abs() < 0.01, "{rate}");
    let growth = fc["growth_per_day"].as_f64().unwrap();
    assert!((growth - 2f64.ln()).abs() < 0.01, "{growth}");
    let (eta, eta_growth) = (
        fc["eta_ms"].as_f64().unwrap() / 1000.0,
        fc["eta_growth_ms"].as_f64().unwrap() / 1000.0,
    );
    assert!(eta_growth < eta, "{eta_growth} {eta}");
    // Linear: (2^31 − 1 − 3,592,000) / 15 per second ≈ 1,654 days; with the rate doubling
    // daily, a matter of days: inside the horizon.
    assert!((eta - (2_147_483_647.0 - 3_592_000.0) / rate).abs() < 1.0);
    assert!(eta_growth < 90.0 * day);
    assert!(
        has(&v, "id.auto_increment", "error", "chk_hist.t.id"),
        "{v:#}"
    );
    // This run's reading was appended.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["values"]["chk_hist.t.id"], 3_592_000);
    assert_eq!(last["server"], server.as_str());
}

#[tokio::test]
async fn privileges_of_a_read_only_user_and_no_password_in_output() {
    fresh_db("chk_priv").await;
    exec(
        Side::Source,
        "CREATE TABLE chk_priv.t (id INT PRIMARY KEY);
         DROP USER IF EXISTS 'chk_ro'@'%'; CREATE USER 'chk_ro'@'%' IDENTIFIED BY 'Sekrit-pw-123';
         GRANT SELECT ON chk_priv.* TO 'chk_ro'@'%';
         DROP USER IF EXISTS 'chk_none'@'%'; CREATE USER 'chk_none'@'%' IDENTIFIED BY 'Sekrit-pw-123'",
    )
    .await;
    let source = format!("mysql://chk_ro@127.0.0.1:{}", port(Side::Source));
    let mut c = cutover();
    c.args([
        "check",
        "--source",
        &source,
        "--databases",
        "chk_priv",
        "--format",
        "json",
    ])
    .env("CUTOVER_SOURCE_PASSWORD", "Sekrit-pw-123");
    let r = run(&mut c);
    assert!(!r.stdout.contains("Sekrit") && !r.stderr.contains("Sekrit"));
    let v = r.json();
    assert!(has(&v, "source.privileges", "error", ""), "{v:#}");
    assert!(has(&v, "source.privileges", "warning", ""), "{v:#}");
    let errors: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "source.privileges" && f["severity"] == "error")
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|m| m.contains("REPLICATION SLAVE and REPLICATION CLIENT")),
        "{errors:?}"
    );
    // The human report and the files of --out carry no password either.
    let out = tempfile::tempdir().unwrap();
    let mut c = cutover();
    c.args([
        "check",
        "--source",
        &source,
        "--databases",
        "chk_priv",
        "--out",
    ])
    .arg(out.path())
    .env("CUTOVER_SOURCE_PASSWORD", "Sekrit-pw-123");
    let r = run(&mut c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("ERRORS") && !r.stdout.contains("Sekrit"));
    for name in ["check.json", "check.md"] {
        let text = std::fs::read_to_string(out.path().join(name)).unwrap();
        assert!(
            text.contains("source.privileges") && !text.contains("Sekrit"),
            "{name}"
        );
    }

    // A user who may see nothing cannot be checked.
    let nobody = format!("mysql://chk_none@127.0.0.1:{}", port(Side::Source));
    for extra in [&["--databases", "chk_priv"][..], &[][..]] {
        let mut c = cutover();
        c.args(["check", "--source", &nobody])
            .args(extra)
            .env("CUTOVER_SOURCE_PASSWORD", "Sekrit-pw-123");
        let r = run(&mut c);
        r.assert_clean_error("grant SELECT");
        assert!(!r.stderr.contains("Sekrit"));
    }
}

#[tokio::test]
async fn target_rules_on_a_mariadb_target() {
    fresh_db("chk_tgt").await;
    both("CREATE TABLE chk_tgt.filled (id INT PRIMARY KEY); CREATE TABLE chk_tgt.empty (id INT PRIMARY KEY)").await;
    exec(Side::Source, "INSERT INTO chk_tgt.filled VALUES (1)").await;
    exec(
        Side::Target,
        "INSERT INTO chk_tgt.filled VALUES (7);
         DROP USER IF EXISTS 'chk_tro'@'%'; CREATE USER 'chk_tro'@'%' IDENTIFIED BY 'pw-tro';
         GRANT SELECT ON chk_tgt.* TO 'chk_tro'@'%'",
    )
    .await;
    let v = check(&["--databases", "chk_tgt", "--target", &dsn(Side::Target)]).json();
    assert!(
        has(&v, "target.non_empty", "warning", "chk_tgt.filled"),
        "{v:#}"
    );
    assert!(
        !findings(&v).iter().any(|(_, _, o)| o == "chk_tgt.empty"),
        "{v:#}"
    );
    assert!(
        message(&v, "target.version", "").contains("MariaDB"),
        "{v:#}"
    );
    assert!(
        !findings(&v)
            .iter()
            .any(|(r, _, _)| r == "target.privileges"),
        "{v:#}"
    );
    assert_eq!(v["summary"]["target_flavor"], "MariaDB");
    // The target flavor comes from the server, not from --target-flavor.
    assert!(!findings(&v)
        .iter()
        .any(|(r, _, _)| r == "schema.collation_change"));

    let target = format!("mysql://chk_tro@127.0.0.1:{}", port(Side::Target));
    let mut c = cutover();
    c.args(["check", "--source", &dsn(Side::Source), "--target", &target])
        .args(["--databases", "chk_tgt", "--format", "json"])
        .env("CUTOVER_TARGET_PASSWORD", "pw-tro");
    let r = run(&mut c);
    let v = r.json();
    assert!(has(&v, "target.privileges", "error", ""), "{v:#}");
    assert!(message(&v, "target.privileges", "").contains("INSERT"));
    assert_eq!(r.code, 1);
}

/// Servers whose settings break replication, private to these tests (they change global
/// settings no other test may see).
fn misconfigured(extra: &[&str]) -> Sandbox {
    let settings = Settings {
        buffer_pool_mb: 32,
        tls: false,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
    };
    Sandbox::start_owned(&settings).unwrap_or_else(|e| panic!("sandbox: {e}"))
}

fn check_on(sb: &Sandbox, extra: &[&str]) -> Value {
    let mut c = cutover();
    c.args([
        "check",
        "--source",
        &format!("mysql://root@127.0.0.1:{}", sb.source.port),
    ])
    .args(["--format", "json"])
    .args(extra);
    let r = run(&mut c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    r.json()
}

#[test]
fn server_settings_that_break_replication() {
    static A: OnceLock<Sandbox> = OnceLock::new();
    let a = A.get_or_init(|| {
        misconfigured(&[
            "--binlog-format=MIXED",
            "--binlog-row-image=MINIMAL",
            "--binlog-ignore-db=chk_hidden",
            "--binlog-expire-logs-seconds=3600",
        ])
    });
    a.source
        .sql("CREATE DATABASE chk_hidden; CREATE TABLE chk_hidden.t (id INT PRIMARY KEY); CREATE DATABASE chk_seen; CREATE TABLE chk_seen.t (id INT PRIMARY KEY)")
        .unwrap();
    let v = check_on(a, &[]);
    assert!(has(&v, "source.binlog_format", "error", ""), "{v:#}");
    assert!(has(&v, "source.binlog_row_image", "error", ""), "{v:#}");
    assert!(
        has(&v, "source.binlog_filter", "error", "chk_hidden"),
        "{v:#}"
    );
    assert!(
        !has(&v, "source.binlog_filter", "error", "chk_seen"),
        "{v:#}"
    );
    assert!(has(&v, "source.binlog_retention", "warning", ""), "{v:#}");
    assert!(!findings(&v)
        .iter()
        .any(|(r, _, _)| r == "source.binlog" || r == "source.server_id"));

    // (MariaDB raises a server_id of 0 to 1, so `source.server_id` is tested on the
    // recorded MySQL 8 answers.)
    let b = misconfigured(&["--skip-log-bin"]);
    b.source
        .sql("CREATE DATABASE chk_b; CREATE TABLE chk_b.t (id INT PRIMARY KEY)")
        .unwrap();
    let v = check_on(&b, &[]);
    assert!(has(&v, "source.binlog", "error", ""), "{v:#}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    let src = dsn(Side::Source);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--target-flavor", "oracle"],
            "unknown target flavor `oracle`",
        ),
        (
            &["--snowflake", "epoch=2016-05-20,time_bits=40"],
            "--snowflake",
        ),
        (
            &[
                "--snowflake",
                "epoch=2016-05-20,time_bits=50,worker_bits=10,seq_bits=12",
            ],
            "at most 63",
        ),
        (&["--horizon", "soon"], "--horizon"),
        (&["--sample", "0s"], "--sample"),
        (&["--tables", "nodot"], "--tables"),
        (&["--worker-table", "db.*"], "--worker-table"),
        (&["--tidb-restarts-per-day=-1"], "--tidb-restarts-per-day"),
    ];
    for (args, expect) in cases {
        let mut c = cutover();
        c.args(["check", "--source", &src]).args(*args);
        run(&mut c).assert_clean_error(expect);
    }
    // A corrupt history file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    std::fs::write(&path, "{\"at\": 1}\nnot json\n").unwrap();
    let mut c = cutover();
    c.args([
        "check",
        "--source",
        &src,
        "--databases",
        "mysql_does_not_matter",
    ]);
    run(&mut c).assert_clean_error("mysql_does_not_matter");
    let mut c = cutover();
    c.args(["check", "--source", &src, "--history"]).arg(&path);
    run(&mut c).assert_clean_error("line 1");
}

#[test]
fn a_server_that_is_not_mysql() {
    // Something that answers like a web server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let mut c = cutover();
    c.args([
        "check",
        "--source",
        &format!("mysql://root@127.0.0.1:{port}"),
    ]);
    let r = run(&mut c);
    r.assert_clean_error("cannot connect to source");
    assert!(r.stderr.contains("MySQL-compatible"), "{}", r.stderr);
}

#[tokio::test]
async fn ctrl_c_while_sampling_stops_at_once() {
    fresh_db("chk_intr").await;
    exec(
        Side::Source,
        "CREATE TABLE chk_intr.t (id INT AUTO_INCREMENT PRIMARY KEY)",
    )
    .await;
    let mut cmd = cutover();
    cmd.args(["check", "--source", &dsn(Side::Source), "--format", "json"])
        .args(["--databases", "chk_intr", "--sample", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cutover check");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(l)) if l.starts_with("sampling:") => {}
        other => panic!("expected the sampling line, got {other:?}"),
    }
    let started = Instant::now();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.stdout.is_empty());
}

// ---- `check --workload`: sessions recorded through `cutover proxy` in front of the source.

/// Starts `cutover proxy` recording to `record` in front of the sandbox source.
fn workload_proxy(record: &std::path::Path) -> (std::process::Child, u16) {
    let listen = crate::verify_checkpoint::free_port();
    let child = cutover()
        .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{}", port(Side::Source))])
        .args(["--output", record.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, listen)
}

/// A session through the proxy, in `db` (polling until the proxy listens).
async fn through(listen: u16, db: &str) -> mysql_async::Conn {
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(listen)
        .user(Some("root"))
        .db_name(Some(db))
        .prefer_socket(false)
        .into();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match mysql_async::Conn::new(opts.clone()).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < until, "the proxy did not come up: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn q(c: &mut mysql_async::Conn, sql: &str) {
    use mysql_async::prelude::Queryable;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
}

/// Ends the proxy (SIGTERM finishes the file) and checks the workload it recorded.
async fn check_recording(child: std::process::Child, record: &std::path::Path) -> Value {
    let output = sigterm_and_wait(child).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = record.parent().unwrap().join("out");
    let r = run(cutover()
        .args(["check", "--workload", record.to_str().unwrap()])
        .args(["--format", "json", "--out", dir.to_str().unwrap()]));
    assert!(r.code == 0 || r.code == 1, "{}\n{}", r.stdout, r.stderr);
    for f in ["check.json", "check.md", "check.html"] {
        assert!(dir.join(f).is_file(), "{f} not written: {}", r.stderr);
    }
    let v = r.json();
    assert_eq!(
        r.code,
        i32::from(v["summary"]["errors"].as_u64() != Some(0)),
        "{v:#}"
    );
    v
}

/// The workload findings of a rule: (statements, sessions, first example's SQL, message).
fn workload_findings(v: &Value, rule: &str) -> Vec<(u64, u64, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            let e = &f["evidence"];
            assert!(f["fix"]["change"].is_string(), "{f:#}");
            (
                e["statements"].as_u64().unwrap(),
                e["sessions"].as_u64().unwrap(),
                e["examples"][0]["sql"].as_str().unwrap_or("").to_string(),
                f["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn workload_patterns_recorded_through_the_proxy_are_each_found_with_count_and_example() {
    use mysql_async::prelude::Queryable;
    fresh_db("ckw").await;
    exec(
        Side::Source,
        "CREATE TABLE ckw.slots (id INT PRIMARY KEY AUTO_INCREMENT, day INT, KEY (day)); \
         INSERT INTO ckw.slots (day) VALUES (1), (9); \
         CREATE TABLE ckw.stock (sku VARCHAR(20) PRIMARY KEY, n INT); \
         INSERT INTO ckw.stock VALUES ('A', 0), ('Z', 0); \
         CREATE TABLE ckw.docs (id INT PRIMARY KEY, body TEXT, FULLTEXT (body)) ENGINE = InnoDB; \
         CREATE PROCEDURE ckw.bump() UPDATE ckw.stock SET n = n + 1 WHERE sku = 'Z'",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("patterns.cwl");
    let (child, listen) = workload_proxy(&record);
    let mut c1 = through(listen, "ckw").await;
    let mut c2 = through(listen, "ckw").await;
    let mut c3 = through(listen, "ckw").await;
    for sql in [
        // Lock a range, check, insert: races on TiDB.
        "BEGIN",
        "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
        "INSERT INTO slots (day) VALUES (3)",
        "COMMIT",
        "SELECT * FROM stock WHERE sku = 'A' FOR UPDATE",
        "SELECT * FROM slots WHERE id = 1 LOCK IN SHARE MODE",
        "SELECT SQL_CALC_FOUND_ROWS * FROM slots LIMIT 1",
        "START TRANSACTION READ ONLY",
        "SELECT COUNT(*) FROM slots",
        "COMMIT",
        "SET SESSION TRANSACTION READ ONLY",
        "SET SESSION TRANSACTION READ WRITE",
        "SET SESSION sql_auto_is_null = 1",
        "SET SESSION sql_auto_is_null = 0",
        "CALL bump()",
        "XA START 'ckw1'",
        "XA END 'ckw1'",
        "XA ROLLBACK 'ckw1'",
        "BEGIN",
        "SELECT * FROM slots WHERE id = 9 FOR UPDATE SKIP LOCKED",
        "COMMIT",
        "SELECT ST_AsText(POINT(1, 2))",
        "SELECT id FROM docs WHERE MATCH (body) AGAINST ('tidb')",
        "SELECT GET_LOCK('ckw', 0)",
        "SELECT RELEASE_LOCK('ckw')",
    ] {
        q(&mut c1, sql).await;
    }
    // A DDL while another session's transaction is open.
    q(&mut c2, "BEGIN").await;
    q(&mut c2, "UPDATE stock SET n = n WHERE sku = 'Z'").await;
    q(&mut c3, "CREATE TABLE extra (a INT)").await;
    q(&mut c2, "COMMIT").await;
    // A client that prepares and closes a statement for every execute.
    for i in 0..6 {
        let s = c3.prep("SELECT n FROM stock WHERE sku = ?").await.unwrap();
        let _: Vec<i32> = c3.exec(&s, (format!("S{i}"),)).await.unwrap();
        c3.close(s).await.unwrap();
    }
    // Two sessions writing one row in turn (the statement is prepared once per session).
    for _ in 0..5 {
        for c in [&mut c2, &mut c3] {
            c.exec_drop("UPDATE stock SET n = n + 1 WHERE sku = ?", ("A",))
                .await
                .unwrap();
        }
    }
    for c in [c1, c2, c3] {
        c.disconnect().await.unwrap();
    }
    let v = check_recording(child, &record).await;
    let w = &v["summary"]["workload"];
    assert_eq!(w["source"], "proxy", "{v:#}");
    assert_eq!(w["sessions"], 3, "{w:#}");

    let one = |rule: &str, sql: &str| {
        let f = workload_findings(&v, rule);
        assert_eq!(f.len(), 1, "{rule}: {f:#?}");
        assert_eq!((f[0].0, f[0].1), (1, 1), "{rule}: {f:#?}");
        assert!(f[0].2.contains(sql), "{rule}: {f:#?}");
        f[0].3.clone()
    };
    let m = one(
        "workload.range_lock_insert",
        "SELECT * FROM slots WHERE day BETWEEN 1 AND 7 FOR UPDATE",
    );
    assert!(m.contains("insert into slots"), "{m}");
    one(
        "workload.autocommit_for_update",
        "SELECT * FROM stock WHERE sku = 'A' FOR UPDATE",
    );
    one("workload.lock_in_share_mode", "LOCK IN SHARE MODE");
    one("workload.sql_calc_found_rows", "SQL_CALC_FOUND_ROWS");
    one("workload.read_only_variable", "sql_auto_is_null = 1");
    one("workload.call", "CALL bump()");
    one("workload.skip_locked", "SKIP LOCKED");
    one("workload.spatial", "ST_AsText");
    one("workload.fulltext", "AGAINST");
    let m = one("workload.get_lock", "GET_LOCK('ckw', 0)");
    assert!(m.contains("timeout 0 s"), "{m}");
    one("workload.ddl_during_transactions", "CREATE TABLE extra");
    let ro = workload_findings(&v, "workload.read_only_transaction");
    let mut ro_sql: Vec<&str> = ro.iter().map(|f| f.2.as_str()).collect();
    ro_sql.sort();
    assert_eq!(
        ro_sql,
        [
            "SET SESSION TRANSACTION READ ONLY",
            "START TRANSACTION READ ONLY"
        ]
    );
    let xa: u64 = workload_findings(&v, "workload.xa")
        .iter()
        .map(|f| f.0)
        .sum();
    assert_eq!(xa, 3);

    let churn = workload_findings(&v, "workload.prepared_churn");
    assert_eq!(churn.len(), 1, "{churn:#?}");
    assert!(
        churn[0]
            .3
            .starts_with("6 prepares and 6 closes for 6 executes"),
        "{churn:#?}"
    );
    let hot = workload_findings(&v, "workload.hot_rows");
    assert_eq!(hot.len(), 1, "{hot:#?}");
    // Ten writes to sku A alternating between two sessions: nine conflicts.
    assert_eq!((hot[0].0, hot[0].1), (9, 2), "{hot:#?}");
    assert!(hot[0].3.contains("sku=A (9 conflicts"), "{hot:#?}");
    assert!(hot[0].2.contains("params: [\"A\"]"), "{hot:#?}");
    // Errors make the exit code 1.
    assert!(v["summary"]["errors"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_workload_without_those_patterns_has_no_workload_finding() {
    use mysql_async::prelude::Queryable;
    fresh_db("ckc").await;
    exec(
        Side::Source,
        "CREATE TABLE ckc.acct (id INT PRIMARY KEY, bal INT); \
         INSERT INTO ckc.acct VALUES (1, 100), (2, 100), (3, 100); \
         CREATE TABLE ckc.ledger (id INT PRIMARY KEY AUTO_INCREMENT, acct INT, amount INT)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("control.cwl");
    let (child, listen) = workload_proxy(&record);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(through(listen, "ckc").await);
    }
    for round in 0..3 {
        for (i, c) in sessions.iter_mut().enumerate() {
            let id = i + 1;
            q(c, "BEGIN").await;
            q(
                c,
                &format!("SELECT bal FROM acct WHERE id = {id} FOR UPDATE"),
            )
            .await;
            c.exec_drop("UPDATE acct SET bal = bal - 1 WHERE id = ?", (id,))
                .await
                .unwrap();
            c.exec_drop(
                "INSERT INTO ledger (acct, amount) VALUES (?, ?)",
                (id, -1 - round),
            )
            .await
            .unwrap();
            q(c, "COMMIT").await;
            let _: Vec<i64> = c
                .exec("SELECT amount FROM ledger WHERE acct = ?", (id,))
                .await
                .unwrap();
            q(c, "SET SESSION TRANSACTION READ WRITE").await;
        }
    }
    for c in sessions {
        c.disconnect().await.unwrap();
    }
    let v = check_recording(child, &record).await;
    let workload: Vec<_> = findings(&v)
        .into_iter()
        .filter(|(r, _, _)| r.starts_with("workload."))
        .collect();
    assert!(workload.is_empty(), "{workload:#?}");
    assert_eq!(v["summary"]["workload"]["sessions"], 3, "{v:#}");
    assert_eq!(v["summary"]["workload"]["transactions"], 9, "{v:#}");
}

#[test]
fn a_workload_that_is_not_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not.cwl");
    std::fs::write(&p, "hello").unwrap();
    let r = run(cutover().args(["check", "--workload", p.to_str().unwrap()]));
    r.assert_clean_error("not a cutover workload file");
    let r = run(cutover().args(["check", "--workload", "/nonexistent/w.cwl"]));
    r.assert_clean_error("--workload");
    let r = run(cutover().args([
        "check",
        "--workload",
        p.to_str().unwrap(),
        "--hot-window",
        "soon",
    ]));
    r.assert_clean_error("--hot-window");
}

// ---- `check --binlog-from`: the source's transactions against TiDB's limits, at their real
// sizes (TiDB's default txn-total-size-limit and txn-entry-size-limit; only max-txn-ttl is
// scaled down, to 2 s). A sandbox of its own: 190 MiB of binlog is no other test's business.

#[tokio::test]
async fn transactions_above_the_limits_are_reported_with_their_sizes_and_positions() {
    use mysql_async::prelude::Queryable;
    let sb = tokio::task::spawn_blocking(|| {
        Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("sandbox: {e}"))
    })
    .await
    .unwrap();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sb.source.port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    c.query_drop(
        "CREATE DATABASE ckt; CREATE TABLE ckt.big (id INT PRIMARY KEY, b LONGBLOB); \
         CREATE TABLE ckt.slow (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    let (file, pos): (String, u64) = c
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|r: mysql_async::Row| (r.get::<String, _>(0).unwrap(), r.get::<u64, _>(1).unwrap()))
        .unwrap();
    const MIB: u64 = 1024 * 1024;
    // Transactions of 1, 60 and 120 rows of 1 MiB (each statement writes its rows at one
    // event time), then one row of 7 MiB, each made by the server (REPEAT), so no statement
    // is larger than a few hundred bytes.
    for (from, to) in [(1, 1), (101, 160), (201, 320)] {
        c.query_drop(format!(
            "INSERT INTO ckt.big SELECT seq, REPEAT('x', {MIB}) FROM ckt.seq_{from}_to_{to}"
        ))
        .await
        .unwrap();
    }
    c.query_drop(format!(
        "INSERT INTO ckt.big VALUES (1000, REPEAT('y', {}))",
        7 * MIB
    ))
    .await
    .unwrap();
    // A transaction whose changes are 3 s apart.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO ckt.slow VALUES (1)")
        .await
        .unwrap();
    c.query_drop("DO SLEEP(3)").await.unwrap();
    c.query_drop("INSERT INTO ckt.slow VALUES (2)")
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    c.disconnect().await.unwrap();

    let scanned = Instant::now();
    let mut cmd = cutover();
    cmd.args([
        "check",
        "--source",
        &format!("mysql://root@127.0.0.1:{}", sb.source.port),
        "--format",
        "json",
        "--databases",
        "ckt",
        "--binlog-from",
        &format!("{file}:{pos}"),
        "--tidb-txn-limit",
        "100MiB",
        "--tidb-entry-limit",
        "6MiB",
        "--tidb-txn-ttl",
        "2s",
    ]);
    let r = run(&mut cmd);
    let scan_s = scanned.elapsed().as_secs_f64();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let mut got: Vec<(String, String, u64, u64, u64, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["rule"]
                .as_str()
                .unwrap_or("")
                .starts_with("transactions.")
        })
        .map(|f| {
            let t = &f["transaction"];
            assert!(
                t["tables"].as_array().is_some_and(|t| t
                    .iter()
                    .all(|t| t.as_str().unwrap_or("").starts_with("ckt."))),
                "{f:#}"
            );
            (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                t["bytes"].as_u64().unwrap(),
                t["largest_event"].as_u64().unwrap(),
                t["duration_ms"].as_u64().unwrap() / 1000,
                t["position"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let rules: Vec<(&str, &str)> = got.iter().map(|g| (g.0.as_str(), g.1.as_str())).collect();
    // Exactly these: the 1 MiB transaction and the 7 MiB row's total are under half a limit.
    assert_eq!(
        rules,
        [
            ("transactions.entry_size", "error"),
            ("transactions.total_size", "error"),
            ("transactions.total_size", "warning"),
            ("transactions.ttl", "error"),
        ],
        "{got:#?}"
    );
    let within = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.01;
    assert!(within(got[0].3, 7 * MIB), "{got:#?}");
    assert!(within(got[1].2, 120 * MIB), "{got:#?}");
    assert!(within(got[2].2, 60 * MIB), "{got:#?}");
    assert!((3..=4).contains(&got[3].4), "{got:#?}");
    // Positions: in the file read, after the start, in the order the transactions ran.
    let at = |p: &str| -> u64 {
        let (f, n) = p.rsplit_once(':').unwrap();
        assert_eq!(f, file, "{p}");
        n.parse().unwrap()
    };
    let (sixty, one_twenty, row, slow) =
        (at(&got[2].5), at(&got[1].5), at(&got[0].5), at(&got[3].5));
    assert!(
        pos < sixty && sixty < one_twenty && one_twenty < row && row < slow,
        "{got:#?}"
    );
    // The 60 MiB transaction starts after the 1 MiB one, which is 1 MiB and a bit long.
    assert!(sixty - pos > MIB, "{got:#?}");
    let s = &v["summary"]["transactions"];
    assert_eq!(s["transactions"].as_u64(), Some(5), "{s:#}");
    assert!(
        within(s["bytes"].as_u64().unwrap(), 188 * MIB),
        "every byte of the binlog read: {s:#}"
    );
    let sizes: Vec<u64> = s["largest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes.len(), 5, "{s:#}");
    for (got, want) in sizes.iter().zip([120 * MIB, 60 * MIB, 7 * MIB, MIB]) {
        assert!(within(*got, want), "{s:#}");
    }
    assert!(
        v["findings"].as_array().unwrap().iter().all(|f| !f["rule"]
            .as_str()
            .unwrap_or("")
            .starts_with("transactions.")
            || f["transaction"]["gtid"]
                .as_str()
                .is_some_and(|g| g.starts_with("0-1-"))),
        "MariaDB GTIDs are named: {v:#}"
    );
    eprintln!(
        "binlog scan of {:.0} MiB: {scan_s:.1} s",
        s["bytes"].as_u64().unwrap() as f64 / MIB as f64
    );
    // A row event larger than the server's max_allowed_packet (rows grow past it by
    // UPDATEs, and the server sends binlog events up to 1 GiB): still read, same findings.
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sb.source.port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    c.query_drop("SET GLOBAL max_allowed_packet = 4194304")
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    let again = run(&mut cmd);
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    let rules_again: Vec<String> = again.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .filter(|r| r.starts_with("transactions."))
        .map(String::from)
        .collect();
    assert_eq!(rules_again.len(), 4, "{}", again.stdout);
    let dir = sb.dir.clone();
    let _ = tokio::task::spawn_blocking(move || Sandbox::down(&dir)).await;
}

#[test]
fn transaction_flags_are_checked_before_reading() {
    let r = run(cutover().args(["check", "--binlog-from", "nope"]));
    r.assert_clean_error("--binlog-from");
    let r = run(cutover().args(["check", "--transactions", "1h", "--tidb-txn-limit", "lots"]));
    r.assert_clean_error("--tidb-txn-limit");
    let r = run(cutover().args(["check", "--transactions", "1h"]));
    r.assert_clean_error("--source");
}

#[tokio::test]
async fn a_general_log_capture_of_real_sessions_is_checked_too() {
    use mysql_async::prelude::Queryable;
    fresh_db("ckg").await;
    exec(
        Side::Source,
        "CREATE TABLE ckg.slots (id INT PRIMARY KEY AUTO_INCREMENT, day INT, KEY (day))",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = sandbox().dir.join("check-general.log");
    let _ = std::fs::remove_file(&log);
    exec(
        Side::Source,
        &format!(
            "SET GLOBAL log_output = 'FILE'; SET GLOBAL general_log_file = '{}'; \
             SET GLOBAL general_log = ON",
            log.display()
        ),
    )
    .await;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port(Side::Source))
        .user(Some("root"))
        .db_name(Some("ckg"))
        .prefer_socket(false);
    let mut a = mysql_async::Conn::new(opts.clone()).await.unwrap();
    let mut b = mysql_async::Conn::new(opts).await.unwrap();
    for sql in [
        "BEGIN",
        "SELECT * FROM slots WHERE day >= 3 FOR UPDATE",
        "INSERT INTO slots (day) VALUES (4)",
        "COMMIT",
        "SELECT * FROM slots WHERE id = 1 LOCK IN SHARE MODE",
        "BEGIN",
        "UPDATE slots SET day = 5 WHERE id = 1",
    ] {
        a.query_drop(sql).await.unwrap();
    }
    b.query_drop("CREATE TABLE ckg.other (x INT)")
        .await
        .unwrap();
    a.query_drop("COMMIT").await.unwrap();
    // Through the binary protocol: the log shows the statement with its values.
    a.exec_drop(
        "SELECT SQL_CALC_FOUND_ROWS * FROM slots WHERE day > ?",
        (1,),
    )
    .await
    .unwrap();
    a.query_drop("SELECT 'ckg-done'").await.unwrap();
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    wait_for(
        "the end of the sessions in the general log",
        Duration::from_secs(60),
        || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .map(|s| s.contains("ckg-done"))
                    .unwrap_or(false)
            }
        },
    )
    .await;
    exec(Side::Source, "SET GLOBAL general_log = OFF").await;
    let all = dir.path().join("all.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "general-log", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&all));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cut = dir.path().join("ckg.cwl");
    let r = run(cutover()
        .args(["workload", "filter"])
        .arg(&all)
        .arg("--output")
        .arg(&cut)
        .args(["--database", "ckg"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(cutover().args([
        "check",
        "--workload",
        cut.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let mut got: Vec<(String, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["evidence"]["statements"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("workload.ddl_during_transactions".to_string(), 1),
            ("workload.lock_in_share_mode".to_string(), 1),
            ("workload.range_lock_insert".to_string(), 1),
            ("workload.sql_calc_found_rows".to_string(), 1),
        ],
        "{v:#}"
    );
    // A cut of the capture (`workload filter`) says so.
    assert_eq!(v["summary"]["workload"]["source"], "filter");
}

#[tokio::test]
async fn an_interrupted_workload_check_exits_130_without_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.cwl");
    let mut w =
        cutover_workload::Writer::create(&p, &cutover_workload::Header::new("general-log", None))
            .unwrap();
    for i in 0..1_500_000u64 {
        w.write(&cutover_workload::Record {
            session: i % 50,
            ts_us: 1_700_000_000_000_000 + i as i64,
            db: None,
            user: None,
            command: cutover_workload::Command::Query {
                sql: format!("UPDATE t SET v = v + 1 WHERE id = {}", i % 1000),
            },
            response: None,
        })
        .unwrap();
    }
    w.finish().unwrap();
    let child = cutover()
        .args([
            "check",
            "--workload",
            p.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it reads (the file is open: the signal handler is in place by then), stop it.
    let pid = child.id();
    let path = p.clone();
    wait_for(
        "the check to open the workload",
        Duration::from_secs(60),
        || {
            let path = path.clone();
            async move {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|fds| {
                        fds.flatten()
                            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
                    })
                    .unwrap_or(false)
            }
        },
    )
    .await;
    let out = sigterm_and_wait(child).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no report of a workload read in part"
    );
}
