//! The throttle against real servers: load pauses, replication lag, cancellation, and the
//! check cache. One sandbox serves every test here; each test opens its own pools.

use std::sync::OnceLock;
use std::time::Duration;

use cutover_core::throttle::{Exceeded, LoadLimit, Throttle};
use cutover_core::{Db, DbError, Endpoint, Role, SessionOptions};
use cutover_sandbox::{Sandbox, Server, Settings};
use mysql_async::prelude::Queryable;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// Generous: a loaded test machine may be slow, but a real hang still fails.
const DEADLINE: Duration = Duration::from_secs(60);

fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        Sandbox::start_owned(&Settings::default()).unwrap_or_else(|e| panic!("sandbox: {e}"))
    })
}

async fn db(server: &Server, role: Role, cancel: CancellationToken) -> Db {
    let endpoint = Endpoint::parse(&server.dsn(None)).expect("sandbox DSN");
    Db::connect(&endpoint, role, SessionOptions::default(), cancel)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn raw_conn(server: &Server) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port)
        .user(Some("root"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("test connection")
}

async fn threads_running(c: &mut mysql_async::Conn) -> u64 {
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Threads_running'")
        .await
        .expect("SHOW STATUS");
    row.map(|(_, v)| v).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_pauses_until_it_drops() {
    let sb = sandbox();
    let cancel = CancellationToken::new();
    let source = db(&sb.source, Role::Source, cancel.clone()).await;
    let throttle = Throttle::builder()
        .watch(source.clone())
        .max_load(vec![LoadLimit {
            variable: "Threads_running".into(),
            max: 5,
        }])
        .check_interval(Duration::from_millis(200))
        .build();
    let mut paused = throttle.subscribe();

    // Twelve connections busy in SLEEP(30): each counts in Threads_running.
    let mut ids = Vec::new();
    let mut sleepers = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut c = raw_conn(&sb.source).await;
        ids.push(c.id());
        sleepers.spawn(async move {
            // Ends with an error when the connection is killed.
            let _ = c.query_drop("SELECT SLEEP(30)").await;
        });
    }
    let mut admin = raw_conn(&sb.source).await;
    let until = Instant::now() + DEADLINE;
    // Twelve sleepers and this connection's own SHOW STATUS.
    while threads_running(&mut admin).await < 13 {
        assert!(Instant::now() < until, "the sleeping queries never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While the load is up, the wait stays pending (checked several times) and says why.
    let wait = throttle.wait(1);
    tokio::pin!(wait);
    for _ in 0..3 {
        assert!(
            timeout(Duration::from_millis(700), &mut wait)
                .await
                .is_err(),
            "wait returned while Threads_running was above its maximum"
        );
        assert!(threads_running(&mut admin).await >= 12, "load went away");
    }
    let reasons = paused.borrow_and_update().clone();
    assert!(
        reasons.iter().any(|r| matches!(
            r,
            Exceeded::Load { server, variable, value, max: 5 }
                if server == "source" && variable == "Threads_running" && *value >= 12
        )),
        "{reasons:?}"
    );
    let message = reasons[0].to_string();
    assert!(
        message.starts_with("Threads_running=") && message.ends_with(" > 5 on source"),
        "{message}"
    );
    assert_eq!(throttle.stats().pauses, 1);

    // The load goes: the wait returns, and the pause is over.
    for id in &ids {
        admin.query_drop(format!("KILL {id}")).await.expect("KILL");
    }
    let r = timeout(DEADLINE, &mut wait)
        .await
        .expect("wait still pending after the load went away");
    r.expect("wait");
    while sleepers.join_next().await.is_some() {}
    let stats = throttle.stats();
    assert!(stats.pauses >= 1, "{stats:?}");
    assert!(stats.paused_secs >= 2.0, "{stats:?}");
    assert!(stats.checks >= 2, "{stats:?}");
    assert!(paused.borrow().is_empty(), "{:?}", paused.borrow());
    let json = serde_json::to_value(&stats).expect("stats serialize");
    assert_eq!(json["pauses"], stats.pauses);
}

#[tokio::test]
async fn cancellation_interrupts_a_paused_wait() {
    let sb = sandbox();
    let cancel = CancellationToken::new();
    let source = db(&sb.source, Role::Source, cancel.clone()).await;
    // Always exceeded: the check's own connection is connected.
    let throttle = Throttle::builder()
        .watch(source)
        .max_load(vec![LoadLimit {
            variable: "threads_connected".into(),
            max: 0,
        }])
        .check_interval(Duration::from_millis(100))
        .build();
    let mut paused = throttle.subscribe();
    let t = throttle.clone();
    let waiting = tokio::spawn(async move { t.wait(1).await });
    timeout(DEADLINE, paused.wait_for(|r| !r.is_empty()))
        .await
        .expect("never paused")
        .expect("watch");
    assert!(!waiting.is_finished());

    cancel.cancel();
    let r = timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the cancelled wait did not return promptly")
        .expect("task");
    assert!(matches!(r, Err(DbError::Interrupted)), "{r:?}");
    assert!(matches!(throttle.wait(1).await, Err(DbError::Interrupted)));
    assert_eq!(throttle.stats().pauses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_check_serves_many_callers() {
    let sb = sandbox();
    let cancel = CancellationToken::new();
    let source = db(&sb.source, Role::Source, cancel.clone()).await;
    let target = db(&sb.target, Role::Target, cancel.clone()).await;
    let throttle = Throttle::builder()
        .watch(source)
        .watch(target)
        .max_load(
            cutover_core::throttle::parse_max_load("Threads_running=900,Threads_connected=990")
                .expect("limits"),
        )
        .check_interval(Duration::from_secs(600))
        .build();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let t = throttle.clone();
        tasks.spawn(async move {
            for _ in 0..10 {
                t.wait(1000).await?;
            }
            Ok::<_, DbError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("wait");
    }
    let stats = throttle.stats();
    assert_eq!(stats.checks, 1, "{stats:?}");
    assert_eq!(stats.pauses, 0, "{stats:?}");
}

#[tokio::test]
async fn missing_status_variable_is_an_error() {
    let sb = sandbox();
    let source = db(&sb.source, Role::Source, CancellationToken::new()).await;
    let throttle = Throttle::builder()
        .watch(source)
        .max_load(vec![LoadLimit {
            variable: "No_such_status".into(),
            max: 1,
        }])
        .build();
    match throttle.wait(1).await {
        Err(DbError::Query { role, message }) => {
            assert_eq!(role, Role::Source);
            assert!(message.contains("No_such_status"), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_replication_pauses() {
    let sb = sandbox();
    let cancel = CancellationToken::new();
    // Not a replica yet: a clear error rather than a silent pass.
    let replica = db(&sb.target, Role::Target, cancel.clone()).await;
    let throttle = || {
        Throttle::builder()
            .max_lag(Duration::from_secs(30), vec![replica.clone()])
            .check_interval(Duration::from_millis(100))
            .build()
    };
    match throttle().wait(1).await {
        Err(DbError::Query { message, .. }) => {
            assert!(message.contains("not a replica"), "{message}")
        }
        other => panic!("expected a query error, got {other:?}"),
    }

    tokio::task::block_in_place(|| sb.start_replication()).expect("start replication");
    let t = throttle();
    timeout(DEADLINE, t.wait(1))
        .await
        .expect("a running replica paused the wait")
        .expect("wait");
    assert_eq!(t.stats().pauses, 0);

    // Stopped: the lag is NULL, which pauses, and the pause says replication is not running.
    tokio::task::block_in_place(|| sb.stop_replication()).expect("stop replication");
    let t = throttle();
    let mut paused = t.subscribe();
    let wait = t.wait(1);
    tokio::pin!(wait);
    assert!(
        timeout(Duration::from_millis(500), &mut wait)
            .await
            .is_err(),
        "wait returned while replication was stopped"
    );
    let reasons = paused.borrow_and_update().clone();
    assert!(
        matches!(reasons.as_slice(), [Exceeded::Lag { lag_secs: None, .. }]),
        "{reasons:?}"
    );
    assert!(
        reasons[0].to_string().contains("not running"),
        "{}",
        reasons[0]
    );

    // Running again: the wait returns.
    tokio::task::block_in_place(|| sb.start_replication()).expect("restart replication");
    timeout(DEADLINE, &mut wait)
        .await
        .expect("wait still pending after replication restarted")
        .expect("wait");
    assert_eq!(t.stats().pauses, 1);
}
