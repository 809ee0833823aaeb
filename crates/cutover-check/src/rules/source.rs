//! The source server's settings: version, binary log (format, row image, filters,
//! retention), server id, GTIDs, and online schema changes left in flight.

use super::{is_on, Facts};
use crate::facts::*;
use crate::finding::{Finding, Severity};
use crate::forecast;
use crate::profile::parse_version;

use Severity::{Error, Info, Warning};

pub(super) fn source_rules(f: &Facts, out: &mut Vec<Finding>) {
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
