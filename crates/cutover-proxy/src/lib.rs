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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_protocol::{Peer, Recorder};
use cutover_workload::{Header, Record};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod files;
pub mod metrics_doc;
pub mod tls;

pub use tls::{Tls, TlsError};

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
    /// Terminate TLS for clients that ask for it (and open TLS to the upstream).
    pub tls: Option<Tls>,
    /// A workload file is closed and the next part begun at this size on disk.
    pub rotate_bytes: u64,
    /// Parts kept on disk; the oldest beyond this are removed.
    pub max_files: usize,
    /// Keep literal values out of the workload (`--redact-values`).
    pub redact: bool,
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
    /// Connections whose TLS the proxy terminated.
    pub tls_connections: u64,
    /// Connections closed because TLS could not be set up on one of the legs.
    pub tls_failures: u64,
    /// Times accepting a client failed (out of file descriptors, say); each is followed by a
    /// pause (10 ms, doubling up to 1 s) before the next try.
    pub accept_errors: u64,
    /// The last such failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tls_failure: Option<String>,
    /// Why the last undecodable connection could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_undecodable: Option<String>,
    /// The workload parts on disk, oldest first.
    pub files: Vec<PathBuf>,
    /// Parts removed to keep within `--max-files`.
    pub removed_files: Vec<PathBuf>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped: AtomicU64,
    undecodable: AtomicU64,
    client_bytes: AtomicU64,
    server_bytes: AtomicU64,
    tls: AtomicU64,
    tls_failures: AtomicU64,
    accept_errors: AtomicU64,
    last_tls_failure: Mutex<Option<String>>,
    last_undecodable: Mutex<Option<String>>,
}

impl Counters {
    /// Bytes relayed from one end.
    fn bytes_from(&self, from: Peer) -> &AtomicU64 {
        match from {
            Peer::Client => &self.client_bytes,
            Peer::Server => &self.server_bytes,
        }
    }
}

/// The first pause after a failed `accept`, and the longest.
const ACCEPT_PAUSE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Binds the listener (so a bad address fails before anything else), then relays until
/// `cancel`. `on_listening` sees the bound address; `on_warning` hears about trouble that does
/// not stop the proxy (accepting clients failing, and recovering).
pub async fn run(
    opts: ProxyOptions,
    cancel: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
    on_warning: impl Fn(String),
) -> Result<Summary, ProxyError> {
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| ProxyError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    let header = Header {
        redacted: opts.redact,
        ..Header::new("proxy", Some(opts.upstream.clone()))
    };
    let mut writer = files::Parts::create(&opts.record, header, opts.rotate_bytes, opts.max_files)?;
    metrics_doc::describe();
    if let Ok(a) = listener.local_addr() {
        on_listening(a);
    }
    let (tx, mut rx) = mpsc::channel::<Record>(opts.queue.max(1));
    let counters = Arc::new(Counters::default());
    let writing = tokio::task::spawn_blocking(move || -> Result<files::Parts, ProxyError> {
        while let Some(r) = rx.blocking_recv() {
            writer.write(&r)?;
            metrics::counter!("cutover_proxy_records_total").increment(1);
        }
        Ok(writer)
    });
    let conns = tokio_util::task::TaskTracker::new();
    let mut next_session = 0u64;
    // Failed accepts since the last success, and the pause before the next try. An accept
    // that fails (EMFILE/ENFILE: out of descriptors, ENOBUFS, ...) fails again at once while
    // the cause lasts; retrying at once would spin a core. The pending client waits in the
    // listen backlog and is taken when descriptors are free again.
    let mut failing = 0u64;
    let mut pause = ACCEPT_PAUSE.0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => {
                let client = match accepted {
                    Ok((client, _)) => client,
                    Err(e) => {
                        counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("cutover_proxy_accept_errors_total").increment(1);
                        if failing == 0 {
                            on_warning(format!(
                                "cannot accept clients: {e}; retrying with pauses of up to {} s (new clients wait)",
                                ACCEPT_PAUSE.1.as_secs()
                            ));
                        }
                        failing += 1;
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(ACCEPT_PAUSE.1);
                        continue;
                    }
                };
                if failing > 0 {
                    on_warning(format!("accepting clients again after {failing} failed tries"));
                    failing = 0;
                    pause = ACCEPT_PAUSE.0;
                }
                next_session += 1;
                counters.connections.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cutover_proxy_connections_total").increment(1);
                let redact = opts.redact;
                let (tx, counters, upstream, cancel, tls) = (
                    tx.clone(),
                    counters.clone(),
                    opts.upstream.clone(),
                    cancel.clone(),
                    opts.tls.clone(),
                );
                let id = next_session;
                conns.spawn(async move {
                    let state = Recording::new(id, tx, counters.clone(), redact);
                    relay(client, &upstream, tls, state, counters, cancel).await;
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
    let written = writer.finish()?;
    let last_tls_failure = counters
        .last_tls_failure
        .lock()
        .ok()
        .and_then(|f| f.clone());
    Ok(Summary {
        connections: counters.connections.load(Ordering::Relaxed),
        records: written.records,
        dropped: counters.dropped.load(Ordering::Relaxed),
        undecodable_connections: counters.undecodable.load(Ordering::Relaxed),
        bytes_from_clients: counters.client_bytes.load(Ordering::Relaxed),
        bytes_from_server: counters.server_bytes.load(Ordering::Relaxed),
        tls_connections: counters.tls.load(Ordering::Relaxed),
        tls_failures: counters.tls_failures.load(Ordering::Relaxed),
        accept_errors: counters.accept_errors.load(Ordering::Relaxed),
        last_tls_failure,
        last_undecodable: counters
            .last_undecodable
            .lock()
            .ok()
            .and_then(|f| f.clone()),
        files: written.files,
        removed_files: written.removed,
    })
}

/// Reads one protocol packet (header and payload) during the handshake.
async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut packet = Vec::with_capacity(4 + len);
    packet.extend_from_slice(&header);
    packet.resize(4 + len, 0);
    r.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}

/// One connection: both directions relayed, a copy decoded into records. With TLS
/// configured, the greeting and the client's first packet are read one by one to see
/// whether the client asks for TLS; everything else is relayed as it comes.
async fn relay(
    mut client: TcpStream,
    upstream: &str,
    tls: Option<Tls>,
    state: Recording,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        // The client sees the connection close, as it would with the server down.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let state = Arc::new(Mutex::new(state));
    let Some(tls) = tls else {
        pump(client, server, state, counters, cancel).await;
        return;
    };
    let handshake = async {
        let greeting = read_packet(&mut server).await?;
        client.write_all(&greeting).await?;
        if let Ok(mut s) = state.lock() {
            s.feed(Peer::Server, &greeting);
        }
        let first = read_packet(&mut client).await?;
        server.write_all(&first).await?;
        std::io::Result::Ok(first)
    };
    let first = tokio::select! {
        _ = cancel.cancelled() => return,
        first = handshake => match first {
            Ok(first) => first,
            Err(_) => return,
        },
    };
    if !tls::is_ssl_request(first.get(4..).unwrap_or_default()) {
        if let Ok(mut s) = state.lock() {
            s.feed(Peer::Client, &first);
        }
        pump(client, server, state, counters, cancel).await;
        return;
    }
    // TLS on both legs: the upstream first (a client is never left talking to a proxy that
    // could not secure the other leg), then the client. The SSL request itself is not shown to
    // the decoder, which then reads the full handshake response inside TLS.
    let secured = async {
        let server = tls
            .connector
            .connect(tls.server_name.clone(), server)
            .await
            .map_err(|e| format!("TLS to the upstream: {e}"))?;
        let client = tls
            .acceptor
            .accept(client)
            .await
            .map_err(|e| format!("TLS with the client: {e}"))?;
        Ok::<_, String>((client, server))
    };
    let (client, server) = tokio::select! {
        _ = cancel.cancelled() => return,
        r = secured => match r {
            Ok(pair) => pair,
            Err(e) => {
                counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cutover_proxy_tls_failures_total").increment(1);
                if let Ok(mut failures) = counters.last_tls_failure.lock() {
                    *failures = Some(e);
                }
                return;
            }
        },
    };
    counters.tls.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("cutover_proxy_tls_connections_total").increment(1);
    pump(client, server, state, counters, cancel).await;
}

/// Relays both directions until either side closes (or `cancel`), feeding a copy to the
/// recorder; the session is then recorded as ended.
async fn pump<C, S>(
    client: C,
    server: S,
    state: Arc<Mutex<Recording>>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) where
    C: AsyncRead + AsyncWrite + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    metrics::gauge!("cutover_proxy_connections_active").increment(1.0);
    let (cr, cw) = tokio::io::split(client);
    let (sr, sw) = tokio::io::split(server);
    let up = relay_one_way(cr, sw, Peer::Client, state.clone(), counters.clone());
    let down = relay_one_way(sr, cw, Peer::Server, state.clone(), counters);
    // Stopped (SIGTERM): the connection closes; either way its session is recorded as ended.
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    if let Ok(mut s) = state.lock() {
        s.close();
    }
    metrics::gauge!("cutover_proxy_connections_active").decrement(1.0);
}

/// One direction of a connection: what `from`'s end sends is relayed to the other end and a
/// copy fed to the recorder, until either end closes; the other end is then shut for writing.
async fn relay_one_way<R, W>(
    mut reader: R,
    mut writer: W,
    from: Peer,
    state: Arc<Mutex<Recording>>,
    counters: Arc<Counters>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // The client's bytes are recorded before they are relayed (commands are small): the
    // server cannot answer bytes the decoder has not seen, so no answer reaches it before its
    // command. The server's are relayed first: answers (large result sets) are not delayed by
    // decoding. A client's reply may then reach the decoder before the server packet it
    // answers; the decoder does not depend on that order (a next command is pipelining; auth
    // data and a file continue their sequence ids).
    let record_first = from == Peer::Client;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if record_first {
            if let Ok(mut s) = state.lock() {
                s.feed(from, &buf[..n]);
            }
        }
        if writer.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counters
            .bytes_from(from)
            .fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("cutover_proxy_bytes_total", "from" => from.name()).increment(n as u64);
        if !record_first {
            if let Ok(mut s) = state.lock() {
                s.feed(from, &buf[..n]);
            }
        }
    }
    let _ = writer.shutdown().await;
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
    fn new(id: u64, tx: mpsc::Sender<Record>, counters: Arc<Counters>, redact: bool) -> Recording {
        Recording {
            recorder: Recorder::new(id).redacting(redact),
            tx,
            counters,
            marked: false,
        }
    }

    fn feed(&mut self, from: Peer, bytes: &[u8]) {
        self.recorder.feed(from, bytes, now_us());
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
            if let (Ok(mut last), Some(why)) = (
                self.counters.last_undecodable.lock(),
                self.recorder.undecodable_reason(),
            ) {
                *last = Some(why.to_string());
            }
            metrics::counter!("cutover_proxy_undecodable_connections_total").increment(1);
        }
        for r in self.recorder.take() {
            metrics::counter!("cutover_proxy_commands_total", "command" => r.command.name())
                .increment(1);
            if let Some(resp) = &r.response {
                if resp.error.is_some() {
                    metrics::counter!("cutover_proxy_errors_total").increment(1);
                }
                if let Some(us) = resp.latency_us {
                    metrics::histogram!("cutover_proxy_latency_seconds").record(us as f64 / 1e6);
                }
            }
            if self.tx.try_send(r).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cutover_proxy_records_dropped_total").increment(1);
            }
        }
    }
}
