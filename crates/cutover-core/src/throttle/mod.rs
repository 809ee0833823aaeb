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

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conn::{Db, DbError};

mod bucket;
mod limits;
mod servers;
#[cfg(test)]
mod tests;

use bucket::Bucket;
pub use limits::{parse_max_load, Exceeded, LoadLimit, LoadLimitError};
use servers::{load_exceeded, replica_lags};

/// How often the servers are asked, at most, unless configured otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest check interval accepted: a paused caller polls once per interval.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
