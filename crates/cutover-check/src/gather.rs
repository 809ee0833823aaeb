//! Reading [`ServerAnswers`] and [`SchemaAnswers`] from a live server. Read-only: every
//! statement here is a `SELECT`, a `SHOW`, or a session variable of our own connection.

use cutover_core::config::Pattern;
use cutover_core::sql::{quote_ident, quote_str};
use cutover_core::{Db, DbError, Flavor};
use mysql_async::Row;

use crate::facts::*;

/// Which tables a check covers.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `--databases`: exactly these schemas (empty: every non-system schema).
    pub databases: Vec<String>,
    /// `--tables`: `db.table` patterns (empty: every table of the schemas).
    pub tables: Vec<Pattern>,
    /// `[filter] exclude` of cutover.toml: tables left out.
    pub skip: Vec<Pattern>,
}

impl Selection {
    /// The SQL condition on a schema-name column.
    fn schema_sql(&self, column: &str) -> String {
        if self.databases.is_empty() {
            let sys: Vec<String> = cutover_core::SYSTEM_SCHEMAS
                .iter()
                .map(|s| quote_str(s))
                .collect();
            format!("{column} NOT IN ({})", sys.join(", "))
        } else {
            let dbs: Vec<String> = self.databases.iter().map(|s| quote_str(s)).collect();
            format!("{column} IN ({})", dbs.join(", "))
        }
    }

    pub fn covers_schema(&self, schema: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|p| p.matches_schema(schema))
    }

    pub fn covers_table(&self, schema: &str, table: &str) -> bool {
        let name = cutover_core::TableName::new(schema, table);
        (self.tables.is_empty() || self.tables.iter().any(|p| p.matches(&name)))
            && !self.skip.iter().any(|p| p.matches(&name))
    }
}

/// Variables every rule may look at (absent ones are simply missing from the answers).
const VARIABLES: &[&str] = &[
    "version_comment",
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "server_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_strict_mode",
    "gtid_domain_id",
    "expire_logs_days",
    "binlog_expire_logs_seconds",
    "auto_increment_increment",
    "auto_increment_offset",
    "character_set_server",
    "collation_server",
    "default_collation_for_utf8mb4",
    "lower_case_table_names",
    "aurora_version",
    "tidb_txn_mode",
    "tidb_gc_life_time",
    "tidb_enable_foreign_key",
    "foreign_key_checks",
    "read_only",
];

fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::Int(n) => Some(n.to_string()),
        mysql_async::Value::UInt(n) => Some(n.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn s(row: &Row, i: usize) -> String {
    text(row, i).unwrap_or_default()
}

fn num(row: &Row, i: usize) -> Option<u64> {
    text(row, i).and_then(|t| t.trim().parse().ok())
}

/// What the server says about itself. Refusals of optional statements (no privilege for
/// `SHOW MASTER STATUS`, not an Aurora server) are recorded, not fatal.
pub async fn server_answers(db: &Db) -> Result<ServerAnswers, DbError> {
    let mut c = db.conn().await?;
    let mut a = ServerAnswers {
        version: db.version().to_string(),
        ..ServerAnswers::default()
    };
    let names: Vec<String> = VARIABLES.iter().map(|v| quote_str(v)).collect();
    let rows: Vec<Row> = c
        .query(&format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})",
            names.join(", ")
        ))
        .await?;
    for r in rows {
        a.variables.insert(s(&r, 0).to_ascii_lowercase(), s(&r, 1));
    }
    let user: Vec<Row> = c.query("SELECT CURRENT_USER()").await?;
    a.current_user = user.first().and_then(|r| text(r, 0));
    a.grants = match c.query::<Row>("SHOW GRANTS").await {
        Ok(rows) => Some(parse_grants(
            &rows.iter().map(|r| s(r, 0)).collect::<Vec<_>>(),
        )),
        Err(DbError::Interrupted) => return Err(DbError::Interrupted),
        Err(_) => None,
    };
    if db.flavor() != Flavor::TiDb {
        match c.query::<Row>("SHOW MASTER STATUS").await {
            Ok(rows) => {
                a.master_status = rows.first().map(|r| MasterStatus {
                    file: s(r, 0),
                    position: num(r, 1).unwrap_or(0),
                    binlog_do_db: s(r, 2),
                    binlog_ignore_db: s(r, 3),
                })
            }
            Err(DbError::Interrupted) => return Err(DbError::Interrupted),
            Err(e) => a.master_status_error = Some(e.to_string()),
        }
    }
    if a.variables.contains_key("aurora_version") {
        if let Ok(rows) = c.query::<Row>("CALL mysql.rds_show_configuration").await {
            for r in rows {
                a.aurora_configuration.insert(s(&r, 0), text(&r, 1));
            }
        }
    }
    if db.flavor() == Flavor::TiDb {
        if let Ok(rows) = c
            .query::<Row>("SELECT VARIABLE_NAME, VARIABLE_VALUE FROM mysql.tidb WHERE VARIABLE_NAME IN ('new_collation_enabled')")
            .await
        {
            for r in rows {
                a.tidb.insert(s(&r, 0), s(&r, 1));
            }
        }
        if let Ok(rows) = c
            .query::<Row>("SHOW CONFIG WHERE type = 'tidb' AND name IN ('performance.txn-entry-size-limit', 'performance.txn-total-size-limit')")
            .await
        {
            // Columns: Type, Instance, Name, Value.
            for r in rows {
                a.tidb_config.insert(s(&r, 2), s(&r, 3));
            }
        }
    }
    Ok(a)
}

/// Integer keys whose largest value is read with `MAX()` (they have no counter to read).
const MAX_PER_QUERY: usize = 200;

/// The `information_schema` rows of the selected tables, and the largest values of integer
/// keys without a counter.
pub async fn schema_answers(db: &Db, sel: &Selection) -> Result<SchemaAnswers, DbError> {
    // One statement per view, several at once on their own connections: on a server with
    // many tables each view costs a pass over every table's definition.
    let stored_code = db.flavor() != Flavor::TiDb;
    let schemata_sql = format!(
        "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE {}",
        sel.schema_sql("SCHEMA_NAME")
    );
    let tables_sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH, \
             AUTO_INCREMENT, TABLE_COLLATION, CREATE_OPTIONS \
             FROM information_schema.TABLES WHERE {}",
        sel.schema_sql("TABLE_SCHEMA")
    );
    let columns_sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, \
             COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, CHARACTER_OCTET_LENGTH, EXTRA, \
             IS_NULLABLE FROM information_schema.COLUMNS WHERE {}",
        sel.schema_sql("TABLE_SCHEMA")
    );
    let indexes_sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, \
             COLLATION, INDEX_TYPE FROM information_schema.STATISTICS WHERE {}",
        sel.schema_sql("TABLE_SCHEMA")
    );
    let fks_sql = format!(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, \
             REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE {}",
        sel.schema_sql("CONSTRAINT_SCHEMA")
    );
    let triggers_sql = format!(
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE \
             FROM information_schema.TRIGGERS WHERE {}",
        sel.schema_sql("TRIGGER_SCHEMA")
    );
    let routines_sql = format!(
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE \
                 FROM information_schema.ROUTINES WHERE {}",
        sel.schema_sql("ROUTINE_SCHEMA")
    );
    let events_sql = format!(
        "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE {}",
        sel.schema_sql("EVENT_SCHEMA")
    );
    let partitions_sql = format!(
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME, PARTITION_METHOD, SUBPARTITION_METHOD \
             FROM information_schema.PARTITIONS WHERE PARTITION_NAME IS NOT NULL AND {}",
        sel.schema_sql("TABLE_SCHEMA")
    );
    let (schemata, tables, columns, indexes, fks, triggers, routines, events, partitions) = tokio::try_join!(
        rows(db, &schemata_sql),
        rows(db, &tables_sql),
        rows(db, &columns_sql),
        rows(db, &indexes_sql),
        rows(db, &fks_sql),
        rows(db, &triggers_sql),
        maybe_rows(db, stored_code, &routines_sql),
        maybe_rows(db, stored_code, &events_sql),
        rows(db, &partitions_sql),
    )?;
    let mut a = SchemaAnswers::default();
    a.schemata = schemata
        .iter()
        .map(|r| SchemaRow {
            name: s(r, 0),
            charset: s(r, 1),
            collation: s(r, 2),
        })
        .filter(|r| sel.covers_schema(&r.name))
        .collect();
    a.tables = tables
        .iter()
        .map(|r| TableRow {
            schema: s(r, 0),
            name: s(r, 1),
            table_type: s(r, 2),
            engine: text(r, 3),
            rows: num(r, 4),
            data_length: num(r, 5),
            auto_increment: num(r, 6),
            collation: text(r, 7),
            create_options: text(r, 8),
        })
        .filter(|t| sel.covers_table(&t.schema, &t.name))
        .collect();
    a.columns = columns
        .iter()
        .map(|r| ColumnRow {
            schema: s(r, 0),
            table: s(r, 1),
            name: s(r, 2),
            position: num(r, 3).unwrap_or(0) as u32,
            data_type: s(r, 4).to_ascii_lowercase(),
            column_type: s(r, 5),
            charset: text(r, 6),
            collation: text(r, 7),
            octet_length: num(r, 8),
            extra: s(r, 9),
            nullable: s(r, 10).eq_ignore_ascii_case("YES"),
        })
        .filter(|c| sel.covers_table(&c.schema, &c.table))
        .collect();
    a.indexes = indexes
        .iter()
        .map(|r| IndexRow {
            schema: s(r, 0),
            table: s(r, 1),
            name: s(r, 2),
            non_unique: num(r, 3).unwrap_or(1) != 0,
            seq: num(r, 4).unwrap_or(0) as u32,
            column: text(r, 5),
            collation: text(r, 6),
            index_type: s(r, 7).to_ascii_uppercase(),
        })
        .filter(|i| sel.covers_table(&i.schema, &i.table))
        .collect();
    a.foreign_keys = fks
        .iter()
        .map(|r| ForeignKeyRow {
            schema: s(r, 0),
            table: s(r, 1),
            name: s(r, 2),
            referenced_schema: s(r, 3),
            referenced_table: s(r, 4),
        })
        .filter(|f| sel.covers_table(&f.schema, &f.table))
        .collect();
    a.triggers = triggers
        .iter()
        .map(|r| TriggerRow {
            schema: s(r, 0),
            name: s(r, 1),
            table: s(r, 2),
        })
        .filter(|t| sel.covers_table(&t.schema, &t.table))
        .collect();
    a.routines = routines
        .iter()
        .map(|r| RoutineRow {
            schema: s(r, 0),
            name: s(r, 1),
            kind: s(r, 2).to_ascii_uppercase(),
        })
        .filter(|r| sel.covers_schema(&r.schema))
        .collect();
    a.events = events
        .iter()
        .map(|r| EventRow {
            schema: s(r, 0),
            name: s(r, 1),
        })
        .filter(|e| sel.covers_schema(&e.schema))
        .collect();
    a.partitions = partitions
        .iter()
        .map(|r| PartitionRow {
            schema: s(r, 0),
            table: s(r, 1),
            method: text(r, 2),
            sub_method: text(r, 3),
        })
        .filter(|p| sel.covers_table(&p.schema, &p.table))
        .collect();
    a.key_values = key_values(db, &a).await?;
    Ok(a)
}

/// Rows of one statement on a connection of its own. MySQL 8 caches `TABLES.AUTO_INCREMENT`
/// (and sizes) for up to a day by default; the session reads them fresh. Other servers do
/// not know the variable, which is fine.
async fn rows(db: &Db, sql: &str) -> Result<Vec<Row>, DbError> {
    fresh_conn(db).await?.query(sql).await
}

/// A connection whose `information_schema` reads are not served from MySQL 8's cache.
async fn fresh_conn(db: &Db) -> Result<cutover_core::Conn, DbError> {
    let mut c = db.conn().await?;
    if db.flavor() == Flavor::MySql {
        let _ = c
            .execute("SET SESSION information_schema_stats_expiry = 0")
            .await;
    }
    Ok(c)
}

async fn maybe_rows(db: &Db, run: bool, sql: &str) -> Result<Vec<Row>, DbError> {
    if run {
        rows(db, sql).await
    } else {
        Ok(Vec::new())
    }
}

/// `MAX()`/`MIN()` of every single-column integer primary key (or NOT NULL unique key)
/// without AUTO_INCREMENT: index lookups, many per statement.
pub async fn key_values(db: &Db, a: &SchemaAnswers) -> Result<Vec<KeyValueRow>, DbError> {
    let candidates = crate::rules::integer_keys_without_counter(a);
    let mut out = Vec::new();
    for chunk in candidates.chunks(MAX_PER_QUERY) {
        let parts: Vec<String> = chunk
            .iter()
            .map(|(schema, table, column)| {
                format!(
                    "SELECT {}, {}, {}, CAST(MAX({c}) AS CHAR), CAST(MIN({c}) AS CHAR) FROM {}.{}",
                    quote_str(schema),
                    quote_str(table),
                    quote_str(column),
                    quote_ident(schema),
                    quote_ident(table),
                    c = quote_ident(column)
                )
            })
            .collect();
        let rows: Vec<Row> = db.query(&parts.join(" UNION ALL ")).await?;
        out.extend(rows.iter().map(|r| KeyValueRow {
            schema: s(r, 0),
            table: s(r, 1),
            column: s(r, 2),
            max: text(r, 3).and_then(|t| t.parse().ok()),
            min: text(r, 4).and_then(|t| t.parse().ok()),
        }));
    }
    Ok(out)
}

/// The next AUTO_INCREMENT value of the selected tables, as `db.table` → next value: the
/// second reading of `--sample`.
pub async fn counters(
    db: &Db,
    sel: &Selection,
) -> Result<std::collections::BTreeMap<String, u64>, DbError> {
    let rows: Vec<Row> = fresh_conn(db)
        .await?
        .query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE AUTO_INCREMENT IS NOT NULL AND {}",
            sel.schema_sql("TABLE_SCHEMA")
        ))
        .await?;
    Ok(rows
        .iter()
        .filter(|r| sel.covers_table(&s(r, 0), &s(r, 1)))
        .filter_map(|r| Some((format!("{}.{}", s(r, 0), s(r, 1)), num(r, 2)?)))
        .collect())
}

/// The target's side of the selected tables: which exist, which hold rows, and the
/// `SHOW CREATE TABLE` of the named ones (allocator tables, for their AUTO_ID_CACHE).
pub async fn target_tables(
    db: &Db,
    names: &[(String, String)],
    show_create_of: &[(String, String)],
) -> Result<SchemaAnswers, DbError> {
    let mut a = SchemaAnswers::default();
    if names.is_empty() {
        return Ok(a);
    }
    let mut schemas: Vec<&str> = names.iter().map(|(s, _)| s.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    let list: Vec<String> = schemas.iter().map(|s| quote_str(s)).collect();
    let rows: Vec<Row> = db
        .query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ({})",
            list.join(", ")
        ))
        .await?;
    let wanted: std::collections::HashSet<(String, String)> = names.iter().cloned().collect();
    a.tables = rows
        .iter()
        .map(|r| TableRow {
            schema: s(r, 0),
            name: s(r, 1),
            table_type: s(r, 2),
            rows: num(r, 3),
            ..TableRow::default()
        })
        .filter(|t| wanted.contains(&(t.schema.clone(), t.name.clone())))
        .collect();
    // Row estimates lag behind; an existing base table is probed for one row (batched).
    let base: Vec<&TableRow> = a
        .tables
        .iter()
        .filter(|t| t.table_type.eq_ignore_ascii_case("BASE TABLE"))
        .collect();
    for chunk in base.chunks(MAX_PER_QUERY) {
        let parts: Vec<String> = chunk
            .iter()
            .map(|t| {
                format!(
                    "SELECT {}, {} FROM (SELECT 1 FROM {}.{} LIMIT 1) AS x",
                    quote_str(&t.schema),
                    quote_str(&t.name),
                    quote_ident(&t.schema),
                    quote_ident(&t.name)
                )
            })
            .collect();
        let rows: Vec<Row> = db.query(&parts.join(" UNION ALL ")).await?;
        a.non_empty
            .extend(rows.iter().map(|r| format!("{}.{}", s(r, 0), s(r, 1))));
    }
    for (schema, table) in show_create_of {
        if !wanted.contains(&(schema.clone(), table.clone())) {
            continue;
        }
        if !a
            .tables
            .iter()
            .any(|t| &t.schema == schema && &t.name == table)
        {
            continue;
        }
        let rows: Vec<Row> = db
            .query(&format!(
                "SHOW CREATE TABLE {}.{}",
                quote_ident(schema),
                quote_ident(table)
            ))
            .await?;
        if let Some(r) = rows.first() {
            a.show_create.insert(format!("{schema}.{table}"), s(r, 1));
        }
    }
    Ok(a)
}
