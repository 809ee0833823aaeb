use super::servers::{status_number, version_at_least};
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
        assert!(err.to_string().contains(expect), "{input:?}: {err}");
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
