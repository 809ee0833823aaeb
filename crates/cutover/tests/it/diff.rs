//! `cutover diff` on integer-keyed tables: every column type, exact reports, exit codes.

use serde_json::json;

use crate::harness::*;

const ALL_TYPES: &str = "
CREATE TABLE t (
  id INT PRIMARY KEY,
  i BIGINT UNSIGNED NOT NULL,
  d DECIMAL(12,3),
  f FLOAT,
  g DOUBLE,
  s VARCHAR(40),
  c CHAR(10),
  l TEXT CHARACTER SET latin1,
  b VARBINARY(16),
  bl BLOB,
  dt DATE,
  dtm DATETIME(6),
  ts TIMESTAMP(3) NULL,
  tm TIME(6),
  y YEAR,
  bt BIT(8),
  e ENUM('red','green','blue'),
  st SET('a','b','c'),
  j JSON
);
INSERT INTO t SELECT seq, seq * 1000003, seq / 7, seq / 3, seq / 11, CONCAT('name-', seq),
  CONCAT('c', seq % 10), CONCAT('caf', CHAR(233 USING latin1), seq), UNHEX(CONCAT('FF00', HEX(seq))),
  REPEAT(UNHEX('00FE'), seq % 5), '2024-01-01' + INTERVAL seq DAY,
  '2024-01-01 00:00:00.000001' + INTERVAL seq SECOND, '2024-06-01 12:00:00.123' + INTERVAL seq MINUTE,
  SEC_TO_TIME(seq * 37), 1990 + seq % 50, seq % 256, ELT(1 + seq % 3, 'red', 'green', 'blue'),
  ELT(1 + seq % 3, 'a', 'a,b', 'b,c'), JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('x', seq))
FROM seq_1_to_300;
UPDATE t SET s = '' WHERE id = 70;
UPDATE t SET s = 'a#b', c = 'c' WHERE id = 210";

const MUTATIONS: &str = "
UPDATE t SET i = i + 1 WHERE id = 10;
UPDATE t SET d = d + 0.001 WHERE id = 20;
UPDATE t SET f = f + 0.0001 WHERE id = 30;
UPDATE t SET g = g + 0.000000001 WHERE id = 40;
UPDATE t SET s = UPPER(s) WHERE id = 50;
UPDATE t SET s = CONCAT(s, ' ') WHERE id = 60;
UPDATE t SET s = NULL WHERE id = 70;
UPDATE t SET l = 'cafe80' WHERE id = 80;
UPDATE t SET b = UNHEX('FF01') WHERE id = 90;
UPDATE t SET bl = CONCAT(bl, UNHEX('00')) WHERE id = 100;
UPDATE t SET dt = dt + INTERVAL 1 DAY WHERE id = 110;
UPDATE t SET dtm = dtm + INTERVAL 1 MICROSECOND WHERE id = 120;
UPDATE t SET ts = ts + INTERVAL 1000 MICROSECOND WHERE id = 130;
UPDATE t SET tm = tm + INTERVAL 1 MICROSECOND WHERE id = 140;
UPDATE t SET y = y + 1 WHERE id = 150;
UPDATE t SET bt = bt ^ 1 WHERE id = 160;
UPDATE t SET e = 'blue' WHERE id = 170 AND e <> 'blue';
UPDATE t SET e = 'red' WHERE id = 170 AND e = 'blue';
UPDATE t SET st = 'a,b,c' WHERE id = 180;
UPDATE t SET j = JSON_SET(j, '$.n', 0) WHERE id = 190;
UPDATE t SET j = '{ \"tags\" : [\"x\", 191], \"n\" : 191 }' WHERE id = 191;
UPDATE t SET s = 'a', c = 'b#c' WHERE id = 210;
DELETE FROM t WHERE id IN (200, 201);
INSERT INTO t (id, i) VALUES (1000, 1)";

/// The row hashes every hazard test runs with: the default (`crc32_pair` on this MariaDB
/// pair) and the portable one MySQL, Aurora and TiDB pairs get.
const ROW_HASHES: [&[&str]; 2] = [&[], &["--row-hash", "portable"]];

#[tokio::test]
async fn finds_every_injected_difference_in_every_column_type() {
    fresh_db("types").await;
    both(&format!("USE types; {ALL_TYPES}")).await;
    exec(Side::Target, &format!("USE types; {MUTATIONS}")).await;

    // The hazards hold with the default row hash and with the portable one.
    for hash in ROW_HASHES {
        let r = diff_json("types.t", hash);
        assert_eq!(r.code, 1, "{hash:?}: {}", r.stderr);
        let v = r.json();
        let t = &v["tables"][0];
        assert_eq!(t["status"], "different");
        assert_eq!(t["missing_in_target"], 2);
        assert_eq!(t["extra_in_target"], 1);
        assert_eq!(t["mismatched"], 20);
        assert_eq!(t["rows_compared"], 300);
        let got: Vec<(String, i64, Vec<String>)> = t["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().to_string(),
                    d["key"]["id"].as_i64().unwrap(),
                    d["columns"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|c| c["column"].as_str().unwrap().to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            })
            .collect();
        let m = |id: i64, cols: &[&str]| {
            (
                "mismatched".to_string(),
                id,
                cols.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            )
        };
        let expected = vec![
            m(10, &["i"]),
            m(20, &["d"]),
            m(30, &["f"]),
            m(40, &["g"]),
            m(50, &["s"]),
            m(60, &["s"]),
            m(70, &["s"]),
            m(80, &["l"]),
            m(90, &["b"]),
            m(100, &["bl"]),
            m(110, &["dt"]),
            m(120, &["dtm"]),
            m(130, &["ts"]),
            m(140, &["tm"]),
            m(150, &["y"]),
            m(160, &["bt"]),
            m(170, &["e"]),
            m(180, &["st"]),
            m(190, &["j"]),
            ("missing_in_target".into(), 200, vec![]),
            ("missing_in_target".into(), 201, vec![]),
            m(210, &["s", "c"]),
            ("extra_in_target".into(), 1000, vec![]),
        ];
        assert_eq!(got, expected);
        // Values in JSON: text as text, NULL as null, bytes that are not UTF-8 as hex.
        let diffs = t["diffs"].as_array().unwrap();
        let col =
            |id: i64| diffs.iter().find(|d| d["key"]["id"] == id).unwrap()["columns"][0].clone();
        assert_eq!(
            col(60),
            json!({"column": "s", "source": "name-60", "target": "name-60 "})
        );
        assert_eq!(
            col(70),
            json!({"column": "s", "source": "", "target": null})
        );
        assert_eq!(col(80)["source"], json!("café80"));
        assert_eq!(col(90)["target"], json!({"hex": "ff01"}));
        assert_eq!(col(10)["target"], json!(10000031));
        // The report says how the columns that engines render differently are checksummed.
        assert_eq!(
            t["renderings"],
            json!([
                {"column": "f", "checksum": "(`f` + 0e0)", "settled_by": "identical"},
                {"column": "g", "checksum": "`g`", "settled_by": "identical"},
                {"column": "j", "checksum": "`j`", "settled_by": "identical"}
            ])
        );

        // With a tolerance, the tiny FLOAT and DOUBLE changes are no longer differences.
        let r = diff_json(
            "types.t",
            &[hash, &["--float-tolerance", "0.001"][..]].concat(),
        );
        let v = r.json();
        let cols: Vec<String> = v["tables"][0]["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["columns"].as_array().cloned().unwrap_or_default())
            .map(|c| c["column"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !cols.contains(&"f".to_string()) && !cols.contains(&"g".to_string()),
            "{cols:?}"
        );
        assert_eq!(v["tables"][0]["mismatched"], 18);
    }
}

#[tokio::test]
async fn exact_json_report() {
    fresh_db("exact").await;
    both(
        "USE exact; CREATE TABLE a (id BIGINT PRIMARY KEY, v VARCHAR(10) NOT NULL);
         INSERT INTO a SELECT seq, CONCAT('v', seq) FROM seq_1_to_50;
         CREATE TABLE same (id INT PRIMARY KEY, v INT); INSERT INTO same VALUES (1, 1)",
    )
    .await;
    exec(
        Side::Target,
        "USE exact; UPDATE a SET v = 'changed' WHERE id = 7; DELETE FROM a WHERE id = 8;
         INSERT INTO a VALUES (51, 'new')",
    )
    .await;
    let r = diff_json("exact.*", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let mut v = r.json();
    // The run's common fields (the output test checks them against the schema).
    assert_eq!(v["command"], "diff");
    assert_eq!(v["verdict"], "differences");
    assert_eq!(v["exit_code"], 1);
    for k in [
        "command",
        "started_at",
        "finished_at",
        "verdict",
        "exit_code",
        "argv",
    ] {
        assert!(v.as_object_mut().unwrap().remove(k).is_some(), "{k}");
    }
    // What varies from run to run.
    assert!(v["version"].is_string());
    assert!(v["summary"]["elapsed_ms"].is_u64());
    v["summary"]["elapsed_ms"] = json!(0);
    for t in v["tables"].as_array_mut().unwrap() {
        assert!(t["elapsed_ms"].is_u64());
        t["elapsed_ms"] = json!(0);
        t["chunks"] = json!(0);
        t["rows_fetched"] = json!(0);
    }
    assert!(v["connections"]["source"]["server"]
        .as_str()
        .unwrap()
        .contains("MariaDB"));
    v["connections"] = json!(null);
    // Where each side's snapshot was taken varies; its shape is checked here.
    let snaps = v.as_object_mut().and_then(|o| o.remove("snapshots"));
    assert_eq!(
        snaps
            .as_ref()
            .map(|s| (&s["source"]["consistency"], &s["target"]["connections"])),
        Some((&json!("snapshot"), &json!(6)))
    );
    v["version"] = json!("x");
    v["source"] = json!("s");
    v["target"] = json!("t");
    let expected = json!({
        "version": "x", "source": "s", "target": "t", "connections": null,
        "tables": [
            {"source": "exact.a", "target": "exact.a", "status": "different",
             "missing_in_target": 1, "extra_in_target": 1, "mismatched": 1,
             "diffs": [
                 {"kind": "mismatched", "key": {"id": 7},
                  "columns": [{"column": "v", "source": "v7", "target": "changed"}]},
                 {"kind": "missing_in_target", "key": {"id": 8}},
                 {"kind": "extra_in_target", "key": {"id": 51}}
             ],
             "diffs_truncated": false, "schema": [], "error": null,
             "rows_compared": 50, "chunks": 0, "rows_fetched": 0, "method": "checksum",
             "row_hash": "crc32_pair", "elapsed_ms": 0},
            {"source": "exact.same", "target": "exact.same", "status": "equal",
             "missing_in_target": 0, "extra_in_target": 0, "mismatched": 0, "diffs": [],
             "diffs_truncated": false, "schema": [], "error": null,
             "rows_compared": 1, "chunks": 0, "rows_fetched": 0, "method": "checksum",
             "row_hash": "crc32_pair", "elapsed_ms": 0}
        ],
        "summary": {"tables": 2, "equal": 1, "different": 1, "errors": 0, "skipped": 0,
                    "rows_compared": 51, "missing_in_target": 1, "extra_in_target": 1,
                    "mismatched": 1, "accepted": 0, "elapsed_ms": 0},
        "interrupted": false,
        "groups": [
            {"kind": "rows.missing_in_target", "cause": "rows missing in target", "tables": 1,
             "count": 1, "count_at_least": false, "examples": ["exact.a"]},
            {"kind": "rows.extra_in_target", "cause": "rows extra in target", "tables": 1,
             "count": 1, "count_at_least": false, "examples": ["exact.a"]},
            {"kind": "rows.changed", "cause": "column `v` differs", "column": "v", "tables": 1,
             "count": 1, "count_at_least": false, "examples": ["exact.a"]}
        ]
    });
    assert_eq!(v, expected);
}

#[tokio::test]
async fn equal_data_in_different_forms_is_equal() {
    fresh_db("forms").await;
    exec(
        Side::Source,
        "USE forms; CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1,
           amount DECIMAL(10,2), doc JSON, f FLOAT);
         INSERT INTO t SELECT seq, CONCAT('Zoë ', seq), seq / 4, JSON_OBJECT('a', seq, 'b', 'x'), seq / 3
         FROM seq_1_to_500",
    )
    .await;
    exec(
        Side::Target,
        "USE forms; CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET utf8mb4,
           amount DECIMAL(14,4), doc JSON, f FLOAT);
         INSERT INTO t SELECT seq, CONCAT('Zoë ', seq), ROUND(seq / 4, 2),
           CONCAT('{\"b\": \"x\", \"a\": ', seq, '}'), seq / 3 FROM seq_1_to_500",
    )
    .await;
    for hash in ROW_HASHES {
        let r = diff_json("forms.t", hash);
        let v = r.json();
        let t = &v["tables"][0];
        assert_eq!(t["status"], "equal", "{hash:?}: {}", r.stdout);
        assert_eq!(r.code, 0);
        assert_eq!(t["rows_compared"], 500);
        // The definitions differ and the report says so.
        let whats = pairs(&t["schema"], "object", "what");
        assert!(
            whats.contains(&("amount".into(), "type".into())),
            "{whats:?}"
        );
        assert!(
            whats.contains(&("name".into(), "charset".into())),
            "{whats:?}"
        );
    }
}

#[tokio::test]
async fn integer_keys_of_every_width_and_sign() {
    fresh_db("intkeys").await;
    both(
        "USE intkeys;
         CREATE TABLE u (id BIGINT UNSIGNED PRIMARY KEY, v INT);
         INSERT INTO u VALUES (0, 1), (1, 1), (9223372036854775807, 1), (9223372036854775808, 1),
           (18446744073709551614, 1), (18446744073709551615, 1);
         CREATE TABLE n (id INT PRIMARY KEY, v INT);
         INSERT INTO n SELECT CAST(seq AS SIGNED) - 5000, seq FROM seq_1_to_10000;
         CREATE TABLE sparse (id BIGINT PRIMARY KEY, v INT);
         INSERT INTO sparse SELECT seq * 1000000007, seq FROM seq_1_to_3000;
         CREATE TABLE tiny (id TINYINT PRIMARY KEY, v INT);
         INSERT INTO tiny SELECT CAST(seq AS SIGNED) - 128, seq FROM seq_0_to_255;
         CREATE TABLE empty (id INT PRIMARY KEY)",
    )
    .await;
    exec(
        Side::Target,
        "USE intkeys;
         UPDATE u SET v = 2 WHERE id = 18446744073709551615;
         DELETE FROM u WHERE id = 9223372036854775808;
         UPDATE n SET v = -1 WHERE id IN (-4999, 0, 5000);
         DELETE FROM sparse WHERE id = 1500 * 1000000007;
         INSERT INTO sparse VALUES (-1, 0);
         UPDATE tiny SET v = 1000 WHERE id IN (-128, 127)",
    )
    .await;
    let r = diff_json("intkeys.*", &["--threads", "3", "--row-threshold", "7"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    let table = |name: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["source"] == name)
            .unwrap()
            .clone()
    };
    let keys = |t: &serde_json::Value| -> Vec<(String, String)> {
        t["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().into(),
                    d["key"]["id"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(&table("intkeys.u")),
        vec![
            ("missing_in_target".into(), "\"9223372036854775808\"".into()),
            ("mismatched".into(), "\"18446744073709551615\"".into()),
        ]
    );
    assert_eq!(
        keys(&table("intkeys.n")),
        vec![
            ("mismatched".into(), "-4999".into()),
            ("mismatched".into(), "0".into()),
            ("mismatched".into(), "5000".into()),
        ]
    );
    assert_eq!(
        keys(&table("intkeys.sparse")),
        vec![
            ("extra_in_target".into(), "-1".into()),
            ("missing_in_target".into(), "1500000010500".into()),
        ]
    );
    assert_eq!(
        keys(&table("intkeys.tiny")),
        vec![
            ("mismatched".into(), "-128".into()),
            ("mismatched".into(), "127".into())
        ]
    );
    assert_eq!(table("intkeys.empty")["status"], "equal");
    assert_eq!(table("intkeys.n")["rows_compared"], 10000);
}

#[tokio::test]
async fn missing_tables_and_skips_are_per_table() {
    fresh_db("pertable").await;
    both("USE pertable; CREATE TABLE ok (id INT PRIMARY KEY); CREATE TABLE skipme (id INT PRIMARY KEY)")
        .await;
    exec(
        Side::Source,
        "USE pertable; CREATE TABLE only_source (id INT PRIMARY KEY)",
    )
    .await;
    let r = diff_json("pertable.*", &["--exclude", "pertable.skipme"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = r.json();
    let statuses = pairs(&v["tables"], "source", "status");
    assert_eq!(
        statuses,
        vec![
            ("pertable.ok".into(), "equal".into()),
            ("pertable.only_source".into(), "error".into()),
            ("pertable.skipme".into(), "skipped".into()),
        ]
    );
    assert_eq!(v["tables"][1]["error"], "table missing on the target");
    // A table named exactly that does not exist is an error of that table, not of the run.
    let r = diff_json("pertable.ok,pertable.nosuch", &[]);
    assert_eq!(r.code, 2);
    let v = r.json();
    assert_eq!(v["tables"][0]["status"], "error");
    assert_eq!(v["tables"][0]["error"], "table not found on the source");
    assert_eq!(v["tables"][1]["status"], "equal");
}

#[tokio::test]
async fn schema_section_schema_only_and_column_filters() {
    fresh_db("defs").await;
    exec(
        Side::Source,
        "USE defs; CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'x',
           qty INT DEFAULT 1, legacy_flag TINYINT, note TEXT, KEY by_name (name), UNIQUE KEY uq (qty))
         DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci;
         INSERT INTO t VALUES (1, 'a', 1, 0, 'n1'), (2, 'b', 2, 0, 'n2')",
    )
    .await;
    exec(
        Side::Target,
        "USE defs; CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'y',
           qty INT DEFAULT 1, note TEXT, added INT, KEY by_name (name, qty), KEY by_note (note(10)))
         DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin;
         INSERT INTO t VALUES (1, 'a', 1, 'n1', NULL), (2, 'b', 2, 'changed', NULL)",
    )
    .await;
    let schema_of = |v: &serde_json::Value| pairs(&v["tables"][0]["schema"], "object", "what");
    let r = diff_json("defs.t", &["--schema-only"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["tables"][0]["status"], "different");
    assert_eq!(v["tables"][0]["method"], "schema");
    assert_eq!(v["tables"][0]["rows_compared"], 0);
    let mut got = schema_of(&v);
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("name", "default"),
        ("name", "collation"),
        ("note", "collation"),
        ("legacy_flag", "missing_in_target"),
        ("added", "extra_in_target"),
        ("index by_name", "definition"),
        ("index uq", "missing_in_target"),
        ("index by_note", "extra_in_target"),
        ("table", "collation"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want);

    // A full diff: the common columns are compared, the missing column makes it different.
    let r = diff_json("defs.t", &[]);
    let v = r.json();
    assert_eq!(v["tables"][0]["mismatched"], 1);
    assert_eq!(v["tables"][0]["diffs"][0]["columns"][0]["column"], "note");

    // Ignoring the columns that differ silences them, in the rows and in the schema.
    let r = diff_json(
        "defs.t",
        &["--ignore-columns", "legacy_flag,defs.t.added,note"],
    );
    let v = r.json();
    assert_eq!(v["tables"][0]["mismatched"], 0);
    assert!(!schema_of(&v)
        .iter()
        .any(|(o, _)| o == "legacy_flag" || o == "added" || o == "note"));
    assert_eq!(v["tables"][0]["status"], "equal", "{}", r.stdout);
    assert_eq!(r.code, 0);

    // --columns restricts the comparison; the key cannot be left out.
    let r = diff_json("defs.t", &["--columns", "id,name,qty"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = diff_json("defs.t", &["--columns", "name"]);
    assert_eq!(r.code, 2);
    assert!(r.json()["tables"][0]["error"]
        .as_str()
        .unwrap()
        .contains("identifies the rows"));
    // The schema section is there even when the rows could not be compared.
    assert!(!r.json()["tables"][0]["schema"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn fix_sql_round_trip() {
    fresh_db("fixrt").await;
    both(&format!(
        "USE fixrt; {ALL_TYPES};
         CREATE TABLE u (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, UNIQUE KEY (email));
         INSERT INTO u VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x');
         CREATE TABLE g (id INT PRIMARY KEY, a INT, twice INT AS (a * 2) STORED);
         INSERT INTO g (id, a) VALUES (1, 1), (2, 2), (0, 5)"
    ))
    .await;
    exec(
        Side::Target,
        &format!(
            "USE fixrt; {MUTATIONS};
             UPDATE u SET email = CONCAT(email, '.tmp');
             UPDATE u SET email = 'b@x' WHERE id = 1;
             UPDATE u SET email = 'a@x' WHERE id = 2;
             DELETE FROM g WHERE id IN (0, 2); UPDATE g SET a = 9 WHERE id = 1"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.sql");
    let fix = file.to_str().unwrap();
    let r = diff_json("fixrt.*", &["--fix-sql", fix]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.starts_with("-- cutover fix SQL"), "{sql}");
    assert!(
        sql.contains("START TRANSACTION;") && sql.trim_end().ends_with("foreign_key_checks = 1;")
    );
    assert!(!sql.to_uppercase().contains("REPLACE"), "{sql}");
    // Deletes come first, inserts last.
    let first_insert = sql.find("INSERT INTO").unwrap();
    assert!(sql.rfind("DELETE FROM").unwrap() < first_insert);
    assert!(
        !sql.contains("`twice`"),
        "generated columns are left out: {sql}"
    );

    // --apply without --yes and without a terminal refuses, and changes nothing.
    let r = diff_json("fixrt.*", &["--apply"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("cutover: error: --apply asks"),
        "{}",
        r.stderr
    );
    let r = diff_json("fixrt.*", &[]);
    assert_eq!(r.code, 1);

    let r = diff_json("fixrt.*", &["--apply", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("applied"), "{}", r.stderr);
    let r = diff_json("fixrt.*", &[]);
    assert_eq!(
        r.code, 0,
        "after --apply the tables are equal: {}",
        r.stdout
    );
}

#[tokio::test]
async fn string_composite_and_keyless_tables_across_collations() {
    fresh_db("anykey").await;
    let make = |cs: &str| {
        format!(
            "USE anykey;
             CREATE TABLE s (code VARCHAR(20) PRIMARY KEY, v INT) COLLATE {cs};
             INSERT INTO s SELECT CONCAT('k', seq, IF(seq % 7 = 0, ' x', '')), seq FROM seq_1_to_3000;
             CREATE TABLE c (region CHAR(2), id INT, name VARCHAR(20), PRIMARY KEY (region, id)) COLLATE {cs};
             INSERT INTO c SELECT ELT(1 + seq % 3, 'de', 'se', 'us'), seq, CONCAT('n', seq) FROM seq_1_to_2000;
             CREATE TABLE bag (a VARCHAR(10), b INT) COLLATE {cs};
             INSERT INTO bag VALUES ('x', 1), ('x', 1), ('x', 1), ('y', NULL), ('', 2), (NULL, 2)"
        )
    };
    exec(Side::Source, &make("utf8mb4_general_ci")).await;
    exec(Side::Target, &make("utf8mb4_bin")).await;

    // Identical data under different collations: no difference at all, with either hash.
    let r = diff_json("anykey.*", &["--row-hash", "portable"]);
    assert_eq!(r.code, 0, "portable: {}", r.stdout);
    let r = diff_json("anykey.*", &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v = r.json();
    let methods: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["multiset", "checksum", "checksum"]);
    assert_eq!(v["summary"]["rows_compared"], 3000 + 2000 + 6);

    exec(
        Side::Target,
        "USE anykey;
         UPDATE s SET code = 'K5' WHERE code = 'k5';
         UPDATE s SET code = 'k6 ' WHERE code = 'k6';
         UPDATE s SET v = -1 WHERE code = 'k7 x';
         DELETE FROM c WHERE region = 'se' AND id = 1;
         UPDATE c SET name = NULL WHERE region = 'us' AND id = 2;
         DELETE FROM bag WHERE a = 'x' LIMIT 2;
         INSERT INTO bag VALUES (NULL, 2);
         UPDATE bag SET a = NULL WHERE a = ''",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let fix = dir.path().join("fix.sql");
    let r = diff_json("anykey.*", &["--fix-sql", fix.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    // The portable row hash finds exactly the same differences.
    let p = diff_json("anykey.*", &["--row-hash", "portable"]).json();
    for (a, b) in v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .zip(p["tables"].as_array().unwrap())
    {
        assert_eq!(a["diffs"], b["diffs"], "portable: {}", a["source"]);
        assert_eq!(b["row_hash"], "crc32_reversed");
    }
    let table = |name: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["source"] == name)
            .unwrap()
            .clone()
    };
    let s = table("anykey.s");
    let kinds: Vec<(String, String)> = s["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().into(),
                d["key"]["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut kinds_sorted = kinds.clone();
    kinds_sorted.sort();
    assert_eq!(
        kinds_sorted,
        vec![
            ("extra_in_target".into(), "K5".into()),
            ("extra_in_target".into(), "k6 ".into()),
            ("mismatched".into(), "k7 x".into()),
            ("missing_in_target".into(), "k5".into()),
            ("missing_in_target".into(), "k6".into()),
        ]
    );
    let c = table("anykey.c");
    assert_eq!(
        (c["missing_in_target"].as_u64(), c["mismatched"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(c["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["key"] == serde_json::json!({"region": "se", "id": 1})));
    let bag = table("anykey.bag");
    assert_eq!(bag["method"], "multiset");
    assert_eq!(bag["mismatched"], 0);
    let mut entries: Vec<(String, String, u64)> = bag["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().into(),
                d["key"].to_string(),
                d["count"].as_u64().unwrap(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            ("extra_in_target".into(), r#"{"a":null,"b":2}"#.into(), 2),
            ("missing_in_target".into(), r#"{"a":"","b":2}"#.into(), 1),
            ("missing_in_target".into(), r#"{"a":"x","b":1}"#.into(), 2),
        ]
    );

    // The fix SQL converges.
    let r = diff_json("anykey.*", &["--apply", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = diff_json("anykey.*", &[]);
    assert_eq!(r.code, 0, "after --apply: {}", r.stdout);
}

#[tokio::test]
async fn the_32_bit_row_hash_is_asked_for_and_still_finds_every_difference() {
    fresh_db("rh32").await;
    both(
        "USE rh32; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), b VARBINARY(8));
         INSERT INTO t SELECT seq, CONCAT('v', seq), UNHEX(HEX(seq)) FROM seq_1_to_30000",
    )
    .await;
    exec(
        Side::Target,
        "USE rh32; UPDATE t SET v = 'V12' WHERE id = 12; UPDATE t SET b = NULL WHERE id = 20000;
         DELETE FROM t WHERE id = 29999",
    )
    .await;
    let r = diff_json("rh32.t", &["--row-hash", "crc32"]);
    let v = r.json();
    assert_eq!(r.code, 1, "{v:#}");
    let t = &v["tables"][0];
    assert_eq!(t["row_hash"], "crc32", "{t:#}");
    assert_eq!(
        pairs(&t["diffs"], "kind", "key"),
        vec![
            ("mismatched".to_string(), r#"{"id":12}"#.to_string()),
            ("mismatched".to_string(), r#"{"id":20000}"#.to_string()),
            (
                "missing_in_target".to_string(),
                r#"{"id":29999}"#.to_string()
            ),
        ]
    );
    // The default stays 64-bit.
    let v = diff_json("rh32.t", &[]).json();
    assert_eq!(v["tables"][0]["row_hash"], "crc32_pair", "{v:#}");
    let r = diff_json("rh32.t", &["--row-hash", "md5"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[tokio::test]
async fn a_resume_refuses_every_change_of_what_is_compared_and_names_it() {
    fresh_db("cpo").await;
    both(
        "USE cpo; CREATE TABLE t (id INT PRIMARY KEY, v INT, w DOUBLE);
         INSERT INTO t SELECT seq, seq, seq / 3 FROM seq_1_to_2000;
         CREATE TABLE u (id INT PRIMARY KEY, v INT); INSERT INTO u SELECT seq, seq FROM seq_1_to_100",
    )
    .await;
    exec(Side::Target, "USE cpo; UPDATE t SET v = 0 WHERE id = 7").await;
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let plain = config("plain.toml", "");
    let cp = dir.path().join("cp");
    let cp = cp.to_str().unwrap();
    fn with<'a>(cp: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--checkpoint", cp];
        args.extend(extra);
        args
    }
    let first = diff_json("cpo.*", &with(cp, &["--config", &plain]));
    assert_eq!(first.code, 1, "{}", first.stderr);

    // How fast it runs is not what it compares: these resume.
    let r = diff_json(
        "cpo.*",
        &with(
            cp,
            &[
                "--config",
                &plain,
                "--threads",
                "3",
                "--chunk-time",
                "50ms",
                "--rate",
                "1000000",
            ],
        ),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("resuming from"), "{}", r.stderr);
    assert_eq!(r.json()["tables"], first.json()["tables"]);

    // Whatever changes the result is refused, from a flag or from the config file, by name.
    let where_cfg = config("where.toml", "[diff.where]\n\"cpo.t\" = \"v > 0\"\n");
    let route_cfg = config(
        "route.toml",
        "[[route]]\nsource = \"cpo.u\"\ntarget = \"cpo.u2\"\n",
    );
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "cpo.*",
            vec!["--config", &plain, "--where", "v > 0"],
            "--where",
        ),
        ("cpo.*", vec!["--config", &where_cfg], "[diff.where]"),
        (
            "cpo.*",
            vec!["--config", &plain, "--columns", "id,v"],
            "--columns",
        ),
        (
            "cpo.*",
            vec!["--config", &plain, "--ignore-columns", "w"],
            "--ignore-columns",
        ),
        (
            "cpo.*",
            vec!["--config", &plain, "--float-tolerance", "0.01"],
            "--float-tolerance",
        ),
        (
            "cpo.*",
            vec!["--config", &route_cfg],
            "the routes ([[route]])",
        ),
        (
            "cpo.t",
            vec!["--config", &plain],
            "the tables (--tables, --exclude, [filter])",
        ),
        (
            "cpo.*",
            vec!["--config", &plain, "--exclude", "cpo.u"],
            "the tables (--tables, --exclude, [filter])",
        ),
    ];
    for (tables, extra, name) in cases {
        diff_json(tables, &with(cp, &extra)).assert_clean_error(&format!("(changed: {name})"));
    }
    // And the checkpoint still resumes the run it belongs to.
    let r = diff_json("cpo.*", &with(cp, &["--config", &plain]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("resuming from"), "{}", r.stderr);
}

/// `--row-hash portable` forces the form MySQL, Aurora and TiDB pairs get, and finds what
/// the default finds, on latin1 tables too.
#[tokio::test]
async fn the_portable_row_hash_is_asked_for_and_finds_every_difference() {
    fresh_db("rhp").await;
    both(
        "USE rhp; CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
           pad CHAR(60) NOT NULL) CHARSET latin1;
         INSERT INTO t SELECT seq, seq % 1000, CONCAT(seq, '-', REPEAT('x', seq % 50)),
           CONCAT('p', seq) FROM seq_1_to_30000",
    )
    .await;
    exec(
        Side::Target,
        "USE rhp; UPDATE t SET c = CONCAT(c, X'FF') WHERE id = 12;
         UPDATE t SET pad = UPPER(pad) WHERE id = 20000; DELETE FROM t WHERE id = 29999",
    )
    .await;
    let expected = vec![
        ("mismatched".to_string(), r#"{"id":12}"#.to_string()),
        ("mismatched".to_string(), r#"{"id":20000}"#.to_string()),
        (
            "missing_in_target".to_string(),
            r#"{"id":29999}"#.to_string(),
        ),
    ];
    for (args, form) in [
        (vec!["--row-hash", "portable"], "crc32_reversed"),
        (vec![], "crc32_pair"),
    ] {
        let r = diff_json("rhp.t", &args);
        let v = r.json();
        assert_eq!(r.code, 1, "{v:#}");
        let t = &v["tables"][0];
        assert_eq!(t["row_hash"], form, "{t:#}");
        assert_eq!(pairs(&t["diffs"], "kind", "key"), expected, "{form}");
    }
}
