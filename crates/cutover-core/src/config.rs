//! `cutover.toml`: the one config file every command reads.
//!
//! ```toml
//! [source]
//! dsn = "mysql://app@10.0.0.1:3306"
//! password_file = "/run/secrets/source"   # optional
//!
//! [target]
//! dsn = "mysql://app@10.0.0.2:4000"
//!
//! [filter]
//! tables = ["shop.*", "crm.users"]        # default: every non-system schema
//! exclude = ["shop.tmp_*"]
//!
//! [[route]]                                # rename databases or tables on the target
//! source = "shop_legacy.*"
//! target = "shop.*"
//!
//! [diff]
//! threads = 4
//! chunk_time = "100ms"
//! float_tolerance = 1e-9
//!
//! [diff.where]                             # compare only some rows of some tables
//! "shop.orders" = "created_at >= '2024-01-01'"
//! ```
//!
//! Flags override the file. Unknown keys are errors, so a typo does not silently fall back to a
//! default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::schema::TableName;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: Option<EndpointConfig>,
    pub target: Option<EndpointConfig>,
    pub baseline: Option<EndpointConfig>,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub diff: DiffConfig,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub dsn: String,
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub source: String,
    pub target: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiffConfig {
    pub threads: Option<usize>,
    #[serde(default, with = "opt_duration")]
    pub chunk_time: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub query_timeout: Option<Duration>,
    pub float_tolerance: Option<f64>,
    pub row_threshold: Option<u64>,
    pub max_diffs: Option<usize>,
    /// Per source table (`db.table`): compare only the rows matching this SQL condition.
    #[serde(default, rename = "where")]
    pub where_: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            // toml's message spans several lines with a caret; keep it one line.
            message: one_line(&e.to_string()),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for r in &cfg.routes {
            Pattern::parse(&r.source).map_err(|m| invalid(format!("route source: {m}")))?;
            Pattern::parse(&r.target).map_err(|m| invalid(format!("route target: {m}")))?;
        }
        for t in cfg.filter.tables.iter().chain(&cfg.filter.exclude) {
            Pattern::parse(t).map_err(|m| invalid(format!("filter: {m}")))?;
        }
        if cfg.diff.threads == Some(0) {
            return Err(invalid("diff.threads must be at least 1".into()));
        }
        Ok(cfg)
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

mod opt_duration {
    use super::*;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `250ms`, `2s`, `1m30s`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 100ms, 2s or 5m ({e})"))
}

/// A `db.table` pattern where `*` matches any run of characters in that part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub schema: String,
    pub table: String,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let (schema, table) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not db.table or db.*"))?;
        if schema.is_empty() || table.is_empty() || table.contains('.') {
            return Err(format!("`{s}` is not db.table or db.*"));
        }
        Ok(Pattern {
            schema: schema.to_string(),
            table: table.to_string(),
        })
    }

    pub fn matches(&self, t: &TableName) -> bool {
        glob(&self.schema, &t.schema) && glob(&self.table, &t.table)
    }

    pub fn matches_schema(&self, schema: &str) -> bool {
        glob(&self.schema, schema)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let c: Vec<char> = s.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last star.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while j < c.len() {
        if i < p.len() && p[i] != '*' && p[i] == c[j] {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Renames from source names to target names.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    rules: Vec<(Pattern, Pattern)>,
}

impl Routes {
    pub fn new(cfg: &[RouteConfig]) -> Result<Routes, String> {
        let mut rules = Vec::new();
        for r in cfg {
            rules.push((Pattern::parse(&r.source)?, Pattern::parse(&r.target)?));
        }
        Ok(Routes { rules })
    }

    /// The target table a source table maps to: the first matching rule; a `*` in the target
    /// part keeps the source's name for that part. No rule: the same name.
    pub fn target_of(&self, t: &TableName) -> TableName {
        for (src, dst) in &self.rules {
            if src.matches(t) {
                let schema = if dst.schema.contains('*') {
                    t.schema.clone()
                } else {
                    dst.schema.clone()
                };
                let table = if dst.table.contains('*') {
                    t.table.clone()
                } else {
                    dst.table.clone()
                };
                return TableName { schema, table };
            }
        }
        t.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let cfg = Config::parse(
            r#"
[source]
dsn = "mysql://u@h"
[target]
dsn = "mysql://u@h2"
password_file = "/tmp/pw"
[filter]
tables = ["shop.*"]
[[route]]
source = "old.*"
target = "new.*"
[diff]
threads = 3
chunk_time = "250ms"
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(cfg.diff.threads, Some(3));
        assert_eq!(cfg.diff.chunk_time, Some(Duration::from_millis(250)));
        let r = Routes::new(&cfg.routes).unwrap();
        assert_eq!(
            r.target_of(&TableName::new("old", "t")),
            TableName::new("new", "t")
        );
        assert_eq!(
            r.target_of(&TableName::new("x", "t")),
            TableName::new("x", "t")
        );
    }

    #[test]
    fn errors_are_one_line_with_the_file() {
        for bad in [
            "[source]\ndsn = ",
            "[diff]\nthreads = \"many\"",
            "[diff]\nchunk_time = \"soon\"",
            "[diff]\ncolour = 1",
            "[[route]]\nsource = \"nodot\"\ntarget = \"a.b\"",
            "[diff]\nthreads = 0",
        ] {
            let e = Config::parse(bad, Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("config x.toml: "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("shop_*", "shop_01"));
        assert!(!glob("shop_*", "shopx"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }

    proptest::proptest! {
        #[test]
        fn config_parse_never_panics(s in "\\PC{0,200}") {
            let _ = Config::parse(&s, Path::new("p.toml"));
        }

        #[test]
        fn config_parse_never_panics_on_tomlish(keys in proptest::collection::vec("(source|target|diff|filter|route|dsn|threads|chunk_time|tables|\\[|\\]|=|\"|\\.|\\*|[a-z0-9]){1,6}", 0..20)) {
            let text = keys.join("\n");
            let _ = Config::parse(&text, Path::new("p.toml"));
        }

        #[test]
        fn glob_star_matches_everything(s in "\\PC{0,20}") {
            proptest::prop_assert!(glob("*", &s));
            proptest::prop_assert!(glob(&s.replace('*', ""), &s.replace('*', "")));
        }
    }
}
