//! A row change as the binlog tells it, and the identity of its key.

use cutover_core::schema::TableName;
use cutover_core::value::Value;

use crate::position::BinlogPos;

/// The identity of a key: its canonical encoding (the one `cutover diff` matches rows by).
pub fn key_id(key: &[Value]) -> Vec<u8> {
    cutover_rows::encode(key)
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
