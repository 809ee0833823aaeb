//! `cutover capture --from pcap` over real captures: `tcpdump -i lo` records the sandbox
//! source's port while `mysql_async` and the `mariadb` client run text queries, prepared
//! statements with parameters, an error, `USE` (COM_INIT_DB) and quit; then the capture is
//! rewritten (a small pcap reader/writer below) into damaged ones: a connection whose start
//! is missing, a lost segment, two segments swapped, duplicates. And the same clients through
//! `cutover proxy` give the same sessions and commands from the pcap as from the proxy.
//!
//! Other tests talk to the same server at the same time, so each client asks the server for
//! its own port (`PROCESSLIST.HOST`) and the capture is cut down to those connections.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{cutover, exec, fresh_db, port, run, wait_for, Side};
use crate::tcpdump::Tcpdump;
use mysql_async::prelude::*;
use serde_json::Value;

const BIG: usize = 200_000;

/// Waits until the capture file holds both FINs of each of `ports`' connections, then stops
/// tcpdump; the frames captured.
async fn stop_when_closed(tcpdump: Tcpdump, ports: &[u16]) -> Vec<Frame> {
    let path = tcpdump.path().to_path_buf();
    tcpdump
        .stop_when(
            "tcpdump to write the connections' ends",
            Duration::from_secs(60),
            |path| {
                let frames = read_pcap(path).1;
                ports.iter().all(|p| {
                    let fin = |from_client: bool| {
                        frames.iter().any(|f| {
                            f.tcp().is_some_and(|t| {
                                t.fin && (if from_client { t.src } else { t.dst }) == *p
                            })
                        })
                    };
                    fin(true) && fin(false)
                })
            },
        )
        .await;
    read_pcap(&path).1
}

/// One packet record of a pcap file.
#[derive(Clone)]
struct Frame {
    /// The record header (time, lengths).
    header: [u8; 16],
    data: Vec<u8>,
}

struct Tcp {
    src: u16,
    dst: u16,
    fin: bool,
    payload: Vec<u8>,
}

impl Frame {
    fn tcp(&self) -> Option<Tcp> {
        let p = etherparse::SlicedPacket::from_ethernet(&self.data).ok()?;
        match p.transport? {
            etherparse::TransportSlice::Tcp(t) => Some(Tcp {
                src: t.source_port(),
                dst: t.destination_port(),
                fin: t.fin(),
                payload: t.payload().to_vec(),
            }),
            _ => None,
        }
    }

    fn port_is(&self, ports: &[u16]) -> bool {
        self.tcp()
            .is_some_and(|t| ports.contains(&t.src) || ports.contains(&t.dst))
    }

    /// Client data of the connection from `port`.
    fn client_data(&self, port: u16) -> Option<Vec<u8>> {
        self.tcp()
            .filter(|t| t.src == port && !t.payload.is_empty())
            .map(|t| t.payload)
    }
}

/// The file header and the complete records (a record tcpdump is still writing is left out).
fn read_pcap(path: &Path) -> (Vec<u8>, Vec<Frame>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let Some(header) = bytes.get(..24) else {
        return (Vec::new(), Vec::new());
    };
    assert_eq!(
        &header[..4],
        &0xa1b2_c3d4u32.to_le_bytes(),
        "a little-endian pcap"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(h) = bytes.get(at..at + 16) {
        let caplen = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let Some(data) = bytes.get(at + 16..at + 16 + caplen) else {
            break;
        };
        frames.push(Frame {
            header: h.try_into().unwrap(),
            data: data.to_vec(),
        });
        at += 16 + caplen;
    }
    (header.to_vec(), frames)
}

fn write_pcap(path: &Path, header: &[u8], frames: &[Frame]) {
    let mut out = header.to_vec();
    for f in frames {
        out.extend_from_slice(&f.header);
        out.extend_from_slice(&f.data);
    }
    std::fs::write(path, out).unwrap();
}

/// The clients: a `mysql_async` session (text queries, an error, two prepared statements
/// with parameters, a 200 KB query that takes several TCP segments, quit) and a `mariadb`
/// client session (`USE` is COM_INIT_DB). Returns each session's client port as the server
/// saw it.
async fn clients(port: u16, db: &str) -> Vec<u16> {
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("app"))
        .pass(Some("app-secret"))
        .db_name(Some(db))
        .prefer_socket(false)
        .into();
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    let host: String = c
        .query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let first = client_port(&host);
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(c.query_drop("SELECT nope FROM t").await.is_err());
    c.exec_drop("INSERT INTO t (v) VALUES (?)", ("c",))
        .await
        .unwrap();
    let got: Option<String> = c
        .exec_first("SELECT v FROM t WHERE id = ?", (3,))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("c"));
    let big: Option<u64> = c
        .query_first(format!("SELECT LENGTH('{}')", "x".repeat(BIG)))
        .await
        .unwrap();
    assert_eq!(big, Some(BIG as u64));
    c.query_drop("SELECT 'last'").await.unwrap();
    c.disconnect().await.unwrap();

    let out = tokio::task::spawn_blocking(move || {
        Command::new("mariadb")
            .args([
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-u",
                "app",
                "-papp-secret",
            ])
            .args(["--skip-ssl", "-N", "-B", "-P", &port.to_string(), "pc8"])
            .args([
                "-e",
                "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID(); \
                 USE pc8b; SELECT DATABASE(); SELECT COUNT(*) FROM t2",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = client_port(stdout.lines().next().unwrap_or_default());
    vec![first, second]
}

fn client_port(host: &str) -> u16 {
    host.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {host:?}"))
}

/// Databases `db` (table `t`) and `{db}b` (table `t2`) for [`clients`].
async fn setup(db: &str) {
    fresh_db(db).await;
    fresh_db(&format!("{db}b")).await;
    exec(
        Side::Source,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(10)); \
             INSERT INTO {db}.t (v) VALUES ('a'), ('b'); \
             CREATE TABLE {db}b.t2 (id INT); INSERT INTO {db}b.t2 VALUES (1), (2), (3)"
        ),
    )
    .await;
}

/// `cutover capture --from pcap` of `pcap`: the JSON summary and the records.
fn capture(pcap: &Path, port: u16) -> (Value, Vec<Value>) {
    let out = pcap.with_extension("cwl");
    let r = run(cutover()
        .args(["capture", "--from", "pcap", "--input"])
        .arg(pcap)
        .args(["--port", &port.to_string(), "--format", "json", "--output"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    (r.json(), workload(&out))
}

fn workload(path: &Path) -> Vec<Value> {
    let r = run(cutover()
        .args(["workload", "head", "-n", "100000"])
        .arg(path));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Records by session, in file order.
fn sessions(records: &[Value]) -> BTreeMap<u64, Vec<Value>> {
    let mut by: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in records {
        by.entry(r["session"].as_u64().unwrap())
            .or_default()
            .push(r.clone());
    }
    by
}

/// A command as a line: what it is, with its statement or parameters, and its answer's
/// essentials.
fn line(r: &Value) -> String {
    let resp = &r["response"];
    let mut s = r["cmd"].as_str().unwrap_or("?").to_string();
    for k in ["sql", "database", "params"] {
        if !r[k].is_null() {
            let v = r[k].to_string();
            s += &format!(" {}", &v[..v.len().min(60)]);
        }
    }
    if !resp["error"].is_null() {
        s += &format!(" -> error {}", resp["error"]["code"]);
    }
    if !resp["rows"].is_null() {
        s += &format!(" -> {} rows", resp["rows"]);
    }
    if !resp["affected_rows"].is_null() {
        s += &format!(" -> {} affected", resp["affected_rows"]);
    }
    s
}

fn lines(records: &[Value]) -> Vec<String> {
    records.iter().map(line).collect()
}

/// Asserts `wanted` appear in `got` in this order (other commands may come between).
fn in_order(got: &[String], wanted: &[&str]) {
    let mut at = 0;
    for w in wanted {
        match got[at..].iter().position(|g| g.starts_with(w)) {
            Some(i) => at += i + 1,
            None => panic!("`{w}` missing (or out of order) in:\n{}", got.join("\n")),
        }
    }
}

const APP_SESSION: &[&str] = &[
    "connect",
    "query \"SELECT id, v FROM t ORDER BY id\" -> 2 rows",
    "query \"SELECT nope FROM t\" -> error 1054",
    "prepare \"INSERT INTO t (v) VALUES (?)\"",
    "execute [{\"type\":253,\"text\":\"c\"}] -> 1 affected",
    "prepare \"SELECT v FROM t WHERE id = ?\"",
    "execute [{\"type\":8,\"int\":3}] -> 1 rows",
    "query \"SELECT LENGTH('xxxx",
    "query \"SELECT 'last'\" -> 1 rows",
    "quit",
];

const CLI_SESSION: &[&str] = &[
    "connect",
    "query \"SELECT HOST FROM information_schema.PROCESSLIST",
    "init_db",
    "query \"SELECT DATABASE()\" -> 1 rows",
    "query \"SELECT COUNT(*) FROM t2\" -> 1 rows",
    "quit",
];

#[tokio::test]
async fn a_pcap_of_real_clients_decodes_and_damage_is_reported_not_fatal() {
    setup("pc8").await;
    let server = port(Side::Source);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.pcap");
    let Some(tcpdump) = Tcpdump::start(server, &raw, &[], "skipped") else {
        return;
    };
    let ports = clients(server, "pc8").await;
    let frames = stop_when_closed(tcpdump, &ports).await;
    let header = read_pcap(&raw).0;
    let ours: Vec<Frame> = frames.into_iter().filter(|f| f.port_is(&ports)).collect();

    // The whole capture (other tests' connections included) decodes without trouble.
    let (summary, _) = capture(&raw, server);
    assert!(summary["connections"].as_u64().unwrap() >= 2, "{summary:#}");

    // Our two connections: both sessions, every command in order, with its answer.
    let clean = dir.path().join("clean.pcap");
    write_pcap(&clean, &header, &ours);
    let (summary, records) = capture(&clean, server);
    for (k, v) in [
        ("connections", 2),
        ("sessions", 2),
        ("mid_stream_sessions", 0),
        ("gaps", 0),
        ("undecodable_sessions", 0),
        ("unknown_statement_executes", 0),
    ] {
        assert_eq!(summary[k], v, "{k}: {summary:#}");
    }
    let by = sessions(&records);
    let app = lines(&by[&1]);
    in_order(&app, APP_SESSION);
    let cli = lines(&by[&2]);
    in_order(&cli, CLI_SESSION);
    assert_eq!(by[&1][0]["user"], "app");
    assert_eq!(by[&1][0]["db"], "pc8");
    // The client asks for the database before and after `USE`.
    let after_use = by[&2]
        .iter()
        .rfind(|r| r["sql"] == "SELECT DATABASE()")
        .unwrap();
    assert_eq!(after_use["db"], "pc8b", "{after_use:#}");
    assert!(
        cli.iter().any(|l| l.starts_with("init_db \"pc8b\"")),
        "{cli:#?}"
    );
    let select = by[&1]
        .iter()
        .find(|r| r["sql"] == "SELECT id, v FROM t ORDER BY id")
        .unwrap();
    assert_eq!(select["response"]["columns"][1]["name"], "v", "{select:#}");
    assert!(
        select["response"]["latency_us"].as_u64().is_some(),
        "{select:#}"
    );
    // Records are in time order across sessions too.
    let times: Vec<i64> = records
        .iter()
        .map(|r| r["ts_us"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let app_port = ports[0];
    let is_query = |f: &Frame, sql: &str| {
        f.client_data(app_port)
            .is_some_and(|d| d.windows(sql.len()).any(|w| w == sql.as_bytes()))
    };

    // 1. The capture began in the middle of the app's session: everything of its connection
    // before "SELECT nope" is missing.
    let from = ours
        .iter()
        .position(|f| is_query(f, "SELECT nope"))
        .unwrap();
    let late: Vec<Frame> = ours
        .iter()
        .enumerate()
        .filter(|(i, f)| *i >= from || !f.port_is(&[app_port]))
        .map(|(_, f)| f.clone())
        .collect();
    let path = dir.path().join("late.pcap");
    write_pcap(&path, &header, &late);
    let (summary, records) = capture(&path, server);
    assert_eq!(summary["mid_stream_sessions"], 1, "{summary:#}");
    assert_eq!(summary["connections"], 2, "{summary:#}");
    let by = sessions(&records);
    let app = lines(&by[&1]);
    in_order(&app, &APP_SESSION[2..]);
    assert!(!app.iter().any(|l| l.starts_with("connect")), "{app:#?}");
    assert!(by[&1]
        .iter()
        .all(|r| r["db"].is_null() && r["user"].is_null()));
    in_order(&lines(&by[&2]), CLI_SESSION);

    // 2. One data segment lost: the first query. The gap is its exact length, the rest of
    // the session decodes.
    let lost_at = ours
        .iter()
        .position(|f| is_query(f, "SELECT id, v FROM t ORDER BY id"))
        .unwrap();
    let lost_len = ours[lost_at].client_data(app_port).unwrap().len();
    let mut dropped = ours.clone();
    dropped.remove(lost_at);
    let path = dir.path().join("dropped.pcap");
    write_pcap(&path, &header, &dropped);
    let (summary, records) = capture(&path, server);
    assert_eq!(summary["gaps"], 1, "{summary:#}");
    assert_eq!(summary["bytes_lost"], lost_len, "{summary:#}");
    assert_eq!(summary["damaged_sessions"], 1, "{summary:#}");
    assert_eq!(summary["gap_list"][0]["from"], "client", "{summary:#}");
    assert_eq!(summary["gap_list"][0]["session"], 1, "{summary:#}");
    let by = sessions(&records);
    let app = lines(&by[&1]);
    assert!(!app.iter().any(|l| l.contains("ORDER BY id")), "{app:#?}");
    in_order(&app, &[&APP_SESSION[..1], &APP_SESSION[2..]].concat());
    in_order(&lines(&by[&2]), CLI_SESSION);
    // In human form: the summary line, and the gap as a warning naming the connection.
    let r = run(cutover()
        .args(["capture", "--from", "pcap", "--input"])
        .arg(&path)
        .args(["--port", &server.to_string(), "--output"])
        .arg(dir.path().join("human.cwl")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "1 gaps ({lost_len} bytes lost) in 1 damaged sessions"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!(
            "session 1 (127.0.0.1:{app_port} -> 127.0.0.1:{server}): {lost_len} bytes the capture missed"
        )),
        "{}",
        r.stderr
    );
    // `--strict`: a loss is an error, and no workload is left.
    let strict_out = dir.path().join("strict.cwl");
    let r = run(cutover()
        .args(["capture", "--from", "pcap", "--strict", "--input"])
        .arg(&path)
        .args(["--port", &server.to_string(), "--output"])
        .arg(&strict_out));
    r.assert_clean_error(&format!("1 gaps ({lost_len} bytes lost)"));
    assert!(!strict_out.exists());

    // 3. The big query's first two segments swapped: nothing lost, nothing changed.
    let big: Vec<usize> = ours
        .iter()
        .enumerate()
        .filter(|(_, f)| f.client_data(app_port).is_some_and(|d| d.len() > 1000))
        .map(|(i, _)| i)
        .collect();
    assert!(big.len() >= 2, "the 200 KB query took one segment");
    let mut swapped = ours.clone();
    swapped.swap(big[0], big[1]);
    let path = dir.path().join("swapped.pcap");
    write_pcap(&path, &header, &swapped);
    let (summary, records) = capture(&path, server);
    assert_eq!(summary["gaps"], 0, "{summary:#}");
    let by = sessions(&records);
    in_order(&lines(&by[&1]), APP_SESSION);
    let q = by[&1]
        .iter()
        .find(|r| {
            r["sql"]
                .as_str()
                .is_some_and(|s| s.starts_with("SELECT LENGTH"))
        })
        .unwrap();
    assert_eq!(q["sql"].as_str().unwrap().len(), BIG + 17);

    // 4. Every third packet twice (retransmissions): the same workload.
    let mut doubled = Vec::new();
    for (i, f) in ours.iter().enumerate() {
        doubled.push(f.clone());
        if i % 3 == 0 {
            doubled.push(f.clone());
        }
    }
    let path = dir.path().join("doubled.pcap");
    write_pcap(&path, &header, &doubled);
    let (summary2, records2) = capture(&path, server);
    assert_eq!(summary2["gaps"], 0, "{summary2:#}");
    assert!(
        summary2["duplicate_bytes"].as_u64().unwrap() > 0,
        "{summary2:#}"
    );
    assert_eq!(lines(&records2), lines(&capture(&clean, server).1));
}

#[tokio::test]
async fn a_pcap_of_the_proxys_upstream_gives_the_proxys_sessions_and_commands() {
    setup("pc8p").await;
    let server = port(Side::Source);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("upstream.pcap");
    let Some(tcpdump) = Tcpdump::start(server, &raw, &[], "skipped") else {
        return;
    };
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let record = dir.path().join("proxy.cwl");
    let child = cutover()
        .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--upstream", &format!("127.0.0.1:{server}")])
        .arg("--output")
        .arg(&record)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the proxy to listen", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", listen))
            .await
            .is_ok()
    })
    .await;
    // The ports the server sees are the proxy's upstream connections.
    let ports = clients(listen, "pc8p").await;
    let frames = stop_when_closed(tcpdump, &ports).await;
    let output = crate::harness::sigterm_and_wait(child).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header = read_pcap(&raw).0;
    let ours: Vec<Frame> = frames.into_iter().filter(|f| f.port_is(&ports)).collect();
    let path = dir.path().join("ours.pcap");
    write_pcap(&path, &header, &ours);
    let (summary, from_pcap) = capture(&path, server);
    assert_eq!(summary["gaps"], 0, "{summary:#}");

    // The readiness probe above was a connection of its own that sent nothing.
    let from_proxy: Vec<Value> = workload(&record);
    let commands = |records: &[Value]| {
        let mut s: Vec<Vec<String>> = sessions(records)
            .into_values()
            .map(|rs| lines(&rs))
            .filter(|l| !l.is_empty())
            .collect();
        s.sort();
        s
    };
    let (p, x) = (commands(&from_pcap), commands(&from_proxy));
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(p, x, "pcap vs proxy");
}

#[test]
fn capture_pcap_bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.cwl");
    let text = dir.path().join("not.pcap");
    std::fs::write(&text, "SELECT 1;\n".repeat(20)).unwrap();
    let capture = |input: &Path, port: &str| {
        run(cutover()
            .args(["capture", "--from", "pcap", "--input"])
            .arg(input)
            .args(["--port", port, "--output"])
            .arg(&out))
    };
    capture(&text, "3306").assert_clean_error("not a pcap or pcapng file");
    assert!(!out.exists(), "no workload is left behind");
    capture(&dir.path().join("missing.pcap"), "3306").assert_clean_error("cannot read");
    capture(&text, "0").assert_clean_error("--port");
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    capture(&empty, "3306").assert_clean_error("empty");
}
