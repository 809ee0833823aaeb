//! Recorded execute parameters → `mysql_async` values of the same wire type, so a replayed
//! execute sends what the application sent: integers as integers (signed or unsigned),
//! `FLOAT`/`DOUBLE` with their exact bits, temporal values with their fraction, bytes as the
//! very bytes (a `DECIMAL` as its exact text, which the server reads as the client's).

use cutover_workload::{Param, ParamValue};
use mysql_async::Value;

/// The value to bind for one recorded parameter. A redacted value (a workload recorded with
/// `--redact-values`, which replay refuses) binds as the text `?`.
pub fn bind(p: &Param) -> Value {
    match &p.value {
        ParamValue::Null => Value::NULL,
        ParamValue::Int(i) => Value::Int(*i),
        ParamValue::UInt(u) => Value::UInt(*u),
        ParamValue::Float(bits) => Value::Float(f32::from_bits(*bits)),
        ParamValue::Double(bits) => Value::Double(f64::from_bits(*bits)),
        ParamValue::Bytes(b) => Value::Bytes(b.clone()),
        ParamValue::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => Value::Date(*year, *month, *day, *hour, *minute, *second, *micros),
        ParamValue::Time {
            negative,
            days,
            hours,
            minutes,
            seconds,
            micros,
        } => Value::Time(*negative, *days, *hours, *minutes, *seconds, *micros),
        ParamValue::Redacted => Value::Bytes(b"?".to_vec()),
    }
}

/// Every parameter of an execute, in order.
pub fn positional(params: &[Param]) -> mysql_async::Params {
    if params.is_empty() {
        return mysql_async::Params::Empty;
    }
    mysql_async::Params::Positional(params.iter().map(bind).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recorded_type_binds_as_its_own() {
        let p = |t, u, v| bind(&Param::new(t, u, v));
        assert_eq!(p(3, false, ParamValue::Int(-7)), Value::Int(-7));
        assert_eq!(
            p(8, true, ParamValue::UInt(u64::MAX)),
            Value::UInt(u64::MAX)
        );
        // mysql2 sends integers as DOUBLE: they stay a DOUBLE 1, not the text "1.0".
        assert_eq!(
            p(5, false, ParamValue::Double(1.0f64.to_bits())),
            Value::Double(1.0)
        );
        let nan = f32::from_bits(0x7fc0_0001);
        match p(4, false, ParamValue::Float(nan.to_bits())) {
            Value::Float(f) => assert_eq!(f.to_bits(), 0x7fc0_0001),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p(246, false, ParamValue::Bytes(b"12.50".to_vec())),
            Value::Bytes(b"12.50".to_vec())
        );
        assert_eq!(
            p(252, false, ParamValue::Bytes(vec![0, 0xff, 0x80])),
            Value::Bytes(vec![0, 0xff, 0x80])
        );
        assert_eq!(
            p(
                12,
                false,
                ParamValue::DateTime {
                    year: 2024,
                    month: 2,
                    day: 29,
                    hour: 23,
                    minute: 59,
                    second: 58,
                    micros: 123_456
                }
            ),
            Value::Date(2024, 2, 29, 23, 59, 58, 123_456)
        );
        assert_eq!(
            p(
                11,
                false,
                ParamValue::Time {
                    negative: true,
                    days: 1,
                    hours: 2,
                    minutes: 3,
                    seconds: 4,
                    micros: 5
                }
            ),
            Value::Time(true, 1, 2, 3, 4, 5)
        );
        assert_eq!(p(6, false, ParamValue::Null), Value::NULL);
        assert!(matches!(positional(&[]), mysql_async::Params::Empty));
    }
}
