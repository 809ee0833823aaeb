//! A property test on real servers: random schemas (key kinds, collations that differ between
//! the sides, NULL-able columns), random data, random changes on the target. The differences
//! reported must be exactly the changes made, and the fix SQL must make the tables equal.

use std::collections::BTreeSet;

use cutover_core::schema::TableName;
use cutover_core::Role;

use super::{db, exec};
use cutover_diff::fix::SpoolSink;
use cutover_diff::plan::RowHash;
use cutover_diff::{Diff, DiffOptions};
use cutover_sandbox::{Sandbox, Settings};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

#[derive(Clone, Debug)]
enum Key {
    Int,
    BigUnsigned,
    Text,
    Composite,
    None,
}

#[derive(Clone, Debug)]
struct Case {
    key: Key,
    source_collation: &'static str,
    target_collation: &'static str,
    rows: usize,
    /// (row index, change kind) pairs; kinds: 0 delete, 1 update value, 2 update to NULL,
    /// 3 change key case (text keys) or update.
    changes: Vec<(usize, u8)>,
    inserts: usize,
}

/// latin1 on one side only converts its text; on both, compares its bytes with their lengths.
const COLLATIONS: &[&str] = &[
    "utf8mb4_general_ci",
    "utf8mb4_bin",
    "utf8mb4_unicode_ci",
    "latin1_swedish_ci",
];

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(Key::Int),
            Just(Key::BigUnsigned),
            Just(Key::Text),
            Just(Key::Composite),
            Just(Key::None)
        ],
        0..COLLATIONS.len(),
        0..COLLATIONS.len(),
        5usize..120,
        proptest::collection::vec((0usize..1000, 0u8..4), 0..8),
        0usize..3,
    )
        .prop_map(|(key, a, b, rows, changes, inserts)| Case {
            key,
            source_collation: COLLATIONS[a],
            target_collation: COLLATIONS[b],
            rows,
            changes,
            inserts,
        })
}

fn key_columns(k: &Key) -> &'static str {
    match k {
        Key::Int => "id INT NOT NULL, PRIMARY KEY (id)",
        Key::BigUnsigned => "id BIGINT UNSIGNED NOT NULL, PRIMARY KEY (id)",
        Key::Text => "id VARCHAR(20) NOT NULL, PRIMARY KEY (id)",
        Key::Composite => "id VARCHAR(20) NOT NULL, n INT NOT NULL, PRIMARY KEY (id, n)",
        Key::None => "id VARCHAR(20) NULL",
    }
}

fn id_value(k: &Key, i: usize) -> String {
    match k {
        Key::Int => format!("{}", i as i64 * 7 - 100),
        Key::BigUnsigned => format!("{}", 18_000_000_000_000_000_000u64 + i as u64),
        Key::Text => format!("'{}'", text_key(i)),
        Key::Composite | Key::None => format!("'k{i}'"),
    }
}

/// Text keys in mixed case: `_bin` puts every `K…` before every `k…`, the `_ci` collations
/// interleave them, so the two sides' orders differ throughout the table.
fn text_key(i: usize) -> String {
    format!("{}{i}", if i.is_multiple_of(3) { 'K' } else { 'k' })
}

fn row_values(k: &Key, i: usize) -> String {
    let n = if matches!(k, Key::Composite) {
        format!("{}, ", i % 3)
    } else {
        String::new()
    };
    format!(
        "({}, {n}{}, {}, {}.{:02}, {})",
        id_value(k, i),
        if i.is_multiple_of(5) {
            "NULL".to_string()
        } else {
            format!("'v{i}'")
        },
        if i.is_multiple_of(4) {
            "NULL".to_string()
        } else {
            (i * 31).to_string()
        },
        i,
        i % 100,
        i as f64 / 3.0
    )
}

#[tokio::test]
async fn reported_differences_are_exactly_the_changes_and_the_fix_converges() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let (sp, tp) = (sb.source.port, sb.target.port);
    let (s, t) = (db(sp, Role::Source).await, db(tp, Role::Target).await);
    let mut runner = TestRunner::new(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    });
    let strategy = case();
    let mut checked = 0;
    for n in 0..24 {
        let c = strategy.new_tree(&mut runner).unwrap().current();
        let name = format!("r{n}");
        let cols = format!(
            "{}, v VARCHAR(20) NULL, w INT NULL, d DECIMAL(10,2) NOT NULL, x DOUBLE NOT NULL",
            key_columns(&c.key)
        );
        let rows: Vec<String> = (0..c.rows).map(|i| row_values(&c.key, i)).collect();
        for (port, coll) in [(sp, c.source_collation), (tp, c.target_collation)] {
            exec(
                port,
                &format!(
                    "CREATE DATABASE IF NOT EXISTS p; USE p; DROP TABLE IF EXISTS {name};
                     CREATE TABLE {name} ({cols}) COLLATE {coll};
                     INSERT INTO {name} VALUES {}",
                    rows.join(", ")
                ),
            )
            .await;
        }
        // Changes on the target, and what the diff must say about them.
        let keyless = matches!(c.key, Key::None);
        let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
        let mut touched = BTreeSet::new();
        let key_json = |i: usize| -> String {
            match c.key {
                Key::Int => format!(r#"{{"id":{}}}"#, i as i64 * 7 - 100),
                Key::BigUnsigned => {
                    format!(r#"{{"id":"{}"}}"#, 18_000_000_000_000_000_000u64 + i as u64)
                }
                Key::Text => format!(r#"{{"id":"{}"}}"#, text_key(i)),
                Key::Composite => format!(r#"{{"id":"k{i}","n":{}}}"#, i % 3),
                Key::None => format!("row {i}"),
            }
        };
        let pred = |i: usize| match c.key {
            Key::Composite => format!("id = {} AND n = {}", id_value(&c.key, i), i % 3),
            _ => format!("id = {}", id_value(&c.key, i)),
        };
        for (r, kind) in &c.changes {
            let i = r % c.rows;
            if !touched.insert(i) {
                continue;
            }
            let (sql, what) = match kind {
                0 => (
                    format!("DELETE FROM {name} WHERE {}", pred(i)),
                    "missing_in_target",
                ),
                1 => (
                    format!("UPDATE {name} SET w = COALESCE(w, 0) + 1 WHERE {}", pred(i)),
                    "mismatched",
                ),
                2 if !i.is_multiple_of(5) => (
                    format!("UPDATE {name} SET v = NULL WHERE {}", pred(i)),
                    "mismatched",
                ),
                // A key whose case changes: a different key (missing, and another extra).
                3 if matches!(c.key, Key::Text) => {
                    let old = text_key(i);
                    let new = old
                        .replacen('K', "x", 1)
                        .replacen('k', "K", 1)
                        .replacen('x', "k", 1);
                    expected.insert(("extra_in_target".into(), format!(r#"{{"id":"{new}"}}"#)));
                    (
                        format!("UPDATE {name} SET id = '{new}' WHERE {}", pred(i)),
                        "missing_in_target",
                    )
                }
                _ => (
                    format!("UPDATE {name} SET x = x + 1 WHERE {}", pred(i)),
                    "mismatched",
                ),
            };
            exec(tp, &format!("USE p; {sql}")).await;
            if keyless {
                // A changed keyless row is one row missing and another extra.
                expected.insert(("missing_in_target".into(), key_json(i)));
                if what == "mismatched" {
                    expected.insert(("extra_in_target".into(), key_json(i)));
                }
            } else {
                expected.insert((what.into(), key_json(i)));
            }
        }
        for j in 0..c.inserts {
            let i = 10_000 + j;
            exec(
                tp,
                &format!("USE p; INSERT INTO {name} VALUES {}", row_values(&c.key, i)),
            )
            .await;
            expected.insert(("extra_in_target".into(), key_json(i)));
        }

        let table = TableName::new("p", name.clone());
        // Both row hashes are exercised on every case: one here, the other in the ordered
        // pass below.
        let (hash, other_hash) = if n % 2 == 0 {
            (RowHash::Crc32Pair, RowHash::Crc32Reversed)
        } else {
            (RowHash::Crc32Reversed, RowHash::Crc32Pair)
        };
        let opts = DiffOptions {
            row_threshold: 7,
            // Many ranges even in small tables (text keys are cut into ranges of this many).
            first_chunk_rows: 7,
            row_hash: Some(hash),
            ..DiffOptions::default()
        };
        let sink = SpoolSink::new().unwrap();
        let report = Diff {
            fix: Some(&sink),
            ..Diff::new(&s, &t, &opts)
        }
        .table(std::slice::from_ref(&table), &table)
        .await;
        assert!(report.error.is_none(), "{c:?}: {:?}", report.error);
        let got: BTreeSet<(String, String)> = report
            .diffs
            .iter()
            .map(|d| {
                let kind = serde_json::to_value(d.kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string();
                let key = serde_json::Value::Object(d.key.clone());
                let key = if keyless {
                    // The whole row is the key; name it by its `id` like the expectation.
                    format!(
                        "row {}",
                        key["id"].as_str().unwrap_or("").trim_start_matches('k')
                    )
                } else {
                    key.to_string()
                };
                (kind, key)
            })
            .collect();
        assert_eq!(got, expected, "{c:?}");
        checked += got.len();
        eprintln!(
            "case {n}: {:?} {} -> {}, {} rows, {} differences",
            c.key,
            c.source_collation,
            c.target_collation,
            c.rows,
            got.len()
        );

        // The ordered single pass (used when many buckets differ) finds the same.
        let ordered = DiffOptions {
            ordered_above_rows: 0,
            row_hash: Some(other_hash),
            ..opts.clone()
        };
        let report2 = Diff::new(&s, &t, &ordered)
            .table(std::slice::from_ref(&table), &table)
            .await;
        let mut a: Vec<String> = report
            .diffs
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect();
        let mut b: Vec<String> = report2
            .diffs
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{c:?}: bucket by bucket vs one ordered pass");

        // Apply the fix SQL on the target; then nothing differs.
        let mut script = String::from("USE p; SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; ");
        sink.for_each(|l| {
            script.push_str(l);
            script.push(' ');
            Ok(())
        })
        .unwrap();
        exec(tp, &script).await;
        let again = Diff::new(&s, &t, &opts)
            .table(std::slice::from_ref(&table), &table)
            .await;
        assert_eq!(
            again.differences(),
            0,
            "{c:?}: after the fix {:?}",
            again.diffs
        );
    }
    assert!(
        checked > 24,
        "the cases must change something: {checked} differences"
    );
}

/// A text key whose two collations order it differently throughout (`_bin` on the source:
/// every `K…` before every `k…`; `_general_ci` on the target: interleaved), cut into ranges
/// of 12 rows, parts of 2: many source boundaries are not increasing on the target and are skipped, and
/// rows land in different ranges on the two sides. Every change is found exactly once, with
/// nothing else reported; the same data unchanged is equal.
#[tokio::test]
async fn text_key_ranges_are_exact_when_the_collations_order_keys_differently() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let (sp, tp) = (sb.source.port, sb.target.port);
    let (s, t) = (db(sp, Role::Source).await, db(tp, Role::Target).await);
    let rows: Vec<String> = (0..90)
        .map(|i| format!("('{}', {i})", text_key(i)))
        .collect();
    for (port, coll) in [(sp, "utf8mb4_bin"), (tp, "utf8mb4_general_ci")] {
        exec(
            port,
            &format!(
                "CREATE DATABASE o; USE o;
                 CREATE TABLE t (id VARCHAR(20) NOT NULL PRIMARY KEY, w INT NOT NULL) COLLATE {coll};
                 INSERT INTO t VALUES {}",
                rows.join(", ")
            ),
        )
        .await;
    }
    let table = TableName::new("o", "t");
    // Ranges of 12 rows; a differing one is cut again into parts of 2.
    let opts = DiffOptions {
        first_chunk_rows: 12,
        row_threshold: 2,
        ..DiffOptions::default()
    };
    let run = || Diff::new(&s, &t, &opts).table(std::slice::from_ref(&table), &table);
    let equal = run().await;
    assert!(equal.error.is_none(), "{:?}", equal.error);
    assert_eq!(
        (equal.differences(), equal.rows_compared),
        (0, 90),
        "{:?}",
        equal.diffs
    );
    assert!(equal.chunks > 2, "{} ranges", equal.chunks);

    exec(
        tp,
        "USE o; DELETE FROM t WHERE id = 'K3'; UPDATE t SET w = -1 WHERE id = 'k4';
         UPDATE t SET id = 'K5' WHERE id = 'k5'; UPDATE t SET w = -2 WHERE id = 'K87';
         INSERT INTO t VALUES ('k1000', 1), ('K2000', 2)",
    )
    .await;
    let r = run().await;
    assert!(r.error.is_none(), "{:?}", r.error);
    let mut got: Vec<String> = r
        .diffs
        .iter()
        .map(|d| format!("{} {}", serde_json::to_value(d.kind).unwrap(), d.key["id"]))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#""extra_in_target" "K2000""#,
            r#""extra_in_target" "K5""#,
            r#""extra_in_target" "k1000""#,
            r#""mismatched" "K87""#,
            r#""mismatched" "k4""#,
            r#""missing_in_target" "K3""#,
            r#""missing_in_target" "k5""#,
        ],
        "{:?}",
        r.diffs
    );
    assert_eq!(r.rows_compared, 90);
}
