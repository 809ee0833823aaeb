//! `--checkpoint DIR`: where a verification got to, so a restart misses no event.
//!
//! The checkpoint is one JSON file, `DIR/verify-checkpoint.json`, replaced atomically (written
//! beside it, flushed, renamed over it). It holds a binlog position at a transaction boundary
//! and the pending set as it was once every change before that position had been taken in:
//! every change before the position is either pending in the file, or was seen equal, or
//! was confirmed (and counted in the file). A restart reads the binlog again from the
//! position; changes after the boundary that were already taken in come again and merge.
//! Nothing is skipped; a mismatch confirmed after the last save may be confirmed again
//! (at-least-once, like every binlog consumer that restarts).
//!
//! Keys are stored with their types ([`Part`]), so a restored key reads the same rows.

use std::io::Write;
use std::path::{Path, PathBuf};

use cutover_core::file::{write_atomic, Readers};
use cutover_core::schema::TableName;
use cutover_core::value::{DateTime, Decimal, Time, Value};
use serde::{Deserialize, Serialize};

use crate::checker::Mismatch;
use crate::position::BinlogPos;

/// The file's format; a checkpoint of another format is refused, never misread.
pub const FORMAT: u32 = 1;
pub const FILE_NAME: &str = "verify-checkpoint.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("checkpoint {path} is not a verify checkpoint this version can read: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "checkpoint {path} was made against another source (server_id {saved_id} on \
         `{saved_host}`; this source is server_id {id} on `{host}`): give another \
         --checkpoint directory"
    )]
    OtherSource {
        path: PathBuf,
        saved_id: u64,
        saved_host: String,
        id: u64,
        host: String,
    },
}

/// Which source a checkpoint belongs to: its `@@server_id` and `@@hostname`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceId {
    pub server_id: u64,
    pub hostname: String,
}

/// One typed key part, stored losslessly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Null,
    Int(i64),
    #[serde(rename = "uint")]
    UInt(u64),
    Decimal(String),
    /// Rust's shortest round-trip text (JSON numbers may not come back bit for bit).
    Float(String),
    Double(String),
    Text(String),
    /// Hex.
    Bytes(String),
    /// `[year, month, day, hour, minute, second, micros]`
    Date([u32; 7]),
    DateTime([u32; 7]),
    /// `[negative (0/1), hours, minute, second, micros]`
    Time([u32; 5]),
    Bit(u64),
    Json(serde_json::Value),
}

fn dt(d: &DateTime) -> [u32; 7] {
    [
        d.year.into(),
        d.month.into(),
        d.day.into(),
        d.hour.into(),
        d.minute.into(),
        d.second.into(),
        d.micros,
    ]
}

fn from_dt(a: &[u32; 7]) -> Option<DateTime> {
    Some(DateTime {
        year: u16::try_from(a[0]).ok()?,
        month: u8::try_from(a[1]).ok()?,
        day: u8::try_from(a[2]).ok()?,
        hour: u8::try_from(a[3]).ok()?,
        minute: u8::try_from(a[4]).ok()?,
        second: u8::try_from(a[5]).ok()?,
        micros: a[6],
    })
}

impl Part {
    pub fn from_value(v: &Value) -> Part {
        match v {
            Value::Null => Part::Null,
            Value::Int(i) => Part::Int(*i),
            Value::UInt(u) => Part::UInt(*u),
            Value::Decimal(d) => Part::Decimal(d.to_string()),
            Value::Float(f) => Part::Float(format!("{f:?}")),
            Value::Double(f) => Part::Double(format!("{f:?}")),
            Value::Text(s) => Part::Text(s.clone()),
            Value::Bytes(b) => Part::Bytes(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Date(d) => Part::Date(dt(d)),
            Value::DateTime(d) => Part::DateTime(dt(d)),
            Value::Time(t) => Part::Time([
                t.negative.into(),
                t.hours,
                t.minute.into(),
                t.second.into(),
                t.micros,
            ]),
            Value::Bit(b) => Part::Bit(*b),
            Value::Json(j) => Part::Json(j.clone()),
        }
    }

    /// `None` when the stored part is not a value (a damaged file).
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            Part::Null => Value::Null,
            Part::Int(i) => Value::Int(*i),
            Part::UInt(u) => Value::UInt(*u),
            Part::Decimal(s) => Value::Decimal(Decimal::parse(s)?),
            Part::Float(f) => Value::Float(f.parse().ok()?),
            Part::Double(f) => Value::Double(f.parse().ok()?),
            Part::Text(s) => Value::Text(s.clone()),
            Part::Bytes(h) => {
                if h.len() % 2 != 0 || !h.is_ascii() {
                    return None;
                }
                let bytes: Option<Vec<u8>> = (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
                    .collect();
                Value::Bytes(bytes?)
            }
            Part::Date(a) => Value::Date(from_dt(a)?),
            Part::DateTime(a) => Value::DateTime(from_dt(a)?),
            Part::Time(a) => Value::Time(Time {
                negative: a[0] != 0,
                hours: a[1],
                minute: u8::try_from(a[2]).ok()?,
                second: u8::try_from(a[3]).ok()?,
                micros: a[4],
            }),
            Part::Bit(b) => Value::Bit(*b),
            Part::Json(j) => Value::Json(j.clone()),
        })
    }
}

/// One pending key as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedKey {
    /// The source table, `db.t` (quoted parts are not needed: see [`SavedKey::schema`]).
    pub schema: String,
    pub table: String,
    pub key: Vec<Part>,
    pub position: BinlogPos,
    pub changes: u32,
}

/// Counters carried across restarts, so the final summary covers the whole verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub events: u64,
    pub changes: u64,
    pub rows_checked: u64,
    #[serde(default)]
    pub source_reads: u64,
    pub resolved: u64,
    pub check_errors: u64,
    pub reconnects: u64,
    pub restarts: u64,
}

/// The file's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Saved {
    pub format: u32,
    pub version: String,
    pub source: SourceId,
    /// A transaction boundary: the restart reads from here.
    pub position: BinlogPos,
    pub totals: Totals,
    pub pending: Vec<SavedKey>,
    /// Mismatches confirmed so far (the verdict survives a restart).
    pub mismatches: Vec<Mismatch>,
}

/// A saved key whose values cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a damaged key of {schema}.{table}")]
pub struct DamagedKey {
    pub schema: String,
    pub table: String,
}

/// A saved key taken back: its table, its typed values, and the saved entry.
pub type Restored<'a> = (TableName, Vec<Value>, &'a SavedKey);

impl Saved {
    /// The pending keys as tables and typed values; an error for a damaged entry.
    pub fn keys(&self) -> Result<Vec<Restored<'_>>, DamagedKey> {
        self.pending
            .iter()
            .map(|k| {
                let values: Option<Vec<Value>> = k.key.iter().map(Part::to_value).collect();
                match values {
                    Some(v) => Ok((TableName::new(&k.schema, &k.table), v, k)),
                    None => Err(DamagedKey {
                        schema: k.schema.clone(),
                        table: k.table.clone(),
                    }),
                }
            })
            .collect()
    }
}

/// A checkpoint directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// Uses `dir` (made when missing).
    pub fn new(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved state, `None` when nothing was saved yet. A checkpoint of another source
    /// is refused.
    pub fn load(&self, source: &SourceId) -> Result<Option<Saved>, CheckpointError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CheckpointError::Io {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| CheckpointError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if saved.format != FORMAT {
            return Err(CheckpointError::Format {
                path,
                message: format!("format {} (this version writes {FORMAT})", saved.format),
            });
        }
        if let Err(e) = saved.keys() {
            return Err(CheckpointError::Format {
                path,
                message: e.to_string(),
            });
        }
        if saved.source != *source {
            return Err(CheckpointError::OtherSource {
                path,
                saved_id: saved.source.server_id,
                saved_host: saved.source.hostname.clone(),
                id: source.server_id,
                host: source.hostname.clone(),
            });
        }
        Ok(Some(saved))
    }

    /// Replaces the checkpoint atomically: a crash leaves the old one or the new one.
    pub fn save(&self, saved: &Saved) -> Result<(), CheckpointError> {
        let path = self.path();
        let io = |e: std::io::Error| CheckpointError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let text = serde_json::to_vec(saved).map_err(|e| io(std::io::Error::other(e)))?;
        // Owner-only: the pending keys and row images are the tables' data.
        write_atomic(&path, Readers::Owner, |f| f.write_all(&text)).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::UInt),
            (any::<i64>(), 0u32..10).prop_map(|(i, s)| {
                let text = i.unsigned_abs().to_string();
                let s = (s as usize).min(text.len());
                let (a, b) = text.split_at(text.len() - s);
                let a = if a.is_empty() { "0" } else { a };
                let sign = if i < 0 { "-" } else { "" };
                let t = if b.is_empty() {
                    format!("{sign}{a}")
                } else {
                    format!("{sign}{a}.{b}")
                };
                Value::Decimal(Decimal::parse(&t).unwrap_or_else(|| Decimal::from_i128(0)))
            }),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Double),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            (
                0u16..10000,
                0u8..13,
                0u8..32,
                0u8..24,
                0u8..60,
                0u8..60,
                0u32..1_000_000
            )
                .prop_map(|(year, month, day, hour, minute, second, micros)| {
                    Value::DateTime(DateTime {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second,
                        micros,
                    })
                }),
            (any::<bool>(), 0u32..839, 0u8..60, 0u8..60, 0u32..1_000_000).prop_map(
                |(negative, hours, minute, second, micros)| Value::Time(Time {
                    negative,
                    hours,
                    minute,
                    second,
                    micros
                })
            ),
            any::<u64>().prop_map(Value::Bit),
        ]
    }

    proptest! {
        /// Every key survives the file: same canonical encoding after a round trip.
        #[test]
        fn keys_round_trip(key in proptest::collection::vec(arb_value(), 1..4)) {
            let parts: Vec<Part> = key.iter().map(Part::from_value).collect();
            let text = serde_json::to_string(&parts).expect("serializes");
            let back: Vec<Part> = serde_json::from_str(&text).expect("parses");
            let values: Vec<Value> = back.iter().map(|p| p.to_value().expect("a value")).collect();
            prop_assert_eq!(cutover_rows::encode(&values), cutover_rows::encode(&key));
        }

        /// A damaged file is an error that names the file, never a panic, and never a
        /// fresh start: the file is left as it was, and loading it again fails again.
        #[test]
        fn damaged_files_are_errors(text in damaged_file()) {
            let dir = tempfile::tempdir().expect("tempdir");
            let cp = Checkpoint::new(dir.path()).expect("dir");
            std::fs::write(cp.path(), &text).expect("write");
            let id = whole_checkpoint().source;
            let err = match cp.load(&id) {
                Err(e) => e,
                Ok(loaded) => {
                    return Err(TestCaseError::fail(format!(
                        "a damaged file loaded as {loaded:?}"
                    )))
                }
            };
            prop_assert!(
                matches!(err, CheckpointError::Format { .. }),
                "not a format error: {err:?}"
            );
            let shown = err.to_string();
            let file = cp.path().display().to_string();
            prop_assert!(shown.contains(&file), "{shown} does not name {file}");
            prop_assert_eq!(std::fs::read_to_string(cp.path()).expect("still there"), text);
            prop_assert!(cp.load(&id).is_err(), "a second load succeeded");
        }
    }

    /// A checkpoint as `save` writes it, with one pending key.
    fn whole_checkpoint() -> Saved {
        Saved {
            format: FORMAT,
            version: "x".into(),
            source: SourceId {
                server_id: 1,
                hostname: "h".into(),
            },
            position: BinlogPos::new("binlog.000002", 1234),
            totals: Totals::default(),
            pending: vec![SavedKey {
                schema: "db".into(),
                table: "t".into(),
                key: vec![Part::Int(3), Part::Bytes("00ff".into())],
                position: BinlogPos::new("binlog.000002", 1200),
                changes: 2,
            }],
            mismatches: Vec::new(),
        }
    }

    /// Damaged checkpoint files: any text, a whole file cut short, a file of another
    /// format, and a file whose pending key cannot be read back.
    fn damaged_file() -> impl Strategy<Value = String> {
        let whole = serde_json::to_string(&whole_checkpoint()).expect("serializes");
        let cut = whole.clone();
        let other_format = whole.replacen(
            &format!("\"format\":{FORMAT}"),
            &format!("\"format\":{}", FORMAT + 1),
            1,
        );
        let bad_key = whole.replacen("\"00ff\"", "\"0g\"", 1);
        assert_ne!(
            other_format, whole,
            "the format field is where the test looks"
        );
        assert_ne!(bad_key, whole, "the key is where the test looks");
        prop_oneof![
            ".{0,200}",
            any::<prop::sample::Index>().prop_map(move |i| cut[..i.index(cut.len())].to_string()),
            Just(other_format),
            Just(bad_key),
        ]
    }

    #[test]
    fn save_load_and_other_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = Checkpoint::new(dir.path()).expect("dir");
        let id = SourceId {
            server_id: 7,
            hostname: "db1".into(),
        };
        assert!(cp.load(&id).expect("loads").is_none());
        let saved = Saved {
            source: id.clone(),
            totals: Totals {
                events: 5,
                ..Totals::default()
            },
            ..whole_checkpoint()
        };
        cp.save(&saved).expect("saves");
        let back = cp.load(&id).expect("loads").expect("saved");
        assert_eq!(back.position, saved.position);
        let keys = back.keys().expect("keys");
        assert_eq!(keys[0].1, vec![Value::Int(3), Value::Bytes(vec![0, 255])]);
        let other = SourceId {
            server_id: 8,
            hostname: "db1".into(),
        };
        assert!(matches!(
            cp.load(&other),
            Err(CheckpointError::OtherSource { .. })
        ));
    }
}
