//! The selected tables as the target will hold them: table types, identifiers, keys,
//! engines, indexes, column types, character sets and collations, row sizes, partitioning,
//! foreign keys and stored code.

use std::collections::BTreeSet;

use super::tables::TableView;
use super::{bytes, Facts};
use crate::facts::*;
use crate::finding::{Finding, Severity};
use crate::profile::{parse_version, Profile};

use Severity::{Error, Info, Warning};

fn text_size(c: &ColumnRow) -> u64 {
    match c.data_type.as_str() {
        "tinyint" | "year" => 1,
        "smallint" | "enum" => 2,
        "mediumint" | "date" | "time" => 3,
        "int" | "integer" | "float" | "timestamp" => 4,
        "bigint" | "double" | "real" | "datetime" | "set" | "bit" => 8,
        "decimal" | "numeric" => 32,
        // MySQL shows no length for JSON; MariaDB's JSON is a LONGTEXT.
        "json" => c.octet_length.unwrap_or(1 << 30),
        _ => c.octet_length.unwrap_or(8),
    }
}

const STRING_TYPES: &[&str] = &[
    "char",
    "varchar",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "enum",
    "set",
];

/// The collation a server gives a charset when DDL names none.
fn source_default_collation(version: &str, charset: &str) -> Option<String> {
    let mysql8 = !version.to_ascii_lowercase().contains("mariadb")
        && parse_version(version).is_some_and(|(a, _, _)| a >= 8);
    Some(
        match charset {
            "utf8mb4" if mysql8 => "utf8mb4_0900_ai_ci",
            "utf8mb4" => "utf8mb4_general_ci",
            "utf8" | "utf8mb3" => "utf8mb3_general_ci",
            "latin1" => "latin1_swedish_ci",
            _ => return None,
        }
        .to_string(),
    )
}

fn target_default_collation(p: &Profile, charset: &str) -> Option<String> {
    if p.is_tidb() {
        return Some(match charset {
            "utf8mb4" => p.default_utf8mb4_collation.clone(),
            "utf8" | "utf8mb3" => "utf8mb3_bin".into(),
            "latin1" => "latin1_bin".into(),
            "ascii" => "ascii_bin".into(),
            _ => return None,
        });
    }
    if charset == "utf8mb4" {
        return Some(p.default_utf8mb4_collation.clone());
    }
    None
}

fn same_collation(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace("utf8mb3_", "utf8_");
    norm(a) == norm(b)
}

pub(super) fn schema_rules(f: &Facts, tables: &[TableView], out: &mut Vec<Finding>) {
    let p = &f.profile;
    let tname = p.flavor.name();
    for v in tables {
        let id = v.id();
        let ttype = v.row.table_type.to_ascii_uppercase();
        if ttype == "VIEW" {
            out.push(Finding::new(
                "schema.view",
                if p.is_tidb() { Warning } else { Info },
                Some(id.clone()),
                if p.is_tidb() {
                    format!("{id} is a view; TiDB views are not updatable")
                } else {
                    format!("{id} is a view")
                },
                "create views after the tables; make sure the application does not write through it and that its definer exists on the target",
            ));
            continue;
        }
        if let Some(why) = p.unsupported_table_type(&ttype) {
            out.push(Finding::new(
                "schema.table_type",
                Error,
                Some(id.clone()),
                format!("{id} is a {ttype} table: {why}"),
                "convert it to a plain table (or leave it out) before the migration",
            ));
        }
        for name in std::iter::once(&v.row.name).chain(v.columns.iter().map(|c| &c.name)) {
            if name.chars().count() > 64 {
                out.push(Finding::new(
                    "schema.identifier_length",
                    Error,
                    Some(id.clone()),
                    format!("identifier `{name}` is longer than 64 characters"),
                    "rename it: the target refuses identifiers over 64 characters",
                ));
            }
        }
        for iname in v.indexes.keys() {
            if iname.chars().count() > 64 {
                out.push(Finding::new(
                    "schema.identifier_length",
                    Error,
                    Some(id.clone()),
                    format!("index name `{iname}` is longer than 64 characters"),
                    "rename the index",
                ));
            }
        }
        if v.is_base() && v.row_key().is_none() {
            out.push(Finding::new(
                "schema.no_key",
                Error,
                Some(id.clone()),
                format!("{id} has no primary key and no unique key on NOT NULL columns: replication cannot find the row an UPDATE or DELETE changes, and diff compares it as a multiset"),
                "add a primary key (an invisible AUTO_INCREMENT column if the application must not see it)",
            ));
        }
        if let Some(engine) = &v.row.engine {
            let e = engine.to_ascii_uppercase();
            if v.is_base()
                && ["MYISAM", "ARIA", "MEMORY", "CSV", "ARCHIVE", "MRG_MYISAM"]
                    .contains(&e.as_str())
            {
                out.push(Finding::new(
                    "schema.engine",
                    Warning,
                    Some(id.clone()),
                    format!("{id} uses the non-transactional {engine} engine: snapshots (dump, diff) cannot read it consistently"),
                    "convert it to InnoDB, or stop writes to it while it is copied and compared",
                ));
            }
        }
        for (iname, parts) in &v.indexes {
            let itype = parts.first().map(|p| p.index_type.as_str()).unwrap_or("");
            if itype == "FULLTEXT" && !p.supports_fulltext() {
                out.push(Finding::new(
                    "schema.fulltext",
                    Error,
                    Some(id.clone()),
                    format!("FULLTEXT index `{iname}` on {id}: {tname} has no FULLTEXT indexes; MATCH … AGAINST fails there"),
                    "drop the index from the target DDL and move full-text search elsewhere (a search engine, or TiDB's full-text search where available)",
                ));
            }
            if itype == "SPATIAL" && !p.supports_spatial() {
                out.push(Finding::new(
                    "schema.spatial",
                    Error,
                    Some(id.clone()),
                    format!("SPATIAL index `{iname}` on {id}: {tname} has no spatial indexes"),
                    "store coordinates as numbers (or geohashes) with ordinary indexes",
                ));
            }
            if !p.honours_descending_index()
                && parts.iter().any(|x| x.collation.as_deref() == Some("D"))
            {
                out.push(Finding::new(
                    "schema.descending_index",
                    Warning,
                    Some(id.clone()),
                    format!("index `{iname}` on {id} is descending; {tname} builds it ascending"),
                    "check queries that relied on the descending order for speed (ORDER BY … DESC can still use an ascending index in reverse)",
                ));
            }
        }
        let mut size: u64 = 0;
        let mut changed = Vec::new();
        // The distinct `source -> target` collations: the cause findings are grouped by.
        let mut changes = BTreeSet::new();
        let mut as_binary = Vec::new();
        for c in &v.columns {
            let cid = format!("{id}.{}", c.name);
            size = size.saturating_add(text_size(c));
            if let Some(why) = p.unsupported_type(&c.data_type) {
                let rule = if why.contains("spatial") {
                    "schema.spatial"
                } else {
                    "schema.column_type"
                };
                out.push(Finding::new(
                    rule,
                    Error,
                    Some(cid.clone()),
                    format!("column {cid} is {}: {why}", c.column_type),
                    "change the column type before the migration (e.g. coordinates as DOUBLE pairs, INET6/UUID as BINARY(16) or CHAR(36))",
                ));
            }
            if c.is_generated() {
                out.push(Finding::new(
                    "schema.generated_column",
                    Info,
                    Some(cid.clone()),
                    format!("column {cid} is generated ({})", c.extra),
                    "replication tools skip generated columns and the target computes them: make sure the target accepts the expression",
                ));
            }
            if let Some(cs) = &c.charset {
                if !p.supports_charset(cs) {
                    out.push(Finding::new(
                        "schema.charset",
                        Error,
                        Some(cid.clone()),
                        format!(
                            "column {cid} uses character set {cs}, which {tname} does not support"
                        ),
                        "convert the column to utf8mb4 before the migration",
                    ));
                    continue;
                }
            }
            let Some(coll) = &c.collation else { continue };
            if let Err(why) = p.supports_collation(coll) {
                out.push(Finding::new(
                    "schema.collation",
                    Error,
                    Some(cid.clone()),
                    format!("column {cid} uses collation {coll}: {why}"),
                    "change it to a collation the target has (e.g. utf8mb4_bin or utf8mb4_general_ci), knowing that comparisons change",
                ));
                continue;
            }
            if !STRING_TYPES.contains(&c.data_type.as_str()) {
                continue;
            }
            if coll.to_ascii_lowercase().contains("_ci") && !p.honours_ci() {
                as_binary.push(format!("{} ({coll})", c.name));
            } else if let (Some(cs), Some(src_default)) = (
                c.charset.as_deref(),
                c.charset
                    .as_deref()
                    .and_then(|cs| source_default_collation(&f.source.version, cs)),
            ) {
                if same_collation(coll, &src_default) {
                    if let Some(tgt_default) = target_default_collation(p, cs) {
                        if !same_collation(&src_default, &tgt_default) {
                            changed.push(format!("{} ({coll} → {tgt_default})", c.name));
                            changes.insert(format!("{coll} -> {tgt_default}"));
                        }
                    }
                }
            }
        }
        if !as_binary.is_empty() {
            out.push(Finding::new(
                "schema.collation_change",
                Warning,
                Some(id.clone()),
                format!("{id}: {} compare case- and accent-insensitively on the source but as binary on the target (new collation framework off)", as_binary.join(", ")),
                "enable the new collation framework when the TiDB cluster is created (new_collations_enabled_on_first_bootstrap), or make the application compare exactly",
            ).with_cause("_ci collations compare as binary (new collation framework off)"));
        }
        if !changed.is_empty() {
            out.push(Finding::new(
                "schema.collation_change",
                Warning,
                Some(id.clone()),
                format!("{id}: {} use the source's default collation; DDL that omits COLLATE (as SHOW CREATE TABLE does for a default) gets the target's default, which compares strings differently ('a' = 'A' and trailing spaces)", changed.join(", ")),
                "create the target tables with explicit COLLATE (or set default_collation_for_utf8mb4 on TiDB v7.4+), and check queries and unique keys that relied on case-insensitive comparison",
            ).with_cause(changes.into_iter().collect::<Vec<_>>().join(", ")));
        }
        if let Some(limit) = p.entry_size_limit {
            if v.is_base() && size > limit {
                out.push(Finding::new(
                    "schema.row_size",
                    Warning,
                    Some(id.clone()),
                    format!("a row of {id} can reach {} by its column types, more than {tname}'s entry limit of {}", bytes(size), bytes(limit)),
                    "check the largest rows (MAX(LENGTH(col))); raise txn-entry-size-limit (up to 120 MiB) or move large values out of the row",
                ));
            }
        }
    }
    let mut seen_part = BTreeSet::new();
    for part in &f.schema.partitions {
        let id = format!("{}.{}", part.schema, part.table);
        let method = part.method.clone().unwrap_or_default();
        if !seen_part.insert(id.clone()) {
            continue;
        }
        if let Err(why) = p.supports_partitioning(&method, part.sub_method.as_deref()) {
            out.push(Finding::new(
                "schema.partitioning",
                Error,
                Some(id.clone()),
                format!(
                    "{id} is partitioned by {method}{}: {why}",
                    part.sub_method
                        .as_ref()
                        .map(|s| format!(" with {s} subpartitions"))
                        .unwrap_or_default()
                ),
                "repartition it in a way the target supports (or not at all) in the target DDL",
            ));
        } else if let Some(why) = p.partitioning_caveat(&method) {
            out.push(Finding::new(
                "schema.partitioning",
                Warning,
                Some(id.clone()),
                format!("{id}: {why}"),
                "check queries that rely on partition pruning",
            ));
        }
    }
    if let Some(caveat) = p.foreign_key_caveat() {
        for fk in &f.schema.foreign_keys {
            out.push(Finding::new(
                "schema.foreign_key",
                Warning,
                Some(format!("{}.{}", fk.schema, fk.table)),
                format!("foreign key `{}` → {}.{}: {caveat}", fk.name, fk.referenced_schema, fk.referenced_table),
                "decide whether the application relies on the key (cascades, rejected writes) and test that behaviour on the target",
            ).with_cause(caveat.to_string()));
        }
    }
    if !p.runs_stored_code() {
        for t in &f.schema.triggers {
            out.push(Finding::new(
                "schema.trigger",
                Error,
                Some(format!("{}.{}", t.schema, t.name)),
                format!("trigger {} on {}.{}: {tname} does not run triggers", t.name, t.schema, t.table),
                "move the trigger's logic into the application (or a CDC consumer) before the cutover",
            ));
        }
        for r in &f.schema.routines {
            out.push(Finding::new(
                "schema.routine",
                Error,
                Some(format!("{}.{}", r.schema, r.name)),
                format!(
                    "stored {} {}.{}: {tname} has no stored procedures or functions",
                    r.kind.to_ascii_lowercase(),
                    r.schema,
                    r.name
                ),
                "move it into the application; calls to it fail on the target",
            ));
        }
        for e in &f.schema.events {
            out.push(Finding::new(
                "schema.event",
                Error,
                Some(format!("{}.{}", e.schema, e.name)),
                format!(
                    "event {}.{}: {tname} has no event scheduler",
                    e.schema, e.name
                ),
                "run the job from an external scheduler (cron, the application)",
            ));
        }
    }
}
