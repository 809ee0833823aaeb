//! The binlog reader: the source's row changes, as typed keys and row images.
//!
//! cutover connects to the source as a replica would (`COM_REGISTER_SLAVE` with a server id
//! of its own, then `COM_BINLOG_DUMP` from a file and offset) and reads the row events that
//! `binlog_format=ROW` writes. A row event carries only column *types* and values by
//! position: MariaDB's default `binlog_row_metadata=NO_LOG` (and MySQL's `MINIMAL`) leaves out
//! the column names and even signedness. So every table's definition is read from
//! `information_schema` (the same [`describe`] that `cutover diff` uses) and the values are
//! turned into the shared [`Value`] model by position, with the column's [`ColumnKind`]:
//! an unsigned `TINYINT` that the binlog hands over as `-1` is `255`, a `TIMESTAMP` given as
//! seconds since the epoch becomes a UTC date-time (the checker's sessions read in UTC too), an
//! `ENUM` given as an index becomes its label.
//!
//! A definition is read once per table and forgotten whenever a statement that may change
//! definitions (`CREATE`, `ALTER`, `DROP`, `RENAME`, `TRUNCATE`) passes in the stream, so the
//! next row event of the table reads the new one. Events the decoder does not know (MariaDB's
//! GTID, annotate-rows, checkpoint and GTID-list events, and anything a future server adds)
//! are skipped: they carry no row data, and the stream framing does not depend on them.
//!
//! The definition read is the table's definition now, not the one a row was written with.
//! When the reader is behind a DDL (it started or resumed from an earlier position, or lags),
//! a row written before the DDL meets the newer definition. If the source logs column names
//! (`binlog_row_metadata=FULL`: MySQL 8, MariaDB 10.5+) the row is read by name and nothing
//! is lost; without names a row whose column count differs from the definition's is not
//! guessed at (a wrong guess would check another row) but counted as not checked
//! (`skipped_rows`, with the reason), which the command's exit code reports.
//!
//! The reader never writes: its connection only registers as a replica and reads.

use std::collections::HashMap;
use std::sync::Arc;

use cutover_core::schema::{describe, Table, TableName};
use cutover_core::value::{ColumnKind, DateTime, Value};
use cutover_core::{Db, DbError};
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::{BinlogStream, BinlogStreamRequest};

use crate::position::{BinlogPos, Start};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The source cannot be read as a replica would (binlog off, not ROW, privileges).
    #[error("{0}")]
    Source(String),
    #[error("binlog stream from the source failed at {position}: {message}")]
    Stream {
        position: BinlogPos,
        message: String,
        /// Worth reopening the stream (a dropped connection), unlike a purged position or a
        /// missing privilege.
        transient: bool,
    },
}

impl ReaderError {
    pub fn is_transient(&self) -> bool {
        match self {
            ReaderError::Stream { transient, .. } => *transient,
            ReaderError::Db(DbError::Connect { .. }) => true,
            _ => false,
        }
    }
}

/// What a row change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// One changed row, as the source's binlog tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    /// The source table.
    pub table: TableName,
    pub kind: ChangeKind,
    /// The row's key (the values of [`TableSchema::key`]). An update that changes the key
    /// comes out as a delete of the old key and an insert of the new one.
    pub key: Vec<Value>,
    /// Every column, in table order: the after image (insert, update) or the before image
    /// (delete). `None` when some column is absent from the event (`binlog_row_image` other
    /// than `FULL`) or could not be decoded; the key alone is enough to check the row.
    pub image: Option<Vec<Value>>,
    /// The position just after the event.
    pub position: BinlogPos,
    /// The event's time on the source, in seconds since the epoch.
    pub timestamp: u32,
}

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

/// Which tables to read (the rest of the stream is skipped without a schema look-up).
pub type TableFilter = Box<dyn Fn(&TableName) -> bool + Send + Sync>;

/// How many warnings (rows that could not be decoded) are kept; the count stays exact.
const MAX_WARNINGS: usize = 100;

/// Reads row changes from a source's binlog.
pub struct BinlogReader {
    source: Db,
    server_id: u32,
    stream: BinlogStream,
    position: BinlogPos,
    /// The position after the last complete transaction (or DDL): where a new stream can
    /// start without missing a table map. Changes after it may be read twice; that is
    /// harmless, they merge in the pending set.
    boundary: BinlogPos,
    schemas: HashMap<TableName, Option<Arc<TableSchema>>>,
    filter: TableFilter,
    events: u64,
    /// Statements seen that may have changed definitions (the checker re-plans on a change).
    schema_changes: u64,
    skipped_rows: u64,
    warnings: Vec<String>,
    /// Whether the source checksums its events (`binlog_checksum` other than `NONE`).
    checksums: bool,
    /// Whether this stream's format description has been read: before it, the decoder does
    /// not know that events end with a checksum, so the first (artificial) rotate event's
    /// file name comes with the 4 checksum bytes attached.
    seen_format: bool,
}

impl BinlogReader {
    /// Checks that the source writes a ROW binlog, finds the start position and opens the
    /// stream as replica `server_id` (which must differ from every real replica's).
    pub async fn open(
        source: &Db,
        start: &Start,
        server_id: u32,
        filter: TableFilter,
    ) -> Result<BinlogReader, ReaderError> {
        let checksums = check_source(source).await?;
        let position = match start {
            Start::Now => current_position(source).await?,
            Start::At(p) => p.clone(),
            // The file is learned from the stream's first (rotate) event.
            Start::MariaDbGtid(_) | Start::MySqlGtidSet(_) => BinlogPos::new("", 4),
        };
        let stream = match start {
            Start::MariaDbGtid(gtid) => open_gtid_stream(source, server_id, gtid).await?,
            Start::MySqlGtidSet(set) => open_gtid_set_stream(source, server_id, set).await?,
            _ => open_stream(source, server_id, &position).await?,
        };
        Ok(BinlogReader {
            source: source.clone(),
            server_id,
            stream,
            boundary: position.clone(),
            position,
            schemas: HashMap::new(),
            filter,
            events: 0,
            schema_changes: 0,
            skipped_rows: 0,
            warnings: Vec::new(),
            checksums,
            seen_format: false,
        })
    }

    /// Opens a new stream from the last transaction boundary, after the old one failed (the
    /// source restarted, the connection dropped). Definitions are read again.
    pub async fn reopen(&mut self) -> Result<(), ReaderError> {
        let stream = open_stream(&self.source, self.server_id, &self.boundary).await?;
        self.stream = stream;
        self.position = self.boundary.clone();
        self.schemas.clear();
        self.seen_format = false;
        Ok(())
    }

    /// The position after the last complete transaction: where [`Self::reopen`] restarts.
    pub fn boundary(&self) -> &BinlogPos {
        &self.boundary
    }

    /// The position after the last event read.
    pub fn position(&self) -> &BinlogPos {
        &self.position
    }

    /// Events read so far (of every kind).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Statements read so far that may have changed a table's definition.
    pub fn schema_changes(&self) -> u64 {
        self.schema_changes
    }

    /// Rows of selected tables that could not be turned into keys, and why (the first few).
    pub fn skipped_rows(&self) -> (u64, &[String]) {
        (self.skipped_rows, &self.warnings)
    }

    /// Waits for the next event and returns the row changes it holds (none for most
    /// events). Cancel-safe only between calls: drop the reader to stop.
    pub async fn next(&mut self) -> Result<Vec<RowChange>, ReaderError> {
        let event = match self.stream.next().await {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(stream_error(&self.position, e)),
            None => {
                return Err(ReaderError::Stream {
                    position: self.position.clone(),
                    message: "the source closed the stream".into(),
                    transient: true,
                })
            }
        };
        self.events += 1;
        let header = event.header();
        let end = header.log_pos();
        let timestamp = header.timestamp();
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            // Unknown to the decoder (another flavor's event): nothing to check in it.
            Ok(None) => {
                self.advance(end);
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(ReaderError::Stream {
                    position: self.position.clone(),
                    message: format!("cannot decode an event: {e}"),
                    transient: false,
                })
            }
        };
        let mut changes = Vec::new();
        match data {
            EventData::RotateEvent(r) => {
                // Also sent first, as a "fake" rotate, naming the file the stream starts in.
                let mut name = r.name_raw();
                if self.checksums && !self.seen_format {
                    name = &name[..name.len().saturating_sub(4)];
                }
                self.position =
                    BinlogPos::new(String::from_utf8_lossy(name).into_owned(), r.position());
                self.boundary = self.position.clone();
                return Ok(changes);
            }
            EventData::XidEvent(_) => {
                self.advance(end);
                self.boundary = self.position.clone();
                return Ok(changes);
            }
            EventData::FormatDescriptionEvent(_) => self.seen_format = true,
            EventData::QueryEvent(q) => {
                let query = q.query();
                let ddl = changes_definitions(&query);
                if ddl {
                    self.schemas.clear();
                    self.schema_changes += 1;
                }
                self.advance(end);
                // DDL commits on its own; COMMIT ends a transaction of a non-XA engine.
                if ddl || query.trim().eq_ignore_ascii_case("COMMIT") {
                    self.boundary = self.position.clone();
                }
                return Ok(changes);
            }
            EventData::RowsEvent(rows) => {
                self.advance(end);
                let tme = self.stream.get_tme(rows.table_id()).cloned();
                match tme {
                    Some(tme) => self.decode(&rows, &tme, timestamp, &mut changes).await?,
                    None => self.warn(format!(
                        "a row event for table id {} came without its table map",
                        rows.table_id()
                    )),
                }
                return Ok(changes);
            }
            _ => {}
        }
        self.advance(end);
        Ok(changes)
    }

    fn advance(&mut self, end: u32) {
        // Artificial events (the fake rotate, a format description sent at the start) have
        // no position of their own.
        if end > 0 {
            self.position.pos = end as u64;
        }
    }

    fn warn(&mut self, w: String) {
        self.skipped_rows += 1;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        }
    }

    async fn schema(&mut self, name: &TableName) -> Result<Option<Arc<TableSchema>>, DbError> {
        if let Some(s) = self.schemas.get(name) {
            return Ok(s.clone());
        }
        let s = describe(&self.source, name)
            .await?
            .map(|t| Arc::new(TableSchema::new(t)));
        self.schemas.insert(name.clone(), s.clone());
        Ok(s)
    }

    async fn decode(
        &mut self,
        rows: &RowsEventData<'_>,
        tme: &TableMapEvent<'static>,
        timestamp: u32,
        out: &mut Vec<RowChange>,
    ) -> Result<(), ReaderError> {
        let name = TableName::new(tme.database_name(), tme.table_name());
        if !(self.filter)(&name) {
            return Ok(());
        }
        // Column names, when the source logs them (`binlog_row_metadata=FULL`): then a row
        // is read by name, whatever definition changes came after it was written.
        let names = event_column_names(tme);
        let count = tme.columns_count();
        let mut schema = self.schema(&name).await?;
        // A definition read before a DDL this stream has not shown yet (a restart, or a
        // change made with the binlog off): read it again once.
        if schema.as_ref().is_some_and(|s| {
            s.table.columns.len() as u64 != count || layout(s, names.as_deref(), count).is_none()
        }) {
            self.schemas.remove(&name);
            schema = self.schema(&name).await?;
        }
        let Some(schema) = schema else {
            self.warn(format!("{name}: the table no longer exists on the source"));
            return Ok(());
        };
        let Some(layout) = layout(&schema, names.as_deref(), count) else {
            // The definition changed after this row was written (the reader is behind a
            // DDL): without names, which binlog column is which cannot be known, and a guess
            // could check the wrong row. The row is counted as not checked.
            self.warn(match names {
                Some(_) => format!(
                    "{name}: a key column of the table is not in the binlog row (its \
                     definition changed after the row was written)"
                ),
                None => format!(
                    "{name}: the binlog has {count} columns, the table now has {} (its \
                     definition changed after the row was written; with \
                     binlog_row_metadata=FULL on the source such rows are read by column name)",
                    schema.table.columns.len()
                ),
            });
            return Ok(());
        };
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                ChangeKind::Insert
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                ChangeKind::Delete
            }
            _ => ChangeKind::Update,
        };
        for r in rows.rows(tme) {
            let (before, after) = match r {
                Ok(pair) => pair,
                Err(e) => {
                    self.warn(format!("{name}: cannot decode a row: {e}"));
                    // The rest of this event cannot be framed either.
                    return Ok(());
                }
            };
            let change = |kind, key, image| RowChange {
                table: name.clone(),
                kind,
                key,
                image,
                position: self.position.clone(),
                timestamp,
            };
            let before = before.map(|r| decode_row(r, &schema, &layout));
            let after = after.map(|r| decode_row(r, &schema, &layout));
            match (kind, before, after) {
                (ChangeKind::Insert, _, Some(Ok((key, image)))) => {
                    out.push(change(ChangeKind::Insert, key, image))
                }
                (ChangeKind::Delete, Some(Ok((key, image))), _) => {
                    out.push(change(ChangeKind::Delete, key, image))
                }
                (ChangeKind::Update, Some(Ok((old, old_image))), Some(Ok((new, image)))) => {
                    if crate::pending::key_id(&old) != crate::pending::key_id(&new) {
                        out.push(change(ChangeKind::Delete, old, old_image));
                        out.push(change(ChangeKind::Insert, new, image));
                    } else {
                        out.push(change(ChangeKind::Update, new, image));
                    }
                }
                (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => {
                    self.warn(format!("{name}: {e}"));
                }
                _ => self.warn(format!("{name}: a row event without the image it needs")),
            }
        }
        Ok(())
    }
}

/// The key and (when complete) the image of one row.
type Decoded = (Vec<Value>, Option<Vec<Value>>);

/// The column names a table map event carries (`binlog_row_metadata=FULL`), if it does.
fn event_column_names(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
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
fn layout(
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

fn decode_row(
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

/// One binlog cell in the value model, given the column's kind and declaration.
pub fn binlog_value(
    v: BinlogValue<'_>,
    ty: ColumnType,
    kind: &ColumnKind,
    column_type: &str,
) -> Result<Value, String> {
    use mysql_async::Value as M;
    let v = match v {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            return serde_json::Value::try_from(j)
                .map(Value::Json)
                .map_err(|e| format!("JSON: {e}"))
        }
        BinlogValue::JsonDiff(_) => {
            return Err("a partial JSON update (set binlog_row_value_options='')".into())
        }
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
            let s = std::str::from_utf8(&b).map_err(|_| "a TIMESTAMP that is not text")?;
            let (secs, micros) = s.split_once('.').unwrap_or((s, "0"));
            let secs: i64 = secs.parse().map_err(|_| format!("TIMESTAMP `{s}`"))?;
            let micros: u32 = micros.parse().map_err(|_| format!("TIMESTAMP `{s}`"))?;
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
        (kind, v) => Value::from_mysql(v, kind).map_err(|e| e.to_string()),
    }
}

/// An ENUM's label by its 1-based index (0 is the empty "error" value).
fn enum_label(i: u64, column_type: &str) -> Result<Value, String> {
    if i == 0 {
        return Ok(Value::Text(String::new()));
    }
    labels(column_type)
        .into_iter()
        .nth((i - 1) as usize)
        .map(Value::Text)
        .ok_or_else(|| format!("ENUM index {i} beyond {column_type}"))
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

/// Whether a statement in the stream may change a table's definition.
fn changes_definitions(query: &str) -> bool {
    let mut q = query.trim_start();
    // Leading comments (`/* ... */`, as tools and some servers add).
    while let Some(rest) = q.strip_prefix("/*") {
        match rest.find("*/") {
            Some(end) => q = rest[end + 2..].trim_start(),
            None => return false,
        }
    }
    let word: String = q
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(
        word.as_str(),
        "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE"
    )
}

/// Fails with the fix when the source cannot be read as a ROW binlog; tells whether its
/// events carry checksums.
async fn check_source(source: &Db) -> Result<bool, ReaderError> {
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = source
        .query(
            "SELECT CAST(@@log_bin AS CHAR), CAST(@@binlog_format AS CHAR), \
             CAST(@@binlog_checksum AS CHAR)",
        )
        .await?;
    let (log_bin, format, checksum) = rows.into_iter().next().unwrap_or((None, None, None));
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(ReaderError::Source(
            "the source does not write a binlog (log_bin is OFF): restart it with \
             --log-bin and --binlog-format=ROW (log_bin cannot be turned on while it runs) \
             so that verify can follow its changes"
                .into(),
        ));
    }
    if !format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("ROW"))
    {
        return Err(ReaderError::Source(format!(
            "the source's binlog_format is {}, not ROW: set binlog_format=ROW \
             (SET GLOBAL binlog_format='ROW' and in the server's configuration) so that its \
             binlog carries the changed rows",
            format.as_deref().unwrap_or("unknown")
        )));
    }
    Ok(!checksum
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("NONE")))
}

/// `SHOW MASTER STATUS` (MySQL 8.4 calls it `SHOW BINARY LOG STATUS`).
pub async fn current_position(source: &Db) -> Result<BinlogPos, ReaderError> {
    let rows: Vec<mysql_async::Row> = match source.query("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // Only a server that does not know the statement gets the other name; any other
        // failure (no privilege) is the answer.
        Err(DbError::Query { message, .. }) if message.starts_with("ERROR 1064 ") => {
            source.query("SHOW BINARY LOG STATUS").await?
        }
        Err(DbError::Query { role, message })
            if message.starts_with("ERROR 1227 ") || message.starts_with("ERROR 1142 ") =>
        {
            return Err(ReaderError::Source(format!(
                "{role}: {message} (the user needs REPLICATION SLAVE, and REPLICATION CLIENT \
                 or BINLOG MONITOR, to follow the binlog: GRANT REPLICATION SLAVE, \
                 REPLICATION CLIENT ON *.* TO …)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let row = rows.into_iter().next().ok_or_else(|| {
        ReaderError::Source(
            "SHOW MASTER STATUS returned nothing: the source does not write a binlog, \
             or the user lacks the REPLICATION CLIENT (BINLOG MONITOR) privilege"
                .into(),
        )
    })?;
    let file = row.get_opt::<String, _>(0).and_then(Result::ok);
    let pos = row.get_opt::<u64, _>(1).and_then(Result::ok);
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(BinlogPos::new(file, pos)),
        _ => Err(ReaderError::Source(
            "SHOW MASTER STATUS returned an unexpected row".into(),
        )),
    }
}

async fn open_stream(
    source: &Db,
    server_id: u32,
    position: &BinlogPos,
) -> Result<BinlogStream, ReaderError> {
    let conn = source.standalone().await?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(position.file.as_bytes())
        .with_pos(position.pos);
    conn.get_binlog_stream(request)
        .await
        .map_err(|e| stream_error(position, e))
}

/// A MariaDB stream from a GTID position: the server reads `@slave_connect_state` (with
/// `@mariadb_slave_capability` 4, GTID-aware) and ignores the file and offset.
async fn open_gtid_stream(
    source: &Db,
    server_id: u32,
    gtid: &str,
) -> Result<BinlogStream, ReaderError> {
    use mysql_async::prelude::Queryable;
    if source.flavor() != cutover_core::Flavor::MariaDb {
        return Err(ReaderError::Source(format!(
            "`{gtid}` is a MariaDB GTID but the source is {}; give FILE:POS",
            source.flavor().name()
        )));
    }
    let position = BinlogPos::new("", 4);
    let mut conn = source.standalone().await?;
    conn.query_drop(format!(
        "SET @mariadb_slave_capability = 4, @slave_connect_state = {}",
        cutover_core::sql::quote_str(gtid)
    ))
    .await
    .map_err(|e| stream_error(&position, e))?;
    conn.get_binlog_stream(BinlogStreamRequest::new(server_id).with_pos(4))
        .await
        .map_err(|e| stream_error(&position, e))
}

/// A MySQL source streams every transaction not in `set` (COM_BINLOG_DUMP_GTID); the file
/// is learned from the first rotate event.
async fn open_gtid_set_stream(
    source: &Db,
    server_id: u32,
    set: &str,
) -> Result<BinlogStream, ReaderError> {
    if source.flavor() == cutover_core::Flavor::MariaDb {
        return Err(ReaderError::Source(format!(
            "`{set}` is a MySQL GTID set but the source is MariaDB: give its GTID position \
             (@@gtid_binlog_pos, like 0-1-42) or FILE:POS"
        )));
    }
    let sids: Vec<mysql_async::Sid<'static>> = set
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| ReaderError::Source(format!("GTID set `{set}`: {e}")))?;
    let position = BinlogPos::new("", 4);
    let conn = source.standalone().await?;
    conn.get_binlog_stream(
        BinlogStreamRequest::new(server_id)
            .with_gtid()
            .with_gtid_set(sids)
            .with_pos(4),
    )
    .await
    .map_err(|e| stream_error(&position, e))
}

fn stream_error(position: &BinlogPos, e: mysql_async::Error) -> ReaderError {
    let mut message = e.to_string();
    let mut transient = true;
    if let mysql_async::Error::Server(s) = &e {
        transient = !matches!(s.code, 1236 | 1227 | 1045 | 1044);
        match s.code {
            1236 => {
                message.push_str(
                    " (the start position is not in the source's binlog: purged, or a wrong \
                     file or offset; see SHOW BINARY LOGS)",
                );
            }
            1227 | 1045 | 1044 => message.push_str(
                " (the user needs REPLICATION SLAVE, and REPLICATION CLIENT or \
                 BINLOG MONITOR, to read the binlog)",
            ),
            _ => {}
        }
    }
    ReaderError::Stream {
        position: position.clone(),
        message,
        transient,
    }
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

    #[test]
    fn ddl_is_told_from_other_statements() {
        assert!(changes_definitions("ALTER TABLE t ADD c INT"));
        assert!(changes_definitions("/* x */ create table t (a int)"));
        assert!(!changes_definitions("BEGIN"));
        assert!(!changes_definitions("COMMIT"));
        assert!(!changes_definitions("/* unterminated"));
        assert!(!changes_definitions(""));
    }
}
