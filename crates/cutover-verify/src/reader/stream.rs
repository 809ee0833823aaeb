//! The source as a replica sees it: the checks that it writes a ROW binlog, its current
//! position, and the binlog stream opened from a file and offset or from a GTID position.

use cutover_core::{Db, DbError};
use mysql_async::{BinlogStream, BinlogStreamRequest};

use super::ReaderError;
use crate::position::BinlogPos;

/// Fails with the fix when the source cannot be read as a ROW binlog; tells whether its
/// events carry checksums.
pub(super) async fn check_source(source: &Db) -> Result<bool, ReaderError> {
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = source
        .query(
            "SELECT CAST(@@log_bin AS CHAR), CAST(@@binlog_format AS CHAR), \
             CAST(@@binlog_checksum AS CHAR)",
        )
        .await?;
    let (log_bin, format, checksum) = rows.into_iter().next().unwrap_or((None, None, None));
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(ReaderError::BinlogOff);
    }
    if !format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("ROW"))
    {
        return Err(ReaderError::NotRowFormat {
            format: format.unwrap_or_else(|| "unknown".to_string()),
        });
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
            return Err(ReaderError::Privileges { role, message })
        }
        Err(e) => return Err(e.into()),
    };
    let row = rows.into_iter().next().ok_or(ReaderError::NoPosition)?;
    let file = row.get_opt::<String, _>(0).and_then(Result::ok);
    let pos = row.get_opt::<u64, _>(1).and_then(Result::ok);
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(BinlogPos::new(file, pos)),
        _ => Err(ReaderError::UnexpectedPosition),
    }
}

pub(super) async fn open_stream(
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
pub(super) async fn open_gtid_stream(
    source: &Db,
    server_id: u32,
    gtid: &str,
) -> Result<BinlogStream, ReaderError> {
    use mysql_async::prelude::Queryable;
    if source.flavor() != cutover_core::Flavor::MariaDb {
        return Err(ReaderError::MariaDbGtidOnMySql {
            gtid: gtid.to_string(),
            flavor: source.flavor().name().to_string(),
        });
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
pub(super) async fn open_gtid_set_stream(
    source: &Db,
    server_id: u32,
    set: &str,
) -> Result<BinlogStream, ReaderError> {
    if source.flavor() == cutover_core::Flavor::MariaDb {
        return Err(ReaderError::MySqlGtidOnMariaDb {
            set: set.to_string(),
        });
    }
    let sids: Vec<mysql_async::Sid<'static>> = set
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| ReaderError::GtidSet {
            set: set.to_string(),
            message: e.to_string(),
        })?;
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

pub(super) fn stream_error(position: &BinlogPos, e: mysql_async::Error) -> ReaderError {
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
