//! The replicator's progress, as the target tells it: where grace starts counting.
//!
//! A difference is confirmed only once the replicator is known to be past the key's latest
//! change. The target says how far it got from its replica status, from the heartbeat row
//! verify writes on the source (`--heartbeat`), or from DM's checkpoint table
//! (`--dm-checkpoint`); when nothing tells, grace counts from when the change was read.

use cutover_core::schema::TableName;

use super::Checker;
use crate::position::BinlogPos;

/// How far the replicator has got, as far as the target can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicated {
    /// The target is a replica that has executed the source's binlog up to here.
    UpTo(BinlogPos),
    /// Nothing on the target tells: grace counts from when a change was read.
    Unknown,
    /// The progress marker the user named cannot be read (yet): nothing is past it.
    Behind,
}

/// Where the replicator's progress is read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// The target's replica status when it replicates this source, else nothing.
    #[default]
    Auto,
    /// `--heartbeat DB.TABLE`: a row verify writes on the source every second with the
    /// source's binlog position before the write; read back on the target, it says the
    /// replicator has applied everything before that position (replication applies in order).
    Heartbeat(TableName),
    /// `--dm-checkpoint DB.TABLE`: DM's syncer checkpoint table on the target
    /// (`dm_meta.<task>_syncer_checkpoint`), its global row's `binlog_name`/`binlog_pos`.
    DmCheckpoint(TableName),
}

/// DM names relay files `mysql-bin|000001.000003` (relay directory suffix, then the
/// upstream file number): the upstream file is `mysql-bin.000003`.
pub fn dm_binlog_name(name: &str) -> String {
    match (name.split_once('|'), name.rsplit_once('.')) {
        (Some((base, _)), Some((_, n))) => format!("{base}.{n}"),
        _ => name.to_string(),
    }
}

impl Checker {
    /// The replicator's progress as the target tells it: from the heartbeat table or the
    /// DM checkpoint when given, else from the target's replica status when it replicates
    /// this source.
    pub async fn replicated(&mut self) -> Replicated {
        match self.opts.progress.clone() {
            Progress::Heartbeat(t) => {
                let sql = format!(
                    "SELECT source_file, source_pos FROM {} WHERE server_id = {}",
                    t.quoted(),
                    self.source_server_id().await.unwrap_or(0)
                );
                // Not there yet (the table or its row still in flight): nothing is past.
                match self.target.query::<(String, u64)>(&sql).await {
                    Ok(rows) => rows
                        .into_iter()
                        .next()
                        .map_or(Replicated::Behind, |(f, p)| {
                            Replicated::UpTo(BinlogPos::new(f, p))
                        }),
                    Err(_) => Replicated::Behind,
                }
            }
            Progress::DmCheckpoint(t) => {
                let sql = format!(
                    "SELECT binlog_name, binlog_pos FROM {} WHERE is_global = 1 LIMIT 1",
                    t.quoted()
                );
                match self.target.query::<(String, u64)>(&sql).await {
                    Ok(rows) => rows
                        .into_iter()
                        .next()
                        .map_or(Replicated::Behind, |(f, p)| {
                            Replicated::UpTo(BinlogPos::new(dm_binlog_name(&f), p))
                        }),
                    Err(_) => Replicated::Behind,
                }
            }
            Progress::Auto => self.replica_status().await,
        }
    }

    /// The source's `@@server_id`, read once.
    async fn source_server_id(&mut self) -> Option<u64> {
        if self.source_id.is_none() {
            let rows: Vec<u64> = self.source.query("SELECT @@server_id").await.ok()?;
            self.source_id = rows.into_iter().next();
        }
        self.source_id
    }

    /// `SHOW SLAVE STATUS` on the target, when it replicates this source (its
    /// `Master_Server_Id` is the source's `@@server_id`).
    async fn replica_status(&mut self) -> Replicated {
        if self.replica == Some(false) {
            return Replicated::Unknown;
        }
        let rows: Vec<mysql_async::Row> = match self.target.query("SHOW SLAVE STATUS").await {
            Ok(r) => r,
            Err(_) => {
                // No privilege, or a server without replicas (TiDB): nothing tells.
                self.replica = Some(false);
                return Replicated::Unknown;
            }
        };
        let source_id = self.source_server_id().await;
        // A replica of several sources (multi-source) has a row per source: this one's.
        let col = |row: &mysql_async::Row, name: &str| {
            row.columns_ref()
                .iter()
                .position(|c| c.name_str() == name)
                .and_then(|i| row.get_opt::<String, _>(i))
                .and_then(Result::ok)
        };
        let Some(row) = rows.into_iter().find(|r| {
            col(r, "Master_Server_Id").and_then(|v| v.parse::<u64>().ok()) == source_id
                && source_id.is_some()
        }) else {
            self.replica = Some(false);
            return Replicated::Unknown;
        };
        self.replica = Some(true);
        let file = col(&row, "Relay_Master_Log_File");
        let pos = col(&row, "Exec_Master_Log_Pos").and_then(|p| p.parse::<u64>().ok());
        match (file, pos) {
            (Some(f), Some(p)) if !f.is_empty() => Replicated::UpTo(BinlogPos::new(f, p)),
            _ => Replicated::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_relay_file_names_map_to_upstream_files() {
        assert_eq!(
            dm_binlog_name("mysql-bin|000001.000003"),
            "mysql-bin.000003"
        );
        assert_eq!(dm_binlog_name("mysql-bin.000003"), "mysql-bin.000003");
        assert_eq!(dm_binlog_name(""), "");
    }
}
