//! `cutover proxy`: clients connect to the proxy, which relays their bytes to the upstream
//! server and back unchanged (the handshake and authentication included, whatever the plugin:
//! the exchange is relayed, never redone), and decodes a copy of both directions with
//! [`cutover_protocol::Recorder`] into workload records (`cutover-workload`): every command
//! with its response summary and latency.
//!
//! Bytes are forwarded before they are decoded, so decoding never delays a client; records go
//! to the writer over a bounded queue, and when the writer cannot keep up a record is dropped
//! and counted rather than slowing the traffic. A connection whose bytes cannot be decoded
//! (TLS, a corrupt stream) is marked and keeps being relayed. On cancellation (SIGTERM) the
//! proxy stops accepting, closes its connections and finishes the workload file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cutover_protocol::Recorder;
use cutover_workload::{Header, Record, Writer};
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
    let state = Arc::new(Mutex::new(Recording::new(id, tx, counters.clone())));
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

/// One connection's recorder and where its records go.
struct Recording {
    recorder: Recorder,
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
    marked: bool,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Recording {
    fn new(id: u64, tx: mpsc::Sender<Record>, counters: Arc<Counters>) -> Recording {
        Recording {
            recorder: Recorder::new(id),
            tx,
            counters,
            marked: false,
        }
    }

    fn client(&mut self, bytes: &[u8]) {
        self.recorder.client(bytes, now_us());
        self.flush();
    }

    fn server(&mut self, bytes: &[u8]) {
        self.recorder.server(bytes, now_us());
        self.flush();
    }

    fn close(&mut self) {
        self.recorder.close(now_us());
        self.flush();
    }

    /// Completed records go to the writer; when it cannot keep up they are dropped and
    /// counted rather than slowing the traffic.
    fn flush(&mut self) {
        if !self.marked && self.recorder.undecodable() {
            self.marked = true;
            self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
        }
        for r in self.recorder.take() {
            if self.tx.try_send(r).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
