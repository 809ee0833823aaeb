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
//!
//! [accept]                                 # expected findings and differences: reported
//! check = ["schema.collation_change:utf8mb4_general_ci->utf8mb4_bin"]  # as accepted, and
//! diff = ["schema.collation:shop.*"]       # they do not change the exit code
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
    #[serde(default)]
    pub accept: AcceptConfig,
}

/// `[accept]`: what a team expects to find, per command, as `RULE[:PATTERN]` (see
/// [`Accept`]). Accepted findings and differences are still reported, in their own section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcceptConfig {
    #[serde(default)]
    pub check: Vec<String>,
    #[serde(default)]
    pub diff: Vec<String>,
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
        for a in &cfg.accept.check {
            Accept::parse(a).map_err(|m| invalid(format!("accept.check: {m}")))?;
        }
        for a in &cfg.accept.diff {
            Accept::parse(a).map_err(|m| invalid(format!("accept.diff: {m}")))?;
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
    use crate::duration::parse_duration;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A text that is not a `db.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not db.table or db.*")]
pub struct NotAPattern(pub String);

/// A `db.table` pattern where `*` matches any run of characters in that part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub schema: String,
    pub table: String,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, NotAPattern> {
        let (schema, table) = s.split_once('.').ok_or_else(|| NotAPattern(s.into()))?;
        if schema.is_empty() || table.is_empty() || table.contains('.') {
            return Err(NotAPattern(s.into()));
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

/// An expected finding or difference, `RULE[:PATTERN]` (`[accept]`, `--accept`).
///
/// `RULE` names a rule (`schema.collation_change`) or, with `*`, several (`schema.*`).
/// `PATTERN`, when given, must match either the object (`shop.orders`, `shop.*`,
/// `shop.orders.note`: a glob where `*` also crosses dots) or the cause
/// (`utf8mb4_general_ci->utf8mb4_bin`). Causes are matched without regard to spaces, and `→`
/// is read as `->`, so what a report prints can be pasted as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    pub rule: String,
    pub pattern: Option<String>,
    /// As written, to say in reports which entry accepted a finding.
    pub text: String,
}

/// Why a text is not an `[accept]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("`{0}` is not RULE[:PATTERN] (e.g. schema.collation_change:utf8mb4_general_ci->utf8mb4_bin or schema.foreign_key:shop.*)")]
    NotRulePattern(String),
    #[error("`{0}`: the pattern after `:` is empty")]
    EmptyPattern(String),
}

/// An `[accept]` entry that is not valid, with where it was given (`--accept`,
/// `[accept] check`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {error}")]
pub struct AcceptEntryError {
    pub what: String,
    pub error: AcceptError,
}

impl Accept {
    pub fn parse(s: &str) -> Result<Accept, AcceptError> {
        let text = s.trim();
        let (rule, pattern) = match text.split_once(':') {
            Some((r, p)) => (r.trim(), Some(p.trim())),
            None => (text, None),
        };
        if rule.is_empty()
            || !rule
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*'))
        {
            return Err(AcceptError::NotRulePattern(s.into()));
        }
        if pattern == Some("") {
            return Err(AcceptError::EmptyPattern(s.into()));
        }
        Ok(Accept {
            rule: rule.to_ascii_lowercase(),
            pattern: pattern.map(str::to_string),
            text: text.to_string(),
        })
    }

    /// Whether a finding of `rule` about `object` (if any) with this `cause` is accepted.
    pub fn matches(&self, rule: &str, object: Option<&str>, cause: &str) -> bool {
        if !glob(&self.rule, &rule.to_ascii_lowercase()) {
            return false;
        }
        let Some(p) = &self.pattern else {
            return true;
        };
        object.is_some_and(|o| glob(p, o)) || glob(&cause_form(p), &cause_form(cause))
    }
}

/// A cause as it is compared: no spaces, `→` as `->`, lower case.
fn cause_form(s: &str) -> String {
    s.replace('→', "->")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
}

/// Parses every entry, naming `what` (`--accept`, `accept.check`) in the error.
pub fn parse_accepts<'a>(
    entries: impl IntoIterator<Item = &'a String>,
    what: &str,
) -> Result<Vec<Accept>, AcceptEntryError> {
    entries
        .into_iter()
        .map(|e| {
            Accept::parse(e).map_err(|error| AcceptEntryError {
                what: what.into(),
                error,
            })
        })
        .collect()
}

/// Renames from source names to target names.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    rules: Vec<(Pattern, Pattern)>,
}

impl Routes {
    pub fn new(cfg: &[RouteConfig]) -> Result<Routes, NotAPattern> {
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
    fn accept_entries() {
        let a = Accept::parse("schema.collation_change:utf8mb4_general_ci->utf8mb4_bin").unwrap();
        assert!(a.matches(
            "schema.collation_change",
            Some("shop.orders"),
            "utf8mb4_general_ci → utf8mb4_bin"
        ));
        assert!(!a.matches(
            "schema.collation_change",
            Some("shop.orders"),
            "utf8mb4_general_ci → utf8mb4_0900_ai_ci"
        ));
        assert!(!a.matches(
            "schema.foreign_key",
            None,
            "utf8mb4_general_ci->utf8mb4_bin"
        ));
        let a = Accept::parse("schema.*:shop.*").unwrap();
        assert!(a.matches("schema.foreign_key", Some("shop.orders"), "x"));
        assert!(a.matches("schema.collation", Some("shop.orders.note"), "x"));
        assert!(!a.matches("schema.foreign_key", Some("crm.users"), "x"));
        assert!(!a.matches("source.gtid", Some("shop.orders"), "x"));
        assert!(Accept::parse("schema.no_key")
            .unwrap()
            .matches("schema.no_key", None, ""));
        for bad in ["", ":x", "schema.x:", "bad rule:x", "a;b"] {
            assert!(Accept::parse(bad).is_err(), "{bad}");
        }
        let cfg = Config::parse(
            "[accept]\ncheck = [\"schema.collation_change\"]\ndiff = [\"schema.collation:shop.*\"]",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(cfg.accept.diff, vec!["schema.collation:shop.*".to_string()]);
        for bad in [
            "[accept]\nverify = [\"x\"]",
            "[accept]\ncheck = [\"not a rule\"]",
            "[accept]\ncheck = \"schema.x\"",
        ] {
            let e = Config::parse(bad, Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("config x.toml: "), "{e}");
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
        fn accept_parse_never_panics(s in "\\PC{0,60}", rule in "\\PC{0,20}", object in "\\PC{0,20}") {
            if let Ok(a) = Accept::parse(&s) {
                let _ = a.matches(&rule, Some(&object), &object);
            }
        }

        #[test]
        fn glob_star_matches_everything(s in "\\PC{0,20}") {
            proptest::prop_assert!(glob("*", &s));
            proptest::prop_assert!(glob(&s.replace('*', ""), &s.replace('*', "")));
        }
    }
}
