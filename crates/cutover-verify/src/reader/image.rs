//! Row images: a binlog row's cells turned into the shared value model with the table's
//! definition (by column name when the event carries names, else by position), and the key
//! taken from them.

use cutover_core::schema::Table;
use cutover_core::value::{ColumnKind, DateTime, Value, ValueError};
use mysql_async::binlog::events::TableMapEvent;
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

/// A table's definition as the reader uses it.
#[derive(Clone, Debug)]
pub struct TableSchema {
    pub table: Table,
    /// The columns (indexes into `table.columns`) that identify a row: the row key, or every
    /// column of a table without one (its rows are then checked by whole-row image).
    pub key: Vec<usize>,
    pub keyless: bool,
}

impl TableSchema {
    pub fn new(table: Table) -> TableSchema {
        let key: Option<Vec<usize>> = table.row_key().map(|k| {
            k.columns
                .iter()
                .filter_map(|c| {
                    table
                        .columns
                        .iter()
                        .position(|col| col.name.eq_ignore_ascii_case(c))
                })
                .collect()
        });
        match key {
            Some(key) if !key.is_empty() => TableSchema {
                table,
                key,
                keyless: false,
            },
            _ => TableSchema {
                key: (0..table.columns.len()).collect(),
                table,
                keyless: true,
            },
        }
    }
}

/// The key and (when complete) the image of one row.
pub(super) type Decoded = (Vec<Value>, Option<Vec<Value>>);

/// The column names a table map event carries (`binlog_row_metadata=FULL`), if it does.
pub(super) fn event_column_names(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
    use mysql_async::binlog::events::OptionalMetadataField;
    for field in tme.iter_optional_meta() {
        if let Ok(OptionalMetadataField::ColumnName(names)) = field {
            let names: Vec<String> = names
                .iter_names()
                .map(|n| n.map(|n| n.name().into_owned()))
                .collect::<Result<_, _>>()
                .ok()?;
            return (names.len() as u64 == tme.columns_count()).then_some(names);
        }
    }
    None
}

/// For each of the definition's columns, its index in a binlog row of `count` columns
/// (`None`: not in the row). By name when the event names its columns; by position only
/// when the counts agree. `None` when a key column cannot be placed: the row cannot be read
/// with this definition.
pub(super) fn layout(
    schema: &TableSchema,
    names: Option<&[String]>,
    count: u64,
) -> Option<Vec<Option<usize>>> {
    let layout: Vec<Option<usize>> = match names {
        Some(names) => schema
            .table
            .columns
            .iter()
            .map(|c| names.iter().position(|n| n.eq_ignore_ascii_case(&c.name)))
            .collect(),
        None if schema.table.columns.len() as u64 == count => {
            (0..schema.table.columns.len()).map(Some).collect()
        }
        None => return None,
    };
    schema
        .key
        .iter()
        .all(|&k| layout.get(k).copied().flatten().is_some())
        .then_some(layout)
}

pub(super) fn decode_row(
    mut row: BinlogRow,
    schema: &TableSchema,
    layout: &[Option<usize>],
) -> Result<Decoded, String> {
    let types: Vec<ColumnType> = row.columns_ref().iter().map(|c| c.column_type()).collect();
    let mut cells: Vec<Option<Value>> = Vec::with_capacity(schema.table.columns.len());
    let mut complete = true;
    for (i, col) in schema.table.columns.iter().enumerate() {
        let Some(at) = layout.get(i).copied().flatten() else {
            complete = false;
            cells.push(None);
            continue;
        };
        let Some(v) = row.take(at) else {
            complete = false;
            cells.push(None);
            continue;
        };
        let ty = types
            .get(at)
            .copied()
            .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
        match binlog_value(v, ty, &col.kind, &col.column_type) {
            Ok(v) => cells.push(Some(v)),
            Err(e) if schema.key.contains(&i) => {
                return Err(format!("key column `{}`: {e}", col.name))
            }
            Err(_) => {
                complete = false;
                cells.push(None);
            }
        }
    }
    let mut key = Vec::with_capacity(schema.key.len());
    for &i in &schema.key {
        match cells.get(i).cloned().flatten() {
            Some(v) => key.push(v),
            None => {
                return Err(format!(
                    "key column `{}` is not in the binlog image (set binlog_row_image=FULL)",
                    schema.table.columns[i].name
                ))
            }
        }
    }
    let image = complete.then(|| {
        cells
            .into_iter()
            .map(|c| c.unwrap_or(Value::Null))
            .collect()
    });
    Ok((key, image))
}

/// Why a binlog cell could not be read as a value.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CellError {
    #[error("JSON: {0}")]
    Json(String),
    #[error("a partial JSON update (set binlog_row_value_options='')")]
    PartialJson,
    #[error("a TIMESTAMP that is not text")]
    TimestampNotText,
    #[error("TIMESTAMP `{0}`")]
    Timestamp(String),
    #[error("ENUM index {index} beyond {column_type}")]
    EnumIndex { index: u64, column_type: String },
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// One binlog cell in the value model, given the column's kind and declaration.
pub fn binlog_value(
    v: BinlogValue<'_>,
    ty: ColumnType,
    kind: &ColumnKind,
    column_type: &str,
) -> Result<Value, CellError> {
    use mysql_async::Value as M;
    let v = match v {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            return serde_json::Value::try_from(j)
                .map(Value::Json)
                .map_err(|e| CellError::Json(e.to_string()))
        }
        BinlogValue::JsonDiff(_) => return Err(CellError::PartialJson),
    };
    match (kind, v) {
        (_, M::NULL) => Ok(Value::Null),
        // The binlog does not say whether an integer is signed: it is, unless the column
        // says otherwise; then the stored bits are read as unsigned of the column's width.
        (ColumnKind::Int { unsigned: true }, M::Int(i)) if i < 0 => {
            let bits = match ty {
                ColumnType::MYSQL_TYPE_TINY => 8,
                ColumnType::MYSQL_TYPE_SHORT => 16,
                ColumnType::MYSQL_TYPE_INT24 => 24,
                ColumnType::MYSQL_TYPE_LONG => 32,
                _ => 64,
            };
            let u = if bits == 64 {
                i as u64
            } else {
                (i as u64) & ((1u64 << bits) - 1)
            };
            Ok(if u > i64::MAX as u64 {
                Value::UInt(u)
            } else {
                Value::Int(u as i64)
            })
        }
        (ColumnKind::Timestamp { .. }, M::Int(secs)) => Ok(unix_time(secs, 0)),
        (ColumnKind::Timestamp { .. }, M::Bytes(b)) => {
            let s = std::str::from_utf8(&b).map_err(|_| CellError::TimestampNotText)?;
            let (secs, micros) = s.split_once('.').unwrap_or((s, "0"));
            let secs: i64 = secs
                .parse()
                .map_err(|_| CellError::Timestamp(s.to_string()))?;
            let micros: u32 = micros
                .parse()
                .map_err(|_| CellError::Timestamp(s.to_string()))?;
            Ok(unix_time(secs, micros))
        }
        (ColumnKind::Enum, M::Int(i)) => enum_label(i as u64, column_type),
        (ColumnKind::Enum, M::UInt(i)) => enum_label(i, column_type),
        (ColumnKind::Set, M::Bytes(b)) => {
            let bits = b.iter().rev().fold(0u64, |a, byte| (a << 8) | *byte as u64);
            let labels = labels(column_type);
            let chosen: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(n, _)| *n < 64 && bits & (1u64 << n) != 0)
                .map(|(_, l)| l.as_str())
                .collect();
            Ok(Value::Text(chosen.join(",")))
        }
        // The binlog holds text in the column's own character set; the checker's sessions
        // read utf8mb4. latin1 (MySQL's latin1 is Windows-1252) is the common other one.
        (ColumnKind::Text { charset }, M::Bytes(b)) if charset == "latin1" => {
            Ok(Value::Text(b.iter().map(|&c| cp1252(c)).collect()))
        }
        (kind, v) => Ok(Value::from_mysql(v, kind)?),
    }
}

/// An ENUM's label by its 1-based index (0 is the empty "error" value).
fn enum_label(i: u64, column_type: &str) -> Result<Value, CellError> {
    if i == 0 {
        return Ok(Value::Text(String::new()));
    }
    labels(column_type)
        .into_iter()
        .nth((i - 1) as usize)
        .map(Value::Text)
        .ok_or_else(|| CellError::EnumIndex {
            index: i,
            column_type: column_type.to_string(),
        })
}

/// `enum('a','b''c')` → `["a", "b'c"]`.
fn labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = column_type[start + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if in_quote {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    cur.push('\'');
                    chars.next();
                } else {
                    in_quote = false;
                    out.push(std::mem::take(&mut cur));
                }
            } else if c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else {
                cur.push(c);
            }
        } else if c == '\'' {
            in_quote = true;
        } else if c == ')' {
            break;
        }
    }
    out
}

/// Windows-1252, which MySQL and MariaDB call latin1.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}',
        '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}',
        '\u{178}',
    ];
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// Seconds (and microseconds) since the epoch as a UTC date-time; 0 is the zero date, as
/// the server shows a zero TIMESTAMP.
fn unix_time(secs: i64, micros: u32) -> Value {
    if secs == 0 && micros == 0 {
        return Value::DateTime(DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        });
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    Value::DateTime(DateTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        micros,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_is_utc_civil_time() {
        let Value::DateTime(d) = unix_time(1_700_000_000, 5) else {
            panic!()
        };
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros),
            (2023, 11, 14, 22, 13, 20, 5)
        );
        let Value::DateTime(d) = unix_time(951_782_400, 0) else {
            panic!()
        };
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
    }

    #[test]
    fn enum_and_set_labels_are_read_from_the_declaration() {
        assert_eq!(labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(labels("set('x','y')"), vec!["x", "y"]);
        assert!(labels("int").is_empty());
        let v = binlog_value(
            BinlogValue::Value(mysql_async::Value::Bytes(vec![0b101])),
            ColumnType::MYSQL_TYPE_SET,
            &ColumnKind::Set,
            "set('x','y','z')",
        );
        assert_eq!(v, Ok(Value::Text("x,z".into())));
    }

    #[test]
    fn unsigned_integers_are_read_by_width() {
        let u = |i, ty| {
            binlog_value(
                BinlogValue::Value(mysql_async::Value::Int(i)),
                ty,
                &ColumnKind::Int { unsigned: true },
                "",
            )
        };
        assert_eq!(u(-1, ColumnType::MYSQL_TYPE_TINY), Ok(Value::Int(255)));
        assert_eq!(
            u(-1, ColumnType::MYSQL_TYPE_INT24),
            Ok(Value::Int(16_777_215))
        );
        assert_eq!(
            u(-1, ColumnType::MYSQL_TYPE_LONGLONG),
            Ok(Value::UInt(u64::MAX))
        );
        assert_eq!(u(7, ColumnType::MYSQL_TYPE_LONG), Ok(Value::Int(7)));
    }
}
