//! The decoder on real conversations: a relay in front of a sandbox MariaDB hands a copy of
//! every byte to a `Session` while `mysql_async` clients talk through it (text queries,
//! errors, multi-results, prepared statements in the binary protocol, compression,
//! change user, reset connection).

use std::sync::{Arc, Mutex};

use cutover_protocol::{Command, Event, ParamValue, Response, Session};
use cutover_sandbox::{Sandbox, Settings};
use mysql_async::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays one connection at a time to `upstream`, feeding every byte to a new session.
async fn relay(upstream: u16) -> (u16, Arc<Mutex<Vec<Arc<Mutex<(Session, Vec<Event>)>>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let all = sessions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
            let s = Arc::new(Mutex::new((Session::new(), Vec::new())));
            all.lock().unwrap().push(s.clone());
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let s1 = s.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    {
                        let mut g = s1.lock().unwrap();
                        let ev = g.0.client(&buf[..n]);
                        g.1.extend(ev);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    {
                        let mut g = s.lock().unwrap();
                        let ev = g.0.server(&buf[..n]);
                        g.1.extend(ev);
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, sessions)
}

fn opts(port: u16, compress: bool) -> mysql_async::Opts {
    let mut b = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("app"))
        .pass(Some("app-secret"))
        .prefer_socket(false);
    if compress {
        b = b.compression(mysql_async::Compression::default());
    }
    b.into()
}

fn responses(events: &[Event]) -> Vec<&Response> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_real_conversation_decodes_command_by_command() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    sb.source
        .sql(
            "CREATE DATABASE p; USE p; CREATE TABLE p.t (id INT PRIMARY KEY AUTO_INCREMENT, \
             name VARCHAR(20), price DECIMAL(8,2), at DATETIME(3)); \
             INSERT INTO p.t (name, price, at) VALUES ('a', 1.50, '2024-01-02 03:04:05.678'), \
             ('b', NULL, NULL)",
        )
        .unwrap();
    let (port, sessions) = relay(sb.source.port).await;

    for (i, compress) in [false, true].into_iter().enumerate() {
        let mut c = mysql_async::Conn::new(opts(port, compress)).await.unwrap();
        c.query_drop("USE p").await.unwrap();
        let rows: Vec<(i32, Option<String>)> =
            c.query("SELECT id, name FROM t ORDER BY id").await.unwrap();
        assert_eq!(rows.len(), 2 + i, "the first round inserted one");
        assert!(c.query_drop("SELECT * FROM missing_table").await.is_err());
        c.exec_drop(
            "INSERT INTO t (name, price, at) VALUES (?, ?, ?)",
            ("c", 2.25f64, "2024-05-06 07:08:09"),
        )
        .await
        .unwrap();
        let got: Option<(String,)> = c
            .exec_first("SELECT name FROM t WHERE id = ?", (1,))
            .await
            .unwrap();
        assert_eq!(got, Some(("a".to_string(),)));
        let _: Vec<(i32,)> = c.query("SELECT 1; SELECT 2").await.unwrap();
        c.reset().await.unwrap();
        c.disconnect().await.unwrap();
    }

    // The relay reads the last bytes (COM_QUIT) on its own time: wait for them.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let quits = sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.lock().unwrap().1.contains(&Event::Command(Command::Quit)))
            .count();
        if quits == 2 {
            break;
        }
        assert!(std::time::Instant::now() < until, "{quits} sessions quit");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sessions = sessions.lock().unwrap();
    assert_eq!(sessions.len(), 2);
    for (i, s) in sessions.iter().enumerate() {
        let g = s.lock().unwrap();
        let (session, events) = (&g.0, &g.1);
        assert_eq!(session.problems, 0, "session {i}: {events:#?}");
        assert!(session.saw_handshake);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Login { user, compress, .. }
                if user == "app" && *compress == (i == 1))),
            "{events:#?}"
        );
        assert!(events.contains(&Event::Authenticated { ok: true }));
        let commands: Vec<&Command> = events
            .iter()
            .filter_map(|e| match e {
                Event::Command(c) => Some(c),
                _ => None,
            })
            .collect();
        assert!(commands.contains(&&Command::Query {
            sql: "SELECT id, name FROM t ORDER BY id".into()
        }));
        assert!(commands.contains(&&Command::Quit));
        assert!(commands.contains(&&Command::ResetConnection));
        // The prepared INSERT's parameters, decoded from the binary protocol.
        let exec = commands
            .iter()
            .find_map(|c| match c {
                Command::Execute { params, .. } if params.len() == 3 => Some(params.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{commands:#?}"));
        assert_eq!(exec[0].value, ParamValue::Bytes(b"c".to_vec()));
        assert_eq!(exec[1].value, ParamValue::Double(2.25f64.to_bits()));
        assert_eq!(exec[1].type_code, 5, "DOUBLE, as mysql_async bound it");
        let rs = responses(events);
        // The SELECT: 2 rows, two columns with their types.
        let select = rs
            .iter()
            .find_map(|r| match r {
                Response::ResultSet {
                    columns,
                    rows,
                    binary: false,
                    ..
                } if columns.len() == 2 && columns[0].name == "id" => Some(*rows),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{rs:#?}"));
        assert_eq!(select, 2 + i as u64);
        // The error, with its code and state.
        assert!(rs
            .iter()
            .any(|r| matches!(r, Response::Err { code: 1146, state, .. } if state == "42S02")));
        // The INSERT's OK with its generated id.
        assert!(rs.iter().any(|r| matches!(r, Response::Ok { affected_rows: 1, last_insert_id, .. } if *last_insert_id >= 3)));
        // The prepared SELECT's binary result set.
        assert!(rs.iter().any(|r| matches!(
            r,
            Response::ResultSet {
                binary: true,
                rows: 1,
                ..
            }
        )));
        // Both results of the multi-statement.
        let singles = rs
            .iter()
            .filter(|r| matches!(r, Response::ResultSet { columns, rows: 1, binary: false, .. } if columns.len() == 1 && (columns[0].name == "1" || columns[0].name == "2")))
            .count();
        assert_eq!(singles, 2, "{rs:#?}");
        assert!(rs
            .iter()
            .any(|r| matches!(r, Response::Prepared { params: 3, .. })));
    }
}
