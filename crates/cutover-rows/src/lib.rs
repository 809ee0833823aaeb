//! Keyed rows of one table on two servers: what `cutover diff` and `cutover verify` share.
//!
//! A [`plan::Plan`] pairs the columns of a source table with the target's and names the key
//! that identifies a row (every column of a keyless table). Rows are compared cell by cell
//! with [`cutover_core::same`], the one rule of equality; a row that differs becomes a
//! [`row_diff::RowDiff`], and [`fix`] writes the statements that would make the target's
//! row equal to the source's.

pub mod filter;
pub mod fix;
pub mod plan;
pub mod row_diff;

pub use filter::ColumnFilter;
pub use plan::{ColumnPair, Mode, Plan, Side};
pub use row_diff::{ColumnDiff, DiffKind, KeyRecord, RowDiff};
