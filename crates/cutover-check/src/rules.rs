//! The rules: pure functions from [`Facts`] to [`Finding`]s. Nothing here talks to a server,
//! so every rule runs the same on live answers and on recorded ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::facts::*;
use crate::finding::{Finding, ForecastLine, Severity};
use crate::forecast::{self, IdSpace, Rate, TIDB_AUTO_ID_CACHE};
use crate::profile::{parse_go_duration, parse_version, Profile};
use crate::snowflake::Layout;
use crate::time;

use Severity::{Error, Info, Warning};

/// Everything the rules look at.
#[derive(Clone, Debug)]
pub struct Facts {
    pub source: ServerAnswers,
    pub schema: SchemaAnswers,
    pub profile: Profile,
    /// A connected target's answers, and its side of the selected tables.
    pub target: Option<(ServerAnswers, SchemaAnswers)>,
    /// Consumption per `db.table.column`, and where it comes from.
    pub rates: BTreeMap<String, (Rate, &'static str)>,
}

/// Knobs of the rules.
#[derive(Clone, Debug)]
pub struct RuleOptions {
    /// `--horizon`, in seconds.
    pub horizon_secs: f64,
    /// `--tidb-restarts-per-day`.
    pub tidb_restarts_per_day: f64,
    /// `--snowflake`: tried instead of the known layouts.
    pub snowflake: Option<Layout>,
    /// `--worker-table db.t`.
    pub worker_table: Option<(String, String)>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            horizon_secs: 90.0 * 86_400.0,
            tidb_restarts_per_day: 1.0,
            snowflake: None,
            worker_table: None,
            now: time::now_secs(),
        }
    }
}

/// Throughput assumed for a full diff, to judge TiDB's GC life time (bytes per second of
/// table data; the field notes measured ~1 GB/s for one checksum pass on the sandbox, and a
/// production diff is throttled well below that).
const DIFF_BYTES_PER_SECOND: f64 = 64.0 * 1024.0 * 1024.0;

/// A table with its columns and indexes.
struct TableView<'a> {
    row: &'a TableRow,
    columns: Vec<&'a ColumnRow>,
    /// Index name → its parts in order.
    indexes: BTreeMap<&'a str, Vec<&'a IndexRow>>,
}

impl TableView<'_> {
    fn id(&self) -> String {
        format!("{}.{}", self.row.schema, self.row.name)
    }
    fn is_base(&self) -> bool {
        let t = self.row.table_type.to_ascii_uppercase();
        t == "BASE TABLE" || t == "SYSTEM VERSIONED"
    }
    fn column(&self, name: &str) -> Option<&ColumnRow> {
        self.columns.iter().copied().find(|c| c.name == name)
    }
    /// The primary key, else a unique key on NOT NULL columns: what replication can apply by.
    fn row_key(&self) -> Option<(&str, Vec<&IndexRow>)> {
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
    fn auto_increment_column(&self) -> Option<&ColumnRow> {
        self.columns.iter().copied().find(|c| c.is_auto_increment())
    }
}

fn views(a: &SchemaAnswers) -> Vec<TableView<'_>> {
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

/// Single-column integer row keys without AUTO_INCREMENT, as `(db, table, column)`: the keys
/// whose largest value is read with `MAX()`.
pub fn integer_keys_without_counter(a: &SchemaAnswers) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for v in views(a) {
        if !v.is_base() || v.auto_increment_column().is_some() {
            continue;
        }
        let Some((_, parts)) = v.row_key() else {
            continue;
        };
        if parts.len() != 1 {
            continue;
        }
        let Some(col) = parts[0].column.as_deref().and_then(|c| v.column(c)) else {
            continue;
        };
        if forecast::type_max(&col.data_type, col.unsigned()).is_some() {
            out.push((v.row.schema.clone(), v.row.name.clone(), col.name.clone()));
        }
    }
    out
}

/// Whether a table has the shape of uid-generator's `WORKER_NODE`: an AUTO_INCREMENT id
/// beside host, port and type columns.
fn is_worker_table(v: &TableView, opts: &RuleOptions) -> bool {
    if let Some((s, t)) = &opts.worker_table {
        return &v.row.schema == s && &v.row.name == t;
    }
    if v.auto_increment_column().is_none() {
        return false;
    }
    let has =
        |pred: &dyn Fn(&str) -> bool| v.columns.iter().any(|c| pred(&c.name.to_ascii_lowercase()));
    has(&|n| n.starts_with("host") || n == "ip") && has(&|n| n == "port") && has(&|n| n == "type")
}

/// The allocator tables among the selected ones (for the target's `SHOW CREATE TABLE`).
pub fn worker_tables(a: &SchemaAnswers, opts: &RuleOptions) -> Vec<(String, String)> {
    views(a)
        .iter()
        .filter(|v| v.is_base() && is_worker_table(v, opts))
        .map(|v| (v.row.schema.clone(), v.row.name.clone()))
        .collect()
}

/// AUTO_INCREMENT tables whose verdict depends on the target's AUTO_ID_CACHE: those a few
/// batches of 30,000 would exhaust within the horizon.
pub fn cache_sensitive_tables(a: &SchemaAnswers, opts: &RuleOptions) -> Vec<(String, String)> {
    let step = 1;
    views(a)
        .iter()
        .filter(|v| v.is_base())
        .filter_map(|v| {
            let c = v.auto_increment_column()?;
            let cap = forecast::type_max(&c.data_type, c.unsigned())?;
            let used = v.row.auto_increment?.saturating_sub(1);
            let space = IdSpace::new(cap, used, step);
            let batches = (opts.tidb_restarts_per_day * opts.horizon_secs / 86_400.0).max(1.0);
            (space.headroom as f64 <= TIDB_AUTO_ID_CACHE as f64 * batches)
                .then(|| (v.row.schema.clone(), v.row.name.clone()))
        })
        .collect()
}

/// Runs every rule.
pub fn evaluate(f: &Facts, opts: &RuleOptions) -> (Vec<Finding>, Vec<ForecastLine>) {
    let mut out = Vec::new();
    source_rules(f, &mut out);
    privilege_rules(f, &mut out);
    let tables = views(&f.schema);
    schema_rules(f, &tables, &mut out);
    let forecasts = id_rules(f, &tables, opts, &mut out);
    target_rules(f, &tables, opts, &mut out);
    (out, forecasts)
}

fn is_on(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.to_ascii_uppercase()).as_deref(),
        Some("ON" | "1" | "TRUE")
    )
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn source_rules(f: &Facts, out: &mut Vec<Finding>) {
    let s = &f.source;
    let lower = s.version.to_ascii_lowercase();
    let aurora = s.var("aurora_version");
    let kind = if lower.contains("mariadb") {
        "MariaDB".to_string()
    } else if let Some(a) = aurora {
        format!("Aurora MySQL {a}")
    } else {
        "MySQL".to_string()
    };
    let old = match parse_version(&s.version) {
        Some((maj, min, _)) if !lower.contains("mariadb") => (maj, min) < (5, 7),
        Some((maj, min, _)) => (maj, min) < (10, 1),
        None => false,
    };
    out.push(Finding::new(
        "source.version",
        if old { Warning } else { Info },
        None,
        format!("source is {kind}, version {}", s.version),
        if old {
            "this version is older than the replication tools (DM, DMS) support; upgrade the source first".to_string()
        } else if lower.contains("mariadb") && f.profile.is_tidb() {
            "DM supports MariaDB sources as experimental; rehearse the replication end to end".to_string()
        } else {
            String::new()
        },
    ));
    if !is_on(s.var("log_bin")) {
        out.push(Finding::new(
            "source.binlog",
            Error,
            None,
            "the binary log is disabled (log_bin = OFF): changes cannot be replicated to the target",
            if aurora.is_some() {
                "set binlog_format = ROW in the DB cluster parameter group and reboot the writer"
            } else {
                "start the server with log_bin (and a binlog_format of ROW)"
            },
        ));
    }
    if let Some(fmt) = s.var("binlog_format") {
        if !fmt.eq_ignore_ascii_case("ROW") {
            out.push(Finding::new(
                "source.binlog_format",
                Error,
                None,
                format!("binlog_format is {fmt}: row-based replication tools need ROW"),
                "SET PERSIST binlog_format = 'ROW' (MariaDB: SET GLOBAL and the config file); sessions opened earlier keep the old format until they reconnect",
            ));
        }
    }
    if let Some(img) = s.var("binlog_row_image") {
        if !img.eq_ignore_ascii_case("FULL") {
            out.push(Finding::new(
                "source.binlog_row_image",
                Error,
                None,
                format!("binlog_row_image is {img}: row events lack the full before and after images replication and verification need"),
                "set binlog_row_image = FULL globally and in the config file",
            ));
        }
    }
    if s.var("server_id").map(str::trim) == Some("0") {
        out.push(Finding::new(
            "source.server_id",
            Error,
            None,
            "server_id is 0: a replica cannot connect to this server's binlog",
            "set a unique, non-zero server_id",
        ));
    }
    if lower.contains("mariadb") {
        out.push(Finding::new(
            "source.gtid",
            Info,
            None,
            format!(
                "MariaDB GTIDs are always on (domain {}, gtid_strict_mode {})",
                s.var("gtid_domain_id").unwrap_or("0"),
                s.var("gtid_strict_mode").unwrap_or("unknown")
            ),
            "",
        ));
    } else if let Some(mode) = s.var("gtid_mode") {
        if mode.eq_ignore_ascii_case("ON") {
            out.push(Finding::new(
                "source.gtid",
                Info,
                None,
                "gtid_mode is ON",
                "",
            ));
        } else {
            out.push(Finding::new(
                "source.gtid",
                Warning,
                None,
                format!("gtid_mode is {mode}: replication must follow file positions, which do not survive a failover of the source"),
                "enable GTIDs (gtid_mode ON, enforce_gtid_consistency ON) in the documented steps before the migration",
            ));
        }
    }
    retention_rule(s, out);
    if let Some(ms) = &s.master_status {
        let split = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        let (doo, ignore) = (split(&ms.binlog_do_db), split(&ms.binlog_ignore_db));
        for schema in f.schema.schemata.iter().map(|r| &r.name) {
            let hidden = (!doo.is_empty() && !doo.contains(schema)) || ignore.contains(schema);
            if hidden {
                out.push(Finding::new(
                    "source.binlog_filter",
                    Error,
                    Some(schema.clone()),
                    format!("changes to database {schema} are not written to the binary log (binlog_do_db / binlog_ignore_db)"),
                    "remove the binlog filter for this database (it is a startup option) or leave the database out of the migration",
                ));
            }
        }
    }
    for t in &f.schema.tables {
        let n = &t.name;
        let gh = ["_gho", "_ghc", "_del"]
            .iter()
            .find(|s| n.starts_with('_') && n.ends_with(*s));
        let pt = ["_new", "_old"]
            .iter()
            .find(|s| n.starts_with('_') && n.ends_with(*s));
        if let Some(suffix) = gh.or(pt) {
            let tool = if gh.is_some() {
                "gh-ost"
            } else {
                "pt-online-schema-change"
            };
            out.push(Finding::new(
                "source.online_ddl",
                Warning,
                Some(format!("{}.{}", t.schema, n)),
                format!("table {n} looks like a {tool} table ({suffix}): an online schema change is in flight or was left behind"),
                "let the schema change finish (or drop its leftovers) before the migration starts; the ghost table's DDL replays differently on the target",
            ));
        }
    }
}

fn retention_rule(s: &ServerAnswers, out: &mut Vec<Finding>) {
    if s.var("aurora_version").is_some() {
        let hours = s
            .aurora_configuration
            .get("binlog retention hours")
            .cloned()
            .flatten();
        match hours.as_deref().and_then(|h| h.trim().parse::<f64>().ok()) {
            None => out.push(Finding::new(
                "source.binlog_retention",
                Error,
                None,
                "Aurora's binlog retention hours is NULL: binary logs are purged as soon as possible, before a replication that starts after the full load can read them",
                "CALL mysql.rds_set_configuration('binlog retention hours', 168) (or longer than dump, load and catch-up together)",
            )),
            Some(h) if h < 24.0 => out.push(Finding::new(
                "source.binlog_retention",
                Warning,
                None,
                format!("Aurora keeps binary logs for {h} hours"),
                "keep them longer than dump, load and catch-up together: CALL mysql.rds_set_configuration('binlog retention hours', 168)",
            )),
            Some(h) => out.push(Finding::new(
                "source.binlog_retention",
                Info,
                None,
                format!("Aurora keeps binary logs for {h} hours"),
                "",
            )),
        }
        return;
    }
    let secs = s
        .var("binlog_expire_logs_seconds")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .or_else(|| {
            s.var("expire_logs_days")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .map(|d| d * 86_400.0)
        });
    match secs {
        None => out.push(Finding::new(
            "source.binlog_retention",
            Info,
            None,
            "binary logs are never purged automatically",
            "watch the disk: binary logs grow until purged",
        )),
        Some(v) if v < 86_400.0 => out.push(Finding::new(
            "source.binlog_retention",
            Warning,
            None,
            format!("binary logs are purged after {}", forecast::human_duration(v)),
            "keep binary logs longer than dump, load and catch-up together (binlog_expire_logs_seconds)",
        )),
        Some(v) => out.push(Finding::new(
            "source.binlog_retention",
            Info,
            None,
            format!("binary logs are kept for {}", forecast::human_duration(v)),
            "",
        )),
    }
}

/// Privileges as sets by scope, with the flavors' names mapped to one vocabulary
/// (MariaDB shows `BINLOG MONITOR` where MySQL says `REPLICATION CLIENT`).
struct Privileges {
    global: BTreeSet<String>,
    per_db: BTreeMap<String, BTreeSet<String>>,
}

impl Privileges {
    fn from(grants: &[Grant]) -> Privileges {
        let mut p = Privileges {
            global: BTreeSet::new(),
            per_db: BTreeMap::new(),
        };
        for g in grants {
            let set = if g.scope == "*.*" {
                &mut p.global
            } else if let Some(db) = g.scope.strip_suffix(".*") {
                p.per_db.entry(db.to_string()).or_default()
            } else {
                continue;
            };
            for name in &g.privileges {
                let name = match name.as_str() {
                    "ALL PRIVILEGES" => "ALL",
                    "BINLOG MONITOR" => "REPLICATION CLIENT",
                    "SLAVE MONITOR" | "REPLICA MONITOR" => "REPLICATION CLIENT",
                    "REPLICATION REPLICA" => "REPLICATION SLAVE",
                    other => other,
                };
                set.insert(name.to_string());
            }
        }
        p
    }
    fn has_global(&self, what: &str) -> bool {
        self.global.contains("ALL") || self.global.contains(what)
    }
    fn has_on(&self, db: &str, what: &str) -> bool {
        self.has_global(what)
            || self.per_db.iter().any(|(pat, set)| {
                cutover_core::config::glob(&pat.replace('%', "*"), db)
                    && (set.contains("ALL") || set.contains(what))
            })
    }
}

fn privilege_rules(f: &Facts, out: &mut Vec<Finding>) {
    let user = f
        .source
        .current_user
        .clone()
        .unwrap_or_else(|| "this user".into());
    let Some(grants) = &f.source.grants else {
        out.push(Finding::new(
            "source.privileges",
            Warning,
            None,
            format!("the source refused SHOW GRANTS for {user}; privileges could not be checked"),
            "run the check as the user the migration will use",
        ));
        return;
    };
    let p = Privileges::from(grants);
    let schemas: Vec<&str> = f.schema.schemata.iter().map(|s| s.name.as_str()).collect();
    let no_select: Vec<&str> = schemas
        .iter()
        .copied()
        .filter(|db| !p.has_on(db, "SELECT"))
        .collect();
    if !no_select.is_empty() {
        out.push(Finding::new(
            "source.privileges",
            Error,
            None,
            format!(
                "{user} lacks SELECT on {} (needed by dump, diff and verify)",
                no_select.join(", ")
            ),
            format!("GRANT SELECT ON <db>.* TO {user}"),
        ));
    }
    let missing: Vec<&str> = ["REPLICATION SLAVE", "REPLICATION CLIENT"]
        .into_iter()
        .filter(|w| !p.has_global(w))
        .collect();
    if !missing.is_empty() {
        out.push(Finding::new(
            "source.privileges",
            Error,
            None,
            format!(
                "{user} lacks {} on *.*: the binlog cannot be read (replication, cutover verify)",
                missing.join(" and ")
            ),
            format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user} (MariaDB shows REPLICATION CLIENT as BINLOG MONITOR)"),
        ));
    }
    let mut snap = Vec::new();
    if !p.has_global("RELOAD") {
        snap.push("RELOAD");
    }
    if schemas.iter().any(|db| !p.has_on(db, "LOCK TABLES")) {
        snap.push("LOCK TABLES");
    }
    if !snap.is_empty() {
        out.push(Finding::new(
            "source.privileges",
            Warning,
            None,
            format!(
                "{user} lacks {}: consistent snapshots under a read lock (diff --consistency locked, a consistent dump) cannot be taken",
                snap.join(" and ")
            ),
            format!("GRANT {} ON *.* TO {user}, or use --consistency snapshot", snap.join(", ")),
        ));
    }
}

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

fn schema_rules(f: &Facts, tables: &[TableView], out: &mut Vec<Finding>) {
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

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Whether the target's copy of a table allocates one ID at a time (`AUTO_ID_CACHE 1`).
fn target_cache_is_one(f: &Facts, table_id: &str) -> Option<bool> {
    let (_, ts) = f.target.as_ref()?;
    let ddl = ts.show_create.get(table_id)?;
    let norm: String = ddl
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let at = norm.find("AUTO_ID_CACHE=")? + "AUTO_ID_CACHE=".len();
    let digits: String = norm[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some(digits == "1")
}

fn id_rules(
    f: &Facts,
    tables: &[TableView],
    opts: &RuleOptions,
    out: &mut Vec<Finding>,
) -> Vec<ForecastLine> {
    let mut lines = Vec::new();
    let horizon = opts.horizon_secs;
    let horizon_text = forecast::human_duration(horizon);
    let step = f
        .source
        .var("auto_increment_increment")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let tidb = f.profile.is_tidb();
    let burn = TIDB_AUTO_ID_CACHE as f64 * opts.tidb_restarts_per_day / 86_400.0;
    let now = opts.now;
    // "in 41 days (2027-01-07)"; beyond a thousand years the date says nothing more.
    let date_in = |secs: f64| {
        if secs > 1000.0 * 365.25 * 86_400.0 {
            "over 1,000 years".to_string()
        } else {
            format!(
                "{} ({})",
                forecast::human_duration(secs),
                time::format_date(now.saturating_add(secs as i64))
            )
        }
    };

    // Layout detection on BIGINT keys without a counter.
    let layouts = match &opts.snowflake {
        Some(l) => vec![l.clone()],
        None => Layout::known(),
    };
    let mut snowflake_keys = BTreeSet::new();
    let mut detected_worker_bits: Option<u32> = opts.snowflake.as_ref().map(|l| l.worker_bits);
    let columns: HashMap<(&str, &str, &str), &ColumnRow> = f
        .schema
        .columns
        .iter()
        .map(|c| ((c.schema.as_str(), c.table.as_str(), c.name.as_str()), c))
        .collect();
    let key_values: HashMap<(&str, &str), &KeyValueRow> = f
        .schema
        .key_values
        .iter()
        .map(|k| ((k.schema.as_str(), k.table.as_str()), k))
        .collect();
    for kv in &f.schema.key_values {
        let Some(col) = columns
            .get(&(kv.schema.as_str(), kv.table.as_str(), kv.column.as_str()))
            .copied()
        else {
            continue;
        };
        if col.data_type != "bigint" {
            continue;
        }
        let Some(max) = kv.max.and_then(|m| i64::try_from(m).ok()) else {
            continue;
        };
        let now_ms = now.saturating_mul(1000);
        let best = layouts
            .iter()
            .filter_map(|l| Some((l, l.decode(max)?)))
            .filter(|(_, d)| {
                d.time_ms >= now_ms - 3 * 365 * 86_400_000 && d.time_ms <= now_ms + 86_400_000
            })
            .min_by_key(|(_, d)| (d.time_ms - now_ms).abs());
        let Some((l, d)) = best else { continue };
        let cid = format!("{}.{}.{}", kv.schema, kv.table, kv.column);
        snowflake_keys.insert(cid.clone());
        if detected_worker_bits.is_none() && l.name == "uid-generator" {
            detected_worker_bits = Some(l.worker_bits);
        }
        let Some(end_ms) = l.exhausted_at_ms() else {
            continue;
        };
        let left = (end_ms - now_ms) as f64 / 1000.0;
        let sev = if left <= horizon {
            Error
        } else if d.worker as f64 >= 0.9 * l.max_worker() as f64 {
            Warning
        } else {
            Info
        };
        let ends = if left <= 0.0 {
            format!(
                "its time field ran out on {}: new IDs cannot be made (or wrap around and collide)",
                time::format_date(end_ms / 1000)
            )
        } else {
            format!(
                "its time field runs out on {} (in {})",
                time::format_date(end_ms / 1000),
                forecast::human_duration(left)
            )
        };
        out.push(Finding::new(
            "id.snowflake",
            sev,
            Some(cid.clone()),
            format!(
                "{cid} holds snowflake IDs, layout {}: the largest decodes to {} (worker {}, sequence {}); {ends}; {} worker IDs, {} IDs per worker per tick",
                l.describe(),
                time::format_instant(d.time_ms.div_euclid(1000)),
                d.worker,
                d.seq,
                group(l.max_worker() + 1),
                group(l.ids_per_tick()),
            ),
            if sev == Error {
                "move the generator to a layout with a later end (a new epoch, more time bits) before that date, and check that no two layouts can produce the same ID"
            } else if sev == Warning {
                "worker IDs are close to the layout's limit: reuse worker IDs or widen the worker field"
            } else {
                ""
            },
        ));
    }

    for v in tables.iter().filter(|v| v.is_base()) {
        let id = v.id();
        let worker = is_worker_table(v, opts);
        // The counter, or MAX() of an integer key.
        let (col, used, kind) = if let Some(c) = v.auto_increment_column() {
            let Some(next) = v.row.auto_increment else {
                continue;
            };
            (
                c,
                next.saturating_sub(1),
                if worker {
                    "worker_table"
                } else {
                    "auto_increment"
                },
            )
        } else {
            let Some(kv) = key_values
                .get(&(v.row.schema.as_str(), v.row.name.as_str()))
                .copied()
            else {
                continue;
            };
            let Some(c) = v.column(&kv.column) else {
                continue;
            };
            let Some(max) = kv.max else { continue };
            if max < 0 {
                continue;
            }
            (c, u64::try_from(max).unwrap_or(u64::MAX), "integer_key")
        };
        let cid = format!("{id}.{}", col.name);
        if snowflake_keys.contains(&cid) {
            continue;
        }
        let Some(type_cap) = forecast::type_max(&col.data_type, col.unsigned()) else {
            continue;
        };
        let worker_bits = detected_worker_bits.unwrap_or(22);
        let capacity = if worker {
            type_cap.min((1u64 << worker_bits) - 1)
        } else {
            type_cap
        };
        let space = IdSpace::new(capacity, used, if kind == "integer_key" { 1 } else { step });
        let rate = f.rates.get(&cid);
        let r_now = rate.map(|(r, _)| r.recent_per_second.unwrap_or(r.per_second));
        let eta = rate.and_then(|(r, _)| forecast::eta_linear(space.headroom, r.per_second));
        let eta_growth = rate.and_then(|(r, _)| {
            let k = r.growth_per_second?;
            forecast::eta_growth(
                space.headroom,
                r.recent_per_second.unwrap_or(r.per_second),
                k,
            )
        });
        let cache_one = target_cache_is_one(f, &id).unwrap_or(false);
        let tidb_alloc = tidb && kind != "integer_key" && !cache_one;
        let eta_tidb = if tidb_alloc {
            forecast::eta_linear(space.headroom, r_now.unwrap_or(0.0) + burn)
        } else {
            None
        };
        let mut reasons = Vec::new();
        let mut sev: Option<Severity> = None;
        let mut raise = |s: Severity, why: String| {
            sev = Some(sev.map_or(s, |x: Severity| x.min(s)));
            reasons.push(why);
        };
        if space.ratio >= 0.9 {
            raise(Error, "90 % or more of the space is used".into());
        } else if space.ratio >= 0.5 {
            raise(Warning, "half or more of the space is used".into());
        }
        if eta.is_some_and(|t| t <= horizon) || eta_growth.is_some_and(|t| t <= horizon) {
            raise(
                Error,
                format!("it runs out within the horizon of {horizon_text}"),
            );
        }
        if tidb_alloc && space.headroom < TIDB_AUTO_ID_CACHE {
            raise(
                Error,
                "on TiDB, fewer IDs are left than one AUTO_ID_CACHE batch of 30,000".into(),
            );
        } else if eta_tidb.is_some_and(|t| t <= horizon) {
            raise(Error, format!("on TiDB, with {} restart(s) a day each skipping up to 30,000 IDs, it runs out within the horizon of {horizon_text}", opts.tidb_restarts_per_day));
        } else if tidb_alloc && worker {
            raise(Warning, "on TiDB, every restart of a TiDB server (or an insert through another one) can skip up to 30,000 worker IDs".into());
        }
        if rate.is_some() && sev.is_none() {
            sev = Some(Info);
        }
        if worker && sev.is_none() {
            sev = Some(Info);
        }
        let Some(sev) = sev else { continue };
        let mut msg = if worker {
            format!(
                "{cid} allocates worker IDs (uid-generator WORKER_NODE shape): {} of {} used ({} worker bits), {} left",
                group(space.used),
                group(capacity),
                worker_bits,
                group(space.headroom)
            )
        } else {
            format!(
                "{cid} ({}{}) is at {} of {} ({:.1} % used), {} IDs left",
                col.column_type,
                if kind == "integer_key" {
                    ", largest value"
                } else {
                    " AUTO_INCREMENT"
                },
                group(space.used),
                group(capacity),
                space.ratio * 100.0,
                group(space.headroom)
            )
        };
        if let Some((r, from)) = rate {
            msg.push_str(&format!(
                "; consumption {:.3}/s ({:.0}/day, from {from})",
                r.per_second,
                r.per_second * 86_400.0
            ));
            match eta {
                Some(t) => msg.push_str(&format!(", runs out in {}", date_in(t))),
                None => msg.push_str(", not growing"),
            }
            if let (Some(t), Some(k)) = (eta_growth, r.growth_per_second) {
                msg.push_str(&format!(
                    "; with its growth of {:.1} %/day, in {}",
                    (k * 86_400.0).exp_m1() * 100.0,
                    date_in(t)
                ));
            }
        }
        if let Some(t) = eta_tidb.filter(|_| space.headroom >= TIDB_AUTO_ID_CACHE) {
            msg.push_str(&format!(
                "; on TiDB with {} restart(s)/day (30,000 IDs each), in {}",
                opts.tidb_restarts_per_day,
                date_in(t)
            ));
            if worker {
                msg.push_str(&format!(
                    ", {} restarts' worth left",
                    group(space.headroom / TIDB_AUTO_ID_CACHE)
                ));
            }
        }
        if cache_one {
            msg.push_str("; the target table allocates with AUTO_ID_CACHE 1");
        }
        if !reasons.is_empty() {
            msg.push_str(&format!(": {}", reasons.join("; ")));
        }
        let advice = if worker && tidb {
            "create the worker table on TiDB with AUTO_ID_CACHE 1 (one ID per insert, no jumps on restart), and reuse worker IDs (e.g. a fixed ID per host) instead of taking a new one at every start"
        } else if worker {
            "reuse worker IDs (e.g. a fixed ID per host, or recycle the IDs of stopped instances) instead of taking a new one at every start, or widen the worker field"
        } else if tidb_alloc
            && (space.headroom < TIDB_AUTO_ID_CACHE || eta_tidb.is_some_and(|t| t <= horizon))
        {
            "create the table on TiDB with AUTO_ID_CACHE 1 (MySQL-compatible allocation), or AUTO_RANDOM if the key need not increase; widen the column to BIGINT"
        } else if sev == Info {
            ""
        } else if kind == "integer_key" {
            "widen the column (BIGINT, UNSIGNED) before the migration, and check how the application generates the values"
        } else if tidb {
            "widen the column (BIGINT, UNSIGNED) before the migration; on TiDB create it with AUTO_ID_CACHE 1, or AUTO_RANDOM where order does not matter"
        } else {
            "widen the column (BIGINT, UNSIGNED) before the migration"
        };
        out.push(Finding::new(
            if worker {
                "id.worker_table"
            } else if kind == "integer_key" {
                "id.integer_key"
            } else {
                "id.auto_increment"
            },
            sev,
            Some(cid.clone()),
            msg,
            advice,
        ));
        lines.push(ForecastLine {
            object: cid,
            kind,
            capacity,
            used: space.used,
            headroom: space.headroom,
            ratio: space.ratio,
            rate_per_second: rate.map(|(r, _)| r.per_second),
            rate_from: rate.map(|(_, s)| *s),
            growth_per_day: rate
                .and_then(|(r, _)| r.growth_per_second)
                .map(|k| k * 86_400.0),
            eta_seconds: eta,
            eta_growth_seconds: eta_growth,
            eta_tidb_seconds: eta_tidb,
        });
    }
    lines
}

fn target_rules(f: &Facts, tables: &[TableView], opts: &RuleOptions, out: &mut Vec<Finding>) {
    let p = &f.profile;
    let Some((ta, ts)) = &f.target else {
        out.push(Finding::new(
            "target.version",
            Info,
            None,
            format!("no --target given: checked against {}", p.describe()),
            "pass --target to check the target's version, settings, privileges and existing tables",
        ));
        return;
    };
    out.push(Finding::new(
        "target.version",
        Info,
        None,
        format!("target is {} ({})", p.describe(), ta.version),
        "",
    ));
    let user = ta
        .current_user
        .clone()
        .unwrap_or_else(|| "this user".into());
    match &ta.grants {
        None => out.push(Finding::new(
            "target.privileges",
            Warning,
            None,
            format!("the target refused SHOW GRANTS for {user}; privileges could not be checked"),
            "run the check as the user the migration will write with",
        )),
        Some(g) => {
            let priv_ = Privileges::from(g);
            let needed = [
                "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX",
            ];
            let mut missing = BTreeSet::new();
            for db in f.schema.schemata.iter().map(|s| s.name.as_str()) {
                for n in needed {
                    if !priv_.has_on(db, n) {
                        missing.insert(n);
                    }
                }
            }
            if !missing.is_empty() {
                let m: Vec<&str> = missing.into_iter().collect();
                out.push(Finding::new(
                    "target.privileges",
                    Error,
                    None,
                    format!("{user} lacks {} on the migrated databases of the target: the load and replication cannot write", m.join(", ")),
                    format!("GRANT {} ON <db>.* TO {user}", m.join(", ")),
                ));
            }
        }
    }
    let non_empty: BTreeSet<&String> = ts.non_empty.iter().collect();
    for t in &ts.tables {
        let tid = format!("{}.{}", t.schema, t.name);
        if non_empty.contains(&tid) {
            out.push(Finding::new(
                "target.non_empty",
                Warning,
                Some(tid.clone()),
                format!("{tid} already exists on the target and holds rows"),
                "a full load into it conflicts with what is there: empty it (or confirm this is a resumed load)",
            ));
        }
    }
    if !p.is_tidb() {
        return;
    }
    if !p.new_collation {
        out.push(Finding::new(
            "target.collation_framework",
            Warning,
            None,
            "the TiDB cluster runs the old collation framework (new_collation_enabled = False): every _ci collation compares as binary",
            "the framework is fixed when a cluster is bootstrapped: create the cluster with new_collations_enabled_on_first_bootstrap = true, or accept exact comparison",
        ));
    }
    if let Some(mode) = ta.var("tidb_txn_mode") {
        if mode.eq_ignore_ascii_case("optimistic") {
            out.push(Finding::new(
                "target.txn_mode",
                Warning,
                None,
                "tidb_txn_mode is optimistic: concurrent writes to the same rows fail at COMMIT (error 9007, write conflict) where MySQL would wait",
                "SET GLOBAL tidb_txn_mode = 'pessimistic' (the default since v3.0.8) unless the application retries every transaction",
            ));
        }
    }
    if let Some(gc) = ta.var("tidb_gc_life_time") {
        if let Ok(secs) = parse_go_duration(gc) {
            let data: u64 = f.schema.tables.iter().filter_map(|t| t.data_length).sum();
            let expected = data as f64 / DIFF_BYTES_PER_SECOND;
            if secs < expected {
                out.push(Finding::new(
                    "target.gc_life_time",
                    Warning,
                    None,
                    format!(
                        "tidb_gc_life_time is {gc}, shorter than a full diff of the {} selected is expected to take (~{}): a diff reading TiDB at one snapshot would lose it to GC",
                        bytes(data),
                        forecast::human_duration(expected)
                    ),
                    "raise tidb_gc_life_time for the duration of the diff (and lower it afterwards)",
                ));
            }
        }
    }
    // Allocator tables that already exist on the TiDB target.
    for tid in ts.show_create.keys() {
        let Some(v) = tables.iter().find(|v| v.id() == *tid) else {
            continue;
        };
        let is_worker = is_worker_table(v, opts);
        let one = target_cache_is_one(f, tid).unwrap_or(false);
        out.push(Finding::new(
            "target.auto_id_cache",
            if one { Info } else if is_worker { Error } else { Warning },
            Some(tid.clone()),
            if one {
                format!("{tid} on the target allocates with AUTO_ID_CACHE 1: no jumps on restart")
            } else {
                format!("{tid} on the target uses TiDB's default AUTO_ID_CACHE: every TiDB server takes 30,000 IDs at a time and loses the rest on restart")
            },
            if one { "" } else { "ALTER TABLE … AUTO_ID_CACHE 1 is not possible: recreate the table with AUTO_ID_CACHE 1 and copy the rows" },
        ));
    }
}
