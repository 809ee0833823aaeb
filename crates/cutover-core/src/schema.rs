//! Schema introspection from `information_schema`, the same on MySQL, MariaDB and TiDB.
//!
//! A [`Table`] knows its columns with everything comparison needs (type, length, precision,
//! scale, charset, collation, nullability, default, generated) and its keys. MariaDB has no
//! JSON type: it declares `JSON` as `LONGTEXT` with a `json_valid(col)` check constraint, so
//! such a column is recognised as JSON from that constraint.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::conn::{Db, DbError};
use crate::sql::{quote_ident, quote_str};
use crate::value::ColumnKind;

/// A table's name: schema (database) and table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> TableName {
        TableName {
            schema: schema.into(),
            table: table.into(),
        }
    }
    /// `` `db`.`t` `` for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `decimal`, …
    pub data_type: String,
    /// `COLUMN_TYPE`, the full declaration: `int(10) unsigned`, `enum('a','b')`, …
    pub column_type: String,
    pub kind: ColumnKind,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub max_length: Option<u64>,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
    pub datetime_precision: Option<u64>,
    pub default: Option<String>,
    /// A generated (virtual or stored) column: its value follows from others.
    pub generated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    pub name: TableName,
    pub columns: Vec<Column>,
    /// All indexes; the primary key is named `PRIMARY`.
    pub indexes: Vec<Index>,
    /// `TABLE_ROWS` from the server's statistics: an estimate, for progress only.
    pub estimated_rows: u64,
    pub charset_collation: Option<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn primary_key(&self) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == "PRIMARY")
    }

    /// The key rows are identified by: the primary key, else the first unique key whose
    /// columns are all NOT NULL (a unique key with a NULL-able column allows many NULLs, so it
    /// identifies nothing). `None` for a table without such a key.
    pub fn row_key(&self) -> Option<&Index> {
        self.primary_key().or_else(|| {
            self.indexes.iter().find(|i| {
                i.unique
                    && i.columns
                        .iter()
                        .all(|c| self.column(c).map(|c| !c.nullable).unwrap_or(false))
            })
        })
    }
}

/// Lists base tables of a schema (views are not data).
pub async fn list_tables(db: &Db, schema: &str) -> Result<Vec<String>, DbError> {
    db.query(&format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        quote_str(schema)
    ))
    .await
}

/// Lists schemas (databases).
pub async fn list_schemas(db: &Db) -> Result<Vec<String>, DbError> {
    db.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
}

type ColumnRow = (
    String,         // COLUMN_NAME
    String,         // DATA_TYPE
    String,         // COLUMN_TYPE
    String,         // IS_NULLABLE
    Option<String>, // CHARACTER_SET_NAME
    Option<String>, // COLLATION_NAME
    Option<u64>,    // CHARACTER_MAXIMUM_LENGTH
    Option<u64>,    // NUMERIC_PRECISION
    Option<u64>,    // NUMERIC_SCALE
    Option<u64>,    // DATETIME_PRECISION
    Option<String>, // COLUMN_DEFAULT
    String,         // EXTRA
);

/// Reads one table's definition. `Ok(None)` when the table does not exist.
pub async fn describe(db: &Db, name: &TableName) -> Result<Option<Table>, DbError> {
    let s = quote_str(&name.schema);
    let t = quote_str(&name.table);
    let mut conn = db.conn().await?;
    let info: Vec<(Option<u64>, Option<String>)> = conn
        .query(&format!(
            "SELECT TABLE_ROWS, TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {s} AND TABLE_NAME = {t}"
        ))
        .await?;
    let Some((rows, collation)) = info.into_iter().next() else {
        return Ok(None);
    };
    // Column-by-column `CAST`s keep the tuple types the same on every server (some report
    // lengths as signed, some as unsigned).
    let cols: Vec<ColumnRow> = conn
        .query(&format!(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
             COLLATION_NAME, CAST(CHARACTER_MAXIMUM_LENGTH AS UNSIGNED), \
             CAST(NUMERIC_PRECISION AS UNSIGNED), CAST(NUMERIC_SCALE AS UNSIGNED), \
             CAST(DATETIME_PRECISION AS UNSIGNED), COLUMN_DEFAULT, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {s} AND TABLE_NAME = {t} \
             ORDER BY ORDINAL_POSITION"
        ))
        .await?;
    let idx: Vec<(String, u64, String)> = conn
        .query(&format!(
            "SELECT INDEX_NAME, CAST(NON_UNIQUE AS UNSIGNED), COLUMN_NAME \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {s} AND TABLE_NAME = {t} \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
        ))
        .await?;
    // MariaDB's JSON columns; other servers either lack the table or the clause shape.
    let json_cols: Vec<String> = if db.flavor() == crate::conn::Flavor::MariaDb {
        let checks: Vec<(String,)> = conn
            .query(&format!(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = {s} AND TABLE_NAME = {t}"
            ))
            .await
            .unwrap_or_default();
        checks
            .into_iter()
            .filter_map(|(c,)| json_valid_column(&c))
            .collect()
    } else {
        Vec::new()
    };
    let columns = cols
        .into_iter()
        .map(|r| {
            let is_json = json_cols.iter().any(|j| j == &r.0);
            let kind = column_kind(&r.1, &r.2, r.4.as_deref(), r.7, r.8, r.9, is_json);
            Column {
                generated: r.11.to_ascii_uppercase().contains("GENERATED")
                    || r.11.to_ascii_uppercase().contains("VIRTUAL")
                    || r.11.to_ascii_uppercase().contains("PERSISTENT")
                    || r.11.to_ascii_uppercase().contains("STORED"),
                name: r.0,
                data_type: r.1,
                column_type: r.2,
                kind,
                nullable: r.3 == "YES",
                charset: r.4,
                collation: r.5,
                max_length: r.6,
                precision: r.7,
                scale: r.8,
                datetime_precision: r.9,
                default: r.10,
            }
        })
        .collect();
    let mut by_name: BTreeMap<String, Index> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (name, non_unique, col) in idx {
        let e = by_name.entry(name.clone()).or_insert_with(|| {
            order.push(name.clone());
            Index {
                name: name.clone(),
                unique: non_unique == 0,
                columns: Vec::new(),
            }
        });
        e.columns.push(col);
    }
    let indexes = order
        .into_iter()
        .filter_map(|n| by_name.remove(&n))
        .collect();
    Ok(Some(Table {
        name: name.clone(),
        columns,
        indexes,
        estimated_rows: rows.unwrap_or(0),
        charset_collation: collation,
    }))
}

/// `json_valid(`col`)` → `col`.
fn json_valid_column(clause: &str) -> Option<String> {
    let c = clause.trim();
    if !c.ends_with(')') {
        return None;
    }
    let lower = c.to_ascii_lowercase();
    let inner = lower
        .strip_prefix("json_valid(")
        .and_then(|_| c.get("json_valid(".len()..c.len().checked_sub(1)?))?;
    let inner = inner.trim();
    let name = inner
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .map(|s| s.replace("``", "`"))
        .unwrap_or_else(|| inner.to_string());
    Some(name)
}

/// Maps `information_schema` facts to a [`ColumnKind`].
pub fn column_kind(
    data_type: &str,
    column_type: &str,
    charset: Option<&str>,
    precision: Option<u64>,
    scale: Option<u64>,
    datetime_precision: Option<u64>,
    is_json: bool,
) -> ColumnKind {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let fsp = datetime_precision.unwrap_or(0) as u32;
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
            ColumnKind::Int { unsigned }
        }
        "decimal" | "numeric" => ColumnKind::Decimal {
            precision: precision.unwrap_or(10) as u32,
            scale: scale.unwrap_or(0) as u32,
        },
        "float" => ColumnKind::Float,
        "double" | "real" | "double precision" => ColumnKind::Double,
        "bit" => ColumnKind::Bit {
            width: precision.unwrap_or(1) as u32,
        },
        "year" => ColumnKind::Year,
        "date" => ColumnKind::Date,
        "datetime" => ColumnKind::DateTime { fsp },
        "timestamp" => ColumnKind::Timestamp { fsp },
        "time" => ColumnKind::Time { fsp },
        "json" => ColumnKind::Json,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            match (is_json, charset) {
                (true, _) => ColumnKind::Json,
                (false, Some("binary")) => ColumnKind::Binary,
                (false, cs) => ColumnKind::Text {
                    charset: cs.unwrap_or("utf8mb4").to_string(),
                },
            }
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Binary
        }
        "enum" => ColumnKind::Enum,
        "set" => ColumnKind::Set,
        other => ColumnKind::Other {
            data_type: other.to_string(),
        },
    }
}

/// Columns by lower-cased name, for matching the two sides.
pub fn columns_by_name(t: &Table) -> HashMap<String, &Column> {
    t.columns
        .iter()
        .map(|c| (c.name.to_ascii_lowercase(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_check_clause() {
        assert_eq!(
            json_valid_column("json_valid(`doc`)").as_deref(),
            Some("doc")
        );
        assert_eq!(
            json_valid_column("JSON_VALID(`a``b`)").as_deref(),
            Some("a`b")
        );
        assert_eq!(json_valid_column("`x` > 0"), None);
        assert_eq!(json_valid_column("json_valid("), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(
            column_kind(
                "int",
                "int(10) unsigned",
                None,
                Some(10),
                Some(0),
                None,
                false
            ),
            ColumnKind::Int { unsigned: true }
        );
        assert_eq!(
            column_kind(
                "longtext",
                "longtext",
                Some("utf8mb4"),
                None,
                None,
                None,
                true
            ),
            ColumnKind::Json
        );
        assert_eq!(
            column_kind("datetime", "datetime(6)", None, None, None, Some(6), false),
            ColumnKind::DateTime { fsp: 6 }
        );
    }
}
