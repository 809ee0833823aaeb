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

use std::cmp::Ordering;
use std::fmt;

use serde_json::json;

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

/// A canonical decimal number: sign, digits without leading zeros, and a scale without
/// trailing zeros. `1.50`, `1.5` and `+001.5` are the same `Decimal`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    /// Integer part, no leading zeros ("" for zero).
    int: String,
    /// Fraction part, no trailing zeros.
    frac: String,
}

impl Decimal {
    pub fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let zero = int.is_empty() && frac.is_empty();
        Some(Decimal {
            negative: negative && !zero,
            int,
            frac,
        })
    }

    pub fn from_i128(v: i128) -> Decimal {
        let negative = v < 0;
        let int = v.unsigned_abs().to_string();
        let int = if int == "0" { String::new() } else { int };
        Decimal {
            negative,
            int,
            frac: String::new(),
        }
    }

    /// Whether it fits an f64 without losing a digit (then JSON may carry it as a number).
    fn fits_f64(&self) -> bool {
        self.int.len() + self.frac.len() <= 15
    }

    fn cmp_abs(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_abs(other),
            (true, true) => other.cmp_abs(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(if self.int.is_empty() { "0" } else { &self.int })?;
        if !self.frac.is_empty() {
            write!(f, ".{}", self.frac)?;
        }
        Ok(())
    }
}

/// DATE, DATETIME and TIMESTAMP (in UTC), with microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// TIME: a signed duration up to 838:59:59.999999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Time {
    pub negative: bool,
    pub hours: u32,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl Time {
    fn total_micros(&self) -> i128 {
        let t = ((self.hours as i128 * 60 + self.minute as i128) * 60 + self.second as i128)
            * 1_000_000
            + self.micros as i128;
        if self.negative {
            -t
        } else {
            t
        }
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

/// Options of the comparison that users may set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompareOptions {
    /// FLOAT/DOUBLE are equal when `|a - b| <= tol * max(1, |a|, |b|)`; `None` means exact.
    pub float_tolerance: Option<f64>,
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
                let mut s = String::new();
                canonical_json(j, &mut s);
                put_bytes(out, s.as_bytes());
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

fn int_or_uint(v: i128) -> Value {
    if v >= 0 && v > i64::MAX as i128 {
        Value::UInt(v as u64)
    } else {
        Value::Int(v as i64)
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

pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
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

/// JSON with object keys sorted and numbers in one form, so equal JSON encodes alike.
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                canonical_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string())
            }
            (_, _, Some(f)) => out.push_str(&format!("{f:e}")),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let year = dp.next()?.parse().ok()?;
    let month = dp.next()?.parse().ok()?;
    let day = dp.next()?.parse().ok()?;
    if dp.next().is_some() {
        return None;
    }
    let mut dt = DateTime {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };
    if let Some(t) = time {
        let t = parse_time(t)?;
        if t.negative || t.hours > 23 {
            return None;
        }
        dt.hour = t.hours as u8;
        dt.minute = t.minute;
        dt.second = t.second;
        dt.micros = t.micros;
    }
    Some(dt)
}

fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut p = hms.split(':');
    let hours: u32 = p.next()?.parse().ok()?;
    let minute: u8 = p.next()?.parse().ok()?;
    let second: u8 = p.next().unwrap_or("0").parse().ok()?;
    if p.next().is_some() || minute > 59 || second > 59 {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Some(Time {
        negative: negative && (hours > 0 || minute > 0 || second > 0 || micros > 0),
        hours,
        minute,
        second,
        micros,
    })
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

#[cfg(test)]
mod tests {
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
                .prop_map(|(year, month, day, hour, minute, second, micros)| {
                    DateTime {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second,
                        micros,
                    }
                })
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
                            negative: negative
                                && (hours | minute as u32 | second as u32 | micros) != 0,
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
}
