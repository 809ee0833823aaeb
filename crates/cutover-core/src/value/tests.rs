use super::*;

fn text(s: &str) -> ColumnKind {
    let _ = s;
    ColumnKind::Text {
        charset: "utf8mb4".into(),
    }
}

fn parse(raw: &str, kind: &ColumnKind) -> Value {
    Value::from_text(raw.as_bytes().to_vec(), kind).unwrap()
}

const EXACT: CompareOptions = CompareOptions {
    float_tolerance: None,
};

#[test]
fn decimal_scale_does_not_matter() {
    let k = ColumnKind::Decimal {
        precision: 10,
        scale: 2,
    };
    assert!(same(&parse("1.50", &k), &parse("1.5", &k), &EXACT));
    assert!(same(&parse("-0.00", &k), &parse("0", &k), &EXACT));
    assert!(!same(&parse("1.51", &k), &parse("1.5", &k), &EXACT));
    assert!(same(&parse("12", &k), &Value::Int(12), &EXACT));
}

#[test]
fn text_is_exact() {
    let k = text("");
    assert!(!same(&parse("Alice", &k), &parse("alice", &k), &EXACT));
    assert!(!same(&parse("bob", &k), &parse("bob ", &k), &EXACT));
    assert!(!same(&parse("", &k), &Value::Null, &EXACT));
}

#[test]
fn floats() {
    assert!(same(&Value::Float(0.1), &Value::Float(0.1), &EXACT));
    assert!(!same(
        &Value::Double(0.1),
        &Value::Double(0.1000001),
        &EXACT
    ));
    let tol = CompareOptions {
        float_tolerance: Some(1e-6),
    };
    assert!(same(&Value::Double(0.1), &Value::Double(0.1000001), &tol));
    assert!(!same(&Value::Double(0.1), &Value::Double(0.11), &tol));
    assert!(same(
        &parse("208.867", &ColumnKind::Float),
        &Value::Float(208.867),
        &EXACT
    ));
}

#[test]
fn json_by_structure() {
    let k = ColumnKind::Json;
    assert!(same(
        &parse(r#"{"a": 1, "b": [1, 2]}"#, &k),
        &parse(r#"{"b":[1,2],"a":1}"#, &k),
        &EXACT
    ));
    assert!(!same(
        &parse(r#"{"a":1}"#, &k),
        &parse(r#"{"a":2}"#, &k),
        &EXACT
    ));
}

#[test]
fn temporal() {
    let k = ColumnKind::DateTime { fsp: 6 };
    assert_eq!(
        parse("2024-02-29 13:14:15.000123", &k),
        Value::DateTime(DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 13,
            minute: 14,
            second: 15,
            micros: 123
        })
    );
    let t = ColumnKind::Time { fsp: 3 };
    assert!(same(
        &parse("-838:59:59.5", &t),
        &parse("-838:59:59.500", &t),
        &EXACT
    ));
    assert!(!same(
        &parse("01:00:00", &t),
        &parse("-01:00:00", &t),
        &EXACT
    ));
    assert!(Value::from_text(b"2024-13".to_vec(), &k).is_err());
}

#[test]
fn json_output() {
    assert_eq!(Value::Int(5).to_json(), json!(5));
    assert_eq!(
        Value::UInt(u64::MAX).to_json(),
        json!("18446744073709551615")
    );
    assert_eq!(
        Value::Bytes(vec![0xff, 0x00]).to_json(),
        json!({"hex": "ff00"})
    );
    assert_eq!(Value::Bytes(b"ok".to_vec()).to_json(), json!("ok"));
    assert_eq!(Value::Null.to_json(), serde_json::Value::Null);
    let d = Decimal::parse("1.50").unwrap();
    assert_eq!(Value::Decimal(d).to_json(), json!(1.5));
    let big = Decimal::parse("12345678901234567890.123").unwrap();
    assert_eq!(
        Value::Decimal(big).to_json(),
        json!("12345678901234567890.123")
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// How a server's text protocol renders a value of each kind.
    fn server_text(v: &Value) -> Vec<u8> {
        match v {
            Value::Bit(b) => b.to_be_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
            Value::Text(s) => s.as_bytes().to_vec(),
            Value::Json(j) => j.to_string().into_bytes(),
            Value::Float(f) => format!("{f:?}").into_bytes(),
            Value::Double(d) => format!("{d:?}").into_bytes(),
            Value::Date(d) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day).into_bytes(),
            other => other.to_string().trim_matches('"').as_bytes().to_vec(),
        }
    }

    fn datetime() -> impl Strategy<Value = DateTime> {
        (
            1000u16..9999,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            0u32..1_000_000,
        )
            .prop_map(
                |(year, month, day, hour, minute, second, micros)| DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                },
            )
    }

    fn cell() -> impl Strategy<Value = (ColumnKind, Value)> {
        prop_oneof![
            any::<i64>().prop_map(|i| (ColumnKind::Int { unsigned: false }, Value::Int(i))),
            (i64::MAX as u64 + 1..=u64::MAX)
                .prop_map(|u| (ColumnKind::Int { unsigned: true }, Value::UInt(u))),
            ("-?[0-9]{1,20}(\\.[0-9]{1,10})?").prop_map(|s| (
                ColumnKind::Decimal {
                    precision: 30,
                    scale: 10
                },
                Value::Decimal(Decimal::parse(&s).unwrap())
            )),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| (ColumnKind::Float, Value::Float(f))),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| (ColumnKind::Double, Value::Double(f))),
            "\\PC{0,20}".prop_map(|s| (
                ColumnKind::Text {
                    charset: "utf8mb4".into()
                },
                Value::Text(s)
            )),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|b| (ColumnKind::Binary, Value::Bytes(b))),
            datetime().prop_map(|d| (ColumnKind::DateTime { fsp: 6 }, Value::DateTime(d))),
            datetime().prop_map(|d| (
                ColumnKind::Date,
                Value::Date(DateTime {
                    hour: 0,
                    minute: 0,
                    second: 0,
                    micros: 0,
                    ..d
                })
            )),
            (any::<bool>(), 0u32..839, 0u8..60, 0u8..60, 0u32..1_000_000).prop_map(
                |(negative, hours, minute, second, micros)| (
                    ColumnKind::Time { fsp: 6 },
                    Value::Time(Time {
                        negative: negative && (hours | minute as u32 | second as u32 | micros) != 0,
                        hours,
                        minute,
                        second,
                        micros,
                    })
                )
            ),
            any::<u64>().prop_map(|b| (ColumnKind::Bit { width: 64 }, Value::Bit(b))),
            ("[a-z]{1,5}", any::<i32>(), "\\PC{0,8}").prop_map(|(k, n, s)| (
                ColumnKind::Json,
                Value::Json(json!({ k: [n, s, {"x": null}] }))
            )),
        ]
    }

    /// A different value of the same kind.
    fn mutate(v: &Value, salt: u8) -> Value {
        match v {
            Value::Int(i) => Value::Int(i.wrapping_add(1 + salt as i64)),
            Value::UInt(u) => Value::UInt(if *u == u64::MAX { u - 1 } else { u + 1 }),
            Value::Decimal(d) => {
                let mut s = d.to_string();
                s.push_str(if s.contains('.') { "1" } else { ".1" });
                Value::Decimal(Decimal::parse(&s).unwrap())
            }
            Value::Float(f) => Value::Float(f32::from_bits(f.to_bits() ^ 1)),
            Value::Double(d) => Value::Double(f64::from_bits(d.to_bits() ^ 1)),
            Value::Text(s) => Value::Text(match salt % 3 {
                0 => format!("{s} "),
                1 if s.chars().any(|c| c.is_ascii_lowercase()) => s.to_ascii_uppercase(),
                _ => format!("{s}x"),
            }),
            Value::Bytes(b) => {
                let mut b = b.clone();
                match b.first_mut() {
                    Some(x) => *x ^= 1 << (salt % 8),
                    None => b.push(0),
                }
                Value::Bytes(b)
            }
            Value::DateTime(d) => Value::DateTime(DateTime {
                micros: (d.micros + 1) % 1_000_000,
                second: if d.micros == 999_999 {
                    (d.second + 1) % 60
                } else {
                    d.second
                },
                ..*d
            }),
            Value::Date(d) => Value::Date(DateTime {
                day: d.day % 28 + 1,
                ..*d
            }),
            Value::Time(t) => Value::Time(Time {
                micros: (t.micros + 1) % 1_000_000,
                second: if t.micros == 999_999 {
                    (t.second + 1) % 60
                } else {
                    t.second
                },
                negative: t.negative,
                ..*t
            }),
            Value::Bit(b) => Value::Bit(b ^ (1 << (salt % 64))),
            Value::Json(j) => Value::Json(json!([j])),
            Value::Null => Value::Int(0),
        }
    }

    proptest! {
        #[test]
        fn values_survive_the_server_text_and_compare((kind, v) in cell()) {
            let parsed = Value::from_text(server_text(&v), &kind).unwrap();
            prop_assert!(same(&v, &parsed, &EXACT), "{v:?} -> {parsed:?}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            v.encode(&mut a);
            parsed.encode(&mut b);
            prop_assert_eq!(a, b);
            prop_assert!(!same(&v, &Value::Null, &EXACT));
        }

        #[test]
        fn changed_values_never_compare_equal((kind, v) in cell(), salt in any::<u8>()) {
            let w = mutate(&v, salt);
            let w = Value::from_text(server_text(&w), &kind).unwrap();
            prop_assert!(!same(&v, &w, &EXACT), "{v:?} vs {w:?}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            v.encode(&mut a);
            w.encode(&mut b);
            prop_assert_ne!(a, b);
        }

        #[test]
        fn parsing_any_bytes_never_panics((kind, _v) in cell(), raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Value::from_text(raw, &kind);
        }
    }
}
