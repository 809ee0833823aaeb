//! `--heartbeat DB.TABLE`: how verify learns the replicator's progress from any replicator.
//!
//! Once a second verify reads the source's binlog position and then writes it into one row
//! of the heartbeat table on the source (keyed by the source's `@@server_id`). The replicator
//! carries the row to the target like any other; a replicator applies changes in commit
//! order, so when the target's row says position P, everything the source committed before P
//! has been applied there. The position is read *before* the write, so it never claims more.
//!
//! This is the only write `cutover verify` can make, and only when the user names the table
//! (ARCHITECTURE.md lists it among the writers). The table is created when missing.

use std::time::Duration;

use cutover_core::schema::TableName;
use cutover_core::{Db, DbError};
use tokio_util::sync::CancellationToken;

use crate::reader::{current_position, ReaderError};

/// Why one heartbeat was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeartbeatError {
    /// The source's position could not be read.
    #[error(transparent)]
    Position(#[from] ReaderError),
    /// The row could not be written.
    #[error(transparent)]
    Write(#[from] DbError),
}

/// Creates the heartbeat table on the source when it does not exist.
pub async fn create(writer: &Db, table: &TableName) -> Result<(), DbError> {
    writer
        .execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (\
               server_id INT UNSIGNED NOT NULL PRIMARY KEY, \
               source_file VARCHAR(512) NOT NULL, \
               source_pos BIGINT UNSIGNED NOT NULL, \
               beats BIGINT UNSIGNED NOT NULL, \
               written_at DATETIME(6) NOT NULL)",
            table.quoted()
        ))
        .await
}

/// One heartbeat: the source's position, then the row that carries it.
pub async fn beat_once(writer: &Db, table: &TableName) -> Result<(), HeartbeatError> {
    let at = current_position(writer).await?;
    let file = at.file.replace('\\', "\\\\").replace('\'', "''");
    writer
        .execute(&format!(
            "INSERT INTO {t} (server_id, source_file, source_pos, beats, written_at) \
             VALUES (@@server_id, '{file}', {pos}, 1, NOW(6)) \
             ON DUPLICATE KEY UPDATE source_file = VALUES(source_file), \
             source_pos = VALUES(source_pos), beats = beats + 1, written_at = NOW(6)",
            t = table.quoted(),
            pos = at.pos
        ))
        .await?;
    Ok(())
}

/// Beats every second until cancelled. A failing beat is retried on the next one (the
/// checker then just sees no progress: nothing is confirmed on stale news); the first
/// failure is told to `observer`.
pub async fn beat(
    writer: Db,
    table: TableName,
    cancel: CancellationToken,
    observer: Option<std::sync::Arc<dyn crate::Observer>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = beat_once(&writer, &table).await {
                    if !warned {
                        if let Some(o) = &observer {
                            o.warning(&format!("heartbeat to {table} failed (retrying every second): {e}"));
                        }
                        warned = true;
                    }
                }
            }
        }
    }
}
