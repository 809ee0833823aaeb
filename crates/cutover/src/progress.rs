//! Progress of long commands, on stderr, the same figures shown two ways.
//!
//! On a terminal: bars (indicatif), redrawn a few times a second, one for the whole run and
//! one for the item in progress (diff's current table). Off a terminal (a log file, `nohup`,
//! CI, a runbook step): one plain line every `--progress-interval` (10 s by default), opening
//! with the time, so a log shows how far a three-hour diff had got and when. `--quiet` shows
//! neither; warnings, errors and results still print.
//!
//! Engines never print. Each engine reports what happens through a small trait of its own
//! (diff's `Progress`, replay's `Progress`, verify's `Observer`); the command's module here
//! ([`diff`], [`replay`], [`verify`], [`check`], [`capture`]) keeps the figures as a
//! [`Meter`], and one [`Reporter`] per run reads the meter on a thread of its own and draws
//! it. Reading on a timer, rather than drawing on every event, keeps the cost per event to a
//! few atomic additions, and a stalled engine still shows (its rate falls, its ETA grows).
//!
//! Rates are measured over the last [`RATE_WINDOW`], so an ETA follows the current speed
//! rather than the average since the start; the final line gives the average of the run.

pub mod capture;
pub mod check;
pub mod diff;
pub mod replay;
pub mod verify;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use diff::DiffProgress;

/// The span a rate is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);
/// How often bars are redrawn on a terminal.
const BAR_TICK: Duration = Duration::from_millis(200);
/// How often figures are sampled for the rate off a terminal (lines are rarer).
const SAMPLE_TICK: Duration = Duration::from_secs(1);
/// `--progress-interval`'s default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown in this run (the global flags `--quiet`, `--progress-interval`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub quiet: bool,
    pub interval: Duration,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Takes the global flags once, before any command runs; a bad interval is exit 2.
pub fn configure(quiet: bool, interval: &str) -> Result<()> {
    let interval = cutover_core::duration::parse_duration(interval)
        .map_err(|e| anyhow!("--progress-interval: {e}"))?;
    if interval < Duration::from_millis(100) {
        return Err(anyhow!(
            "--progress-interval: {interval:?} is too short; give 100ms or more (--quiet shows no progress)"
        ));
    }
    let _ = SETTINGS.set(Settings { quiet, interval });
    Ok(())
}

/// Whether progress is shown at all (not `--quiet`): figures that cost a query are
/// gathered only then.
pub fn enabled() -> bool {
    !settings().quiet
}

fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or(Settings {
        quiet: false,
        interval: DEFAULT_INTERVAL,
    })
}

/// What a count is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Things, named in the plural (`rows`, `statements`, `events`).
    Count(&'static str),
    /// Bytes (shown in KiB, MiB, GiB).
    Bytes,
    /// A countdown: the bar fills, no count or rate is shown (the command's figures say
    /// how long is left).
    Countdown,
}

/// How long is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eta {
    /// From the total and the measured rate.
    FromRate,
    /// The command knows (a replay at the recorded pace, a run with `--for`).
    Given(Duration),
    /// Not shown.
    None,
}

/// The item in progress, with its own count (diff: the current table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub label: String,
    pub done: u64,
    pub total: Option<u64>,
}

/// A command's figures at one instant.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Figures shown before the main count (`3/404 tables`).
    pub before: Vec<String>,
    /// The main count: work done so far, and the whole when known.
    pub done: u64,
    pub total: Option<u64>,
    /// The total is an estimate (shown as `~N`).
    pub approx_total: bool,
    pub unit: Unit,
    pub eta: Eta,
    /// Figures shown after the rate and ETA (`12 sessions, 0 differences`).
    pub after: Vec<String>,
    pub item: Option<Item>,
}

impl Reading {
    pub fn new(unit: Unit) -> Reading {
        Reading {
            before: Vec::new(),
            done: 0,
            total: None,
            approx_total: false,
            unit,
            eta: Eta::FromRate,
            after: Vec::new(),
            item: None,
        }
    }
}

/// A command's figures, read by the reporter's thread.
pub trait Meter: Send + Sync {
    fn read(&self) -> Reading;
}

/// Where this run shows progress.
enum View {
    Off,
    Lines(Duration),
    Bars(Bars),
}

struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    /// Whether the main bar is drawn with a length (else as a spinner); `None` until drawn.
    bounded: Mutex<Option<bool>>,
    item: Mutex<Option<ProgressBar>>,
}

/// Rates over the last [`RATE_WINDOW`], from samples of the main count.
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
    first: (Instant, u64),
}

impl RateWindow {
    fn new(now: Instant, done: u64) -> RateWindow {
        RateWindow {
            samples: VecDeque::from([(now, done)]),
            first: (now, done),
        }
    }

    fn sample(&mut self, now: Instant, done: u64) {
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Units per second over the window; `None` until half a second has been seen.
    fn current(&self) -> Option<f64> {
        let (t0, d0) = *self.samples.front()?;
        let (t1, d1) = *self.samples.back()?;
        let span = t1.duration_since(t0).as_secs_f64();
        (span >= 0.5).then(|| d1.saturating_sub(d0) as f64 / span)
    }

    /// Units per second since the reporter started.
    fn average(&self, now: Instant, done: u64) -> Option<f64> {
        let span = now.duration_since(self.first.0).as_secs_f64();
        (span >= 0.5).then(|| done.saturating_sub(self.first.1) as f64 / span)
    }
}

struct Shared {
    what: &'static str,
    meter: Arc<dyn Meter>,
    view: View,
    started: Instant,
    rate: Mutex<RateWindow>,
    stopped: Mutex<bool>,
    wake: Condvar,
    /// A progress line has been written (off a terminal).
    wrote: AtomicBool,
}

/// Shows one command's progress until [`Reporter::finish`] (or drop).
pub struct Reporter {
    shared: Arc<Shared>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The bars on the terminal now, if any.
static DRAWING: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Runs `f`, which writes to the terminal, with the bars (if any are drawn) lifted out of
/// its way: its lines appear above them instead of through them. Stderr lines written
/// while a command shows bars (a throttle's pause, a warning) go through here.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let drawing = lock(&DRAWING).clone();
    match drawing {
        Some(multi) => multi.suspend(f),
        None => f(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reporter {
    /// Starts showing `meter` as `what` (the command's name), as the settings and stderr
    /// say: bars on a terminal, lines off one, nothing with `--quiet`.
    pub fn start(what: &'static str, meter: Arc<dyn Meter>) -> Reporter {
        let s = settings();
        let view = if s.quiet {
            View::Off
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            // Styled before it is added: indicatif draws a bar as soon as it is added.
            let main = multi.add(
                ProgressBar::no_length()
                    .with_style(bar_style("{prefix:.bold} {msg}"))
                    .with_prefix(what),
            );
            *lock(&DRAWING) = Some(multi.clone());
            View::Bars(Bars {
                multi,
                main,
                bounded: Mutex::new(None),
                item: Mutex::new(None),
            })
        } else {
            View::Lines(s.interval)
        };
        Reporter::with_view(what, meter, view)
    }

    fn with_view(what: &'static str, meter: Arc<dyn Meter>, view: View) -> Reporter {
        let now = Instant::now();
        let done = meter.read().done;
        let shared = Arc::new(Shared {
            what,
            meter,
            view,
            started: now,
            rate: Mutex::new(RateWindow::new(now, done)),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            wrote: AtomicBool::new(false),
        });
        let ticker = match shared.view {
            View::Off => None,
            _ => {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || s.run())
                    .ok()
            }
        };
        Reporter {
            shared,
            ticker: Mutex::new(ticker),
        }
    }

    /// A line for the human output (stdout) now, above the bars on a terminal: what a
    /// command reports as it happens (a confirmed mismatch), not progress, so `--quiet`
    /// does not hold it back.
    pub fn println_out(&self, line: &str) {
        suspend(|| outln!("{line}"));
    }

    /// A line for stderr now (a warning, an event), above the bars on a terminal.
    pub fn println_err(&self, line: &str) {
        // `errln!` lifts the bars itself (`out::stderr`); suspending twice would deadlock.
        errln!("{line}");
    }

    /// Stops, leaving the final figures: the bar stays as the run's summary line on a
    /// terminal; off one a last line is written with the average rate, when the run was
    /// long enough to write progress lines (a command that ends within its first interval
    /// adds nothing to its output).
    pub fn finish(&self) {
        if !self.stop() {
            return;
        }
        let s = &self.shared;
        let r = s.meter.read();
        let text = s.figures(&r, Instant::now(), true);
        match &s.view {
            View::Off => {}
            View::Lines(_) => {
                if s.wrote.load(Ordering::Relaxed) {
                    errln!("{} {}: finished: {text}", timestamp(), s.what);
                }
            }
            View::Bars(b) => {
                if let Some(item) = lock(&b.item).take() {
                    item.finish_and_clear();
                    b.multi.remove(&item);
                }
                s.draw_main(b, &r);
                b.main.finish_with_message(text);
            }
        }
    }

    /// Ends the ticker; false when it had already ended.
    fn stop(&self) -> bool {
        if matches!(self.shared.view, View::Bars(_)) {
            *lock(&DRAWING) = None;
        }
        {
            let mut stopped = lock(&self.shared.stopped);
            if *stopped {
                return false;
            }
            *stopped = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.ticker).take() {
            let _ = t.join();
        }
        true
    }
}

impl Drop for Reporter {
    /// An early return (an error) leaves no bar half drawn and no thread behind.
    fn drop(&mut self) {
        if self.stop() {
            if let View::Bars(b) = &self.shared.view {
                if let Some(item) = lock(&b.item).take() {
                    item.finish_and_clear();
                }
                b.main.finish_and_clear();
            }
        }
    }
}

impl Shared {
    fn run(&self) {
        let (tick, interval) = match self.view {
            View::Bars(_) => (BAR_TICK, BAR_TICK),
            View::Lines(i) => (i.min(SAMPLE_TICK), i),
            View::Off => return,
        };
        let mut next_line = self.started + interval;
        loop {
            {
                let stopped = lock(&self.stopped);
                if *stopped {
                    return;
                }
                let (stopped, _) = self
                    .wake
                    .wait_timeout(stopped, tick)
                    .unwrap_or_else(|p| p.into_inner());
                if *stopped {
                    return;
                }
            }
            let now = Instant::now();
            let r = self.meter.read();
            lock(&self.rate).sample(now, r.done);
            match &self.view {
                View::Bars(b) => {
                    b.main.set_message(self.figures(&r, now, false));
                    self.draw_main(b, &r);
                    self.draw_item(b, &r);
                }
                View::Lines(_) if now >= next_line => {
                    // Late ticks (a suspended process) do not bunch up: the next line is
                    // an interval after this one.
                    next_line = now + interval;
                    errln!(
                        "{} {}: {}",
                        timestamp(),
                        self.what,
                        self.figures(&r, now, false)
                    );
                    self.wrote.store(true, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    fn draw_main(&self, b: &Bars, r: &Reading) {
        let bounded = r.total.is_some();
        {
            let mut drawn = lock(&b.bounded);
            if *drawn != Some(bounded) {
                *drawn = Some(bounded);
                if bounded {
                    b.main
                        .set_style(bar_style("{prefix:.bold} [{bar:25}] {msg}"));
                } else {
                    b.main.unset_length();
                    b.main.set_style(
                        bar_style("{spinner} {prefix:.bold} {msg}").tick_chars("|/-\\ "),
                    );
                }
            }
        }
        match r.total {
            Some(total) => {
                b.main.set_length(total.max(r.done).max(1));
                b.main.set_position(r.done);
            }
            None => {
                b.main.set_position(r.done);
                b.main.tick();
            }
        }
    }

    fn draw_item(&self, b: &Bars, r: &Reading) {
        let mut slot = lock(&b.item);
        match &r.item {
            None => {
                if let Some(old) = slot.take() {
                    old.finish_and_clear();
                    b.multi.remove(&old);
                }
            }
            Some(it) => {
                let bar = slot.get_or_insert_with(|| {
                    b.multi
                        .add(ProgressBar::new(1).with_style(bar_style("  [{bar:25}] {msg}")))
                });
                let total = it.total.unwrap_or(0).max(it.done).max(1);
                bar.set_length(total);
                bar.set_position(it.done);
                let unit = match r.unit {
                    Unit::Count(n) => Some(n),
                    _ => None,
                };
                bar.set_message(item_text(it, unit));
            }
        }
    }

    /// The figures as one line of text (without the time and the command's name); the
    /// item in progress closes it unless it has a bar of its own (on a terminal).
    fn figures(&self, r: &Reading, now: Instant, finished: bool) -> String {
        let mut parts: Vec<String> = r.before.clone();
        let unit_name = match r.unit {
            Unit::Count(n) => Some(n),
            Unit::Bytes => Some("bytes"),
            Unit::Countdown => None,
        };
        if unit_name.is_some() {
            let amount = |n: u64| match r.unit {
                Unit::Bytes => bytes(n),
                _ => count(n),
            };
            let mut done = match (r.total, finished) {
                (Some(t), false) if t > 0 => format!(
                    "{}/{}{}",
                    amount(r.done),
                    if r.approx_total { "~" } else { "" },
                    amount(t.max(r.done))
                ),
                _ => amount(r.done),
            };
            if let Unit::Count(n) = r.unit {
                done.push(' ');
                done.push_str(n);
            }
            if let (Some(t), false) = (r.total, finished) {
                if t > 0 {
                    let pct = (r.done as f64 / t as f64 * 100.0).min(100.0);
                    done.push_str(&format!(" ({pct:.0}%)"));
                }
            }
            parts.push(done);
            let rate = if finished {
                lock(&self.rate).average(now, r.done)
            } else {
                lock(&self.rate).current()
            };
            if let Some(rate) = rate {
                parts.push(match r.unit {
                    Unit::Bytes => format!("{}/s", bytes(rate.round() as u64)),
                    Unit::Count(n) => format!("{} {n}/s", count(rate.round() as u64)),
                    Unit::Countdown => String::new(),
                });
            }
            if !finished {
                let eta = match r.eta {
                    Eta::Given(d) => Some(d),
                    Eta::FromRate => match (r.total, rate) {
                        (Some(t), Some(rate)) if rate > 0.0 => Some(Duration::from_secs_f64(
                            (t.saturating_sub(r.done) as f64 / rate).min(1e9),
                        )),
                        _ => None,
                    },
                    Eta::None => None,
                };
                match eta {
                    Some(d) => parts.push(format!("ETA {}", span(d))),
                    None if r.eta == Eta::FromRate && r.total.is_some_and(|t| t > r.done) => {
                        parts.push("ETA ?".to_string())
                    }
                    None => {}
                }
            }
        }
        parts.extend(r.after.iter().cloned());
        parts.push(format!(
            "{} elapsed",
            span(now.duration_since(self.started))
        ));
        let mut text = parts.join(", ");
        let item_bar = matches!(self.view, View::Bars(_));
        if let (Some(it), false, false) = (&r.item, finished, item_bar) {
            text.push_str("; ");
            text.push_str(&item_text(it, unit_name));
        }
        text
    }
}

fn item_text(it: &Item, unit: Option<&str>) -> String {
    let mut s = match it.total {
        Some(t) => format!("{} {}/~{}", it.label, count(it.done), count(t.max(it.done))),
        None => format!("{} {}", it.label, count(it.done)),
    };
    if let Some(u) = unit {
        s.push(' ');
        s.push_str(u);
    }
    s
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The time of day a progress line was written (UTC, to the second).
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in the largest binary unit that keeps one or more whole units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration as people read it: `45s`, `3m12s`, `2h05m`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Mutex<Reading>);
    impl Meter for Fixed {
        fn read(&self) -> Reading {
            lock(&self.0).clone()
        }
    }

    #[test]
    fn counts_bytes_and_spans_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(3_000_000), "3,000,000");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(span(Duration::from_secs(45)), "45s");
        assert_eq!(span(Duration::from_secs(192)), "3m12s");
        assert_eq!(span(Duration::from_secs(7500)), "2h05m");
    }

    #[test]
    fn a_rate_follows_the_window_not_the_start() {
        let t = Instant::now();
        let mut w = RateWindow::new(t, 0);
        assert_eq!(w.current(), None);
        // Slow for a minute, then fast: the window sees only the fast part.
        w.sample(t + Duration::from_secs(60), 60);
        for i in 1..=30u64 {
            w.sample(t + Duration::from_secs(60 + i), 60 + i * 100);
        }
        let r = w.current().unwrap_or(0.0);
        assert!((r - 100.0).abs() < 1.0, "{r}");
        let avg = w.average(t + Duration::from_secs(90), 3060).unwrap_or(0.0);
        assert!((avg - 34.0).abs() < 0.1, "{avg}");
    }

    #[test]
    fn a_line_holds_the_count_the_rate_and_the_eta() {
        let mut r = Reading::new(Unit::Count("rows"));
        r.before.push("1/3 tables".into());
        r.done = 500;
        r.total = Some(1500);
        r.approx_total = true;
        r.after.push("0 differences".into());
        r.item = Some(Item {
            label: "db.t".into(),
            done: 500,
            total: Some(1000),
        });
        let rep = Reporter::with_view(
            "diff",
            Arc::new(Fixed(Mutex::new(Reading::new(Unit::Count("rows"))))),
            View::Off,
        );
        let t = rep.shared.started;
        lock(&rep.shared.rate).sample(t + Duration::from_secs(5), 500);
        let text = rep.shared.figures(&r, t + Duration::from_secs(5), false);
        assert_eq!(
            text,
            "1/3 tables, 500/~1,500 rows (33%), 100 rows/s, ETA 10s, 0 differences, 5s elapsed; \
             db.t 500/~1,000 rows"
        );
        let done = rep.shared.figures(&r, t + Duration::from_secs(5), true);
        assert_eq!(
            done,
            "1/3 tables, 500 rows, 100 rows/s, 0 differences, 5s elapsed"
        );
    }
}
