//! The shared reports (`--out DIR`) of a hand-made diff report, checked against reviewed
//! snapshots. No database needed.
//!
//! After an intended change, review and accept the new snapshots with `cargo insta review`
//! (or `INSTA_UPDATE=always cargo test -p cutover-diff --test report_snapshots`, then read
//! the diff).

use cutover_diff::plan::RowHash;
use cutover_diff::report::{
    ColumnDiff, DiffKind, Rendering, Report, RowDiff, SchemaDiff, Summary, TableReport,
};
use cutover_diff::report_doc;
use serde_json::json;

fn key(id: u64) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(id));
    m
}

/// Three tables: one equal, one different (a missing row, an extra row, a changed row with
/// markup-laden text, bytes and a NULL, a schema difference, a rendering), one error.
fn sample() -> Report {
    let mut equal = TableReport::new("shop.customers".into(), "shop.customers".into());
    equal.rows_compared = 1200;
    equal.chunks = 3;
    equal.row_hash = Some(RowHash::Crc32Reversed);
    equal.elapsed_ms = 250;
    equal.settle();

    let mut orders = TableReport::new("shop.orders".into(), "shop.orders".into());
    orders.rows_compared = 5000;
    orders.chunks = 10;
    orders.rows_fetched = 64;
    orders.row_hash = Some(RowHash::Crc32Reversed);
    orders.elapsed_ms = 1500;
    orders.missing_in_target = 1;
    orders.extra_in_target = 1;
    orders.mismatched = 1;
    orders.diffs = vec![
        RowDiff {
            kind: DiffKind::MissingInTarget,
            key: key(7001),
            columns: Vec::new(),
            count: None,
        },
        RowDiff {
            kind: DiffKind::Mismatched,
            key: key(7002),
            columns: vec![
                ColumnDiff {
                    column: "note".into(),
                    source: json!("VAL a|b <b>bold</b> `tick`\nline2"),
                    target: json!("VAL a|b <b>bold</b>"),
                },
                ColumnDiff {
                    column: "payload".into(),
                    source: json!({"hex": "ff00fe"}),
                    target: json!({"hex": "ff00ff"}),
                },
                ColumnDiff {
                    column: "status".into(),
                    source: json!("shipped"),
                    target: serde_json::Value::Null,
                },
            ],
            count: None,
        },
        RowDiff {
            kind: DiffKind::ExtraInTarget,
            key: key(7003),
            columns: Vec::new(),
            count: None,
        },
    ];
    orders.schema = vec![SchemaDiff {
        object: "note".into(),
        what: "collation".into(),
        source: Some("utf8mb4_general_ci".into()),
        target: Some("utf8mb4_bin".into()),
    }];
    orders.renderings = vec![Rendering {
        column: "price".into(),
        checksum: "CAST(`price` AS DOUBLE)".into(),
        settled_by: "rows".into(),
    }];
    orders.settle();

    let mut events = TableReport::new("shop.events".into(), "archive.events".into());
    events.error =
        Some("source query failed: Truncated incorrect DECIMAL value: 'VAL-err-9f3'".into());
    events.elapsed_ms = 12;
    events.settle();

    // From JSON, so optional fields added to the report later take their defaults.
    let mut r: Report = serde_json::from_value(json!({
        "version": "0.0.0-test",
        "source": "mysql://app:***@source.example:3306/shop",
        "target": "mysql://app:***@tidb.example:4000/shop",
        "connections": {
            "source": {"server": "10.11.6-MariaDB", "tls": "TLS_AES_256_GCM_SHA384"},
            "target": {"server": "8.0.11-TiDB-v7.5.1", "tls": null},
        },
        "tables": [],
        "summary": serde_json::to_value(Summary::default()).unwrap(),
        "interrupted": false,
    }))
    .unwrap();
    r.tables = vec![equal, orders, events];
    r.summarize(3000);
    r
}

fn json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap();
    s.push('\n');
    s
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!("report.md", report_doc::markdown(&sample()));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!("report.json", json(&sample()));
}

#[test]
fn html_escapes_data_and_names_every_table() {
    let html = report_doc::html(&sample());
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The renderer writes no <b>, so any would come from the data.
    assert!(!html.contains("<b>"), "{html}");
    assert!(!html.contains("</b>"));
    assert!(html.contains("&quot;VAL a|b &lt;b&gt;bold&lt;/b&gt; `tick`\\nline2&quot;"));
    assert!(!html.contains("<script"));
    for name in [
        "shop.customers",
        "shop.orders",
        "shop.events → archive.events",
    ] {
        assert!(html.contains(name), "{name}");
    }
    assert!(html.contains("<span class=\"badge warn\">ERROR</span>"));
    assert!(html.contains("<code>0xff00fe</code>"));
}

/// Every row value of the sample, as text that would betray it.
const ROW_VALUES: &[&str] = &[
    "7001",
    "7002",
    "7003",
    "VAL",
    "bold",
    "tick",
    "line2",
    "ff00fe",
    "ff00ff",
    "shipped",
    "VAL-err-9f3",
];

#[test]
fn redaction_keeps_names_and_counts_but_no_value() {
    let plain = sample();
    let md = report_doc::markdown(&plain);
    for v in ROW_VALUES {
        assert!(md.contains(v), "the sample should show {v}");
    }
    let mut r = sample();
    report_doc::redact(&mut r);
    let outputs = [
        ("markdown", report_doc::markdown(&r)),
        ("html", report_doc::html(&r)),
        ("json", json(&r)),
    ];
    for (what, out) in &outputs {
        for v in ROW_VALUES {
            assert!(!out.contains(v), "{what} still shows {v}:\n{out}");
        }
        for name in [
            "shop.customers",
            "shop.orders",
            "archive.events",
            "note",
            "payload",
            "status",
            "utf8mb4_general_ci",
            "Truncated incorrect DECIMAL value",
        ] {
            assert!(out.contains(name), "{what} lost {name}");
        }
    }
    // Counts and the shape of the report are untouched.
    assert_eq!(r.summary, plain.summary);
    let (before, after) = (&plain.tables[1], &r.tables[1]);
    assert_eq!(after.diffs.len(), before.diffs.len());
    for (b, a) in before.diffs.iter().zip(&after.diffs) {
        assert_eq!(a.kind, b.kind);
        assert_eq!(
            a.key.keys().collect::<Vec<_>>(),
            b.key.keys().collect::<Vec<_>>()
        );
        assert_eq!(a.columns.len(), b.columns.len());
        for (bc, ac) in b.columns.iter().zip(&a.columns) {
            assert_eq!(ac.column, bc.column);
            assert_eq!(ac.source.is_null(), bc.source.is_null());
            assert_eq!(ac.target.is_null(), bc.target.is_null());
        }
    }
    assert_eq!(after.schema, before.schema);
    // Stable: the same value has the same hash in every run; different values differ.
    let mut again = sample();
    report_doc::redact(&mut again);
    assert_eq!(json(&again), json(&r));
    let changed = &after.diffs[1];
    assert_eq!(
        changed.key["id"],
        json!(report_doc::hash_value(&json!(7002)))
    );
    assert_ne!(changed.columns[0].source, changed.columns[0].target);
    assert!(changed.columns[2].target.is_null());
    // The documents say the values are hashes.
    let (_, md) = &outputs[0];
    assert!(md.contains("- **Values:** redacted"), "{md}");
    assert!(md.contains(&format!(
        "| changed | `id={}` | `payload` |",
        report_doc::hash_value(&json!(7002))
    )));
}
