//! What the rules look at: the answers a server gave, kept close to their raw form (variable
//! values as text, `information_schema` rows as rows), so that recorded answers of servers
//! that cannot run here (TiDB, MySQL 8, Aurora; `tests/fixtures/`) go through exactly the
//! same interpretation as live ones.
//!
//! Gathering costs a fixed number of queries whatever the number of tables: one per
//! `information_schema` view, plus one `UNION ALL` of `MAX()` index lookups per 200 integer
//! keys (to read the largest value of keys that have no AUTO_INCREMENT counter).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a server said about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerAnswers {
    /// `SELECT VERSION()`.
    pub version: String,
    /// Global variables, names in lower case.
    pub variables: BTreeMap<String, String>,
    /// `SELECT CURRENT_USER()`.
    pub current_user: Option<String>,
    /// Privileges from `SHOW GRANTS`, parsed (the lines themselves are never kept: they may
    /// hold password hashes). `None` when the server refused to say.
    pub grants: Option<Vec<Grant>>,
    /// `SHOW MASTER STATUS`; `None` when binlogging is off or the answer was refused.
    pub master_status: Option<MasterStatus>,
    /// Why `SHOW MASTER STATUS` failed, when it did.
    pub master_status_error: Option<String>,
    /// Aurora MySQL: `CALL mysql.rds_show_configuration` (name → value; NULL as `None`).
    pub aurora_configuration: BTreeMap<String, Option<String>>,
    /// TiDB: rows of `mysql.tidb` (`new_collation_enabled`, …).
    pub tidb: BTreeMap<String, String>,
    /// TiDB: `SHOW CONFIG WHERE type = 'tidb'` (name → value), when allowed.
    pub tidb_config: BTreeMap<String, String>,
}

impl ServerAnswers {
    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }
}

/// One `GRANT … ON scope` line, parsed: privilege names in upper case, and the scope
/// (`*.*`, `db.*`, `db.table`) unquoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub privileges: Vec<String>,
    pub scope: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterStatus {
    pub file: String,
    pub position: u64,
    pub binlog_do_db: String,
    pub binlog_ignore_db: String,
}

/// Rows of `information_schema` for the selected tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaAnswers {
    pub schemata: Vec<SchemaRow>,
    pub tables: Vec<TableRow>,
    pub columns: Vec<ColumnRow>,
    pub indexes: Vec<IndexRow>,
    pub foreign_keys: Vec<ForeignKeyRow>,
    pub triggers: Vec<TriggerRow>,
    pub routines: Vec<RoutineRow>,
    pub events: Vec<EventRow>,
    pub partitions: Vec<PartitionRow>,
    /// Largest and smallest values of integer keys without an AUTO_INCREMENT counter.
    pub key_values: Vec<KeyValueRow>,
    /// `SHOW CREATE TABLE` of a few tables (allocator tables on the target), by `db.table`.
    pub show_create: BTreeMap<String, String>,
    /// Tables that hold at least one row (target: tables that already exist and are not
    /// empty), as `db.table`.
    pub non_empty: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaRow {
    pub name: String,
    pub charset: String,
    pub collation: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableRow {
    pub schema: String,
    pub name: String,
    /// `BASE TABLE`, `VIEW`, `SEQUENCE`, `SYSTEM VERSIONED`.
    pub table_type: String,
    pub engine: Option<String>,
    pub rows: Option<u64>,
    pub data_length: Option<u64>,
    /// The next value of the AUTO_INCREMENT counter (read uncached).
    pub auto_increment: Option<u64>,
    pub collation: Option<String>,
    pub create_options: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColumnRow {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub position: u32,
    /// `int`, `varchar`, … (lower case).
    pub data_type: String,
    /// `int(10) unsigned`, `varchar(40)`, …
    pub column_type: String,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub octet_length: Option<u64>,
    /// `auto_increment`, `VIRTUAL GENERATED`, `STORED GENERATED`, …
    pub extra: String,
    pub nullable: bool,
}

impl ColumnRow {
    pub fn is_auto_increment(&self) -> bool {
        self.extra.to_ascii_lowercase().contains("auto_increment")
    }
    pub fn is_generated(&self) -> bool {
        let e = self.extra.to_ascii_uppercase();
        e.contains("VIRTUAL") || e.contains("STORED") || e.contains("PERSISTENT")
    }
    pub fn unsigned(&self) -> bool {
        self.column_type.to_ascii_lowercase().contains("unsigned")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexRow {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub non_unique: bool,
    pub seq: u32,
    /// `None` for an expression part (MySQL 8 functional index).
    pub column: Option<String>,
    /// `A`, `D` (descending) or `None`.
    pub collation: Option<String>,
    /// `BTREE`, `HASH`, `FULLTEXT`, `SPATIAL`, …
    pub index_type: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForeignKeyRow {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub referenced_schema: String,
    pub referenced_table: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TriggerRow {
    pub schema: String,
    pub name: String,
    pub table: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutineRow {
    pub schema: String,
    pub name: String,
    /// `PROCEDURE` or `FUNCTION`.
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventRow {
    pub schema: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionRow {
    pub schema: String,
    pub table: String,
    pub method: Option<String>,
    pub sub_method: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyValueRow {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub max: Option<i128>,
    pub min: Option<i128>,
}

/// A recorded server (`tests/fixtures/*.json`): what it said about itself and its schema,
/// with where the facts come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recorded {
    /// What the fixture stands for and the documentation it follows.
    pub about: String,
    /// The lines of `SHOW GRANTS` as the server prints them (parsed into `server.grants`).
    pub show_grants: Option<Vec<String>>,
    pub server: ServerAnswers,
    pub schema: SchemaAnswers,
}

impl Recorded {
    /// Reads a recording; the `SHOW GRANTS` lines go through the same parser as live ones.
    pub fn parse(text: &str) -> Result<Recorded, serde_json::Error> {
        let mut r: Recorded = serde_json::from_str(text)?;
        if let Some(lines) = &r.show_grants {
            r.server.grants = Some(parse_grants(lines));
        }
        Ok(r)
    }
}

/// Parses the privileges of `SHOW GRANTS` lines. Roles, `PROXY` and lines that are not a
/// privilege grant are skipped; passwords and hashes never leave this function.
pub fn parse_grants(lines: &[String]) -> Vec<Grant> {
    let mut out = Vec::new();
    for line in lines {
        let Some(rest) = strip_prefix_ci(line.trim(), "GRANT ") else {
            continue;
        };
        // The privilege list ends at ` ON ` (privilege names never contain it; column lists
        // in parentheses may hold names, so split only outside them).
        let Some(on) = find_outside_parens(rest, " ON ") else {
            continue;
        };
        let (privs, after) = (&rest[..on], &rest[on + 4..]);
        let Some(to) = find_outside_parens(after, " TO ") else {
            continue;
        };
        let scope: String = after[..to]
            .trim()
            .trim_start_matches("TABLE ")
            .chars()
            .filter(|c| *c != '`' && *c != '"')
            .collect();
        if strip_prefix_ci(privs.trim(), "PROXY").is_some() {
            continue;
        }
        let mut privileges = Vec::new();
        let mut depth = 0;
        let mut cur = String::new();
        for c in privs.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    privileges.push(cur.trim().to_ascii_uppercase());
                    cur.clear();
                    continue;
                }
                _ => {}
            }
            if depth == 0 && c != ')' {
                cur.push(c);
            }
        }
        privileges.push(cur.trim().to_ascii_uppercase());
        privileges.retain(|p| !p.is_empty());
        out.push(Grant { privileges, scope });
    }
    out
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

fn find_outside_parens(s: &str, needle: &str) -> Option<usize> {
    let (b, n) = (s.as_bytes(), needle.as_bytes());
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for i in 0..b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'`' | b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if depth == 0
                    && b.len() - i >= n.len()
                    && b[i..i + n.len()].eq_ignore_ascii_case(n) =>
                {
                    return Some(i);
                }
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grants_of_mariadb_and_mysql() {
        let g = parse_grants(&[
            "GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u1`@`%` IDENTIFIED BY PASSWORD '*7B9E'".into(),
            "GRANT SELECT, INSERT ON `x`.* TO `u1`@`%`".into(),
            "GRANT PROXY ON ''@'' TO 'root'@'localhost' WITH GRANT OPTION".into(),
            "GRANT SELECT (a, b), UPDATE (c) ON `x`.`t` TO `u1`@`%`".into(),
            "GRANT `app_role`@`%` TO `u1`@`%`".into(),
        ]);
        assert_eq!(g.len(), 3, "{g:?}");
        assert_eq!(g[0].scope, "*.*");
        assert!(g[0].privileges.contains(&"BINLOG MONITOR".to_string()));
        assert_eq!(g[1].scope, "x.*");
        assert_eq!(g[2].privileges, vec!["SELECT", "UPDATE"]);
        assert!(!format!("{g:?}").contains("7B9E"));
    }

    proptest! {
        #[test]
        fn grant_parsing_never_panics(lines in proptest::collection::vec("\\PC{0,80}", 0..4)) {
            let _ = parse_grants(&lines);
        }
    }
}
