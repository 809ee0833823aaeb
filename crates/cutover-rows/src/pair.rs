//! A column compared on both sides, and which side a SQL text is for.

use cutover_core::schema::Column;

/// A column compared on both sides (names may differ in case).
#[derive(Clone, Debug)]
pub struct ColumnPair {
    pub source: Column,
    pub target: Column,
}

impl ColumnPair {
    pub fn name(&self) -> &str {
        &self.source.name
    }
}

/// Which side a SQL text is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn column<'a>(&self, p: &'a ColumnPair) -> &'a Column {
        match self {
            Side::Source => &p.source,
            Side::Target => &p.target,
        }
    }
}
