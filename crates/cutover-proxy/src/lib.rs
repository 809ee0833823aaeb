//! `cutover proxy`: clients connect to the proxy, which relays their bytes to the upstream
//! server and back unchanged (the handshake and authentication included, whatever the plugin:
//! the exchange is relayed, never redone), and decodes a copy of both directions with
//! [`cutover_protocol::Session`] into workload records (`cutover-workload`): every command
//! with its response summary and latency.
//!
//! Bytes are forwarded before they are decoded, so decoding never delays a client; records go
//! to the writer over a bounded queue, and when the writer cannot keep up a record is dropped
//! and counted rather than slowing the traffic. A connection whose bytes cannot be decoded
//! (TLS, a corrupt stream) is marked and keeps being relayed. On cancellation (SIGTERM) the
//! proxy stops accepting, closes its connections and finishes the workload file.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cutover_protocol::{Event, Response as Wire, Session};
use cutover_workload::{ColumnDef, Command, ErrorInfo, Header, Record, Response, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the workload file: {0}")]
    Workload(#[from] cutover_workload::WorkloadError),
}

/// What to relay and where to record.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub listen: String,
    /// `HOST:PORT` of the server.
    pub upstream: String,
    pub record: PathBuf,
    /// Records waiting for the writer beyond which new ones are dropped (and counted).
    pub queue: usize,
}

/// What the proxy did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub connections: u64,
    pub records: u64,
    /// Records dropped because the writer could not keep up.
    pub dropped: u64,
    /// Connections that could not be (fully) decoded: TLS, or undecodable packets.
    pub undecodable_connections: u64,
    pub bytes_from_clients: u64,
    pub bytes_from_server: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped: AtomicU64,
    undecodable: AtomicU64,
    client_bytes: AtomicU64,
    server_bytes: AtomicU64,
}

/// Binds the listener (so a bad address fails before anything else), then relays until
/// `cancel`. `on_listening` sees the bound address.
pub async fn run(
    opts: ProxyOptions,
    cancel: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<Summary, ProxyError> {
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| ProxyError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    let mut writer = Writer::create(
        &opts.record,
        &Header::new("proxy", Some(opts.upstream.clone())),
    )?;
    if let Ok(a) = listener.local_addr() {
        on_listening(a);
    }
    let (tx, mut rx) = mpsc::channel::<Record>(opts.queue.max(1));
    let counters = Arc::new(Counters::default());
    let writing = tokio::task::spawn_blocking(move || -> Result<Writer, ProxyError> {
        while let Some(r) = rx.blocking_recv() {
            writer.write(&r)?;
        }
        Ok(writer)
    });
    let conns = tokio_util::task::TaskTracker::new();
    let mut next_session = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                next_session += 1;
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let (tx, counters, upstream, cancel) =
                    (tx.clone(), counters.clone(), opts.upstream.clone(), cancel.clone());
                let id = next_session;
                conns.spawn(async move {
                    relay(id, client, &upstream, tx, counters, cancel).await;
                });
            }
        }
    }
    conns.close();
    conns.wait().await;
    drop(tx);
    let writer = writing
        .await
        .map_err(|e| cutover_workload::WorkloadError::Io {
            path: opts.record.clone(),
            source: std::io::Error::other(e),
        })??;
    let records = writer.finish()?;
    Ok(Summary {
        connections: counters.connections.load(Ordering::Relaxed),
        records,
        dropped: counters.dropped.load(Ordering::Relaxed),
        undecodable_connections: counters.undecodable.load(Ordering::Relaxed),
        bytes_from_clients: counters.client_bytes.load(Ordering::Relaxed),
        bytes_from_server: counters.server_bytes.load(Ordering::Relaxed),
    })
}

/// One connection: both directions relayed, a copy decoded into records.
async fn relay(
    id: u64,
    client: TcpStream,
    upstream: &str,
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        // The client sees the connection close, as it would with the server down.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let state = Arc::new(Mutex::new(Recorder::new(id, tx, counters.clone())));
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = {
        let state = state.clone();
        let counters = counters.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                counters.client_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Ok(mut s) = state.lock() {
                    s.client(&buf[..n]);
                }
            }
            let _ = sw.shutdown().await;
        }
    };
    let down = {
        let state = state.clone();
        let counters = counters.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                counters.server_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Ok(mut s) = state.lock() {
                    s.server(&buf[..n]);
                }
            }
            let _ = cw.shutdown().await;
        }
    };
    // Stopped (SIGTERM): the connection closes; either way its session is recorded as ended.
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    let closed = state.lock().map(|mut s| s.close()).is_ok();
    let _ = closed;
}

/// A command waiting for its response.
struct Pending {
    command: Command,
    ts_us: i64,
    started: Instant,
    response: Option<Response>,
}

/// Turns one connection's events into records.
struct Recorder {
    id: u64,
    session: Session,
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    user: Option<String>,
    db: Option<String>,
    pending: VecDeque<Pending>,
    marked: bool,
    quit: bool,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The protocol's name of a column type code (`MYSQL_TYPE_LONG`).
fn type_name(code: u8) -> String {
    cutover_protocol::session::type_name(code)
}

impl Recorder {
    fn new(id: u64, tx: mpsc::Sender<Record>, counters: Arc<Counters>) -> Recorder {
        Recorder {
            id,
            session: Session::new(),
            tx,
            counters,
            user: None,
            db: None,
            pending: VecDeque::new(),
            marked: false,
            quit: false,
        }
    }

    fn client(&mut self, bytes: &[u8]) {
        let events = self.session.client(bytes);
        self.events(events);
    }

    fn server(&mut self, bytes: &[u8]) {
        let events = self.session.server(bytes);
        self.events(events);
    }

    fn emit(&self, command: Command, ts_us: i64, response: Option<Response>) {
        let r = Record {
            session: self.id,
            ts_us,
            db: self.db.clone(),
            user: self.user.clone(),
            command,
            response,
        };
        if self.tx.try_send(r).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn mark(&mut self) {
        if !self.marked {
            self.marked = true;
            self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn events(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Greeting { .. } => {}
                Event::Login { user, db, .. } => {
                    self.user = Some(user);
                    self.db = db;
                    self.pending.push_back(Pending {
                        command: Command::Connect,
                        ts_us: now_us(),
                        started: Instant::now(),
                        response: None,
                    });
                }
                Event::Authenticated { ok } => {
                    if let Some(p) = self.pending.pop_front() {
                        let response = (!ok).then(|| Response {
                            error: Some(ErrorInfo {
                                code: 1045,
                                state: Some("28000".into()),
                                message: Some("access denied".into()),
                            }),
                            ..Response::default()
                        });
                        self.emit(p.command, p.ts_us, response);
                    }
                }
                Event::Tls | Event::Undecodable { .. } => self.mark(),
                Event::Command(c) => self.command(c),
                Event::Response(r) => self.response(r),
            }
        }
    }

    fn command(&mut self, c: cutover_protocol::Command) {
        use cutover_protocol::Command as C;
        let ts_us = now_us();
        let wait = |command| Pending {
            command,
            ts_us,
            started: Instant::now(),
            response: None,
        };
        match c {
            C::Query { sql } => self.pending.push_back(wait(Command::Query { sql })),
            C::InitDb { db } => self.pending.push_back(wait(Command::InitDb { db })),
            // The statement id comes with the response.
            C::Prepare { sql } => self
                .pending
                .push_back(wait(Command::Prepare { stmt: 0, sql })),
            C::Execute { stmt_id, params } => {
                let params = params
                    .into_iter()
                    .map(|p| match p.value {
                        None => serde_json::Value::Null,
                        Some(v) => serde_json::Value::String(v),
                    })
                    .collect();
                self.pending.push_back(wait(Command::Execute {
                    stmt: stmt_id,
                    params,
                }));
            }
            C::Close { stmt_id } => self.emit(Command::Close { stmt: stmt_id }, ts_us, None),
            C::ResetConnection => self.pending.push_back(wait(Command::Reset)),
            C::ChangeUser { user, db } => {
                self.user = Some(user);
                self.db = db;
                self.pending.push_back(wait(Command::ChangeUser));
            }
            C::Quit => {
                self.quit = true;
                self.emit(Command::Quit, ts_us, None);
            }
            // Answered with OK/ERR but not part of a workload: the answer is skipped.
            C::Ping | C::ResetStmt { .. } => self.pending.push_back(Pending {
                command: Command::Reset,
                ts_us: -1,
                started: Instant::now(),
                response: None,
            }),
            C::SendLongData { .. } | C::Other { .. } => {}
        }
    }

    fn response(&mut self, r: Wire) {
        let more = r.more_results();
        let Some(mut p) = self.pending.pop_front() else {
            return;
        };
        let latency_us = p.started.elapsed().as_micros() as u64;
        let summary = match &r {
            Wire::Ok {
                affected_rows,
                last_insert_id,
                status,
                warnings,
                ..
            } => Response {
                affected_rows: Some(*affected_rows),
                last_insert_id: Some(*last_insert_id),
                warnings: Some(*warnings),
                status_flags: Some(*status),
                latency_us: Some(latency_us),
                ..Response::default()
            },
            Wire::Err {
                code,
                state,
                message,
            } => Response {
                error: Some(ErrorInfo {
                    code: *code,
                    state: Some(state.clone()),
                    message: Some(message.clone()),
                }),
                latency_us: Some(latency_us),
                ..Response::default()
            },
            Wire::ResultSet {
                columns,
                rows,
                status,
                warnings,
                ..
            } => Response {
                columns: Some(
                    columns
                        .iter()
                        .map(|c| ColumnDef {
                            name: c.name.clone(),
                            type_name: type_name(c.type_code),
                            flags: Some(c.flags),
                            charset: Some(c.charset),
                            decimals: Some(c.decimals),
                        })
                        .collect(),
                ),
                rows: Some(*rows),
                warnings: Some(*warnings),
                status_flags: Some(*status),
                latency_us: Some(latency_us),
                ..Response::default()
            },
            Wire::Prepared {
                stmt_id, warnings, ..
            } => {
                if let Command::Prepare { stmt, .. } = &mut p.command {
                    *stmt = *stmt_id;
                }
                Response {
                    warnings: Some(*warnings),
                    latency_us: Some(latency_us),
                    ..Response::default()
                }
            }
            Wire::LocalInfile { .. } => Response {
                latency_us: Some(latency_us),
                ..Response::default()
            },
        };
        // A multi-result keeps its first answer; the command is recorded after its last.
        if p.response.is_none() {
            p.response = Some(summary);
        }
        if more {
            self.pending.push_front(p);
            return;
        }
        if let (Command::InitDb { db }, Some(Response { error: None, .. })) =
            (&p.command, &p.response)
        {
            self.db = Some(db.clone());
        }
        if p.ts_us >= 0 {
            self.emit(p.command, p.ts_us, p.response);
        }
    }

    /// The connection ended: a client that vanished without `COM_QUIT` still ends its session.
    fn close(&mut self) {
        if !self.quit && self.user.is_some() {
            self.emit(Command::Quit, now_us(), None);
        }
    }
}
