//! A table with its columns and indexes, as the rules read it.

use std::collections::{BTreeMap, HashMap};

use crate::facts::*;

/// A table with its columns and indexes.
pub(super) struct TableView<'a> {
    pub(super) row: &'a TableRow,
    pub(super) columns: Vec<&'a ColumnRow>,
    /// Index name → its parts in order.
    pub(super) indexes: BTreeMap<&'a str, Vec<&'a IndexRow>>,
}

impl TableView<'_> {
    pub(super) fn id(&self) -> String {
        format!("{}.{}", self.row.schema, self.row.name)
    }
    pub(super) fn is_base(&self) -> bool {
        let t = self.row.table_type.to_ascii_uppercase();
        t == "BASE TABLE" || t == "SYSTEM VERSIONED"
    }
    pub(super) fn column(&self, name: &str) -> Option<&ColumnRow> {
        self.columns.iter().copied().find(|c| c.name == name)
    }
    /// The primary key, else a unique key on NOT NULL columns: what replication can apply by.
    pub(super) fn row_key(&self) -> Option<(&str, Vec<&IndexRow>)> {
        if let Some(pk) = self.indexes.get("PRIMARY") {
            return Some(("PRIMARY", pk.clone()));
        }
        self.indexes
            .iter()
            .filter(|(_, parts)| parts.first().is_some_and(|p| !p.non_unique))
            .find(|(_, parts)| {
                parts.iter().all(|p| {
                    p.column
                        .as_deref()
                        .and_then(|c| self.column(c))
                        .is_some_and(|c| !c.nullable)
                })
            })
            .map(|(n, parts)| (*n, parts.clone()))
    }
    pub(super) fn auto_increment_column(&self) -> Option<&ColumnRow> {
        self.columns.iter().copied().find(|c| c.is_auto_increment())
    }
}

pub(super) fn views(a: &SchemaAnswers) -> Vec<TableView<'_>> {
    let mut by: HashMap<(&str, &str), TableView> = a
        .tables
        .iter()
        .map(|t| {
            (
                (t.schema.as_str(), t.name.as_str()),
                TableView {
                    row: t,
                    columns: Vec::new(),
                    indexes: BTreeMap::new(),
                },
            )
        })
        .collect();
    for c in &a.columns {
        if let Some(v) = by.get_mut(&(c.schema.as_str(), c.table.as_str())) {
            v.columns.push(c);
        }
    }
    for i in &a.indexes {
        if let Some(v) = by.get_mut(&(i.schema.as_str(), i.table.as_str())) {
            v.indexes.entry(i.name.as_str()).or_default().push(i);
        }
    }
    let mut out: Vec<TableView> = by.into_values().collect();
    for v in &mut out {
        v.columns.sort_by_key(|c| c.position);
        for parts in v.indexes.values_mut() {
            parts.sort_by_key(|p| p.seq);
        }
    }
    out.sort_by(|a, b| (&a.row.schema, &a.row.name).cmp(&(&b.row.schema, &b.row.name)));
    out
}
