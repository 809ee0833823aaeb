//! The scratch database: the probe's only write.
//!
//! The suite needs tables it can update under concurrency, so the probe creates one database
//! on each side (default `cutover_probe`), marks it as its own with a table
//! ([`MARKER_TABLE`]) holding one row that says so, runs every test in it, and drops it at
//! the end, on an error and on Ctrl-C alike. A database of that name that exists without the
//! mark is someone else's: the probe refuses to touch it. One that carries the mark was left
//! by an interrupted probe (a `kill -9`) and is dropped and made again.

use cutover_core::{Db, Role};
use mysql_async::prelude::*;

use crate::runner::server_message;
use crate::ProbeError;

/// The table that marks a database as made by the probe.
pub const MARKER_TABLE: &str = "cutover_probe_marker";
/// What the marker row says.
pub const MARK: &str = "made by cutover probe isolation; dropped when it ends";

/// Why a scratch database name was refused (see [`check_name`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadName {
    #[error("`{}` must be 1 to 64 characters", .0.escape_debug())]
    Length(String),
    #[error("`{}` may hold only letters, digits, `_` and `$`", .0.escape_debug())]
    Characters(String),
    #[error("`{0}` must not be all digits")]
    AllDigits(String),
    #[error("`{0}` is a system schema")]
    SystemSchema(String),
}

/// Checks a scratch database name: a plain identifier (letters, digits, `_`, `$`), at most
/// 64 characters, not a system schema. Plain, so it needs no quoting anywhere it is shown.
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() || name.len() > 64 {
        return Err(BadName::Length(name.to_string()));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        return Err(BadName::Characters(name.to_string()));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(BadName::AllDigits(name.to_string()));
    }
    if cutover_core::SYSTEM_SCHEMAS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        return Err(BadName::SystemSchema(name.to_string()));
    }
    Ok(())
}

fn failed(role: Role, name: &str, doing: &str, e: &mysql_async::Error) -> ProbeError {
    let message = server_message(e);
    let hint = match e {
        mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1142 | 1227 | 1211) => {
            format!(
                "; the probe needs CREATE, DROP, INSERT, UPDATE, DELETE and SELECT on `{name}`.* (or name another database with --scratch-db)"
            )
        }
        _ => String::new(),
    };
    ProbeError::Scratch {
        role,
        message: format!("cannot {doing} the scratch database `{name}`: {message}{hint}"),
    }
}

/// What is there under the scratch name.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Absent,
    /// Exists without the probe's mark: someone else's.
    Foreign,
    /// Made by a probe, whose run is named.
    Ours {
        run: String,
    },
}

/// A name for this run of the probe, kept in the mark: a probe that finds its own run's mark
/// on the target is looking at the source's server again.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

async fn state(conn: &mut mysql_async::Conn, name: &str) -> Result<State, mysql_async::Error> {
    let exists: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await?;
    if exists.unwrap_or(0) == 0 {
        return Ok(State::Absent);
    }
    let marked: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (name, MARKER_TABLE),
        )
        .await?;
    if marked.unwrap_or(0) == 0 {
        return Ok(State::Foreign);
    }
    // The table alone could be anyone's; the row says the probe wrote it.
    let mark: Option<(String, String)> = conn
        .query_first(format!(
            "SELECT note, run FROM `{name}`.`{MARKER_TABLE}` LIMIT 1"
        ))
        .await
        .unwrap_or(None);
    Ok(match mark {
        Some((note, run)) if note == MARK => State::Ours { run },
        _ => State::Foreign,
    })
}

/// Creates the scratch database on `db`'s server, marked as made by run `run`. On any
/// failure nothing is left.
pub async fn create(db: &Db, name: &str, run: &str) -> Result<(), ProbeError> {
    let role = db.role();
    let mut conn = db.standalone().await.map_err(ProbeError::Db)?;
    let found = state(&mut conn, name)
        .await
        .map_err(|e| failed(role, name, "look for", &e))?;
    match &found {
        State::Foreign => {
            return Err(ProbeError::Scratch {
                role,
                message: format!(
                    "the database `{name}` exists and was not made by the probe; name another with --scratch-db"
                ),
            })
        }
        State::Ours { run: r } if r == run => {
            return Err(ProbeError::Scratch {
                role,
                message: "the source and the target are the same server (the scratch database just made on the source is there); give two servers".to_string(),
            })
        }
        _ => {}
    }
    if found != State::Absent {
        // Left by an interrupted probe.
        conn.query_drop(format!("DROP DATABASE `{name}`"))
            .await
            .map_err(|e| failed(role, name, "drop the leftover", &e))?;
    }
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .map_err(|e| failed(role, name, "create", &e))?;
    let marked = async {
        conn.query_drop(format!(
            "CREATE TABLE `{name}`.`{MARKER_TABLE}` (note VARCHAR(100) NOT NULL, run VARCHAR(64) NOT NULL)"
        ))
        .await?;
        conn.exec_drop(
            format!("INSERT INTO `{name}`.`{MARKER_TABLE}` (note, run) VALUES (?, ?)"),
            (MARK, run),
        )
        .await
    }
    .await;
    if let Err(e) = marked {
        let _ = conn.query_drop(format!("DROP DATABASE `{name}`")).await;
        return Err(failed(role, name, "mark", &e));
    }
    let _ = conn.disconnect().await;
    Ok(())
}

/// Creates a test's table in the scratch database, holding Hermitage's two rows.
pub async fn table(db: &Db, name: &str, table: &str) -> Result<(), ProbeError> {
    let role = db.role();
    let mut conn = db.standalone().await.map_err(ProbeError::Db)?;
    let qualified = format!("`{name}`.`{table}`");
    for sql in [
        format!("DROP TABLE IF EXISTS {qualified}"),
        format!("CREATE TABLE {qualified} (id INT PRIMARY KEY, value INT) ENGINE=InnoDB"),
        format!("INSERT INTO {qualified} (id, value) VALUES (1, 10), (2, 20)"),
    ] {
        conn.query_drop(&sql)
            .await
            .map_err(|e| failed(role, name, "write a table in", &e))?;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

/// Drops the scratch database, if it is there and still carries the mark.
pub async fn drop(db: &Db, name: &str) -> Result<(), ProbeError> {
    let role = db.role();
    let mut conn = db.standalone().await.map_err(ProbeError::Db)?;
    let found = state(&mut conn, name)
        .await
        .map_err(|e| failed(role, name, "look for", &e))?;
    if matches!(found, State::Ours { .. }) {
        conn.query_drop(format!("DROP DATABASE `{name}`"))
            .await
            .map_err(|e| failed(role, name, "drop", &e))?;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(check_name("cutover_probe").is_ok());
        assert!(check_name("p$1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a`b").is_err());
        assert!(check_name("mysql").is_err());
        assert!(check_name("123").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    proptest! {
        /// Whatever a user types, an accepted name can be put between backticks as is.
        #[test]
        fn accepted_names_need_no_quoting(s in ".{0,80}") {
            if check_name(&s).is_ok() {
                prop_assert!(!s.contains('`') && !s.contains('.') && !s.is_empty() && s.len() <= 64);
            }
        }
    }
}
