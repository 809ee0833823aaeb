//! What the throttle asks the servers: status variables for the load limits, replica
//! status for the lag.

use mysql_async::Value as SqlValue;

use super::{Exceeded, LoadLimit};
use crate::conn::{Db, DbError, Flavor};

/// The load limits `db` exceeds now.
pub(super) async fn load_exceeded(db: &Db, limits: &[LoadLimit]) -> Result<Vec<Exceeded>, DbError> {
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = limits
        .iter()
        .map(|l| crate::sql::quote_str(&l.variable))
        .collect();
    let sql = format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        names.join(", ")
    );
    let rows: Vec<(String, String)> = db.query(&sql).await?;
    let mut out = Vec::new();
    for limit in limits {
        let Some((_, text)) = rows
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&limit.variable))
        else {
            return Err(DbError::Query {
                role: db.role(),
                message: format!(
                    "status variable {} does not exist on the {} ({}), so it cannot limit the load",
                    limit.variable,
                    db.role(),
                    db.flavor().name()
                ),
            });
        };
        let value = status_number(text).ok_or_else(|| DbError::Query {
            role: db.role(),
            message: format!(
                "status variable {} on the {} is not a number: {text:?}",
                limit.variable,
                db.role()
            ),
        })?;
        if value > limit.max {
            out.push(Exceeded::Load {
                server: db.role().name().to_string(),
                variable: limit.variable.clone(),
                value,
                max: limit.max,
            });
        }
    }
    Ok(out)
}

/// A status value as a whole number (fractions rounded up, so a limit is never missed).
pub(super) fn status_number(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    // `as` saturates for values beyond u64.
    (f.is_finite() && f >= 0.0).then(|| f.ceil() as u64)
}

/// Each replication channel of `db` (its name, when it has one) with its lag in seconds,
/// `None` when replication is not running.
pub(super) async fn replica_lags(db: &Db) -> Result<Vec<(Option<String>, Option<u64>)>, DbError> {
    let sql = match db.flavor() {
        Flavor::MariaDb => "SHOW ALL SLAVES STATUS",
        Flavor::MySql if version_at_least(db.version(), (8, 0, 22)) => "SHOW REPLICA STATUS",
        Flavor::MySql => "SHOW SLAVE STATUS",
        Flavor::TiDb => {
            return Err(DbError::Query {
                role: db.role(),
                message: format!(
                    "{} is TiDB, which has no replication lag to check",
                    db.endpoint().address()
                ),
            })
        }
    };
    let rows: Vec<mysql_async::Row> = db.query(sql).await?;
    if rows.is_empty() {
        return Err(DbError::Query {
            role: db.role(),
            message: format!(
                "{} is not a replica ({sql} returned nothing), so its lag cannot be checked",
                db.endpoint().address()
            ),
        });
    }
    let mut out = Vec::new();
    for row in &rows {
        let col = |names: &[&str]| {
            row.columns_ref()
                .iter()
                .position(|c| names.iter().any(|n| c.name_str().eq_ignore_ascii_case(n)))
        };
        let Some(lag_col) = col(&["Seconds_Behind_Master", "Seconds_Behind_Source"]) else {
            return Err(DbError::Query {
                role: db.role(),
                message: format!("{sql} on {} has no lag column", db.endpoint().address()),
            });
        };
        let lag = match row.as_ref(lag_col) {
            None | Some(SqlValue::NULL) => None,
            Some(v) => Some(sql_number(v).ok_or_else(|| DbError::Query {
                role: db.role(),
                message: format!(
                    "unexpected replication lag on {}: {v:?}",
                    db.endpoint().address()
                ),
            })?),
        };
        let name = col(&["Connection_name", "Channel_Name"])
            .and_then(|i| row.as_ref(i))
            .and_then(sql_text)
            .filter(|n| !n.is_empty());
        out.push((name, lag));
    }
    Ok(out)
}

fn sql_text(v: &SqlValue) -> Option<String> {
    match v {
        SqlValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn sql_number(v: &SqlValue) -> Option<u64> {
    match v {
        SqlValue::Int(i) => u64::try_from(*i).ok(),
        SqlValue::UInt(u) => Some(*u),
        SqlValue::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Whether a server version string (`8.0.36-0ubuntu…`) is at least `min`.
pub(super) fn version_at_least(version: &str, min: (u64, u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u64>().unwrap_or(0)
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next()) >= min
}
