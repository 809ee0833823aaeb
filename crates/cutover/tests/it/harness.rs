//! Shared test plumbing: the sandbox, SQL on either side, running the binary.

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cutover_sandbox::{Sandbox, Settings};
use mysql_async::prelude::Queryable;

pub fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        let settings = Settings {
            tls: true,
            ..Settings::default()
        };
        Sandbox::start_owned(&settings).unwrap_or_else(|e| panic!("sandbox: {e}"))
    })
}

#[derive(Clone, Copy, Debug)]
pub enum Side {
    Source,
    Target,
}

pub fn port(side: Side) -> u16 {
    match side {
        Side::Source => sandbox().source.port,
        Side::Target => sandbox().target.port,
    }
}

pub fn dsn(side: Side) -> String {
    format!("mysql://root@127.0.0.1:{}", port(side))
}

pub async fn conn(side: Side) -> mysql_async::Conn {
    conn_at(port(side)).await
}

/// A root connection to a server of any pair (tests that start a pair of their own).
pub async fn conn_at(port: u16) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("test connection")
}

/// `(thread, command, argument)` of every `mysql.general_log` entry of one user's
/// connections, in order (servers started with `log_output = 'TABLE'`).
pub async fn general_log(port: u16, user: &str) -> Vec<(u64, String, String)> {
    let mut c = conn_at(port).await;
    let rows: Vec<(u64, String, Vec<u8>)> = c
        .query(format!(
            "SELECT thread_id, command_type, argument FROM mysql.general_log \
             WHERE user_host LIKE '{user}[{user}]%' ORDER BY event_time, thread_id"
        ))
        .await
        .unwrap();
    let _ = c.disconnect().await;
    rows.into_iter()
        .map(|(t, c, a)| (t, c, String::from_utf8_lossy(&a).into_owned()))
        .collect()
}

/// Runs `;`-separated statements (no `;` inside literals) on one side.
pub async fn exec(side: Side, sql: &str) {
    let mut c = conn(side).await;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{side:?}: {e}\n{sql}"));
    let _ = c.disconnect().await;
}

/// Runs the same statements on both sides.
pub async fn both(sql: &str) {
    exec(Side::Source, sql).await;
    exec(Side::Target, sql).await;
}

/// A fresh database of this name on both sides.
pub async fn fresh_db(name: &str) {
    both(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
    ))
    .await;
}

pub fn cutover() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.env_remove("CUTOVER_SOURCE_PASSWORD")
        .env_remove("CUTOVER_TARGET_PASSWORD")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
    /// Asserts the run failed the way bad input should: exit 2, one `cutover: error:` line,
    /// no panic.
    pub fn assert_clean_error(&self, contains: &str) {
        assert_eq!(
            self.code, 2,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{}", self.stderr);
        assert!(lines[0].starts_with("cutover: error: "), "{}", self.stderr);
        assert!(
            self.stderr
                .to_lowercase()
                .contains(&contains.to_lowercase()),
            "expected `{contains}` in: {}",
            self.stderr
        );
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.output().expect("running cutover");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The command `cutover diff` between the sandbox sides over the given tables, as JSON.
pub fn diff_command(tables: &str, extra: &[&str]) -> Command {
    let mut c = cutover();
    c.args(["diff", "--source", &dsn(Side::Source)])
        .args(["--target", &dsn(Side::Target)])
        .args(["--tables", tables, "--format", "json"])
        .args(extra);
    c
}

/// Runs `cutover diff` between the sandbox sides over the given tables, as JSON.
pub fn diff_json(tables: &str, extra: &[&str]) -> Run {
    run(&mut diff_command(tables, extra))
}

/// Polls `cond` until it holds or the deadline passes.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `(a, b)` string pairs from an array of JSON objects, e.g. `(source, status)` per table.
pub fn pairs(items: &serde_json::Value, a: &str, b: &str) -> Vec<(String, String)> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|x| {
            let s = |k: &str| {
                x[k].as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x[k].to_string())
            };
            (s(a), s(b))
        })
        .collect()
}

/// Queries of cutover on one side that touch `db` and are waiting or running.
pub async fn our_queries(side: Side, db: &str) -> Vec<String> {
    let mut c = conn(side).await;
    let rows: Vec<(Option<String>,)> = c
        .query(format!(
            "SELECT INFO FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE '%`{db}`%' AND INFO NOT LIKE '%PROCESSLIST%' AND ID <> CONNECTION_ID()"
        ))
        .await
        .unwrap();
    let _ = c.disconnect().await;
    rows.into_iter().filter_map(|r| r.0).collect()
}

/// Ends a running `cutover` (SIGTERM, the normal way to stop a long-running command) and
/// waits for its output off the async runtime.
pub async fn sigterm_and_wait(child: std::process::Child) -> std::process::Output {
    // SAFETY: kill(2) on a child this test spawned and still owns.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("waiting task")
        .expect("child output")
}
