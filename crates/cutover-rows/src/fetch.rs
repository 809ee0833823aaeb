//! Reading rows by key: one read for a side and a set of keys (merged shards included), and
//! its keyless counterpart, rows found by their whole image.
//!
//! Keyed rows are read with `WHERE key IN (…)` and matched on the client by the exact key
//! ([`Plan::exact_key`]), so a `_ci` collation cannot pair `'a'` with `'A'`. `cutover diff`
//! looks up a text range's unpartnered rows and rechecks its differences with it, and
//! `cutover verify` checks changed keys with it.

use std::collections::HashMap;

use cutover_core::schema::TableName;
use cutover_core::sql::quote_ident;
use cutover_core::value::{ColumnKind, Value};
use cutover_core::{Db, DbError, Role};
use mysql_async::prelude::Queryable;

use crate::fix::literal;
use crate::key::encode;
use crate::plan::{Plan, Side};

/// Why rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// A value the server sent that the column's kind cannot hold.
    #[error("{role} column `{column}`: {message}")]
    Value {
        role: Role,
        column: String,
        message: String,
    },
}

impl From<RowsError> for DbError {
    fn from(e: RowsError) -> DbError {
        match e {
            RowsError::Db(e) => e,
            RowsError::Value {
                role,
                column,
                message,
            } => DbError::Query {
                role,
                message: format!("column `{column}`: {message}"),
            },
        }
    }
}

/// A driver error while reading: `Interrupted` when the run was cancelled (a killed query
/// fails with some error of its own), else the server's error.
pub fn read_error(db: &Db, e: mysql_async::Error) -> DbError {
    if db.cancel_token().is_cancelled() {
        return DbError::Interrupted;
    }
    db.map_err(e)
}

/// One row as the server sent it, typed by one side's columns of the plan.
pub fn decode_row(
    plan: &Plan,
    side: Side,
    role: Role,
    row: mysql_async::Row,
) -> Result<Vec<Value>, RowsError> {
    let raw = row.unwrap();
    let mut out = Vec::with_capacity(raw.len());
    for (v, p) in raw.into_iter().zip(&plan.columns) {
        let col = side.column(p);
        out.push(
            Value::from_mysql(v, &col.kind).map_err(|e| RowsError::Value {
                role,
                column: col.name.clone(),
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// Rows read by key.
#[derive(Debug, Default)]
pub struct Fetched {
    /// By exact key ([`encode`]); a key with no row is absent.
    pub rows: HashMap<Vec<u8>, Vec<Value>>,
    /// Rows the server sent (a row per shard that holds the key).
    pub read: u64,
}

/// Reads the rows of `keys` (typed values of `plan.key_columns`) from one side, by exact
/// key, fresh: `side` says which side's column names to use, `tables` are the tables to
/// look in (merged shards: each of them). The rows come back by [`encode`]d key; a key with
/// no row is absent. No key, no statement.
pub async fn fetch_by_key<K: AsRef<[Value]>>(
    db: &Db,
    plan: &Plan,
    side: Side,
    tables: &[TableName],
    keys: &[K],
) -> Result<Fetched, RowsError> {
    let mut out = Fetched::default();
    if keys.is_empty() {
        return Ok(out);
    }
    let cols: Vec<String> = plan
        .columns
        .iter()
        .map(|p| quote_ident(&side.column(p).name))
        .collect();
    let key_cols: Vec<String> = plan
        .key_columns
        .iter()
        .map(|i| quote_ident(&side.column(&plan.columns[*i]).name))
        .collect();
    let tuples: Vec<String> = keys
        .iter()
        .map(|k| {
            let vals: Vec<String> = k.as_ref().iter().map(literal).collect();
            if vals.len() == 1 {
                vals[0].clone()
            } else {
                format!("({})", vals.join(", "))
            }
        })
        .collect();
    let lhs = if key_cols.len() == 1 {
        key_cols[0].clone()
    } else {
        format!("({})", key_cols.join(", "))
    };
    // Merged shards: the key is looked up in each of them.
    let sql = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {} FROM {} WHERE {lhs} IN ({})",
                cols.join(", "),
                t.quoted(),
                tuples.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut conn = db.conn().await?;
    // The binary protocol: FLOAT and DOUBLE arrive as their exact bits.
    let mut res = db
        .until_cancelled(conn.raw().exec_iter(sql.as_str(), ()))
        .await?
        .map_err(|e| read_error(db, e))?;
    while let Some(row) = db
        .until_cancelled(res.next())
        .await?
        .map_err(|e| read_error(db, e))?
    {
        out.read += 1;
        let row = decode_row(plan, side, db.role(), row)?;
        // The servers match by collation ('a' = 'A '), only the exact key counts.
        out.rows.insert(plan.exact_key(&row), row);
    }
    Ok(out)
}

/// Whether a column of this kind can find a keyless row by an exact, symmetric predicate.
pub fn image_filterable(kind: &ColumnKind) -> bool {
    !matches!(
        kind,
        ColumnKind::Float
            | ColumnKind::Double
            | ColumnKind::Json
            | ColumnKind::Bit { .. }
            | ColumnKind::Other { .. }
    )
}

/// The predicate that finds rows with this value in this column: it depends only on the
/// canonical value, so a row equal on both sides matches on both (text compares byte-exact
/// as utf8mb4 whatever the column's charset and collation; trailing spaces aside, which
/// the count by canonical encoding then tells apart). `None`: this column does not narrow.
fn image_predicate(name: &str, kind: &ColumnKind, v: &Value) -> Option<String> {
    if !image_filterable(kind) {
        return None;
    }
    Some(match v {
        Value::Null => format!("{name} IS NULL"),
        Value::Int(_) | Value::UInt(_) | Value::Decimal(_) => {
            format!("{name} = {}", literal(v))
        }
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            format!("{name} = '{v}'")
        }
        Value::Text(_) if kind.is_text_like() => format!(
            "CONVERT({name} USING utf8mb4) COLLATE utf8mb4_bin = {} COLLATE utf8mb4_bin",
            literal(v)
        ),
        Value::Bytes(_) => format!("{name} = {}", literal(v)),
        _ => return None,
    })
}

/// Reads, on one side, the rows of a keyless table that match any of `images` (whole rows,
/// in the plan's column order), and counts them by canonical encoding (with one row of
/// each, as read).
pub async fn count_images(
    db: &Db,
    plan: &Plan,
    side: Side,
    table: &TableName,
    images: &[&[Value]],
) -> Result<HashMap<Vec<u8>, (u64, Vec<Value>)>, RowsError> {
    let names: Vec<String> = plan
        .columns
        .iter()
        .map(|p| quote_ident(&side.column(p).name))
        .collect();
    let mut any = Vec::new();
    for img in images {
        let parts: Vec<String> = plan
            .columns
            .iter()
            .zip(img.iter())
            .enumerate()
            .filter_map(|(i, (p, v))| image_predicate(&names[i], &p.source.kind, v))
            .collect();
        if parts.is_empty() {
            // Cannot narrow: every row is a candidate (the plan refuses such tables).
            any.clear();
            any.push("TRUE".to_string());
            break;
        }
        any.push(format!("({})", parts.join(" AND ")));
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        names.join(", "),
        table.quoted(),
        any.join(" OR ")
    );
    let rows: Vec<mysql_async::Row> = db.query(&sql).await?;
    let mut out: HashMap<Vec<u8>, (u64, Vec<Value>)> = HashMap::new();
    for row in rows {
        let vals = decode_row(plan, side, db.role(), row)?;
        let entry = out.entry(encode(&vals)).or_insert((0, Vec::new()));
        entry.0 += 1;
        if entry.1.is_empty() {
            entry.1 = vals;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_predicates_are_exact_and_skip_inexact_types() {
        let text = ColumnKind::Text {
            charset: "latin1".into(),
        };
        let p = image_predicate("`c`", &text, &Value::Text("A".into())).unwrap_or_default();
        assert!(p.contains("COLLATE utf8mb4_bin"), "{p}");
        assert_eq!(
            image_predicate("`c`", &ColumnKind::Int { unsigned: false }, &Value::Null),
            Some("`c` IS NULL".into())
        );
        assert_eq!(
            image_predicate("`c`", &ColumnKind::Double, &Value::Double(1.5)),
            None
        );
    }
}
