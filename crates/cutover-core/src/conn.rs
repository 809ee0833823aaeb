//! The connection layer every command shares.
//!
//! A [`Db`] is a pool of connections to one endpoint, set up so that values read from any
//! server are comparable: `time_zone = '+00:00'` (TIMESTAMP in UTC), `NAMES utf8mb4` (text
//! arrives as UTF-8 whatever the column's charset), and, where a command only reads,
//! `TRANSACTION READ ONLY`, so that a bug can not turn into a write. A per-query time limit
//! uses the server's own mechanism (`max_statement_time` on MariaDB, `MAX_EXECUTION_TIME`
//! on MySQL and TiDB), so a runaway query dies on the server, not just in the client.
//!
//! Interruption: every checked-out connection registers its server-side id. When the
//! [`CancellationToken`] given at connect time fires (Ctrl-C), a watcher task opens a fresh
//! connection and sends `KILL QUERY` for each of them, so nothing keeps running on a
//! production server after cutover has gone, and every pending call returns
//! [`DbError::Interrupted`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};
use tokio_util::sync::CancellationToken;

use crate::endpoint::{Endpoint, Role, SslMode};

/// How long an interrupted query may take to die after its `KILL QUERY`. A server that does
/// not answer by then (hung, stopped, unreachable) is left behind: Ctrl-C must end the
/// command within seconds whatever the servers do.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long the `KILL QUERY` connection may take to connect and send its statements.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);

/// Which server software answers. Some SQL and some renderings differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    MariaDb,
    MySql,
    TiDb,
}

impl Flavor {
    /// The statement that limits each query of a session to `limit` on the server
    /// (`max_statement_time` on MariaDB, `MAX_EXECUTION_TIME` on MySQL and TiDB).
    pub fn query_timeout_sql(self, limit: Duration) -> String {
        match self {
            Flavor::MariaDb => format!(
                "SET SESSION max_statement_time = {:.3}",
                limit.as_secs_f64()
            ),
            Flavor::MySql | Flavor::TiDb => {
                format!("SET SESSION MAX_EXECUTION_TIME = {}", limit.as_millis())
            }
        }
    }
}

impl Flavor {
    pub fn from_version(version: &str) -> Flavor {
        let v = version.to_ascii_lowercase();
        if v.contains("tidb") {
            Flavor::TiDb
        } else if v.contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
            Flavor::TiDb => "TiDB",
        }
    }
}

/// How sessions are set up.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Open every session `READ ONLY`. True for every command that only reads.
    pub read_only: bool,
    /// Server-side limit for each statement; `None` for no limit.
    pub query_timeout: Option<Duration>,
    /// Connections kept at most.
    pub max_connections: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            read_only: true,
            query_timeout: None,
            max_connections: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("cannot connect to {role} {endpoint}: {message}")]
    Connect {
        role: Role,
        endpoint: String,
        message: String,
    },
    #[error("{role} query failed: {message}")]
    Query { role: Role, message: String },
    #[error("{role} query exceeded the time limit of {limit:?}")]
    Timeout { role: Role, limit: Duration },
    #[error("interrupted")]
    Interrupted,
}

impl DbError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, DbError::Interrupted)
    }
}

/// A pool of connections to one endpoint, in one role.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    role: Role,
    endpoint: Endpoint,
    pool: mysql_async::Pool,
    /// The connection options without the pool and session set-up, for [`Db::standalone`].
    base: mysql_async::Opts,
    flavor: Flavor,
    version: String,
    tls: Option<String>,
    options: SessionOptions,
    running: Mutex<HashSet<u32>>,
    cancel: CancellationToken,
    /// Set by [`Db::pin_snapshot`]: from then on, connections come only from this set.
    pinned: Mutex<Option<Arc<Pinned>>>,
}

/// Connections that each hold an open consistent-snapshot transaction.
struct Pinned {
    conns: Mutex<Vec<mysql_async::Conn>>,
    permits: Arc<tokio::sync::Semaphore>,
}

/// How the reads of one side are made consistent (`--consistency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Every query sees the data as of its own start.
    None,
    /// Each pinned connection reads one consistent snapshot, opened at the start.
    Snapshot,
    /// As `Snapshot`, and all snapshots of the side are opened at one instant, under a brief
    /// `FLUSH TABLES WITH READ LOCK`.
    Locked,
}

/// A `--consistency` that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consistency `{0}` (expected none, snapshot or locked)")]
pub struct UnknownConsistency(pub String);

impl Consistency {
    pub fn parse(s: &str) -> Result<Consistency, UnknownConsistency> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Consistency::None),
            "snapshot" => Ok(Consistency::Snapshot),
            "locked" => Ok(Consistency::Locked),
            other => Err(UnknownConsistency(other.into())),
        }
    }
}

/// Where a side's snapshot was taken, as far as the server can say.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotInfo {
    pub consistency: Option<Consistency>,
    /// Connections reading the snapshot.
    pub connections: usize,
    /// The binlog position (GTID set, or `file:pos`) while the snapshots were opened: exact
    /// under `locked`, approximate under `snapshot`.
    pub position: Option<String>,
    /// TiDB: the TSO read (`--target-snapshot`).
    pub tso: Option<String>,
    /// How long the read lock was held (`locked`).
    pub lock_ms: Option<u64>,
}

impl Db {
    /// Connects (one probe connection to learn the server's flavor), and prepares a pool whose
    /// connections are all set up the same way. `cancel` interrupts every query of this pool.
    pub async fn connect(
        endpoint: &Endpoint,
        role: Role,
        options: SessionOptions,
        cancel: CancellationToken,
    ) -> Result<Db, DbError> {
        let connect_err = |message: String| DbError::Connect {
            role,
            endpoint: endpoint.redacted(),
            message,
        };
        let probe = |opts: Opts| {
            let cancel = cancel.clone();
            async move {
                tokio::select! {
                    r = probe(opts) => r.map_err(Probe::Driver),
                    _ = cancel.cancelled() => Err(Probe::Interrupted),
                }
            }
        };
        let (base, ssl_used) = match endpoint.ssl_mode {
            // A unix socket is local already; like the MySQL client, `preferred` does not
            // ask for TLS on it.
            SslMode::Preferred if endpoint.socket.is_some() => {
                (base_opts(endpoint, false).map_err(connect_err)?, None)
            }
            SslMode::Preferred => {
                // Try TLS first; fall back to plain only when the server has no TLS at all.
                let tls = base_opts(endpoint, true).map_err(connect_err)?;
                match probe(tls.clone()).await {
                    Ok(v) => (tls, Some(v)),
                    Err(Probe::Driver(e)) if no_tls_on_server(&e) => {
                        (base_opts(endpoint, false).map_err(connect_err)?, None)
                    }
                    Err(Probe::Driver(e)) => return Err(connect_err(clean_message(&e))),
                    Err(Probe::Interrupted) => return Err(DbError::Interrupted),
                }
            }
            SslMode::Disabled => (base_opts(endpoint, false).map_err(connect_err)?, None),
            _ => (base_opts(endpoint, true).map_err(connect_err)?, None),
        };
        let (version, tls) = match ssl_used {
            Some(v) => v,
            None => match probe(base.clone()).await {
                Ok(v) => v,
                Err(Probe::Driver(e)) => return Err(connect_err(clean_message(&e))),
                Err(Probe::Interrupted) => return Err(DbError::Interrupted),
            },
        };
        let flavor = Flavor::from_version(&version);
        let mut init = vec![
            "SET NAMES utf8mb4".to_string(),
            "SET time_zone = '+00:00'".to_string(),
        ];
        if options.read_only {
            init.push("SET SESSION TRANSACTION READ ONLY".to_string());
        }
        if let Some(limit) = options.query_timeout {
            init.push(flavor.query_timeout_sql(limit));
        }
        let constraints = PoolConstraints::new(0, options.max_connections.max(1))
            .ok_or_else(|| connect_err("bad pool size".to_string()))?;
        let opts = OptsBuilder::from_opts(base.clone()).init(init).pool_opts(
            // No COM_RESET_CONNECTION on check-in: it would undo the `init` set-up above.
            // Idle connections are kept for reuse (a minute) instead of being closed on
            // check-in: every new one costs a handshake, TLS and the set-up above.
            PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(Duration::from_secs(60))
                .with_reset_connection(false),
        );
        let pool = mysql_async::Pool::new(opts);
        let inner = Arc::new(DbInner {
            role,
            endpoint: endpoint.clone(),
            pool,
            base,
            flavor,
            version,
            tls,
            options,
            running: Mutex::new(HashSet::new()),
            cancel: cancel.clone(),
            pinned: Mutex::new(None),
        });
        // The watcher holds only a weak handle, so it does not keep the pool alive.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            cancel.cancelled().await;
            if let Some(inner) = weak.upgrade() {
                Db { inner }.kill_running().await;
            }
        });
        let db = Db { inner };
        // Fail now, with a clear message, if the session set-up itself is refused.
        db.conn().await?;
        Ok(db)
    }

    /// A connection of its own, outside the pool and without the session set-up (same
    /// address, credentials and TLS): for a connection that changes its nature, such as a
    /// binlog stream, which must never go back into the pool.
    ///
    /// It accepts packets up to 1 GiB whatever the server's `max_allowed_packet`: a server
    /// sends binlog events up to 1 GiB (`slave_max_allowed_packet`), and a row grown by
    /// UPDATEs can be larger than the packets its clients may send.
    pub async fn standalone(&self) -> Result<mysql_async::Conn, DbError> {
        let opts =
            OptsBuilder::from_opts(self.inner.base.clone()).max_allowed_packet(Some(1 << 30));
        mysql_async::Conn::new(opts)
            .await
            .map_err(|e| self.map_err(e))
    }

    pub fn role(&self) -> Role {
        self.inner.role
    }
    pub fn flavor(&self) -> Flavor {
        self.inner.flavor
    }
    pub fn version(&self) -> &str {
        &self.inner.version
    }
    /// The TLS cipher of the connections, `None` when they are not encrypted.
    pub fn tls(&self) -> Option<&str> {
        self.inner.tls.as_deref()
    }
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }
    pub fn options(&self) -> &SessionOptions {
        &self.inner.options
    }
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Checks out a connection. It stays registered for `KILL QUERY` until dropped.
    pub async fn conn(&self) -> Result<Conn, DbError> {
        let inner = &self.inner;
        let pinned = lock(&inner.pinned).clone();
        if let Some(pinned) = pinned {
            let permit = tokio::select! {
                p = pinned.permits.clone().acquire_owned() => p.map_err(|_| DbError::Interrupted)?,
                _ = inner.cancel.cancelled() => return Err(DbError::Interrupted),
            };
            let conn = lock(&pinned.conns).pop().ok_or_else(|| DbError::Query {
                role: inner.role,
                message: "a snapshot connection was lost".to_string(),
            })?;
            let id = conn.id();
            lock(&inner.running).insert(id);
            return Ok(Conn {
                conn: Some(conn),
                id,
                db: self.clone(),
                pinned: Some((pinned, permit)),
            });
        }
        let conn = tokio::select! {
            c = inner.pool.get_conn() => c.map_err(|e| DbError::Connect {
                role: inner.role,
                endpoint: inner.endpoint.redacted(),
                message: clean_message(&e),
            })?,
            _ = inner.cancel.cancelled() => return Err(DbError::Interrupted),
        };
        let id = conn.id();
        lock(&inner.running).insert(id);
        Ok(Conn {
            conn: Some(conn),
            id,
            db: self.clone(),
            pinned: None,
        })
    }

    /// Opens `n` connections that each start a consistent-snapshot, read-only transaction,
    /// and from then on hands out only those (a caller waits while all are busy), so every
    /// read of this side sees the same data. `Locked` opens them all under one brief
    /// `FLUSH TABLES WITH READ LOCK` (needs RELOAD) so they share one instant; `tso` reads a
    /// TiDB server as of that timestamp instead. Costs on a production server: the snapshot
    /// keeps undo history alive for as long as it is open (purge lag grows with a long run),
    /// and the read lock, while held, blocks every write and waits behind running DDL.
    pub async fn pin_snapshot(
        &self,
        n: usize,
        consistency: Consistency,
        tso: Option<&str>,
    ) -> Result<SnapshotInfo, DbError> {
        let mut info = SnapshotInfo {
            consistency: Some(consistency),
            connections: n.max(1),
            tso: tso.map(str::to_string),
            ..SnapshotInfo::default()
        };
        if consistency == Consistency::None && tso.is_none() {
            info.connections = 0;
            return Ok(info);
        }
        if tso.is_some() && self.flavor() != Flavor::TiDb {
            return Err(DbError::Query {
                role: self.role(),
                message: format!(
                    "a snapshot timestamp (TSO) needs a TiDB server; this is {}",
                    self.flavor().name()
                ),
            });
        }
        let mut conns = Vec::new();
        for _ in 0..n.max(1) {
            let c = self.conn().await?;
            conns.push(c);
        }
        let start = match (self.flavor(), tso) {
            (Flavor::TiDb, Some(tso)) => {
                if !tso.chars().all(|c| c.is_ascii_digit()) {
                    return Err(DbError::Query {
                        role: self.role(),
                        message: format!("`{tso}` is not a TSO (digits expected)"),
                    });
                }
                format!("SET SESSION tidb_snapshot = '{tso}'")
            }
            (Flavor::TiDb, None) => "START TRANSACTION WITH CONSISTENT SNAPSHOT".to_string(),
            _ => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY".to_string(),
        };
        let mut locker = None;
        if consistency == Consistency::Locked && tso.is_none() {
            let mut l = self.conn().await?;
            l.execute("FLUSH TABLES WITH READ LOCK").await?;
            locker = Some((l, std::time::Instant::now()));
        }
        let opened = async {
            for c in conns.iter_mut() {
                c.execute(&start).await?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        info.position = self.binlog_position(&mut conns[0]).await;
        if let Some((mut l, since)) = locker {
            // Released before any error is returned: never leave the lock behind.
            let unlocked = l.execute("UNLOCK TABLES").await;
            info.lock_ms = Some(since.elapsed().as_millis() as u64);
            unlocked?;
        }
        opened?;
        let raw: Vec<mysql_async::Conn> = conns
            .iter_mut()
            .filter_map(|c| {
                lock(&self.inner.running).remove(&c.id);
                c.conn.take()
            })
            .collect();
        let permits = Arc::new(tokio::sync::Semaphore::new(raw.len()));
        *lock(&self.inner.pinned) = Some(Arc::new(Pinned {
            conns: Mutex::new(raw),
            permits,
        }));
        Ok(info)
    }

    /// Ends the snapshot: the snapshot transactions are closed and connections come from
    /// the pool again (fresh reads). The pool would otherwise hand out a connection still
    /// inside its old snapshot.
    pub async fn unpin(&self) {
        let pinned = lock(&self.inner.pinned).take();
        if let Some(p) = pinned {
            let conns: Vec<mysql_async::Conn> = std::mem::take(&mut *lock(&p.conns));
            for mut c in conns {
                if self.inner.cancel.is_cancelled() {
                    // Interrupted: no more waiting on the servers; closing the connection
                    // ends its transaction.
                    drop(c);
                    continue;
                }
                let ended = self
                    .until_cancelled(c.query_drop("ROLLBACK"))
                    .await
                    .is_ok_and(|r| r.is_ok());
                if !ended {
                    // A connection that cannot end its transaction must not be reused.
                    let _ = tokio::time::timeout(KILL_TIMEOUT, c.disconnect()).await;
                }
            }
        }
    }

    /// The server's binlog position, if it has one to tell.
    async fn binlog_position(&self, c: &mut Conn) -> Option<String> {
        let sql = match self.flavor() {
            Flavor::MariaDb => "SELECT @@gtid_binlog_pos",
            Flavor::MySql => "SELECT @@gtid_executed",
            Flavor::TiDb => return None,
        };
        let gtid: Vec<(Option<String>,)> = c.query(sql).await.ok()?;
        let gtid = gtid
            .into_iter()
            .next()
            .and_then(|r| r.0)
            .unwrap_or_default();
        if !gtid.trim().is_empty() {
            return Some(gtid.split_whitespace().collect::<Vec<_>>().join(""));
        }
        let rows: Vec<mysql_async::Row> = c.query("SHOW MASTER STATUS").await.ok()?;
        let row = rows.into_iter().next()?;
        let file: String = row.get(0)?;
        let pos: u64 = row.get(1)?;
        Some(format!("{file}:{pos}"))
    }

    /// Runs one query on a pooled connection and collects its rows.
    pub async fn query<T: FromRow + Send + 'static>(&self, sql: &str) -> Result<Vec<T>, DbError> {
        self.conn().await?.query(sql).await
    }

    /// Runs a statement (text protocol) and discards its result. Only callers that are allowed
    /// to write use this for writes (see ARCHITECTURE.md).
    pub async fn execute(&self, sql: &str) -> Result<(), DbError> {
        self.conn().await?.execute(sql).await
    }

    /// Sends `KILL QUERY` for every connection currently checked out.
    pub async fn kill_running(&self) {
        let ids: Vec<u32> = lock(&self.inner.running).iter().copied().collect();
        if ids.is_empty() {
            return;
        }
        // A fresh, unpooled connection: the pool may be exhausted by the very queries we kill.
        // Best effort, with a short time limit: a server that hangs must not hold us.
        let opts: Opts = self.inner.pool_opts_for_kill();
        let _ = tokio::time::timeout(KILL_TIMEOUT, async {
            if let Ok(mut c) = mysql_async::Conn::new(opts).await {
                for id in ids {
                    let _ = c.query_drop(format!("KILL QUERY {id}")).await;
                }
                let _ = c.disconnect().await;
            }
        })
        .await;
    }

    /// Awaits `fut` (a driver call on a connection of this pool) unless the run is
    /// interrupted: then the query gets [`KILL_GRACE`] to end by its `KILL QUERY` and is
    /// abandoned after that (a stopped server never answers). For the streaming calls that
    /// use [`Conn::raw`].
    pub async fn until_cancelled<F: std::future::Future>(
        &self,
        fut: F,
    ) -> Result<F::Output, DbError> {
        let cancel = self.inner.cancel.clone();
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => Ok(r),
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(KILL_GRACE, &mut fut).await;
                Err(DbError::Interrupted)
            }
        }
    }

    /// Closes the pool gracefully.
    pub async fn disconnect(self) {
        // Snapshot connections go back to the pool first, their transactions ended.
        self.unpin().await;
        if let Ok(inner) = Arc::try_unwrap(self.inner) {
            let _ = inner.pool.disconnect().await;
        }
    }

    /// Maps a driver error of a query on this pool: time limits and our own `KILL QUERY`
    /// become [`DbError::Timeout`] and [`DbError::Interrupted`].
    pub fn map_err(&self, e: mysql_async::Error) -> DbError {
        map_query_error(self.inner.role, self.inner.options.query_timeout, e)
    }
}

impl DbInner {
    fn pool_opts_for_kill(&self) -> Opts {
        // Same endpoint and TLS, no init statements (a READ ONLY session may still KILL).
        base_opts(&self.endpoint, self.endpoint.ssl_mode != SslMode::Disabled)
            .unwrap_or_else(|_| Opts::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned registry only means another task panicked while holding it; the set of ids
    // is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A checked-out connection with its server-side id registered for `KILL QUERY`.
pub struct Conn {
    conn: Option<mysql_async::Conn>,
    id: u32,
    db: Db,
    /// A snapshot connection goes back to its set, not to the pool.
    pinned: Option<(Arc<Pinned>, tokio::sync::OwnedSemaphorePermit)>,
}

impl Conn {
    /// The server's connection id (`CONNECTION_ID()`).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The underlying connection, for streaming results. Callers race their awaits against
    /// [`Db::cancel_token`].
    pub fn raw(&mut self) -> &mut mysql_async::Conn {
        // `conn` is only `None` inside `drop`.
        self.conn.as_mut().expect("connection present until drop")
    }

    pub async fn query<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
    ) -> Result<Vec<T>, DbError> {
        let db = self.db.clone();
        until_cancelled(&db, self.raw().query(sql)).await
    }

    pub async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        let db = self.db.clone();
        until_cancelled(&db, self.raw().query_drop(sql)).await
    }

    /// Maps a driver error of a query run on this connection.
    pub fn map_err(&self, e: mysql_async::Error) -> DbError {
        self.db.map_err(e)
    }
}

/// Runs one statement on a connection of `db`, stopping at the pool's cancellation.
async fn until_cancelled<T>(
    db: &Db,
    fut: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, DbError> {
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => r.map_err(|e| db.map_err(e)),
        _ = db.inner.cancel.cancelled() => {
            // The watcher sends KILL QUERY for this connection; give the server a moment
            // to stop the query, so nothing keeps running after we are gone.
            let _ = tokio::time::timeout(KILL_GRACE, &mut fut).await;
            Err(DbError::Interrupted)
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        lock(&self.db.inner.running).remove(&self.id);
        if let Some((pinned, permit)) = self.pinned.take() {
            if let Some(c) = self.conn.take() {
                lock(&pinned.conns).push(c);
            }
            drop(permit);
            return;
        }
        // Dropping a `mysql_async::Conn` hands it back to the pool (or closes it when a
        // result is still unread).
        drop(self.conn.take());
    }
}

fn map_query_error(role: Role, limit: Option<Duration>, e: mysql_async::Error) -> DbError {
    if let mysql_async::Error::Server(s) = &e {
        match (s.code, limit) {
            // 1969: MariaDB max_statement_time; 3024: MySQL MAX_EXECUTION_TIME.
            (1969 | 3024, Some(limit)) => return DbError::Timeout { role, limit },
            // 1317: our own KILL QUERY after Ctrl-C.
            (1317, _) => return DbError::Interrupted,
            _ => {}
        }
    }
    DbError::Query {
        role,
        message: clean_message(&e),
    }
}

/// The driver's message, on one line.
fn clean_message(e: &mysql_async::Error) -> String {
    let s = match e {
        mysql_async::Error::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        mysql_async::Error::Io(io) => format!("{io}"),
        other => other.to_string(),
    };
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a probe connection failed.
enum Probe {
    Driver(mysql_async::Error),
    Interrupted,
}

/// Connects once: the server's version, and the TLS cipher in use (if any).
async fn probe(opts: Opts) -> Result<(String, Option<String>), mysql_async::Error> {
    let mut c = mysql_async::Conn::new(opts).await?;
    let v: Option<String> = c.query_first("SELECT VERSION()").await?;
    let cipher: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap_or(None);
    let _ = c.disconnect().await;
    let cipher = cipher.map(|(_, c)| c).filter(|c| !c.is_empty());
    Ok((v.unwrap_or_default(), cipher))
}

fn base_opts(e: &Endpoint, tls: bool) -> Result<Opts, String> {
    let mut b = OptsBuilder::default()
        .user(Some(e.user.clone()))
        .pass(e.password.as_ref().map(|p| p.expose().to_string()))
        .db_name(e.database.clone())
        .stmt_cache_size(64)
        .tcp_nodelay(true);
    match &e.socket {
        Some(sock) => {
            b = b.socket(Some(sock.display().to_string()));
        }
        None => {
            b = b
                .ip_or_hostname(e.host.clone())
                .tcp_port(e.port)
                .prefer_socket(false);
        }
    }
    if tls {
        let mut ssl = SslOpts::default();
        match e.ssl_mode {
            SslMode::Disabled => {}
            SslMode::Preferred | SslMode::Required => {
                ssl = ssl
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            SslMode::VerifyCa => {
                ssl = ssl.with_danger_skip_domain_validation(true);
            }
            SslMode::VerifyIdentity => {}
        }
        if let Some(ca) = &e.ssl_ca {
            if !ca.exists() {
                return Err(format!("ssl-ca file {} does not exist", ca.display()));
            }
            ssl = ssl.with_root_certs(vec![ca.clone().into()]);
        }
        b = b.ssl_opts(Some(ssl));
    }
    Ok(b.into())
}

/// The driver's refusal when the server has no TLS at all (not a TLS failure).
fn no_tls_on_server(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    )
}
