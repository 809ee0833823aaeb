//! Real application drivers through `cutover proxy`, then replayed: MariaDB Connector/J behind
//! a HikariCP pool (server-side prepared statements, pipelined auth, with and without
//! compression; and without pipelined auth, to tell its faults apart), PyMySQL (text protocol,
//! client-side escaping), mysql-connector-python (a prepared cursor: binary protocol) and
//! Node's mysql2 (pool; `execute` and `query`, each with and without compression). Each runs the one scripted session of `tests/drivers/session.tsv`
//! (every column type, typed parameters, 20,000 rows, a 2 MiB blob, transactions, a locking
//! read, errors 1062 and 1146, a warning, `SET NAMES`, `USE`) and prints what it sent and what
//! it saw.
//!
//! Per driver and mode: the session runs through the proxy in front of the source and directly
//! against the target (same answers both ways, and both servers end up the same); the
//! recording holds every statement the driver sent with its own answer and all its parameters
//! (bytes identical); `undecodable_connections` is 0; a `--read-only` replay of identical
//! copies exits 0 with nothing different and nothing left uncompared; after one row changes on
//! the target it exits 1 naming exactly the statements that read that row (the locking read
//! included); and `tcpdump` of the
//! client leg, read by `cutover capture --from pcap`, gives the same workload as the proxy.
//!
//! Every check of a mode is made and its failures listed together, so one run shows all that
//! is wrong. A driver whose runtime is absent here is skipped with the reason printed (never
//! in CI, where `scripts/test` installs every one and a missing runtime fails the test).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{cutover, dsn, exec, fresh_db, port, run, sigterm_and_wait, Side};
use crate::tcpdump::Tcpdump;

const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    Java,
    Python,
    Node,
}

/// One driver in one mode.
struct Mode {
    /// Also the database the session runs in (`drv_NAME`).
    name: &'static str,
    runtime: Runtime,
    /// The program's mode arguments (after HOST PORT USER DB).
    args: &'static [&'static str],
}

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const JARS: [&str; 4] = [
    "/usr/share/java/mariadb-java-client.jar",
    "/usr/share/java/HikariCP.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-nop.jar",
];

fn venv_python() -> PathBuf {
    workspace_dir().join("target/drivers-venv/bin/python")
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the runtime cannot run here, if it cannot.
fn missing(runtime: Runtime) -> Option<String> {
    match runtime {
        Runtime::Java => {
            if !on_path("java") {
                return Some("no `java` on PATH".into());
            }
            JARS.iter().find(|j| !Path::new(j).exists()).map(|j| {
                format!("{j} is missing (Debian libmariadb-java, libhikaricp-java, libslf4j-java)")
            })
        }
        Runtime::Python => {
            let py = venv_python();
            if !py.exists() {
                return Some(format!("{} is missing", py.display()));
            }
            let ok = Command::new(&py)
                .args(["-c", "import pymysql, mysql.connector"])
                .status()
                .is_ok_and(|s| s.success());
            (!ok).then(|| "PyMySQL or mysql-connector-python is not in the venv".into())
        }
        Runtime::Node => {
            if !on_path("node") {
                return Some("no `node` on PATH".into());
            }
            let m = drivers_dir().join("node/node_modules/mysql2");
            (!m.exists()).then(|| format!("{} is missing (npm ci)", m.display()))
        }
    }
}

/// The driver program's command line for a session against `port` in `db`.
fn driver_command(mode: &Mode, port: u16, db: &str) -> Command {
    let dir = drivers_dir();
    let spec = dir.join("session.tsv");
    let common = |c: &mut Command| {
        c.args(["127.0.0.1", &port.to_string(), "root", db]);
        c.args(mode.args);
        c.arg(&spec);
    };
    let mut c = match mode.runtime {
        Runtime::Java => {
            let mut c = Command::new("java");
            c.args(["-Duser.timezone=UTC", "-cp", &JARS.join(":")])
                .arg(dir.join("java/Session.java"));
            c
        }
        Runtime::Python => {
            let mut c = Command::new(venv_python());
            c.arg(dir.join("python/session.py"));
            c
        }
        Runtime::Node => {
            let mut c = Command::new("node");
            c.arg(dir.join("node/session.js"));
            c
        }
    };
    common(&mut c);
    c.env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs the driver session (bounded in time) and returns its log, one JSON object a step.
async fn run_driver(mode: &Mode, port: u16, db: &str) -> Vec<Value> {
    let mut cmd = driver_command(mode, port, db);
    let name = mode.name;
    tokio::task::spawn_blocking(move || {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = wait_bounded(child, DEADLINE, name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: the driver session failed ({:?}):\n{stderr}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
            .collect::<Vec<Value>>()
    })
    .await
    .expect("driver task")
}

/// Waits for a child with a deadline; kills it (and fails) past it. Its output is read by
/// threads so a full pipe never stalls it.
fn wait_bounded(mut child: Child, deadline: Duration, what: &str) -> std::process::Output {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for a child") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: o.join().unwrap_or_default(),
        stderr: e.join().unwrap_or_default(),
    }
}

/// The schema and data of `tests/drivers/schema.sql` in `db` on one side.
async fn load(side: Side, db: &str) {
    let schema = std::fs::read_to_string(drivers_dir().join("schema.sql")).unwrap();
    let body: String = schema
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    exec(side, &format!("USE `{db}`; {body}")).await;
}

async fn fresh_copies(db: &str) {
    fresh_db(db).await;
    load(Side::Source, db).await;
    load(Side::Target, db).await;
}

/// Connections to `port` whose end a little-endian pcap holds: both FINs, or a RST (records
/// still being written are left out).
fn ended_connections(path: &Path, port: u16) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    // Per client port: (FIN from the client, FIN from the server, RST either way).
    let mut ends: HashMap<u16, (bool, bool, bool)> = HashMap::new();
    let mut at = 24;
    while let Some(h) = bytes.get(at..at + 16) {
        let caplen = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let Some(data) = bytes.get(at + 16..at + 16 + caplen) else {
            break;
        };
        if let Ok(p) = etherparse::SlicedPacket::from_ethernet(data) {
            if let Some(etherparse::TransportSlice::Tcp(t)) = p.transport {
                let (client, from_client) = if t.destination_port() == port {
                    (t.source_port(), true)
                } else {
                    (t.destination_port(), false)
                };
                let e = ends.entry(client).or_default();
                if t.fin() && from_client {
                    e.0 = true;
                }
                if t.fin() && !from_client {
                    e.1 = true;
                }
                if t.rst() {
                    e.2 = true;
                }
            }
        }
        at += 16 + caplen;
    }
    ends.values().filter(|e| (e.0 && e.1) || e.2).count()
}

/// Whether something listens on the TCP `port` (from the kernel's table, without connecting:
/// a connection would be one more session in the recording).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&want) && cols[3] == "0A"
            })
    })
}

/// The records of a workload file, through `cutover workload head`.
fn recorded(record: &Path) -> Vec<Value> {
    let r = run(cutover()
        .args(["workload", "head"])
        .arg(record)
        .args(["-n", "100000000"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 256) as u8).collect()
}

fn base64(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A statement's bytes as the driver logged them.
fn sent_bytes(step: &Value) -> Option<Vec<u8>> {
    if let Some(s) = step["sent"].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    step["sent_hex"].as_str().map(hex)
}

/// A statement's bytes as recorded (text, or an encoding of bytes that are not UTF-8).
fn recorded_sql(r: &Value) -> Option<Vec<u8>> {
    if let Some(s) = r["sql"].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    if let Some(s) = r["sql_base64"].as_str() {
        return base64(s);
    }
    r["sql_hex"].as_str().map(hex)
}

/// Shows bytes for a message: the text when short, else the length and where it starts.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 160 {
        format!(
            "{}… ({} bytes)",
            &s.chars().take(120).collect::<String>(),
            b.len()
        )
    } else {
        s.into_owned()
    }
}

/// A datetime's text without trailing zeros in its fraction.
fn trim_fraction(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Whether a recorded execute parameter is the value the driver bound, losslessly and with
/// a type that keeps it: the typed form (`{"type": N, "int"|"double_bits"|"text"|"base64"|…}`).
/// The older plain JSON value is taken for what it can keep exactly (a JSON integer, a string
/// or bytes bound as a string); a number, decimal or datetime written as plain text has lost
/// its type (a replay binds it as a string) and does not match.
fn param_matches(recorded: &Value, bound: &Value) -> Result<(), String> {
    let ty = bound["type"].as_str().unwrap_or("");
    let v = bound["value"].as_str().unwrap_or("");
    // MYSQL_TYPE_NEWDECIMAL, VARCHAR, VAR_STRING, STRING, DECIMAL: a driver that sends a
    // number as text sends these.
    let text_type = |r: &Value| {
        r["type"]
            .as_u64()
            .is_some_and(|t| [0, 15, 246, 253, 254].contains(&t))
    };
    let bytes_of = |r: &Value| -> Option<Vec<u8>> {
        if let Some(s) = r.as_str() {
            return Some(s.as_bytes().to_vec());
        }
        if let Some(s) = r["text"].as_str() {
            return Some(s.as_bytes().to_vec());
        }
        if let Some(s) = r["base64"].as_str() {
            return base64(s);
        }
        r["hex"].as_str().map(hex)
    };
    // A number kept exactly: a JSON number, an integer, the bits of a DOUBLE or FLOAT, or the
    // text of a value the driver itself sent as text.
    let number_text = |r: &Value| -> Option<String> {
        if r.is_u64() || r.is_i64() {
            return Some(r.to_string());
        }
        if r["int"].is_u64() || r["int"].is_i64() {
            return Some(r["int"].to_string());
        }
        if let Some(b) = r["double_bits"].as_str() {
            return u64::from_str_radix(b, 16)
                .ok()
                .map(|b| format!("{:?}", f64::from_bits(b)));
        }
        if let Some(b) = r["float_bits"].as_str() {
            return u32::from_str_radix(b, 16)
                .ok()
                .map(|b| format!("{:?}", f32::from_bits(b)));
        }
        if text_type(r) {
            return bytes_of(r).and_then(|b| String::from_utf8(b).ok());
        }
        None
    };
    let same_number = |r: &Value| -> bool {
        let Some(got) = number_text(r) else {
            return false;
        };
        if got == v {
            return true;
        }
        // A DOUBLE equal to the bound number (mysql2 binds every number as a DOUBLE).
        match (got.parse::<f64>(), v.parse::<f64>()) {
            (Ok(a), Ok(b)) => {
                a.to_bits() == b.to_bits() && (ty == "dbl" || r["double_bits"].is_string())
            }
            _ => false,
        }
    };
    let ok = match ty {
        "null" => recorded.is_null() || recorded["null"] == true,
        "int" | "uint" | "dbl" => same_number(recorded),
        "dec" => text_type(recorded) && bytes_of(recorded).as_deref() == Some(v.as_bytes()),
        "str" => bytes_of(recorded).as_deref() == Some(v.as_bytes()),
        "dt" => {
            let got = recorded["datetime"].as_str().or(if text_type(recorded) {
                recorded["text"].as_str()
            } else {
                None
            });
            got.map(trim_fraction) == Some(trim_fraction(v))
        }
        "hex" => bytes_of(recorded) == Some(hex(v)),
        "pattern" | "streampattern" => bytes_of(recorded) == Some(pattern(v.parse().unwrap_or(0))),
        other => return Err(format!("unknown bound type {other}")),
    };
    if ok {
        Ok(())
    } else {
        let mut shown = recorded.to_string();
        if shown.len() > 200 {
            let cut = shown.char_indices().nth(120).map_or(shown.len(), |c| c.0);
            shown = format!("{}… ({} chars)", &shown[..cut], shown.len());
        }
        let mut want = v.to_string();
        if want.len() > 80 {
            want = format!("{}…", &want[..80]);
        }
        Err(format!("bound {ty} {want}, recorded {shown}"))
    }
}

/// A statement of the recording: a query, or an execute with its prepare's text.
struct Sent {
    index: usize,
    session: u64,
    binary: bool,
    sql: Vec<u8>,
    params: Vec<Value>,
    response: Value,
}

fn statements(records: &[Value]) -> Vec<Sent> {
    let mut prepared: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (index, r) in records.iter().enumerate() {
        let session = r["session"].as_u64().unwrap_or(0);
        match r["cmd"].as_str() {
            Some("prepare") => {
                if let (Some(stmt), Some(sql)) = (r["stmt"].as_u64(), recorded_sql(r)) {
                    prepared.insert((session, stmt), sql);
                }
            }
            Some("query") => out.push(Sent {
                index,
                session,
                binary: false,
                sql: recorded_sql(r).unwrap_or_default(),
                params: Vec::new(),
                response: r["response"].clone(),
            }),
            Some("execute") => {
                let stmt = r["stmt"].as_u64().unwrap_or(u64::MAX);
                out.push(Sent {
                    index,
                    session,
                    binary: true,
                    sql: prepared.get(&(session, stmt)).cloned().unwrap_or_default(),
                    params: r["params"].as_array().cloned().unwrap_or_default(),
                    response: r["response"].clone(),
                })
            }
            _ => {}
        }
    }
    out
}

/// The protocol type name of a column type code (as the recording names them).
fn type_name(code: u64) -> String {
    u8::try_from(code)
        .ok()
        .and_then(|c| mysql_async::consts::ColumnType::try_from(c).ok())
        .map(|t| format!("{t:?}"))
        .unwrap_or_else(|| format!("MYSQL_TYPE_{code}"))
}

/// Differences between a recorded response and the answer the driver saw.
fn answer_differences(response: &Value, answer: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let got_error = response["error"]["code"].as_u64();
    let want_error = answer["error"].as_u64();
    if got_error != want_error {
        out.push(format!(
            "error: recorded {got_error:?}, the driver saw {want_error:?}"
        ));
        return out;
    }
    if want_error.is_some() {
        return out;
    }
    if let Some(rows) = answer["rows"].as_u64() {
        if response["rows"].as_u64() != Some(rows) {
            out.push(format!(
                "rows: recorded {}, the driver saw {rows}",
                response["rows"]
            ));
        }
        let recorded_columns: Vec<(String, String)> = response["columns"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_string(),
                            c["type"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let seen = answer["columns"].as_array().cloned().unwrap_or_default();
        let names = |v: &[(String, String)]| v.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
        let seen_names: Vec<String> = seen
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect();
        if names(&recorded_columns) != seen_names {
            out.push(format!(
                "columns: recorded {:?}, the driver saw {seen_names:?}",
                names(&recorded_columns)
            ));
        } else {
            // Drivers that show the protocol's type codes: the same types.
            for (c, s) in recorded_columns.iter().zip(&seen) {
                if let Some(code) = s["type"].as_u64() {
                    if c.1 != type_name(code) {
                        out.push(format!(
                            "column {}: recorded type {}, the driver saw {}",
                            c.0,
                            c.1,
                            type_name(code)
                        ));
                    }
                }
            }
        }
    } else if let Some(affected) = answer["affected"].as_u64() {
        if response["affected_rows"].as_u64().unwrap_or(0) != affected {
            out.push(format!(
                "affected rows: recorded {}, the driver saw {affected}",
                response["affected_rows"]
            ));
        }
    }
    if let Some(w) = answer["warnings"].as_u64() {
        let got = response["warnings"].as_u64().unwrap_or(0);
        if got != w {
            out.push(format!("warnings: recorded {got}, the driver saw {w}"));
        }
    }
    out
}

/// Every statement of the driver's log in the recording, in order, with its answer and its
/// parameters; the problems found.
fn check_recording(log: &[Value], records: &[Value]) -> Vec<String> {
    let sent = statements(records);
    let mut used = vec![false; sent.len()];
    let mut problems = Vec::new();
    for step in log.iter().filter(|s| s.get("answer").is_some()) {
        let name = step["step"].as_str().unwrap_or("?");
        let Some(sql) = sent_bytes(step) else {
            continue;
        };
        let binary = step["protocol"] == "binary";
        let found = sent
            .iter()
            .enumerate()
            .find(|(i, s)| !used[*i] && s.binary == binary && s.sql == sql);
        let Some((i, s)) = found else {
            // Name what is there instead: the same text with another command, or nothing.
            let other = sent.iter().find(|s| s.sql == sql);
            problems.push(format!(
                "step {name}: `{}` ({}) is not in the recording{}",
                show(&sql),
                if binary { "execute" } else { "query" },
                match other {
                    Some(o) => format!(
                        " (recorded as {} in record {})",
                        if o.binary { "an execute" } else { "a query" },
                        o.index
                    ),
                    None => String::new(),
                }
            ));
            continue;
        };
        used[i] = true;
        for d in answer_differences(&s.response, &step["answer"]) {
            problems.push(format!(
                "step {name} (record {}, session {}): {d}",
                s.index, s.session
            ));
        }
        if binary {
            let bound = step["params"].as_array().cloned().unwrap_or_default();
            if bound.len() != s.params.len() {
                problems.push(format!(
                    "step {name} (record {}): {} parameters bound, {} recorded",
                    s.index,
                    bound.len(),
                    s.params.len()
                ));
            }
            for (n, (r, b)) in s.params.iter().zip(&bound).enumerate() {
                if let Err(e) = param_matches(r, b) {
                    problems.push(format!(
                        "step {name} (record {}): parameter {}: {e}",
                        s.index,
                        n + 1
                    ));
                }
            }
        }
    }
    problems
}

/// A workload's sessions, each its records without times and with its own session id left
/// out, sorted: two captures of the same traffic give the same.
fn sessions_of(records: &[Value]) -> Vec<Vec<Value>> {
    let mut by: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in records {
        let mut r = r.clone();
        let session = r["session"].as_u64().unwrap_or(0);
        if let Some(o) = r.as_object_mut() {
            o.remove("session");
            o.remove("ts_us");
        }
        if let Some(o) = r["response"].as_object_mut() {
            o.remove("latency_us");
        }
        by.entry(session).or_default().push(r);
    }
    let mut out: Vec<Vec<Value>> = by.into_values().collect();
    out.sort_by_key(|s| serde_json::to_string(s).unwrap_or_default());
    out
}

/// The first difference between two workloads (sessions as `sessions_of`).
fn first_workload_difference(proxy: &[Value], pcap: &[Value]) -> Option<String> {
    let a = sessions_of(proxy);
    let b = sessions_of(pcap);
    if a.len() != b.len() {
        return Some(format!(
            "{} sessions recorded by the proxy, {} from the pcap",
            a.len(),
            b.len()
        ));
    }
    for (sa, sb) in a.iter().zip(&b) {
        for (n, (ra, rb)) in sa.iter().zip(sb).enumerate() {
            if ra != rb {
                let cut = |v: &Value| {
                    let s = v.to_string();
                    if s.len() > 400 {
                        format!(
                            "{}…",
                            &s[..s.char_indices().nth(400).map_or(s.len(), |c| c.0)]
                        )
                    } else {
                        s
                    }
                };
                return Some(format!(
                    "record {n} of a session: proxy {} / pcap {}",
                    cut(ra),
                    cut(rb)
                ));
            }
        }
        if sa.len() != sb.len() {
            return Some(format!(
                "a session of {} records from the proxy, {} from the pcap",
                sa.len(),
                sb.len()
            ));
        }
    }
    None
}

/// Replays the recording against the target with the source as baseline. Read-only runs go
/// as fast as they can; a read-write run keeps the captured pace, so one session's write
/// comes before another session's read of it as it did when captured.
fn replay(workload: &Path, read_only: bool) -> crate::harness::Run {
    let mut c = cutover();
    c.arg("replay")
        .arg(workload)
        .args([
            "--target",
            &dsn(Side::Target),
            "--baseline",
            &dsn(Side::Source),
        ])
        .args(["--format", "json"]);
    if read_only {
        c.args(["--read-only", "--speed", "max"]);
    } else if replay_has_yes() {
        c.arg("--yes");
    }
    run(&mut c)
}

fn replay_has_yes() -> bool {
    let r = run(cutover().args(["replay", "--help"]));
    r.stdout.contains("--yes")
}

/// The statements a replay reported as different (the samples of each class with diffs).
fn differing(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in v["classes"].as_array().into_iter().flatten() {
        if c["differences"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        for s in c["samples"].as_array().into_iter().flatten() {
            out.insert(s["sql"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

/// The samples of the classes with differences, whole (what differs and how), shortened.
fn differing_samples(v: &Value) -> String {
    let all: Vec<String> = v["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["differences"].as_u64().unwrap_or(0) > 0)
        .flat_map(|c| c["samples"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            let t = s.to_string();
            let cut = t.char_indices().nth(600).map_or(t.len(), |c| c.0);
            t[..cut].to_string()
        })
        .collect();
    format!("[{}]", all.join(", "))
}

/// The checks of a replay expected to find nothing: exit 0, no differences, nothing left
/// uncompared.
fn check_clean_replay(what: &str, r: &crate::harness::Run, problems: &mut Vec<String>) {
    let Ok(v) = serde_json::from_str::<Value>(&r.stdout) else {
        problems.push(format!(
            "{what}: exit {}, no JSON report: {}",
            r.code,
            r.stderr.trim()
        ));
        return;
    };
    if r.code != 0 {
        problems.push(format!(
            "{what}: exit {} (0 expected); differing: {}; stderr: {}",
            r.code,
            differing_samples(&v),
            r.stderr.trim()
        ));
    }
    if v["statements_with_diffs"] != 0 {
        problems.push(format!(
            "{what}: statements_with_diffs {} (0 expected): {:?}",
            v["statements_with_diffs"],
            differing(&v)
        ));
    }
    match v.get("not_compared") {
        Some(n) if n == 0 => {}
        Some(n) => problems.push(format!(
            "{what}: not_compared {n} (0 expected): {}",
            v.get("not_compared_by_reason")
                .map(Value::to_string)
                .unwrap_or_default()
        )),
        None => problems.push(format!(
            "{what}: the report has no `not_compared` count (replayed {}, skipped {}, session errors {})",
            v["replayed"], v["skipped"], v["session_errors"]
        )),
    }
    if v["session_errors"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        problems.push(format!("{what}: session errors {}", v["session_errors"]));
    }
}

const MODES: [Mode; 9] = [
    Mode {
        name: "jdbc",
        runtime: Runtime::Java,
        args: &["plain"],
    },
    Mode {
        name: "jdbc_z",
        runtime: Runtime::Java,
        args: &["compress"],
    },
    // The same without pipelined auth: tells a pairing fault of pipelining from any other.
    Mode {
        name: "jdbc_nopipe",
        runtime: Runtime::Java,
        args: &["plain", "usePipelineAuth=false"],
    },
    Mode {
        name: "pymysql",
        runtime: Runtime::Python,
        args: &["pymysql"],
    },
    Mode {
        name: "connector",
        runtime: Runtime::Python,
        args: &["connector"],
    },
    Mode {
        name: "node_exec",
        runtime: Runtime::Node,
        args: &["execute", "plain"],
    },
    Mode {
        name: "node_exec_z",
        runtime: Runtime::Node,
        args: &["execute", "compress"],
    },
    Mode {
        name: "node_query",
        runtime: Runtime::Node,
        args: &["query", "plain"],
    },
    Mode {
        name: "node_query_z",
        runtime: Runtime::Node,
        args: &["query", "compress"],
    },
];

fn mode(name: &str) -> &'static Mode {
    MODES
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no mode {name}"))
}

/// The whole check of one driver in one mode.
async fn driver_session(name: &str) {
    let mode = mode(name);
    if let Some(why) = missing(mode.runtime) {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name}: {why}; scripts/test installs every driver runtime"
        );
        eprintln!("SKIPPED driver test {name}: {why} (scripts/test installs it)");
        return;
    }
    let db = format!("drv_{name}");
    fresh_copies(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("proxy.cwl");
    let listen = crate::verify_checkpoint::free_port();
    // A large kernel buffer (-B, KiB): the 2 MiB blob comes in one burst.
    let tcpdump = Tcpdump::start(
        listen,
        &dir.path().join("client.pcap"),
        &["-B", "65536"],
        "SKIPPED the pcap comparison",
    );
    let proxy = cutover()
        .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{}", port(Side::Source))])
        .arg("--output")
        .arg(&record)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + DEADLINE;
    while !listening(listen) {
        assert!(Instant::now() < until, "{name}: the proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let through = run_driver(mode, listen, &db).await;
    let output = sigterm_and_wait(proxy).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{name}: proxy: {stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{name}: proxy summary ({e}): {stderr}"));

    // Directly against the target: the same answers, and the two servers end up the same.
    let direct = run_driver(mode, port(Side::Target), &db).await;

    let mut problems = Vec::new();
    if through.len() != direct.len() {
        problems.push(format!(
            "{} steps through the proxy, {} directly",
            through.len(),
            direct.len()
        ));
    }
    for (a, b) in through.iter().zip(&direct) {
        if a != b {
            problems.push(format!(
                "step {}: through the proxy the driver saw {}, directly {}",
                a["step"], a["answer"], b["answer"]
            ));
        }
    }
    if summary["undecodable_connections"] != 0 {
        problems.push(format!(
            "proxy summary: undecodable_connections {} (0 expected): {summary}",
            summary["undecodable_connections"]
        ));
    }
    if summary["dropped"] != 0 {
        problems.push(format!("proxy summary: dropped {}", summary["dropped"]));
    }
    let records = recorded(&record);
    problems.extend(check_recording(&through, &records));

    // The client leg as tcpdump saw it gives the same workload.
    if let Some(t) = tcpdump {
        let connections = summary["connections"].as_u64().unwrap_or(0) as usize;
        t.stop_when(
            "tcpdump to write every connection's end",
            DEADLINE,
            |path| ended_connections(path, listen) >= connections,
        )
        .await;
        let from_pcap = dir.path().join("pcap.cwl");
        let r = run(cutover()
            .args(["capture", "--from", "pcap", "--input"])
            .arg(dir.path().join("client.pcap"))
            .args([
                "--port",
                &listen.to_string(),
                "--format",
                "json",
                "--output",
            ])
            .arg(&from_pcap));
        if r.code != 0 {
            problems.push(format!(
                "capture --from pcap: exit {}: {}",
                r.code,
                r.stderr.trim()
            ));
        } else if let Some(d) = first_workload_difference(&records, &recorded(&from_pcap)) {
            problems.push(format!(
                "pcap vs proxy: {d}; capture summary: {}",
                r.stdout.trim()
            ));
        }
    }

    // Identical copies: nothing different, nothing left out.
    let r = replay(&record, true);
    check_clean_replay("replay --read-only on identical copies", &r, &mut problems);

    // One row changed on the target: exactly the statements that read it.
    exec(
        Side::Target,
        &format!("UPDATE `{db}`.types SET vc = 'changed on the target' WHERE id = 3"),
    )
    .await;
    let r = replay(&record, true);
    let expected: BTreeSet<String> = through
        .iter()
        .filter(|s| s["probe"] == true)
        .filter_map(|s| s["sent"].as_str().map(str::to_string))
        .collect();
    match serde_json::from_str::<Value>(&r.stdout) {
        Ok(v) => {
            if r.code != 1 {
                problems.push(format!(
                    "replay --read-only after one changed row: exit {} (1 expected)",
                    r.code
                ));
            }
            if v["statements_with_diffs"].as_u64() != Some(expected.len() as u64) {
                problems.push(format!(
                    "replay --read-only after one changed row: statements_with_diffs {} ({} expected)",
                    v["statements_with_diffs"],
                    expected.len()
                ));
            }
            if v.get("not_compared").is_some_and(|n| n != 0) {
                problems.push(format!(
                    "replay --read-only after one changed row: not_compared {}",
                    v["not_compared"]
                ));
            }
            let got = differing(&v);
            if got != expected {
                problems.push(format!(
                    "replay --read-only after one changed row: differing {got:?}, expected exactly {expected:?}"
                ));
            }
        }
        Err(_) => problems.push(format!(
            "replay --read-only after one changed row: exit {}, no JSON: {}",
            r.code,
            r.stderr.trim()
        )),
    }

    // A read-write replay is not part of this check: sessions replay concurrently and the
    // replay does not hold one session's commit before another session's later read across
    // servers, so a read of a row another session has just written may see either version
    // on either side (a difference of timing, not of the servers).

    assert!(
        problems.is_empty(),
        "{name}: {} problems (first wrong records first):\n  {}\nthe driver's log through the proxy: {} steps; the recording: {} records",
        problems.len(),
        problems.join("\n  "),
        through.len(),
        records.len()
    );
}

#[tokio::test]
async fn jdbc_hikaricp_server_prepared_pipelined_auth() {
    driver_session("jdbc").await;
}

#[tokio::test]
async fn jdbc_hikaricp_server_prepared_pipelined_auth_compressed() {
    driver_session("jdbc_z").await;
}

#[tokio::test]
async fn jdbc_hikaricp_server_prepared_without_pipelined_auth() {
    driver_session("jdbc_nopipe").await;
}

#[tokio::test]
async fn pymysql_text_protocol_client_escaping() {
    driver_session("pymysql").await;
}

#[tokio::test]
async fn mysql_connector_python_prepared_cursor() {
    driver_session("connector").await;
}

#[tokio::test]
async fn node_mysql2_pool_execute() {
    driver_session("node_exec").await;
}

#[tokio::test]
async fn node_mysql2_pool_execute_compressed() {
    driver_session("node_exec_z").await;
}

#[tokio::test]
async fn node_mysql2_pool_query() {
    driver_session("node_query").await;
}

#[tokio::test]
async fn node_mysql2_pool_query_compressed() {
    driver_session("node_query_z").await;
}
