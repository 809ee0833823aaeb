//! Throttling for long-running commands that read production servers.
//!
//! A [`Throttle`] is asked before every unit of work ([`Throttle::wait`], with the number of
//! rows the unit will read). It pauses the caller while a limit is exceeded, then takes the
//! rows from a rate limit:
//!
//! - **Load**: status variables of the watched servers (the source and target pools), in the
//!   style of pt-table-checksum's `--max-load Threads_running=25` ([`parse_max_load`]). A
//!   value above its maximum pauses.
//! - **Replication lag**: `Seconds_Behind_Master` (`Seconds_Behind_Source`) of each replica
//!   (`SHOW ALL SLAVES STATUS` on MariaDB, `SHOW REPLICA STATUS` on MySQL 8.0.22 and later,
//!   `SHOW SLAVE STATUS` on older MySQL). A NULL lag means replication is not running: that
//!   pauses too, and says so, since the lag is then unknown and growing.
//! - **Rate**: a token bucket of rows per second holding at most one second's worth of rows.
//!   A unit larger than the bucket runs into debt that later units pay off: at 10,000 rows/s
//!   a 50,000-row chunk waits 4 s when the bucket is full and 5 s in steady state. Nobody sleeps
//!   longer than the rate requires, and without a rate nobody sleeps at all.
//!
//! Status checks are cheap for the servers: one check (one `SHOW GLOBAL STATUS` per watched
//! server, one replica status per replica) serves every caller for `check_interval` (1 s by
//! default), however many workers call `wait`, and concurrent callers share a check in flight.
//! While paused, callers re-check once per interval.
//!
//! Pauses are published through a [`tokio::sync::watch`] channel ([`Throttle::subscribe`]):
//! the list of exceeded limits, empty while running, each of which displays as e.g.
//! `Threads_running=31 > 25 on source`. [`Throttle::stats`] counts the pauses and the time
//! spent paused, for reports.
//!
//! Every wait returns [`DbError::Interrupted`] promptly when the cancellation token of any
//! watched server or replica (or one given with [`ThrottleBuilder::cancel_on`]) fires.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use mysql_async::Value as SqlValue;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conn::{Db, DbError, Flavor};

/// How often the servers are asked, at most, unless configured otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest check interval accepted: a paused caller polls once per interval.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

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

/// Parses load limits in pt-table-checksum's `--max-load` style: `Threads_running=25` or
/// `Threads_running=25,Threads_connected=400` (`:` may stand for `=`). Names are status
/// variables (letters, digits, `_`; matched case-insensitively, each at most once); maxima
/// are whole numbers of at least 1.
pub fn parse_max_load(s: &str) -> Result<Vec<LoadLimit>, String> {
    let all = s.trim();
    if all.is_empty() {
        return Err(format!("empty load limit: {MAX_LOAD_FORMAT}"));
    }
    let mut out: Vec<LoadLimit> = Vec::new();
    for item in all.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "empty item in load limit {all:?}: {MAX_LOAD_FORMAT}"
            ));
        }
        let Some((name, max)) = item.split_once(['=', ':']) else {
            return Err(format!(
                "load limit {item:?} has no maximum: {MAX_LOAD_FORMAT}"
            ));
        };
        let (name, max) = (name.trim(), max.trim());
        if name.is_empty() {
            return Err(format!(
                "load limit {item:?} names no status variable: {MAX_LOAD_FORMAT}"
            ));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{name:?} is not a status variable name (letters, digits and _ only)"
            ));
        }
        if max.is_empty() {
            return Err(format!(
                "load limit {item:?} has no maximum: {MAX_LOAD_FORMAT}"
            ));
        }
        if !max.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "the maximum of {name} must be a whole number, not {max:?}"
            ));
        }
        let max: u64 = max
            .parse()
            .map_err(|_| format!("the maximum of {name} is too large: {max}"))?;
        if max == 0 {
            return Err(format!("the maximum of {name} must be at least 1"));
        }
        if out.iter().any(|l| l.variable.eq_ignore_ascii_case(name)) {
            return Err(format!("{name} is limited twice"));
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

/// Counters for reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ThrottleStats {
    /// Times a check found a limit exceeded after finding none (or at the first check).
    pub pauses: u64,
    /// Wall-clock seconds spent paused (one pause stalls every caller: counted once).
    pub paused_secs: f64,
    /// Seconds callers slept for the rate limit, summed over callers.
    pub rate_wait_secs: f64,
    /// Status checks made (each asks every watched server and replica once).
    pub checks: u64,
}

/// Builds a [`Throttle`]. Without any limit set, the throttle never waits.
#[derive(Default)]
pub struct ThrottleBuilder {
    watched: Vec<Db>,
    load: Vec<LoadLimit>,
    lag: Option<(Duration, Vec<Db>)>,
    rate: u64,
    check_interval: Option<Duration>,
    cancel: Vec<CancellationToken>,
}

impl ThrottleBuilder {
    /// A server whose status variables are checked against the load limits (typically the
    /// source and the target pool). Its cancellation token interrupts waits.
    pub fn watch(mut self, db: Db) -> Self {
        self.watched.push(db);
        self
    }

    /// The load limits checked on every watched server.
    pub fn max_load(mut self, limits: Vec<LoadLimit>) -> Self {
        self.load = limits;
        self
    }

    /// Pause while any of `replicas` is more than `max` behind, or not replicating. Their
    /// cancellation tokens interrupt waits.
    pub fn max_lag(mut self, max: Duration, replicas: Vec<Db>) -> Self {
        self.lag = Some((max, replicas));
        self
    }

    /// At most `rows_per_second` rows per second; 0 for no rate limit.
    pub fn rate_limit(mut self, rows_per_second: u64) -> Self {
        self.rate = rows_per_second;
        self
    }

    /// How long one status check serves all callers, and how often paused callers re-check
    /// (default [`DEFAULT_CHECK_INTERVAL`], at least 10 ms).
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = Some(interval);
        self
    }

    /// Another token that interrupts waits (for a throttle without servers, or a token that
    /// is not any pool's).
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel.push(token);
        self
    }

    pub fn build(self) -> Throttle {
        let mut cancel = self.cancel;
        cancel.extend(self.watched.iter().map(|db| db.cancel_token().clone()));
        if let Some((_, replicas)) = &self.lag {
            cancel.extend(replicas.iter().map(|db| db.cancel_token().clone()));
        }
        let bucket = (self.rate > 0).then(|| Mutex::new(Bucket::new(self.rate)));
        let (tx, _) = watch::channel(Vec::new());
        Throttle {
            inner: Arc::new(Inner {
                watched: if self.load.is_empty() {
                    Vec::new()
                } else {
                    self.watched
                },
                load: self.load,
                lag: self.lag.filter(|(_, replicas)| !replicas.is_empty()),
                bucket,
                interval: self
                    .check_interval
                    .unwrap_or(DEFAULT_CHECK_INTERVAL)
                    .max(MIN_CHECK_INTERVAL),
                cancel,
                cache: tokio::sync::Mutex::new(None),
                counters: Mutex::new(Counters::default()),
                tx,
            }),
        }
    }
}

/// Pauses callers while servers are loaded or replicas lag, and limits the rate of rows.
/// Cheap to clone: clones share their checks, rate and counters.
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Servers checked for load (empty when there are no load limits).
    watched: Vec<Db>,
    load: Vec<LoadLimit>,
    /// The maximum lag and the replicas (never an empty list).
    lag: Option<(Duration, Vec<Db>)>,
    bucket: Option<Mutex<Bucket>>,
    interval: Duration,
    cancel: Vec<CancellationToken>,
    /// The last check; its lock is held while a check runs, so callers share it.
    cache: tokio::sync::Mutex<Option<Check>>,
    counters: Mutex<Counters>,
    tx: watch::Sender<Vec<Exceeded>>,
}

struct Check {
    at: Instant,
    exceeded: Vec<Exceeded>,
}

#[derive(Default)]
struct Counters {
    pauses: u64,
    paused: Duration,
    paused_since: Option<Instant>,
    rate_wait: Duration,
    checks: u64,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Throttle")
            .field(
                "watched",
                &i.watched
                    .iter()
                    .map(|d| d.role().name())
                    .collect::<Vec<_>>(),
            )
            .field("load", &i.load)
            .field("max_lag", &i.lag.as_ref().map(|(max, _)| max))
            .field(
                "rate",
                &i.bucket.as_ref().map(|b| lock(b).rate as u64).unwrap_or(0),
            )
            .field("check_interval", &i.interval)
            .finish()
    }
}

impl Throttle {
    pub fn builder() -> ThrottleBuilder {
        ThrottleBuilder::default()
    }

    /// A throttle that never waits.
    pub fn unlimited() -> Throttle {
        ThrottleBuilder::default().build()
    }

    /// Whether any limit is set (otherwise [`Throttle::wait`] returns at once).
    pub fn is_limited(&self) -> bool {
        self.has_checks() || self.inner.bucket.is_some()
    }

    /// Call before a unit of work that reads `rows` rows: waits while any limit is exceeded,
    /// then for the rate limit. Returns [`DbError::Interrupted`] as soon as a cancellation
    /// token fires, and the error of a failed status check.
    pub async fn wait(&self, rows: u64) -> Result<(), DbError> {
        if !self.is_limited() {
            return Ok(());
        }
        if self.inner.cancel.iter().any(|t| t.is_cancelled()) {
            return Err(DbError::Interrupted);
        }
        tokio::select! {
            biased;
            _ = self.cancelled() => Err(DbError::Interrupted),
            r = self.wait_uninterrupted(rows) => r,
        }
    }

    /// The limits exceeded at the last check; empty while not paused.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Exceeded>> {
        self.inner.tx.subscribe()
    }

    pub fn stats(&self) -> ThrottleStats {
        let c = lock(&self.inner.counters);
        let ongoing = c
            .paused_since
            .map(|since| Instant::now().saturating_duration_since(since))
            .unwrap_or_default();
        ThrottleStats {
            pauses: c.pauses,
            paused_secs: (c.paused + ongoing).as_secs_f64(),
            rate_wait_secs: c.rate_wait.as_secs_f64(),
            checks: c.checks,
        }
    }

    fn has_checks(&self) -> bool {
        !self.inner.watched.is_empty() || self.inner.lag.is_some()
    }

    async fn wait_uninterrupted(&self, rows: u64) -> Result<(), DbError> {
        if self.has_checks() {
            loop {
                let (paused, next) = self.status().await?;
                if !paused {
                    break;
                }
                tokio::time::sleep_until(next).await;
            }
        }
        if let Some(bucket) = &self.inner.bucket {
            let delay = lock(bucket).reserve(rows, Instant::now());
            if !delay.is_zero() {
                lock(&self.inner.counters).rate_wait += delay;
                tokio::time::sleep(delay).await;
            }
        }
        Ok(())
    }

    /// Whether a limit is exceeded, and when the answer expires. Runs a check when the last
    /// one is older than the interval; concurrent callers wait for that one check.
    async fn status(&self) -> Result<(bool, Instant), DbError> {
        let inner = &self.inner;
        let mut cache = inner.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let expires = c.at + inner.interval;
            if Instant::now() < expires {
                return Ok((!c.exceeded.is_empty(), expires));
            }
        }
        let exceeded = self.check().await?;
        let at = Instant::now();
        {
            let mut c = lock(&inner.counters);
            c.checks += 1;
            match (exceeded.is_empty(), c.paused_since) {
                (false, None) => {
                    c.pauses += 1;
                    c.paused_since = Some(at);
                }
                (true, Some(since)) => {
                    c.paused += at.saturating_duration_since(since);
                    c.paused_since = None;
                }
                _ => {}
            }
        }
        let paused = !exceeded.is_empty();
        inner.tx.send_if_modified(|current| {
            let changed = *current != exceeded;
            if changed {
                *current = exceeded.clone();
            }
            changed
        });
        *cache = Some(Check { at, exceeded });
        Ok((paused, at + inner.interval))
    }

    /// Asks every watched server and replica once.
    async fn check(&self) -> Result<Vec<Exceeded>, DbError> {
        let inner = &self.inner;
        let mut exceeded = Vec::new();
        for db in &inner.watched {
            exceeded.extend(load_exceeded(db, &inner.load).await?);
        }
        if let Some((max, replicas)) = &inner.lag {
            for db in replicas {
                for (name, lag) in replica_lags(db).await? {
                    let replica = match name {
                        Some(n) => format!("{} ({n})", db.endpoint().address()),
                        None => db.endpoint().address(),
                    };
                    let over = match lag {
                        None => true,
                        Some(secs) => Duration::from_secs(secs) > *max,
                    };
                    if over {
                        exceeded.push(Exceeded::Lag {
                            replica,
                            lag_secs: lag,
                            max_secs: max.as_secs_f64(),
                        });
                    }
                }
            }
        }
        Ok(exceeded)
    }

    /// Completes when any cancellation token fires (never, without tokens).
    async fn cancelled(&self) {
        let mut futs: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = self
            .inner
            .cancel
            .iter()
            .map(|t| Box::pin(t.cancelled()) as Pin<Box<dyn Future<Output = ()> + Send + '_>>)
            .collect();
        std::future::poll_fn(|cx| {
            for f in futs.iter_mut() {
                if f.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// The load limits `db` exceeds now.
async fn load_exceeded(db: &Db, limits: &[LoadLimit]) -> Result<Vec<Exceeded>, DbError> {
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
fn status_number(text: &str) -> Option<u64> {
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
async fn replica_lags(db: &Db) -> Result<Vec<(Option<String>, Option<u64>)>, DbError> {
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
fn version_at_least(version: &str, min: (u64, u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u64>().unwrap_or(0)
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next()) >= min
}

/// A token bucket of rows: refills at `rate` per second up to one second's worth; a caller
/// may take more than it holds and sleeps until the debt is paid.
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        let rate = rate as f64;
        Bucket {
            rate,
            capacity: rate.max(1.0),
            tokens: rate.max(1.0),
            at: Instant::now(),
        }
    }

    /// Takes `rows`; how long the caller must wait before using them.
    fn reserve(&mut self, rows: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
        self.tokens -= rows as f64;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        // Beyond `Duration`'s range (absurd row counts at tiny rates): wait "forever";
        // tokio clamps far deadlines, and cancellation still interrupts.
        Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_limits() {
        assert_eq!(
            parse_max_load("Threads_running=25").unwrap(),
            vec![LoadLimit {
                variable: "Threads_running".into(),
                max: 25
            }]
        );
        assert_eq!(
            parse_max_load(" Threads_running:25 , Threads_connected = 400 ").unwrap(),
            vec![
                LoadLimit {
                    variable: "Threads_running".into(),
                    max: 25
                },
                LoadLimit {
                    variable: "Threads_connected".into(),
                    max: 400
                }
            ]
        );
    }

    #[test]
    fn rejects_bad_limits_clearly() {
        for (input, expect) in [
            ("", "empty load limit"),
            ("   ", "empty load limit"),
            ("Threads_running", "has no maximum"),
            ("Threads_running=", "has no maximum"),
            ("=25", "names no status variable"),
            ("Threads_running=25,", "empty item"),
            ("Threads_running=-1", "whole number"),
            ("Threads_running=2.5", "whole number"),
            ("Threads_running=25x", "whole number"),
            ("Threads_running=0", "at least 1"),
            ("Threads_running=99999999999999999999999", "too large"),
            ("Threads running=25", "not a status variable name"),
            ("Threads_running=1,threads_RUNNING=2", "limited twice"),
            ("a=1=2", "whole number"),
        ] {
            let err = parse_max_load(input).expect_err(input);
            assert!(err.contains(expect), "{input:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,60}") {
            let _ = parse_max_load(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[A-Za-z_ =:,0-9.-]{0,40}") {
            let _ = parse_max_load(&s);
        }

        #[test]
        fn valid_lists_round_trip(
            limits in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_]{0,20}", 1u64.., 1..5),
            colon in any::<bool>(),
            space in any::<bool>(),
        ) {
            // Names differ case-insensitively (the parser refuses repeats).
            let mut seen = std::collections::HashSet::new();
            let limits: Vec<LoadLimit> = limits
                .into_iter()
                .filter(|(v, _)| seen.insert(v.to_ascii_lowercase()))
                .map(|(variable, max)| LoadLimit { variable, max })
                .collect();
            let sep = if colon { ":" } else { "=" };
            let pad = if space { " " } else { "" };
            let text: Vec<String> = limits
                .iter()
                .map(|l| format!("{pad}{}{pad}{sep}{pad}{}{pad}", l.variable, l.max))
                .collect();
            prop_assert_eq!(parse_max_load(&text.join(",")).unwrap(), limits.clone());
            let displayed: Vec<String> = limits.iter().map(|l| l.to_string()).collect();
            prop_assert_eq!(parse_max_load(&displayed.join(",")).unwrap(), limits);
        }
    }

    #[test]
    fn status_numbers() {
        assert_eq!(status_number("31"), Some(31));
        assert_eq!(status_number(" 2.1 "), Some(3));
        assert_eq!(status_number("ON"), None);
        assert_eq!(status_number("-1"), None);
        assert_eq!(status_number("NaN"), None);
    }

    #[test]
    fn versions() {
        assert!(version_at_least("8.0.22", (8, 0, 22)));
        assert!(version_at_least("8.0.36-0ubuntu0.22.04.1", (8, 0, 22)));
        assert!(version_at_least("8.4.0", (8, 0, 22)));
        assert!(!version_at_least("8.0.21-log", (8, 0, 22)));
        assert!(!version_at_least("5.7.44", (8, 0, 22)));
        assert!(!version_at_least("", (8, 0, 22)));
    }

    #[test]
    fn exceeded_reads_well() {
        let load = Exceeded::Load {
            server: "source".into(),
            variable: "Threads_running".into(),
            value: 31,
            max: 25,
        };
        assert_eq!(load.to_string(), "Threads_running=31 > 25 on source");
        let lag = Exceeded::Lag {
            replica: "10.0.0.5:3306".into(),
            lag_secs: Some(12),
            max_secs: 5.0,
        };
        assert_eq!(lag.to_string(), "replica 10.0.0.5:3306 lags 12s > 5s");
        let stopped = Exceeded::Lag {
            replica: "10.0.0.5:3306".into(),
            lag_secs: None,
            max_secs: 5.0,
        };
        assert!(stopped.to_string().contains("not running"), "{stopped}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_never_sleeps() {
        let t = Throttle::unlimited();
        assert!(!t.is_limited());
        let start = Instant::now();
        for _ in 0..1000 {
            t.wait(u64::MAX).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
        assert_eq!(t.stats(), ThrottleStats::default());
    }

    #[tokio::test(start_paused = true)]
    async fn large_chunks_pay_for_their_rows() {
        let t = Throttle::builder().rate_limit(10_000).build();
        let start = Instant::now();
        // The bucket starts with one second's worth: the first 50k rows wait 4 s …
        t.wait(50_000).await.unwrap();
        let first = Instant::now() - start;
        assert!(
            first >= Duration::from_secs(4) && first < Duration::from_millis(4010),
            "{first:?}"
        );
        // … and every further 50k rows 5 s.
        t.wait(50_000).await.unwrap();
        let second = Instant::now() - start - first;
        assert!(
            second >= Duration::from_secs(5) && second < Duration::from_millis(5010),
            "{second:?}"
        );
        let s = t.stats();
        assert!((s.rate_wait_secs - 9.0).abs() < 0.02, "{s:?}");
        assert_eq!(s.pauses, 0);
        assert_eq!(s.checks, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn small_chunks_use_the_burst_then_the_rate() {
        let t = Throttle::builder().rate_limit(1_000).build();
        let start = Instant::now();
        // 10 × 100 rows fit in the bucket: no sleep.
        for _ in 0..10 {
            t.wait(100).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
        // The next 9,000 rows take 9 s, 100 ms per chunk.
        for _ in 0..90 {
            t.wait(100).await.unwrap();
        }
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_millis(9050),
            "{took:?}"
        );
        // Idle time refills the bucket, but only up to one second's worth.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let before = Instant::now();
        t.wait(1_000).await.unwrap();
        assert_eq!(Instant::now(), before);
        t.wait(500).await.unwrap();
        let took = Instant::now() - before;
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(510),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let t = Throttle::builder().rate_limit(1_000).build();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let t = t.clone();
            tasks.spawn(async move {
                for _ in 0..4 {
                    t.wait(250).await.unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        // 8,000 rows, 1,000 of them from the initial bucket: 7 s.
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_secs(7) && took < Duration::from_millis(7050),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_interrupts_a_rate_wait() {
        let cancel = CancellationToken::new();
        let t = Throttle::builder()
            .rate_limit(1)
            .cancel_on(cancel.clone())
            .build();
        let start = Instant::now();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.cancel();
        });
        // Without the cancellation: about 1,000 s (or "forever" for u64::MAX rows).
        let r = t.wait(u64::MAX).await;
        assert!(matches!(r, Err(DbError::Interrupted)), "{r:?}");
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        // Once cancelled, every wait returns at once.
        let r = t.wait(1).await;
        assert!(matches!(r, Err(DbError::Interrupted)), "{r:?}");
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }

    #[test]
    fn bucket_handles_extremes() {
        let now = Instant::now();
        let mut b = Bucket::new(1);
        assert_eq!(b.reserve(1, now), Duration::ZERO);
        assert!(b.reserve(u64::MAX, now) > Duration::from_secs(1 << 60));
        let mut b = Bucket::new(u64::MAX);
        assert_eq!(b.reserve(u64::MAX, now), Duration::ZERO);
        assert_eq!(b.reserve(u64::MAX, now), Duration::from_secs(1));
    }
}
