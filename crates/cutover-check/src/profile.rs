//! What a target flavor accepts, from its documentation, and what a connected target says
//! about itself. Without `--target`, the profile of `--target-flavor` at its current version
//! is assumed (and said so in the report).
//!
//! TiDB facts: https://docs.pingcap.com/tidb/stable/mysql-compatibility,
//! https://docs.pingcap.com/tidb/stable/character-set-and-collation,
//! https://docs.pingcap.com/tidb/stable/partitioned-table,
//! https://docs.pingcap.com/tidb/stable/auto-increment,
//! https://docs.pingcap.com/tidb/stable/foreign-key.

use serde::Serialize;

use crate::facts::ServerAnswers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetFlavor {
    TiDb,
    MySql,
    MariaDb,
}

/// `--target-flavor` named none of the flavors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown target flavor `{0}` (expected tidb, mysql or mariadb)")]
pub struct UnknownTargetFlavor(pub String);

/// A duration that is not in Go's notation (`tidb_gc_life_time` as TiDB prints it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration like 10m0s")]
pub struct NotAGoDuration(pub String);

/// Why the target cannot create a collation or a partitioning method: the reason a
/// `schema.collation` or `schema.partitioning` finding gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    #[error("TiDB supports it from v7.4")]
    TidbFromV74,
    #[error("TiDB does not support this collation")]
    TidbCollation,
    #[error("a MariaDB-only collation")]
    MariadbOnlyCollation,
    #[error("MySQL 8's 0900 collations exist in MariaDB only from 11.4 (as aliases)")]
    Mysql0900Collation,
    #[error("SYSTEM_TIME partitioning (system-versioned tables) is MariaDB-only")]
    SystemTimePartitioning,
    #[error("TiDB does not support subpartitions")]
    TidbSubpartitions,
    /// The method, upper case.
    #[error("TiDB does not support {0} partitioning")]
    TidbPartitioning(String),
}

impl TargetFlavor {
    /// `--target-flavor`.
    pub fn parse(s: &str) -> Result<TargetFlavor, UnknownTargetFlavor> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tidb" => Ok(TargetFlavor::TiDb),
            "mysql" => Ok(TargetFlavor::MySql),
            "mariadb" => Ok(TargetFlavor::MariaDb),
            other => Err(UnknownTargetFlavor(other.to_string())),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TargetFlavor::TiDb => "TiDB",
            TargetFlavor::MySql => "MySQL",
            TargetFlavor::MariaDb => "MariaDB",
        }
    }
    pub fn from_core(f: cutover_core::Flavor) -> TargetFlavor {
        match f {
            cutover_core::Flavor::TiDb => TargetFlavor::TiDb,
            cutover_core::Flavor::MySql => TargetFlavor::MySql,
            cutover_core::Flavor::MariaDb => TargetFlavor::MariaDb,
        }
    }
}

/// `major.minor.patch` of a version string: TiDB's own (`8.0.11-TiDB-v7.5.1` → 7.5.1),
/// else the leading one (`10.11.19-MariaDB-0+deb12u1` → 10.11.19).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let tail = match v.find("-TiDB-v").or_else(|| v.find("-tidb-v")) {
        Some(i) => &v[i + 7..],
        None => v,
    };
    let mut it = tail
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().ok());
    let major = it.next()??;
    let minor = it.next().flatten().unwrap_or(0);
    let patch = it.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// The target as the rules see it.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub flavor: TargetFlavor,
    /// `None` when no target is connected: the current release is assumed.
    pub version: Option<(u32, u32, u32)>,
    /// TiDB: the new collation framework (`mysql.tidb.new_collation_enabled`); assumed on
    /// (the default of clusters bootstrapped since v6.0) when unknown.
    pub new_collation: bool,
    /// TiDB: `performance.txn-entry-size-limit` in bytes (default 6 MiB).
    pub entry_size_limit: Option<u64>,
    /// TiDB `default_collation_for_utf8mb4` (v7.4+), else the flavor's default.
    pub default_utf8mb4_collation: String,
    /// TiDB: `tidb_txn_mode` is `optimistic` (the default since v3.0.8 is pessimistic), so
    /// a session's transactions are optimistic unless it says otherwise.
    pub optimistic: bool,
    /// Connected (facts read) or assumed from the flavor.
    pub connected: bool,
}

const MIB: u64 = 1024 * 1024;

impl Profile {
    /// The documented defaults of a flavor's current release.
    pub fn assumed(flavor: TargetFlavor) -> Profile {
        Profile {
            flavor,
            version: None,
            new_collation: true,
            entry_size_limit: (flavor == TargetFlavor::TiDb).then_some(6 * MIB),
            default_utf8mb4_collation: match flavor {
                TargetFlavor::TiDb => "utf8mb4_bin",
                TargetFlavor::MySql => "utf8mb4_0900_ai_ci",
                TargetFlavor::MariaDb => "utf8mb4_general_ci",
            }
            .to_string(),
            optimistic: false,
            connected: false,
        }
    }

    /// The profile of a connected target.
    pub fn from_answers(a: &ServerAnswers) -> Profile {
        let lower = a.version.to_ascii_lowercase();
        let flavor = if lower.contains("tidb") {
            TargetFlavor::TiDb
        } else if lower.contains("mariadb") {
            TargetFlavor::MariaDb
        } else {
            TargetFlavor::MySql
        };
        let mut p = Profile::assumed(flavor);
        p.version = parse_version(&a.version);
        p.connected = true;
        if flavor == TargetFlavor::TiDb {
            if let Some(v) = a.tidb.get("new_collation_enabled") {
                p.new_collation = v.eq_ignore_ascii_case("true");
            }
            p.optimistic = a
                .var("tidb_txn_mode")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("optimistic"));
            if let Some(v) = a.tidb_config.get("performance.txn-entry-size-limit") {
                if let Ok(n) = v.trim().parse::<u64>() {
                    p.entry_size_limit = Some(n);
                }
            }
        }
        if let Some(c) = a
            .var("default_collation_for_utf8mb4")
            .filter(|c| !c.is_empty())
        {
            p.default_utf8mb4_collation = c.to_string();
        }
        p
    }

    /// The target is at least version `v` (an unknown version is the current release).
    pub fn at_least(&self, v: (u32, u32)) -> bool {
        match self.version {
            None => true,
            Some((a, b, _)) => (a, b) >= v,
        }
    }

    pub fn describe(&self) -> String {
        match self.version {
            Some((a, b, c)) => format!("{} {a}.{b}.{c}", self.flavor.name()),
            None => format!("{} (assumed: current release)", self.flavor.name()),
        }
    }

    pub fn is_tidb(&self) -> bool {
        self.flavor == TargetFlavor::TiDb
    }

    /// Triggers, stored procedures and functions, events: not on TiDB.
    pub fn runs_stored_code(&self) -> bool {
        !self.is_tidb()
    }

    pub fn supports_fulltext(&self) -> bool {
        !self.is_tidb()
    }

    pub fn supports_spatial(&self) -> bool {
        !self.is_tidb()
    }

    /// TiDB parses `DESC` in an index and builds it ascending.
    pub fn honours_descending_index(&self) -> bool {
        !self.is_tidb()
    }

    /// How foreign keys behave: `None` when they are enforced as on MySQL.
    pub fn foreign_key_caveat(&self) -> Option<String> {
        if !self.is_tidb() {
            return None;
        }
        Some(match self.version {
            Some(_) if !self.at_least((6, 6)) => {
                "this TiDB version parses FOREIGN KEY but does not enforce it".to_string()
            }
            Some(_) if !self.at_least((8, 5)) => {
                "TiDB enforces foreign keys from v6.6 as an experimental feature (GA in v8.5); DM and Lightning load with foreign_key_checks off".to_string()
            }
            _ => "TiDB enforces foreign keys (GA in v8.5), but DM and Lightning load with foreign_key_checks off and cascades are not replicated as separate row events".to_string(),
        })
    }

    pub fn supports_charset(&self, cs: &str) -> bool {
        let cs = cs.to_ascii_lowercase();
        match self.flavor {
            TargetFlavor::TiDb => matches!(
                cs.as_str(),
                "ascii" | "latin1" | "binary" | "utf8" | "utf8mb3" | "utf8mb4" | "gbk"
            ),
            _ => true,
        }
    }

    /// `Err(reason)` when the target cannot create a column of this collation.
    pub fn supports_collation(&self, coll: &str) -> Result<(), Unsupported> {
        let c = coll.to_ascii_lowercase();
        match self.flavor {
            TargetFlavor::TiDb => {
                let always = [
                    "utf8mb4_bin",
                    "utf8_bin",
                    "utf8mb3_bin",
                    "ascii_bin",
                    "latin1_bin",
                    "binary",
                    "gbk_bin",
                ];
                let new_framework = [
                    "utf8mb4_general_ci",
                    "utf8mb4_unicode_ci",
                    "utf8_general_ci",
                    "utf8mb3_general_ci",
                    "utf8_unicode_ci",
                    "utf8mb3_unicode_ci",
                    "gbk_chinese_ci",
                ];
                let v74 = ["utf8mb4_0900_ai_ci", "utf8mb4_0900_bin"];
                if always.contains(&c.as_str()) || new_framework.contains(&c.as_str()) {
                    Ok(())
                } else if v74.contains(&c.as_str()) {
                    if self.at_least((7, 4)) {
                        Ok(())
                    } else {
                        Err(Unsupported::TidbFromV74)
                    }
                } else {
                    Err(Unsupported::TidbCollation)
                }
            }
            TargetFlavor::MySql => {
                if c.contains("uca1400") || c.contains("_nopad_") || c.ends_with("_nopad_bin") {
                    Err(Unsupported::MariadbOnlyCollation)
                } else {
                    Ok(())
                }
            }
            TargetFlavor::MariaDb => {
                if c.contains("_0900_") && !self.at_least((11, 4)) {
                    Err(Unsupported::Mysql0900Collation)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether a `_ci` collation compares case-insensitively on the target.
    pub fn honours_ci(&self) -> bool {
        !self.is_tidb() || self.new_collation
    }

    /// `Err(reason)` when a partitioning method cannot be created.
    pub fn supports_partitioning(
        &self,
        method: &str,
        sub: Option<&str>,
    ) -> Result<(), Unsupported> {
        let m = method.to_ascii_uppercase();
        if m.contains("SYSTEM_TIME") && self.flavor != TargetFlavor::MariaDb {
            return Err(Unsupported::SystemTimePartitioning);
        }
        if self.is_tidb() {
            if sub.is_some() {
                return Err(Unsupported::TidbSubpartitions);
            }
            let ok = [
                "RANGE",
                "RANGE COLUMNS",
                "LIST",
                "LIST COLUMNS",
                "HASH",
                "KEY",
                "LINEAR HASH",
                "LINEAR KEY",
            ];
            if !ok.contains(&m.as_str()) {
                return Err(Unsupported::TidbPartitioning(m));
            }
        }
        Ok(())
    }

    /// A partitioning method the target accepts but treats differently.
    pub fn partitioning_caveat(&self, method: &str) -> Option<String> {
        let m = method.to_ascii_uppercase();
        (self.is_tidb() && m.starts_with("LINEAR "))
            .then(|| format!("TiDB accepts {m} but distributes rows as if LINEAR were absent"))
    }

    /// Table types the target cannot create.
    pub fn unsupported_table_type(&self, table_type: &str) -> Option<String> {
        let t = table_type.to_ascii_uppercase();
        match (self.flavor, t.as_str()) {
            (TargetFlavor::TiDb | TargetFlavor::MySql, "SYSTEM VERSIONED") => Some(format!(
                "{} has no system-versioned tables",
                self.flavor.name()
            )),
            (TargetFlavor::MySql, "SEQUENCE") => Some("MySQL has no sequences".into()),
            _ => None,
        }
    }

    /// Column types the target cannot create.
    pub fn unsupported_type(&self, data_type: &str) -> Option<String> {
        let t = data_type.to_ascii_lowercase();
        let spatial = [
            "geometry",
            "point",
            "linestring",
            "polygon",
            "multipoint",
            "multilinestring",
            "multipolygon",
            "geometrycollection",
        ];
        if spatial.contains(&t.as_str()) && !self.supports_spatial() {
            return Some(format!("{} has no spatial types", self.flavor.name()));
        }
        if matches!(t.as_str(), "inet6" | "inet4" | "uuid") && self.flavor != TargetFlavor::MariaDb
        {
            return Some(format!("`{t}` is a MariaDB-only type"));
        }
        None
    }
}

/// A Go duration as TiDB prints `tidb_gc_life_time` (`10m0s`, `24h0m0s`, `1h30m`, `500ms`),
/// in seconds.
pub fn parse_go_duration(s: &str) -> Result<f64, NotAGoDuration> {
    let bad = || NotAGoDuration(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("8.0.11-TiDB-v7.5.1"), Some((7, 5, 1)));
        assert_eq!(
            parse_version("10.11.19-MariaDB-0+deb12u1"),
            Some((10, 11, 19))
        );
        assert_eq!(parse_version("8.0.36"), Some((8, 0, 36)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m0s").unwrap(), 600.0);
        assert_eq!(parse_go_duration("24h0m0s").unwrap(), 86_400.0);
        assert_eq!(parse_go_duration("1h30m").unwrap(), 5400.0);
        assert!(parse_go_duration("10 minutes").is_err());
        assert!(parse_go_duration("m").is_err());
    }

    #[test]
    fn flavors() {
        assert_eq!(TargetFlavor::parse("TiDB").unwrap(), TargetFlavor::TiDb);
        assert!(TargetFlavor::parse("oracle")
            .unwrap_err()
            .to_string()
            .contains("oracle"));
    }

    proptest! {
        #[test]
        fn go_duration_never_panics(s in "\\PC{0,20}") {
            let _ = parse_go_duration(&s);
        }

        #[test]
        fn go_duration_reads_what_go_prints(h in 0u32..1000, m in 0u32..60, sec in 0u32..60) {
            let text = format!("{h}h{m}m{sec}s");
            prop_assert_eq!(parse_go_duration(&text).unwrap(), f64::from(h * 3600 + m * 60 + sec));
        }

        #[test]
        fn version_never_panics(s in "\\PC{0,30}") {
            let _ = parse_version(&s);
        }
    }
}
