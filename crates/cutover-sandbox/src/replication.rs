//! Native replication between the sandbox's two servers: the target made a replica of the
//! source from the source's position now, waited on until it catches up, and stopped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{Sandbox, SandboxError, Server};

/// What went wrong with the sandbox's replication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    #[error("the {role} has no binary log")]
    NoBinlog { role: String },
    #[error("unexpected SHOW MASTER STATUS on the {role}: {row:?}")]
    UnexpectedStatus {
        role: String,
        row: HashMap<String, String>,
    },
    #[error("the replica did not start: {errors}")]
    DidNotStart { errors: String },
    #[error(
        "the replica threads did not start within a minute \
         (IO thread: {io_thread}, SQL thread: {sql_thread}) {errors}"
    )]
    ThreadsDidNotStart {
        io_thread: String,
        sql_thread: String,
        errors: String,
    },
    #[error("the replica is not running: {errors}")]
    NotRunning { errors: String },
    #[error(
        "the replica did not catch up within {deadline:?}: the source is at {source_at}, \
         the replica executed up to {executed}"
    )]
    NotCaughtUp {
        deadline: Duration,
        source_at: String,
        executed: String,
    },
    #[error("the target is not a replica (call start_replication first)")]
    NotAReplica,
}

/// A position in a source's binlog: the file name and the offset in it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BinlogPos {
    file: String,
    pos: u64,
}

impl BinlogPos {
    fn from_row(row: &HashMap<String, String>, file: &str, pos: &str) -> Option<BinlogPos> {
        Some(BinlogPos {
            file: row.get(file)?.clone(),
            pos: row.get(pos)?.trim().parse().ok()?,
        })
    }

    /// Whether `self` is at or after `other` (binlog files are numbered `name.000001`, …).
    fn reached(&self, other: &BinlogPos) -> bool {
        let seq = |f: &str| {
            f.rsplit_once('.')
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (seq(&self.file), self.pos) >= (seq(&other.file), other.pos)
    }
}

impl Server {
    /// `SHOW MASTER STATUS`: the binlog file and position of the next event.
    fn binlog_position(&self) -> Result<BinlogPos, SandboxError> {
        let row = self.row_map("SHOW MASTER STATUS")?.ok_or_else(|| {
            SandboxError::Replication(ReplicationError::NoBinlog {
                role: self.role.clone(),
            })
        })?;
        BinlogPos::from_row(&row, "File", "Position").ok_or_else(|| {
            SandboxError::Replication(ReplicationError::UnexpectedStatus {
                role: self.role.clone(),
                row: row.clone(),
            })
        })
    }
}

impl Sandbox {
    /// Makes the target a replica of the source, starting at the source's binlog position
    /// now (earlier changes are not replayed), and waits until both replica threads run.
    /// Any earlier replication set-up of the target is discarded first, so this may be
    /// called again after [`Sandbox::stop_replication`].
    pub fn start_replication(&self) -> Result<(), SandboxError> {
        let at = self.source.binlog_position()?;
        self.target.sql(&format!(
            "STOP SLAVE; RESET SLAVE ALL; \
             CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, \
             MASTER_USER='root', MASTER_PASSWORD='', \
             MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, \
             MASTER_USE_GTID=no, MASTER_CONNECT_RETRY=1; \
             START SLAVE",
            port = self.source.port,
            file = at.file.replace('\'', "''"),
            pos = at.pos,
        ))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.replica_status()?;
            let io_thread = status.get("Slave_IO_Running").map(String::as_str);
            let sql_thread = status.get("Slave_SQL_Running").map(String::as_str);
            if io_thread == Some("Yes") && sql_thread == Some("Yes") {
                return Ok(());
            }
            if io_thread == Some("No") || sql_thread == Some("No") {
                return Err(SandboxError::Replication(ReplicationError::DidNotStart {
                    errors: replica_errors(&status),
                }));
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Replication(
                    ReplicationError::ThreadsDidNotStart {
                        io_thread: io_thread.unwrap_or("?").to_string(),
                        sql_thread: sql_thread.unwrap_or("?").to_string(),
                        errors: replica_errors(&status),
                    },
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the target has applied everything the source had logged when this was
    /// called. Fails at once when the replica's SQL thread has stopped (with its error), and
    /// after `deadline` otherwise.
    pub fn wait_replica_caught_up(&self, deadline: Duration) -> Result<(), SandboxError> {
        let goal = self.source.binlog_position()?;
        let until = Instant::now() + deadline;
        loop {
            let status = self.replica_status()?;
            if status.get("Slave_SQL_Running").map(String::as_str) != Some("Yes")
                || status.get("Slave_IO_Running").map(String::as_str) == Some("No")
            {
                return Err(SandboxError::Replication(ReplicationError::NotRunning {
                    errors: replica_errors(&status),
                }));
            }
            let executed =
                BinlogPos::from_row(&status, "Relay_Master_Log_File", "Exec_Master_Log_Pos");
            if executed.as_ref().is_some_and(|e| e.reached(&goal)) {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(SandboxError::Replication(ReplicationError::NotCaughtUp {
                    deadline,
                    source_at: format!("{}:{}", goal.file, goal.pos),
                    executed: executed
                        .map(|e| format!("{}:{}", e.file, e.pos))
                        .unwrap_or_else(|| "?".to_string()),
                }));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the replica threads on the target. The replication set-up stays, so the target
    /// still reports itself a (stopped) replica.
    pub fn stop_replication(&self) -> Result<(), SandboxError> {
        self.target.sql("STOP SLAVE").map(|_| ())
    }

    /// `SHOW SLAVE STATUS` of the target; an error when it is no replica.
    fn replica_status(&self) -> Result<HashMap<String, String>, SandboxError> {
        self.target
            .row_map("SHOW SLAVE STATUS")?
            .ok_or(SandboxError::Replication(ReplicationError::NotAReplica))
    }
}

/// The replica's last errors, for messages.
fn replica_errors(status: &HashMap<String, String>) -> String {
    let mut parts = Vec::new();
    for key in ["Last_IO_Error", "Last_SQL_Error"] {
        if let Some(v) = status.get(key).filter(|v| !v.is_empty()) {
            parts.push(format!("{key}: {v}"));
        }
    }
    if parts.is_empty() {
        "no error reported".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_positions_order_by_file_number_then_offset() {
        let p = |f: &str, pos| BinlogPos {
            file: f.to_string(),
            pos,
        };
        assert!(p("binlog.000002", 4).reached(&p("binlog.000001", 900)));
        assert!(p("binlog.000001", 900).reached(&p("binlog.000001", 900)));
        assert!(!p("binlog.000001", 899).reached(&p("binlog.000001", 900)));
        assert!(!p("binlog.000009", 4).reached(&p("binlog.000010", 4)));
    }
}
