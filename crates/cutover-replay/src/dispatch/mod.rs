//! The dispatcher: reads the workload's records in order (from a reader thread), numbers
//! each session's records, decides once per statement what both sides do with it
//! (`classify`, once per exact text: what `--read-only` may send and what it sends instead),
//! spreads whole-second log times within their second ([`spread`]), and hands each record to
//! the lane its session holds on each side; sessions that find no lane free wait with their
//! records here ([`Lanes`]). Why this cannot deadlock: the comment at [`crate::run`].

use std::collections::HashMap;
use std::sync::Arc;

use cutover_workload::{Command, Record, WorkloadError};
use tokio::sync::mpsc;

use crate::classify::{Class, Rules, Txn};
use crate::ctx::Ctx;
use crate::job::{Job, NotRun, Pair, Side, Stmt, Wire};
use crate::lane::{run_lane, LaneDone};
use crate::report::Reason;
use crate::Speed;

mod classes;

use classes::Classes;

/// Captured times for the commands one session ran within one logged second, in order.
///
/// MariaDB's logs (and MySQL's slow log `SET timestamp`) give whole seconds, so every
/// command of a second would be due at its start, and the later ones, which cannot start
/// before the earlier ones end, would all count as late. The rule: the commands keep their
/// order and their durations (`latencies_us`: the slow log's `Query_time`; none from the
/// general log), and the rest of the second (think time, which the log does not show) is
/// spread evenly between them: command `i` is due at
/// `second + Σ_{k<i} latency_k + i × (1 s − Σ latency) / n`. When the durations add up to
/// more than the second, they are scaled into it. Every time stays within the second, so
/// commands of different seconds keep their order.
pub fn spread(second_us: i64, latencies_us: &[Option<u64>]) -> Vec<i64> {
    const SECOND: i64 = 1_000_000;
    let n = latencies_us.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    let lat: Vec<i64> = latencies_us
        .iter()
        .map(|l| l.unwrap_or(0).min(SECOND as u64) as i64)
        .collect();
    let busy: i64 = lat.iter().sum();
    let gap = (SECOND - busy).max(0) / n;
    let mut out = Vec::with_capacity(lat.len());
    let mut t = 0i64;
    for l in lat {
        out.push(second_us + t.min(SECOND - 1));
        let l = if busy > SECOND {
            ((l as i128 * SECOND as i128) / busy as i128) as i64
        } else {
            l
        };
        t += l + gap;
    }
    out
}

/// The dispatcher's state for one session.
#[derive(Default)]
pub(crate) struct Disp {
    pub(crate) seq: u64,
    pub(crate) pair: Option<Arc<Pair>>,
    pub(crate) in_txn: bool,
    pub(crate) skipped_write: bool,
    /// Prepared statements' texts, by id.
    pub(crate) prepared: HashMap<u32, String>,
    /// Records of the current whole second (when due times matter), not yet sent.
    pub(crate) group: Vec<Record>,
    pub(crate) quit: bool,
}

/// At most this many records wait in one lane's channel.
pub(crate) const LANE_QUEUE: usize = 1024;

pub(crate) type ReadResult = Result<Record, cutover_workload::WorkloadError>;

/// Records read ahead of the dispatcher, and how many go over at once.
pub(crate) const READ_QUEUE: usize = 4096;
pub(crate) const READ_BATCH: usize = 128;

/// The reader's batches, one record at a time.
pub(crate) struct Batches {
    pub(crate) rx: mpsc::Receiver<Vec<ReadResult>>,
    pub(crate) batch: std::vec::IntoIter<ReadResult>,
}

impl Batches {
    pub(crate) async fn recv(&mut self) -> Option<ReadResult> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }
}

/// Sends a job to a lane. When the lane's channel is full, waits for room for a quarter of
/// it rather than for one slot: the dispatcher wakes once per batch of records the lane
/// has taken, not once per record.
pub(crate) async fn send_job(tx: &mpsc::Sender<Arc<Job>>, job: Arc<Job>) -> bool {
    match tx.try_send(job) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(job)) => {
            // The permits are given back at once; this task is the channel's only sender,
            // so the room stays.
            if tx.reserve_many(LANE_QUEUE / 4).await.is_err() {
                return false;
            }
            tx.send(job).await.is_ok()
        }
    }
}

/// Starts the reader thread: decompression and JSON decoding off the async workers. Records
/// go over in batches: one wake-up per batch, not per record.
pub(crate) fn read_ahead(
    records: impl Iterator<Item = ReadResult> + Send + 'static,
) -> (Batches, tokio::task::JoinHandle<()>) {
    let (rec_tx, rx) = mpsc::channel::<Vec<ReadResult>>(READ_QUEUE / READ_BATCH);
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(READ_BATCH);
        for r in records {
            let stop = r.is_err();
            batch.push(r);
            if batch.len() == READ_BATCH || stop {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
                if rec_tx.blocking_send(full).is_err() || stop {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = rec_tx.blocking_send(batch);
        }
    });
    let batches = Batches {
        rx,
        batch: Vec::new().into_iter(),
    };
    (batches, reader)
}

/// What the dispatcher leaves when the workload is read (or the replay stops): the lanes'
/// tasks to wait for.
pub(crate) struct Dispatched {
    /// The workload could not be read to its end.
    pub read_error: Option<WorkloadError>,
    /// Lanes opened (one connection each per server).
    pub lanes_used: u64,
    pub handles: Vec<Lane>,
    /// The captured time of the workload's last record.
    pub workload_end: i64,
}

/// Dispatches every record, `first` (already read) and the rest of `records`, to at most
/// `lane_limit` lanes; at the end of the workload ends the sessions still open and runs the
/// waiting ones.
pub(crate) async fn dispatch(
    rec_rx: &mut Batches,
    first: Option<Record>,
    ctx: Arc<Ctx>,
    rules: Rules,
    lane_limit: usize,
) -> Dispatched {
    let first_ts = ctx.first_ts;
    let cancel = ctx.cancel.clone();
    let mut d = Dispatcher {
        classes: Classes::new(ctx.read_only),
        ctx: ctx.clone(),
        rules,
        lanes: Lanes::new(lane_limit),
        handles: Vec::new(),
        sessions: HashMap::new(),
        grouped: Vec::new(),
        closed: false,
    };
    // Due times matter only at a speed factor; then whole-second times are spread.
    let spreading = matches!(ctx.speed, Speed::Factor(_));
    let mut current_second = first_ts.div_euclid(1_000_000);
    let mut workload_end = first_ts;
    let mut pending = first.map(Ok);
    let mut read_error = None;
    loop {
        let r = match pending.take() {
            Some(r) => r,
            None => match rec_rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        if cancel.is_cancelled() || d.closed {
            break;
        }
        workload_end = workload_end.max(r.ts_us);
        if !spreading {
            let at = r.ts_us;
            d.dispatch(r, at).await;
            continue;
        }
        // A new second closes every session's group of an earlier one.
        let second = r.ts_us.div_euclid(1_000_000);
        if second > current_second {
            current_second = second;
            d.flush_all().await;
        }
        let s = r.session;
        let same_group = d
            .sessions
            .get(&s)
            .and_then(|st| st.group.first())
            .map(|g| g.ts_us == r.ts_us);
        if same_group == Some(false) {
            d.flush(s).await;
        }
        if r.ts_us.rem_euclid(1_000_000) == 0 {
            let st = d.sessions.entry(s).or_default();
            if st.group.is_empty() {
                d.grouped.push(s);
            }
            st.group.push(r);
        } else {
            let at = r.ts_us;
            d.dispatch(r, at).await;
        }
    }
    if !cancel.is_cancelled() && read_error.is_none() {
        d.flush_all().await;
        d.end_all().await;
    }
    Dispatched {
        read_error,
        lanes_used: d.lanes.all.len() as u64,
        handles: std::mem::take(&mut d.handles),
        workload_end,
    }
}

/// A lane's channel on the target and on the baseline.
pub(crate) type LaneTx = (mpsc::Sender<Arc<Job>>, Option<mpsc::Sender<Arc<Job>>>);

pub(crate) type Lane = (Side, tokio::task::JoinHandle<LaneDone>);

/// Records waiting for a lane, at most (all waiting sessions together).
pub(crate) const MAX_HELD: usize = 200_000;

/// The lanes and which session holds each. A session holds a lane from its first record
/// to its end; a session that finds none free waits with its records here (see [`run`] on
/// why this cannot deadlock).
pub(crate) struct Lanes {
    pub(crate) limit: usize,
    pub(crate) all: Vec<LaneTx>,
    pub(crate) free: Vec<usize>,
    pub(crate) bound: HashMap<u64, usize>,
    /// Sessions waiting for a lane, in the order they started.
    pub(crate) waiting: std::collections::VecDeque<u64>,
    pub(crate) held: HashMap<u64, Vec<Arc<Job>>>,
    pub(crate) held_total: usize,
    /// Sessions dropped for `MAX_HELD`: their later statements are not compared either.
    pub(crate) dropped: std::collections::HashSet<u64>,
}

impl Lanes {
    pub(crate) fn new(limit: usize) -> Lanes {
        Lanes {
            limit,
            all: Vec::new(),
            free: Vec::new(),
            bound: HashMap::new(),
            waiting: Default::default(),
            held: HashMap::new(),
            held_total: 0,
            dropped: Default::default(),
        }
    }
}

/// Reads the records in order, numbers them per session, decides once per statement what
/// both sides do with it, and hands it to the session's lane on each side.
pub(crate) struct Dispatcher {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) rules: Rules,
    pub(crate) lanes: Lanes,
    pub(crate) handles: Vec<Lane>,
    pub(crate) sessions: HashMap<u64, Disp>,
    pub(crate) classes: Classes,
    /// Sessions with a whole-second group waiting.
    pub(crate) grouped: Vec<u64>,
    /// A lane is gone (cancelled): stop.
    pub(crate) closed: bool,
}

impl Dispatcher {
    pub(crate) async fn flush_all(&mut self) {
        for s in std::mem::take(&mut self.grouped) {
            self.flush(s).await;
        }
    }

    /// Sends a session's whole-second group with its due times spread over the second.
    pub(crate) async fn flush(&mut self, session: u64) {
        let Some(st) = self.sessions.get_mut(&session) else {
            return;
        };
        let group = std::mem::take(&mut st.group);
        let Some(first) = group.first() else {
            return;
        };
        let lat: Vec<Option<u64>> = group
            .iter()
            .map(|r| r.response.as_ref().and_then(|x| x.latency_us))
            .collect();
        let times = spread(first.ts_us, &lat);
        for (r, at) in group.into_iter().zip(times) {
            self.dispatch(r, at).await;
        }
    }

    pub(crate) async fn dispatch(&mut self, r: Record, at_us: i64) {
        let session = r.session;
        let read_only = self.ctx.read_only;
        if self.lanes.dropped.contains(&session) {
            return self.dropped(r);
        }
        let st = self.sessions.entry(session).or_default();
        let pair = st.pair.get_or_insert_with(|| Arc::new(Pair::new())).clone();
        // Every record of the session is numbered, sent or not, so messages can name it.
        let seq = st.seq;
        st.seq += 1;
        let mut stmt = None;
        let mut wire = Wire::Recorded;
        match &r.command {
            Command::Query { sql } => {
                let (fp, class) = self.classes.get(sql, self.rules);
                if read_only {
                    if let Some(why) = &class.refusal {
                        if st.in_txn {
                            st.skipped_write = true;
                        }
                        let why = NotRun::new(Reason::ReadOnlyWrite, why.clone());
                        return self.ctx.not_compared(&fp, session, sql, &why);
                    }
                    if let Some(u) = &class.unlocked {
                        wire = Wire::Unlocked(u.clone());
                    }
                }
                let unlocked = wire != Wire::Recorded;
                stmt = Some(st.statement(fp, class, None, unlocked));
            }
            Command::Execute { stmt: id, .. } => {
                let Some(text) = st.prepared.get(id).cloned() else {
                    // Never sent, with or without --read-only: what it is cannot be known.
                    let shown = format!("EXECUTE stmt {id}");
                    let (fp, _) = self.classes.get(&shown, self.rules);
                    let why = NotRun::new(
                        Reason::PrepareMissing,
                        format!("statement {id} was not prepared in the recording (prepared before the capture began?)"),
                    );
                    return self.ctx.not_compared(&fp, session, &shown, &why);
                };
                let (fp, class) = self.classes.get(&text, self.rules);
                if read_only {
                    if let Some(why) = &class.refusal {
                        if st.in_txn {
                            st.skipped_write = true;
                        }
                        let why = NotRun::new(Reason::ReadOnlyWrite, why.clone());
                        return self.ctx.not_compared(&fp, session, &text, &why);
                    }
                }
                // Under --read-only a locking read was prepared without its lock.
                let unlocked = read_only && class.unlocked.is_some();
                stmt = Some(st.statement(fp, class, Some(text), unlocked));
            }
            Command::Prepare { stmt: id, sql } => {
                if read_only {
                    let (_, class) = self.classes.get(sql, self.rules);
                    if class.refusal.is_some() {
                        wire = Wire::Withheld;
                    } else if let Some(u) = &class.unlocked {
                        wire = Wire::Unlocked(u.clone());
                    }
                }
                if st.prepared.len() < 100_000 {
                    st.prepared.insert(*id, sql.clone());
                }
            }
            Command::Close { stmt: id } => {
                st.prepared.remove(id);
            }
            Command::Reset | Command::ChangeUser => {
                st.prepared.clear();
                st.in_txn = false;
                st.skipped_write = false;
            }
            Command::Quit => st.quit = true,
            Command::Connect | Command::InitDb { .. } => {}
        }
        if st.quit && st.group.is_empty() {
            self.sessions.remove(&session);
        }
        let job = Arc::new(Job {
            session,
            seq,
            at_us,
            rec: r,
            stmt,
            pair,
            wire,
            half: std::sync::Mutex::new(None),
            conflicts: std::sync::Mutex::new(Vec::new()),
        });
        self.route(job).await;
    }

    /// A record of a session dropped for the connection limit.
    pub(crate) fn dropped(&mut self, r: Record) {
        if r.command == Command::Quit {
            self.lanes.dropped.remove(&r.session);
        }
        let sql = match &r.command {
            Command::Query { sql } => sql.clone(),
            Command::Execute { stmt, .. } => format!("EXECUTE stmt {stmt}"),
            _ => return,
        };
        let (fp, _) = self.classes.get(&sql, self.rules);
        self.ctx.not_compared(&fp, r.session, &sql, &dropped_why());
    }

    /// Hands a job to its session's lane, or keeps it while the session waits for one.
    pub(crate) async fn route(&mut self, job: Arc<Job>) {
        let session = job.session;
        if let Some(&k) = self.lanes.bound.get(&session) {
            let quit = job.rec.command == Command::Quit;
            self.send(k, job).await;
            if quit {
                self.lanes.bound.remove(&session);
                self.release(k).await;
            }
            return;
        }
        if let Some(held) = self.lanes.held.get_mut(&session) {
            if self.lanes.held_total >= MAX_HELD {
                return self.drop_waiting(session, Some(job));
            }
            held.push(job);
            self.lanes.held_total += 1;
            return;
        }
        match self.take_lane() {
            Some(k) => {
                self.lanes.bound.insert(session, k);
                let quit = job.rec.command == Command::Quit;
                self.send(k, job).await;
                if quit {
                    self.lanes.bound.remove(&session);
                    self.release(k).await;
                }
            }
            None => {
                if self.lanes.held_total >= MAX_HELD {
                    self.lanes.waiting.push_back(session);
                    self.lanes.held.insert(session, Vec::new());
                    return self.drop_waiting(session, Some(job));
                }
                self.lanes.waiting.push_back(session);
                self.lanes.held.insert(session, vec![job]);
                self.lanes.held_total += 1;
            }
        }
    }

    /// A waiting session is given up (too many records waiting): every statement it holds
    /// and every later one is counted as not compared.
    pub(crate) fn drop_waiting(&mut self, session: u64, job: Option<Arc<Job>>) {
        self.lanes.waiting.retain(|s| *s != session);
        let mut jobs = self.lanes.held.remove(&session).unwrap_or_default();
        self.lanes.held_total -= jobs.len();
        jobs.extend(job);
        let mut quit = false;
        for j in jobs {
            quit |= j.rec.command == Command::Quit;
            if let Some(st) = &j.stmt {
                self.ctx
                    .not_compared(&st.fingerprint, session, j.sql(), &dropped_why());
            }
        }
        if !quit {
            self.lanes.dropped.insert(session);
        }
    }

    /// A free lane, or a new one while there are fewer than the limit.
    pub(crate) fn take_lane(&mut self) -> Option<usize> {
        if let Some(k) = self.lanes.free.pop() {
            return Some(k);
        }
        if self.lanes.all.len() >= self.lanes.limit {
            return None;
        }
        let mut spawn = |side: Side| {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            self.handles
                .push((side, tokio::spawn(run_lane(side, rx, self.ctx.clone()))));
            tx
        };
        let t = spawn(Side::Target);
        let b = self.ctx.baseline.is_some().then(|| spawn(Side::Baseline));
        self.lanes.all.push((t, b));
        Some(self.lanes.all.len() - 1)
    }

    /// Lane `k`'s session has ended: the first waiting session takes it (its records queue
    /// behind the end of the previous one, whose connection the lane closes first).
    pub(crate) async fn release(&mut self, k: usize) {
        while let Some(session) = self.lanes.waiting.pop_front() {
            if self.hand_over(session, k).await {
                self.lanes.bound.insert(session, k);
                return;
            }
        }
        self.lanes.free.push(k);
    }

    /// Sends a waiting session's records to lane `k`; whether the session goes on there
    /// (its `quit` is not among them).
    pub(crate) async fn hand_over(&mut self, session: u64, k: usize) -> bool {
        let jobs = self.lanes.held.remove(&session).unwrap_or_default();
        self.lanes.held_total -= jobs.len();
        let mut quit = false;
        for j in jobs {
            quit |= j.rec.command == Command::Quit;
            self.send(k, j).await;
        }
        !quit
    }

    /// At the end of the workload: sessions still holding a lane are ended (the workload
    /// has no more of them), then the waiting ones run, spread over the lanes.
    pub(crate) async fn end_all(&mut self) {
        let mut bound: Vec<(u64, usize)> = self.lanes.bound.drain().collect();
        bound.sort_by_key(|(_, k)| *k);
        for (session, k) in bound {
            let end = self.end_job(session);
            self.send(k, end).await;
            self.lanes.free.push(k);
        }
        let mut next = 0usize;
        while let Some(session) = self.lanes.waiting.pop_front() {
            if self.closed {
                break;
            }
            let k = match self.lanes.all.len() {
                0 => match self.take_lane() {
                    Some(k) => k,
                    None => break,
                },
                n => next % n,
            };
            next += 1;
            if self.hand_over(session, k).await {
                let end = self.end_job(session);
                self.send(k, end).await;
            }
        }
    }

    /// A `quit` the workload does not hold, ending a session at the end of the workload.
    pub(crate) fn end_job(&mut self, session: u64) -> Arc<Job> {
        let (seq, pair) = match self.sessions.remove(&session) {
            Some(st) => (st.seq, st.pair.unwrap_or_else(|| Arc::new(Pair::new()))),
            None => (0, Arc::new(Pair::new())),
        };
        Arc::new(Job {
            session,
            seq,
            at_us: self.ctx.first_ts,
            rec: Record {
                session,
                ts_us: self.ctx.first_ts,
                db: None,
                user: None,
                command: Command::Quit,
                response: None,
            },
            stmt: None,
            pair,
            wire: Wire::Recorded,
            half: std::sync::Mutex::new(None),
            conflicts: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub(crate) async fn send(&mut self, k: usize, job: Arc<Job>) {
        let Some((t, b)) = self.lanes.all.get(k).cloned() else {
            return;
        };
        // The target's lane first, then the baseline's: see `run` on why this order.
        if !send_job(&t, job.clone()).await {
            self.closed = true;
        }
        if let Some(b) = b {
            if !send_job(&b, job).await {
                self.closed = true;
            }
        }
    }
}

pub(crate) fn dropped_why() -> NotRun {
    NotRun::new(
        Reason::ConnectionLimit,
        format!(
            "no lane free within --max-connections while {MAX_HELD} records already waited for one"
        ),
    )
}

impl Disp {
    /// Transaction tracking for a statement both sides run.
    pub(crate) fn statement(
        &mut self,
        fingerprint: Arc<str>,
        class: Arc<Class>,
        prepared: Option<String>,
        unlocked: bool,
    ) -> Stmt {
        if class.txn == Txn::Begin {
            self.in_txn = true;
            self.skipped_write = false;
        }
        let after_skipped_write = self.in_txn && self.skipped_write;
        if class.txn == Txn::End {
            self.in_txn = false;
            self.skipped_write = false;
        }
        Stmt {
            fingerprint,
            class,
            after_skipped_write,
            unlocked,
            prepared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_second_is_spread_by_order_and_duration() {
        // Three commands, 100 ms of work: 900 ms of think time, 300 ms after each.
        let t = spread(5_000_000, &[Some(50_000), Some(50_000), None]);
        assert_eq!(t, vec![5_000_000, 5_350_000, 5_700_000]);
        // Without durations (the general log): evenly.
        assert_eq!(spread(0, &[None, None]), vec![0, 500_000]);
        // Longer than the second: durations scaled into it.
        let t = spread(0, &[Some(900_000), Some(300_000), Some(0)]);
        assert_eq!(t, vec![0, 750_000, 999_999]);
        assert!(spread(7, &[]).is_empty());
    }

    proptest! {
        #[test]
        fn spread_keeps_order_and_stays_in_the_second(
            second in -1_000_000i64..1_000_000_000,
            lat in proptest::collection::vec(proptest::option::of(0u64..3_000_000), 0..200),
        ) {
            let second = second * 1_000_000;
            let t = spread(second, &lat);
            prop_assert_eq!(t.len(), lat.len());
            if let Some(f) = t.first() {
                prop_assert_eq!(*f, second);
            }
            for w in t.windows(2) {
                prop_assert!(w[0] <= w[1]);
            }
            for x in &t {
                prop_assert!(*x >= second && *x < second + 1_000_000);
            }
        }
    }
}
