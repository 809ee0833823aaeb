//! Keyed rows of one table on two servers: what `cutover diff` and `cutover verify` share.
//!
//! A [`plan::Plan`] pairs the columns of a source table with the target's and names the key
//! that identifies a row (every column of a keyless table). Rows are compared cell by cell
//! with [`cutover_core::same`], the one rule of equality; a row that differs becomes a
//! [`row_diff::RowDiff`], and [`fix`] writes the statements that would make the target's
//! row equal to the source's.
//!
//! - [`key`]: one key encoding, exact bytes to match rows by and JSON to show them.
//! - [`fetch`]: one read of rows by key for a side (merged shards included), and the
//!   keyless read by whole-row image.
//! - [`judge`]: two rows → a row difference and its fix statements (the only place one is
//!   built).
//! - [`tally`]: differences counted by kind, the first ones kept.

pub mod fetch;
pub mod filter;
pub mod fix;
pub mod judge;
pub mod key;
pub mod pair;
pub mod plan;
pub mod row_diff;
pub mod row_hash;
pub mod tally;

pub use fetch::{fetch_by_key, Fetched, RowsError};
pub use filter::ColumnFilter;
pub use judge::Judge;
pub use key::encode;
pub use plan::{ColumnPair, Mode, Plan, Side};
pub use row_diff::{ColumnDiff, DiffKind, KeyRecord, RowDiff};
pub use tally::Tally;
