//! The value model: one canonical, type-aware representation of a cell, and the one place
//! where the rule "do these two cells hold the same data?" lives.
//!
//! Why not compare the driver's values or the server's text? Because the same data arrives
//! differently from different servers and column types: `1.50` and `1.5` from DECIMAL columns
//! of different scale, a latin1 `é` and a utf8mb4 `é`, `208.867` and `208.86700439` for one
//! FLOAT, JSON with and without spaces. And different data can arrive looking alike under a
//! collation: `'Alice'` and `'alice'`, `'bob'` and `'bob '`. So a [`Value`] is built from the
//! driver's value *and* the column's [`ColumnKind`], and [`same`] decides equality by type:
//!
//! - text compares by characters, exactly (case and trailing spaces are differences);
//! - DECIMAL and integers compare numerically;
//! - FLOAT/DOUBLE compare exactly unless a tolerance is asked for;
//! - temporal values compare field by field (TIMESTAMP arrives in UTC: the session sets it);
//! - bytes compare as bytes, JSON as parsed JSON, NULL equals only NULL.
//!
//! [`Value::encode`] is a canonical byte encoding with the property that two values of the
//! same kind encode alike exactly when [`same`] (without tolerance) calls them equal; it keys
//! row multisets and row hashes.

use std::fmt;

use serde_json::json;

mod equality;
mod number;
mod temporal;
#[cfg(test)]
mod tests;

pub use equality::{same, CompareOptions};
pub use number::Decimal;
use temporal::{parse_datetime, parse_time};
pub use temporal::{DateTime, Time};

/// What a column holds, as far as comparison cares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    Int {
        unsigned: bool,
    },
    Decimal {
        precision: u32,
        scale: u32,
    },
    Float,
    Double,
    Bit {
        width: u32,
    },
    Year,
    Date,
    DateTime {
        fsp: u32,
    },
    Timestamp {
        fsp: u32,
    },
    Time {
        fsp: u32,
    },
    /// Character data; `charset` is the column's character set (data arrives as UTF-8).
    Text {
        charset: String,
    },
    Binary,
    Enum,
    Set,
    Json,
    /// Anything else (spatial types, vendor types): compared as the bytes the server sends.
    Other {
        data_type: String,
    },
}

impl ColumnKind {
    pub fn is_integer(&self) -> bool {
        matches!(self, ColumnKind::Int { .. })
    }
    pub fn is_text_like(&self) -> bool {
        matches!(
            self,
            ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json
        )
    }
}

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Decimal(Decimal),
    Float(f32),
    Double(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(DateTime),
    DateTime(DateTime),
    Time(Time),
    Bit(u64),
    Json(serde_json::Value),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("cannot read a {kind} value from `{shown}`")]
pub struct ValueError {
    kind: String,
    shown: String,
}

impl ValueError {
    fn new(kind: &ColumnKind, raw: &[u8]) -> ValueError {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
        ValueError {
            kind: format!("{kind:?}"),
            shown,
        }
    }
}

impl Value {
    /// Builds the canonical value of a cell from what the driver returned (text or binary
    /// protocol) and the column's kind.
    pub fn from_mysql(v: mysql_async::Value, kind: &ColumnKind) -> Result<Value, ValueError> {
        use mysql_async::Value as M;
        match v {
            M::NULL => Ok(Value::Null),
            M::Bytes(b) => Value::from_text(b, kind),
            M::Int(i) => Ok(match kind {
                ColumnKind::Bit { .. } => Value::Bit(i as u64),
                ColumnKind::Decimal { .. } => Value::Decimal(Decimal::from_i128(i as i128)),
                _ => Value::Int(i),
            }),
            M::UInt(u) => Ok(match kind {
                ColumnKind::Bit { .. } => Value::Bit(u),
                ColumnKind::Decimal { .. } => Value::Decimal(Decimal::from_i128(u as i128)),
                _ => int_or_uint(u as i128),
            }),
            M::Float(f) => Ok(match kind {
                ColumnKind::Double => Value::Double(f as f64),
                _ => Value::Float(f),
            }),
            M::Double(d) => Ok(match kind {
                // The binary protocol sends FLOAT as 4 bytes; a DOUBLE here for a FLOAT column
                // is an expression's value, narrowed to what the column stores.
                ColumnKind::Float => Value::Float(d as f32),
                _ => Value::Double(d),
            }),
            M::Date(y, mo, d, h, mi, s, us) => {
                let dt = DateTime {
                    year: y,
                    month: mo,
                    day: d,
                    hour: h,
                    minute: mi,
                    second: s,
                    micros: us,
                };
                Ok(match kind {
                    ColumnKind::Date => Value::Date(dt),
                    _ => Value::DateTime(dt),
                })
            }
            M::Time(neg, days, h, mi, s, us) => Ok(Value::Time(Time {
                negative: neg,
                hours: days * 24 + h as u32,
                minute: mi,
                second: s,
                micros: us,
            })),
        }
    }

    /// Parses the text protocol's rendering of a value of the given kind.
    pub fn from_text(raw: Vec<u8>, kind: &ColumnKind) -> Result<Value, ValueError> {
        let err = |raw: &[u8]| ValueError::new(kind, raw);
        let text = || std::str::from_utf8(&raw).map_err(|_| err(&raw));
        match kind {
            ColumnKind::Int { .. } | ColumnKind::Year => {
                let s = text()?;
                s.trim()
                    .parse::<i128>()
                    .map(int_or_uint)
                    .map_err(|_| err(&raw))
            }
            ColumnKind::Decimal { .. } => Decimal::parse(text()?)
                .map(Value::Decimal)
                .ok_or_else(|| err(&raw)),
            ColumnKind::Float => text()?
                .trim()
                .parse::<f32>()
                .map(Value::Float)
                .map_err(|_| err(&raw)),
            ColumnKind::Double => text()?
                .trim()
                .parse::<f64>()
                .map(Value::Double)
                .map_err(|_| err(&raw)),
            ColumnKind::Bit { .. } => {
                // BIT arrives as big-endian bytes in both protocols.
                if raw.len() > 8 {
                    return Err(err(&raw));
                }
                Ok(Value::Bit(
                    raw.iter().fold(0u64, |a, b| (a << 8) | *b as u64),
                ))
            }
            ColumnKind::Date => parse_datetime(text()?)
                .map(Value::Date)
                .ok_or_else(|| err(&raw)),
            ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => parse_datetime(text()?)
                .map(Value::DateTime)
                .ok_or_else(|| err(&raw)),
            ColumnKind::Time { .. } => parse_time(text()?)
                .map(Value::Time)
                .ok_or_else(|| err(&raw)),
            ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set => {
                // The session asks for utf8mb4 results, so text is UTF-8; bytes that are not
                // (a column declared binary-ish in a text type) are kept as bytes, never
                // replaced, so that they still compare exactly.
                match String::from_utf8(raw) {
                    Ok(s) => Ok(Value::Text(s)),
                    Err(e) => Ok(Value::Bytes(e.into_bytes())),
                }
            }
            ColumnKind::Json => match serde_json::from_slice::<serde_json::Value>(&raw) {
                Ok(j) => Ok(Value::Json(j)),
                // Invalid JSON in a JSON column (MariaDB without the check) stays text.
                Err(_) => match String::from_utf8(raw) {
                    Ok(s) => Ok(Value::Text(s)),
                    Err(e) => Ok(Value::Bytes(e.into_bytes())),
                },
            },
            ColumnKind::Binary | ColumnKind::Other { .. } => Ok(Value::Bytes(raw)),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value in a JSON report: numbers as numbers (as strings beyond 2^53), text as
    /// strings, bytes that are not UTF-8 as `{"hex": "…"}`, NULL as null.
    pub fn to_json(&self) -> serde_json::Value {
        const SAFE: u64 = 1 << 53;
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) if i.unsigned_abs() <= SAFE => json!(i),
            Value::Int(i) => json!(i.to_string()),
            Value::UInt(u) if *u <= SAFE => json!(u),
            Value::UInt(u) => json!(u.to_string()),
            Value::Bit(u) if *u <= SAFE => json!(u),
            Value::Bit(u) => json!(u.to_string()),
            Value::Decimal(d) => {
                let s = d.to_string();
                match (d.fits_f64(), serde_json::from_str::<serde_json::Number>(&s)) {
                    (true, Ok(n)) => serde_json::Value::Number(n),
                    _ => json!(s),
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f as f64)
                .map(|_| {
                    // Render the f32 by its own shortest form, not the widened f64's.
                    serde_json::from_str::<serde_json::Value>(&format!("{f:?}"))
                        .unwrap_or(json!(f.to_string()))
                })
                .unwrap_or(json!(f.to_string())),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map(serde_json::Value::Number)
                .unwrap_or(json!(d.to_string())),
            Value::Text(s) => json!(s),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => json!(s),
                Err(_) => json!({ "hex": hex(b) }),
            },
            Value::Date(d) => json!(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
            Value::DateTime(_) | Value::Time(_) => json!(self.to_string()),
            Value::Json(j) => j.clone(),
        }
    }
}

fn int_or_uint(v: i128) -> Value {
    if v >= 0 && v > i64::MAX as i128 {
        Value::UInt(v as u64)
    } else {
        Value::Int(v as i64)
    }
}

pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

impl fmt::Display for Value {
    /// A human rendering, close to what the mysql client shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Bit(u) => write!(f, "b'{u:b}'"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Double(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(f, "x'{}'", hex(b)),
            },
            Value::Date(d) => write!(f, "{:04}-{:02}-{:02}", d.year, d.month, d.day),
            Value::DateTime(d) => {
                write!(
                    f,
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    d.year, d.month, d.day, d.hour, d.minute, d.second
                )?;
                if d.micros > 0 {
                    write!(f, ".{:06}", d.micros)?;
                }
                Ok(())
            }
            Value::Time(t) => {
                if t.negative {
                    f.write_str("-")?;
                }
                write!(f, "{:02}:{:02}:{:02}", t.hours, t.minute, t.second)?;
                if t.micros > 0 {
                    write!(f, ".{:06}", t.micros)?;
                }
                Ok(())
            }
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}
