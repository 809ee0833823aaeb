//! The rule of equality ([`same`]), the canonical encoding that agrees with it
//! ([`Value::encode`]) and the order of key values ([`Value::key_cmp`]).

use std::cmp::Ordering;

use super::{Decimal, Value};
use crate::json::{canonical_json, Numbers};

/// Options of the comparison that users may set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompareOptions {
    /// FLOAT/DOUBLE are equal when `|a - b| <= tol * max(1, |a|, |b|)`; `None` means exact.
    pub float_tolerance: Option<f64>,
}

impl Value {
    /// The canonical encoding: a type tag and a payload, length-prefixed where variable, so
    /// that a sequence of encodings is itself unambiguous.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(b'N'),
            Value::Int(_) | Value::UInt(_) | Value::Decimal(_) => {
                let d = self.as_decimal().unwrap_or_else(|| Decimal::from_i128(0));
                out.push(b'D');
                put_bytes(out, d.to_string().as_bytes());
            }
            Value::Float(f) => {
                out.push(b'F');
                out.extend_from_slice(&float_bits(*f as f64).to_be_bytes());
            }
            Value::Double(d) => {
                out.push(b'F');
                out.extend_from_slice(&float_bits(*d).to_be_bytes());
            }
            Value::Text(s) => {
                out.push(b'S');
                put_bytes(out, s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(b'S');
                put_bytes(out, b);
            }
            Value::Date(d) | Value::DateTime(d) => {
                out.push(b'T');
                out.extend_from_slice(&d.year.to_be_bytes());
                out.extend_from_slice(&[d.month, d.day, d.hour, d.minute, d.second]);
                out.extend_from_slice(&d.micros.to_be_bytes());
            }
            Value::Time(t) => {
                out.push(b'I');
                out.extend_from_slice(&t.total_micros().to_be_bytes());
            }
            Value::Bit(b) => {
                out.push(b'D');
                put_bytes(out, b.to_string().as_bytes());
            }
            Value::Json(j) => {
                out.push(b'J');
                put_bytes(out, canonical_json(j, Numbers::OneForm).as_bytes());
            }
        }
    }

    fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Int(i) => Some(Decimal::from_i128(*i as i128)),
            Value::UInt(u) => Some(Decimal::from_i128(*u as i128)),
            Value::Bit(u) => Some(Decimal::from_i128(*u as i128)),
            Value::Decimal(d) => Some(d.clone()),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// Orders key values: numbers numerically, text and bytes by their bytes, temporal values
    /// chronologically. Values of kinds that do not order together order by kind.
    pub fn key_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::UInt(a), Value::UInt(b)) => a.cmp(b),
            (Value::Int(a), Value::UInt(b)) => (*a as i128).cmp(&(*b as i128)),
            (Value::UInt(a), Value::Int(b)) => (*a as i128).cmp(&(*b as i128)),
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            // Text and bytes by their bytes: UTF-8 byte order is code point order, which is
            // what `ORDER BY CAST(CONVERT(c USING utf8mb4) AS BINARY)` returns.
            (Value::Text(_) | Value::Bytes(_), Value::Text(_) | Value::Bytes(_)) => {
                fn raw(v: &Value) -> &[u8] {
                    match v {
                        Value::Text(s) => s.as_bytes(),
                        Value::Bytes(b) => b,
                        _ => &[],
                    }
                }
                raw(self).cmp(raw(other))
            }
            (a, b) => {
                if let (Some(x), Some(y)) = (a.as_decimal(), b.as_decimal()) {
                    return x.cmp(&y);
                }
                if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                    // As the servers order them: -0 and 0 are the same number.
                    return x.partial_cmp(&y).unwrap_or_else(|| x.total_cmp(&y));
                }
                match (a, b) {
                    (Value::Date(x) | Value::DateTime(x), Value::Date(y) | Value::DateTime(y)) => {
                        x.cmp(y)
                    }
                    (Value::Time(x), Value::Time(y)) => x.total_micros().cmp(&y.total_micros()),
                    _ => {
                        let (mut ea, mut eb) = (Vec::new(), Vec::new());
                        a.encode(&mut ea);
                        b.encode(&mut eb);
                        ea.cmp(&eb)
                    }
                }
            }
        }
    }
}

/// Whether two cells hold the same data. The single rule of equality every command uses.
pub fn same(a: &Value, b: &Value, opts: &CompareOptions) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Text(x), Text(y)) => x == y,
        (Bytes(x), Bytes(y)) => x == y,
        (Text(x), Bytes(y)) | (Bytes(y), Text(x)) => x.as_bytes() == y.as_slice(),
        (Json(x), Json(y)) => json_same(x, y),
        (Json(j), Text(t)) | (Text(t), Json(j)) => serde_json::from_str::<serde_json::Value>(t)
            .map(|p| json_same(j, &p))
            .unwrap_or(false),
        (Date(x) | DateTime(x), Date(y) | DateTime(y)) => x == y,
        (Time(x), Time(y)) => x.total_micros() == y.total_micros(),
        (Float(_) | Double(_), Float(_) | Double(_)) => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            match opts.float_tolerance {
                None => x == y || (x.is_nan() && y.is_nan()),
                Some(tol) => (x - y).abs() <= tol * 1f64.max(x.abs()).max(y.abs()),
            }
        }
        _ => match (a.as_decimal(), b.as_decimal()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn float_bits(d: f64) -> u64 {
    // -0.0 and 0.0 are the same number; give them one encoding, as `same` does.
    if d == 0.0 {
        0
    } else {
        d.to_bits()
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

fn json_number_same(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// JSON equality as MySQL defines it: objects by key set, arrays in order, numbers by value.
fn json_same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => json_number_same(x, y),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_same(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).map(|w| json_same(v, w)).unwrap_or(false))
        }
        _ => a == b,
    }
}
