//! The limits a throttle enforces, as users write them (`--max-load`), and what a check
//! reports when one is exceeded.

use std::fmt;

/// One load limit: pause while the status variable `variable` is above `max`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LoadLimit {
    pub variable: String,
    pub max: u64,
}

impl fmt::Display for LoadLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.variable, self.max)
    }
}

const MAX_LOAD_FORMAT: &str = "expected VARIABLE=MAX[,VARIABLE=MAX…], e.g. Threads_running=25";

/// Why a `--max-load` text is not a list of load limits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadLimitError {
    #[error("empty load limit: {}", MAX_LOAD_FORMAT)]
    Empty,
    #[error("empty item in load limit {all:?}: {}", MAX_LOAD_FORMAT)]
    EmptyItem { all: String },
    #[error("load limit {item:?} has no maximum: {}", MAX_LOAD_FORMAT)]
    NoMaximum { item: String },
    #[error("load limit {item:?} names no status variable: {}", MAX_LOAD_FORMAT)]
    NoVariable { item: String },
    #[error("{name:?} is not a status variable name (letters, digits and _ only)")]
    BadName { name: String },
    #[error("the maximum of {name} must be a whole number, not {max:?}")]
    NotWhole { name: String, max: String },
    #[error("the maximum of {name} is too large: {max}")]
    TooLarge { name: String, max: String },
    #[error("the maximum of {name} must be at least 1")]
    Zero { name: String },
    #[error("{name} is limited twice")]
    Twice { name: String },
}

/// Parses load limits in pt-table-checksum's `--max-load` style: `Threads_running=25` or
/// `Threads_running=25,Threads_connected=400` (`:` may stand for `=`). Names are status
/// variables (letters, digits, `_`; matched case-insensitively, each at most once); maxima
/// are whole numbers of at least 1.
pub fn parse_max_load(s: &str) -> Result<Vec<LoadLimit>, LoadLimitError> {
    let all = s.trim();
    if all.is_empty() {
        return Err(LoadLimitError::Empty);
    }
    let mut out: Vec<LoadLimit> = Vec::new();
    for item in all.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(LoadLimitError::EmptyItem { all: all.into() });
        }
        let no_maximum = || LoadLimitError::NoMaximum { item: item.into() };
        let Some((name, max)) = item.split_once(['=', ':']) else {
            return Err(no_maximum());
        };
        let (name, max) = (name.trim(), max.trim());
        if name.is_empty() {
            return Err(LoadLimitError::NoVariable { item: item.into() });
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(LoadLimitError::BadName { name: name.into() });
        }
        if max.is_empty() {
            return Err(no_maximum());
        }
        if !max.chars().all(|c| c.is_ascii_digit()) {
            return Err(LoadLimitError::NotWhole {
                name: name.into(),
                max: max.into(),
            });
        }
        let max_text = max;
        let max: u64 = max.parse().map_err(|_| LoadLimitError::TooLarge {
            name: name.into(),
            max: max_text.into(),
        })?;
        if max == 0 {
            return Err(LoadLimitError::Zero { name: name.into() });
        }
        if out.iter().any(|l| l.variable.eq_ignore_ascii_case(name)) {
            return Err(LoadLimitError::Twice { name: name.into() });
        }
        out.push(LoadLimit {
            variable: name.to_string(),
            max,
        });
    }
    Ok(out)
}

/// A limit found exceeded by a check.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exceeded {
    /// A status variable above its maximum. `server` is the role (`source`, `target`).
    Load {
        server: String,
        variable: String,
        value: u64,
        max: u64,
    },
    /// A replica behind by more than allowed; `lag_secs` is `None` when replication is not
    /// running (`Seconds_Behind_Master` is NULL). `replica` is its address (and the
    /// connection name on a MariaDB multi-source replica).
    Lag {
        replica: String,
        lag_secs: Option<u64>,
        max_secs: f64,
    },
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Load {
                server,
                variable,
                value,
                max,
            } => write!(f, "{variable}={value} > {max} on {server}"),
            Exceeded::Lag {
                replica,
                lag_secs: Some(lag),
                max_secs,
            } => write!(f, "replica {replica} lags {lag}s > {max_secs}s"),
            Exceeded::Lag {
                replica,
                lag_secs: None,
                ..
            } => write!(
                f,
                "replication is not running on replica {replica} (lag unknown)"
            ),
        }
    }
}
