//! The migration user's privileges, read from `SHOW GRANTS` on either side.

use std::collections::{BTreeMap, BTreeSet};

use super::Facts;
use crate::facts::*;
use crate::finding::{Finding, Severity};

use Severity::{Error, Warning};

/// Privileges as sets by scope, with the flavors' names mapped to one vocabulary
/// (MariaDB shows `BINLOG MONITOR` where MySQL says `REPLICATION CLIENT`).
pub(super) struct Privileges {
    global: BTreeSet<String>,
    per_db: BTreeMap<String, BTreeSet<String>>,
}

impl Privileges {
    pub(super) fn from(grants: &[Grant]) -> Privileges {
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
    pub(super) fn has_global(&self, what: &str) -> bool {
        self.global.contains("ALL") || self.global.contains(what)
    }
    pub(super) fn has_on(&self, db: &str, what: &str) -> bool {
        self.has_global(what)
            || self.per_db.iter().any(|(pat, set)| {
                cutover_core::config::glob(&pat.replace('%', "*"), db)
                    && (set.contains("ALL") || set.contains(what))
            })
    }
}

pub(super) fn privilege_rules(f: &Facts, out: &mut Vec<Finding>) {
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
