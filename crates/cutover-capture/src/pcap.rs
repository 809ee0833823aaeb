//! A packet capture (pcap or pcapng, e.g. `tcpdump -w`) into workload records: every MySQL
//! connection to a server port reassembled ([`crate::tcp`]) and decoded by
//! [`cutover_protocol::Recorder`], with the packets' own times.
//!
//! - Link layers: Ethernet (with VLAN tags), Linux cooked capture v1 and v2 (`tcpdump -i
//!   any`), BSD loopback (`DLT_NULL`, `DLT_LOOP`), raw IP; IPv4 and IPv6 (by `etherparse`).
//!   IP fragments and other protocols are counted and skipped.
//! - The server of a connection is the endpoint on one of the ports given (3306 by default);
//!   when both are, the one the SYN went to. Every connection is a session of its own (ids
//!   from 1 in the order connections appear), whatever server it went to, so one file may
//!   hold several servers.
//! - A connection whose SYN the capture saw is decoded from its handshake (user, database,
//!   capabilities). One that began before the capture is decoded with
//!   [`Recorder::mid_stream`] from the first client segment that starts a command packet
//!   (length, sequence 0, a known command byte): its user and default database are unknown
//!   until a `COM_INIT_DB`/`COM_CHANGE_USER` (records carry no `db`), and statements it
//!   prepared before the capture are unknown: their executes are kept (with their
//!   parameters) and counted in [`PcapSummary::unknown_statement_executes`].
//! - The two directions reach the decoder in acknowledgement order (`pump`): data goes
//!   after the bytes of the other direction its segment acknowledged, so an answer captured
//!   before its request, or requests and answers around a loss, stay paired. Data that
//!   acknowledges bytes never seen waits for them 50 ms of capture time; then they are lost.
//! - A gap (bytes the capture lost, [`crate::tcp`] says when a hole is one) is reported with
//!   its connection, direction and length, and marks the session damaged. The decoder cannot
//!   know where packets start after a hole, so the session's decoder is retired (commands
//!   still waiting for their answers are recorded without them) and a fresh mid-stream
//!   decoder starts at the next client segment that starts a command, as for a connection
//!   that began before the capture; server bytes before it are skipped. The session keeps its
//!   id, so its commands stay on one connection on replay; its default database is unknown
//!   from then on (a `COM_INIT_DB` may have been lost in the hole).
//! - Memory: the file is streamed block by block; per connection, the decoder's state and at
//!   most `max_buffered` out-of-order bytes and 256 waiting pieces per direction; a
//!   connection is flushed and
//!   forgotten when it ends (FIN both ways, or RST).
//! - Order: records of one session are in the order of its commands. Across sessions they are
//!   written in time order within `reorder_window_us` (a command is recorded when its answer
//!   ends, so a long query's record would otherwise come after later commands of other
//!   sessions); at most `max_reorder` records wait.
//!
//! Nothing here panics on any bytes (property-tested).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use cutover_protocol::Recorder;
use cutover_workload::{Command, Record};
use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};
use serde::Serialize;

use crate::tcp::{Piece, Reassembler, Stamp};

/// What to capture.
#[derive(Clone, Debug)]
pub struct PcapOptions {
    /// Server ports.
    pub ports: Vec<u16>,
    /// Out-of-order bytes held per direction of a connection before a hole is given up.
    pub max_buffered: usize,
    /// How long (capture time) records wait to be put in time order across sessions.
    pub reorder_window_us: i64,
    /// Records waiting at most for that.
    pub max_reorder: usize,
}

impl Default for PcapOptions {
    fn default() -> Self {
        PcapOptions {
            ports: vec![3306],
            max_buffered: 4 << 20,
            reorder_window_us: 10_000_000,
            max_reorder: 100_000,
        }
    }
}

/// Gaps listed one by one in the summary; the rest are counted.
pub const LISTED_GAPS: usize = 100;

/// A hole in a connection's stream that the capture did not fill.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub session: u64,
    pub client: String,
    pub server: String,
    /// `client` (client → server bytes) or `server`.
    pub from: &'static str,
    pub bytes: u64,
    /// When the hole was found (capture time, microseconds since the epoch).
    pub ts_us: i64,
}

/// What the capture held and what could not be recovered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PcapSummary {
    pub packets: u64,
    /// TCP segments to or from a server port.
    pub segments: u64,
    /// Packets that are not TCP on a server port (other traffic, IP fragments, ARP, ...).
    pub other_packets: u64,
    /// Packets whose link or IP headers could not be read (or of a link type not read).
    pub undecodable_packets: u64,
    /// Link types met that are not read, by number.
    pub unsupported_link_types: Vec<i32>,
    /// TCP connections (each a session).
    pub connections: u64,
    /// Distinct server endpoints (address and port).
    pub servers: u64,
    /// Sessions that began before the capture (no handshake: user, database and earlier
    /// prepared statements unknown).
    pub mid_stream_sessions: u64,
    /// Sessions with at least one gap.
    pub damaged_sessions: u64,
    /// Sessions whose bytes could not be decoded, all or in part (TLS, corrupt packets).
    pub undecodable_sessions: u64,
    /// Connections in which no command could be decoded at all.
    pub sessions_without_commands: u64,
    pub gaps: u64,
    pub bytes_lost: u64,
    /// The first gaps ([`LISTED_GAPS`]).
    pub gap_list: Vec<Gap>,
    /// Bytes seen more than once (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Client and server bytes skipped while looking for a command to start decoding at
    /// (after a gap, or in a connection that began before the capture).
    pub skipped_bytes: u64,
    /// `COM_STMT_EXECUTE`s of statements not prepared within the capture.
    pub unknown_statement_executes: u64,
    /// Why reading stopped before the end of the file, if it did (a truncated or corrupt
    /// file: what was read before is kept).
    pub file_problem: Option<String>,
}

/// Why a capture could not run.
#[derive(Debug, thiserror::Error)]
pub enum PcapFailure<E> {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Sink(E),
}

/// The largest packet record accepted (a larger one means a corrupt file).
const MAX_BLOCK: usize = 16 << 20;

/// Reads `input` to the end, handing records to `sink` in the order described in the module
/// documentation.
pub fn capture<R, E>(
    input: R,
    opts: &PcapOptions,
    sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<PcapSummary, PcapFailure<E>>
where
    R: Read + Send,
{
    let mut reader = match create_reader(1 << 20, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(PcapFailure::Input("the file is empty".into())),
        Err(PcapError::ReadError) => {
            return Err(PcapFailure::Input("the file cannot be read".into()))
        }
        Err(_) => {
            return Err(PcapFailure::Input(
                "not a pcap or pcapng file (no pcap header or pcapng section header)".into(),
            ))
        }
    };
    let mut state = State::new(opts.clone(), sink);
    let mut legacy_link = Linktype::ETHERNET;
    let mut legacy_nanos = false;
    // pcapng interfaces of the current section: link type, units per second, offset (s).
    let mut interfaces: Vec<(Linktype, u64, i64)> = Vec::new();
    let mut last_ts = 0i64;
    let mut capacity = 1 << 20;
    loop {
        let consumed = reader.consumed();
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_link = h.network;
                        legacy_nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if legacy_nanos {
                            i64::from(b.ts_usec) / 1000
                        } else {
                            i64::from(b.ts_usec)
                        };
                        last_ts = i64::from(b.ts_sec) * 1_000_000 + frac;
                        state.packet(legacy_link, b.data, last_ts)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let res = idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000);
                        interfaces.push((idb.linktype, res, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(&(link, res, off)) => {
                                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let us = (u128::from(ts) * 1_000_000 / u128::from(res))
                                    .min(i64::MAX as u128)
                                    as i64;
                                last_ts = us.saturating_add(off.saturating_mul(1_000_000));
                                let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                                state.packet(link, data, last_ts)?;
                            }
                            None => {
                                state.summary.packets += 1;
                                state.summary.undecodable_packets += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // No time of its own: the previous packet's.
                        match interfaces.first() {
                            Some(&(link, _, _)) => {
                                let len = (spb.origlen as usize).min(spb.data.len());
                                state.packet(link, &spb.data[..len], last_ts)?;
                            }
                            None => {
                                state.summary.packets += 1;
                                state.summary.undecodable_packets += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    state.summary.file_problem =
                        Some("the file ends in the middle of a packet record".into());
                    break;
                }
                if reader.refill().is_err() {
                    state.summary.file_problem = Some("a read failed".into());
                    break;
                }
            }
            Err(PcapError::UnexpectedEof) => {
                state.summary.file_problem =
                    Some("the file ends in the middle of a packet record".into());
                break;
            }
            Err(PcapError::BufferTooSmall) => {
                capacity *= 2;
                if capacity > MAX_BLOCK || !reader.grow(capacity) {
                    state.summary.file_problem = Some(format!(
                        "a packet record larger than {} MiB (a corrupt file?)",
                        MAX_BLOCK >> 20
                    ));
                    break;
                }
            }
            Err(e) => {
                state.summary.file_problem = Some(format!(
                    "unreadable data after {} bytes ({})",
                    consumed,
                    describe(&e)
                ));
                break;
            }
        }
    }
    state.finish()
}

fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, k) => format!("{k:?}"),
        PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        PcapError::HeaderNotRecognized => "a block of an unknown kind".into(),
        PcapError::ReadError => "a read failed".into(),
        _ => "a malformed block".into(),
    }
}

/// The TCP part of a packet: addresses, ports, flags, sequence numbers and payload.
struct Segment<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    payload: &'a [u8],
}

enum Parsed<'a> {
    Tcp(Segment<'a>),
    Other,
    Bad,
    Unsupported,
}

fn parse(link: Linktype, data: &[u8]) -> Parsed<'_> {
    let sliced = match link {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        Linktype::LINUX_SLL2 => {
            // 20 bytes: protocol type (EtherType), reserved, interface, ARPHRD, packet type,
            // address length, address.
            let (Some(proto), Some(rest)) = (data.get(..2), data.get(20..)) else {
                return Parsed::Bad;
            };
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([proto[0], proto[1]])), rest)
        }
        Linktype::NULL | Linktype::LOOP => match data.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Parsed::Bad,
        },
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data),
        // DLT_RAW as some systems number it.
        Linktype(12) | Linktype(14) => SlicedPacket::from_ip(data),
        _ => return Parsed::Unsupported,
    };
    let Ok(p) = sliced else {
        return Parsed::Bad;
    };
    let (src, dst): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return Parsed::Other,
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return Parsed::Other;
    };
    Parsed::Tcp(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}

/// Whether `bytes` (the start of a client segment) look like the start of a command packet:
/// a length that the segment does not overrun, sequence id 0, a command byte clients send.
fn starts_command(bytes: &[u8]) -> bool {
    let [a, b, c, seq, cmd, ..] = *bytes else {
        return false;
    };
    let len = u32::from_le_bytes([a, b, c, 0]) as usize;
    // COM_QUIT, INIT_DB, QUERY, FIELD_LIST, PING, CHANGE_USER, STMT_PREPARE/EXECUTE/
    // SEND_LONG_DATA/CLOSE/RESET, SET_OPTION, STMT_FETCH, RESET_CONNECTION.
    let known = matches!(
        cmd,
        0x01 | 0x02 | 0x03 | 0x04 | 0x0e | 0x11 | 0x16..=0x1c | 0x1f
    );
    seq == 0 && known && len >= 1 && len + 4 >= bytes.len()
}

enum Decoder {
    Live(Box<Recorder>),
    /// Looking for a client segment that starts a command.
    Waiting,
}

struct Conn {
    session: u64,
    client: SocketAddr,
    server: SocketAddr,
    /// Client → server.
    up: Reassembler,
    /// Server → client.
    down: Reassembler,
    decoder: Decoder,
    from_start: bool,
    counted_mid_stream: bool,
    damaged: bool,
    undecodable: bool,
    commands: u64,
    prepared: HashSet<u32>,
    last_ts: i64,
    rst: bool,
    /// Pieces reassembled and not yet decoded, client's and server's ([`pump`]).
    queue: [VecDeque<Piece>; 2],
    /// Stream offsets decoded (or skipped) so far, client's and server's.
    fed: [u64; 2],
}

const CLIENT: usize = 0;
const SERVER: usize = 1;

/// How long (capture time) data waits for the bytes of the other direction it
/// acknowledges.
const HOLD_US: i64 = 50_000;
/// Pieces waiting at most per direction of a connection.
const MAX_WAITING: usize = 256;

/// A segment into its direction's reassembler; the pieces wait in the direction's queue
/// for [`pump`].
fn on_segment(
    c: &mut Conn,
    from_client: bool,
    seg: &Segment<'_>,
    ts: i64,
    summary: &mut PcapSummary,
    records: &mut Vec<Record>,
) {
    let (d, r) = if from_client {
        (CLIENT, &mut c.up)
    } else {
        (SERVER, &mut c.down)
    };
    if seg.syn {
        r.syn(seg.seq);
    }
    let stamp = Stamp {
        ts,
        ack: seg.ack.filter(|_| !seg.payload.is_empty()),
    };
    let mut out = Vec::new();
    r.segment_at(
        seg.seq.wrapping_add(u32::from(seg.syn)),
        seg.payload,
        seg.fin,
        stamp,
        &mut out,
    );
    c.queue[d].extend(out);
    c.rst |= seg.rst;
    pump(c, ts, false, summary, records);
}

/// The two directions' pieces into the decoder, in the order the conversation had: a piece
/// goes after every byte of the other direction its segment acknowledged (a capture on
/// several CPUs can show an answer before its request; a request after a loss must wait for
/// the answers before it). A piece that acknowledges bytes never seen waits up to
/// [`HOLD_US`] of capture time (or [`MAX_WAITING`] pieces); then the bytes are lost (a gap).
/// With `force` (the end of the connection) nothing waits.
fn pump(c: &mut Conn, now: i64, force: bool, summary: &mut PcapSummary, records: &mut Vec<Record>) {
    loop {
        // Data is ready once the other direction's bytes it acknowledged are in.
        let data = |d: usize| -> Option<Option<(bool, i64)>> {
            let other = if d == CLIENT { &c.down } else { &c.up };
            Some(match c.queue[d].front()? {
                Piece::Gap(_) => None,
                Piece::Data(_, st) => {
                    let ready = st
                        .ack
                        .and_then(|a| other.target(a))
                        .is_none_or(|t| c.fed[1 - d] >= t);
                    Some((ready, st.ts))
                }
            })
        };
        let (dc, ds) = (data(CLIENT), data(SERVER));
        // A gap (bytes lost: when they were sent is unknown) yields to the other direction's
        // ready data, and goes before data that waits.
        let head = |me: Option<Option<(bool, i64)>>, other: Option<Option<(bool, i64)>>| {
            me.map(|m| match m {
                Some(x) => x,
                None => (!matches!(other, Some(Some((true, _)))), i64::MIN),
            })
        };
        let pick = match (head(dc, ds), head(ds, dc)) {
            (None, None) => break,
            (Some((true, a)), Some((true, b))) => {
                if b < a {
                    SERVER
                } else {
                    CLIENT
                }
            }
            (Some((true, _)), _) => CLIENT,
            (_, Some((true, _))) => SERVER,
            (cl, sv) => {
                // Every head waits for bytes of the other direction: the oldest decides.
                let d = match (cl, sv) {
                    (Some((_, a)), Some((_, b))) if b < a => SERVER,
                    (Some(_), _) => CLIENT,
                    _ => SERVER,
                };
                let (ts, ack) = match c.queue[d].front() {
                    Some(Piece::Data(_, st)) => (st.ts, st.ack),
                    _ => (now, None),
                };
                let expired =
                    force || now.saturating_sub(ts) >= HOLD_US || c.queue[d].len() > MAX_WAITING;
                if !expired {
                    break;
                }
                // The bytes it acknowledges never came: lost.
                let mut out = Vec::new();
                if let Some(a) = ack {
                    if d == CLIENT {
                        c.down.acked(a, &mut out);
                    } else {
                        c.up.acked(a, &mut out);
                    }
                }
                if out.is_empty() {
                    // Nothing to wait for after all (bytes still queued on the other side
                    // in a tangle): decode it as it is.
                    d
                } else {
                    c.queue[1 - d].extend(out);
                    continue;
                }
            }
        };
        let Some(piece) = c.queue[pick].pop_front() else {
            break;
        };
        c.fed[pick] += match &piece {
            Piece::Gap(n) => *n,
            Piece::Data(b, _) => b.len() as u64,
        };
        let first = records.len();
        feed(c, pick == CLIENT, vec![piece], now, summary, records);
        for r in &records[first..] {
            count(c, r, summary);
        }
    }
}

/// A record waiting to be written in time order.
struct Waiting {
    ts_us: i64,
    seq: u64,
    record: Record,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.ts_us, self.seq) == (other.ts_us, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts_us, self.seq).cmp(&(other.ts_us, other.seq))
    }
}

struct State<F> {
    opts: PcapOptions,
    sink: F,
    summary: PcapSummary,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    servers: HashSet<SocketAddr>,
    next_session: u64,
    waiting: BinaryHeap<Reverse<Waiting>>,
    next_seq: u64,
    /// The last time given to a record of each open session (kept non-decreasing).
    session_ts: HashMap<u64, i64>,
    /// The latest packet time seen.
    now: i64,
    /// When connections' waiting pieces were last looked at.
    last_sweep: i64,
}

impl<F, E> State<F>
where
    F: FnMut(Record) -> Result<(), E>,
{
    fn new(opts: PcapOptions, sink: F) -> State<F> {
        State {
            opts,
            sink,
            summary: PcapSummary::default(),
            conns: HashMap::new(),
            servers: HashSet::new(),
            next_session: 0,
            waiting: BinaryHeap::new(),
            next_seq: 0,
            session_ts: HashMap::new(),
            now: i64::MIN,
            last_sweep: i64::MIN,
        }
    }

    fn packet(&mut self, link: Linktype, data: &[u8], ts: i64) -> Result<(), PcapFailure<E>> {
        self.summary.packets += 1;
        let seg = match parse(link, data) {
            Parsed::Tcp(s) => s,
            Parsed::Other => {
                self.summary.other_packets += 1;
                return Ok(());
            }
            Parsed::Bad => {
                self.summary.undecodable_packets += 1;
                return Ok(());
            }
            Parsed::Unsupported => {
                self.summary.undecodable_packets += 1;
                if !self.summary.unsupported_link_types.contains(&link.0)
                    && self.summary.unsupported_link_types.len() < 16
                {
                    self.summary.unsupported_link_types.push(link.0);
                }
                return Ok(());
            }
        };
        let src_server = self.opts.ports.contains(&seg.src.port());
        let dst_server = self.opts.ports.contains(&seg.dst.port());
        let from_client = match (src_server, dst_server) {
            (false, false) => {
                self.summary.other_packets += 1;
                return Ok(());
            }
            (false, true) => true,
            (true, false) => false,
            // Both on server ports: the one a SYN goes to, else the one a SYN-ACK comes
            // from, else the one an open connection already names, else the destination.
            (true, true) => {
                if seg.syn {
                    seg.ack.is_none()
                } else {
                    !self.conns.contains_key(&(seg.dst, seg.src))
                }
            }
        };
        self.summary.segments += 1;
        self.now = self.now.max(ts);
        let key = if from_client {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        // A new connection on a 4-tuple still open: the old one is over.
        if seg.syn && seg.ack.is_none() && from_client {
            let reused = self
                .conns
                .get(&key)
                .is_some_and(|c| c.up.started() && (c.up.delivered > 0 || c.down.delivered > 0));
            if reused {
                self.end(key, ts)?;
            }
        }
        if !self.conns.contains_key(&key) {
            if !seg.syn && seg.payload.is_empty() {
                // An acknowledgement or the end of a connection the capture saw nothing of
                // (or one already over).
                return Ok(());
            }
            self.next_session += 1;
            self.summary.connections += 1;
            self.servers.insert(key.1);
            let from_start = seg.syn;
            let conn = Conn {
                session: self.next_session,
                client: key.0,
                server: key.1,
                up: Reassembler::new(self.opts.max_buffered),
                down: Reassembler::new(self.opts.max_buffered),
                decoder: if from_start {
                    Decoder::Live(Box::new(Recorder::new(self.next_session)))
                } else {
                    Decoder::Waiting
                },
                from_start,
                counted_mid_stream: false,
                damaged: false,
                undecodable: false,
                commands: 0,
                prepared: HashSet::new(),
                last_ts: ts,
                rst: false,
                queue: [VecDeque::new(), VecDeque::new()],
                fed: [0, 0],
            };
            self.conns.insert(key, conn);
        }
        let mut records = Vec::new();
        let ended = {
            let Some(c) = self.conns.get_mut(&key) else {
                return Ok(());
            };
            c.last_ts = ts;
            on_segment(c, from_client, &seg, ts, &mut self.summary, &mut records);
            c.rst || (c.up.ended() && c.down.ended())
        };
        self.emit(records)?;
        if ended {
            self.end(key, ts)?;
        }
        // Data waiting too long on connections that went quiet.
        if ts.saturating_sub(self.last_sweep) >= HOLD_US {
            self.last_sweep = ts;
            let waiting: Vec<_> = self
                .conns
                .iter()
                .filter(|(_, c)| c.queue.iter().any(|q| !q.is_empty()))
                .map(|(k, _)| *k)
                .collect();
            for key in waiting {
                let mut records = Vec::new();
                let ended = match self.conns.get_mut(&key) {
                    Some(c) => {
                        pump(c, ts, false, &mut self.summary, &mut records);
                        c.rst || (c.up.ended() && c.down.ended())
                    }
                    None => false,
                };
                self.emit(records)?;
                if ended {
                    self.end(key, ts)?;
                }
            }
        }
        self.release(false)
    }

    /// A connection is over: what waits behind holes, then the decoder's last records.
    fn end(&mut self, key: (SocketAddr, SocketAddr), ts: i64) -> Result<(), PcapFailure<E>> {
        let Some(mut c) = self.conns.remove(&key) else {
            return Ok(());
        };
        let mut records = Vec::new();
        pump(&mut c, ts, true, &mut self.summary, &mut records);
        let mut up = Vec::new();
        c.up.finish(&mut up);
        c.queue[CLIENT].extend(up);
        let mut down = Vec::new();
        c.down.finish(&mut down);
        c.queue[SERVER].extend(down);
        pump(&mut c, ts, true, &mut self.summary, &mut records);
        // `pump` counted what it decoded; the closing records are counted here.
        let closing = records.len();
        if let Decoder::Live(rec) = &mut c.decoder {
            rec.close(ts);
            records.extend(rec.take());
            if rec.undecodable() && !c.undecodable {
                c.undecodable = true;
                self.summary.undecodable_sessions += 1;
            }
        }
        self.summary.duplicate_bytes += c.up.duplicate_bytes + c.down.duplicate_bytes;
        if c.damaged {
            self.summary.damaged_sessions += 1;
        }
        for r in &records[closing..] {
            count(&mut c, r, &mut self.summary);
        }
        if c.commands == 0 {
            self.summary.sessions_without_commands += 1;
        }
        self.emit(records)?;
        self.session_ts.remove(&c.session);
        Ok(())
    }

    fn emit(&mut self, records: Vec<Record>) -> Result<(), PcapFailure<E>> {
        for mut r in records {
            // Within a session, times never go back (packet times can, a little).
            let last = self.session_ts.entry(r.session).or_insert(r.ts_us);
            if r.ts_us < *last {
                r.ts_us = *last;
            }
            *last = r.ts_us;
            self.next_seq += 1;
            self.waiting.push(Reverse(Waiting {
                ts_us: r.ts_us,
                seq: self.next_seq,
                record: r,
            }));
        }
        Ok(())
    }

    /// Writes the records old enough (all of them at the end).
    fn release(&mut self, all: bool) -> Result<(), PcapFailure<E>> {
        let horizon = self.now.saturating_sub(self.opts.reorder_window_us);
        while let Some(Reverse(top)) = self.waiting.peek() {
            if !all && top.ts_us > horizon && self.waiting.len() <= self.opts.max_reorder {
                break;
            }
            let Some(Reverse(w)) = self.waiting.pop() else {
                break;
            };
            (self.sink)(w.record).map_err(PcapFailure::Sink)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<PcapSummary, PcapFailure<E>> {
        let mut open: Vec<((SocketAddr, SocketAddr), u64, i64)> = self
            .conns
            .iter()
            .map(|(k, c)| (*k, c.session, c.last_ts))
            .collect();
        open.sort_by_key(|o| o.1);
        for (key, _, ts) in open {
            self.end(key, ts)?;
        }
        self.release(true)?;
        self.summary.servers = self.servers.len() as u64;
        Ok(self.summary)
    }
}

/// Bookkeeping of a record from a connection: commands, and executes of statements the
/// capture never saw prepared.
fn count(c: &mut Conn, r: &Record, summary: &mut PcapSummary) {
    match &r.command {
        Command::Prepare { stmt, .. } => {
            c.prepared.insert(*stmt);
        }
        Command::Execute { stmt, .. } if !c.prepared.contains(stmt) => {
            summary.unknown_statement_executes += 1;
        }
        _ => {}
    }
    if !matches!(r.command, Command::Quit | Command::Connect) {
        c.commands += 1;
    }
}

/// Pieces of one direction of `c` into its decoder.
fn feed(
    c: &mut Conn,
    from_client: bool,
    pieces: Vec<Piece>,
    ts: i64,
    summary: &mut PcapSummary,
    records: &mut Vec<Record>,
) {
    for p in pieces {
        match p {
            Piece::Gap(n) => {
                summary.gaps += 1;
                summary.bytes_lost += n;
                if summary.gap_list.len() < LISTED_GAPS {
                    summary.gap_list.push(Gap {
                        session: c.session,
                        client: c.client.to_string(),
                        server: c.server.to_string(),
                        from: if from_client { "client" } else { "server" },
                        bytes: n,
                        ts_us: ts,
                    });
                }
                c.damaged = true;
                if let Decoder::Live(mut rec) = std::mem::replace(&mut c.decoder, Decoder::Waiting)
                {
                    records.extend(rec.take());
                    rec.close(ts);
                    // The connection goes on: the session did not end here.
                    records.extend(
                        rec.take()
                            .into_iter()
                            .filter(|r| !matches!(r.command, Command::Quit)),
                    );
                    if rec.undecodable() && !c.undecodable {
                        c.undecodable = true;
                        summary.undecodable_sessions += 1;
                    }
                }
            }
            Piece::Data(bytes, stamp) => {
                // Bytes that waited carry their own packet's time.
                let ts = if stamp.ts == 0 { ts } else { stamp.ts };
                if matches!(c.decoder, Decoder::Waiting) {
                    if from_client && starts_command(&bytes) {
                        if !c.from_start && !c.counted_mid_stream {
                            c.counted_mid_stream = true;
                            summary.mid_stream_sessions += 1;
                        }
                        c.decoder = Decoder::Live(Box::new(Recorder::mid_stream(c.session)));
                    } else {
                        summary.skipped_bytes += bytes.len() as u64;
                        continue;
                    }
                }
                if let Decoder::Live(rec) = &mut c.decoder {
                    if from_client {
                        rec.client(&bytes, ts);
                    } else {
                        rec.server(&bytes, ts);
                    }
                    records.extend(rec.take());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(bytes: Vec<u8>) -> Result<(PcapSummary, Vec<Record>), String> {
        let mut out = Vec::new();
        let s = capture(
            std::io::Cursor::new(bytes),
            &PcapOptions::default(),
            |r| -> Result<(), std::convert::Infallible> {
                out.push(r);
                Ok(())
            },
        )
        .map_err(|e| e.to_string())?;
        Ok((s, out))
    }

    #[test]
    fn not_a_pcap_is_one_error() {
        assert!(run(b"hello world, this is not a capture".to_vec())
            .unwrap_err()
            .contains("not a pcap"));
        assert!(run(Vec::new()).unwrap_err().contains("empty"));
    }

    #[test]
    fn command_starts() {
        assert!(starts_command(b"\x09\x00\x00\x00\x03SELECT 1"));
        assert!(starts_command(b"\x01\x00\x00\x00\x01"));
        assert!(!starts_command(b"\x09\x00\x00\x01\x03SELECT 1"));
        assert!(!starts_command(b"SELECT 1 FROM t"));
        assert!(!starts_command(b"\x02\x00\x00\x00\x03SELECT 1"));
    }

    /// An Ethernet/IPv4/TCP frame between 10.0.0.1:`cport` and 10.0.0.2:3306.
    fn frame(
        from_client: bool,
        cport: u16,
        seq: u32,
        ack: u32,
        flags: &str,
        payload: &[u8],
    ) -> Vec<u8> {
        let (src, dst, sp, dp) = if from_client {
            ([10, 0, 0, 1], [10, 0, 0, 2], cport, 3306)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 3306, cport)
        };
        frame_ip(src, dst, sp, dp, seq, ack, flags, payload, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn frame_ip(
        src: [u8; 4],
        dst: [u8; 4],
        sp: u16,
        dp: u16,
        seq: u32,
        ack: u32,
        flags: &str,
        payload: &[u8],
        v6: bool,
    ) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]);
        let six = |a: [u8; 4]| {
            let mut x = [0u8; 16];
            x[0] = 0xfd;
            x[12..].copy_from_slice(&a);
            x
        };
        let mut b = if v6 {
            eth.ipv6(six(src), six(dst), 64).tcp(sp, dp, seq, 65535)
        } else {
            eth.ipv4(src, dst, 64).tcp(sp, dp, seq, 65535)
        };
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        let mut out = Vec::new();
        let _ = b.write(&mut out, payload);
        out
    }

    /// A little-endian pcap file of Ethernet frames.
    fn pcap_file(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
        pcap_file_of(frames, 1)
    }

    /// The same file with another link layer (the Ethernet frames' IP packets re-wrapped).
    fn pcap_file_of(frames: &[(i64, Vec<u8>)], link: u32) -> Vec<u8> {
        let frames: Vec<(i64, Vec<u8>)> =
            frames.iter().map(|(t, f)| (*t, relink(f, link))).collect();
        let frames = &frames;
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&262_144u32.to_le_bytes());
        out.extend_from_slice(&link.to_le_bytes());
        for (ts, f) in frames {
            out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    /// An Ethernet frame's IP packet under another link layer.
    fn relink(eth: &[u8], link: u32) -> Vec<u8> {
        let ip = &eth[14..];
        let ethertype = [eth[12], eth[13]];
        let mut out = match link {
            1 => return eth.to_vec(),
            // Linux cooked v1: packet type, ARPHRD, address length, address (8), protocol.
            113 => [&[0, 0, 0, 1, 0, 6][..], &[1; 8], &ethertype].concat(),
            // v2: protocol, reserved, interface, ARPHRD, packet type, address length, address.
            276 => [&ethertype[..], &[0, 0, 0, 0, 0, 1, 0, 1, 0, 6], &[1; 8]].concat(),
            // BSD loopback: the address family in host order.
            0 => 2u32.to_le_bytes().to_vec(),
            _ => Vec::new(),
        };
        out.extend_from_slice(ip);
        out
    }

    /// A pcapng file (section, one interface with the default microsecond resolution,
    /// enhanced packet blocks).
    fn pcapng_file(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (body.len() + 12) as u32;
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&len.to_le_bytes());
        };
        let shb = [
            &0x1A2B_3C4Du32.to_le_bytes()[..],
            &1u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &(-1i64).to_le_bytes(),
        ]
        .concat();
        block(&mut out, 0x0A0D_0D0A, &shb);
        let idb = [
            &1u16.to_le_bytes()[..],
            &0u16.to_le_bytes(),
            &262_144u32.to_le_bytes(),
        ]
        .concat();
        block(&mut out, 1, &idb);
        for (ts, f) in frames {
            let ts = *ts as u64;
            let epb = [
                &0u32.to_le_bytes()[..],
                &((ts >> 32) as u32).to_le_bytes(),
                &(ts as u32).to_le_bytes(),
                &(f.len() as u32).to_le_bytes(),
                &(f.len() as u32).to_le_bytes(),
                f,
            ]
            .concat();
            block(&mut out, 6, &epb);
        }
        out
    }

    #[test]
    fn every_link_layer_and_pcapng_give_the_same_records() {
        let frames = conversation(&["SELECT 1", "SELECT 2"], 1, 2);
        let (_, want) = run(pcap_file(&frames)).unwrap();
        assert_eq!(queries(&want), ["SELECT 1", "SELECT 2"]);
        for link in [113, 276, 0, 101] {
            let (s, got) = run(pcap_file_of(&frames, link)).unwrap();
            assert_eq!(got, want, "link type {link}");
            assert_eq!(s.undecodable_packets, 0);
        }
        let (_, got) = run(pcapng_file(&frames)).unwrap();
        assert_eq!(got, want, "pcapng");
        // An unknown link type is counted, not guessed.
        let (s, got) = run(pcap_file_of(&frames, 147)).unwrap();
        assert!(got.is_empty());
        assert_eq!(s.unsupported_link_types, [147]);
    }

    #[test]
    fn ipv6_connections_decode_like_ipv4() {
        let v4 = conversation(&["SELECT 1"], 1, 2);
        let v6 = readdress(&v4, [10, 0, 0, 1], [10, 0, 0, 2], true);
        let (s, records) = run(pcap_file(&v6)).unwrap();
        assert_eq!(queries(&records), ["SELECT 1"]);
        assert_eq!(s.connections, 1);
    }

    fn mysql_packet(seq: u8, body: &[u8]) -> Vec<u8> {
        let mut p = (body.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(body);
        p
    }

    /// A connection already open when the capture began: `queries` each answered by OK
    /// (affected rows = its index), as (time, frame), with a given client/server ISN.
    fn conversation(queries: &[&str], cisn: u32, sisn: u32) -> Vec<(i64, Vec<u8>)> {
        let (mut c, mut s) = (cisn, sisn);
        let mut frames = Vec::new();
        let mut ts = 1_700_000_000_000_000i64;
        for (i, q) in queries.iter().enumerate() {
            let mut body = vec![0x03];
            body.extend_from_slice(q.as_bytes());
            let req = mysql_packet(0, &body);
            frames.push((ts, frame(true, 40000, c, s, "A", &req)));
            c = c.wrapping_add(req.len() as u32);
            ts += 100;
            let ok = mysql_packet(1, &[0x00, i as u8, 0x00, 0x02, 0x00, 0x00, 0x00]);
            frames.push((ts, frame(false, 40000, s, c, "A", &ok)));
            s = s.wrapping_add(ok.len() as u32);
            ts += 1000;
        }
        frames
    }

    fn queries(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|r| match &r.command {
                Command::Query { sql } => Some(sql.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_connection_begun_before_the_capture_decodes_from_its_first_command() {
        let frames = conversation(&["SELECT 1", "SELECT 2", "SELECT 3"], u32::MAX - 20, 7);
        let (s, records) = run(pcap_file(&frames)).unwrap();
        assert_eq!(queries(&records), ["SELECT 1", "SELECT 2", "SELECT 3"]);
        assert_eq!(s.mid_stream_sessions, 1);
        assert_eq!(s.connections, 1);
        assert_eq!(s.gaps, 0);
        assert!(records.iter().all(|r| r.db.is_none() && r.session == 1));
        let second = &records[1];
        assert_eq!(second.ts_us, 1_700_000_000_001_100);
        let resp = second.response.as_ref().unwrap();
        assert_eq!((resp.affected_rows, resp.latency_us), (Some(1), Some(100)));
        assert!(matches!(records.last().unwrap().command, Command::Quit));
    }

    #[test]
    fn a_lost_client_segment_is_a_gap_of_its_length_and_decoding_resumes() {
        let mut frames = conversation(&["SELECT 1", "SELECT 22", "SELECT 3"], 1000, 5000);
        // The second query (14 bytes on the wire) is lost; its answer acknowledges it.
        frames.remove(2);
        let (s, records) = run(pcap_file(&frames)).unwrap();
        assert_eq!(queries(&records), ["SELECT 1", "SELECT 3"]);
        assert_eq!(s.gaps, 1);
        assert_eq!(s.bytes_lost, 14);
        assert_eq!(s.damaged_sessions, 1);
        assert_eq!(s.gap_list[0].from, "client");
        assert_eq!(s.gap_list[0].bytes, 14);
        // The third query's answer is its own, not the lost one's.
        let third = records
            .iter()
            .find(|r| queries(std::slice::from_ref(r)) == ["SELECT 3"])
            .unwrap();
        assert_eq!(third.response.as_ref().unwrap().affected_rows, Some(2));
    }

    #[test]
    fn an_answer_captured_before_its_request_waits_for_it() {
        let mut frames = conversation(&["SELECT 1", "SELECT 22", "SELECT 3"], 1000, 5000);
        // The second answer was captured (by another CPU) before the second request.
        frames.swap(2, 3);
        let (s, records) = run(pcap_file(&frames)).unwrap();
        assert_eq!(s.gaps, 0);
        assert_eq!(queries(&records), ["SELECT 1", "SELECT 22", "SELECT 3"]);
        let affected: Vec<Option<u64>> = records
            .iter()
            .filter(|r| matches!(r.command, Command::Query { .. }))
            .map(|r| r.response.as_ref().and_then(|x| x.affected_rows))
            .collect();
        assert_eq!(affected, [Some(0), Some(1), Some(2)]);
    }

    /// A conversation's frames re-addressed: client `client`, server `server` (IPv4 or, with
    /// `v6`, the same addresses in an IPv6 prefix).
    fn readdress(
        frames: &[(i64, Vec<u8>)],
        client: [u8; 4],
        server: [u8; 4],
        v6: bool,
    ) -> Vec<(i64, Vec<u8>)> {
        frames
            .iter()
            .map(|(t, f)| {
                let p = SlicedPacket::from_ethernet(f).unwrap();
                let Some(TransportSlice::Tcp(tcp)) = p.transport else {
                    unreachable!()
                };
                let (src, dst) = if tcp.source_port() == 3306 {
                    (server, client)
                } else {
                    (client, server)
                };
                let flags = if tcp.ack() { "A" } else { "" };
                (
                    *t,
                    frame_ip(
                        src,
                        dst,
                        tcp.source_port(),
                        tcp.destination_port(),
                        tcp.sequence_number(),
                        tcp.acknowledgment_number(),
                        flags,
                        tcp.payload(),
                        v6,
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn several_servers_are_separate_sessions_and_unknown_statements_are_counted() {
        let a = conversation(&["SELECT 'a'"], 1, 2);
        let b = readdress(
            &conversation(&["SELECT 'b'"], 1, 2),
            [10, 0, 0, 1],
            [10, 0, 0, 9],
            false,
        );
        // An execute of statement 5, prepared before the capture: kept, and counted.
        let exec = [0x17, 5, 0, 0, 0, 0, 1, 0, 0, 0];
        let c = vec![
            (
                1_700_000_000_500_000,
                frame(true, 40001, 10, 20, "A", &mysql_packet(0, &exec)),
            ),
            (
                1_700_000_000_500_100,
                frame(
                    false,
                    40001,
                    20,
                    24,
                    "A",
                    &mysql_packet(1, &[0, 1, 0, 2, 0, 0, 0]),
                ),
            ),
        ];
        let mut all: Vec<(i64, Vec<u8>)> = a.into_iter().chain(b).chain(c).collect();
        all.sort_by_key(|f| f.0);
        let (s, records) = run(pcap_file(&all)).unwrap();
        assert_eq!((s.connections, s.servers), (3, 2));
        assert_eq!(s.mid_stream_sessions, 3);
        assert_eq!(s.unknown_statement_executes, 1);
        let sessions: std::collections::BTreeSet<u64> = records.iter().map(|r| r.session).collect();
        assert_eq!(sessions.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(records
            .iter()
            .any(|r| matches!(r.command, Command::Execute { stmt: 5, .. })));
    }

    /// What is decoded when the connection ends is counted once.
    #[test]
    fn records_decoded_at_the_end_are_counted_once() {
        let t = 1_700_000_000_000_000i64;
        let exec = mysql_packet(0, &[0x17, 5, 0, 0, 0, 0, 1, 0, 0, 0]);
        let ok = mysql_packet(1, &[0, 1, 0, 2, 0, 0, 0]);
        // Ten client bytes after the SYN never seen; the execute and its answer wait for
        // them until the end.
        let frames = vec![
            (t, frame(true, 40000, 99, 0, "S", &[])),
            (t + 1, frame(false, 40000, 499, 100, "SA", &[])),
            (t + 10, frame(true, 40000, 110, 500, "A", &exec)),
            (
                t + 20,
                frame(false, 40000, 500, 110 + exec.len() as u32, "A", &ok),
            ),
        ];
        let (s, records) = run(pcap_file(&frames)).unwrap();
        assert_eq!((s.gaps, s.bytes_lost), (1, 10));
        assert_eq!(s.unknown_statement_executes, 1);
        assert_eq!(s.sessions_without_commands, 0);
        let exec = records
            .iter()
            .find(|r| matches!(r.command, Command::Execute { stmt: 5, .. }))
            .unwrap();
        assert_eq!(
            exec.response.as_ref().and_then(|r| r.affected_rows),
            Some(1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// A conversation with segments lost, swapped with their neighbour and duplicated:
        /// the bytes lost are exactly the lost segments' (the last request and answer, which
        /// nothing after them acknowledges, are kept), and the queries decoded are the sent
        /// ones, in order, some missing.
        #[test]
        fn lost_swapped_and_duplicated_segments(
            n in 3usize..12,
            cisn in any::<u32>(),
            sisn in any::<u32>(),
            fate in proptest::collection::vec(0u8..10, 24),
            pace in prop_oneof![Just(1i64), Just(30)],
        ) {
            let sent: Vec<String> = (0..n).map(|i| format!("SELECT {}", "x".repeat(i + 1))).collect();
            let refs: Vec<&str> = sent.iter().map(String::as_str).collect();
            // At a slow pace, data waiting for bytes that never come stops waiting before
            // the end.
            let mut frames = conversation(&refs, cisn, sisn);
            let t0 = frames[0].0;
            for f in &mut frames {
                f.0 = t0 + (f.0 - t0) * pace;
            }
            let keep_from = frames.len() - 2;
            let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
            let mut lost = 0u64;
            // A frame moves by one place at most (the last one already moved stays).
            let mut moved = true;
            for (i, f) in frames.iter().enumerate() {
                let fate = fate.get(i).copied().unwrap_or(9);
                let was_moved = std::mem::replace(&mut moved, false);
                match fate {
                    0 if i < keep_from => {
                        let p = SlicedPacket::from_ethernet(&f.1).unwrap();
                        if let Some(TransportSlice::Tcp(t)) = p.transport {
                            lost += t.payload().len() as u64;
                        }
                        // The last frame out is still the one that moved, if it did.
                        moved = was_moved;
                    }
                    1 => {
                        out.push(f.clone());
                        out.push(f.clone());
                    }
                    2 if !was_moved && !out.is_empty() => {
                        let last = out.len() - 1;
                        out.push(f.clone());
                        out.swap(last, last + 1);
                        moved = true;
                    }
                    _ => out.push(f.clone()),
                }
            }
            // The connection's start was captured: every byte after it is accounted for.
            let t0 = frames[0].0 - 10;
            let mut all = vec![
                (t0, frame(true, 40000, cisn.wrapping_sub(1), 0, "S", &[])),
                (t0 + 1, frame(false, 40000, sisn.wrapping_sub(1), cisn, "SA", &[])),
            ];
            all.extend(out);
            let (s, records) = run(pcap_file(&all)).unwrap();
            prop_assert_eq!(s.bytes_lost, lost, "{:?}", s.gap_list);
            prop_assert_eq!(s.mid_stream_sessions, 0);
            let got = queries(&records);
            let mut at = 0;
            for q in &got {
                match sent[at..].iter().position(|x| x == q) {
                    Some(i) => at += i + 1,
                    None => prop_assert!(false, "{q} out of order in {got:?}"),
                }
            }
            if lost == 0 {
                prop_assert_eq!(got, sent);
            }
        }

        /// Well-formed frames with arbitrary flags, sequence numbers and MySQL-like or
        /// arbitrary payloads never panic the reassembly and decoding.
        #[test]
        fn arbitrary_segments_never_panic(
            segs in proptest::collection::vec(
                (any::<bool>(), 0u16..3, 0u32..4000, 0u32..4000, 0u8..16,
                 prop_oneof![
                     proptest::collection::vec(any::<u8>(), 0..300),
                     ("[ -~]{0,40}", 0u8..0x20).prop_map(|(q, c)| {
                         let mut b = vec![c];
                         b.extend_from_slice(q.as_bytes());
                         mysql_packet(0, &b)
                     }),
                 ]),
                0..60),
        ) {
            let frames: Vec<(i64, Vec<u8>)> = segs
                .iter()
                .enumerate()
                .map(|(i, (client, port, seq, ack, flags, payload))| {
                    let f = ["S", "F", "R", "A"]
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| flags & (1 << k) != 0)
                        .map(|(_, s)| *s)
                        .collect::<String>();
                    (i as i64 * 10, frame(*client, 40000 + port, *seq, *ack, &f, payload))
                })
                .collect();
            let _ = run(pcap_file(&frames));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Arbitrary bytes, and arbitrary bytes after a valid pcap header, never panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..4000),
            header in any::<bool>(),
            link in prop_oneof![Just(1u32), Just(0), Just(113), Just(276), Just(101), any::<u32>()],
        ) {
            let mut bytes = Vec::new();
            if header {
                bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
                bytes.extend_from_slice(&2u16.to_le_bytes());
                bytes.extend_from_slice(&4u16.to_le_bytes());
                bytes.extend_from_slice(&[0; 8]);
                bytes.extend_from_slice(&65535u32.to_le_bytes());
                bytes.extend_from_slice(&link.to_le_bytes());
            }
            bytes.extend_from_slice(&body);
            let _ = run(bytes);
        }
    }
}
