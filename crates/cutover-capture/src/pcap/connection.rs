//! One connection's two directions, reassembled ([`crate::tcp`]), fed to its decoder in the
//! order the conversation had (`pump`), with the gaps the capture left and the start of
//! decoding in a connection that began before the capture.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;

use cutover_protocol::{Peer, Recorder};
use cutover_workload::{Command, Record};

use super::link::Segment;
use super::{Gap, PcapSummary, LISTED_GAPS};
use crate::tcp::{Piece, Reassembler, Stamp};

/// Whether `bytes` (the start of a client segment) look like the start of a command packet:
/// a length that the segment does not overrun, sequence id 0, a command byte clients send.
pub(super) fn starts_command(bytes: &[u8]) -> bool {
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

pub(super) enum Decoder {
    Live(Box<Recorder>),
    /// Looking for a client segment that starts a command.
    Waiting,
}

pub(super) struct Conn {
    pub(super) session: u64,
    pub(super) client: SocketAddr,
    pub(super) server: SocketAddr,
    /// Client → server.
    pub(super) up: Reassembler,
    /// Server → client.
    pub(super) down: Reassembler,
    pub(super) decoder: Decoder,
    pub(super) from_start: bool,
    pub(super) counted_mid_stream: bool,
    pub(super) damaged: bool,
    pub(super) undecodable: bool,
    pub(super) commands: u64,
    pub(super) prepared: HashSet<u32>,
    pub(super) last_ts: i64,
    pub(super) rst: bool,
    /// Pieces reassembled and not yet decoded, client's and server's ([`pump`]).
    pub(super) queue: [VecDeque<Piece>; 2],
    /// Stream offsets decoded (or skipped) so far, client's and server's.
    pub(super) fed: [u64; 2],
}

impl Conn {
    /// A connection first seen at `ts`: from its SYN (`from_start`: decoded from the
    /// handshake) or in the middle (decoded from its first command).
    pub(super) fn new(
        session: u64,
        (client, server): (SocketAddr, SocketAddr),
        max_buffered: usize,
        from_start: bool,
        ts: i64,
    ) -> Conn {
        Conn {
            session,
            client,
            server,
            up: Reassembler::new(max_buffered),
            down: Reassembler::new(max_buffered),
            decoder: if from_start {
                Decoder::Live(Box::new(Recorder::new(session)))
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
        }
    }
}

pub(super) const CLIENT: usize = 0;
pub(super) const SERVER: usize = 1;

/// How long (capture time) data waits for the bytes of the other direction it
/// acknowledges.
pub(super) const HOLD_US: i64 = 50_000;
/// Pieces waiting at most per direction of a connection.
const MAX_WAITING: usize = 256;

/// A segment into its direction's reassembler; the pieces wait in the direction's queue
/// for [`pump`].
pub(super) fn on_segment(
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
pub(super) fn pump(
    c: &mut Conn,
    now: i64,
    force: bool,
    summary: &mut PcapSummary,
    records: &mut Vec<Record>,
) {
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

/// Bookkeeping of a record from a connection: commands, and executes of statements the
/// capture never saw prepared.
pub(super) fn count(c: &mut Conn, r: &Record, summary: &mut PcapSummary) {
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
                    let from = if from_client {
                        Peer::Client
                    } else {
                        Peer::Server
                    };
                    rec.feed(from, &bytes, ts);
                    records.extend(rec.take());
                }
            }
        }
    }
}
