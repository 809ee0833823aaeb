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

mod image;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;

use cutover_core::schema::{describe, TableName};
use cutover_core::{Db, DbError};
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::BinlogStream;

use crate::change::key_id;
pub use crate::change::{ChangeKind, RowChange};
use crate::position::{BinlogPos, Start};
pub use image::{binlog_value, CellError, TableSchema};
use image::{decode_row, event_column_names, layout};
pub use stream::current_position;
use stream::{check_source, open_gtid_set_stream, open_gtid_stream, open_stream, stream_error};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The source writes no binlog.
    #[error(
        "the source does not write a binlog (log_bin is OFF): restart it with \
         --log-bin and --binlog-format=ROW (log_bin cannot be turned on while it runs) \
         so that verify can follow its changes"
    )]
    BinlogOff,
    /// The source's binlog does not carry rows.
    #[error(
        "the source's binlog_format is {format}, not ROW: set binlog_format=ROW \
         (SET GLOBAL binlog_format='ROW' and in the server's configuration) so that its \
         binlog carries the changed rows"
    )]
    NotRowFormat { format: String },
    /// The user may not read the binlog's position.
    #[error(
        "{role}: {message} (the user needs REPLICATION SLAVE, and REPLICATION CLIENT \
         or BINLOG MONITOR, to follow the binlog: GRANT REPLICATION SLAVE, \
         REPLICATION CLIENT ON *.* TO …)"
    )]
    Privileges {
        role: cutover_core::Role,
        message: String,
    },
    #[error(
        "SHOW MASTER STATUS returned nothing: the source does not write a binlog, \
         or the user lacks the REPLICATION CLIENT (BINLOG MONITOR) privilege"
    )]
    NoPosition,
    #[error("SHOW MASTER STATUS returned an unexpected row")]
    UnexpectedPosition,
    /// `--start` names another flavor's GTID than the source's.
    #[error("`{gtid}` is a MariaDB GTID but the source is {flavor}; give FILE:POS")]
    MariaDbGtidOnMySql { gtid: String, flavor: String },
    #[error(
        "`{set}` is a MySQL GTID set but the source is MariaDB: give its GTID position \
         (@@gtid_binlog_pos, like 0-1-42) or FILE:POS"
    )]
    MySqlGtidOnMariaDb { set: String },
    #[error("GTID set `{set}`: {message}")]
    GtidSet { set: String, message: String },
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
                    if key_id(&old) != key_id(&new) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
